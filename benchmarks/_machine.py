"""What the benchmarks report about the machine they ran on: load from other processes."""

from __future__ import annotations

import os
import time


class OtherLoad:
    """CPU time used by other processes while the timed pairs ran, as a fraction of all cores
    (from ``/proc/stat`` and this process's own CPU time; None where ``/proc/stat`` is missing)."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # without guest time, counted in user
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def read(self) -> float | None:
        end = self._now()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        wall, busy, own = (e - s for e, s in zip(end, self.start))
        return max(0.0, (busy - own) / (wall * (os.cpu_count() or 1)))


def load_average() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"
