"""The engine wired to the AMI simulator over TCP, in virtual time, for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import time
from typing import Any

import asyncpg

from core import users
from core.bus import InProcessBus, Subscription
from core.identity import SYSTEM, Role
from dialer.agent_desk import AgentDesk
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.campaigns import DialMode, create_campaign
from dialer.engine import CampaignEngine, EngineSettings
from dialer.leads import load_leads
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
    client: AmiClient
    calls: CallControl
    settings: EngineSettings


@asynccontextmanager
async def engine_rig(
    pool: asyncpg.Pool,
    *,
    agents: int = 2,
    prefix: str = "rig",
    settings: EngineSettings | None = None,
    sim: SimOptions | None = None,
    scale: float = SCALE,
) -> AsyncIterator[Rig]:
    """Two agents (by default), the lab rule for simulated debtors (outcome by the last
    digit: 0-4 person, 5-6 no answer, 7 busy, 8 machine, 9 congestion)."""
    clock = ScaledClock(scale)
    options = sim or SimOptions(debtors=DebtorModel(lab_rule=True))
    simulator = AmiSimulator(
        replace(options, port=0, time_scale=scale, auth_fail_delay=0.05, start=clock.now())
    )
    await simulator.start()
    settings = settings or EngineSettings(
        dial_template="Local/{number}@sim-debtors",
        agent_dial_template="Local/{agent_id}@sim-agents",
        default_zones=tuple(ROME),
        tick=0.5,
        wrap_up_max=5.0,
    )
    ids = []
    async with pool.acquire() as conn:
        for n in range(agents):
            user = await users.create_user(conn, SYSTEM, f"{prefix}{n}", "password1", Role.AGENT)
            ids.append(user.id)
    rig = await _start_dialer(pool, InProcessBus(), clock, simulator, ids, settings)
    try:
        yield rig
    finally:
        await rig.engine.stop()
        await rig.desk.stop()
        await rig.calls.stop()
        await rig.client.close()
        await simulator.close()


async def _start_dialer(
    pool: asyncpg.Pool,
    bus: InProcessBus,
    clock: ScaledClock,
    simulator: AmiSimulator,
    agents: list[int],
    settings: EngineSettings,
) -> Rig:
    client = AmiClient(
        "127.0.0.1", simulator.port, "pratica", "pratica-sim", action_timeout=2.0,
        reconnect_delay=0.05,
    )  # fmt: skip
    await client.connect()
    calls = CallControl(client)
    calls.start()
    desk = AgentDesk(pool, bus, clock, wrap_up_max=settings.wrap_up_max)
    await desk.start()
    engine = CampaignEngine(pool, bus, clock, desk, calls, CampaignPacer(), settings)
    await engine.start()
    return Rig(pool, bus, clock, simulator, desk, engine, agents, client, calls, settings)


async def crash(rig: Rig) -> None:
    """What `kill -9` of the dialer's process leaves behind: its tasks stop mid-work,
    queued writes (ledger milestones, agent state log) are lost, the AMI connection is
    cut without a Logoff; Asterisk (the simulator) carries on with every call."""
    engine = rig.engine
    tasks = [*engine._tasks, *engine._background, engine.ledger._writer, rig.desk._writer]
    tasks += [rig.calls._pump, *rig.client._tasks]
    for task in tasks:
        if task is not None:
            task.cancel()
    rig.client._manager.stopped = True
    protocol = rig.client._manager.protocol
    if protocol is not None and protocol.transport is not None:
        protocol.transport.abort()
    await asyncio.sleep(0.05)


async def restart(rig: Rig) -> None:
    """A new dialer process of the same node on the same database and Asterisk, in place of
    the crashed one: nothing in memory survives (agents are logged out until the recovery
    says otherwise)."""
    fresh = await _start_dialer(
        rig.pool, InProcessBus(), rig.clock, rig.sim, rig.agents, rig.settings
    )
    for name in ("bus", "desk", "engine", "client", "calls"):
        setattr(rig, name, getattr(fresh, name))


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


async def all_day_campaign(
    rig: Rig,
    name: str,
    numbers: list[str],
    mode: DialMode = DialMode.POWER,
    **options: Any,
) -> int:
    """One case per number (Rome), a campaign open all day every day over them, its leads
    loaded and the campaign added to the engine; returns the campaign id."""
    from tests.dialer.test_leads import make_cases

    async with rig.pool.acquire() as conn:
        await make_cases(conn, [[(n, ROME)] for n in numbers])
        campaign = await create_campaign(
            conn, SYSTEM, name, mode=mode, window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7), **options,
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    return campaign.id
