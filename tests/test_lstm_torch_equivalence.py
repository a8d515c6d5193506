"""carousel.nn.LSTM against torch.nn.LSTM: outputs, states, gradients, names, init, layouts."""

import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from carousel.nn import LSTM, LSTMCell

GRID = list(itertools.product([1, 2, 3], [False, True], [False, True], [0, 3]))


def pair(num_layers, bidirectional, batch_first, proj_size, fast, dtype=torch.float64, **kw):
    ref = torch.nn.LSTM(
        4, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional, proj_size=proj_size, dtype=dtype, **kw
    )
    ours = LSTM(
        4,
        5,
        num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
        dtype=dtype,
        fast=fast,
        **kw,
    )
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters()}


def assert_same(a, b, exact):
    if exact:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("layers,bidir,batch_first,proj", GRID)
def test_padded_equals_torch(layers, bidir, batch_first, proj, fast):
    ref, ours = pair(layers, bidir, batch_first, proj, fast)
    assert ours.implementation == ("vendor" if fast == "auto" else "reference")
    x = torch.randn((3, 6, 4) if batch_first else (6, 3, 4), dtype=torch.float64)
    d = 2 if bidir else 1
    h0 = torch.randn(layers * d, 3, proj or 5, dtype=torch.float64)
    c0 = torch.randn(layers * d, 3, 5, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_r, (h_r, c_r) = ref(x1, (h0, c0))
    out_o, (h_o, c_o) = ours(x2, (h0, c0))
    exact = fast == "auto"
    for a, b in ((out_r, out_o), (h_r, h_o), (c_r, c_o)):
        assert_same(b, a, exact)
    (out_r.sum() + h_r.sum() + c_r.square().sum()).backward()
    (out_o.sum() + h_o.sum() + c_o.square().sum()).backward()
    assert_same(x2.grad, x1.grad, exact)
    gr, go = grads(ref), grads(ours)
    assert gr.keys() == go.keys()
    for n in gr:
        assert_same(go[n], gr[n], exact)


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("layers,bidir,batch_first,proj", GRID)
def test_packed_and_lengths_equal_torch(layers, bidir, batch_first, proj, fast):
    ref, ours = pair(layers, bidir, batch_first, proj, fast)
    lengths = torch.tensor([4, 7, 2, 7, 5])
    x = torch.randn((5, 7, 4) if batch_first else (7, 5, 4), dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out_r, (h_r, c_r) = ref(packed)
    out_p, (h_p, c_p) = ours(packed)
    exact = fast == "auto"
    assert torch.equal(out_p.batch_sizes, out_r.batch_sizes)
    assert torch.equal(out_p.sorted_indices, out_r.sorted_indices)
    assert_same(out_p.data, out_r.data, exact)
    assert_same(h_p, h_r, exact)
    assert_same(c_p, c_r, exact)
    # the same batch, padded, with lengths= and with mask=
    padded_r, _ = pad_packed_sequence(out_r, batch_first=batch_first, total_length=7)
    out_l, (h_l, c_l) = ours(x, lengths=lengths)
    assert_same(out_l, padded_r, exact)
    assert_same(h_l, h_r, exact)
    assert_same(c_l, c_r, exact)
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    out_m, _ = ours(x, mask=mask if batch_first else mask.t())
    assert_same(out_m, padded_r, exact)
    # gradients through the packed path
    xr = x.clone().requires_grad_()
    xo = x.clone().requires_grad_()
    o_r, (hr, _) = ref(pack_padded_sequence(xr, lengths, batch_first=batch_first, enforce_sorted=False))
    o_o, (ho, _) = ours(xo, lengths=lengths)
    (pad_packed_sequence(o_r, batch_first=batch_first, total_length=7)[0].sum() + hr.sum()).backward()
    (o_o.sum() + ho.sum()).backward()
    assert_same(xo.grad, xr.grad, exact)
    for n, g in grads(ref).items():
        assert_same(grads(ours)[n], g, exact)


@pytest.mark.parametrize("fast", ["auto", False])
def test_unbatched_and_default_state(fast):
    ref, ours = pair(2, True, False, 0, fast)
    x = torch.randn(6, 4, dtype=torch.float64)
    out_r, (h_r, c_r) = ref(x)
    out_o, (h_o, c_o) = ours(x)
    assert out_o.shape == (6, 10) and h_o.shape == (4, 5)
    torch.testing.assert_close(out_o, out_r)
    torch.testing.assert_close(c_o, c_r)
    h0, c0 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x, (h0, c0))[0], ref(x, (h0, c0))[0])


def test_parameter_names_layout_and_pytorch_init_match_torch():
    for kw in ({}, {"num_layers": 3, "bidirectional": True, "proj_size": 2}, {"bias": False}):
        torch.manual_seed(1)
        ref = torch.nn.LSTM(4, 5, **kw)
        torch.manual_seed(1)
        ours = LSTM(4, 5, **kw)
        assert [(n, p.shape) for n, p in ref.named_parameters()] == [(n, p.shape) for n, p in ours.named_parameters()]
        for (n, p), (_, q) in zip(ref.named_parameters(), ours.named_parameters()):
            assert torch.equal(p, q), n


def test_dropout_between_layers_matches_torch_on_vendor_path():
    ref, ours = pair(2, False, False, 0, "auto", dropout=0.5)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
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
def test_lstm_cell_equals_torch(fast, bias):
    ref = torch.nn.LSTMCell(4, 5, bias=bias, dtype=torch.float64)
    ours = LSTMCell(4, 5, bias=bias, dtype=torch.float64, fast=fast)
    assert [n for n, _ in ref.named_parameters()] == [n for n, _ in ours.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, dtype=torch.float64)
    hx = (torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64))
    for a, b in zip(ref(x, hx), ours(x, hx)):
        torch.testing.assert_close(b, a)
    for a, b in zip(ref(x[0]), ours(x[0])):
        torch.testing.assert_close(b, a)
    ref(x, hx)[1].sum().backward()
    ours(x, hx)[1].sum().backward()
    for (n, p), (_, q) in zip(ref.named_parameters(), ours.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=n)
