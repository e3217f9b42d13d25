"""Benchmark: live answer (the AMD decision event arriving) -> Redirect written, in the engine.

The simulator runs in its own process (`pratica sim-pbx`); this process runs the campaign
engine against it over TCP with a private PostgreSQL, `--agents` desk agents (legs nailed
up in the simulator; debtors end the talk, wrap-up ends at the engine's limit) and
`--lines` calls up at all times (a fixed-lines pacer, so the load is the one specified
whatever the pacing policy would do).

Measured without changing the engine: the AMI event stream is wrapped to note when the
`PraticaAMD` event with `Status: HUMAN` of each call was decoded (`received_at`, the same
instant `Decision.latency` counts from), `on_notice` is wrapped to note when the engine
starts handling the LiveAnswer, and panoramisk's `send_action` is wrapped to note when the
Redirect into the agent's conference is written to the socket. Two populations:

- immediate: an agent was ready, the Redirect was written while the engine handled that
  very LiveAnswer: this is the engine's latency (target p99 < 100 ms);
- after waiting: no agent was ready; the call waited on the switchboard until one freed
  up (bounded by the 2 s connect limit): agent availability, not engine latency; for
  these the engine's part is from the agent becoming ready (desk listener) to the Redirect.

With `--login-storm N`, the server's login endpoint (`web.auth`, on the engine's pool, in
the engine's process and event loop, as in `pratica serve`) is served as well, and during
the measurement another process keeps N logins in flight (each client logs in again as
soon as it is answered, as the agents): password checks compete with the dialer for the
loop, the pool and the cores. The event loop's lag (overshoot of a 10 ms timer) is
reported in every run.

Run: `nice -n 10 .venv/bin/python -m bench.dialer.redirect_latency [--lines 200 --agents 100
--minutes 10 --scale 1 --talk 60] [--login-storm 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bench.cpu import cluster_cpu, process_cpu, reference_ms
from bench.dialer.common import (
    Dialer,
    build_campaign,
    ms,
    running_engine,
    start_simulator,
)
from bench.postgres import private_postgres
from core.embedded_pg import free_port
from dialer.agents import AgentSession, AgentState
from dialer.ami_api import ReceivedEvent, StreamItem
from dialer.call_control import JOIN_AGENT_CONTEXT
from dialer.call_notices import CallNotice, LiveAnswer
from dialer.campaigns import Campaign, DialMode
from dialer.sim.clock import ScaledClock
from web import auth
from web.errors import error_middleware
from web.keys import CLOCK, POOL


class FixedLines:
    """A pacer that keeps `lines` calls up (ringing, waiting or talking) at all times."""

    def __init__(self, lines: int):
        self.lines = lines
        self.dialer: Dialer | None = None

    def start(self, campaign: Campaign, live: int = 0, abandoned: int = 0) -> None:
        pass

    def launch(
        self,
        campaign: Campaign,
        agents: Sequence[AgentSession],
        ringing: Sequence[float],
        waiting_live: int,
        now: float,
    ) -> int:
        up = len(self.dialer.engine.live) if self.dialer is not None else 0
        return max(0, self.lines - up)

    def dial_ended(self, campaign_id: int, now: float, outcome: str, seconds: float) -> None:
        pass

    def live_settled(self, campaign_id: int, abandoned: bool) -> None:
        pass

    def agent_changed(
        self, campaign_ids: frozenset[int], before: AgentSession, after: AgentSession, now: float
    ) -> None:
        pass


class Probe:
    """Timestamps on the live-answer path, keyed by the call's channel (loop time)."""

    def __init__(self) -> None:
        self.decoded: dict[str, float] = {}  # AMD HUMAN event decoded
        self.handling: dict[str, float] = {}  # engine's on_notice(LiveAnswer) running since
        self.immediate: list[float] = []  # decoded -> Redirect written, inside on_notice
        self.queued: list[float] = []  # decoded -> on_notice started (tracker + queue)
        self.engine_part: list[float] = []  # on_notice started -> Redirect written
        self.after_waiting: list[float] = []  # decoded -> Redirect written, later
        self.ready_at: dict[str, float] = {}  # agent id -> when it last became ready
        self.ready_to_redirect: list[float] = []  # waiting call: agent ready -> Redirect

    def install(self, dialer: Dialer) -> None:
        loop = asyncio.get_running_loop()
        client, engine = dialer.client, dialer.engine
        events = client.events

        async def observed_events() -> AsyncIterator[StreamItem]:
            async for item in events():
                if isinstance(item, ReceivedEvent):
                    m = item.message
                    if m.get("UserEvent") == "PraticaAMD" and m.get("Status") == "HUMAN":
                        self.decoded[m.get("Channel")] = item.received_at
                yield item

        client.events = observed_events  # type: ignore[method-assign]

        on_notice = engine.on_notice

        async def observed_on_notice(notice: CallNotice) -> None:
            if not isinstance(notice, LiveAnswer):
                await on_notice(notice)
                return
            self.handling[notice.channel] = loop.time()
            try:
                await on_notice(notice)
            finally:
                self.handling.pop(notice.channel, None)

        engine.on_notice = observed_on_notice  # type: ignore[method-assign]

        def agent_changed(before: AgentSession, after: AgentSession) -> None:
            if after.state is AgentState.READY:
                self.ready_at[str(after.agent_id)] = loop.time()

        dialer.desk.listeners.append(agent_changed)

        manager = client._manager
        send_action = manager.send_action

        def observed_send_action(action: Any, *args: Any, **kwargs: Any) -> Any:
            fields = action if hasattr(action, "get") else {}  # panoramisk's CaseInsensitiveDict
            if fields.get("Action") == "Redirect" and fields.get("Context") == JOIN_AGENT_CONTEXT:
                # Taken before the write: send_action writes to the transport synchronously.
                now = loop.time()
                channel = fields.get("Channel", "")
                decoded = self.decoded.pop(channel, None)
                started = self.handling.get(channel)
                if decoded is not None:
                    if started is not None:
                        self.immediate.append(now - decoded)
                        self.queued.append(started - decoded)
                        self.engine_part.append(now - started)
                    else:
                        self.after_waiting.append(now - decoded)
                        ready = self.ready_at.get(fields.get("Exten", ""))
                        if ready is not None and ready > decoded:
                            self.ready_to_redirect.append(now - ready)
            return send_action(action, *args, **kwargs)

        manager.send_action = observed_send_action


