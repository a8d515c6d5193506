"""Streaming inference reproduces the layer step by step, on every implementation."""

import pytest
import torch

from carousel.nn import LSTM


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(peepholes=True, zoneout=0.2, proj_size=3),
        dict(fast=False, variant="FGR"),
        dict(batch_first=True, layer_norm=True),
        dict(variant="full_peephole", return_cell_states=True),
    ],
    ids=["vendor", "fused", "reference", "batch_first", "full_peephole"],
)
def test_stream_equals_layer(kw):
    layer = LSTM(3, 6, num_layers=2, dtype=torch.float64, **kw).eval()
    x = (
        torch.randn(2, 7, 3, dtype=torch.float64)
        if kw.get("batch_first")
        else torch.randn(7, 2, 3, dtype=torch.float64)
    )
    stream = layer.stream(batch=2)
    steps = [x[:, t] for t in range(7)] if kw.get("batch_first") else list(x)
    ys = torch.stack([stream.step(x_t) for x_t in steps], 1 if kw.get("batch_first") else 0)
    res = layer(x)
    torch.testing.assert_close(ys, res[0])
    for got, want in zip(stream.state, res[1]):
        torch.testing.assert_close(got, want)


def test_stream_unbatched_reset_and_state():
    layer = LSTM(3, 4, dtype=torch.float64, peepholes=True).eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    stream = layer.stream()
    first = torch.stack([stream.step(x_t) for x_t in x])
    assert first.shape == (5, 4)
    stream.reset()
    again = torch.stack([stream.step(x_t) for x_t in x])
    torch.testing.assert_close(first, again)
    h0 = (torch.randn(1, 1, 4, dtype=torch.float64), torch.randn(1, 1, 4, dtype=torch.float64))
    stream.reset(h0)
    ys = torch.stack([stream.step(x_t) for x_t in x])
    torch.testing.assert_close(ys, layer(x, tuple(s[:, 0] for s in h0))[0])


def test_stream_errors():
    with pytest.raises(ValueError, match="layer: expected a unidirectional layer"):
        LSTM(3, 4, bidirectional=True).stream()
    stream = LSTM(3, 4).stream(batch=2)
    with pytest.raises(ValueError, match="x_t: expected 3 features"):
        stream.step(torch.randn(2, 5))
    with pytest.raises(ValueError, match="x_t: expected a"):
        stream.step(torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match="batch: expected an integer >= 1"):
        LSTM(3, 4).stream(batch=0)
