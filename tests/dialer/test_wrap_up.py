"""Wrap-up against the engine and the AMI simulator: the limit never loses the outcome,
the agent can extend it, and "pause after this call" is honoured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import time, timedelta

import asyncpg
import pytest

from core.identity import SYSTEM, Actor, Role
from dialer.agents import AgentState, AgentStateError
from dialer.campaigns import create_campaign
from dialer.leads import load_leads
from tests.dialer.engine_rig import ROME, Rig, engine_rig, until
from tests.dialer.test_leads import make_cases
from web.dispositions import Disposition, apply_disposition


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with engine_rig(pool, agents=1, prefix="wrap") as rig:
        yield rig


async def _one_connected_call(rig: Rig, name: str) -> int:
    """A campaign with one debtor who answers and talks; the agent goes ready."""
    async with rig.pool.acquire() as conn:
        await make_cases(conn, [[("+393331000200", ROME)]])  # 0: a person who talks
        campaign = await create_campaign(
            conn, SYSTEM, name, window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7), max_attempts_total=3,
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
    return campaign.id


async def test_a_disposition_saved_after_the_wrap_up_limit_is_still_applied(rig: Rig):
    agent = rig.agents[0]
    await _one_connected_call(rig, "late")
    await until(lambda: rig.desk.session(agent).state is AgentState.WRAP_UP)
    key = rig.desk.session(agent).attempt_key
    assert key is not None
    # The limit (5 virtual seconds) runs out: the agent is made ready, the call settled
    # provisionally so that the lead does not stay claimed.
    await until(lambda: rig.desk.session(agent).state is AgentState.READY)
    rig.engine.remove_campaign(next(iter(rig.engine.campaigns)))  # no second call
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        settled = await conn.fetchrow(
            "SELECT a.disposition, a.settled_provisionally_at, l.state, l.claimed_by "
            "FROM call_attempts a JOIN leads l ON l.id = a.lead_id WHERE a.attempt_key = $1",
            key,
        )
    assert settled["disposition"] is None and settled["settled_provisionally_at"] is not None
    assert settled["state"] == "done" and settled["claimed_by"] is None
    # The agent saves what they typed: accepted, and the real outcome replaces the
    # provisional one (a callback reschedules the lead).
    at = (rig.clock.now() + timedelta(days=1)).replace(microsecond=0)
    applied = await apply_disposition(
        rig.pool, rig.bus, Actor(agent, "wrap0", Role.AGENT), key,
        Disposition("contact_later", note="Calls back tomorrow", callback_at=at),
        rig.clock.now(), tuple(ROME),
    )  # fmt: skip
    assert [a.kind.value for a in applied.activities][-1] == "note"
    async with rig.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT a.disposition, l.state, l.next_attempt_at FROM call_attempts a "
            "JOIN leads l ON l.id = a.lead_id WHERE a.attempt_key = $1",
            key,
        )
    assert (row["disposition"], row["state"], row["next_attempt_at"]) == (
        "contact_later",
        "scheduled",
        at,
    )


async def test_the_agent_extends_wrap_up_up_to_the_supervisors_maximum(rig: Rig):
    agent = rig.agents[0]
    rig.engine.settings = replace(rig.engine.settings, wrap_up_max=20.0)  # 1 s real
    rig.desk.wrap_up_extend_max = 60.0
    await _one_connected_call(rig, "extend")
    await until(lambda: rig.desk.session(agent).state is AgentState.WRAP_UP)
    me = Actor(agent, "wrap0", Role.AGENT)
    session = rig.desk.extend_wrap_up(me, agent, 40.0)
    assert session.wrap_up_extended == 40.0
    session = rig.desk.extend_wrap_up(me, agent, 30.0)  # 20 s are left: granted, not 30
    assert session.wrap_up_extended == 60.0
    with pytest.raises(AgentStateError, match="maximum"):
        rig.desk.extend_wrap_up(me, agent, 10.0)
    # Beyond the original 20 virtual seconds the agent is still wrapping up...
    await asyncio.sleep(25.0 / 20)
    assert rig.desk.session(agent).state is AgentState.WRAP_UP
    # ... and is made ready when the extended limit (80 s) runs out.
    await until(lambda: rig.desk.session(agent).state is AgentState.READY, seconds=10)


async def test_pause_after_this_call_pauses_the_agent_when_wrap_up_ends(rig: Rig):
    agent = rig.agents[0]
    await _one_connected_call(rig, "pause-after")
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL)
    rig.desk.pause_after_call(Actor(agent, "wrap0", Role.AGENT), agent, "lunch")
    await until(lambda: rig.desk.session(agent).state is AgentState.WRAP_UP)
    await until(lambda: rig.desk.session(agent).state is AgentState.PAUSED)
    session = rig.desk.session(agent)
    assert session.pause_reason == "lunch" and session.pause_after_call is None
