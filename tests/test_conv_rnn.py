"""ConvLSTM (Shi et al. 2015) and ConvGRU (Ballas et al. 2016) in 1-D, 2-D and 3-D: the layers against
a plain loop of the papers' equations written here with torch.nn.functional.conv{1,2,3}d, stacking,
directions, lengths and packing, gradcheck, learning to predict a moving bump, and error messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.cells.conv import ConvGRU, ConvLSTM
from carousel.nn.conv import ConvGRU1d, ConvGRU2d, ConvGRU3d, ConvLSTM1d, ConvLSTM2d, ConvLSTM3d
from carousel.runner.scan import scan

F64 = torch.float64
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
LSTMS = {1: ConvLSTM1d, 2: ConvLSTM2d, 3: ConvLSTM3d}
GRUS = {1: ConvGRU1d, 2: ConvGRU2d, 3: ConvGRU3d}
FRAMES = {1: (7,), 2: (4, 5), 3: (3, 3, 4)}


# ---------------------------------------------------------------- the papers' equations, one step at a time
def conv_lstm_loop(x, p, h, c, dims):
    """Shi et al. (2015), eq. (3): x (T, B, C_in, *S); p the cell's parameters; returns (H_1..H_T, H_T, C_T)."""
    conv = CONV[dims]
    Wx = p["weight_ih"].chunk(4, 0)
    Wh = p["weight_hh"].chunk(4, 0)
    b = p["bias"].chunk(4, 0) if "bias" in p else (None,) * 4
    zero = torch.zeros_like(c)
    Wci, Wcf, Wco = (p.get(f"weight_c{g}", zero) for g in "ifo")
    outs = []
    for X in x:

        def pre(k, X=X, h=h):
            return conv(X, Wx[k], b[k], padding="same") + conv(h, Wh[k], padding="same")

        i = torch.sigmoid(pre(0) + Wci * c)
        f = torch.sigmoid(pre(1) + Wcf * c)
        c = f * c + i * torch.tanh(pre(2))
        o = torch.sigmoid(pre(3) + Wco * c)
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def conv_gru_loop(x, p, h, dims):
    """Ballas et al. (2016), eq. (4)-(7), with a bias per block."""
    conv = CONV[dims]
    Wz, Wr, W = p["weight_ih"].chunk(3, 0)
    Uz, Ur, U = p["weight_hh"].chunk(3, 0)
    bz, br, b = p["bias"].chunk(3, 0) if "bias" in p else (None,) * 3
    outs = []
    for X in x:
        z = torch.sigmoid(conv(X, Wz, bz, padding="same") + conv(h, Uz, padding="same"))
        r = torch.sigmoid(conv(X, Wr, br, padding="same") + conv(h, Ur, padding="same"))
        cand = torch.tanh(conv(X, W, b, padding="same") + conv(r * h, U, padding="same"))
        h = (1 - z) * h + z * cand
        outs.append(h)
    return torch.stack(outs), h


def reference(layer, x, state, lengths):
    """The layer's whole computation from the loops above, one sequence at a time: stacking by feeding
    each layer the channel-concatenation of the directions below, the reverse direction on the flipped
    sequence within its length. Returns (output, final states)."""
    is_lstm = isinstance(layer, tuple(LSTMS.values()))
    dims, D = layer.dims, 2 if layer.bidirectional else 1
    T, B = x.shape[:2]
    out = x.new_zeros(T, B, D * layer.hidden_channels, *layer.spatial_size)
    finals = [x.new_zeros(s.shape) for s in state]
    for b in range(B):
        n = int(lengths[b])
        inp = x[:n, b : b + 1]
        for k in range(layer.num_layers):
            ys = []
            for d in range(D):
                idx = k * D + d
                p = layer.cell_parameters(k, d)
                seq = inp.flip(0) if d else inp
                s0 = [s[idx, b : b + 1] for s in state]
                if is_lstm:
                    y, hT, cT = conv_lstm_loop(seq, p, s0[0], s0[1], dims)
                    finals[0][idx, b], finals[1][idx, b] = hT[0], cT[0]
                else:
                    y, hT = conv_gru_loop(seq, p, s0[0], dims)
                    finals[0][idx, b] = hT[0]
                ys.append(y.flip(0) if d else y)
            inp = torch.cat(ys, dim=2)
        out[:n, b] = inp[:, 0]
    return out, finals


