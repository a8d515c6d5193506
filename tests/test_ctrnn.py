"""CTRNN and MTRNN: the papers' equations written unit by unit, gradcheck, learning a periodic
pattern and the error messages."""

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.ctrnn import CTRNN as CTRNNCell
from carousel.cells.ctrnn import MTRNN as MTRNNCell
from carousel.nn.ctrnn import CTRNN, MTRNN

F64 = torch.float64


def ctrnn_loop(x, W_in, W, theta, b, tau, dt, y, act=torch.sigmoid):
    """Beer (1995): tau_i dy_i/dt = -y_i + sum_j w_ji sigma(y_j + theta_j) + I_i, forward Euler,
    I_i = sum_k W_in[i, k] x_k + b_i, neuron by neuron."""
    H = W.shape[0]
    outs = []
    for t in range(x.shape[0]):
        new = []
        for i in range(H):
            I_i = x[t] @ W_in[i] + b[i]
            syn = sum(W[i, j] * act(y[:, j] + theta[j]) for j in range(H))
            dydt = (-y[:, i] + syn + I_i) / tau[i]
            new.append(y[:, i] + dt * dydt)
        y = torch.stack(new, dim=1)
        outs.append(y)
    return torch.stack(outs), y


def _ctrnn_params(layer, k=0, d=0):
    p = {n: v.detach() for n, v in layer.cell_parameters(k, d).items()}
    cell = layer.cells[k]
    tau = p["log_tau"].exp().clamp(min=cell.dt) if cell.learn_tau else torch.tensor(cell.tau, dtype=F64)
    return p["weight_ih"], p["weight_hh"], p["theta"], p["bias_ih"], tau, cell.dt


