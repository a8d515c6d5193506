#!/usr/bin/env python
"""Per-step latency of streaming inference at batch 1: ``layer.stream().step(x_t)``.

For each configuration, a stream is stepped through a sequence one step at a time and every call
is timed; the table gives the median and 90th percentile per step, next to ``torch.nn.LSTM``
called on one step with the state carried by hand (the usual way to stream with PyTorch).
Configurations alternate within each repeat so that machine noise hits all of them alike.

    python benchmarks/streaming.py                      # (input, hidden) = (64, 64), 2 layers
    python benchmarks/streaming.py --input 128 --hidden 256 --layers 1 --steps 500
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from carousel.nn import LSTM

CONFIGS = {
    "standard": {},
    "peepholes": {"peepholes": True},
    "CIFG+layer_norm": {"variant": "CIFG", "layer_norm": True},
    "zoneout": {"zoneout": 0.1},
    "reference loop": {"fast": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.steps, args.input)
    ref = torch.nn.LSTM(args.input, args.hidden, args.layers).eval()
    layers = {name: LSTM(args.input, args.hidden, args.layers, **kw).eval() for name, kw in CONFIGS.items()}
    times: dict[str, list[float]] = {"torch.nn.LSTM (one step per call)": [], **{n: [] for n in layers}}

    def run_torch() -> list[float]:
        out, state = [], None
        with torch.no_grad():
            for x_t in x:
                t0 = time.perf_counter()
                _, state = ref(x_t.view(1, 1, -1), state)
                out.append(time.perf_counter() - t0)
        return out

    def run_stream(layer: LSTM) -> list[float]:
        stream = layer.stream()
        out = []
        for x_t in x:
            t0 = time.perf_counter()
            stream.step(x_t)
            out.append(time.perf_counter() - t0)
        return out

    jobs = [("torch.nn.LSTM (one step per call)", run_torch)] + [
        (name, lambda layer=layer: run_stream(layer)) for name, layer in layers.items()
    ]
    for _, job in jobs:  # warm-up (builds the fused engine if needed)
        job()
    for rep in range(args.repeats):
        order = jobs if rep % 2 == 0 else jobs[::-1]
        for name, job in order:
            times[name].extend(job())

    base = statistics.median(times["torch.nn.LSTM (one step per call)"])
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, input {args.input}, hidden {args.hidden}, "
        f"layers {args.layers}, batch 1, {args.steps} steps x {args.repeats} repeats"
    )
    print()
    print("| configuration | implementation | median us/step | p90 us/step | ratio to torch |")
    print("|---|---|---:|---:|---:|")
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        impl = layers[name].implementation if name in layers else "vendor"
        print(f"| {name} | {impl} | {med * 1e6:.1f} | {p90 * 1e6:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
