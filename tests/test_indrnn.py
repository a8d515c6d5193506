"""IndRNN and the residual IndRNN: the paper's equations, gradcheck, the recurrent-weight
constraint under training, the adding problem (short version) and the error messages."""

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.indrnn import IndRNN as IndRNNCell
from carousel.cells.indrnn import recurrent_bound
from carousel.datasets import adding_problem
from carousel.nn.indrnn import IndRNN, ResIndRNN

F64 = torch.float64
BASELINE = 1 / 6  # MSE of always answering the mean sum, 1


def indrnn_loop(x, W, u, b, h, act=torch.relu, bound=None):
    """Li et al. (2018), eq. (2): h_t = sigma(W x_t + u (.) h_{t-1} + b), unit by unit, with the
    recurrent weights clipped to [-U, U]."""
    if bound is not None:
        u = torch.clamp(u, -bound, bound)
    outs = []
    for t in range(x.shape[0]):
        h = torch.stack([act(x[t] @ W[n] + u[n] * h[:, n] + b[n]) for n in range(W.shape[0])], dim=1)
        outs.append(h)
    return torch.stack(outs), h


def _p(layer, k=0, d=0):
    p = {n: v.detach() for n, v in layer.cell_parameters(k, d).items()}
    return p["weight_ih"], p["weight_hh"], p["bias_ih"]


# ---------------------------------------------------------------- equations
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_cell_against_equations(nonlinearity):
    layer = IndRNN(3, 5, nonlinearity=nonlinearity, dtype=F64)
    x = torch.randn(8, 2, 3, dtype=F64)
    h0 = torch.randn(1, 2, 5, dtype=F64)
    out, h = layer(x, h0)
    act = torch.relu if nonlinearity == "relu" else torch.tanh
    ref_out, ref_h = indrnn_loop(x, *_p(layer), h0[0], act)
    assert isinstance(h, torch.Tensor) and h.shape == (1, 2, 5)
    assert torch.allclose(out, ref_out, atol=1e-12) and torch.allclose(h[0], ref_h, atol=1e-12)


def test_step_uses_the_clipped_recurrent_weight():
    bound = recurrent_bound(20)
    layer = IndRNN(3, 4, recurrent_max=bound, dtype=F64).eval()  # eval: the stored u is left alone
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.tensor([1.5, -2.0, 0.5, 1.0], dtype=F64))
    x = torch.randn(6, 2, 3, dtype=F64)
    h0 = torch.rand(1, 2, 4, dtype=F64)
    out, _ = layer(x, h0)
    ref, _ = indrnn_loop(x, *_p(layer), h0[0], bound=bound)
    assert torch.allclose(out, ref, atol=1e-12)
    assert float(layer.weight_hh_l0.detach()[0]) == 1.5  # not modified in eval mode


def test_two_bidirectional_layers_with_lengths_against_equations():
    layer = IndRNN(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=F64)
    x = torch.randn(2, 6, 3, dtype=F64)
    lengths = torch.tensor([6, 3])
    out, h = layer(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_pk, h_pk = layer(packed)
    assert torch.allclose(pad_packed_sequence(out_pk, batch_first=True)[0], out[:, :6], atol=1e-12)
    assert torch.allclose(h_pk, h, atol=1e-12)
    for b, n in enumerate(lengths.tolist()):
        seq = x[b : b + 1, :n].transpose(0, 1)
        z = torch.zeros(1, 4, dtype=F64)
        f, hf = indrnn_loop(seq, *_p(layer, 0, 0), z)
        r, hr = indrnn_loop(seq.flip(0), *_p(layer, 0, 1), z)
        mid = torch.cat([f, r.flip(0)], -1)
        f1, hf1 = indrnn_loop(mid, *_p(layer, 1, 0), z)
        r1, hr1 = indrnn_loop(mid.flip(0), *_p(layer, 1, 1), z)
        assert torch.allclose(out[b, :n], torch.cat([f1, r1.flip(0)], -1)[:, 0], atol=1e-12)
        assert torch.all(out[b, n:] == 0)
        assert torch.allclose(h[:, b], torch.cat([hf, hr, hf1, hr1]), atol=1e-12)


def test_parameters_and_initialisation():
    bound = recurrent_bound(10, gamma=2.0)
    layer = IndRNN(3, 64, num_layers=2, recurrent_max=bound, last_layer_recurrent_init=(0.9, 1.5))
    assert [n for n, _ in layer.named_parameters()] == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "weight_ih_l1",
        "weight_hh_l1",
        "bias_ih_l1",
    ]
    assert layer.weight_hh_l0.shape == (64,)
    u0, u1 = layer.weight_hh_l0.detach(), layer.weight_hh_l1.detach()
    assert float(u0.min()) >= 0.0 and float(u0.max()) <= 1.0  # the paper's U(0, 1)
    assert float(u1.min()) >= 0.9 and float(u1.max()) <= bound  # clipped at U = 2^(1/10)
    assert float(u1.max()) == pytest.approx(bound)
    assert recurrent_bound(1000) == pytest.approx(2 ** (1 / 1000))


