"""Inbound calls end to end against the AMI simulator over TCP, in virtual time: a debtor
calls in, is identified, waits in the queue and is put through to an agent with the case
popped; unknown callers get a triage ticket; abandoned inbound calls are counted and
become callback leads; blended agents take waiting callers before outbound dialing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import time

import asyncpg
import pytest

from core.activity import timeline
from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.ami_events import ChannelRef, ConfbridgeJoin, CoreShowChannel, Hangup, UserEvent
from dialer.campaigns import DialMode, create_campaign
from dialer.engine import EngineSettings
from dialer.inbound_calls import InboundArrived, InboundConnected, InboundEnded, InboundTracker
from dialer.inbound_router import InboundSettings
from dialer.leads import CALLBACK_PRIORITY, load_leads
from tests.dialer.engine_rig import ROME, SCALE, Rig, engine_rig, next_message, until
from tests.dialer.test_leads import make_cases

MAX_WAIT = 12.0


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    settings = EngineSettings(
        dial_template="Local/{number}@sim-debtors",
        agent_dial_template="Local/{agent_id}@sim-agents",
        default_zones=tuple(ROME),
        tick=0.5,
        wrap_up_max=5.0,
        inbound=InboundSettings(max_wait=MAX_WAIT, default_region="IT"),
    )
    async with engine_rig(pool, prefix="inb", settings=settings) as rig:
        yield rig


async def _ledger(rig: Rig, key: str) -> asyncpg.Record:
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM call_attempts WHERE attempt_key = $1", key)


async def _campaign_with_lead(rig: Rig, case_id: int) -> int:
    async with rig.pool.acquire() as conn:
        campaign = await create_campaign(
            conn,
            SYSTEM,
            f"callbacks-{case_id}",
            mode=DialMode.PROGRESSIVE,
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )
        await load_leads(conn, campaign, rig.clock.now(), ROME)
        # Nothing to dial now: the lead was worked already and waits for a retry.
        await conn.execute(
            "UPDATE leads SET state = 'scheduled', next_attempt_at = now() + interval '2 days' "
            "WHERE campaign_id = $1",
            campaign.id,
        )
        await conn.execute("UPDATE campaigns SET active = true WHERE id = $1", campaign.id)
    return campaign.id


async def test_known_caller_reaches_the_cases_own_agent_with_the_case_popped(rig: Rig):
    async with rig.pool.acquire() as conn:
        (case_id,) = await make_cases(conn, [[("+393331234567", ROME)]])
        await conn.execute(
            "UPDATE cases SET assigned_agent_id = $2 WHERE id = $1", case_id, rig.agents[1]
        )
    async with rig.bus.listen("agent:*") as pops:
        for agent_id in rig.agents:  # agent 0 is the longest idle, but the case is agent 1's
            rig.desk.change(SYSTEM, agent_id, AgentState.READY)
        # In the inbound group, and with a phone leg up (nobody is put through without one).
        await until(lambda: all(rig.desk.session(a).inbound for a in rig.agents))
        await until(lambda: set(rig.agents) <= rig.engine.legs_up)
        caller = rig.sim.dialplan.inbound_call("3331234567", "800", patience=60, talk=6)
        key = f"in-{caller.uniqueid}"
        message = await next_message(pops, "screen_pop", 20)
    assert message["case_id"] == case_id
    assert message["attempt_key"] == key and message["direction"] == "inbound"
    assert message["triage"] is False
    await until(lambda: rig.desk.session(rig.agents[1]).state is AgentState.ON_CALL)
    assert rig.desk.session(rig.agents[0]).state is AgentState.READY
    await until(lambda: rig.desk.session(rig.agents[1]).state is AgentState.WRAP_UP)
    row = await _ledger(rig, key)
    assert row["direction"] == "inbound" and row["campaign_id"] is None
    assert row["outcome"] == "completed" and row["agent_id"] == rig.agents[1]
    assert row["e164"] == "+393331234567" and row["connected_at"] is not None
    assert row["recording"] == f"{key}.wav"
    async with rig.pool.acquire() as conn:
        page = await timeline(conn, case_id, limit=10)
    calls = [a for a in page.items if a.external_id == key]
    assert len(calls) == 1
    assert calls[0].direction == "inbound"
    assert calls[0].summary == "Inbound call: connected to an agent"
    assert rig.engine.inbound.counters.connected == 1
    assert rig.sim.pbx.truth.get("connected") == 1


async def test_unknown_caller_gets_a_triage_ticket_found_again_on_the_next_call(rig: Rig):
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
    await until(lambda: rig.desk.session(rig.agents[0]).inbound)
    await until(lambda: rig.agents[0] in rig.engine.legs_up)
    first = rig.sim.dialplan.inbound_call("+442079460958", "800", patience=60, talk=2)
    await until(lambda: f"in-{first.uniqueid}" not in rig.engine.inbound.calls
                 and rig.engine.inbound.counters.offered == 1)  # fmt: skip
    row = await _ledger(rig, f"in-{first.uniqueid}")
    assert row["outcome"] == "completed"
    async with rig.pool.acquire() as conn:
        ticket = await conn.fetchrow(
            "SELECT c.id, c.reference, cr.code FROM cases c JOIN creditors cr "
            "ON cr.id = c.creditor_id WHERE c.id = $1",
            row["case_id"],
        )
    assert ticket["code"] == "INBOUND" and ticket["reference"] == "+442079460958"
    assert rig.engine.inbound.counters.triage == 1
    await until(lambda: rig.desk.session(rig.agents[0]).state is AgentState.WRAP_UP)
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
    second = rig.sim.dialplan.inbound_call("+442079460958", "800", patience=60, talk=2)
    await until(lambda: rig.engine.inbound.counters.offered == 2
                 and f"in-{second.uniqueid}" not in rig.engine.inbound.calls)  # fmt: skip
    again = await _ledger(rig, f"in-{second.uniqueid}")
    assert again["case_id"] == ticket["id"]
    assert rig.engine.inbound.counters.identified == 1
    async with rig.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cases WHERE reference = $1",
                                   "+442079460958") == 1  # fmt: skip


async def test_queue_timeout_plays_the_callback_message_and_schedules_a_callback(rig: Rig):
    async with rig.pool.acquire() as conn:
        (case_id,) = await make_cases(conn, [[("+393339990001", ROME)]])
    campaign_id = await _campaign_with_lead(rig, case_id)
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.PAUSED, pause_reason="break")
    async with rig.bus.listen("inbound") as wallboard:
        caller = rig.sim.dialplan.inbound_call("+393339990001", "800", patience=600, talk=5)
        key = f"in-{caller.uniqueid}"
        arrived = await next_message(wallboard, "inbound.stats")
        assert arrived["offered"] == 1 and arrived["waiting"] == 1
        await until(lambda: rig.engine.inbound.counters.timed_out == 1, seconds=30)
        ended = await next_message(wallboard, "inbound.stats")
    assert ended["timed_out"] == 1 and ended["callbacks"] == 1 and ended["waiting"] == 0
    row = await _ledger(rig, key)
    assert row["outcome"] == "queue_timeout" and row["agent_id"] is None
    waited = (row["ended_at"] - row["started_at"]).total_seconds()
    assert MAX_WAIT <= waited < MAX_WAIT + 10  # the limit, then the callback message
    assert rig.sim.pbx.truth.get("inbound_timeout_message") == 1
    assert rig.engine.inbound.counters.callbacks == 1
    async with rig.pool.acquire() as conn:
        lead = await conn.fetchrow(
            "SELECT state, priority, next_attempt_at FROM leads WHERE campaign_id = $1 "
            "AND case_id = $2",
            campaign_id,
            case_id,
        )
    assert lead["state"] == "scheduled" and lead["priority"] == CALLBACK_PRIORITY
    assert (lead["next_attempt_at"] - row["ended_at"]).total_seconds() < 5


async def test_caller_hanging_up_in_the_queue_is_an_abandoned_inbound_call(rig: Rig):
    async with rig.pool.acquire() as conn:
        (case_id,) = await make_cases(conn, [[("+393339990002", ROME)]])
    await _campaign_with_lead(rig, case_id)
    caller = rig.sim.dialplan.inbound_call("+393339990002", "800", patience=3, talk=5)
    await until(lambda: rig.engine.inbound.counters.abandoned == 1)
    row = await _ledger(rig, f"in-{caller.uniqueid}")
    assert row["outcome"] == "abandoned"
    assert (row["ended_at"] - row["started_at"]).total_seconds() < MAX_WAIT
    assert rig.sim.pbx.truth.get("inbound_caller_gave_up") == 1
    assert rig.engine.inbound.counters.callbacks == 1
    async with rig.pool.acquire() as conn:
        page = await timeline(conn, case_id, limit=10)
    assert any(
        a.summary == "Inbound call: the caller hung up before an agent answered" for a in page.items
    )


async def test_blended_agent_takes_the_waiting_caller_before_outbound_dialing(rig: Rig):
    numbers = [f"+39333200000{d}" for d in "0123"]  # people who answer (lab rule)
    async with rig.pool.acquire() as conn:
        cases = await make_cases(conn, [[(n, ROME)] for n in numbers])
        (caller_case,) = await make_cases(conn, [[("+393339990003", ROME)]])
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "blended",
            mode=DialMode.PROGRESSIVE,
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    assert len(cases) == 4
    await rig.engine.add_campaign(campaign.id)
    rig.engine.inbound.settings = replace(rig.engine.inbound.settings, max_wait=600.0)
    caller = rig.sim.dialplan.inbound_call("+393339990003", "800", patience=60, talk=4)
    await until(lambda: rig.engine.inbound.waiting == 1)
    await asyncio.sleep(1.0 / SCALE * 10)  # a few pacing ticks with no agent ready
    assert rig.engine.counters.dialed == 0
    async with rig.bus.listen(f"agent:{rig.agents[0]}") as pops:
        rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
        message = await next_message(pops, "screen_pop", 20)
    assert message["case_id"] == caller_case and message["direction"] == "inbound"
    assert message["attempt_key"] == f"in-{caller.uniqueid}"
    assert rig.engine.counters.dialed == 0  # the agent went to the caller, not to a dial
    await until(lambda: rig.engine.counters.dialed >= 1, seconds=30)  # after the call


async def test_an_ami_outage_keeps_waiting_callers_and_calls_back_the_ones_it_lost(rig: Rig):
    async with rig.pool.acquire() as conn:
        (kept_case, lost_case) = await make_cases(
            conn, [[("+393339990004", ROME)], [("+393339990005", ROME)]]
        )
    await _campaign_with_lead(rig, lost_case)
    # Long enough a queue that the outage (and a loaded machine) cannot time the caller out.
    rig.engine.inbound.settings = replace(rig.engine.inbound.settings, max_wait=600.0)
    kept = rig.sim.dialplan.inbound_call("+393339990004", "800", patience=120, talk=3)
    lost = rig.sim.dialplan.inbound_call("+393339990005", "800", patience=120, talk=3)
    await until(lambda: rig.engine.inbound.waiting == 2)
    client = rig.engine.calls.client
    client._manager.reconnect_timeout = 0.5  # 10 virtual seconds without AMI
    rig.sim.drop_connections()
    await until(lambda: not rig.engine.calls.link_up, seconds=5)
    rig.sim.pbx.hangup(lost, 16)  # the caller gives up while the dialer cannot see it
    await until(lambda: rig.engine.calls.link_up, seconds=10)
    await until(lambda: rig.engine.inbound.counters.abandoned == 1)
    assert f"in-{kept.uniqueid}" in rig.engine.inbound.calls  # still waiting, still ours
    row = await _ledger(rig, f"in-{lost.uniqueid}")
    assert row["outcome"] == "lost"
    assert rig.engine.inbound.counters.callbacks == 1
    rig.desk.change(SYSTEM, rig.agents[0], AgentState.READY)
    await until(lambda: rig.engine.inbound.counters.connected == 1)
    await until(lambda: f"in-{kept.uniqueid}" not in rig.engine.inbound.calls)
    assert (await _ledger(rig, f"in-{kept.uniqueid}"))["outcome"] == "completed"
    assert kept_case != lost_case


# --- the AMI side, pure -------------------------------------------------------------------


def _ref(uniqueid: str, attempt: str = "", name: str = "PJSIP/carrier-1") -> ChannelRef:
    return ChannelRef(name, uniqueid, uniqueid, 6, "pratica-inbound", "800", attempt)


def test_inbound_tracker_follows_a_call_from_arrival_to_hangup():
    tracker = InboundTracker()
    ref = _ref("1.5", "in-1.5")
    arrived = tracker.feed(
        UserEvent(ref, "PraticaInbound", (("Caller", "3331234567"), ("Did", "800"))), 1.0
    )
    assert arrived == [InboundArrived("in-1.5", "PJSIP/carrier-1", "3331234567", "800", 1.0)]
    assert tracker.channel("in-1.5") == "PJSIP/carrier-1"
    joined = tracker.feed(ConfbridgeJoin(_ref("1.5", "in-1.5"), "agent-7"), 2.0)
    assert joined == [InboundConnected("in-1.5", 2.0)]
    assert tracker.feed(ConfbridgeJoin(_ref("1.5", "in-1.5"), "agent-7"), 2.1) == []
    ended = tracker.feed(Hangup(_ref("1.5", "in-1.5"), 16, "Normal Clearing"), 3.0)
    assert ended == [InboundEnded("in-1.5", 3.0, 16, connected=True)]
    assert tracker.active == 0
    # Outbound attempts' events are not ours.
    assert tracker.feed(Hangup(_ref("att-x", "x"), 16, ""), 4.0) == []


def test_inbound_reconcile_ends_vanished_calls_and_adopts_waiting_ones():
    tracker = InboundTracker()
    tracker.feed(UserEvent(_ref("1.5", "in-1.5"), "PraticaInbound", (("Caller", "1"),)), 1.0)
    snapshot = [
        CoreShowChannel(_ref("1.9", "in-1.9", "PJSIP/carrier-9"), "MusicOnHold", "00:00:07",
                        "3330000009"),
        CoreShowChannel(_ref("1.8", "in-1.8", "PJSIP/carrier-8"), "ConfBridge", "00:01:00"),
        CoreShowChannel(_ref("att-y", "y", "Local/1@sim-debtors-1;1"), "Wait", "00:00:03"),
    ]  # fmt: skip
    notices = tracker.reconcile(snapshot, 5.0)
    assert InboundEnded("in-1.5", 5.0, 0, connected=False, reconciled=True) in notices
    assert InboundArrived("in-1.9", "PJSIP/carrier-9", "3330000009", "", 5.0, adopted=True) in (
        notices
    )
    assert len(notices) == 2  # the connected caller is followed, not re-queued
    assert tracker.active == 2
