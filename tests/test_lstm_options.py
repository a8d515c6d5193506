"""Every LSTM option against an independent loop of the paper's equations, and its contracts."""

import pytest
import torch

from carousel.nn import LSTM, LSTMCell
from tests.lstm_equations import run

VARIANTS = ["vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR", "full_peephole"]

OPTIONS = [dict(variant=v) for v in VARIANTS] + [
    dict(forget_gate=False),
    dict(peepholes=True),
    dict(variant="vanilla", peepholes=True, forget_gate=False),
    dict(variant="NIG", peepholes=False),
    dict(layer_norm=True),
    dict(layer_norm=True, peepholes=True, variant="CIFG"),
    dict(variant="full_peephole", layer_norm=True),
    dict(proj_size=3),
    dict(proj_size=3, peepholes=True, variant="FGR"),
    dict(gate_activation="hard_sigmoid", cell_activation="relu", output_activation="identity"),
    dict(gate_activation=lambda v: torch.sigmoid(2 * v), output_activation="softsign"),
    dict(bias=False, peepholes=True),
]


def expected_kwargs(kw, cell):
    acts = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "identity": lambda v: v,
        "relu": torch.relu,
        "hard_sigmoid": torch.nn.functional.hardsigmoid,
        "softsign": torch.nn.functional.softsign,
    }

    def act(value, default):
        value = kw.get(value, default)
        return value if callable(value) else acts[value]

    return dict(
        hidden=5,
        variant=kw.get("variant", "vanilla"),
        forget_gate=kw.get("forget_gate", True),
        peepholes=cell.peepholes,
        layer_norm_=kw.get("layer_norm", False),
        sg=act("gate_activation", "sigmoid"),
        sc=act("cell_activation", "tanh"),
        sh=act("output_activation", "tanh"),
        proj=kw.get("proj_size", 0),
    )


@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("init", ["pytorch", "keras"])
def test_layer_equals_independent_equations(kw, init):
    layer = LSTM(4, 5, dtype=torch.float64, init=init, return_cell_states=True, fast=False, **kw)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    cell = layer.cells[0]
    state = tuple(torch.randn(1, 3, n, dtype=torch.float64) for n in cell.state_sizes)
    out, final, cells = layer(x, state)
    P = layer.cell_parameters(0)
    want_out, want_cells, want_final = run(x, P, state=tuple(s[0] for s in state), **expected_kwargs(kw, cell))
    torch.testing.assert_close(out, want_out)
    torch.testing.assert_close(cells, want_cells)
    for got, want in zip(final, want_final):
        torch.testing.assert_close(got[0], want)
    # the cell module computes the same step
    step = LSTMCell(4, 5, dtype=torch.float64, init=init, **kw)
    step.load_state_dict(P)
    got = step(x[0], tuple(s[0] for s in state))
    _, _, want_one = run(x[:1], P, state=tuple(s[0] for s in state), **expected_kwargs(kw, cell))
    for g, w in zip(got, want_one):
        torch.testing.assert_close(g, w)


def test_full_peephole_matches_the_encyclopedia_form():
    # f, i, o from W x_t + U c_{t-1} + b; cell input from W_c x_t + b_c alone; h_t = o_t * tanh(c_t).
    layer = LSTM(2, 3, variant="full_peephole", dtype=torch.float64)
    P = layer.cell_parameters(0)
    assert "weight_hh" not in P and P["weight_ch"].shape == (9, 3)
    x = torch.randn(4, 1, 2, dtype=torch.float64)
    W, U = P["weight_ih"].split(3), P["weight_ch"].split(3)
    b = (P["bias_ih"] + P["bias_hh"]).split(3)
    c = torch.zeros(1, 3, dtype=torch.float64)
    for t in range(4):
        xt = x[t]
        i = torch.sigmoid(xt @ W[0].t() + c @ U[0].t() + b[0])
        f = torch.sigmoid(xt @ W[1].t() + c @ U[1].t() + b[1])
        o = torch.sigmoid(xt @ W[3].t() + c @ U[2].t() + b[3])
        c = f * c + i * torch.tanh(xt @ W[2].t() + b[2])
        h = o * torch.tanh(c)
    out, (h_n, c_n) = layer(x)
    torch.testing.assert_close(out[-1], h)
    torch.testing.assert_close(c_n[0], c)


