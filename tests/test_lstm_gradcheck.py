"""float64 gradcheck of every LSTM option, alone and with two bidirectional layers."""

import pytest
import torch
from torch.func import functional_call

from carousel.nn import LSTM

OPTIONS = {
    "standard": {},
    "reference_loop": dict(fast=False),
    "forget_gate=False": dict(forget_gate=False),
    "peepholes": dict(peepholes=True),
    **{f"variant={v}": dict(variant=v) for v in ("NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")},
    "full_peephole": dict(variant="full_peephole"),
    "activations": dict(
        gate_activation=lambda v: torch.sigmoid(2 * v), cell_activation="softsign", output_activation="identity"
    ),
    "layer_norm": dict(layer_norm=True),
    "proj_size": dict(proj_size=2),
    "init=keras": dict(init="keras"),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=(0.3, 0.2)),
    "zoneout_eval": dict(zoneout=0.4, eval=True),
    "return_cell_states": dict(return_cell_states=True),
    "lengths": dict(lengths=True),
}


def check(kw, layers, bidirectional, fast_mode):
    kw = dict(kw)
    eval_mode = kw.pop("eval", False)
    use_lengths = kw.pop("lengths", False)
    layer = LSTM(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64, **kw)
    layer.train(not eval_mode)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)  # (T, B, I)
    state = tuple(
        torch.randn(layers * (2 if bidirectional else 1), 2, n, dtype=torch.float64, requires_grad=True)
        for n in layer.cells[0].state_sizes
    )
    lengths = torch.tensor([4, 2]) if use_lengths else None

    def f(x, *args):
        hx, ps = args[: len(state)], args[len(state) :]
        torch.manual_seed(1)  # the same dropout/zoneout masks on every call
        res = functional_call(layer, dict(zip(names, ps)), (x, hx), dict(lengths=lengths))
        out, final = res[0], res[1]
        extra = [res[2]] if len(res) > 2 else []
        return (out, *final, *extra)

    assert torch.autograd.gradcheck(f, (x, *state, *params), fast_mode=fast_mode)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_gradcheck_single_layer(name):
    check(OPTIONS[name], 1, False, fast_mode=False)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_gradcheck_two_bidirectional_layers(name):
    check(OPTIONS[name], 2, True, fast_mode=True)


def test_gradcheck_combined_options():
    check(
        dict(
            peepholes=True,
            variant="CIFG",
            layer_norm=True,
            proj_size=2,
            zoneout=0.2,
            recurrent_dropout=0.2,
            return_cell_states=True,
            lengths=True,
        ),
        2,
        True,
        fast_mode=True,
    )