# ---------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(nonlinearity="tanh", recurrent_max=0.9),
        dict(num_layers=2, bidirectional=True),
        dict(recurrent_dropout=0.3, zoneout=0.2),
    ],
    ids=["relu", "tanh_constrained", "2x_bidirectional", "dropout_zoneout"],
)
def test_gradcheck(kw):
    layer = IndRNN(3, 4, dtype=F64, recurrent_init=(-0.8, 0.8), **kw)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(n, 2, 4, dtype=F64, requires_grad=True)
    lengths = torch.tensor([5, 3])

    def f(x, h0, *ps):
        torch.manual_seed(1)
        return functional_call(layer, dict(zip(names, ps)), (x, h0), dict(lengths=lengths))

    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=layer.bidirectional)


def test_gradcheck_residual_indrnn():
    net = ResIndRNN(3, 4, num_blocks=1, dtype=F64).eval()
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in net.parameters()]
    x = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)

    def f(x, *ps):
        return functional_call(net, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), fast_mode=True)


# ---------------------------------------------------------------- the constraint under training
def test_constraint_holds_after_optimizer_steps():
    """The layer clips its stored u to [-U, U] before each training forward pass, i.e. after every
    update, as the paper does; constrain_() does it on demand."""
    torch.manual_seed(0)
    bound = recurrent_bound(30)
    layer = IndRNN(2, 8, num_layers=2, bidirectional=True, recurrent_max=bound, recurrent_init=(0.9, 1.0))
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    us = [p for n, p in layer.named_parameters() if n.startswith("weight_hh")]
    exceeded = False
    for _ in range(5):
        out, _ = layer(torch.rand(30, 4, 2))  # training mode: u is clipped first
        assert all(float(u.detach().abs().max()) <= bound for u in us)
        opt.zero_grad()
        (-out.sum()).backward()  # pushes every u upwards
        # a weight at the bound keeps its gradient, so it is free to come back
        assert all(float(u.grad.abs().sum()) > 0 for u in us)
        opt.step()
        exceeded |= any(float(u.detach().abs().max()) > bound for u in us)
    assert exceeded  # the optimizer did push past U ...
    layer.constrain_()  # ... and the projection brings the stored weights back
    assert all(float(u.detach().abs().max()) <= bound for u in us)
    assert all(float(u.detach().max()) == pytest.approx(bound) for u in us)


def test_two_forward_passes_then_one_backward():
    """Within one update nothing is out of bounds, so nothing is written between the passes."""
    layer = IndRNN(2, 4, recurrent_max=0.5)
    x = torch.rand(6, 3, 2)
    (layer(x)[0].sum() + layer(x)[0].pow(2).sum()).backward()
    assert layer.weight_hh_l0.grad is not None


def test_residual_constrain():
    net = ResIndRNN(2, 4, num_blocks=2, recurrent_max=0.5, recurrent_init=(0.0, 1.0))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("weight_hh_l0",)):
                p.fill_(3.0)
    net.constrain_()
    assert all(float(p.detach().max()) == 0.5 for n, p in net.named_parameters() if n.endswith("weight_hh_l0"))


