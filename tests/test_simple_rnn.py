"""Simple recurrent networks: Elman against torch.nn.RNN, every cell against a plain loop of its
paper's equations, float64 gradcheck, a learning task, and the error messages."""

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.simple import Elman, FullyRecurrent, Jordan, RecurrentMLP
from carousel.nn.simple import ElmanRNN, FullyRecurrentRNN, JordanRNN
from carousel.nn.simple import RecurrentMLP as RecurrentMLPLayer

F64 = torch.float64


# ---------------------------------------------------------------- independent loops of the equations
def elman_loop(x, P, act, h):
    """Elman (1990): the context units copy h_{t-1}; h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    outs = []
    for t in range(x.shape[0]):
        h = act(x[t] @ P["weight_ih"].T + P["bias_ih"] + h @ P["weight_hh"].T + P["bias_hh"])
        outs.append(h)
    return torch.stack(outs), h


def jordan_loop(x, P, mu, act_h, act_y):
    """Jordan (1986), with the two quantities of the paper kept apart: the state layer s and the
    previous output y. s_t = mu s_{t-1} + y_{t-1}; h_t = f(W x_t + W_s s_t + b); y_t = g(W_o h_t + b_o)."""
    size = (x.shape[1], P["weight_ho"].shape[0])
    s = torch.zeros(size, dtype=x.dtype)
    y = torch.zeros(size, dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        s = mu * s + y
        h = act_h(x[t] @ P["weight_ih"].T + s @ P["weight_sh"].T + P["bias_ih"])
        y = act_y(h @ P["weight_ho"].T + P["bias_ho"])
        outs.append(y)
    return torch.stack(outs), mu * s + y


def fully_recurrent_loop(x, P, act, n_out):
    """Williams & Zipser (1989): one weight matrix over z(t) = [x(t); y(t)] and every unit updated
    from all of z: y_k(t+1) = f(sum_l w_kl z_l(t)). The output read for input x(t) is y(t+1)."""
    W = torch.cat([P["weight_ih"], P["weight_hh"]], dim=1)  # (N, I + N)
    y = torch.zeros(x.shape[1], W.shape[0], dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        z = torch.cat([x[t], y], dim=1)
        y = act(z @ W.T + P["bias"])
        outs.append(y[:, :n_out])
    return torch.stack(outs), y


def rmlp_loop(x, P, sizes, act, act_out, has_out):
    """Puskorius & Feldkamp (1994): each layer j: h^j_t = f(W^j h^{j-1}_t + U^j h^j_{t-1} + b^j)."""
    hs = [torch.zeros(x.shape[1], n, dtype=x.dtype) for n in sizes]
    outs = []
    for t in range(x.shape[0]):
        below = x[t]
        for j in range(len(sizes)):
            hs[j] = act(below @ P[f"weight_ih{j}"].T + hs[j] @ P[f"weight_hh{j}"].T + P[f"bias{j}"])
            below = hs[j]
        outs.append(act_out(below @ P["weight_ho"].T + P["bias_ho"]) if has_out else below)
    return torch.stack(outs), tuple(hs)


def _params(layer, k=0, d=0):
    return {n: p.detach() for n, p in layer.cell_parameters(k, d).items()}


# ---------------------------------------------------------------- Elman against torch.nn.RNN
def _pair(nonlinearity, layers, bidirectional, batch_first, fast="auto"):
    ref = nn.RNN(3, 5, layers, nonlinearity=nonlinearity, batch_first=batch_first, bidirectional=bidirectional)
    ref = ref.double()
    ours = ElmanRNN(
        3, 5, layers, nonlinearity=nonlinearity, batch_first=batch_first, bidirectional=bidirectional, dtype=F64,
        fast=fast,
    )
    assert ours.implementation == ("reference" if fast is False else "vendor")
    assert str(ours.load_state_dict(ref.state_dict())) == "<All keys matched successfully>"
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    return ref, ours


def _grads(module, *tensors):
    return [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("fast", ["auto", False], ids=["vendor", "reference"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_elman_equals_torch_rnn(nonlinearity, layers, bidirectional, batch_first, fast):
    ref, ours = _pair(nonlinearity, layers, bidirectional, batch_first, fast)
    D = 2 if bidirectional else 1
    T, B = 6, 4
    shape = (B, T, 3) if batch_first else (T, B, 3)
    x = torch.randn(shape, dtype=F64)
    h0 = torch.randn(D * layers, B, 5, dtype=F64)
    lengths = torch.tensor([6, 3, 5, 1])
    results = []
    for module in (ref, ours):
        xa, ha = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, h = module(xa, ha)
        # padded batch: torch through a PackedSequence, ours through lengths= and through packing
        xb = x.clone().requires_grad_()
        packed = pack_padded_sequence(xb, lengths, batch_first=batch_first, enforce_sorted=False)
        if module is ours:
            out_len, h_len = module(xb, ha, lengths=lengths)
            out_pk, h_pk = module(packed, ha)
            out_pk, _ = pad_packed_sequence(out_pk, batch_first=batch_first, total_length=T)
            assert torch.allclose(out_pk, out_len, atol=1e-12) and torch.allclose(h_pk, h_len, atol=1e-12)
        else:
            out_pk, h_len = module(packed, ha)
            out_len, _ = pad_packed_sequence(out_pk, batch_first=batch_first, total_length=T)
        assert isinstance(h, torch.Tensor) and isinstance(h_len, torch.Tensor)
        (out.pow(2).sum() + h.sum() + out_len.sin().sum() + h_len.pow(2).sum()).backward()
        results.append((out, h, out_len, h_len, _grads(module, xa, ha, xb)))
    for a, b in zip(results[0][:4], results[1][:4]):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-10)
    for ga, gb in zip(results[0][4], results[1][4]):
        assert torch.allclose(ga, gb, atol=1e-10)


def test_elman_unbatched_and_no_bias_load_torch_state_dict():
    ref = nn.RNN(3, 4, 2, bias=False).double()
    ours = ElmanRNN(3, 4, 2, bias=False, dtype=F64)
    assert str(ours.load_state_dict(ref.state_dict())) == "<All keys matched successfully>"
    x = torch.randn(5, 3, dtype=F64)
    (a, ha), (b, hb) = ref(x), ours(x)
    assert b.shape == (5, 4) and hb.shape == (2, 4)
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(ha, hb, atol=1e-12)
    # and the other way: torch loads ours
    assert str(nn.RNN(3, 4, 2, bias=False).double().load_state_dict(ours.state_dict())).startswith("<All keys")


def test_elman_pytorch_init_range():
    layer = ElmanRNN(3, 16)
    bound = 1 / 16**0.5
    assert all(float(p.detach().abs().max()) <= bound for p in layer.parameters())
    keras = ElmanRNN(3, 16, init="keras")
    w = keras.weight_hh_l0.detach()
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5) and float(keras.bias_ih_l0.detach().abs().max()) == 0.0


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: ElmanRNN(3, 4, **kw),
        lambda **kw: JordanRNN(3, 4, 2, **kw),
        lambda **kw: FullyRecurrentRNN(3, 4, 2, **kw),
        lambda **kw: RecurrentMLPLayer(3, (4, 5), 2, **kw),
    ],
    ids=["elman", "jordan", "fully_recurrent", "rmlp"],
)
@pytest.mark.parametrize("init", ["pytorch", "keras"])
def test_without_bias_and_with_each_init(make, init):
    layer = make(bias=False, init=init, num_layers=2)
    assert not any("bias" in n for n, _ in layer.named_parameters())
    out, _ = layer(torch.randn(5, 2, 3))
    assert out.shape[:2] == (5, 2) and torch.isfinite(out).all()
    if init == "keras":
        assert all(float(p.detach().abs().sum()) > 0 for p in make(init=init).parameters() if p.dim() == 2)


# ---------------------------------------------------------------- cells against the paper's equations
def test_elman_cell_against_equations():
    layer = ElmanRNN(3, 5, nonlinearity="softsign", dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    h0 = torch.randn(1, 2, 5, dtype=F64)
    out, h = layer(x, h0)
    ref_out, ref_h = elman_loop(x, _params(layer), nn.functional.softsign, h0[0])
    assert torch.allclose(out, ref_out, atol=1e-12) and torch.allclose(h[0], ref_h, atol=1e-12)


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
def test_jordan_cell_against_equations(decay):
    layer = JordanRNN(3, 6, 2, decay=decay, output_activation="sigmoid", dtype=F64)
    x = torch.randn(9, 4, 3, dtype=F64)
    out, c = layer(x)
    ref_out, ref_c = jordan_loop(x, _params(layer), decay, torch.tanh, torch.sigmoid)
    assert out.shape == (9, 4, 2) and c.shape == (1, 4, 2)
    assert torch.allclose(out, ref_out, atol=1e-12) and torch.allclose(c[0], ref_c, atol=1e-12)


@pytest.mark.parametrize("n_out", [2, 6])
def test_fully_recurrent_cell_against_equations(n_out):
    layer = FullyRecurrentRNN(3, 6, output_size=n_out, nonlinearity="sigmoid", dtype=F64)
    x = torch.randn(8, 3, 3, dtype=F64)
    out, a = layer(x)
    ref_out, ref_a = fully_recurrent_loop(x, _params(layer), torch.sigmoid, n_out)
    assert out.shape == (8, 3, n_out) and a.shape == (1, 3, 6)
    assert torch.allclose(out, ref_out, atol=1e-12) and torch.allclose(a[0], ref_a, atol=1e-12)


@pytest.mark.parametrize("output_size", [None, 2])
def test_rmlp_cell_against_equations(output_size):
    layer = RecurrentMLPLayer(3, (5, 4, 6), output_size=output_size, output_activation="tanh", dtype=F64)
    x = torch.randn(7, 2, 3, dtype=F64)
    out, state = layer(x)
    ref_out, ref_state = rmlp_loop(x, _params(layer), (5, 4, 6), torch.tanh, torch.tanh, output_size is not None)
    assert isinstance(state, tuple) and [s.shape for s in state] == [(1, 2, n) for n in (5, 4, 6)]
    assert torch.allclose(out, ref_out, atol=1e-12)
    for s, r in zip(state, ref_state):
        assert torch.allclose(s[0], r, atol=1e-12)


def test_stacked_bidirectional_jordan_with_lengths_against_equations():
    layer = JordanRNN(3, 5, 2, num_layers=2, bidirectional=True, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    lengths = torch.tensor([6, 4])
    out, c = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        seq = x[:n, b : b + 1]
        fwd, cf = jordan_loop(seq, _params(layer, 0, 0), 0.5, torch.tanh, torch.tanh)
        bwd, cb = jordan_loop(seq.flip(0), _params(layer, 0, 1), 0.5, torch.tanh, torch.tanh)
        mid = torch.cat([fwd, bwd.flip(0)], dim=-1)
        top_f, cf1 = jordan_loop(mid, _params(layer, 1, 0), 0.5, torch.tanh, torch.tanh)
        top_b, cb1 = jordan_loop(mid.flip(0), _params(layer, 1, 1), 0.5, torch.tanh, torch.tanh)
        expected = torch.cat([top_f, top_b.flip(0)], dim=-1)[:, 0]
        assert torch.allclose(out[:n, b], expected, atol=1e-12)
        assert torch.all(out[n:, b] == 0)
        for got, ref in zip(c[:, b], (cf, cb, cf1, cb1)):
            assert torch.allclose(got, ref[0], atol=1e-12)


# ---------------------------------------------------------------- float64 gradcheck
LAYERS = {
    "elman_tanh": lambda: ElmanRNN(3, 4, dtype=F64),
    "elman_relu_2x_bidirectional": lambda: ElmanRNN(3, 4, 2, nonlinearity="relu", bidirectional=True, dtype=F64),
    "jordan": lambda: JordanRNN(3, 4, 2, decay=0.5, dtype=F64),
    "jordan_2x_bidirectional": lambda: JordanRNN(3, 4, 2, num_layers=2, bidirectional=True, dtype=F64),
    "fully_recurrent": lambda: FullyRecurrentRNN(3, 5, output_size=2, dtype=F64),
    "fully_recurrent_zoneout": lambda: FullyRecurrentRNN(3, 4, zoneout=0.3, dtype=F64),
    "rmlp": lambda: RecurrentMLPLayer(3, (4, 3), output_size=2, dtype=F64),
    "rmlp_recurrent_dropout": lambda: RecurrentMLPLayer(3, (4, 3), recurrent_dropout=0.3, dtype=F64),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradcheck(name):
    layer = LAYERS[name]()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    x = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    state = tuple(torch.randn(n, 2, s, dtype=F64, requires_grad=True) for s in layer.cells[0].state_sizes)
    lengths = torch.tensor([4, 2])

    def f(x, *args):
        hx, ps = args[: len(state)], args[len(state) :]
        torch.manual_seed(1)  # the same dropout/zoneout masks on every call
        out, final = functional_call(layer, dict(zip(names, ps)), (x, hx), dict(lengths=lengths))
        return (out, *(final if isinstance(final, tuple) else (final,)))

    assert torch.autograd.gradcheck(f, (x, *state, *params), fast_mode=layer.bidirectional)


# ---------------------------------------------------------------- learning
SYMBOLS = torch.tensor([0, 1, 0, 2])  # "a b a c" repeated: after "a" the answer depends on the symbol before


def periodic_batch(batch, steps, gen):
    phase = torch.randint(0, 4, (batch, 1), generator=gen)
    seq = SYMBOLS[(phase + torch.arange(steps + 1)) % 4]  # (B, T + 1)
    return nn.functional.one_hot(seq[:, :-1], 3).float(), seq[:, 1:]


class Predictor(nn.Module):
    def __init__(self, rnn, width):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(width, 3) if width else nn.Identity()

    def forward(self, x):
        return self.head(self.rnn(x)[0])


MODELS = {
    "elman": lambda: Predictor(ElmanRNN(3, 16, batch_first=True), 16),
    # Jordan's network predicts with its own output layer, which it also feeds back as its state
    "jordan": lambda: Predictor(JordanRNN(3, 16, 3, decay=0.5, output_activation="identity", batch_first=True), 0),
    "fully_recurrent": lambda: Predictor(FullyRecurrentRNN(3, 16, output_size=8, batch_first=True), 8),
    "rmlp": lambda: Predictor(RecurrentMLPLayer(3, (12, 12), output_size=3, batch_first=True), 0),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_learns_next_symbol_of_periodic_sequence(name):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(150):
        x, y = periodic_batch(16, 12, gen)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = periodic_batch(64, 20, gen)
    with torch.no_grad():
        pred = model(x).argmax(-1)
    # from the third step on, the two previous symbols determine the next one
    accuracy = float((pred[:, 2:] == y[:, 2:]).float().mean())
    assert accuracy == 1.0, f"{name}: accuracy {accuracy:.3f}"


def test_jordan_state_is_the_output_only_without_decay():
    """With mu = 0 the state is y_{t-1} itself (zoneout and recurrent dropout may act on it); with
    mu > 0 it is a decaying trace of all past outputs."""
    cell = Jordan(3, 4, 3, decay=0.0)
    assert cell.output_state == 0 and cell.dropout_states == (0,)
    assert Jordan(3, 4, 3, decay=0.5).output_state is None


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ElmanRNN(0, 4), "input_size: expected an integer >= 1, got 0"),
        (lambda: ElmanRNN(3, 4.0), "hidden_size: expected an integer >= 1, got 4.0"),
        (lambda: ElmanRNN(3, 4, nonlinearity="swish"), "nonlinearity: expected one of"),
        (lambda: ElmanRNN(3, 4, init="glorot"), "init: expected one of ['pytorch', 'keras'], got 'glorot'"),
        (lambda: ElmanRNN(3, 4, num_layers=0), "num_layers: expected an integer >= 1, got 0"),
        (lambda: ElmanRNN(3, 4, dropout=1.0), "dropout: expected a probability in [0, 1), got 1.0"),
        (lambda: ElmanRNN(3, 4, nonlinearity="softsign", fast=True), "fast: True asks for a fast path"),
        (lambda: JordanRNN(3, 4, 0), "output_size: expected an integer >= 1, got 0"),
        (lambda: JordanRNN(3, 4, 2, decay=1.0), "decay: expected a number in [0, 1), got 1.0"),
        (lambda: JordanRNN(3, 4, 2, output_activation="nope"), "output_activation: expected one of"),
        (lambda: JordanRNN(3, 4, 2, recurrent_dropout=0.2), "recurrent_dropout:"),
        (lambda: FullyRecurrentRNN(3, 4, output_size=5), "output_size: expected at most hidden_size=4"),
        (lambda: FullyRecurrentRNN(3, 4, output_size=2, zoneout=0.1), "zoneout: expected a cell whose output"),
        (lambda: RecurrentMLPLayer(3, ()), "hidden_sizes: expected a non-empty sequence"),
        (lambda: RecurrentMLPLayer(3, (4, 0)), "hidden_sizes: expected an integer >= 1, got 0"),
        (lambda: RecurrentMLP(3, "4"), "hidden_sizes: expected a non-empty sequence"),
        (lambda: Elman(3, 4, bias=True).reset_parameters({}, "he"), "init: expected one of"),
        (lambda: FullyRecurrent(3, 4, output_size=0), "output_size: expected an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_bad_inputs():
    rnn = ElmanRNN(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 5"):
        rnn(torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape \(2, 2, 4\)"):
        rnn(torch.randn(6, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="input: expected a Tensor or PackedSequence, got list"):
        rnn([1, 2, 3])
    with pytest.raises(ValueError, match="lengths: expected values in"):
        rnn(torch.randn(6, 2, 3), lengths=torch.tensor([7, 2]))
    rmlp = RecurrentMLPLayer(3, (4, 5))
    with pytest.raises(ValueError, match=r"hx: expected a tuple of 2 tensors \('h0', 'h1'\), got a Tensor"):
        rmlp(torch.randn(6, 2, 3), torch.zeros(1, 2, 4))


def test_vendor_path_and_refusals():
    assert ElmanRNN(3, 4).implementation == "vendor" and ElmanRNN(3, 4, nonlinearity="relu").implementation == "vendor"
    assert ElmanRNN(3, 4, zoneout=0.1).implementation == "reference"
    assert "the vendor ops take 'tanh' or 'relu' only" in Elman(3, 4, nonlinearity="softsign").vendor_refusal()
    for cell in (Jordan(3, 4, 2), FullyRecurrent(3, 4), RecurrentMLP(3, (4,))):
        assert cell.vendor_mode is None and isinstance(cell.vendor_refusal(), str)


def test_stream_reproduces_the_sequence():
    rnn = JordanRNN(3, 6, 2, num_layers=2).eval()
    x = torch.randn(7, 3)
    stream = rnn.stream()
    ys = torch.stack([stream.step(x_t) for x_t in x])
    assert torch.allclose(ys, rnn(x)[0], atol=1e-6)
