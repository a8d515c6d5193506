"""A small training run, executed in fresh processes by tests/test_train.py (resume and torchrun)."""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from carousel.nn import LSTM
from carousel.train import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, fit, save_weights


class Model(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.lstm = LSTM(2, 12, batch_first=True)
        self.drop = nn.Dropout(dropout)  # draws from the RNG: resume must restore it
        self.head = nn.Linear(12, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.drop(out[:, -1]))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    x = torch.rand(96, 8, 2, generator=gen)
    return x, x[:, :, 0].sum(1, keepdim=True) - x[:, :, 1].mean(1, keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", required=True, help="final weights (safetensors)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--dropout", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Model(args.dropout)
    callbacks = [EarlyStopping("val_loss", patience=50), ReduceLROnPlateau(patience=1)]
    if args.checkpoint:
        callbacks.append(ModelCheckpoint(args.checkpoint))
    x, y = data()
    fit(model, (x, y), loss="mse", optimizer="adam", lr=3e-3, epochs=args.epochs, batch_size=args.batch_size,
        validation_split=0.25, callbacks=callbacks, shuffle=not args.no_shuffle, seed=7, verbose=2,
        resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    save_weights(model, args.out)


if __name__ == "__main__":
    main()
