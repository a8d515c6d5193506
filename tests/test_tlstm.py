"""The time-aware LSTM: the paper's equations written unit by unit, the standard LSTM at zero
elapsed time, stacks, lengths and packing, gradcheck, a task where the elapsed time matters and
the error messages."""

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.tlstm import TLSTM as TLSTMCell
from carousel.cells.tlstm import elapsed_decay
from carousel.nn.tlstm import TLSTM

F64 = torch.float64


def tlstm_loop(x, gaps, p, h, c, decay="log"):
    """Baytas et al. (2017), section 3: the memory split into short- and long-term parts, the short
    one discounted by g(Delta_t), then the LSTM gates; unit by unit (gates i, f, ~C, o stacked)."""
    H = h.shape[1]
    Wih, Whh, bih, bhh, Wd, bd = (p[n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_d", "bias_d"))

    def g(dt):
        return 1.0 / torch.log(math.e + dt) if decay == "log" else 1.0 / dt

    def sig(z):
        return 1.0 / (1.0 + torch.exp(-z))

    outs = []
    for t in range(x.shape[0]):
        h_new, c_new = [], []
        for n in range(H):
            CS = torch.tanh(sum(Wd[n, m] * c[:, m] for m in range(H)) + bd[n])
            CT = c[:, n] - CS
            C_star = CT + CS * g(gaps[t])

            i_t, f_t, C_tilde, o_t = (
                x[t] @ Wih[k * H + n] + bih[k * H + n] + h @ Whh[k * H + n] + bhh[k * H + n] for k in range(4)
            )
            i_t, f_t, C_tilde, o_t = sig(i_t), sig(f_t), torch.tanh(C_tilde), sig(o_t)
            C_t = f_t * C_star + i_t * C_tilde
            c_new.append(C_t)
            h_new.append(o_t * torch.tanh(C_t))
        h, c = torch.stack(h_new, 1), torch.stack(c_new, 1)
        outs.append(h)
    return torch.stack(outs), h, c


def _p(layer, k=0):
    return {n: v.detach() for n, v in layer.cell_parameters(k).items()}


# ---------------------------------------------------------------- equations
@pytest.mark.parametrize("decay", ["log", "inverse"])
def test_cell_against_equations(decay):
    layer = TLSTM(3, 4, decay=decay, dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    gaps = torch.rand(7, 2, dtype=F64) * 20 + 0.1
    h0, c0 = torch.randn(1, 2, 4, dtype=F64), torch.randn(1, 2, 4, dtype=F64)
    out, (h, c) = layer(x, gaps, (h0, c0))
    ref, rh, rc = tlstm_loop(x, gaps, _p(layer), h0[0], c0[0], decay)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(h[0], rh, atol=1e-12) and torch.allclose(c[0], rc, atol=1e-12)


def test_zero_elapsed_time_is_the_standard_lstm():
    """g(0) = 1 / log(e) = 1: the decomposition adds up again and the step is torch.nn.LSTM's."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, dtype=F64)
    layer = TLSTM(3, 5, num_layers=2, batch_first=True, dtype=F64)
    missing = layer.load_state_dict(ref.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["bias_d_l0", "bias_d_l1", "weight_d_l0", "weight_d_l1"]
    x = torch.randn(4, 6, 3, dtype=F64)
    out, (h, c) = layer(x, torch.zeros(4, 6, dtype=F64))
    r_out, (r_h, r_c) = ref(x)
    assert torch.allclose(out, r_out, atol=1e-12) and torch.allclose(h, r_h) and torch.allclose(c, r_c)
    assert float(elapsed_decay(torch.tensor(0.0))) == 1.0


def test_two_layers_with_lengths_packed_and_unbatched():
    layer = TLSTM(3, 4, num_layers=2, batch_first=True, dtype=F64)
    x = torch.randn(3, 6, 3, dtype=F64)
    gaps = torch.rand(3, 6, dtype=F64) * 5
    lengths = torch.tensor([6, 2, 4])
    out, (h, c) = layer(x, gaps, lengths=lengths)
    assert layer.cells[0].output_size == 5 and layer.cells[1].output_size == 4  # Delta_t handed up
    for b, n in enumerate(lengths.tolist()):
        seq, g = x[b : b + 1, :n].transpose(0, 1), gaps[b : b + 1, :n].transpose(0, 1)
        z = torch.zeros(1, 4, dtype=F64)
        o0, h0, c0 = tlstm_loop(seq, g, _p(layer, 0), z, z)
        o1, h1, c1 = tlstm_loop(o0, g, _p(layer, 1), z, z)
        assert torch.allclose(out[b, :n], o1[:, 0], atol=1e-12) and torch.all(out[b, n:] == 0)
        assert torch.allclose(h[:, b], torch.cat([h0, h1]), atol=1e-12)
        assert torch.allclose(c[:, b], torch.cat([c0, c1]), atol=1e-12)
        single, (hs, _) = layer(x[b, :n], gaps[b, :n])  # unbatched (T, I) and (T,)
        assert torch.allclose(single, out[b, :n], atol=1e-12) and hs.shape == (2, 4)
    px = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    pg = pack_padded_sequence(gaps, lengths, batch_first=True, enforce_sorted=False)
    out_pk, (h_pk, c_pk) = layer(px, pg)
    assert torch.allclose(pad_packed_sequence(out_pk, batch_first=True)[0], out, atol=1e-12)
    assert torch.allclose(h_pk, h, atol=1e-12) and torch.allclose(c_pk, c, atol=1e-12)


def test_parameters():
    layer = TLSTM(3, 4)
    assert [n for n, _ in layer.named_parameters()] == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_d_l0",
        "bias_d_l0",
    ]
    assert layer.weight_ih_l0.shape == (16, 3) and layer.weight_d_l0.shape == (4, 4)
    keras = TLSTM(3, 4, init="keras", bias=True)
    assert torch.all(keras.bias_ih_l0[4:8] == 1) and torch.all(keras.bias_d_l0 == 0)


# ---------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(decay="inverse"), dict(num_layers=2), dict(recurrent_dropout=0.3, zoneout=0.2)],
    ids=["log", "inverse", "2_layers", "dropout_zoneout"],
)
def test_gradcheck(kw):
    layer = TLSTM(3, 4, dtype=F64, **kw)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    n = layer.num_layers
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    gaps = (torch.rand(5, 2, dtype=F64) * 3 + 0.5).requires_grad_()
    h0 = torch.randn(n, 2, 4, dtype=F64, requires_grad=True)
    c0 = torch.randn(n, 2, 4, dtype=F64, requires_grad=True)

    def f(x, gaps, h0, c0, *ps):
        torch.manual_seed(1)
        out, (h, c) = functional_call(
            layer, dict(zip(names, ps)), (x, gaps, (h0, c0)), dict(lengths=torch.tensor([5, 3]))
        )
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, gaps, h0, c0, *params), fast_mode=True)


# ---------------------------------------------------------------- learning: the elapsed time matters
def _decayed_sum(n, T=6):
    """Irregular observations: each gap is 0 or 10 time units; the target is the sum of the values
    in which every long gap after an observation divides its weight by 4."""
    x = torch.rand(n, T, 1) * 2 - 1
    gaps = (torch.rand(n, T) < 0.5).float() * 10.0
    w = torch.ones(n, T)
    for t in range(T - 2, -1, -1):
        w[:, t] = w[:, t + 1] * torch.where(gaps[:, t + 1] > 0, 0.25, 1.0)
    return x, gaps, (x[..., 0] * w).sum(1, keepdim=True)


def _fit(x, gaps, y, iters=150):
    rnn, head = TLSTM(1, 12, batch_first=True), torch.nn.Linear(12, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.03)
    for _ in range(iters):
        loss = torch.mean((head(rnn(x, gaps)[1][0][-1]) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rnn, head


def test_uses_the_elapsed_time():
    """The same network with the elapsed times withheld (all 0: the standard LSTM) cannot know
    which values have faded; with them, the T-LSTM's discounted short-term memory can."""
    torch.manual_seed(0)
    x, gaps, y = _decayed_sum(256)
    xt, gt, yt = _decayed_sum(512)
    timed = _fit(x, gaps, y)
    blind = _fit(x, torch.zeros_like(gaps), y)
    with torch.no_grad():
        mse_timed = torch.mean((timed[1](timed[0](xt, gt)[1][0][-1]) - yt) ** 2).item()
        mse_blind = torch.mean((blind[1](blind[0](xt, torch.zeros_like(gt))[1][0][-1]) - yt) ** 2).item()
    assert mse_timed < 0.05 * yt.var().item()
    assert mse_timed < 0.2 * mse_blind


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(bidirectional=True), r"bidirectional: expected False \(.*\), got True"),
        (dict(num_layers=2, dropout=0.2), r"dropout: expected 0 with num_layers > 1 .*, got 0.2"),
        (dict(num_layers=2, zoneout=0.1), r"zoneout: expected 0 with num_layers > 1, got 0.1"),
        (dict(decay="exp"), r"decay: expected one of \['log', 'inverse'\], got 'exp'"),
        (dict(input_size=0), r"input_size: expected an integer >= 1, got 0"),
    ],
)
def test_constructor_errors(kw, match):
    args = dict(input_size=3, hidden_size=4) | kw
    with pytest.raises(ValueError, match=match):
        TLSTM(**args)


