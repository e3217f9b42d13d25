"""`sim-pbx`: run the AMI simulator, an Asterisk stand-in for demos, tests and load tests."""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime

from dialer.sim.debtors import AgentModel, DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions

DEFAULT_SECRET = "pratica-sim"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim-pbx", help="run the AMI simulator (an Asterisk stand-in)")
    p.add_argument("--host", help="listen address (default: [ami] host)")
    p.add_argument("--port", type=int, help="listen port (default: [ami] port, 5038)")
    p.add_argument("--username", help="AMI user (default: [ami] username, pratica)")
    p.add_argument("--secret", help=f"AMI secret (default: [ami] secret, else {DEFAULT_SECRET})")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="virtual seconds per real second (60: an hour in a minute)")  # fmt: skip
    p.add_argument("--start-hour", type=float, default=9.0,
                   help="virtual time of day at start (drives the hourly answer drift)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lab", action="store_true",
                   help="debtor outcome by the number's last digit, as in the recordings")  # fmt: skip
    d = DebtorModel()
    p.add_argument("--live", type=float, default=d.live, help="share of live answers")
    p.add_argument("--machine", type=float, default=d.machine, help="answering machines")
    p.add_argument("--busy", type=float, default=d.busy)
    p.add_argument("--congestion", type=float, default=d.congestion)
    p.add_argument("--invalid", type=float, default=d.invalid, help="invalid numbers")
    p.add_argument("--no-answer", type=float, default=d.no_answer)
    p.add_argument("--ring-median", type=float, default=d.ring_median, help="seconds")
    p.add_argument("--talk-median", type=float, default=d.talk_median, help="seconds")
    p.add_argument("--hourly-drift", type=float, default=d.hourly_drift)
    a = AgentModel()
    p.add_argument("--simulated-agents", action="store_true",
                   help="agents in conferences end calls after a talk time")  # fmt: skip
    p.add_argument("--agent-talk", type=float, default=a.talk_median, help="seconds")
    p.add_argument("--agent-wrap", type=float, default=a.wrap_median, help="seconds")
    p.add_argument("--hold-max", type=float, default=30.0,
                   help="seconds a live debtor waits in pratica-hold before the message")  # fmt: skip
    p.add_argument("--amd-accuracy", type=float, default=1.0)
    p.add_argument("--inbound-per-hour", type=float, default=0.0,
                   help="debtors calling in per virtual hour (most call back a dialed number)")  # fmt: skip
    p.add_argument("--without-app", action="append", default=[], metavar="APP",
                   help="behave as if APP's module did not load (e.g. AMD without amd.conf);"
                        " repeatable")  # fmt: skip
    p.set_defaults(func=cmd_sim_pbx)


def options_from(args: argparse.Namespace) -> SimOptions:
    ami = args.settings.ami
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    debtors = DebtorModel(
        lab_rule=args.lab,
        live=args.live,
        machine=args.machine,
        busy=args.busy,
        congestion=args.congestion,
        invalid=args.invalid,
        no_answer=args.no_answer,
        ring_median=args.ring_median,
        talk_median=args.talk_median,
        hourly_drift=args.hourly_drift,
    )
    return SimOptions(
        host=args.host or ami.host,
        port=ami.port if args.port is None else args.port,
        username=args.username or ami.username,
        secret=args.secret or ami.secret or DEFAULT_SECRET,
        time_scale=args.time_scale,
        start=today.replace(
            hour=int(args.start_hour) % 24, minute=int(args.start_hour % 1 * 60)
        ),  # fmt: skip
        seed=args.seed,
        debtors=debtors,
        agents=AgentModel(talk_median=args.agent_talk, wrap_median=args.agent_wrap),
        simulated_agents=args.simulated_agents,
        hold_max=args.hold_max,
        amd_accuracy=args.amd_accuracy,
        inbound_per_hour=args.inbound_per_hour,
        missing_apps=frozenset(args.without_app),
    )


async def serve(options: SimOptions) -> None:
    sim = AmiSimulator(options)
    await sim.start()
    print(
        f"AMI simulator on {options.host}:{sim.port} (user {options.username!r}, "
        f"time x{options.time_scale:g}); Ctrl-C to stop",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.close()


def cmd_sim_pbx(args: argparse.Namespace) -> int:
    options = options_from(args)
    if options.time_scale <= 0:
        from web.cli import CommandError

        raise CommandError("--time-scale must be positive")
    asyncio.run(serve(options))
    return 0