def test_variant_parameters_and_defaults():
    shapes = {v: LSTM(4, 5, variant=v).cells[0].parameter_shapes() for v in VARIANTS}
    assert shapes["vanilla"]["weight_ih"] == (20, 4)
    for v in ("NIG", "NFG", "NOG", "CIFG"):
        assert shapes[v]["weight_ih"] == (15, 4), v
    assert "weight_ci" not in shapes["NIG"] and "weight_cf" in shapes["NIG"]
    assert "weight_cf" not in shapes["CIFG"] and "weight_ci" in shapes["CIFG"]
    assert "weight_co" not in shapes["NOG"]
    assert shapes["FGR"]["weight_gr"] == (15, 15)
    assert not any(n.startswith("weight_c") and len(n) == 9 for n in shapes["NP"])
    assert LSTM(4, 5, forget_gate=False).cells[0].parameter_shapes()["weight_ih"] == (15, 4)
    # Greff's variants keep vanilla's peepholes unless told otherwise; ours is torch's cell
    assert LSTM(4, 5, variant="NOAF").cells[0].peepholes
    assert not LSTM(4, 5).cells[0].peepholes
    assert not LSTM(4, 5, variant="NIG", peepholes=False).cells[0].peepholes


def test_keras_init():
    layer = LSTM(4, 6, init="keras", peepholes=True)
    P = layer.cell_parameters(0)
    w = P["weight_hh"]  # (24, 6): orthonormal columns
    torch.testing.assert_close(w.t() @ w, torch.eye(6), atol=1e-5, rtol=0)
    limit = (6 / (4 + 24)) ** 0.5
    assert P["weight_ih"].abs().max() <= limit
    assert torch.equal(P["bias_ih"][6:12], torch.ones(6))
    assert P["bias_ih"][:6].abs().sum() == 0 and P["bias_hh"].abs().sum() == 0
    cifg = LSTM(4, 6, init="keras", variant="CIFG").cell_parameters(0)
    assert cifg["bias_ih"].abs().sum() == 0  # no forget gate of its own


def test_return_cell_states_everywhere():
    x = torch.randn(5, 7, 4, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1, 6])
    layer = LSTM(
        4, 5, 2, batch_first=True, bidirectional=True, proj_size=2, return_cell_states=True, dtype=torch.float64
    )
    out, (h, c), cs = layer(x, lengths=lengths)
    assert out.shape == (5, 7, 4) and cs.shape == (5, 7, 10)
    for b, n in enumerate(lengths.tolist()):
        assert cs[b, n:].abs().sum() == 0
        torch.testing.assert_close(cs[b, n - 1, :5], c[2, b])  # forward direction ends at its last step
        torch.testing.assert_close(cs[b, 0, 5:], c[3, b])  # backward direction ends at step 0
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, _, cs_packed = layer(packed)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(cs_packed, batch_first=True)
    torch.testing.assert_close(padded, cs)
    _, _, cs_unbatched = layer(x[1, :3])
    torch.testing.assert_close(cs_unbatched, cs[1, :3])


