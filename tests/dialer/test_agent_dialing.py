"""Calls agents place, end to end against the AMI simulator: a manual call from a case
goes through the agent's nailed-up leg with no AMD and no abandonment; refusals say why;
a preview campaign offers each ready agent a lead to call or skip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time

import asyncpg
import pytest

from core.activity import timeline
from core.identity import SYSTEM
from dialer.agent_dialing import AgentDialError
from dialer.agents import AgentState
from dialer.call_window import CallWindow
from dialer.campaigns import DialMode, create_campaign
from dialer.leads import load_leads
from tests.dialer.engine_rig import ROME, Rig, engine_rig, next_message, until
from tests.dialer.test_leads import make_cases

ALWAYS = CallWindow(time(0, 0), time(23, 59), frozenset(range(1, 8)))


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with engine_rig(pool, prefix="dial") as rig:
        rig.engine.agent_calls.manual_window = ALWAYS
        yield rig


async def _ready(rig: Rig, agent_id: int) -> None:
    rig.desk.change(SYSTEM, agent_id, AgentState.READY)
    await until(lambda: agent_id in rig.engine.legs_up)


async def _attempt(rig: Rig, key: str) -> asyncpg.Record:
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM call_attempts WHERE attempt_key = $1", key)


async def test_manual_call_from_a_case_reaches_the_agent_without_amd(rig: Rig):
    agent = rig.agents[0]
    async with rig.pool.acquire() as conn:
        (case_id,) = await make_cases(conn, [[("+393331110000", ROME)]])  # 0: a person
    await _ready(rig, agent)
    async with rig.bus.listen(f"agent:{agent}") as pops:
        key = await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
        assert rig.desk.session(agent).state is AgentState.RESERVED
        pop = await next_message(pops, "screen_pop", 10)
    assert pop["attempt_key"] == key and pop["manual"] is True
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL)
    await until(lambda: rig.desk.session(agent).state is AgentState.WRAP_UP, seconds=30)
    row = await _attempt(rig, key)
    assert row["outcome"] == "completed" and row["agent_id"] == agent
    assert row["amd_at"] is None and row["abandoned_at"] is None
    assert row["campaign_id"] is None and row["connected_at"] is not None
    assert row["recording"] == f"{key}.wav"
    assert rig.engine.counters.dialed == 0  # not a pacing decision
    assert rig.sim.pbx.truth.get("amd_human", 0) == 0
    async with rig.pool.acquire() as conn:
        page = await timeline(conn, case_id, limit=5)
    assert [a.summary for a in page.items if a.external_id == key] == [
        "Outbound call: connected to an agent"
    ]


async def test_unanswered_manual_call_from_a_pause_returns_the_agent_to_the_pause(rig: Rig):
    agent = rig.agents[0]
    async with rig.pool.acquire() as conn:
        (case_id,) = await make_cases(conn, [[("+393331110007", ROME)]])  # 7: busy
    await _ready(rig, agent)
    rig.desk.change(SYSTEM, agent, AgentState.PAUSED, pause_reason="break")
    key = await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
    await until(lambda: key not in rig.engine.agent_calls.calls)
    session = rig.desk.session(agent)
    assert session.state is AgentState.PAUSED and session.pause_reason == "break"
    assert (await _attempt(rig, key))["outcome"] == "busy"


async def test_manual_calls_are_refused_with_the_reason(rig: Rig):
    agent, other = rig.agents
    async with rig.pool.acquire() as conn:
        (case_id, dnc_case) = await make_cases(
            conn, [[("+393331110001", ROME)], [("+393331110002", ROME)]]
        )
        await conn.execute("UPDATE phones SET do_not_call = true WHERE e164 = '+393331110002'")
    with pytest.raises(AgentDialError, match="press Ready first"):
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
    await _ready(rig, agent)
    with pytest.raises(AgentDialError, match="no phone that may be called"):
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, dnc_case)
    rig.engine.agent_calls.manual_window = CallWindow(
        time(0, 0), time(0, 1), frozenset({1})
    )  # practically never open
    with pytest.raises(AgentDialError, match="outside the call window"):
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
    rig.engine.agent_calls.manual_window = ALWAYS
    await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
    await _ready(rig, other)
    with pytest.raises(AgentDialError, match="on a call right now"):
        await rig.engine.agent_calls.dial_case(SYSTEM, other, case_id)
    with pytest.raises(AgentDialError, match="while reserved|while on_call"):
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, case_id)
    assert rig.sim.pbx.truth.get("dialed") == 1


async def test_preview_campaign_offers_a_lead_to_call_or_skip(rig: Rig):
    agent = rig.agents[0]
    async with rig.pool.acquire() as conn:
        cases = await make_cases(
            conn, [[("+393331120000", ROME)], [("+393331120001", ROME)]], [900, 100]
        )
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "preview",
            mode=DialMode.PREVIEW,
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    async with rig.bus.listen(f"agent:{agent}") as pops:
        await _ready(rig, agent)
        first = await next_message(pops, "preview", 10)
        assert first["case_id"] == cases[0]  # the larger balance first
        assert rig.desk.session(agent).state is AgentState.RESERVED
        await rig.engine.agent_calls.skip_preview(SYSTEM, agent, first["lead_id"])
        second = await next_message(pops, "preview", 10)
        assert second["case_id"] == cases[1]
        with pytest.raises(AgentDialError, match="not previewed by you"):
            await rig.engine.agent_calls.dial_preview(SYSTEM, agent, first["lead_id"])
        key = await rig.engine.agent_calls.dial_preview(SYSTEM, agent, second["lead_id"])
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL)
    await until(lambda: key not in rig.engine.agent_calls.calls, seconds=30)
    row = await _attempt(rig, key)
    assert row["outcome"] == "completed" and row["campaign_id"] == campaign.id
    assert row["amd_at"] is None and row["agent_id"] == agent
    async with rig.pool.acquire() as conn:
        skipped = await conn.fetchrow(
            "SELECT state, attempts_total, next_attempt_at > now() AS later FROM leads "
            "WHERE id = $1",
            first["lead_id"],
        )
        dialed = await conn.fetchval(
            "SELECT attempts_total FROM leads WHERE id = $1", second["lead_id"]
        )
    assert skipped["state"] == "scheduled" and skipped["later"]
    assert skipped["attempts_total"] == 0 and dialed == 1
    assert rig.sim.pbx.truth.get("dialed") == 1 and rig.engine.counters.dialed == 0
