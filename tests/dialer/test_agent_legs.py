"""Agents' phone legs as Asterisk reports them: up only when Asterisk says so, unique per
leg, hung up when the agent leaves, and a leg that drops mid-call never leaves a debtor
alone or lets the dialer send more debtors into an empty conference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import time

import asyncpg
import pytest

from core.identity import SYSTEM
from dialer.agent_legs import AgentLegDown, AgentLegTracker, AgentLegUp, agent_of_leg, new_leg_id
from dialer.agents import AgentState
from dialer.ami_events import ChannelRef, CoreShowChannel, Hangup, OriginateResponse
from dialer.campaigns import DialMode, create_campaign
from dialer.leads import load_leads
from tests.dialer.engine_rig import ROME, Rig, engine_rig, until
from tests.dialer.test_leads import make_cases


def _ref(uniqueid: str, name: str = "Local/7@sim-agents-00000001;1") -> ChannelRef:
    return ChannelRef(name, uniqueid, uniqueid, 6, "pratica-agent-conf", "7", "")


def test_leg_ids_are_unique_and_never_read_as_another_agents() -> None:
    ids = {new_leg_id(2) for _ in range(200)}
    assert len(ids) == 200
    leg = next(iter(ids))
    assert agent_of_leg(leg) == (2, leg)
    assert agent_of_leg(leg + ";2") == (2, leg)
    # Old-style and foreign ids are not legs of ours.
    for other in ("agent-2", "agent-2-2", "att-5-2", "in-17.3", "agent-12-zzzzzzzz"):
        assert agent_of_leg(other) is None


def test_a_leg_is_up_only_when_asterisk_says_so_and_down_when_it_hangs_up() -> None:
    tracker = AgentLegTracker()
    leg = new_leg_id(7)
    tracker.expect(7, leg)
    assert tracker.feed(OriginateResponse("x", "Local/7@sim-agents", leg, True, 4), 1.0) == [
        AgentLegUp(7, leg, "Local/7@sim-agents", 1.0)
    ]
    assert tracker.feed(Hangup(_ref(leg), 16, "Normal Clearing"), 2.0) == [
        AgentLegDown(7, leg, 2.0, failed=False, cause=16)
    ]
    # A failed Originate (e.g. the id already in use, or the phone unreachable) is down.
    second = new_leg_id(7)
    tracker.expect(7, second)
    assert tracker.feed(OriginateResponse("y", "Local/7@x", second, False, 0), 3.0) == [
        AgentLegDown(7, second, 3.0, failed=True, cause=0)
    ]
    assert tracker.leg_of(7) is None


def test_reconciliation_finds_lost_legs_and_legs_left_by_a_dead_process() -> None:
    tracker = AgentLegTracker()
    mine, gone, stray = new_leg_id(1), new_leg_id(2), new_leg_id(3)
    for agent, leg in ((1, mine), (2, gone)):
        tracker.expect(agent, leg)
        tracker.feed(OriginateResponse("", "Local/x", leg, True, 4), 0.5)
    snapshot = [CoreShowChannel(_ref(mine), "ConfBridge", "10"),
                CoreShowChannel(_ref(stray, "PJSIP/1003-0000002a"), "ConfBridge", "99")]  # fmt: skip
    notices = tracker.reconcile(snapshot, 5.0)
    assert [type(n).__name__ for n in notices] == ["AgentLegDown", "AgentLegFound"]
    assert notices[0].agent_id == 2
    assert (notices[1].agent_id, notices[1].channel) == (3, "PJSIP/1003-0000002a")


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with engine_rig(pool, agents=2, prefix="leg", scale=5.0) as rig:
        yield rig


async def _campaign(rig: Rig, numbers: list[str]) -> int:
    async with rig.pool.acquire() as conn:
        await make_cases(conn, [[(n, ROME)] for n in numbers])
        campaign = await create_campaign(
            conn, SYSTEM, "legs", mode=DialMode.PROGRESSIVE, window_start=time(0),
            window_end=time(23, 59), days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    return campaign.id


async def test_an_agent_leg_dropping_mid_call_is_noticed_and_no_debtor_is_sent_to_it(rig: Rig):
    await _campaign(rig, [f"+39333200000{d}" for d in "01234"])  # all people who answer
    agent = rig.agents[0]
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL, 10)
    key = rig.desk.session(agent).attempt_key
    leg = rig.calls.legs.leg_of(agent)
    assert leg is not None and leg.up
    messages_before = rig.sim.pbx.truth.get("abandon_message", 0)

    # The agent's phone drops (the softphone crashed): Asterisk hangs the leg up.
    await rig.client.hangup(leg.channel)

    # The debtor left alone in the conference hears the cut-off message and the call ends;
    # the agent is offered nothing more until the phone is back.
    await until(lambda: key not in rig.engine.live, 10)
    assert rig.sim.pbx.truth.get("abandon_message", 0) == messages_before + 1
    assert agent not in rig.engine.legs_up
    await until(lambda: rig.desk.session(agent).state is not AgentState.ON_CALL, 10)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM call_attempts WHERE attempt_key = $1", key)
    assert row["outcome"] == "completed" and row["agent_left_at"] is not None
    # When the wrap-up runs out the dialer calls the agent's phone again; here it cannot be
    # reached (the Originate fails): the agent is paused and nothing is dialed for it (old
    # code counted the leg up as soon as the Originate was queued, and kept sending live
    # debtors into the empty conference).
    settings = rig.engine.settings
    rig.engine.settings = replace(settings, agent_dial_template="Local/{agent_id}@nowhere")
    await until(lambda: rig.desk.session(agent).state is AgentState.PAUSED, 10)
    assert rig.desk.session(agent).pause_reason == "technical"
    assert agent not in rig.engine.legs_up
    await until(lambda: not rig.engine.live, 10)
    dialed, connected = rig.engine.counters.dialed, rig.engine.counters.connected
    await asyncio.sleep(1.5)  # 7.5 virtual seconds: several pacing ticks
    assert (rig.engine.counters.dialed, rig.engine.counters.connected) == (dialed, connected)
    # The phone is back: Ready places a new leg, with a new id, and calls flow again.
    rig.engine.settings = settings
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: agent in rig.engine.legs_up, 5)
    new_leg = rig.calls.legs.leg_of(agent)
    assert new_leg is not None and new_leg.leg_id != leg.leg_id
    await until(lambda: rig.engine.counters.connected > connected, 10)


async def test_logging_out_hangs_up_the_leg_and_logging_in_again_places_a_new_one(rig: Rig):
    agent = rig.agents[1]
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: agent in rig.engine.legs_up, 5)
    first = rig.calls.legs.leg_of(agent)
    assert first is not None
    assert rig.sim.pbx.find(first.leg_id) is not None
    rig.desk.change(SYSTEM, agent, AgentState.LOGGED_OUT)
    await until(lambda: rig.sim.pbx.find(first.leg_id) is None, 5)
    assert agent not in rig.engine.legs_up
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: agent in rig.engine.legs_up, 5)
    second = rig.calls.legs.leg_of(agent)
    assert second is not None and second.leg_id != first.leg_id
    assert rig.sim.pbx.find(second.leg_id) is not None
