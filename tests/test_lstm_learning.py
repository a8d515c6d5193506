"""Each LSTM form learns a task it is known to solve: the adding problem (short version)."""

import pytest
import torch
from torch import nn

from carousel.datasets import adding_problem
from carousel.nn import LSTM

BASELINE = 1 / 6  # MSE of always answering the mean sum, 1

CONFIGS = {
    "standard": {},
    "reference_loop": dict(fast=False),
    **{v: dict(variant=v) for v in ("NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")},
    "greff_vanilla": dict(peepholes=True),
    "full_peephole": dict(variant="full_peephole"),
    "no_forget_gate_1997": dict(forget_gate=False),
    "layer_norm": dict(layer_norm=True),
    "recurrent_dropout": dict(recurrent_dropout=0.2),
    "zoneout": dict(zoneout=0.1),
    "dropout_between_layers": dict(num_layers=2, dropout=0.2),
    "projection_bidirectional": dict(proj_size=8, bidirectional=True),
}


class Model(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.lstm = LSTM(2, 16, batch_first=True, init="keras", **kw)
        width = (kw.get("proj_size") or 16) * (2 if kw.get("bidirectional") else 1)
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_learns_adding_problem(name):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Model(**CONFIGS[name])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_test, y_test = adding_problem(500, 10, generator=gen)
    for _ in range(500):
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
