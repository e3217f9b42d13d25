"""Benchmark: 500 concurrent calls and 50 simulated agents against the simulator.

The simulator runs in its own process (`pratica sim-pbx`, as a user would run it) with
simulated agents; this process is the client: `AmiClient` + `CallControl`, keeping
`--calls` calls in flight for `--minutes` of virtual time, connecting live answers to
the longest-idle agent by Redirect, and abandoning those that find no agent within 2 s.
It records the event-to-decision latency (AMI bytes decoded -> call notice available)
and the live answer -> Redirect answered latency. Run:
`.venv/bin/python -m bench.ami.sim_load [--calls 500 --agents 50 --minutes 10 --scale 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import socket
import statistics
import sys
import time
from collections import Counter, deque

from bench.cpu import process_cpu
from dialer.ami_client import AmiClient
from dialer.call_control import AMD_CONTEXT, CallControl
from dialer.call_state import CallConnected, CallEnded, CallPhase, LiveAnswer

CONNECT_LIMIT = 2.0
WRAP_MEDIAN = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from web.cli import main; sys.exit(main())",
        "sim-pbx", "--port", str(port),
        "--time-scale", str(args.scale), "--simulated-agents", "--seed", "7",
        "--agent-talk", "90", "--agent-wrap", str(WRAP_MEDIAN), "--start-hour", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert sim.stdout is not None
    await sim.stdout.readline()
    client = AmiClient("127.0.0.1", port, "pratica", "pratica-sim", action_timeout=10.0,
                       events="call,user,system")  # fmt: skip
    await client.connect()
    control = CallControl(client)
    control.start()
    loop = asyncio.get_running_loop()
    scale = args.scale
    ready: deque[str] = deque()
    for agent in range(1, args.agents + 1):
        await control.login_agent(str(agent), f"Local/{agent}@sim-agents")
        ready.append(str(agent))
    agent_of: dict[str, str] = {}
    waiting: dict[str, float] = {}
    in_flight: set[str] = set()
    outcomes: Counter[str] = Counter()
    decision_latency: list[float] = []
    redirect_latency: list[float] = []
    rng = random.Random(3)
    ids = itertools.count(1)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: object) -> None:
        task = loop.create_task(coro)  # type: ignore[arg-type]
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def connect(attempt: str, agent: str, started: float) -> None:
        agent_of[attempt] = agent
        try:
            await control.connect_to_agent(attempt, agent)
            redirect_latency.append(loop.time() - started)
        except Exception:
            agent_of.pop(attempt, None)
            ready.appendleft(agent)

    async def abandon_later(attempt: str) -> None:
        await asyncio.sleep(CONNECT_LIMIT / scale)
        if attempt in waiting:
            del waiting[attempt]
            call = control.tracker.get(attempt)
            if call is not None and call.phase is CallPhase.LIVE:
                try:
                    await control.abandon(attempt)
                except Exception:  # the debtor hung up meanwhile
                    return

    async def agent_ready_later(agent: str) -> None:
        await asyncio.sleep(WRAP_MEDIAN * rng.lognormvariate(0, 0.4) / scale)
        if waiting:
            attempt = min(waiting, key=waiting.__getitem__)
            del waiting[attempt]
            await connect(attempt, agent, loop.time())
        else:
            ready.append(agent)

    async def consume() -> None:
        async for decision in control.notices():
            notice = decision.notice
            decision_latency.append(decision.latency)
            if isinstance(notice, LiveAnswer):
                if ready:
                    spawn(
                        connect(notice.attempt_id, ready.popleft(), loop.time() - decision.latency)
                    )
                else:
                    waiting[notice.attempt_id] = loop.time()
                    spawn(abandon_later(notice.attempt_id))
            elif isinstance(notice, CallConnected):
                outcomes["connected"] += 1
            elif isinstance(notice, CallEnded):
                in_flight.discard(notice.attempt_id)
                waiting.pop(notice.attempt_id, None)
                outcomes[notice.outcome.value] += 1
                agent = agent_of.pop(notice.attempt_id, None)
                if agent is not None:
                    spawn(agent_ready_later(agent))

    consumer = loop.create_task(consume())
    cpu_start = time.process_time()
    start = loop.time()
    virtual_end = args.minutes * 60.0
    max_in_flight = 0
    while (loop.time() - start) * scale < virtual_end:
        while len(in_flight) < args.calls:
            attempt = f"b{next(ids)}"
            in_flight.add(attempt)
            number = f"39{rng.randrange(10**9):09d}"
            spawn(control.dial(attempt, f"Local/{number}@sim-debtors", context=AMD_CONTEXT,
                               timeout=25.0))  # fmt: skip
        max_in_flight = max(max_in_flight, len(in_flight))
        await asyncio.sleep(0.02)
    elapsed = loop.time() - start
    cpu = time.process_time() - cpu_start
    sim_cpu = process_cpu(sim.pid)
    consumer.cancel()
    await control.stop()
    await client.close()
    sim.terminate()
    await sim.wait()
    dialed = next(ids) - 1
    return {
        "virtual_minutes": args.minutes,
        "time_scale": scale,
        "real_seconds": round(elapsed, 1),
        "target_concurrent_calls": args.calls,
        "max_in_flight": max_in_flight,
        "agents": args.agents,
        "calls_dialed": dialed,
        "outcomes": dict(outcomes),
        "notices": len(decision_latency),
        "client_cpu_seconds": round(cpu, 1),
        "simulator_cpu_seconds": round(sim_cpu, 1),
        "decision_latency_ms": {
            "p50": round(statistics.median(decision_latency) * 1000, 3),
            "p99": round(percentile(decision_latency, 0.99) * 1000, 3),
            "max": round(max(decision_latency) * 1000, 3),
        },
        "live_answer_to_redirect_ms": {
            "count": len(redirect_latency),
            "p50": round(percentile(redirect_latency, 0.5) * 1000, 3),
            "p99": round(percentile(redirect_latency, 0.99) * 1000, 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scale", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
