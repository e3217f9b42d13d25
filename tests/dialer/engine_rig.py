"""The engine wired to the AMI simulator over TCP, in virtual time, for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from core import users
from core.bus import InProcessBus, Subscription
from core.identity import SYSTEM, Role
from dialer.agent_desk import AgentDesk
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.engine import CampaignEngine, EngineSettings
from dialer.pacing_bridge import CampaignPacer
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions

SCALE = 20.0
ROME = ["Europe/Rome"]


@dataclass
class Rig:
    pool: asyncpg.Pool
    bus: InProcessBus
    clock: ScaledClock
    sim: AmiSimulator
    desk: AgentDesk
    engine: CampaignEngine
    agents: list[int]


@asynccontextmanager
async def engine_rig(
    pool: asyncpg.Pool,
    *,
    agents: int = 2,
    prefix: str = "rig",
    settings: EngineSettings | None = None,
    sim: SimOptions | None = None,
) -> AsyncIterator[Rig]:
    """Two agents (by default), the lab rule for simulated debtors (outcome by the last
    digit: 0-4 person, 5-6 no answer, 7 busy, 8 machine, 9 congestion)."""
    clock = ScaledClock(SCALE)
    options = sim or SimOptions(debtors=DebtorModel(lab_rule=True))
    simulator = AmiSimulator(
        replace(options, port=0, time_scale=SCALE, auth_fail_delay=0.05, start=clock.now())
    )
    await simulator.start()
    client = AmiClient(
        "127.0.0.1", simulator.port, "pratica", "pratica-sim", action_timeout=2.0,
        reconnect_delay=0.05,
    )  # fmt: skip
    await client.connect()
    calls = CallControl(client)
    calls.start()
    bus = InProcessBus()
    desk = AgentDesk(pool, bus, clock, wrap_up_max=5.0)
    await desk.start()
    engine = CampaignEngine(
        pool,
        bus,
        clock,
        desk,
        calls,
        CampaignPacer(),
        settings
        or EngineSettings(
            dial_template="Local/{number}@sim-debtors",
            agent_dial_template="Local/{agent_id}@sim-agents",
            default_zones=tuple(ROME),
            tick=0.5,
            wrap_up_max=5.0,
        ),
    )
    ids = []
    async with pool.acquire() as conn:
        for n in range(agents):
            user = await users.create_user(conn, SYSTEM, f"{prefix}{n}", "password1", Role.AGENT)
            ids.append(user.id)
    await engine.start()
    try:
        yield Rig(pool, bus, clock, simulator, desk, engine, ids)
    finally:
        await engine.stop()
        await desk.stop()
        await calls.stop()
        await client.close()
        await simulator.close()


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait (real seconds) for a condition reached by the engine's or simulator's tasks."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


async def next_message(sub: Subscription, kind: str, seconds: float = 20.0) -> dict[str, Any]:
    """The next bus message of type `kind` on a subscription (e.g. a screen pop)."""
    async with asyncio.timeout(seconds):
        while True:
            got = await sub.get(timeout=0.2)
            if got is not None and got.data.get("type") == kind:
                return dict(got.data)