# ---------------------------------------------------------------- residual IndRNN
def test_residual_indrnn_against_equations_in_eval_mode():
    torch.manual_seed(0)
    net = ResIndRNN(3, 5, num_blocks=2, dtype=F64)
    for m in net.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    net.eval()
    x = torch.randn(7, 2, 3, dtype=F64)
    out, h = net(x)

    def bn(v, m):
        return (v - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias

    def ind(v, layer):
        return indrnn_loop(v, *_p(layer), torch.zeros(v.shape[1], 5, dtype=F64))

    z, h_in = ind(x, net.input_layer)
    finals = [h_in]
    for bn1, l1, bn2, l2 in net.blocks:
        v, h1 = ind(bn(z, bn1), l1)
        v, h2 = ind(bn(v, bn2), l2)
        z = z + v
        finals += [h1, h2]
    assert torch.allclose(out, z, atol=1e-12)
    assert torch.allclose(h, torch.stack(finals), atol=1e-12)


def test_residual_indrnn_lengths_ignore_padding_in_batch_norm():
    torch.manual_seed(0)
    net = ResIndRNN(3, 6, num_blocks=1, batch_first=True)
    x = torch.randn(3, 8, 3)
    lengths = torch.tensor([8, 5, 2])
    out, h = net(x, lengths=lengths)
    assert out.shape == (3, 8, 6) and h.shape == (3, 3, 6)
    assert torch.all(out[1, 5:] == 0) and torch.all(out[2, 2:] == 0)
    # the padded values do not matter, in the output or in the batch statistics
    x2 = x.clone()
    x2[1, 5:] = 100.0
    x2[2, 2:] = -7.0
    out2, h2 = net(x2, mask=torch.arange(8) < lengths[:, None])
    assert torch.allclose(out, out2, atol=1e-6) and torch.allclose(h, h2, atol=1e-6)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out3, h3 = net(packed)
    assert torch.allclose(pad_packed_sequence(out3, batch_first=True)[0], out, atol=1e-6)
    assert torch.allclose(h3, h, atol=1e-6)
    plain, _ = ResIndRNN(3, 6, num_blocks=1, batch_norm=False)(x)
    assert plain.shape == (3, 8, 6)


# ---------------------------------------------------------------- learning: the adding problem
def test_learns_adding_problem_100_steps():
    """The paper's adding problem, shortened from T = 1000 to T = 100 (see
    benchmarks/indrnn_adding.py for the long version): two ReLU IndRNN layers with |u| <= 2^(1/T)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    steps = 100

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = IndRNN(2, 32, num_layers=2, batch_first=True, recurrent_max=recurrent_bound(steps))
            self.head = nn.Linear(32, 1)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_test, y_test = adding_problem(500, steps, generator=gen)
    for _ in range(500):
        x, y = adding_problem(50, steps, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(model(x_test), y_test))
    assert mse < BASELINE / 10, f"test MSE {mse:.4f}, baseline {BASELINE:.4f}"
    assert float(model.rnn.weight_hh_l0.detach().abs().max()) <= recurrent_bound(steps)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: IndRNN(3, 4, recurrent_max=-1.0), "recurrent_max: expected a finite number > 0 or None, got -1.0"),
        (lambda: IndRNN(3, 4, recurrent_max=float("inf")), "recurrent_max: expected a finite number > 0"),
        (lambda: IndRNN(3, 4, recurrent_init=(1.0, 0.0)), "recurrent_init: expected a pair (low, high)"),
        (lambda: IndRNN(3, 4, last_layer_recurrent_init=(0.5,)), "recurrent_init: expected a pair"),
        (lambda: IndRNN(3, 0), "hidden_size: expected an integer >= 1, got 0"),
        (lambda: IndRNN(3, 4, nonlinearity="step"), "nonlinearity: expected one of"),
        (lambda: IndRNN(3, 4, fast=True), "fast: True asks for a fast path"),
        (lambda: recurrent_bound(0), "steps: expected an integer >= 1, got 0"),
        (lambda: recurrent_bound(10, gamma=0.0), "gamma: expected a number > 0, got 0.0"),
        (lambda: ResIndRNN(3, 4, num_blocks=-1), "num_blocks: expected an integer >= 0, got -1"),
        (lambda: IndRNNCell(3, 4).reset_parameters({}, "normal"), "init: expected one of"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_residual_bad_inputs():
    net = ResIndRNN(3, 4, num_blocks=1)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 2"):
        net(torch.randn(5, 2, 2))
    with pytest.raises(ValueError, match=r"input: expected a 3-D tensor \(time, batch, features\), got 2-D"):
        net(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"hx: expected shape \(3, 2, 4\)"):
        net(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="lengths: expected lengths= or mask=, got both"):
        net(torch.randn(5, 2, 3), lengths=[5, 3], mask=torch.ones(5, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="input: expected a Tensor or PackedSequence, got str"):
        net("x")
