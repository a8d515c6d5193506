"""The GRU family: torch.nn.GRU / GRUCell equivalence (vendor op and reference loop), every variant
against the papers' equations, gradcheck, learning the adding problem, and error messages."""

import itertools

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.gru import GRU as GRUStep
from carousel.cells.gru import MUT as MUTStep
from carousel.datasets import adding_problem
from carousel.nn.gru import GRU, MUT1, MUT2, MUT3, GRUCell
from tests import gru_equations

F64 = torch.float64
GRID = list(itertools.product([1, 2], [False, True], [False, True]))
VARIANTS = ("standard", "MGU", "GRU1", "GRU2", "GRU3")
MUTS = {1: MUT1, 2: MUT2, 3: MUT3}


def pair(num_layers, bidirectional, batch_first, fast, **kw):
    ref = torch.nn.GRU(4, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional, dtype=F64, **kw)
    ours = GRU(4, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional, dtype=F64, fast=fast, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters()}


def assert_same(a, b, exact):
    if exact:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------- torch.nn.GRU equivalence
@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("layers,bidir,batch_first", GRID)
def test_padded_equals_torch(layers, bidir, batch_first, fast):
    ref, ours = pair(layers, bidir, batch_first, fast)
    assert ours.implementation == ("vendor" if fast == "auto" else "reference")
    x = torch.randn((3, 6, 4) if batch_first else (6, 3, 4), dtype=F64)
    h0 = torch.randn(layers * (2 if bidir else 1), 3, 5, dtype=F64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    h1, h2 = h0.clone().requires_grad_(), h0.clone().requires_grad_()
    out_r, hn_r = ref(x1, h1)
    out_o, hn_o = ours(x2, h2)
    assert isinstance(hn_o, torch.Tensor)
    exact = fast == "auto"
    assert_same(out_o, out_r, exact)
    assert_same(hn_o, hn_r, exact)
    (out_r.sum() + hn_r.square().sum()).backward()
    (out_o.sum() + hn_o.square().sum()).backward()
    assert_same(x2.grad, x1.grad, exact)
    assert_same(h2.grad, h1.grad, exact)
    gr, go = grads(ref), grads(ours)
    assert gr.keys() == go.keys()
    for n in gr:
        assert_same(go[n], gr[n], exact)


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("layers,bidir,batch_first", GRID)
def test_packed_and_lengths_equal_torch(layers, bidir, batch_first, fast):
    ref, ours = pair(layers, bidir, batch_first, fast)
    lengths = torch.tensor([4, 7, 2, 7, 5])
    x = torch.randn((5, 7, 4) if batch_first else (7, 5, 4), dtype=F64)
    h0 = torch.randn(layers * (2 if bidir else 1), 5, 5, dtype=F64)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out_r, h_r = ref(packed, h0)
    out_p, h_p = ours(packed, h0)
    exact = fast == "auto"
    assert torch.equal(out_p.batch_sizes, out_r.batch_sizes)
    assert torch.equal(out_p.sorted_indices, out_r.sorted_indices)
    assert_same(out_p.data, out_r.data, exact)
    assert_same(h_p, h_r, exact)
    padded_r, _ = pad_packed_sequence(out_r, batch_first=batch_first, total_length=7)
    out_l, h_l = ours(x, h0, lengths=lengths)
    assert_same(out_l, padded_r, exact)
    assert_same(h_l, h_r, exact)
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    out_m, _ = ours(x, h0, mask=mask if batch_first else mask.t())
    assert_same(out_m, padded_r, exact)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    o_r, hr = ref(pack_padded_sequence(xr, lengths, batch_first=batch_first, enforce_sorted=False), h0)
    o_o, ho = ours(xo, h0, lengths=lengths)
    (pad_packed_sequence(o_r, batch_first=batch_first, total_length=7)[0].sum() + hr.sum()).backward()
    (o_o.sum() + ho.sum()).backward()
    assert_same(xo.grad, xr.grad, exact)
    for n, g in grads(ref).items():
        assert_same(grads(ours)[n], g, exact)


@pytest.mark.parametrize("fast", ["auto", False])
def test_unbatched_and_default_state(fast):
    ref, ours = pair(2, True, False, fast)
    x = torch.randn(6, 4, dtype=F64)
    out_r, h_r = ref(x)
    out_o, h_o = ours(x)
    assert out_o.shape == (6, 10) and h_o.shape == (4, 5)
    torch.testing.assert_close(out_o, out_r)
    torch.testing.assert_close(h_o, h_r)
    h0 = torch.randn(4, 5, dtype=F64)
    torch.testing.assert_close(ours(x, h0)[0], ref(x, h0)[0])


def test_parameter_names_layout_and_pytorch_init_match_torch():
    for kw in ({}, {"num_layers": 3, "bidirectional": True}, {"bias": False}):
        torch.manual_seed(1)
        ref = torch.nn.GRU(4, 5, **kw)
        torch.manual_seed(1)
        ours = GRU(4, 5, **kw)
        assert [(n, p.shape) for n, p in ref.named_parameters()] == [(n, p.shape) for n, p in ours.named_parameters()]
        for (n, p), (_, q) in zip(ref.named_parameters(), ours.named_parameters()):
            assert torch.equal(p, q), n


@pytest.mark.parametrize("fast", ["auto", False])
def test_no_bias_equals_torch(fast):
    ref, ours = pair(2, True, False, fast, bias=False)
    x = torch.randn(5, 3, 4, dtype=F64)
    for a, b in zip(ref(x), ours(x)):
        torch.testing.assert_close(b, a)


def test_dropout_between_layers_matches_torch_on_vendor_path():
    ref, ours = pair(2, False, False, "auto", dropout=0.5)
    x = torch.randn(5, 3, 4, dtype=F64)
    torch.manual_seed(3)
    a = ref(x)[0]
    torch.manual_seed(3)
    b = ours(x)[0]
    assert torch.equal(a, b)
    ref.eval()
    ours.eval()
    assert torch.equal(ref(x)[0], ours(x)[0])


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_equals_torch(fast, bias):
    ref = torch.nn.GRUCell(4, 5, bias=bias, dtype=F64)
    ours = GRUCell(4, 5, bias=bias, dtype=F64, fast=fast)
    assert ours.implementation == ("vendor" if fast == "auto" else "reference")
    assert [n for n, _ in ref.named_parameters()] == [n for n, _ in ours.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, dtype=F64)
    hx = torch.randn(3, 5, dtype=F64)
    torch.testing.assert_close(ours(x, hx), ref(x, hx))
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours(x[0], hx[0]), ref(x[0], hx[0]))
    ref(x, hx).square().sum().backward()
    ours(x, hx).square().sum().backward()
    for (n, p), (_, q) in zip(ref.named_parameters(), ours.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=n)


