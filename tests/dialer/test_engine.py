"""The engine end to end against the AMI simulator over TCP, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time

import asyncpg
import pytest

from core import users
from core.bus import InProcessBus
from core.identity import SYSTEM, Role
from dialer.agent_desk import AgentDesk
from dialer.agents import AgentState
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.campaigns import create_campaign
from dialer.engine import CampaignEngine, EngineSettings
from dialer.leads import load_leads
from dialer.pacing_bridge import CampaignPacer
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.test_leads import make_cases

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


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    clock = ScaledClock(SCALE)
    sim = AmiSimulator(
        SimOptions(
            port=0,
            time_scale=SCALE,
            auth_fail_delay=0.05,
            debtors=DebtorModel(lab_rule=True),
            hold_max=30.0,
        )
    )
    await sim.start()
    client = AmiClient(
        "127.0.0.1", sim.port, "pratica", "pratica-sim", action_timeout=2.0, reconnect_delay=0.05
    )
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
        EngineSettings(
            dial_template="Local/{number}@sim-debtors",
            agent_dial_template="Local/{agent_id}@sim-agents",
            default_zones=tuple(ROME),
            tick=0.5,
            wrap_up_max=5.0,
        ),
    )
    agents = []
    async with pool.acquire() as conn:
        for n in range(2):
            user = await users.create_user(conn, SYSTEM, f"e2e{n}", "password1", Role.AGENT)
            agents.append(user.id)
    await engine.start()
    try:
        yield Rig(pool, bus, clock, sim, desk, engine, agents)
    finally:
        await engine.stop()
        await desk.stop()
        await calls.stop()
        await client.close()
        await sim.close()


async def test_a_small_campaign_runs_end_to_end(rig: Rig):
    # Last digit decides the simulated debtor: 0-4 person, 5-6 no answer, 7 busy,
    # 8 machine, 9 congestion.
    numbers = ["+39333100000" + d for d in "0578"]
    async with rig.pool.acquire() as conn:
        cases = await make_cases(conn, [[(n, ROME)] for n in numbers])
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "e2e",
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
            max_attempts_total=1,
        )
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    pops = []
    async with rig.bus.listen("agent:*") as sub:
        for agent_id in rig.agents:
            rig.desk.change(SYSTEM, agent_id, AgentState.READY)
        async with asyncio.timeout(30):
            while rig.engine.counters.ended < len(numbers):
                message = await sub.get(timeout=0.1)
                if message is not None and message.data.get("type") == "screen_pop":
                    pops.append(message.data)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e164, outcome, answered_at IS NOT NULL AS answered, connected_at IS NOT NULL "
            "AS connected, agent_id, amd_result FROM call_attempts ORDER BY e164"
        )
        activities = await conn.fetch("SELECT case_id, summary FROM activities WHERE kind = 'call'")
        lead_states = await conn.fetch("SELECT state, attempts_total FROM leads")
    outcomes = {r["e164"]: r["outcome"] for r in rows}
    assert outcomes == {
        numbers[0]: "completed",
        numbers[1]: "no_answer",
        numbers[2]: "busy",
        numbers[3]: "machine",
    }
    connected = next(r for r in rows if r["outcome"] == "completed")
    assert connected["agent_id"] in rig.agents and connected["amd_result"] == "HUMAN"
    assert [p["case_id"] for p in pops] == [cases[0]]
    assert {a["case_id"] for a in activities} == set(cases)
    # The connected call's activity names its recording (MixMonitor in pratica-join-agent).
    async with rig.pool.acquire() as conn:
        recording = await conn.fetchval(
            "SELECT a.reference FROM activities a JOIN call_attempts c ON c.attempt_key = a.external_id "
            "WHERE c.outcome = 'completed'"
        )
        key = await conn.fetchval(
            "SELECT attempt_key FROM call_attempts WHERE outcome = 'completed'"
        )
    assert recording == f"{key}.wav"
    assert all(r["attempts_total"] == 1 for r in lead_states)


class OverDialing(CampaignPacer):
    """Our pacer in power mode at three calls per free agent, to force abandons."""

    def launch(self, campaign, agents, ringing, waiting_live, now):
        ready = sum(1 for a in agents if a.state is AgentState.READY)
        return max(0, 3 * ready - len(ringing))


async def test_live_answers_without_a_free_agent_are_abandoned_within_the_limit(rig: Rig):
    rig.engine.pacer = OverDialing()
    numbers = ["+3933320000" + f"{n:02d}"[-2:] for n in (10, 20, 30)]  # all people (last digit 0)
    async with rig.pool.acquire() as conn:
        await make_cases(conn, [[(n, ROME)] for n in numbers])
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "abandon",
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
            max_attempts_total=1,
        )
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
    async with asyncio.timeout(30):
        while rig.engine.counters.ended < len(numbers):
            await asyncio.sleep(0.05)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT outcome, extract(epoch FROM abandoned_at - amd_at) AS waited "
            "FROM call_attempts ORDER BY id"
        )
        phones = await conn.fetch("SELECT last_outcome FROM phones")
    outcomes = sorted(r["outcome"] for r in rows)
    assert outcomes == ["abandoned", "abandoned", "completed"]
    # Each abandoned debtor waited the 2 s connect limit, not more (virtual seconds; the
    # scaled clock makes the figure coarse).
    waits = [float(r["waited"]) for r in rows if r["outcome"] == "abandoned"]
    assert all(1.9 <= w <= 2.6 for w in waits), waits
    assert sorted(str(p["last_outcome"]) for p in phones) == ["None", "abandoned", "abandoned"]
    assert rig.engine.counters.abandoned == 2
