"""The ``carousel`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch
from torch import nn

from carousel.datasets import adding_problem
from carousel.forecast_cli import add_parsers
from carousel.nn import LSTM


class _Regressor(nn.Module):
    def __init__(self, hidden: int, **options) -> None:
        super().__init__()
        self.lstm = LSTM(2, hidden, batch_first=True, **options)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def demo(args: argparse.Namespace) -> int:
    """Train an LSTM on the adding problem and compare it with the trivial baseline."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_test, y_test = adding_problem(1000, args.steps, generator=gen)
    model = _Regressor(args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    baseline = float(((y_test - 1.0) ** 2).mean())
    print(f"adding problem: {args.steps} steps, LSTM with {args.hidden} cells, batch {args.batch}")
    print(f"baseline (always answer 1, the mean): test MSE {baseline:.4f}")
    start = time.perf_counter()
    for it in range(1, args.iterations + 1):
        x, y = adding_problem(args.batch, args.steps, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it % args.report == 0 or it == args.iterations:
            with torch.no_grad():
                mse = float(nn.functional.mse_loss(model(x_test), y_test))
            elapsed = time.perf_counter() - start
            print(f"iteration {it:5d}  train MSE {float(loss.detach()):.4f}  test MSE {mse:.4f}  ({elapsed:.1f} s)")
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(model(x_test), y_test))
    print(f"LSTM test MSE {mse:.4f} vs baseline {baseline:.4f}: {baseline / max(mse, 1e-12):.0f}x lower")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carousel", description="Recurrent networks of the LSTM family.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train an LSTM on the adding problem (Hochreiter & Schmidhuber 1997)")
    p.add_argument("--steps", type=int, default=50, help="sequence length (default 50)")
    p.add_argument("--hidden", type=int, default=32, help="LSTM cells (default 32)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iterations", type=int, default=800)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=int, default=200, help="print progress every N iterations")
    p.set_defaults(run=demo)
    add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"carousel {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
