"""Progress output: a tqdm bar with loss, metrics and ETA on a terminal; one plain line per epoch
when the output is not a terminal or the ``CI`` environment variable is set."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from carousel.train.callbacks import Callback, Logs

if TYPE_CHECKING:
    from carousel.train.trainer import Trainer


def _format(logs: Logs) -> str:
    return "  ".join(f"{k} {v:.4g}" if k != "lr" else f"{k} {v:.3g}" for k, v in logs.items())


def use_bar(stream: Any = None) -> bool:
    """True when progress should be drawn as a bar: a terminal, and not running under CI."""
    stream = sys.stderr if stream is None else stream
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return not ci and hasattr(stream, "isatty") and stream.isatty()


class Progress(Callback):
    """The trainer's own progress display (``verbose=1``: bar or lines, ``2``: always lines)."""

    def __init__(self, *, bar: bool | None = None) -> None:
        self.bar = use_bar() if bar is None else bar
        self._tqdm = None
        self._start = 0.0
        self._seen = 0

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._start, self._seen = time.perf_counter(), 0
        if self.bar and trainer.is_main:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=trainer.steps_per_epoch, desc=f"epoch {epoch}/{trainer.epochs}",
                              unit="batch", leave=True, dynamic_ncols=True)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self._tqdm is not None:
            self._tqdm.update(1)
            self._seen += 1
            if self._seen % 10 == 1 or self._seen == trainer.steps_per_epoch:
                self._tqdm.set_postfix_str(f"loss {logs['loss']:.4g}", refresh=False)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if not trainer.is_main:
            return
        seconds = time.perf_counter() - self._start
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(_format(logs), refresh=True)
            self._tqdm.close()
            self._tqdm = None
        else:
            width = len(str(trainer.epochs))
            print(f"epoch {epoch:{width}d}/{trainer.epochs}  {_format(logs)}  ({seconds:.2f} s)", flush=True)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
