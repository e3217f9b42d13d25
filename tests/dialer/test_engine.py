"""The engine end to end against the AMI simulator over TCP, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import time

import asyncpg
import pytest

from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.campaigns import create_campaign
from dialer.leads import load_leads
from dialer.pacing_bridge import CampaignPacer
from tests.dialer.engine_rig import ROME, Rig, engine_rig
from tests.dialer.test_leads import make_cases


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with engine_rig(pool, prefix="e2e") as rig:
        yield rig


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


async def test_an_agent_leaving_wrap_up_without_a_disposition_settles_the_lead(rig: Rig):
    rig.engine.settings = replace(rig.engine.settings, wrap_up_max=600.0)
    async with rig.pool.acquire() as conn:
        await make_cases(conn, [[("+393331000100", ROME)]])  # 0: a person who talks
        campaign = await create_campaign(
            conn, SYSTEM, "undisposed", window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7), max_attempts_total=3,
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    agent = rig.agents[0]
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    async with asyncio.timeout(30):
        while rig.desk.session(agent).state is not AgentState.WRAP_UP:
            await asyncio.sleep(0.02)
    rig.desk.change(SYSTEM, agent, AgentState.PAUSED, pause_reason="break")
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        lead = await conn.fetchrow("SELECT state, claimed_by FROM leads")
        call = await conn.fetchrow(
            "SELECT disposition, settled_provisionally_at FROM call_attempts"
        )
    assert lead["state"] != "dialing" and lead["claimed_by"] is None
    # Settled provisionally; the disposition stays open for the agent to save later.
    assert call["disposition"] is None and call["settled_provisionally_at"] is not None
