"""An independent, deliberately plain implementation of the LSTM equations, written gate by gate
from the papers (Hochreiter & Schmidhuber 1997; Gers et al. 2000; Greff et al. 2017; Ba et al.
2016; the encyclopedia's full-matrix peephole form), used only to test the library's cell."""

import torch


def layer_norm(v, gain, bias=None, eps=1e-5):
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    out = (v - mu) / torch.sqrt(var + eps) * gain
    return out if bias is None else out + bias


def run(
    x,
    P,
    *,
    hidden,
    variant="vanilla",
    forget_gate=True,
    peepholes=False,
    layer_norm_=False,
    sg=torch.sigmoid,
    sc=torch.tanh,
    sh=torch.tanh,
    proj=0,
    state=None,
):
    """x: (T, B, I). P: parameters under the library's names. Returns outputs (T, B, H_out),
    cell states (T, B, H) and the final state tuple."""
    H = hidden
    T, B, _ = x.shape
    # which gate blocks are stored, in torch's i, f, g, o order
    present = []
    if variant != "NIG":
        present.append("i")
    if forget_gate and variant not in ("NFG", "CIFG"):
        present.append("f")
    present.append("g")
    if variant != "NOG":
        present.append("o")

    def rows(name, gate):
        k = present.index(gate)
        return P[name][k * H : (k + 1) * H]

    def bias(gate):
        if "bias_ih" not in P:
            return 0.0
        return rows("bias_ih", gate) + rows("bias_hh", gate)

    if variant == "NIAF":
        sc = lambda v: v  # noqa: E731
    if variant == "NOAF":
        sh = lambda v: v  # noqa: E731
    h = torch.zeros(B, proj or H, dtype=x.dtype) if state is None else state[0]
    c = torch.zeros(B, H, dtype=x.dtype) if state is None else state[1]
    a = torch.zeros(B, 3 * H, dtype=x.dtype) if state is None or len(state) < 3 else state[2]
    outs, cells = [], []
    for t in range(T):
        xt = x[t]
        wx = xt @ P["weight_ih"].t()
        if layer_norm_:
            wx = layer_norm(wx, P["ln_ih_weight"])
        if variant == "full_peephole":
            uc = c @ P["weight_ch"].t()
            if layer_norm_:
                uc = layer_norm(uc, P["ln_hh_weight"])
            rec = {g: uc[:, k * H : (k + 1) * H] for k, g in enumerate([q for q in present if q != "g"])}
            rec["g"] = 0.0
        else:
            uh = h @ P["weight_hh"].t()
            if layer_norm_:
                uh = layer_norm(uh, P["ln_hh_weight"])
            rec = {g: uh[:, k * H : (k + 1) * H] for k, g in enumerate(present)}
        pre = {g: wx[:, k * H : (k + 1) * H] + rec[g] + bias(g) for k, g in enumerate(present)}
        if variant == "FGR":
            for k, g in enumerate("ifo"):
                pre[g] = pre[g] + a @ P["weight_gr"][k * H : (k + 1) * H].t()
        if peepholes and "i" in pre:
            pre["i"] = pre["i"] + P["weight_ci"] * c
        if peepholes and "f" in pre:
            pre["f"] = pre["f"] + P["weight_cf"] * c
        i = sg(pre["i"]) if "i" in pre else torch.ones_like(c)
        if variant == "CIFG":
            f = 1 - i
        elif "f" in pre:
            f = sg(pre["f"])
        else:
            f = torch.ones_like(c)
        g = sc(pre["g"])
        c = f * c + i * g
        if "o" in pre:
            zo = pre["o"] + (P["weight_co"] * c if peepholes else 0.0)
            o = sg(zo)
        else:
            o = torch.ones_like(c)
        cn = layer_norm(c, P["ln_c_weight"], P["ln_c_bias"]) if layer_norm_ else c
        h = o * sh(cn)
        if proj:
            h = h @ P["weight_hr"].t()
        a = torch.cat([i, f, o], -1)
        outs.append(h)
        cells.append(c)
    final = (h, c, a) if variant == "FGR" else (h, c)
    return torch.stack(outs), torch.stack(cells), final