def test_elapsed_errors():
    rnn = TLSTM(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    shape = r"elapsed: expected shape \(2, 5\) \(batch, time\), one gap per step, got \(5, 2\)"
    with pytest.raises(ValueError, match=shape):
        rnn(x, torch.zeros(5, 2))
    dtype = r"elapsed: expected dtype torch.float32 \(the input's dtype\), got torch.float64"
    with pytest.raises(TypeError, match=dtype):
        rnn(x, torch.zeros(2, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"elapsed: expected times >= 0, got min -1"):
        rnn(x, -torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"elapsed: expected finite times, got NaN or inf"):
        rnn(x, torch.full((2, 5), math.nan))
    with pytest.raises(ValueError, match=r"elapsed: expected times > 0 with decay='inverse'"):
        TLSTM(3, 4, batch_first=True, decay="inverse")(x, torch.zeros(2, 5))
    with pytest.raises(TypeError, match=r"elapsed: expected a Tensor, got list"):
        rnn(x, [1.0] * 5)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 2"):
        rnn(torch.randn(2, 5, 2), torch.zeros(2, 5))
    px = pack_padded_sequence(x, torch.tensor([5, 3]), batch_first=True)
    with pytest.raises(TypeError, match=r"elapsed: expected a PackedSequence like input, got Tensor"):
        rnn(px, torch.zeros(2, 5))
    assert repr(TLSTMCell(3, 4, decay="inverse")) == "TLSTM(3, 4, decay='inverse')"
