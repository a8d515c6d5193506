#!/usr/bin/env python
"""Speed of ``carousel.nn.LSTM`` against ``torch.nn.LSTM``, side by side in one process.

For every selected configuration, size and mode the two modules are warmed up, then timed in
interleaved pairs (torch, carousel in one repeat, carousel, torch in the next, and so on); each
sample runs the call ``number`` times in a row, with ``number`` chosen so that a sample lasts at
least ``--min-time`` seconds. The table reports the median time per call of each implementation,
the ratio of the medians (carousel / torch; below 1 means carousel is faster) and the median and
quartiles of the per-pair ratios, which show how noisy the row was (the two calls of a pair run back
to back, so the paired ratio is the less sensitive of the two to bursts of load on the machine).

Configurations:

* ``standard``: the configuration of ``torch.nn.LSTM``; carousel runs torch's fused op
  (``implementation == "vendor"``) with the same weights, so the ratio measures carousel's overhead.
* ``peepholes``, ``CIFG``, ``layer_norm``, ``zoneout``, ``recurrent_dropout``: options that
  ``torch.nn.LSTM`` does not have; carousel runs them on its own fused engine (``"fused"``) when
  that is available, else on the reference loop (``"reference"``); the table's ``impl`` column says
  which. The weights shared with torch are copied and the ratio is against the plain
  ``torch.nn.LSTM`` of the same size.
* ``reference``: the standard configuration with ``fast=False`` (the reference loop).

The fused engine is compiled or loaded once, before any timing, by running a small layer that
needs it; the header reports how long that took and which implementation the layer got.

Modes: ``forward`` (under ``torch.no_grad()``) and ``forward+backward`` (``output.sum().backward()``;
gradients are cleared before every sample). Every module is in training mode, in both modes, so that
zoneout and recurrent dropout are active in the forward timings too.

Each row gets about ``--budget`` seconds: repeats are cut to fit, and a row that could not fit a
warm-up and one timed pair (estimated from a pair of calls on the first quarter of the sequence,
assuming a cost quadratic in its length) is skipped and listed as such; ``--budget 0`` removes the
limit. Progress goes to stderr, the table to stdout.

Examples::

    python benchmarks/speed.py                          # everything, a few minutes
    python benchmarks/speed.py --quick                  # small sizes, few repeats
    python benchmarks/speed.py --configs standard --sizes 3 --repeats 31
    python benchmarks/speed.py --threads 1 --markdown /tmp/speed.md

On a machine with few cores, other processes disturb multi-threaded timings of small sizes a lot
(the ``others' CPU`` column shows how busy the machine was); ``--threads 1`` is steadier there.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from _machine import OtherLoad, load_average
from carousel.nn import CTRNN, GRU, LSTM, MUT3, SLSTM, ElmanRNN, FullyRecurrentRNN, IndRNN, JordanRNN, RecurrentMLP

# (input_size, hidden_size, batch, steps)
SIZES: list[tuple[int, int, int, int]] = [
    (1, 50, 32, 12),
    (32, 128, 32, 100),
    (128, 256, 64, 200),
    (256, 512, 32, 500),
    (64, 64, 1, 1000),
]
QUICK_SIZES = (0, 1, 4)

CONFIGS: dict[str, dict[str, object]] = {
    "standard": {},
    "peepholes": {"peepholes": True},
    "CIFG": {"variant": "CIFG"},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.1},
    "recurrent_dropout": {"recurrent_dropout": 0.1},
    "reference": {"fast": False},
}
# The other cells of the family, each against the same torch.nn.LSTM (the common yardstick), with
# what runs them in the impl column: `--configs cells` runs them all.
CELLS: dict[str, Callable[[int, int], torch.nn.Module]] = {
    "GRU": lambda i, h: GRU(i, h),
    "GRU_reset_before": lambda i, h: GRU(i, h, reset_after=False),
    "MGU": lambda i, h: GRU(i, h, variant="MGU"),
    "Elman": lambda i, h: ElmanRNN(i, h),
    "Jordan": lambda i, h: JordanRNN(i, h, h),
    "IndRNN": lambda i, h: IndRNN(i, h),
    "MUT3": lambda i, h: MUT3(i, h),
    "FullyRecurrent": lambda i, h: FullyRecurrentRNN(i, h),
    "RecurrentMLP": lambda i, h: RecurrentMLP(i, (h,)),
    "CTRNN": lambda i, h: CTRNN(i, h),
    "sLSTM": lambda i, h: SLSTM(i, h, num_heads=4 if h % 4 == 0 else 1),
}
# Not timed here: the second-order RNN (its H x H x I weight tensor is 256 MB at the largest size),
# mLSTM (a (H/heads)^2 matrix memory per head and row), the T-LSTM (it takes elapsed times) and the
# convolutional cells (feature-map inputs).
MODES = ("forward", "forward+backward")

# Default repeats (pairs): (standard, other configurations), normal and --quick.
DEFAULT_REPEATS = {False: (15, 2), True: (5, 2)}


@dataclass
class Row:
    config: str
    implementation: str
    size: tuple[int, int, int, int]
    mode: str
    torch_s: list[float] = field(default_factory=list)
    carousel_s: list[float] = field(default_factory=list)
    number: int = 0
    others: float | None = None
    note: str = ""

    @property
    def repeats(self) -> int:
        return min(len(self.torch_s), len(self.carousel_s))

    def ratio(self) -> float:
        return statistics.median(self.carousel_s) / statistics.median(self.torch_s)

    def paired(self) -> tuple[float, float, float] | None:
        """Median and quartiles of the per-pair ratios (the two calls of a pair run back to back,
        so a burst of load on the machine hits both)."""
        pairs = [c / t for c, t in zip(self.carousel_s, self.torch_s)]
        if len(pairs) < 2:
            return None
        q = statistics.quantiles(pairs, n=4, method="inclusive")
        return statistics.median(pairs), q[0], q[2]


def parse_sizes(text: str) -> list[int]:
    if text == "all":
        return list(range(len(SIZES)))
    try:
        picked = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or indices such as 0,2, got {text!r}") from None
    bad = [i for i in picked if not 0 <= i < len(SIZES)]
    if bad or not picked:
        raise argparse.ArgumentTypeError(f"expected indices in 0..{len(SIZES) - 1}, got {text!r}")
    return picked


def parse_configs(text: str) -> list[str]:
    if text == "all":
        return [*CONFIGS, *CELLS]
    if text == "cells":
        return list(CELLS)
    by_lower = {name.lower(): name for name in [*CONFIGS, *CELLS]}
    picked = []
    for name in (s.strip() for s in text.split(",") if s.strip()):
        if name.lower() not in by_lower:
            raise argparse.ArgumentTypeError(
                f"unknown configuration {name!r}; expected 'all', 'cells' or among {[*CONFIGS, *CELLS]}")
        picked.append(by_lower[name.lower()])
    if not picked:
        raise argparse.ArgumentTypeError("expected at least one configuration")
    return picked


def build(config: str, size: tuple[int, int, int, int], seed: int = 0) -> tuple[torch.nn.Module, LSTM, torch.Tensor]:
    """The torch module, the carousel module (sharing every weight the two have in common) and the input."""
    input_size, hidden_size, batch, steps = size
    torch.manual_seed(seed)
    reference = torch.nn.LSTM(input_size, hidden_size)
    if config in CELLS:
        ours = CELLS[config](input_size, hidden_size)
    else:
        ours = LSTM(input_size, hidden_size, **CONFIGS[config])  # type: ignore[arg-type]
        own = ours.state_dict()
        shared = {k: v for k, v in reference.state_dict().items() if k in own and own[k].shape == v.shape}
        ours.load_state_dict(shared, strict=False)
    reference.train()
    ours.train()
    x = torch.randn(steps, batch, input_size)
    return reference, ours, x


def make_call(module: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    if mode == "forward":

        def call() -> None:
            with torch.no_grad():
                module(x)

    else:

        def call() -> None:
            out = module(x)[0]
            out.sum().backward()

    return call


def sample(module: torch.nn.Module, call: Callable[[], None], number: int) -> float:
    """Seconds per call, over ``number`` back-to-back calls (garbage collector off, as in timeit)."""
    module.zero_grad(set_to_none=True)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            call()
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


def once(module: torch.nn.Module, call: Callable[[], None]) -> float:
    return sample(module, call, 1)


def check_standard(reference: torch.nn.Module, ours: LSTM, x: torch.Tensor) -> float:
    """Largest absolute difference of the outputs (same weights, so it should be ~1e-6)."""
    with torch.no_grad():
        a, (ha, ca) = reference(x)
        b, (hb, cb) = ours(x)
    return max(float((a - b).abs().max()), float((ha - hb).abs().max()), float((ca - cb).abs().max()))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_row(config: str, size_index: int, mode: str, args: argparse.Namespace, repeats: int) -> Row:
    size = SIZES[size_index]
    reference, ours, x = build(config, size)
    row = Row(config, ours.implementation, size, mode)
    if config == "standard" and mode == "forward":
        diff = check_standard(reference, ours, x)
        if diff > 1e-4:
            row.note = f"outputs differ by {diff:.1e}"

    # Pilot on the first quarter of the sequence: warms both modules up and estimates the cost of
    # one full pair of calls (assuming it grows with the square of the length: pessimistic for the
    # fused op, about right for the backward pass of the reference loop).
    started = time.perf_counter()
    steps = size[3]
    head = x[: max(1, steps // 4)]
    scale = (steps / head.shape[0]) ** 2
    pilot_t = once(reference, make_call(reference, head, mode))
    pilot_c = once(ours, make_call(ours, head, mode))
    estimate = (pilot_t + pilot_c) * scale
    if args.budget and 2 * estimate > args.budget:
        row.note = f"skipped: warm-up + one timed pair estimated at ~{2 * estimate:.0f} s > --budget {args.budget:g} s"
        log(f"  {row.note}")
        return row

    call_t, call_c = make_call(reference, x, mode), make_call(ours, x, mode)
    first_t = first_c = math.inf
    for _ in range(max(1, args.warmup if estimate < 1.0 else 1)):
        first_t = min(first_t, once(reference, call_t))
        first_c = min(first_c, once(ours, call_c))
    number = max(1, math.ceil(args.min_time / max(min(first_t, first_c), 1e-9)))
    if args.budget:
        left = args.budget - (time.perf_counter() - started)
        affordable = int(left // ((first_t + first_c) * number))
        if affordable < repeats:
            repeats = max(1, affordable)
            row.note = (row.note + "; " if row.note else "") + "repeats cut by --budget"
    row.number = number

    meter = OtherLoad()
    for r in range(repeats):
        order = ((reference, call_t, row.torch_s), (ours, call_c, row.carousel_s))
        if r % 2:
            order = order[::-1]
        for module, call, times in order:
            times.append(sample(module, call, number))
    row.others = meter.read()
    return row


def flops(size: tuple[int, int, int, int], mode: str) -> float:
    """Multiply-add work of one call, as FLOPs: the input and recurrent products of the four gates,
    2 * T * B * 4H * (I + H) forward; the backward pass costs two such products more (the input
    and the weight gradients), so forward+backward counts three times the forward."""
    i, h, b, t = size
    forward = 2.0 * t * b * 4 * h * (i + h)
    return forward if mode == "forward" else 3.0 * forward


def matmul_rate(n: int = 2048, seconds: float = 1.0) -> float:
    """This machine's large-matmul rate in GFLOP/s (float32, n x n by n x n, torch's threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        calls += 1
    return 2.0 * n**3 * calls / (time.perf_counter() - start) / 1e9


