"""The second-order RNN: the paper's equation written as explicit sums, both implementations
(contracted transition matrices and per-step contraction), gradcheck, learning Tomita grammar 4
and the error messages."""

import itertools

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.second_order import SecondOrder
from carousel.nn.second_order import SecondOrderRNN

F64 = torch.float64


def second_order_loop(x, W, b, S, g=torch.sigmoid):
    """Giles et al. (1992): S_i(t+1) = g(sum_{j,k} W_ijk S_j(t) I_k(t) + b_i), unit by unit."""
    H = W.shape[0]
    outs = []
    for t in range(x.shape[0]):
        inp = x[t]
        S = torch.stack(
            [g((W[i][None] * S[:, :, None] * inp[:, None, :]).sum(dim=(1, 2)) + b[i]) for i in range(H)], dim=1
        )
        outs.append(S)
    return torch.stack(outs), S


def _p(layer, k=0, d=0):
    p = {n: v.detach() for n, v in layer.cell_parameters(k, d).items()}
    return p["weight"], p["bias"]


# ---------------------------------------------------------------- equations
@pytest.mark.parametrize("precompute", [True, False])
def test_cell_against_equations(precompute):
    layer = SecondOrderRNN(3, 4, precompute=precompute, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    s0 = torch.rand(1, 2, 4, dtype=F64)
    out, s = layer(x, s0)
    ref, ref_s = second_order_loop(x, *_p(layer), s0[0])
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(s[0], ref_s, atol=1e-12)
    xp = layer.cells[0].project(layer.cell_parameters(0), x)
    assert xp.shape == ((6, 2, 4, 4) if precompute else (6, 2, 3))


def test_auto_contracts_only_small_inputs():
    cell = SecondOrder(3, 4, max_elements=6 * 2 * 16)
    assert cell.contracts(6, 2) and not cell.contracts(7, 2)
    layer = SecondOrderRNN(3, 4, max_elements=6 * 2 * 16, dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    ref, _ = second_order_loop(x, *_p(layer), torch.zeros(2, 4, dtype=F64))
    assert torch.allclose(layer(x)[0], ref, atol=1e-12)  # the per-step path, same numbers
    assert torch.allclose(layer(x[:6])[0], ref[:6], atol=1e-12)  # the contracted path


def test_two_bidirectional_layers_with_lengths_against_equations():
    layer = SecondOrderRNN(3, 4, num_layers=2, bidirectional=True, batch_first=True, nonlinearity="tanh", dtype=F64)
    x = torch.randn(2, 6, 3, dtype=F64)
    lengths = torch.tensor([6, 3])
    out, s = layer(x, lengths=lengths)
    out_pk, s_pk = layer(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    assert torch.allclose(pad_packed_sequence(out_pk, batch_first=True)[0], out, atol=1e-12)
    assert torch.allclose(s_pk, s, atol=1e-12)
    for b, n in enumerate(lengths.tolist()):
        seq = x[b : b + 1, :n].transpose(0, 1)
        z = torch.zeros(1, 4, dtype=F64)
        f, sf = second_order_loop(seq, *_p(layer, 0, 0), z, torch.tanh)
        r, sr = second_order_loop(seq.flip(0), *_p(layer, 0, 1), z, torch.tanh)
        mid = torch.cat([f, r.flip(0)], -1)
        f1, sf1 = second_order_loop(mid, *_p(layer, 1, 0), z, torch.tanh)
        r1, sr1 = second_order_loop(mid.flip(0), *_p(layer, 1, 1), z, torch.tanh)
        assert torch.allclose(out[b, :n], torch.cat([f1, r1.flip(0)], -1)[:, 0], atol=1e-12)
        assert torch.all(out[b, n:] == 0)
        assert torch.allclose(s[:, b], torch.cat([sf, sr, sf1, sr1]), atol=1e-12)


def test_one_hot_input_selects_a_transition_matrix():
    layer = SecondOrderRNN(2, 3, bias=False, nonlinearity="identity", dtype=F64)
    s0 = torch.randn(1, 1, 3, dtype=F64)
    x = torch.tensor([[[0.0, 1.0]]], dtype=F64)
    out, _ = layer(x, s0)
    assert torch.allclose(out[0, 0], layer.weight_l0.detach()[:, :, 1] @ s0[0, 0], atol=1e-12)
    assert [n for n, _ in layer.named_parameters()] == ["weight_l0"]


# ---------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "kw",
    [
        dict(precompute=True),
        dict(precompute=False),
        dict(num_layers=2, bidirectional=True),
        dict(recurrent_dropout=0.3),
    ],
    ids=["contracted", "per_step", "2x_bidirectional", "recurrent_dropout"],
)
def test_gradcheck(kw):
    layer = SecondOrderRNN(3, 4, dtype=F64, **kw)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    s0 = torch.rand(n, 2, 4, dtype=F64, requires_grad=True)

    def f(x, s0, *ps):
        torch.manual_seed(1)
        return functional_call(layer, dict(zip(names, ps)), (x, s0), dict(lengths=torch.tensor([5, 3])))

    assert torch.autograd.gradcheck(f, (x, s0, *params), fast_mode=True)


# ---------------------------------------------------------------- learning: Tomita grammar 4
def _tomita4(max_len):
    """Every binary string of length 1..max_len, labelled 1 when it has no three consecutive 0s."""
    strings = [s for n in range(1, max_len + 1) for s in itertools.product((0, 1), repeat=n)]
    labels = torch.tensor([0.0 if "000" in "".join(map(str, s)) else 1.0 for s in strings])
    lengths = torch.tensor([len(s) for s in strings])
    symbols = torch.zeros(len(strings), max_len, dtype=torch.long)
    for b, s in enumerate(strings):
        symbols[b, : len(s)] = torch.tensor(s)
    return torch.nn.functional.one_hot(symbols, 2).float(), lengths, labels


def test_learns_tomita_grammar_4():
    """Giles et al. trained on Tomita's grammars; number 4 (no "000" substring) needs a 4-state
    automaton. The response unit S_0 at the end of the string accepts (> 0.5) or rejects."""
    torch.manual_seed(0)
    x, lengths, labels = _tomita4(8)  # 510 strings, 1 to 8 symbols
    rnn = SecondOrderRNN(2, 5, batch_first=True)
    s0 = torch.zeros(1, len(labels), 5)
    s0[..., 0] = 1.0
    opt = torch.optim.Adam(rnn.parameters(), lr=0.1)
    for _ in range(150):
        _, s = rnn(x, s0, lengths=lengths)
        loss = torch.nn.functional.binary_cross_entropy(s[0, :, 0].clamp(1e-6, 1 - 1e-6), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = ((s[0, :, 0] > 0.5).float() == labels).float().mean().item()
    assert accuracy >= 0.97
    # and it generalises to longer strings
    x12, l12, y12 = _tomita4(11)
    long = l12 > 8
    s0 = torch.zeros(1, int(long.sum()), 5)
    s0[..., 0] = 1.0
    with torch.no_grad():
        _, s = rnn(x12[long], s0, lengths=l12[long])
    assert ((s[0, :, 0] > 0.5).float() == y12[long]).float().mean().item() >= 0.9


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(precompute="always"), r"precompute: expected 'auto', True or False, got 'always'"),
        (dict(max_elements=0), r"max_elements: expected an integer >= 1, got 0"),
        (dict(hidden_size=0), r"hidden_size: expected an integer >= 1, got 0"),
        (dict(init="he"), r"init: expected one of \['pytorch', 'keras'\], got 'he'"),
    ],
)
def test_errors(kw, match):
    args = dict(input_size=2, hidden_size=3) | kw
    with pytest.raises(ValueError, match=match):
        SecondOrderRNN(**args)


def test_input_errors_and_repr():
    rnn = SecondOrderRNN(2, 3)
    with pytest.raises(ValueError, match=r"input: expected 2 features \(input_size\), got 3"):
        rnn(torch.randn(4, 1, 3))
    with pytest.raises(ValueError, match=r"hx\[0\] \(S_0\): expected shape \(1, 1, 3\)"):
        rnn(torch.randn(4, 1, 2), torch.zeros(1, 1, 4))
    assert repr(SecondOrder(2, 3, precompute=False)) == "SecondOrder(2, 3, precompute=False)"
    keras = SecondOrderRNN(2, 3, init="keras")
    assert torch.all(keras.bias_l0 == 0)
