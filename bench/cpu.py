"""CPU seconds of other processes (Linux /proc), shared by the benchmarks: the machine is
shared, so they report what each part of a run cost rather than only wall times."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _ticks(pid: int, exited_children: bool = False) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime (and cutime, cstime: the exited children the process has waited for).
    return sum(int(f) for f in fields[11 : 15 if exited_children else 13])


def process_cpu(pid: int) -> float:
    """User+system CPU seconds of a process, NaN once it is gone."""
    try:
        return _ticks(pid) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def cluster_cpu(datadir: Path) -> float:
    """CPU seconds of a PostgreSQL cluster: its postmaster, the postmaster's live children
    (backends, checkpointer, WAL writer) and the ones that have exited; NaN when it is not
    running."""
    try:
        postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
        ticks = _ticks(postmaster, exited_children=True)
    except (OSError, ValueError, IndexError):
        return float("nan")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    ticks += _ticks(int(entry.name))
            except (OSError, ValueError):
                continue
    return ticks / os.sysconf("SC_CLK_TCK")


def reference_ms(repeat: int = 7) -> float:
    """Best-of time in milliseconds of a fixed pure-Python loop (`sum(range(10**6))`).

    The VM's speed varies from day to day by a factor of two or more for the same code;
    a benchmark prints this next to its figures (the import's does) so that runs on
    different days can be compared (lower is faster)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sum(range(10**6))
        best = min(best, time.perf_counter() - t0)
    return best * 1000