def random_state(layer, B):
    D = 2 if layer.bidirectional else 1
    shape = (D * layer.num_layers, B, layer.hidden_channels, *layer.spatial_size)
    n = 2 if isinstance(layer, tuple(LSTMS.values())) else 1
    return [torch.randn(shape, dtype=F64) for _ in range(n)]


def as_hx(state):
    return tuple(state) if len(state) == 2 else state[0]


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


# ---------------------------------------------------------------- against the equations
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["lstm", "lstm-channel", "lstm-none", "gru"])
def test_one_layer_equals_equations(dims, kind):
    frame = FRAMES[dims]
    if kind == "gru":
        layer = GRUS[dims](2, 3, 3, spatial_size=frame, dtype=F64)
    else:
        peep = {"lstm": True, "lstm-channel": "channel", "lstm-none": False}[kind]
        layer = LSTMS[dims](2, 3, 3, spatial_size=frame, peepholes=peep, dtype=F64)
    assert layer.implementation == "reference"
    x = torch.randn(4, 2, 2, *frame, dtype=F64)
    state = random_state(layer, 2)
    out, final = layer(x, as_hx(state))
    ref_out, ref_final = reference(layer, x, state, [4, 4])
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(as_list(final), ref_final):
        torch.testing.assert_close(a, b)


def test_peephole_shapes():
    layer = ConvLSTM2d(2, 3, (3, 5), spatial_size=(4, 6))
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (12, 2, 3, 5),
        "weight_hh_l0": (12, 3, 3, 5),
        "bias_l0": (12,),
        "weight_ci_l0": (3, 4, 6),
        "weight_cf_l0": (3, 4, 6),
        "weight_co_l0": (3, 4, 6),
    }
    channel = ConvLSTM3d(1, 2, 3, spatial_size=5, peepholes="channel", bias=False)
    assert {n: tuple(p.shape) for n, p in channel.named_parameters() if "_c" in n} == {
        f"weight_c{g}_l0": (2, 1, 1, 1) for g in "ifo"
    }
    assert "bias_l0" not in dict(channel.named_parameters())
    gru = ConvGRU1d(2, 3, 5, spatial_size=9, num_layers=2, bidirectional=True)
    assert tuple(gru.weight_ih_l1_reverse.shape) == (9, 6, 5)


@pytest.mark.parametrize(
    "cls,dims,batch_first",
    [(ConvLSTM1d, 1, False), (ConvLSTM2d, 2, True), (ConvGRU1d, 1, True), (ConvGRU2d, 2, False)],
)
def test_stacked_bidirectional_lengths(cls, dims, batch_first):
    frame = FRAMES[dims]
    layer = cls(2, 3, 3, num_layers=2, bidirectional=True, batch_first=batch_first, spatial_size=frame, dtype=F64)
    x = torch.randn(5, 3, 2, *frame, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    state = random_state(layer, 3)
    inp = x.transpose(0, 1) if batch_first else x
    out, final = layer(inp, as_hx(state), lengths=lengths)
    if batch_first:
        out = out.transpose(0, 1)
    ref_out, ref_final = reference(layer, x, state, lengths)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(as_list(final), ref_final):
        torch.testing.assert_close(a, b)
    # a mask gives the same, and packing gives the same
    mask = torch.arange(5).unsqueeze(1) < lengths.unsqueeze(0)
    out_m, _ = layer(inp, as_hx(state), mask=mask.t() if batch_first else mask)
    torch.testing.assert_close(out_m, out.transpose(0, 1) if batch_first else out)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    layer.batch_first = False
    out_p, final_p = layer(packed, as_hx(state))
    torch.testing.assert_close(pad_packed_sequence(out_p, total_length=5)[0], ref_out)
    for a, b in zip(as_list(final_p), ref_final):
        torch.testing.assert_close(a, b)


def test_unbatched_and_return_states():
    layer = ConvLSTM2d(2, 3, 3, spatial_size=(4, 5), dtype=F64, return_states=("c",))
    x = torch.randn(4, 2, 4, 5, dtype=F64)
    out, (h, c), cs = layer(x)
    out_b, (h_b, c_b), cs_b = layer(x.unsqueeze(1))
    assert out.shape == (4, 3, 4, 5) and h.shape == (1, 3, 4, 5) and cs.shape == (4, 3, 4, 5)
    torch.testing.assert_close(out, out_b[:, 0])
    torch.testing.assert_close(c, c_b[:, 0])
    torch.testing.assert_close(cs[-1], c[0])


def test_bidirectional_per_step_states_concatenate_channels():
    layer = ConvGRU1d(2, 3, 3, spatial_size=6, bidirectional=True, dtype=F64, return_states=("h",))
    x = torch.randn(4, 2, 2, 6, dtype=F64)
    out, h_n, hs = layer(x, lengths=torch.tensor([4, 3]))
    assert hs.shape == (4, 2, 6, 6)
    torch.testing.assert_close(hs, out)
    torch.testing.assert_close(hs[3, 0, :3], h_n[0, 0])  # forward direction ends at the last step
    torch.testing.assert_close(hs[0, :, 3:], h_n[1])  # backward direction ends at the first step


def test_dropout_and_zoneout_run_on_feature_maps():
    layer = ConvGRU2d(1, 2, 3, spatial_size=(4, 4), recurrent_dropout=0.5, zoneout=0.3, num_layers=2, dropout=0.2)
    x = torch.randn(3, 2, 1, 4, 4)
    layer.train()
    out, h = layer(x)
    assert out.shape == (3, 2, 2, 4, 4) and h.shape == (2, 2, 2, 4, 4)
    out.sum().backward()
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])