class LoopLag:
    """Overshoot of a 10 ms timer on the event loop: how long the loop was kept from
    anything else it had to do (a live answer to put through, for one)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.01)
            self.samples.append(loop.time() - t0 - 0.01)

    def start(self) -> None:
        self.task = asyncio.create_task(self._tick())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


@contextlib.asynccontextmanager
async def login_server(dialer: Dialer, clock: ScaledClock) -> AsyncIterator[int]:
    """The server's login endpoint (and /healthz) on the engine's pool and event loop, as
    `web.app` wires them; yields its port."""
    app = web.Application(middlewares=[error_middleware, auth.auth_middleware])
    app[POOL] = dialer.pool
    app[CLOCK] = clock

    @auth.public
    async def health(request: web.Request) -> web.Response:
        async with request.app[POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", health)
    auth.setup(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def storm(url: str, clients: int, seconds: float) -> dict[str, object]:
    """`clients` agents logging in over and over for `seconds` (the storm's own process)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        while loop.time() < end:
            t0 = loop.time()
            async with session.post(
                f"{url}/api/login", json={"username": f"agent{n}", "password": "bench-password"}
            ) as response:
                await response.read()
            latencies.append(loop.time() - t0)
            statuses[response.status] += 1

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        await asyncio.gather(*(client(n, session) for n in range(clients)))
    return {
        "clients": clients,
        "logins": sum(statuses.values()),
        "statuses": dict(statuses),
        "login_latency_ms": ms(latencies),
    }


async def start_storm(port: int, clients: int, seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.dialer.redirect_latency", "--storm-client",
        f"http://127.0.0.1:{port}", "--login-storm", str(clients), "--storm-seconds",
        str(seconds), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, object]:
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    with private_postgres() as (url, datadir):
        campaign, agent_ids = await build_campaign(
            url, args.leads, args.agents, DialMode.POWER, {}, start
        )
        port = free_port()
        sim = await start_simulator(port, args.scale, 10.0, ["--talk-median", str(args.talk)])
        pacer = FixedLines(args.lines)
        probe = Probe()

        def attach(dialer: Dialer) -> None:
            pacer.dialer = dialer
            probe.install(dialer)

        clock = ScaledClock(args.scale, start)
        loop = asyncio.get_running_loop()
        lag = LoopLag()
        storm_result: dict[str, object] | None = None
        try:
            async with (
                running_engine(
                    url, port, clock, pacer, campaign, agent_ids, args.wrap, [attach]
                ) as dialer,
                login_server(dialer, clock) as login_port,
            ):
                engine = dialer.engine
                # Warm-up: the lines fill and the first talks end before measuring.
                await asyncio.sleep(args.warmup / args.scale)
                for samples in (probe.immediate, probe.queued, probe.engine_part,
                                probe.after_waiting, probe.ready_to_redirect):  # fmt: skip
                    samples.clear()
                engine.counters.live_to_redirect.clear()
                before = {k: getattr(engine.counters, k) for k in ("dialed", "live", "abandoned")}
                cpu0, pg0, sim0 = time.process_time(), cluster_cpu(datadir), process_cpu(sim.pid)
                t0 = loop.time()
                seconds = args.minutes * 60 / args.scale
                stormer = (
                    await start_storm(login_port, args.login_storm, seconds)
                    if args.login_storm
                    else None
                )
                lag.start()
                up: list[int] = []
                states: Counter[str] = Counter()
                while loop.time() - t0 < seconds:
                    await asyncio.sleep(0.5)
                    up.append(len(engine.live))
                    states.update(s.state.value for s in dialer.desk.sessions.values())
                lag.stop()
                elapsed = loop.time() - t0
                cpu = time.process_time() - cpu0
                pg = cluster_cpu(datadir) - pg0
                sim_cpu = process_cpu(sim.pid) - sim0
                if stormer is not None:
                    out, _ = await stormer.communicate()
                    storm_result = json.loads(out)
                counters = engine.counters
                done = {
                    k: getattr(counters, k) - v for k, v in before.items()
                } | {"connected_immediately": len(probe.immediate)}  # fmt: skip
                live_to_redirect = list(counters.live_to_redirect)
        finally:
            sim.terminate()
            await sim.wait()
    n = max(1, len(up))
    return {
        "speed_reference_ms": round(reference_ms(), 1),
        "lines": args.lines,
        "agents": args.agents,
        "debtor_talk_median_s": args.talk,
        "time_scale": args.scale,
        "measured_real_seconds": round(elapsed, 1),
        "calls_up": {
            "mean": round(sum(up) / n, 1),
            "min": min(up, default=0),
            "max": max(up, default=0),
        },  # fmt: skip
        "agent_state_share": {k: round(v / n / args.agents, 3) for k, v in states.items()},
        "counts": done,
        "live_answer_to_redirect_written_ms": {
            "immediate": ms(probe.immediate),
            "immediate_split": {
                "decoded_to_on_notice": ms(probe.queued),
                "on_notice_to_redirect_written": ms(probe.engine_part),
            },
            "after_waiting_for_an_agent": ms(probe.after_waiting),
            "after_waiting_agent_ready_to_redirect_written": ms(probe.ready_to_redirect),
        },
        "engine_counter_live_to_redirect_answered_ms": ms(live_to_redirect),
        "event_loop_lag_ms": ms(lag.samples),
        "login_storm": storm_result,
        "cpu_seconds": {
            "engine_process": round(cpu, 1),
            "postgres": round(pg, 1),
            "simulator": round(sim_cpu, 1),
        },  # fmt: skip
        "engine_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "agents_ready_at_end": sum(
            1 for s in dialer.desk.sessions.values() if s.state is AgentState.READY
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200, help="calls up at all times")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=5.0, help="measured virtual minutes")
    parser.add_argument("--warmup", type=float, default=90.0, help="virtual seconds")
    parser.add_argument("--scale", type=float, default=1.0, help="virtual seconds per second")
    parser.add_argument("--wrap", type=float, default=10.0, help="wrap-up limit, seconds")
    parser.add_argument("--talk", type=float, default=60.0, help="debtors' median talk, s")
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument(
        "--login-storm", type=int, default=0, metavar="N", help="logins kept in flight"
    )
    parser.add_argument("--storm-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--storm-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.login_storm > args.agents:
        parser.error("--login-storm: at most one login per agent (--agents)")
    if args.storm_client:
        result = asyncio.run(storm(args.storm_client, args.login_storm, args.storm_seconds))
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