def test_bidirectional_lengths_equal_running_each_sequence_alone():
    kw = dict(peepholes=True, variant="CIFG", layer_norm=True, zoneout=0.2, num_layers=2, bidirectional=True)
    layer = LSTM(3, 4, dtype=torch.float64, **kw).eval()
    x = torch.randn(8, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([8, 2, 5])
    out, (h, c) = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        o1, (h1, c1) = layer(x[:n, b])
        torch.testing.assert_close(out[:n, b], o1)
        assert out[n:, b].abs().sum() == 0
        torch.testing.assert_close(h[:, b], h1)
        torch.testing.assert_close(c[:, b], c1)


def test_zoneout_and_recurrent_dropout_semantics():
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    base = LSTM(3, 5, dtype=torch.float64)
    # rate 0 changes nothing, in training or not
    for kw in (dict(zoneout=0.0), dict(recurrent_dropout=0.0)):
        other = LSTM(3, 5, dtype=torch.float64, fast=False, **kw)
        other.load_state_dict(base.state_dict())
        torch.testing.assert_close(other(x)[0], base(x)[0])
    # zoneout in evaluation: s_t = z s_{t-1} + (1 - z) s'_t, computed here by hand
    z = LSTM(3, 5, dtype=torch.float64, zoneout=(0.3, 0.6)).eval()
    z.load_state_dict(base.state_dict())
    cell = LSTMCell(3, 5, dtype=torch.float64)
    cell.load_state_dict({k[:-3]: v for k, v in base.state_dict().items()})
    h = c = torch.zeros(4, 5, dtype=torch.float64)
    for t in range(6):
        h1, c1 = cell(x[t], (h, c))
        h, c = 0.3 * h + 0.7 * h1, 0.6 * c + 0.4 * c1
    out, (hn, cn) = z(x)
    torch.testing.assert_close(out[-1], h)
    torch.testing.assert_close(cn[0], c)
    # in training both are random, and differ from evaluation
    for kw in (dict(zoneout=0.5), dict(recurrent_dropout=0.5)):
        m = LSTM(3, 5, dtype=torch.float64, **kw)
        a, b = m(x)[0], m(x)[0]
        assert not torch.allclose(a, b)
        m.eval()
        assert torch.equal(m(x)[0], m(x)[0])
    # zoneout 1.0 is refused; the state would never change
    with pytest.raises(ValueError, match="zoneout"):
        LSTM(3, 5, zoneout=1.0)


def test_recurrent_dropout_mask_is_shared_over_time():
    # With weight_hh = I in the g block only and gates saturated open, h feeds g; a unit dropped
    # once is dropped at every step, so its recurrent contribution is always zero.
    m = LSTM(1, 4, recurrent_dropout=0.5, dtype=torch.float64, fast=False)
    seen = []
    original = m.cells[0].step

    def spy(params, x_t, state):
        seen.append(state[0].clone())
        return original(params, x_t, state)

    m.cells[0].step = spy
    torch.manual_seed(5)
    m(torch.randn(6, 2, 1, dtype=torch.float64))
    zeros = [s == 0 for s in seen[1:]]
    for z in zeros[1:]:
        assert torch.equal(z, zeros[0])
    assert zeros[0].any() and not zeros[0].all()


def test_full_peephole_refuses_recurrent_dropout():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        LSTM(2, 3, variant="full_peephole", recurrent_dropout=0.2)
    LSTM(2, 3, variant="full_peephole", zoneout=0.2)


def test_fast_dispatch():
    assert LSTM(2, 3).implementation == "vendor"
    assert LSTM(2, 3, variant="NP").implementation == "vendor"
    assert LSTM(2, 3, fast=False).implementation == "reference"
    for kw in (
        dict(peepholes=True),
        dict(variant="CIFG"),
        dict(layer_norm=True),
        dict(zoneout=0.1),
        dict(recurrent_dropout=0.1),
        dict(return_cell_states=True),
        dict(output_activation="identity"),
        dict(forget_gate=False),
    ):
        layer = LSTM(2, 3, **kw)
        assert layer.implementation in ("fused", "reference")
        assert layer.vendor_refusal
    with pytest.raises(ValueError, match="fast: True asks for a fast path"):
        LSTM(2, 3, fast=True, cell_activation=lambda v: v)
    with pytest.raises(ValueError, match="fast"):
        LSTM(2, 3, fast="yes")
    assert LSTMCell(2, 3).implementation == "vendor"
    with pytest.raises(ValueError, match="fast: True"):
        LSTMCell(2, 3, proj_size=1, fast=True)