def test_cell_runs_on_the_runner_loop_with_native_state():
    """The cells' own state is (B, C_h, *spatial): the runner's loop runs them as they are."""
    cell = ConvLSTM(2, 3, 3, dims=2, spatial_size=(4, 5))
    params = {n: torch.randn(s, dtype=F64) * 0.3 for n, s in cell.parameter_shapes().items()}
    x = torch.randn(4, 2, 2, 4, 5, dtype=F64)
    s0 = cell.init_state(2, dtype=F64, device=x.device)
    y, (h, c), _ = scan(cell, params, cell.project(params, x), s0)
    ref, h_ref, c_ref = conv_lstm_loop(x, params, *s0, 2)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(c, c_ref)


def test_native_state_with_lengths_on_the_runner_loop():
    cell = ConvGRU(1, 2, 3, dims=2, spatial_size=(4, 5))
    params = {n: torch.randn(s) for n, s in cell.parameter_shapes().items()}
    x = torch.randn(3, 2, 1, 4, 5)
    y, (h,), _ = scan(
        cell,
        params,
        cell.project(params, x),
        cell.init_state(2, dtype=x.dtype, device=x.device),
        lengths=torch.tensor([3, 1]),
    )
    ref, h_ref = conv_gru_loop(x[:1, 1:], params, torch.zeros(1, 2, 4, 5), 2)
    torch.testing.assert_close(h[1:], h_ref)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "cls,kernel,frame,bidirectional",
    [(ConvLSTM2d, 3, (3, 3), False), (ConvGRU1d, 3, (5,), True), (ConvLSTM3d, (3, 1, 3), (2, 2, 3), False)],
)
def test_gradcheck(cls, kernel, frame, bidirectional):
    layer = cls(1, 2, kernel, spatial_size=frame, bidirectional=bidirectional, dtype=F64)
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(3, 2, 1, *frame, dtype=F64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(x, *ps):
        out, state = functional_call(layer, dict(zip(names, ps)), (x,), {"lengths": torch.tensor([3, 2])})
        return out, *as_list(state)

    assert torch.autograd.gradcheck(f, (x, *params))


# ---------------------------------------------------------------- learning
def moving_bumps(n, steps, width, generator):
    """A Gaussian bump moving on a ring of ``width`` cells at a constant velocity of -1, +1 or +2 cells
    per step: (steps + 1, n, 1, width)."""
    pos0 = torch.randint(0, width, (n,), generator=generator).float()
    vel = torch.tensor([-1.0, 1.0, 2.0])[torch.randint(0, 3, (n,), generator=generator)]
    t = torch.arange(steps + 1).float().view(-1, 1, 1)
    centre = (pos0.view(1, -1, 1) + vel.view(1, -1, 1) * t) % width
    grid = torch.arange(width).float().view(1, 1, -1)
    dist = torch.minimum((grid - centre).abs(), width - (grid - centre).abs())
    return torch.exp(-0.5 * dist.square()).unsqueeze(2)


def test_learns_next_frame_of_moving_bump():
    g = torch.Generator().manual_seed(0)
    width, steps = 16, 8
    model = ConvLSTM1d(1, 8, 5, spatial_size=width, init="keras")
    head = torch.nn.Conv1d(8, 1, 1)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=0.02)

    def predict(frames):
        out, _ = model(frames)
        T, B = out.shape[:2]
        return head(out.flatten(0, 1)).view(T, B, 1, width)

    for _ in range(120):
        seq = moving_bumps(32, steps, width, g)
        loss = F.mse_loss(predict(seq[:-1])[2:], seq[1:][2:])  # from the third frame on, velocity is observable
        opt.zero_grad()
        loss.backward()
        opt.step()
    seq = moving_bumps(256, steps, width, g)
    with torch.no_grad():
        ours = F.mse_loss(predict(seq[:-1])[2:], seq[1:][2:]).item()
    copy = F.mse_loss(seq[:-1][2:], seq[1:][2:]).item()
    assert ours < 0.25 * copy, (ours, copy)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: ConvLSTM(2, 3, 3, dims=4, spatial_size=5), r"dims: expected 1, 2 or 3, got 4"),
        (lambda: ConvLSTM(0, 3, 3, dims=1, spatial_size=5), r"in_channels: expected an integer >= 1, got 0"),
        (lambda: ConvGRU(2, 3, (3, 3), dims=1, spatial_size=5), r"kernel_size: expected .* 1 positive integers, got"),
        (lambda: ConvLSTM(2, 3, 3, dims=2, spatial_size=(4,)), r"spatial_size: expected .* 2 positive integers"),
        (lambda: ConvLSTM(2, 3, 3, dims=1, spatial_size=5, peepholes="full"), r"peepholes: expected True, False"),
        (lambda: ConvGRU(2, 3, 3, dims=1, spatial_size=5, padding="valid"), r"padding: expected 'same'.*'valid'"),
        (
            lambda: ConvLSTM2d(2, 3, 3, spatial_size=(4, 4), fast=True),
            r"fast: True asks for a fast path, but .* no vendor fused op",
        ),
        (lambda: ConvGRU1d(2, 3, 3, spatial_size=4, init="xavier"), r"init: expected one of"),
    ],
)
def test_constructor_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_forward_errors():
    layer = ConvLSTM2d(2, 3, 3, spatial_size=(4, 5))
    with pytest.raises(ValueError, match=r"input: expected a 5-D batched tensor \(time, batch, channels, h, w\) "):
        layer(torch.randn(3, 2, 2, 4, 5, 1))
    with pytest.raises(ValueError, match=r"input: expected each step of shape \(2, 4, 5\), got \(1, 4, 5\)"):
        layer(torch.randn(3, 2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"input: expected each step of shape \(2, 4, 5\), got \(2, 5, 4\)"):
        layer(torch.randn(3, 2, 2, 5, 4))
    with pytest.raises(TypeError, match=r"input: expected a Tensor or PackedSequence, got list"):
        layer([1.0])
    x = torch.randn(3, 2, 2, 4, 5)
    with pytest.raises(ValueError, match=r"hx: expected a tuple of 2 tensors \('h', 'c'\), got a Tensor"):
        layer(x, torch.zeros(1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\): expected shape \(1, 2, 3, 4, 5\) .* got \(1, 2, 4, 4, 5\)"):
        layer(x, (torch.zeros(1, 2, 3, 4, 5), torch.zeros(1, 2, 4, 4, 5)))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape"):
        layer(x, (torch.zeros(2, 2, 3, 4, 5), torch.zeros(2, 2, 3, 4, 5)))
    with pytest.raises(TypeError, match=r"input: expected dtype torch.float32"):
        layer(x.double())
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 3\]"):
        layer(x, lengths=torch.tensor([4, 1]))
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., batch, 2, 4, 5\)"):
        cell = getattr(layer.cells[0], "cell", layer.cells[0])
        cell.project(layer.cell_parameters(0), torch.randn(3, 2, 3, 4, 5))


def test_stream_steps_frame_by_frame():
    layer = ConvLSTM2d(1, 2, 3, num_layers=2, spatial_size=(4, 5), dtype=F64).eval()
    x = torch.randn(6, 3, 1, 4, 5, dtype=F64)
    stream = layer.stream(batch=3)
    ys = torch.stack([stream.step(x_t) for x_t in x])
    torch.testing.assert_close(ys, layer(x)[0])
    single = layer.stream()
    y0 = single.step(x[0, 0])  # unbatched frame (C, H, W)
    torch.testing.assert_close(y0, layer(x[:1, :1])[0][0, 0])
