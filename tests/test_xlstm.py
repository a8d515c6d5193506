"""xLSTM (Beck et al. 2024): sLSTM and mLSTM against a plain loop of the paper's equations (without
the stabilizer), against the authors' reference functions when the ``xlstm`` package is importable,
the mLSTM's parallel form against its recurrent form, gradcheck, learning (parity for the sLSTM,
associative recall for the mLSTM), the blocks, and error messages."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from carousel.cells.xlstm import MLSTM as MLSTMStep
from carousel.cells.xlstm import SLSTM as SLSTMStep
from carousel.cells.xlstm import mlstm_parallel
from carousel.nn.xlstm import MLSTM, SLSTM, CausalConv1d, mLSTMBlock, sLSTMBlock, xLSTMStack

F64 = torch.float64


# ---------------------------------------------------------------- the paper's equations, plainly
def slstm_equations(x, W, R, b, *, heads, forget_gate="sigmoid"):
    """x: (T, B, I); W: (4H, I) rows i, f, z, o; R: (heads, 4d, d); b: (4H,). No stabilizer."""
    T, B, _ = x.shape
    H = W.shape[0] // 4
    d = H // heads
    h, c, n = (x.new_zeros(B, H) for _ in range(3))
    outs = []
    for t in range(T):
        pre = {g: x[t] @ W[g * H : (g + 1) * H].t() + b[g * H : (g + 1) * H] for g in range(4)}
        for g in range(4):  # R h_{t-1}, head by head
            rec = [h[:, k * d : (k + 1) * d] @ R[k, g * d : (g + 1) * d].t() for k in range(heads)]
            pre[g] = pre[g] + torch.cat(rec, dim=1)
        i = torch.exp(pre[0])
        f = torch.sigmoid(pre[1]) if forget_gate == "sigmoid" else torch.exp(pre[1])
        z = torch.tanh(pre[2])
        o = torch.sigmoid(pre[3])
        c = f * c + i * z
        n = f * n + i
        h = o * (c / n)
        outs.append(h)
    return torch.stack(outs), (h, c, n)


def mlstm_equations(x, W, b, *, heads, forget_gate="sigmoid", output_gate=True):
    """x: (T, B, I); W, b: rows q, k, v (H each), i, f (one per head), o (H). No stabilizer."""
    T, B, _ = x.shape
    H = (W.shape[0] - 2 * heads) // (4 if output_gate else 3)
    d = H // heads
    C = x.new_zeros(B, heads, d, d)
    n = x.new_zeros(B, heads, d)
    outs = []
    for t in range(T):
        y = []
        for k in range(heads):
            rows = slice(k * d, (k + 1) * d)

            def lin(r, xt=x[t]):
                return xt @ W[r].t()

            q = lin(rows) + b[rows]
            key = lin(slice(H + k * d, H + (k + 1) * d)) / math.sqrt(d) + b[H + k * d : H + (k + 1) * d]
            v = lin(slice(2 * H + k * d, 2 * H + (k + 1) * d)) + b[2 * H + k * d : 2 * H + (k + 1) * d]
            i = torch.exp(x[t] @ W[3 * H + k] + b[3 * H + k])
            f_pre = x[t] @ W[3 * H + heads + k] + b[3 * H + heads + k]
            f = torch.sigmoid(f_pre) if forget_gate == "sigmoid" else torch.exp(f_pre)
            C[:, k] = f[:, None, None] * C[:, k] + i[:, None, None] * torch.einsum("bi,bj->bij", v, key)
            n[:, k] = f[:, None] * n[:, k] + i[:, None] * key
            num = torch.einsum("bij,bj->bi", C[:, k], q)
            den = torch.clamp((n[:, k] * q).sum(1).abs(), min=1.0)
            y.append(num / den[:, None])
        h = torch.cat(y, dim=1)
        if output_gate:
            start = 3 * H + 2 * heads
            h = torch.sigmoid(x[t] @ W[start:].t() + b[start:]) * h
        outs.append(h)
    return torch.stack(outs), C


# ---------------------------------------------------------------- against the equations
@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_slstm_equals_equations(heads, forget_gate):
    layer = SLSTM(3, 8, num_heads=heads, forget_gate=forget_gate, dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    out, (h, c, n, m) = layer(x)
    ref, (h_r, c_r, n_r) = slstm_equations(
        x, layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_l0, heads=heads, forget_gate=forget_gate
    )
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h[0], h_r, rtol=1e-10, atol=1e-12)
    # the stabilised states are the paper's times exp(-m_t)
    torch.testing.assert_close(c[0], c_r * torch.exp(-m[0]), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(n[0], n_r * torch.exp(-m[0]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
@pytest.mark.parametrize("output_gate", [True, False])
def test_mlstm_equals_equations(heads, forget_gate, output_gate):
    layer = MLSTM(3, 8, num_heads=heads, forget_gate=forget_gate, output_gate=output_gate, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    out, (C, n, m) = layer(x)
    ref, C_r = mlstm_equations(
        x, layer.weight_ih_l0, layer.bias_l0, heads=heads, forget_gate=forget_gate, output_gate=output_gate
    )
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    scale = torch.exp(-m[0])[:, :, None, None]
    torch.testing.assert_close(C[0].view(2, heads, 8 // heads, 8 // heads), C_r * scale, rtol=1e-10, atol=1e-12)


def test_state_passing_and_lengths():
    layer = SLSTM(3, 6, num_heads=2, num_layers=2, batch_first=True, dtype=F64)
    x = torch.randn(2, 9, 3, dtype=F64)
    full, state = layer(x)
    a, s = layer(x[:, :4])
    b, s = layer(x[:, 4:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    torch.testing.assert_close(s[3], state[3])
    mlayer = MLSTM(3, 8, num_heads=2, batch_first=True, dtype=F64)
    out, (C, n, m) = mlayer(x, lengths=torch.tensor([9, 5]))
    short, (C5, _, _) = mlayer(x[1:, :5])
    torch.testing.assert_close(out[1, :5], short[0])
    torch.testing.assert_close(C[0, 1], C5[0, 0])
    assert out[1, 5:].abs().max() == 0


def test_slstm_extreme_input_gate_gives_no_nan():
    """float32, i~ = -120 at the first step: exp(i~ - log f) underflows, yet h_1 = o_1 tanh(z_1)."""
    layer = SLSTM(3, 4)
    with torch.no_grad():
        layer.bias_l0[:4] = -120.0
    x = torch.randn(5, 2, 3)
    out, _ = layer(x)
    assert torch.isfinite(out).all()
    _, _, z, o = nn.functional.linear(x[0], layer.weight_ih_l0, layer.bias_l0).chunk(4, dim=-1)
    torch.testing.assert_close(out[0], torch.sigmoid(o) * torch.tanh(z))
    out.sum().backward()
    assert torch.isfinite(layer.weight_ih_l0.grad).all()


# ---------------------------------------------------------------- mLSTM: parallel == recurrent
def _qkv(cell, params, x):
    """The cell's own projections, arranged (B, heads, T, ...) for the parallel form."""
    q, k, v, i_pre, f_pre, *o = cell.split(cell.project(params, x))  # (T, B, heads, d), (T, B, heads)
    return [t.permute(1, 2, 0, 3) for t in (q, k, v)] + [t.permute(1, 2, 0) for t in (i_pre, f_pre)] + o