def test_stream_reproduces_the_layer():
    gru = GRU(3, 6, num_layers=2, variant="GRU1", dtype=F64).eval()
    stream = gru.stream()
    x = torch.randn(5, 3, dtype=F64)
    ys = torch.stack([stream.step(x_t) for x_t in x])
    torch.testing.assert_close(ys, gru(x)[0])


# ---------------------------------------------------------------- every form against its equations
EQUATION_CASES = [
    *[dict(variant=v, reset_after=ra) for v in VARIANTS for ra in (True, False)],
    *[dict(variant=v, bias=False) for v in ("standard", "MGU", "GRU1", "GRU2")],
    dict(gate_activation="hard_sigmoid", candidate_activation=lambda v: torch.nn.functional.softsign(v)),
]


@pytest.mark.parametrize("kw", EQUATION_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_gru_forms_follow_their_equations(kw):
    kw = dict(kw)
    layer = GRU(3, 4, bidirectional=True, dtype=F64, init="keras", **kw)
    with torch.no_grad():  # keras init zeroes the biases: give them values the check can see
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(6, 2, 3, dtype=F64)
    h0 = torch.randn(2, 2, 4, dtype=F64)
    out, h_n = layer(x, h0)
    sg = {"hard_sigmoid": torch.nn.functional.hardsigmoid}.get(kw.pop("gate_activation", None), torch.sigmoid)
    sc = kw.pop("candidate_activation", torch.tanh)
    kw.pop("bias", None)
    fwd, h_f = gru_equations.gru(x, layer.cell_parameters(0, 0), hidden=4, sg=sg, sc=sc, h0=h0[0], **kw)
    bwd, h_b = gru_equations.gru(x.flip(0), layer.cell_parameters(0, 1), hidden=4, sg=sg, sc=sc, h0=h0[1], **kw)
    torch.testing.assert_close(out, torch.cat([fwd, bwd.flip(0)], dim=-1))
    torch.testing.assert_close(h_n, torch.stack([h_f, h_b]))


def test_gru_parameter_shapes_per_variant():
    H, n_in = 4, 3
    expected = {
        "standard": dict(weight_ih=(3 * H, n_in), weight_hh=(3 * H, H), bias_ih=(3 * H,), bias_hh=(3 * H,)),
        "MGU": dict(weight_ih=(2 * H, n_in), weight_hh=(2 * H, H), bias_ih=(2 * H,), bias_hh=(2 * H,)),
        "GRU1": dict(weight_ih=(H, n_in), weight_hh=(3 * H, H), bias_ih=(3 * H,), bias_hh=(3 * H,)),
        "GRU2": dict(weight_ih=(H, n_in), weight_hh=(3 * H, H), bias_ih=(H,), bias_hh=(H,)),
        "GRU3": dict(weight_ih=(H, n_in), weight_hh=(H, H), bias_ih=(3 * H,), bias_hh=(H,)),
    }
    for variant, shapes in expected.items():
        assert GRUStep(n_in, H, variant=variant).parameter_shapes() == shapes


@pytest.mark.parametrize("architecture", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_mut_follows_its_equations(architecture, bias):
    layer = MUTS[architecture](4, 4, num_layers=2, bias=bias, dtype=F64)
    x = torch.randn(5, 3, 4, dtype=F64)
    h0 = torch.randn(2, 3, 4, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    out, h_n = layer(x, h0, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y = x[:n, b : b + 1]
        finals = []
        for k in range(2):
            y, h = gru_equations.mut(
                y, layer.cell_parameters(k), hidden=4, architecture=architecture, h0=h0[k, b : b + 1]
            )
            finals.append(h)
        torch.testing.assert_close(out[:n, b : b + 1], y)
        torch.testing.assert_close(out[n:, b], torch.zeros(5 - n, 4, dtype=F64))
        torch.testing.assert_close(h_n[:, b : b + 1], torch.stack(finals))


# ---------------------------------------------------------------- gradcheck
GRADCHECK = {
    "standard": {},
    "reference_loop": dict(fast=False),
    "reset_before": dict(reset_after=False),
    **{f"{v}-{ra}": dict(variant=v, reset_after=ra) for v in ("MGU", "GRU1", "GRU2", "GRU3") for ra in (True, False)},
    "activations": dict(gate_activation=lambda v: torch.sigmoid(2 * v), candidate_activation="softsign"),
    "init=keras": dict(init="keras"),
    "zoneout": dict(zoneout=0.3),
    "zoneout_eval": dict(zoneout=0.4, eval=True),
    "lengths": dict(lengths=True),
    "two_bidirectional_layers": dict(num_layers=2, bidirectional=True),
    "MUT1": dict(mut=1),
    "MUT2": dict(mut=2),
    "MUT3": dict(mut=3, num_layers=2, bidirectional=True),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradcheck(name):
    kw = dict(GRADCHECK[name])
    eval_mode = kw.pop("eval", False)
    lengths = torch.tensor([4, 2]) if kw.pop("lengths", False) else None
    arch = kw.pop("mut", None)
    if arch is None:
        layer = GRU(3, 4, dtype=F64, **kw)
    else:
        layer = MUTS[arch](4, 4, dtype=F64, **kw)
    layer.train(not eval_mode)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(4, 2, layer.input_size, dtype=F64, requires_grad=True)
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    h0 = torch.randn(n, 2, 4, dtype=F64, requires_grad=True)

    def f(x, h0, *ps):
        torch.manual_seed(1)  # the same zoneout masks on every call
        return functional_call(layer, dict(zip(names, ps)), (x, h0), dict(lengths=lengths))

    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=len(params) > 4)


# ---------------------------------------------------------------- learning
BASELINE = 1 / 6  # MSE of always answering the mean sum, 1
LEARNING = {
    "standard": {},
    "reference_loop": dict(fast=False),
    "reset_before": dict(reset_after=False),
    **{v: dict(variant=v) for v in ("MGU", "GRU1", "GRU2", "GRU3")},
    "zoneout": dict(zoneout=0.1),
    "MUT1": dict(mut=1),
    "MUT2": dict(mut=2),
    "MUT3": dict(mut=3),
}


class Model(nn.Module):
    def __init__(self, mut=None, **kw):
        super().__init__()
        # MUT1 and MUT2 add x_t to a hidden-size vector: as in the paper, embed the input first.
        self.embed = nn.Linear(2, 16) if mut in (1, 2) else nn.Identity()
        width = 16 if mut in (1, 2) else 2
        self.rnn = (
            GRU(width, 16, batch_first=True, init="keras", **kw)
            if mut is None
            else MUTS[mut](width, 16, batch_first=True, init="keras", **kw)
        )
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.rnn(self.embed(x))[0][:, -1])


@pytest.mark.parametrize("name", list(LEARNING))
def test_learns_adding_problem(name):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Model(**LEARNING[name])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_test, y_test = adding_problem(500, 10, generator=gen)
    for _ in range(400):
        x, y = adding_problem(32, 10, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(model(x_test), y_test))
    assert mse < BASELINE / 8, f"{name}: test MSE {mse:.4f}, baseline {BASELINE:.4f}"


# ---------------------------------------------------------------- options and errors
def test_keras_init():
    layer = GRU(3, 4, variant="GRU3", init="keras")
    assert torch.equal(layer.bias_ih_l0, torch.zeros(12)) and torch.equal(layer.bias_hh_l0, torch.zeros(4))
    w = layer.weight_hh_l0
    torch.testing.assert_close(w @ w.t(), torch.eye(4), atol=1e-5, rtol=0)


def test_implementations_and_refusals():
    assert GRU(3, 4, variant="MGU").implementation == "reference"
    assert "reset_after=False" in GRU(3, 4, reset_after=False).vendor_refusal
    assert "variant='GRU2'" in GRU(3, 4, variant="GRU2").vendor_refusal
    assert "gate_activation='hard_sigmoid'" in GRU(3, 4, gate_activation="hard_sigmoid").vendor_refusal
    assert GRUCell(3, 4, variant="MGU").implementation == "reference"
    with pytest.raises(ValueError, match="fast: True asks for a fast path"):
        GRU(3, 4, variant="GRU1", fast=True)
    with pytest.raises(ValueError, match="fast: True asks for a fast path"):
        MUT3(3, 4, fast=True)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: GRU(3, 4, variant="LSTM"), r"variant: expected one of \['standard', 'MGU', 'GRU1', 'GRU2', 'GRU3'\]"),
        (lambda: GRU(3, 4, reset_after="yes"), "reset_after: expected True or False, got 'yes'"),
        (lambda: GRU(3, 0), "hidden_size: expected an integer >= 1, got 0"),
        (lambda: GRU(3, 4, init="glorot"), r"init: expected one of \['pytorch', 'keras'\], got 'glorot'"),
        (lambda: GRU(3, 4, gate_activation="swish"), "gate_activation: expected one of"),
        (lambda: GRU(3, 4, candidate_activation=3), "candidate_activation: expected one of"),
        (lambda: GRU(3, 4, zoneout=1.5), r"zoneout: expected a probability in \[0, 1\), got 1.5"),
        (lambda: GRU(3, 4, fast="yes"), "fast: expected 'auto', True or False, got 'yes'"),
        (lambda: GRUCell(3, 4, variant="x"), "variant: expected one of"),
        (lambda: GRU(3, 4, variant="GRU3", bias=False), "bias: variant 'GRU3' computes its gates from the bias alone"),
        (lambda: MUT1(3, 4), r"input_size: MUT1 adds tanh\(x_t\) .* expected input_size == 4, got 3"),
        (lambda: MUT2(4, 4, num_layers=2, bidirectional=True), "input_size: MUT2 adds x_t .* got 8"),
        (lambda: MUTStep(4, 4, architecture=4), "architecture: expected 1, 2 or 3, got 4"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_and_states():
    gru = GRU(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 5"):
        gru(torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape \(2, 2, 4\)"):
        gru(torch.randn(6, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="input: expected a Tensor or PackedSequence, got list"):
        gru([1.0, 2.0])
    cell = GRUCell(3, 4)
    with pytest.raises(ValueError, match=r"hx: expected shape \(2, 4\), got \(2, 5\)"):
        cell(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="hx: expected a Tensor of shape"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4),))
    with pytest.raises(TypeError, match="hx: expected dtype torch.float32"):
        cell(torch.randn(2, 3), torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="input: expected a 2-D"):
        cell(torch.randn(1, 2, 3))


@pytest.mark.parametrize("kw", [{}, {"reset_after": False}, {"variant": "MGU"}, {"variant": "GRU2"}])
def test_recurrent_dropout_masks_the_products_only(kw):
    p = 0.3
    layer = GRU(3, 4, recurrent_dropout=p, dtype=torch.float64, **kw)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.manual_seed(5)
    out, h = layer(x)
    torch.manual_seed(5)
    mask = torch.empty(2, 4, dtype=torch.float64).bernoulli_(1 - p).div_(1 - p)  # what the runner draws
    ref, h_ref = gru_equations.gru(x, layer.cell_parameters(0, 0), hidden=4, mask=mask, **kw)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(h[0], h_ref)
    unmasked, _ = gru_equations.gru(x, layer.cell_parameters(0, 0), hidden=4, **kw)
    assert not torch.allclose(out, unmasked)  # the mask was applied
    layer.eval()  # no mask in evaluation
    torch.testing.assert_close(layer(x)[0], unmasked)


@pytest.mark.parametrize("architecture", [1, 2, 3])
def test_mut_recurrent_dropout_masks_the_products_only(architecture):
    layer = {1: MUT1, 2: MUT2, 3: MUT3}[architecture](4, 4, recurrent_dropout=0.25, dtype=torch.float64)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.manual_seed(2)
    out, _ = layer(x)
    torch.manual_seed(2)
    mask = torch.empty(3, 4, dtype=torch.float64).bernoulli_(0.75).div_(0.75)
    ref, _ = gru_equations.mut(x, layer.cell_parameters(0, 0), hidden=4, architecture=architecture, mask=mask)
    torch.testing.assert_close(out, ref)


def test_recurrent_dropout_gradcheck_and_learning():
    layer = GRU(2, 3, recurrent_dropout=0.2, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)

    def run(inp):
        torch.manual_seed(0)  # the same mask on every evaluation
        return layer(inp)[0]

    assert torch.autograd.gradcheck(run, (x,))
    torch.manual_seed(0)
    gru, head = GRU(2, 16, batch_first=True, recurrent_dropout=0.1, init="keras"), nn.Linear(16, 1)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        xb, yb = adding_problem(64, 10, generator=gen)
        loss = nn.functional.mse_loss(head(gru(xb)[0][:, -1]), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gru.eval()
    xt, yt = adding_problem(500, 10, generator=gen)
    with torch.no_grad():
        assert nn.functional.mse_loss(head(gru(xt)[0][:, -1]), yt) < 1 / 48