MATMUL_GFLOPS: list[float] = []  # measured once in main()


def fmt_ms(seconds: list[float]) -> str:
    ms = statistics.median(seconds) * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def fmt_rate(gflops: float) -> str:
    share = f" ({100 * gflops / MATMUL_GFLOPS[0]:.0f}%)" if MATMUL_GFLOPS else ""
    return f"{gflops:.1f}{share}"


def table(rows: list[Row]) -> str:
    lines = [
        "| config | impl | size (I, H, B, T) | mode | torch ms | carousel ms | ratio | paired ratio [IQR] "
        "| carousel GFLOP/s (% of matmul) | n x calls | others' CPU | note |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        size = "(" + ", ".join(str(v) for v in row.size) + ")"
        if row.repeats == 0:
            cells = ["–", "–", "–", "–", "–", "–", "–"]
        else:
            paired = row.paired()
            median_c = statistics.median(row.carousel_s)
            cells = [
                fmt_ms(row.torch_s),
                fmt_ms(row.carousel_s),
                f"{row.ratio():.3f}",
                "–" if paired is None else f"{paired[0]:.3f} [{paired[1]:.3f}–{paired[2]:.3f}]",
                "–" if row.config in CELLS else fmt_rate(flops(row.size, row.mode) / median_c / 1e9),
                f"{row.repeats} x {row.number}",
                "n/a" if row.others is None else f"{100 * row.others:.0f}%",
            ]
        lines.append("| " + " | ".join([row.config, row.implementation, size, row.mode, *cells, row.note]) + " |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def prepare_engine() -> str:
    """Build or load carousel's fused engine outside the timings (first use compiles it)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe = LSTM(2, 3, peepholes=True)
        probe(torch.randn(4, 1, 2))
    seconds = time.perf_counter() - start
    text = f"fused engine probe (peepholes layer): implementation {probe.implementation!r}, ready in {seconds:.1f} s"
    if caught:
        text += f" ({caught[0].message})"
    return text


def source_version() -> str:
    """The commit of the checkout the script lives in, and whether ``src/`` differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "source: not a git checkout"
    return f"source: commit {commit}" + (" with uncommitted changes under src/" if dirty else "")


def header(args: argparse.Namespace, argv: list[str], engine: str, load: str) -> str:
    command = "python benchmarks/speed.py" + ("" if not argv else " " + " ".join(argv))
    return "\n".join(
        [
            f"command: `{command}`",
            f"torch {torch.__version__}, python {platform.python_version()}, {cpu_name()}, "
            f"{os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"
            + ("" if args.threads else " (torch default)"),
            source_version(),
            engine,
            f"load average (1/5/15 min) at start {load}, at end {load_average()}",
            f"large-matmul rate (float32 2048 x 2048 x 2048, torch.mm): {MATMUL_GFLOPS[0]:.0f} GFLOP/s; "
            "carousel GFLOP/s counts the gates' input and recurrent products (forward 2TB4H(I+H), "
            "forward+backward 3x that)",
            "modules in training mode; forward timed under torch.no_grad() (zoneout and recurrent dropout active), "
            "forward+backward = output.sum().backward()",
            "times are medians per call; ratio = carousel / torch (medians); paired ratio = median "
            "[quartiles] of the per-pair ratios; n x calls = interleaved pairs x calls per sample; "
            "others' CPU = CPU used by other processes during the timed pairs, as a share of all cores",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved pairs per row (default: 15 for standard, 2 for the others; --quick: 5 and 2)",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help="'all' or comma-separated indices into "
        + ", ".join(f"{i}={s}" for i, s in enumerate(SIZES))
        + f" (default: all; --quick: {','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=list(CONFIGS),
        help=f"'all', 'cells' (the other cells of the family, against the same torch.nn.LSTM) or comma-separated "
        f"among {', '.join([*CONFIGS, *CELLS])} (default: the LSTM configurations {', '.join(CONFIGS)})",
    )
    parser.add_argument(
        "--modes",
        default="forward,forward+backward",
        help="comma-separated among forward, forward+backward (default: both)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="full-length warm-up calls per module, also used to size the samples (default: 2)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.05,
        help="seconds a sample lasts at least; short calls are repeated (default: 0.05)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds per row, about: repeats are cut to fit, rows that cannot fit a warm-up and one "
        "timed pair are skipped; 0 = no limit (default: 30)",
    )
    parser.add_argument("--markdown", metavar="PATH", default=None, help="also write the table (with header) to PATH")
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: expected among {MODES}, got {args.modes!r}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats: expected >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads: expected >= 1")
        torch.set_num_threads(args.threads)
    sizes = args.sizes if args.sizes is not None else list(QUICK_SIZES if args.quick else range(len(SIZES)))
    default_std, default_other = DEFAULT_REPEATS[args.quick]

    load = load_average()
    MATMUL_GFLOPS.append(matmul_rate())
    log(f"large-matmul rate: {MATMUL_GFLOPS[0]:.0f} GFLOP/s")
    engine = prepare_engine()
    log(engine)
    rows = []
    start = time.perf_counter()
    for config in args.configs:
        for index in sizes:
            for mode in modes:
                repeats = args.repeats or (default_std if config == "standard" else default_other)
                log(f"{config} size {index} {SIZES[index]} {mode} ({time.perf_counter() - start:.0f} s elapsed)")
                rows.append(run_row(config, index, mode, args, repeats))
                if rows[-1].repeats:
                    log(f"  ratio {rows[-1].ratio():.3f} over {rows[-1].repeats} pairs")
    log(f"done in {time.perf_counter() - start:.0f} s")

    text = header(args, argv, engine, load) + "\n\n" + table(rows) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
