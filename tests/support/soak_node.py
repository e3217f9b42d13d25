"""One dialer node for the soak: the real server (`web.cli.server.run_server`) on a given
database and AMI port, in virtual time shared with the harness, its simulated agents made
ready at every start. The harness kills it with SIGKILL and starts it again.

    python -m tests.support.soak_node --database-url URL --ami-port P --http-port H \
        --scale 30 --epoch 1764780000.0 --agents 3,4,5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web

from core.identity import SYSTEM
from core.settings import load_settings
from dialer.agents import AgentState, AgentStateError
from web.api_agents import DESK
from web.cli.server import run_server
from web.dialer_runtime import WRAP_LIMITS


class SharedVirtualClock:
    """Virtual time every process of the soak agrees on, across restarts: it runs `scale`
    times faster than the wall clock from a common epoch (a restarted node does not go
    back in time, unlike a clock that starts at its own start)."""

    def __init__(self, scale: float, epoch: float):
        self.scale = scale
        self.epoch = epoch
        self._start = datetime.fromtimestamp(epoch, UTC)

    def monotonic(self) -> float:
        return (time.time() - self.epoch) * self.scale

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--ami-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--epoch", type=float, required=True)
    parser.add_argument("--agents", required=True, help="comma-separated user ids")
    parser.add_argument("--wrap-limit", type=float, default=20.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    agents = [int(a) for a in args.agents.split(",") if a]
    settings = load_settings(
        None,
        database__url=args.database_url,
        server__host="127.0.0.1",
        server__port=args.http_port,
        ami__host="127.0.0.1",
        ami__port=args.ami_port,
        ami__secret="pratica-sim",
        ami__dial_template="Local/{number}@sim-debtors",
        ami__agent_dial_template="Local/{agent_id}@sim-agents",
        ami__ping_interval=2.0,
        ami__action_timeout=3.0,
        dialer__manual_window_start="00:00",
        dialer__manual_window_end="24:00",
    )
    clock = SharedVirtualClock(args.scale, args.epoch)

    def prepare(app: web.Application) -> None:
        app[WRAP_LIMITS] = {agent_id: args.wrap_limit for agent_id in agents}

    async def started(app: web.Application, url: str) -> None:
        desk = app[DESK]
        for agent_id in agents:
            # An agent put back on a call adopted from the previous process stays on it.
            if desk.session(agent_id).state is AgentState.LOGGED_OUT:
                with contextlib.suppress(AgentStateError):
                    desk.change(SYSTEM, agent_id, AgentState.READY)
        print(f"node ready on {url}", flush=True)

    asyncio.run(run_server(settings, started, clock=clock, prepare=prepare))
    return 0


if __name__ == "__main__":
    sys.exit(main())
