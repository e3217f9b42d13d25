"""Benchmark: a 100-agent predictive campaign for one virtual hour, the engine's cost.

The simulator runs in its own process (`pratica sim-pbx`, default debtor model: ~30% live,
talk ~60 s); this process runs the campaign engine with the production pacer
(`CampaignPacer`, predictive mode, US profile: 3% cap over live answers, 2 s connect
limit), a private PostgreSQL, and `--agents` desk agents whose legs are nailed up in the
simulator (debtors end the talk; wrap-up ends at the engine's limit). Reported: the
engine process's CPU time (user+sys, `time.process_time`) and peak RSS over the hour,
PostgreSQL's and the simulator's CPU, calls placed, live answers, connects, abandons and
the abandon rate (engine counters, checked against the attempt ledger), and how fast
virtual time ran: the scale asked for and the event loop's lag (a 100 ms timer's
overshoot), which says whether the engine kept up at that speed.

Run: `nice -n 10 .venv/bin/python -m bench.dialer.campaign_hour [--agents 100 --minutes 60
--scale 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import time
import tracemalloc
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from bench.cpu import cluster_cpu, process_cpu
from bench.dialer.common import (
    build_campaign,
    ms,
    running_engine,
    start_simulator,
)
from bench.postgres import private_postgres
from core import db
from core.embedded_pg import free_port
from dialer.campaigns import DialMode
from dialer.pacing_bridge import CampaignPacer
from dialer.sim.clock import ScaledClock

LAG_PROBE = 0.1  # real seconds


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace) -> dict[str, object]:
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    with private_postgres() as (url, datadir):
        campaign, agent_ids = await build_campaign(
            url, args.leads, args.agents, DialMode.PREDICTIVE, {}, start
        )
        port = free_port()
        sim = await start_simulator(port, args.scale, 10.0, [])
        clock = ScaledClock(args.scale, start)
        loop = asyncio.get_running_loop()
        lags: list[float] = []

        async def lag_probe() -> None:
            while True:
                before = loop.time()
                await asyncio.sleep(LAG_PROBE)
                lags.append(loop.time() - before - LAG_PROBE)

        try:
            rss_before = rss_mib()
            cpu0, pg0, sim0 = time.process_time(), cluster_cpu(datadir), process_cpu(sim.pid)
            t0, v0 = loop.time(), clock.monotonic()
            probe = loop.create_task(lag_probe())
            async with running_engine(
                url, port, clock, CampaignPacer(), campaign, agent_ids, args.wrap
            ) as dialer:
                engine = dialer.engine
                up: list[int] = []
                backlog: list[int] = []
                states: Counter[str] = Counter()
                rss_every_5: list[float] = []
                traced: tracemalloc.Snapshot | None = None
                counted: Counter[str] | None = None
                while clock.monotonic() - v0 < args.minutes * 60:
                    await asyncio.sleep(1.0)
                    elapsed = clock.monotonic() - v0
                    if elapsed >= 300 * (len(rss_every_5) + 1):
                        rss_every_5.append(round(rss_mib(), 1))
                    if (
                        args.count_objects
                        and counted is None
                        and elapsed >= args.count_objects * 60
                    ):
                        counted = _object_counts()
                    if args.trace_memory and traced is None and elapsed >= args.trace_memory * 60:
                        tracemalloc.start(5)
                        traced = tracemalloc.take_snapshot()
                    up.append(len(engine.live))
                    # Ledger writes queued behind the hot path (one writer task, in order).
                    backlog.append(engine.ledger._queue.qsize())
                    states.update(s.state.value for s in dialer.desk.sessions.values())
                virtual = clock.monotonic() - v0
                real = loop.time() - t0
                growth = _growth(traced) if traced is not None else None
                objects = None
                if counted is not None:
                    now_counted = _object_counts()
                    gained = sorted(now_counted, key=lambda n: counted[n] - now_counted[n])
                    objects = [f"{n} {now_counted[n] - counted[n]:+,}" for n in gained[:12]]
                tracker = dialer.calls.tracker
                # What the engine keeps per call, to tell a bound from a leak.
                kept = {
                    "tracker_calls_up": len(tracker.calls),
                    "tracker_finished": len(tracker.finished),
                    "tracker_channel_index": len(tracker._by_uniqueid),
                    "engine_live_calls": len(engine.live),
                    "switchboard_waiting": len(engine.board.waiting),
                }
                cpu = time.process_time() - cpu0
                # Before the pool closes: its backends' CPU goes with them.
                pg = cluster_cpu(datadir) - pg0
                counters = replace(engine.counters, live_to_redirect=[])
                stopping = loop.time()
            # Leaving the block stops the engine and writes out what the ledger still holds.
            drain = loop.time() - stopping
            cpu_with_drain = time.process_time() - cpu0
            probe.cancel()
            sim_cpu = process_cpu(sim.pid) - sim0
            conn = await db.connect(url)
            try:
                ledger = dict(
                    await conn.fetch(
                        "SELECT coalesce(outcome, 'open'), count(*) FROM call_attempts GROUP BY 1"
                    )
                )
            finally:
                await conn.close()
        finally:
            sim.terminate()
            await sim.wait()
    n = max(1, len(up))
    live = counters.live
    return {
        "agents": args.agents,
        "virtual_minutes": round(virtual / 60, 2),
        "real_seconds": round(real, 1),
        "time_scale_asked": args.scale,
        "time_scale_achieved": round(virtual / real, 2),
        "event_loop_lag_ms": ms(lags),
        "calls_placed": counters.dialed,
        "live_answers": live,
        "machines": counters.machines,
        "connects": counters.connected,
        "abandoned": counters.abandoned,
        "abandon_rate_over_live": round(counters.abandoned / live, 4) if live else None,
        "ledger_outcomes": ledger,
        "calls_up_mean": round(sum(up) / n, 1),
        "agent_state_share": {k: round(v / n / args.agents, 3) for k, v in states.items()},
        "ledger_backlog": {"max": max(backlog, default=0), "at_end": backlog[-1] if backlog else 0},
        "ledger_drain_after_the_hour_seconds": round(drain, 1),
        "engine_cpu_seconds": round(cpu, 1),
        "engine_cpu_seconds_with_drain": round(cpu_with_drain, 1),
        "engine_cpu_share_of_one_core": round(cpu / real, 3),
        "engine_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "engine_rss_mib_before_after": [round(rss_before, 1), round(rss_mib(), 1)],
        "engine_rss_mib_every_5_virtual_minutes": rss_every_5,
        "python_heap_growth_after_tracing_started": growth,
        "kept_at_the_end": kept,
        "objects_gained_after_counting_started": objects,
        "postgres_cpu_seconds": round(pg, 1),
        "simulator_cpu_seconds": round(sim_cpu, 1),
    }


def _object_counts() -> Counter[str]:
    """Live objects the garbage collector tracks, by type."""
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _growth(before: tracemalloc.Snapshot, top: int = 12) -> dict[str, object]:
    """Where the Python heap grew since `before`: total, and the largest growths by the
    allocating line (with the nearest frame in this project)."""
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    noise = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diffs = after.filter_traces(noise).compare_to(before.filter_traces(noise), "traceback")
    out: list[str] = []
    for diff in sorted(diffs, key=lambda d: d.size_diff, reverse=True)[:top]:
        frames = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in diff.traceback]
        ours = next((f for f in diff.traceback if "site-packages" not in f.filename
                     and "/lib/python3" not in f.filename), diff.traceback[0])  # fmt: skip
        out.append(
            f"{diff.size_diff / 2**20:+.2f} MiB in {diff.count_diff:+,} blocks: "
            f"{ours.filename.rsplit('/', 2)[-1]}:{ours.lineno} (at {frames[0]})"
        )
    total = sum(d.size_diff for d in diffs)
    return {"total_mib": round(total / 2**20, 2), "largest": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=60.0, help="virtual minutes")
    parser.add_argument("--scale", type=float, default=10.0, help="virtual seconds per second")
    parser.add_argument("--wrap", type=float, default=10.0, help="wrap-up limit, seconds")
    parser.add_argument("--leads", type=int, default=60_000)
    parser.add_argument(
        "--trace-memory", type=float, default=0.0, metavar="MINUTES",
        help="trace Python allocations from this virtual minute on and report the growth",
    )  # fmt: skip
    parser.add_argument(
        "--count-objects", type=float, default=0.0, metavar="MINUTES",
        help="count live objects by type at this virtual minute and at the end",
    )  # fmt: skip
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
