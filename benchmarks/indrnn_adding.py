#!/usr/bin/env python
"""IndRNN on the adding problem at the length of the paper (T = 1000 by default).

Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A
Longer and Deeper RNN", CVPR, section 5.1: two IndRNN layers of 128 ReLU units, recurrent weights
initialised uniformly in [0, 1] and constrained to ``|u| <= 2^(1/T)``, a linear output on the last
step, MSE loss, Adam with learning rate 2e-4, batches of 50 fresh sequences. The data are those of
:func:`carousel.datasets.adding_problem` (values uniform in [0, 1], one marker in each half); always
answering the mean sum, 1, scores an MSE of 1/6, the baseline the network must beat.

Every ``--eval-every`` iterations it prints the iteration, the training loss (mean of the last
window), the MSE on a fixed test set of ``--test`` sequences and that MSE as a fraction of the
baseline, with the elapsed time. It is a long run on CPU (the recurrence is a Python loop over
1000 steps); ``--device cuda`` runs it on a GPU. Examples::

    python benchmarks/indrnn_adding.py                              # T = 1000, 10000 iterations
    python benchmarks/indrnn_adding.py --steps 500 --iterations 3000
    python benchmarks/indrnn_adding.py --steps 100 --iterations 500 --lr 1e-2 --hidden 32   # quick
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from carousel.cells.indrnn import recurrent_bound
from carousel.datasets import adding_problem
from carousel.nn.indrnn import IndRNN

BASELINE = 1 / 6


class Model(nn.Module):
    def __init__(self, hidden: int, layers: int, steps: int) -> None:
        super().__init__()
        self.rnn = IndRNN(2, hidden, num_layers=layers, batch_first=True, recurrent_max=recurrent_bound(steps))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="sequence length T (default 1000)")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--test", type=int, default=1000, help="test sequences")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    device = torch.device(args.device)
    model = Model(args.hidden, args.layers, args.steps).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    x_test, y_test = (t.to(device) for t in adding_problem(args.test, args.steps, generator=gen))
    print(
        f"IndRNN adding problem: T={args.steps}, {args.layers} x {args.hidden} ReLU units, "
        f"|u| <= 2^(1/T) = {recurrent_bound(args.steps):.6f}, Adam lr={args.lr}, batch {args.batch}, "
        f"device {device}, baseline MSE {BASELINE:.4f}"
    )
    print(f"{'iteration':>9} {'train MSE':>10} {'test MSE':>10} {'/ baseline':>10} {'seconds':>8}")
    start, window = time.perf_counter(), []
    for it in range(1, args.iterations + 1):
        x, y = (t.to(device) for t in adding_problem(args.batch, args.steps, generator=gen))
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(float(loss.detach()))
        if it % args.eval_every == 0 or it == args.iterations:
            model.eval()
            with torch.no_grad():
                mse = float(nn.functional.mse_loss(model(x_test), y_test))
            model.train()
            train = sum(window) / len(window)
            window = []
            elapsed = time.perf_counter() - start
            print(f"{it:>9} {train:>10.5f} {mse:>10.5f} {mse / BASELINE:>10.4f} {elapsed:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
