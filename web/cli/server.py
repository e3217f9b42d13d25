"""`serve` (production) and `demo` (everything embedded, seeded, for a first look)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from core.clock import Clock, SystemClock
from core.embedded_pg import free_port
from core.identity import SYSTEM
from core.settings import Settings, load_settings
from dialer.agents import AgentState
from dialer.campaigns import get_campaign
from dialer.leads import load_leads
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions
from dialer.stats import abandon_rate_text
from web.api_agents import DESK
from web.api_campaigns import STATS
from web.app import create_app
from web.cli.sim_pbx import DEFAULT_SECRET as SIM_SECRET
from web.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo
from web.dialer_runtime import WRAP_LIMITS, engine_view
from web.keys import CLOCK, POOL


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the server (settings from file and environment)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="run everything embedded with demo users and data")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--time-scale", type=float,
                   help="virtual seconds per real second (default 5; 1 with --ami)")  # fmt: skip
    p.add_argument("--ami", metavar="HOST:PORT",
                   help="use this Asterisk (or `pratica sim-pbx`) instead of starting the "
                   "simulator; credentials from [ami] username and secret")  # fmt: skip
    p.set_defaults(func=cmd_demo)


def _ami_address(value: str) -> tuple[str, int]:
    """HOST:PORT of an AMI to use; CommandError when malformed or unreachable."""
    from web.cli import CommandError

    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--ami {value!r}: expected HOST:PORT, e.g. 127.0.0.1:5038")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise CommandError(f"--ami {value}: cannot connect ({exc.strerror or exc})") from None
    return host, int(port)


def _with_overrides(args: argparse.Namespace, **more: Any) -> Settings:
    base: Settings = args.settings
    return load_settings(
        Path(args.config) if args.config else None,
        data_dir=str(base.data_dir),
        server__host=args.host,
        server__port=args.port,
        **more,
    )


async def run_server(
    settings: Settings,
    on_started: Callable[[web.Application, str], Awaitable[None]] | None = None,
    clock: Clock | None = None,
    prepare: Callable[[web.Application], None] | None = None,
) -> None:
    app = create_app(settings, clock or SystemClock())
    if prepare is not None:
        prepare(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        url = f"http://{settings.server.host}:{settings.server.port}/"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_started is not None:
            await on_started(app, url)
        else:
            print(f"Pratica is serving on {url}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    asyncio.run(run_server(_with_overrides(args)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # An outside PBX keeps real time (give `pratica sim-pbx --time-scale` the same figure).
    scale = float(args.time_scale if args.time_scale is not None else 1.0 if args.ami else 5.0)
    if scale <= 0:
        print("pratica: --time-scale must be positive", file=sys.stderr)
        return 2
    ami_settings: Settings = args.settings
    if args.ami:
        # The demo's dialing contexts are in asterisk_conf/extensions.conf (and the simulator).
        ami_host, ami_port = _ami_address(args.ami)
        ami_secret = ami_settings.ami.secret or SIM_SECRET
    else:
        ami_host, ami_port, ami_secret = "127.0.0.1", free_port(), SIM_SECRET
    settings = _with_overrides(args, ami__host=ami_host, ami__port=ami_port, ami__secret=ami_secret,
                               ami__dial_template="Local/{number}@sim-debtors",
                               ami__agent_dial_template="Local/{agent_id}@sim-agents",
                               # The demo runs at any hour of the day (simulated debtors).
                               dialer__manual_window_start="00:00",
                               dialer__manual_window_end="24:00")  # fmt: skip
    clock = ScaledClock(scale)
    # Every call would log a line; the live view shows the numbers instead.
    for noisy in ("dialer", "panoramisk", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    simulator = (
        None
        if args.ami
        else AmiSimulator(
            SimOptions(
                port=ami_port,
                time_scale=scale,
                secret=SIM_SECRET,
                auth_fail_delay=0.1,
                start=clock.now(),
                debtors=DebtorModel(talk_median=90.0),
                inbound_per_hour=30.0,
            )  # fmt: skip
        )
    )

    async def run() -> None:
        if simulator is None:
            await run_server(settings, started, clock=clock, prepare=prepare)
            return
        await simulator.start()
        try:
            await run_server(settings, started, clock=clock, prepare=prepare)
        finally:
            await simulator.close()

    def prepare(app: web.Application) -> None:
        # Seed before the dialer starts, so it finds the demo campaign and its leads.
        app.cleanup_ctx.insert(len(app.cleanup_ctx) - 1, seed_ctx)

    async def seed_ctx(app: web.Application) -> AsyncIterator[None]:
        campaign_id, simulated = await seed_demo(app[POOL], settings.data_dir)
        async with app[POOL].acquire() as conn:
            campaign = await get_campaign(conn, campaign_id)
            if campaign is None:
                raise RuntimeError(f"demo campaign {campaign_id} vanished")
            await load_leads(conn, campaign, clock.now(), (settings.locale.timezone,))
        app[WRAP_LIMITS] = {agent_id: 20.0 for agent_id in simulated}
        app[DEMO] = (campaign_id, simulated)
        yield

    async def started(app: web.Application, url: str) -> None:
        campaign_id, simulated = app[DEMO]
        desk = app[DESK]
        for agent_id in simulated:
            desk.change(SYSTEM, agent_id, AgentState.READY)
        header = [
            f"Pratica demo is running: {url}",
            "Demo logins (password for all: " + DEMO_PASSWORD + "):",
            *(f"  {username:<12} {role}" for username, role in DEMO_USERS),
            (
                f"AMI at {ami_host}:{ami_port} (user {settings.ami.username})"
                if args.ami
                else f"AMI simulator on 127.0.0.1:{ami_port}"
            )
            + f"; time runs {scale:g}x faster than real time.",
            f"Campaign {campaign_id} dials with {len(simulated)} simulated agents; "
            "log in as agent1 and press Ready to take calls too. Stop with Ctrl-C.",
        ]
        print("\n".join(["", *header, ""]), flush=True)
        asyncio.get_running_loop().create_task(live_view(app, header, campaign_id))

    asyncio.run(run())
    return 0


DEMO: web.AppKey[tuple[int, list[int]]] = web.AppKey("demo", tuple)


async def live_view(app: web.Application, header: list[str], campaign_id: int) -> None:
    """The dialer's numbers in the terminal, redrawn in place (a line every 15 s when the
    output is not a terminal)."""
    tty = sys.stdout.isatty()
    started = app[CLOCK].monotonic()
    while True:
        await asyncio.sleep(1.0 if tty else 15.0)
        desk = app[DESK]
        now = app[CLOCK].monotonic()
        sessions = list(desk.sessions.values())
        states = Counter(s.state.value for s in sessions)
        talk = sum(
            s.talk_seconds + (s.elapsed(now) if s.state is AgentState.ON_CALL else 0.0)
            for s in sessions
        )
        logged = sum(1 for s in sessions if s.state is not AgentState.LOGGED_OUT)
        occupancy = talk / (logged * max(now - started, 1.0)) if logged else 0.0
        engine = engine_view(app)
        stats = app[STATS].snapshot(campaign_id)
        # A call counts once it has ended: its outcome is final then.
        abandon = (
            f"abandon rate {abandon_rate_text(stats)} (ended calls; cap {stats['abandon_cap']:.0%})"
            if stats
            else "abandon rate: no call has ended yet"
        )
        lines = [
            "agents: " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(states.items())),
            f"dials {engine.get('dialed', 0)}  live answers {engine.get('live', 0)}  "
            f"machines {engine.get('machines', 0)}  connects {engine.get('connected', 0)}  "
            f"abandons {engine.get('abandoned', 0)}  in flight {engine.get('in_flight', 0)}",
            f"{abandon}   talk occupancy {occupancy:.0%}",
        ]
        inbound = engine.get("inbound")
        if inbound:
            lines.append(
                f"inbound: offered {inbound['offered']}  connected {inbound['connected']}  "
                f"waiting {inbound['waiting']}  abandoned {inbound['abandoned']}  "
                f"timed out {inbound['timed_out']}  unknown callers {inbound['triage']}  "
                f"callbacks {inbound['callbacks']}"
            )
        if tty:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join([*header, "", *lines]) + "\n")
        else:
            sys.stdout.write(" | ".join(lines) + "\n")
        sys.stdout.flush()
