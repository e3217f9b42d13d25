"""An Asterisk restart mid-campaign, as the real one was seen: while it shuts down every
Originate is refused ("Asterisk is shutting down"), then the link goes, then a fresh PBX
without any channel comes back. Refused Originates burn no lead; dialing stops while
Asterisk refuses and resumes after it is back and stable; agents whose legs went with the
old PBX are not sent debtors until their leg is placed again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.engine import EngineSettings
from tests.dialer.engine_rig import ROME, Rig, all_day_campaign, engine_rig, until


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    settings = EngineSettings(
        dial_template="Local/{number}@sim-debtors",
        agent_dial_template="Local/{agent_id}@sim-agents",
        default_zones=tuple(ROME),
        tick=0.5,
        wrap_up_max=5.0,
        link_stable_for=5.0,
    )
    async with engine_rig(pool, agents=3, prefix="rst", settings=settings) as rig:
        yield rig


async def test_an_asterisk_restart_burns_no_lead_and_strands_no_agent(rig: Rig):
    numbers = [f"+3933360{n:05d}" for n in range(200)]
    await all_day_campaign(rig, "restart", numbers, pacing={"ratio": 3})
    for agent in rig.agents:
        rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.engine.counters.dialed >= 10, 10)

    # `core restart gracefully` first: the calls go on, every action is refused "Asterisk
    # is shutting down" (1.5 real s, 30 virtual); then `core restart now`, down 0.5 s.
    rig.sim.shutting_down = True
    await until(lambda: rig.engine.counters.refused >= 1, 5)
    refused_then = rig.engine.counters.refused
    await asyncio.sleep(1.5)
    # Held after the first refusal: a handful of refused Originates, not a lead per tick.
    assert rig.engine.counters.refused <= refused_then + 3
    await rig.sim.restart(down_for=0.5, shutting_down_for=0.1)
    await until(lambda: rig.engine.calls.link_up, 10)

    # The refused ones are not attempts: no row, and their leads are back in the queue
    # with their counters as before.
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'call.refused'"
        )
        attempts = await conn.fetchval("SELECT count(*) FROM call_attempts")
        counted = await conn.fetchval("SELECT sum(attempts_total) FROM leads")
    assert audited == rig.engine.counters.refused
    assert attempts == counted == rig.engine.counters.dialed

    # Every call of the old PBX ended; no agent is left on a call that no longer exists,
    # and none is offered a debtor until its leg is up again.
    await until(lambda: not rig.engine.live, 10)
    for agent in rig.agents:
        session = rig.desk.session(agent)
        assert session.state is not AgentState.ON_CALL
        assert agent not in rig.engine.legs_up or rig.calls.legs.leg_of(agent) is not None
    # Agents press Ready; their legs come back and the campaign goes on.
    for agent in rig.agents:
        if rig.desk.session(agent).state is AgentState.PAUSED:
            rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: set(rig.agents) <= rig.engine.legs_up, 10)
    dialed = rig.engine.counters.dialed
    await until(lambda: rig.engine.counters.dialed > dialed, 15)
    async with rig.pool.acquire() as conn:
        completed_alone = await conn.fetchval(
            "SELECT count(*) FROM call_attempts WHERE outcome = 'completed' AND agent_id IS NULL"
        )
    assert completed_alone == 0
