"""An independent, deliberately plain implementation of the GRU-family equations, written gate by gate
from the papers (Cho et al. 2014; Zhou et al. 2016; Dey & Salem 2017; Jozefowicz et al. 2015), used
only to test the library's cells. Parameters are read under the library's names and layout."""

import torch


def _block(P, name, names, block, H):
    k = names.index(block)
    return P[name][k * H : (k + 1) * H]


def gru(x, P, *, hidden, variant="standard", reset_after=True, sg=torch.sigmoid, sc=torch.tanh, h0=None, mask=None):
    """x: (T, B, I). Returns outputs (T, B, H) and the final h. ``mask`` (B, H): recurrent dropout
    on h_{t-1} inside the recurrent products only (Gal & Ghahramani 2016)."""
    H = hidden
    T, B, _ = x.shape
    blocks = ["f", "n"] if variant == "MGU" else ["r", "z", "n"]
    gates_see_x = variant in ("standard", "MGU")
    in_blocks = blocks if gates_see_x else ["n"]
    rec_blocks = ["n"] if variant == "GRU3" else blocks
    if "bias_ih" not in P:
        bias_blocks = []
    elif variant == "GRU2":
        bias_blocks = ["n"]
    else:
        bias_blocks = blocks
    hh_bias_blocks = [b for b in rec_blocks if b in bias_blocks]

    def wx(b, xt):
        return xt @ _block(P, "weight_ih", in_blocks, b, H).t() if b in in_blocks else 0.0

    def uh(b, v):
        return v @ _block(P, "weight_hh", rec_blocks, b, H).t() if b in rec_blocks else 0.0

    def b_i(b):
        return _block(P, "bias_ih", bias_blocks, b, H) if b in bias_blocks else 0.0

    def b_h(b):
        return _block(P, "bias_hh", hh_bias_blocks, b, H) if b in hh_bias_blocks else 0.0

    h = torch.zeros(B, H, dtype=x.dtype) if h0 is None else h0
    outs = []
    for t in range(T):
        xt = x[t]
        hm = h if mask is None else h * mask
        if variant == "MGU":
            f = sg(wx("f", xt) + b_i("f") + uh("f", hm) + b_h("f"))
            r = f
        else:
            r = sg(wx("r", xt) + b_i("r") + uh("r", hm) + b_h("r"))
            z = sg(wx("z", xt) + b_i("z") + uh("z", hm) + b_h("z"))
        if reset_after:
            n = sc(wx("n", xt) + b_i("n") + r * (uh("n", hm) + b_h("n")))
        else:
            n = sc(wx("n", xt) + b_i("n") + uh("n", r * hm) + b_h("n"))
        if variant == "MGU":
            h = (1 - f) * h + f * n
        else:
            h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), h


def mut(x, P, *, hidden, architecture, h0=None, mask=None):
    """MUT1/2/3 of Jozefowicz, Zaremba & Sutskever (2015). x: (T, B, I). ``mask``: recurrent dropout
    on h_{t-1} inside the recurrent products only."""
    H = hidden
    T, B, _ = x.shape
    in_blocks = {1: ["z", "r"], 2: ["z", "h"], 3: ["z", "r", "h"]}[architecture]
    rec_blocks = ["r", "h"] if architecture == 1 else ["z", "r", "h"]

    def W(b):
        return _block(P, "weight_ih", in_blocks, b, H)

    def U(b):
        return _block(P, "weight_hh", rec_blocks, b, H)

    def bias(b):
        return _block(P, "bias", ["z", "r", "h"], b, H) if "bias" in P else 0.0

    h = torch.zeros(B, H, dtype=x.dtype) if h0 is None else h0
    outs = []
    for t in range(T):
        xt = x[t]
        hm = h if mask is None else h * mask
        if architecture == 1:
            z = torch.sigmoid(xt @ W("z").t() + bias("z"))
            r = torch.sigmoid(xt @ W("r").t() + hm @ U("r").t() + bias("r"))
            h = torch.tanh((r * hm) @ U("h").t() + torch.tanh(xt) + bias("h")) * z + h * (1 - z)
        elif architecture == 2:
            z = torch.sigmoid(xt @ W("z").t() + hm @ U("z").t() + bias("z"))
            r = torch.sigmoid(xt + hm @ U("r").t() + bias("r"))
            h = torch.tanh((r * hm) @ U("h").t() + xt @ W("h").t() + bias("h")) * z + h * (1 - z)
        else:
            z = torch.sigmoid(xt @ W("z").t() + torch.tanh(hm) @ U("z").t() + bias("z"))
            r = torch.sigmoid(xt @ W("r").t() + hm @ U("r").t() + bias("r"))
            h = torch.tanh((r * hm) @ U("h").t() + xt @ W("h").t() + bias("h")) * z + h * (1 - z)
        outs.append(h)
    return torch.stack(outs), h