def mtrnn_loop(x, p, taus, u, out="softmax", act=torch.sigmoid):
    """Yamashita & Tani (2008): u_i,t = (1 - 1/tau_i) u_i,t-1 + (1/tau_i)(sum_j w_ij a_j + b_i) over
    all units at once, with one full weight matrix over (output, fast, slow) whose output-slow blocks
    are zero; the context units read the previous activations, the output units the new fast ones."""
    u_o, u_f, u_s = u
    n_o, n_f, n_s = u_o.shape[1], u_f.shape[1], u_s.shape[1]
    N = n_o + n_f + n_s
    W = torch.zeros(N, N, dtype=x.dtype)
    fo, so = slice(n_o, n_o + n_f), slice(n_o + n_f, N)
    W[fo, fo], W[fo, so], W[so, fo], W[so, so] = p["weight_ff"], p["weight_fs"], p["weight_sf"], p["weight_ss"]
    W[:n_o, fo] = p["weight_of"]
    b = torch.cat([p["bias_o"], p["bias_f"], p["bias_s"]])
    tau = torch.tensor([taus[0]] * n_o + [taus[1]] * n_f + [taus[2]] * n_s, dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        a = act(torch.cat([u_o, u_f, u_s], 1))
        ext = torch.cat([torch.zeros_like(u_o), x[t] @ p["weight_fi"].T, torch.zeros_like(u_s)], 1)
        u_all = torch.cat([u_o, u_f, u_s], 1)
        new = (1 - 1 / tau) * u_all + (1 / tau) * (a @ W.T + ext + b)
        u_f, u_s = new[:, fo], new[:, so]
        # output units: input from the fast units just updated
        u_o = (1 - 1 / taus[0]) * u_o + (1 / taus[0]) * (act(u_f) @ p["weight_of"].T + p["bias_o"])
        y = torch.softmax(u_o, 1) if out == "softmax" else torch.tanh(u_o)
        outs.append(y)
    return torch.stack(outs), (u_o, u_f, u_s)


# ---------------------------------------------------------------- equations
@pytest.mark.parametrize("learn_tau", [False, True])
def test_ctrnn_against_equations(learn_tau):
    taus = (1.0, 2.0, 4.0, 8.0)
    layer = CTRNN(3, 4, dt=0.5, tau=taus, learn_tau=learn_tau, dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    y0 = torch.randn(1, 2, 4, dtype=F64)
    out, y = layer(x, y0)
    ref_out, ref_y = ctrnn_loop(x, *_ctrnn_params(layer), y0[0])
    assert torch.allclose(out, ref_out, atol=1e-12) and torch.allclose(y[0], ref_y, atol=1e-12)
    assert [n for n, _ in layer.named_parameters()] == (
        ["weight_ih_l0", "weight_hh_l0", "theta_l0", "bias_ih_l0"] + (["log_tau_l0"] if learn_tau else [])
    )


def test_ctrnn_learned_tau_never_below_dt():
    layer = CTRNN(2, 3, dt=0.5, tau=1.0, learn_tau=True, dtype=F64)
    with torch.no_grad():
        layer.log_tau_l0.fill_(math.log(0.1))  # tau = 0.1 < dt: the step uses tau = dt
    x = torch.randn(4, 2, 2, dtype=F64)
    W_in, W, theta, b, _, dt = _ctrnn_params(layer)
    ref, _ = ctrnn_loop(x, W_in, W, theta, b, torch.full((3,), 0.5, dtype=F64), dt, torch.zeros(2, 3, dtype=F64))
    assert torch.allclose(layer(x)[0], ref, atol=1e-12)


def test_ctrnn_two_bidirectional_layers_with_lengths():
    layer = CTRNN(3, 4, num_layers=2, bidirectional=True, batch_first=True, dt=0.25, tau=(1, 2, 3, 4), dtype=F64)
    x = torch.randn(2, 6, 3, dtype=F64)
    lengths = torch.tensor([6, 3])
    out, y = layer(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_pk, y_pk = layer(packed)
    assert torch.allclose(pad_packed_sequence(out_pk, batch_first=True)[0], out, atol=1e-12)
    assert torch.allclose(y_pk, y, atol=1e-12)
    for b, n in enumerate(lengths.tolist()):
        seq = x[b : b + 1, :n].transpose(0, 1)
        z = torch.zeros(1, 4, dtype=F64)
        f, yf = ctrnn_loop(seq, *_ctrnn_params(layer, 0, 0), z)
        r, yr = ctrnn_loop(seq.flip(0), *_ctrnn_params(layer, 0, 1), z)
        mid = torch.cat([f, r.flip(0)], -1)
        f1, yf1 = ctrnn_loop(mid, *_ctrnn_params(layer, 1, 0), z)
        r1, yr1 = ctrnn_loop(mid.flip(0), *_ctrnn_params(layer, 1, 1), z)
        assert torch.allclose(out[b, :n], torch.cat([f1, r1.flip(0)], -1)[:, 0], atol=1e-12)
        assert torch.all(out[b, n:] == 0)
        assert torch.allclose(y[:, b], torch.cat([yf, yr, yf1, yr1]), atol=1e-12)


@pytest.mark.parametrize("out", ["softmax", "tanh"])
def test_mtrnn_against_equations(out):
    layer = MTRNN(3, 3, fast_size=5, slow_size=2, output_activation=out, dtype=F64)
    x = torch.randn(9, 2, 3, dtype=F64)
    u0 = tuple(torch.randn(1, 2, n, dtype=F64) for n in (3, 5, 2))
    y, (u_o, u_f, u_s) = layer(x, u0)
    p = {n: v.detach() for n, v in layer.cell_parameters(0).items()}
    ref, (r_o, r_f, r_s) = mtrnn_loop(x, p, (2.0, 5.0, 70.0), tuple(u[0] for u in u0), out)
    assert torch.allclose(y, ref, atol=1e-12)
    assert torch.allclose(u_o[0], r_o) and torch.allclose(u_f[0], r_f) and torch.allclose(u_s[0], r_s)
    if out == "softmax":
        assert torch.allclose(y.sum(-1), torch.ones(9, 2, dtype=F64))


def test_mtrnn_connectivity_and_timescales():
    layer = MTRNN(2, 2, fast_size=4, slow_size=3)
    names = [n for n, _ in layer.named_parameters()]
    assert not any(n.startswith(("weight_os", "weight_so", "weight_si", "weight_is")) for n in names)
    assert layer.cells[0].state_sizes == (2, 4, 3)
    # the slow units move 1/70 of the way per step: with no input, far less than the fast ones
    x = torch.zeros(1, 1, 2)
    u0 = (torch.zeros(1, 1, 2), torch.full((1, 1, 4), 5.0), torch.full((1, 1, 3), 5.0))
    with torch.no_grad():
        _, (_, u_f, u_s) = layer(x, u0)
    assert float((u_s - 5.0).abs().max()) < float((u_f - 5.0).abs().min().detach())


def test_mtrnn_bidirectional_with_lengths_matches_packed():
    layer = MTRNN(3, 2, 4, 2, num_layers=2, bidirectional=True, output_activation="tanh", dtype=F64)
    x = torch.randn(6, 3, 3, dtype=F64)
    lengths = torch.tensor([6, 2, 4])
    out, state = layer(x, lengths=lengths)
    out_pk, state_pk = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
    assert torch.allclose(pad_packed_sequence(out_pk)[0], out, atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(state, state_pk))
    assert out.shape == (6, 3, 4) and torch.all(out[2:, 1] == 0)
    # the backward direction of the first layer against the equations, on one sequence
    p = {n: v.detach() for n, v in layer.cell_parameters(0, 1).items()}
    zeros = tuple(torch.zeros(1, n, dtype=F64) for n in (2, 4, 2))
    _, (r_o, r_f, r_s) = mtrnn_loop(x[:4, 2:3].flip(0), p, (2.0, 5.0, 70.0), zeros, "tanh")
    assert torch.allclose(state[0][1, 2], r_o[0], atol=1e-12)
    assert torch.allclose(state[1][1, 2], r_f[0], atol=1e-12)
    assert torch.allclose(state[2][1, 2], r_s[0], atol=1e-12)


# ---------------------------------------------------------------- gradcheck
def _gradcheck(layer, x, hx, **kw):
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(x, *ps):
        torch.manual_seed(1)
        out, state = functional_call(layer, dict(zip(names, ps)), (x, hx), kw)
        return (out, *state) if isinstance(state, tuple) else (out, state)

    return torch.autograd.gradcheck(f, (x, *params), fast_mode=True)


@pytest.mark.parametrize(
    "kw",
    [dict(learn_tau=True), dict(num_layers=2, bidirectional=True), dict(zoneout=0.3, nonlinearity="tanh")],
    ids=["learn_tau", "2x_bidirectional", "zoneout"],
)
def test_ctrnn_gradcheck(kw):
    layer = CTRNN(3, 4, dt=0.5, tau=(1.0, 1.5, 2.0, 3.0), dtype=F64, **kw)
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    assert _gradcheck(layer, x, torch.randn(n, 2, 4, dtype=F64), lengths=torch.tensor([5, 3]))


@pytest.mark.parametrize("out", ["softmax", "tanh"])
def test_mtrnn_gradcheck(out):
    layer = MTRNN(3, 3, 4, 2, output_activation=out, tau_slow=10.0, dtype=F64)
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    hx = tuple(torch.randn(1, 2, n, dtype=F64) for n in (3, 4, 2))
    assert _gradcheck(layer, x, hx, lengths=torch.tensor([5, 2]))


# ---------------------------------------------------------------- learning a periodic pattern
def test_ctrnn_learns_a_sine_generator_from_a_constant_input():
    """A CTRNN started at rest and driven by a constant input learns to oscillate: produce
    sin(2 pi t / 20) for 40 steps (two periods)."""
    torch.manual_seed(0)
    steps = 40
    target = torch.sin(2 * math.pi * torch.arange(1, steps + 1) / 20).view(steps, 1, 1)
    rnn = CTRNN(1, 16, dt=0.5, tau=1.0, learn_tau=True, nonlinearity="tanh")
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.03)
    x = torch.ones(steps, 1, 1)
    for _ in range(150):
        loss = torch.mean((head(rnn(x)[0]) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01  # the mean of sin^2 is 0.5


def test_mtrnn_learns_to_predict_a_periodic_sequence():
    """Closed to its next value: from x_1 .. x_t of a sum of two sines, predict x_{t+1}."""
    torch.manual_seed(0)
    t = torch.arange(0, 31, dtype=torch.float32)
    phase = torch.rand(8) * 2 * math.pi
    series = 0.5 * torch.sin(2 * math.pi * t[:, None] / 12 + phase) + 0.3 * torch.sin(2 * math.pi * t[:, None] / 5)
    x, target = series[:-1, :, None], series[1:, :, None]
    net = MTRNN(1, 1, 16, 4, output_activation="identity", nonlinearity="tanh", tau_io=1.0, tau_fast=2.0, tau_slow=10.0)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        loss = torch.mean((net(x)[0][10:] - target[10:]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * target[10:].var().item()


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(dt=0.0), r"dt: expected a finite number > 0, got 0.0"),
        (dict(tau=(1.0, 2.0)), r"tau: expected a number > 0 or 4 numbers > 0 \(one per unit\), got \(1.0, 2.0\)"),
        (dict(tau=-1.0), r"tau: expected a finite number > 0, got -1.0"),
        (dict(nonlinearity="nope"), r"nonlinearity"),
        (dict(init="xavier"), r"init: expected one of \['pytorch', 'keras'\], got 'xavier'"),
    ],
)
def test_ctrnn_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        CTRNN(3, 4, **kw)


def test_ctrnn_refuses_recurrent_dropout():
    with pytest.raises(ValueError, match=r"recurrent_dropout: .* got recurrent_dropout=0.2"):
        from carousel.runner import RecurrentLayer

        RecurrentLayer(lambda k, n: CTRNNCell(n, 4), 3, recurrent_dropout=0.2)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(tau_slow=0.5), r"tau_slow: expected a finite number >= 1, got 0.5"),
        (dict(output_activation="relu"), r"output_activation: expected one of \['softmax', 'tanh', 'sigmoid', "),
        (dict(fast_size=0), r"fast_size: expected an integer >= 1, got 0"),
    ],
)
def test_mtrnn_errors(kw, match):
    args = dict(input_size=2, output_size=2, fast_size=4, slow_size=2) | kw
    with pytest.raises(ValueError, match=match):
        MTRNN(**args)


def test_mtrnn_state_shape_error_and_repr():
    net = MTRNN(2, 2, 4, 3)
    with pytest.raises(ValueError, match=r"hx\[2\] \(u_s_0\): expected shape \(1, 5, 3\)"):
        net(torch.randn(6, 5, 2), (torch.zeros(1, 5, 2), torch.zeros(1, 5, 4), torch.zeros(1, 5, 4)))
    assert repr(MTRNNCell(2, 2, 4, 3)) == "MTRNN(2, 2, fast_size=4, slow_size=3, tau=(2, 5, 70))"
    assert repr(CTRNNCell(2, 3, dt=0.1, learn_tau=True)) == "CTRNN(2, 3, dt=0.1, tau=1, learn_tau=True)"
