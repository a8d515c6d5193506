"""Bad input gets an error that names the argument and says what was expected and what came."""

import pytest
import torch

from carousel.nn import LSTM, LSTMCell


@pytest.fixture(params=["auto", False])
def lstm(request):
    return LSTM(3, 4, num_layers=2, fast=request.param)


def test_input_dimensions(lstm):
    with pytest.raises(ValueError, match=r"input: expected a 3-D .* got 4-D"):
        lstm(torch.randn(2, 3, 4, 3))
    with pytest.raises(ValueError, match=r"input: expected a 3-D .* got 1-D"):
        lstm(torch.randn(3))
    with pytest.raises(TypeError, match="input: expected a Tensor or PackedSequence, got list"):
        lstm([[1.0, 2.0, 3.0]])


def test_feature_size(lstm):
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\).*got 5"):
        lstm(torch.randn(6, 2, 5))


def test_dtype_and_device(lstm):
    with pytest.raises(TypeError, match="input: expected dtype torch.float32 .* got torch.float64"):
        lstm(torch.randn(6, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="input: expected device cpu .* got meta"):
        lstm(torch.randn(6, 2, 3, device="meta"))
    h = torch.zeros(2, 2, 4)
    with pytest.raises(TypeError, match=r"hx\[1\] \(c_0\): expected dtype torch.float32"):
        lstm(torch.randn(6, 2, 3), (h, h.double()))


def test_state_shapes(lstm):
    x = torch.randn(6, 2, 3)
    h = torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        lstm(x, (torch.zeros(1, 2, 4), h))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\): expected shape \(2, 4\).*unbatched.*got \(2, 2, 4\)"):
        lstm(x[:, 0], (torch.zeros(2, 4), h))
    with pytest.raises(ValueError, match=r"hx: expected a tuple of 2 tensors \('h', 'c'\), got a Tensor"):
        lstm(x, h)
    with pytest.raises(ValueError, match="hx: expected a tuple of 2 tensors .* got a tuple of 3"):
        lstm(x, (h, h, h))


def test_lengths_and_mask(lstm):
    x = torch.randn(6, 2, 3)
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 6\].*got min 0 and max 6"):
        lstm(x, lengths=torch.tensor([6, 0]))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 6\].*max 7"):
        lstm(x, lengths=[7, 2])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\)"):
        lstm(x, lengths=torch.tensor([6, 2, 1]))
    with pytest.raises(TypeError, match="lengths: expected an integer dtype, got torch.float32"):
        lstm(x, lengths=torch.tensor([6.0, 2.0]))
    with pytest.raises(ValueError, match="expected lengths= or mask=, got both"):
        lstm(x, lengths=[6, 2], mask=torch.ones(6, 2, dtype=torch.bool))
    holes = torch.ones(6, 2, dtype=torch.bool)
    holes[2, 0] = False
    with pytest.raises(ValueError, match="mask: expected True on a prefix"):
        lstm(x, mask=holes)
    with pytest.raises(ValueError, match=r"mask: expected shape \(6, 2\)"):
        lstm(x, mask=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        lstm(x, mask=torch.ones(6, 2))
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [6, 2])
    with pytest.raises(ValueError, match="PackedSequence carries its own lengths"):
        lstm(packed, lengths=[6, 2])


def test_lengths_need_no_sorting(lstm):
    x = torch.randn(6, 3, 3)
    out, _ = lstm(x, lengths=[2, 6, 4])
    assert out[2:, 0].abs().sum() == 0 and out[4:, 2].abs().sum() == 0


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(variant="NXG"), "variant: expected one of"),
        (dict(gate_activation="swishy"), "gate_activation: expected one of"),
        (dict(init="glorot"), "init: expected one of"),
        (dict(proj_size=4), "proj_size: expected a value smaller than hidden_size=4, got 4"),
        (dict(dropout=1.5), r"dropout: expected a probability in \[0, 1\), got 1.5"),
        (dict(recurrent_dropout=-0.1), "recurrent_dropout: expected a probability"),
        (dict(zoneout=(0.1, 0.2, 0.3)), "zoneout: expected a rate or 2 rates"),
        (dict(variant="NP", peepholes=True), "peepholes: variant 'NP' means no peepholes"),
        (dict(variant="NIAF", cell_activation="tanh"), "cell_activation: variant 'NIAF' fixes it to 'identity'"),
        (dict(variant="CIFG", forget_gate=False), "forget_gate: variant 'CIFG'"),
        (dict(variant="FGR", forget_gate=False), "variant: 'FGR' needs"),
        (dict(num_layers=0), "num_layers: expected an integer >= 1, got 0"),
    ],
)
def test_constructor_arguments(kw, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        LSTM(**args)


def test_sizes():
    with pytest.raises(ValueError, match="hidden_size: expected an integer >= 1, got 0"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="input_size: expected an integer >= 1, got 2.5"):
        LSTM(2.5, 3)


def test_cell_errors():
    cell = LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 2"):
        cell(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h\): expected shape \(5, 4\), got \(4, 4\)"):
        cell(torch.randn(5, 3), (torch.zeros(4, 4), torch.zeros(5, 4)))
    with pytest.raises(ValueError, match="hx: expected a tuple of 2 tensors .* got a Tensor"):
        cell(torch.randn(5, 3), torch.zeros(5, 4))
    with pytest.raises(TypeError, match="input: expected dtype torch.float32"):
        cell(torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="input: expected a 2-D"):
        cell(torch.randn(1, 5, 3))