@pytest.mark.parametrize("heads,T", [(1, 1), (1, 9), (2, 5), (4, 16), (3, 33)])
@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_mlstm_parallel_equals_recurrent(heads, T, forget_gate):
    layer = MLSTM(5, 4 * heads, num_heads=heads, forget_gate=forget_gate, output_gate=False, dtype=F64)
    with torch.no_grad():  # large gate pre-activations exercise the stabilizer
        layer.bias_l0[-2 * heads :] = torch.linspace(-6.0, 6.0, 2 * heads, dtype=F64)
    x = 2 * torch.randn(T, 3, 5, dtype=F64)
    out, _ = layer(x)
    q, k, v, i_pre, f_pre = _qkv(layer.cells[0], layer.cell_parameters(0), x)
    par = mlstm_parallel(q, k, v, i_pre, f_pre, forget_gate=forget_gate)  # (B, heads, T, d)
    torch.testing.assert_close(par.permute(2, 0, 1, 3).reshape(T, 3, -1), out, rtol=1e-10, atol=1e-12)


def test_mlstm_parallel_gradients_equal_recurrent():
    layer = MLSTM(4, 6, num_heads=2, output_gate=False, dtype=F64)
    x = torch.randn(8, 2, 4, dtype=F64)
    out, _ = layer(x)
    g_rec = torch.autograd.grad(out.square().sum(), layer.weight_ih_l0)[0]
    par = mlstm_parallel(*_qkv(layer.cells[0], layer.cell_parameters(0), x))
    g_par = torch.autograd.grad(par.square().sum(), layer.weight_ih_l0)[0]
    torch.testing.assert_close(g_par, g_rec, rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------- the authors' reference functions
def _xlstm_reference():
    return pytest.importorskip("xlstm", reason="the xlstm package (the authors' reference code) is not installed")


@pytest.mark.parametrize("heads", [1, 2])
def test_slstm_equals_xlstm_package(heads):
    _xlstm_reference()
    from xlstm.blocks.slstm.src.vanilla import slstm_forward, slstm_pointwise_function_registry

    layer = SLSTM(3, 8, num_heads=heads, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    out, _ = layer(x)
    wx = nn.functional.linear(x, layer.weight_ih_l0)  # (T, B, 4H), gates i, f, z, o
    states = torch.zeros(4, 2, 8, dtype=F64)
    all_states, _, _ = slstm_forward(
        wx, states, layer.weight_hh_l0, layer.bias_l0, slstm_pointwise_function_registry["slstm"]
    )
    torch.testing.assert_close(all_states[0, 1:], out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("heads", [1, 2])
def test_mlstm_equals_xlstm_package(heads):
    _xlstm_reference()
    from xlstm.blocks.mlstm.backends import parallel_stabilized_simple

    layer = MLSTM(5, 4 * heads, num_heads=heads, output_gate=False, dtype=F64)
    x = torch.randn(7, 2, 5, dtype=F64)
    out, _ = layer(x)
    q, k, v, i_pre, f_pre = _qkv(layer.cells[0], layer.cell_parameters(0), x)
    # the reference scales k by 1/sqrt(d) itself; ours is the paper's k_t, already scaled
    ref = parallel_stabilized_simple(q, k * math.sqrt(4), v, i_pre[..., None], f_pre[..., None], eps=0.0)
    torch.testing.assert_close(ref.permute(2, 0, 1, 3).reshape(7, 2, -1), out, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- gradcheck
def _gradcheck_module(module, x):
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def f(x, *ps):
        out = functional_call(module, dict(zip(names, ps)), (x,))
        return out[0] if isinstance(out, tuple) else out

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), *params))


def test_gradcheck_slstm():
    _gradcheck_module(SLSTM(2, 4, num_heads=2, dtype=F64), torch.randn(4, 2, 2, dtype=F64))


def test_gradcheck_mlstm():
    _gradcheck_module(MLSTM(2, 4, num_heads=2, dtype=F64), torch.randn(4, 2, 2, dtype=F64))


def test_gradcheck_mlstm_parallel():
    q, k, v = torch.randn(3, 1, 2, 5, 2, dtype=F64).unbind(0)
    gates = torch.randn(2, 1, 2, 5, dtype=F64).unbind(0)
    inputs = tuple(t.requires_grad_() for t in (q, k, v, *gates))
    assert torch.autograd.gradcheck(mlstm_parallel, inputs)


@pytest.mark.parametrize("block", [mLSTMBlock, sLSTMBlock])
def test_gradcheck_block(block):
    _gradcheck_module(block(4, num_heads=2, conv_kernel=2).to(F64), torch.randn(2, 3, 4, dtype=F64))


# ---------------------------------------------------------------- blocks
def test_blocks_are_causal_and_stack():
    stack = xLSTMStack(8, blocks="msm", num_heads=2).to(F64)
    x = torch.randn(2, 7, 8, dtype=F64)
    y = stack(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 3, 8, dtype=F64)
    torch.testing.assert_close(stack(x2)[:, :4], y[:, :4])  # steps < 4 do not see the future
    assert [type(b).__name__ for b in stack.blocks] == ["mLSTMBlock", "sLSTMBlock", "mLSTMBlock"]
    assert sLSTMBlock(8, num_heads=2, conv_kernel=0)(torch.randn(1, 3, 8)).shape == (1, 3, 8)


def test_causal_conv():
    conv = CausalConv1d(3, 2)
    x = torch.randn(1, 5, 3)
    w, b = conv.conv.weight[:, 0], conv.conv.bias  # (C, K)
    expected = x[0, 2] * w[:, 1] + x[0, 1] * w[:, 0] + b
    torch.testing.assert_close(conv(x)[0, 2], expected)
    torch.testing.assert_close(conv(x)[0, 0], x[0, 0] * w[:, 1] + b)


# ---------------------------------------------------------------- learning
def test_slstm_learns_parity_and_generalises_to_longer_strings():
    """Prefix parity: trained on strings of 2-10 bits, tested on 20 and 40 bits."""

    def batch(n, T):
        bits = torch.randint(0, 2, (n, T))
        return nn.functional.one_hot(bits, 2).float(), bits.cumsum(1) % 2

    rnn = SLSTM(2, 8, batch_first=True)
    head = nn.Linear(8, 2)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.02)
    for _ in range(300):
        x, y = batch(64, int(torch.randint(2, 11, ())))
        loss = nn.functional.cross_entropy(head(rnn(x)[0]).reshape(-1, 2), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for T in (20, 40):
            x, y = batch(256, T)
            acc = (head(rnn(x)[0]).argmax(-1) == y).float().mean()
            assert acc > 0.95, (T, acc)


def test_mlstm_learns_associative_recall():
    """Four (key, value) pairs, each presented in one step, then a key: answer its value."""
    K, V, P = 8, 8, 4

    def batch(n):
        keys = torch.argsort(torch.rand(n, K), dim=1)[:, :P]
        vals = torch.randint(0, V, (n, P))
        x = torch.zeros(n, P + 1, K + V)
        x[:, :P, :K] = nn.functional.one_hot(keys, K).float()
        x[:, :P, K:] = nn.functional.one_hot(vals, V).float()
        pick = torch.randint(0, P, (n,))
        x[:, P, :K] = nn.functional.one_hot(keys[torch.arange(n), pick], K).float()
        return x, vals[torch.arange(n), pick]

    rnn = MLSTM(K + V, 16, batch_first=True)
    head = nn.Linear(16, V)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.02)
    for _ in range(300):
        x, y = batch(64)
        loss = nn.functional.cross_entropy(head(rnn(x)[0][:, -1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = batch(512)
        acc = (head(rnn(x)[0][:, -1]).argmax(-1) == y).float().mean()
    assert acc > 0.9, acc


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: SLSTMStep(3, 6, num_heads=4), "num_heads: expected a divisor of hidden_size=6, got 4"),
        (lambda: SLSTMStep(3, 6, num_heads=0), "num_heads: expected an integer >= 1, got 0"),
        (lambda: SLSTMStep(3, 6, forget_gate="tanh"), "forget_gate: expected one of ['sigmoid', 'exp'], got 'tanh'"),
        (lambda: MLSTMStep(0, 6), "input_size: expected an integer >= 1, got 0"),
        (lambda: MLSTMStep(3, 6, output_gate=1), "output_gate: expected True or False, got 1"),
        (lambda: SLSTM(3, 4, init="glorot"), "init: expected one of ['pytorch', 'keras'], got 'glorot'"),
        (lambda: xLSTMStack(8, blocks="mx"), "blocks: expected a non-empty string of 'm' and 's', got 'mx'"),
        (lambda: mLSTMBlock(8, conv_kernel=0), "conv_kernel: expected an integer >= 1, got 0"),
        (lambda: sLSTMBlock(8, proj_factor=-1), "proj_factor: expected a positive number, got -1"),
    ],
)
def test_constructor_errors(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value) == message


def test_runtime_errors():
    with pytest.raises(ValueError, match=r"recurrent_dropout: .* feeds back no state"):
        from carousel.runner import RecurrentLayer

        RecurrentLayer(lambda k, n: MLSTMStep(n, 4), 3, recurrent_dropout=0.1)
    with pytest.raises(ValueError, match=r"hx\[0\] \(C_0\): expected shape \(1, 2, 16\)"):
        MLSTM(3, 4)(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.zeros(1, 2, 1)))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, time, 8\), got \(2, 5, 7\)"):
        xLSTMStack(8, blocks="s", num_heads=2)(torch.randn(2, 5, 7))
    with pytest.raises(TypeError, match="x: expected a Tensor"):
        mLSTMBlock(8, num_heads=2)([1.0])
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match=r"i_pre: expected shape \(1, 1, 4\) \(B, heads, T\), got shape \(1, 4\)"):
        mlstm_parallel(q, q, q, torch.randn(1, 4), torch.randn(1, 1, 4))
    with pytest.raises(ValueError, match=r"q: expected a \(B, heads, T, d\) tensor, got shape \(4, 2\)"):
        mlstm_parallel(q[0, 0], q, q, torch.randn(1, 1, 4), torch.randn(1, 1, 4))
