"""The abandonment cap under AMI faults: while the link is down live debtors cannot be put
through, so the dialer stops dialing and resumes only once the link has stayed up, longer
after every further drop; and what it could not follow is still recorded against the cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.engine import EngineSettings
from tests.dialer.engine_rig import ROME, Rig, all_day_campaign, engine_rig, until

STABLE = 10.0  # virtual seconds the link must stay up before dialing resumes


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    settings = EngineSettings(
        dial_template="Local/{number}@sim-debtors",
        agent_dial_template="Local/{agent_id}@sim-agents",
        default_zones=tuple(ROME),
        tick=0.5,
        wrap_up_max=5.0,
        link_stable_for=STABLE,
    )
    async with engine_rig(pool, agents=2, prefix="flap", settings=settings) as rig:
        yield rig


async def _drop(rig: Rig) -> None:
    """Cut the AMI connection under the client (as a network fault would)."""
    protocol = rig.client._manager.protocol
    assert protocol is not None and protocol.transport is not None
    protocol.transport.abort()
    await until(lambda: not rig.engine.calls.link_up, 5)
    await until(lambda: rig.engine.calls.link_up, 5)


async def test_a_flapping_link_holds_dialing_longer_after_every_drop(rig: Rig):
    await all_day_campaign(
        rig, "flap", [f"+3933350{n:05d}" for n in range(40)], pacing={"ratio": 2}
    )
    for agent in rig.agents:
        rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.engine.counters.dialed > 0, 10)

    await _drop(rig)
    held = rig.engine.dialing_status()
    assert not rig.engine.dialing_allowed() and STABLE * 0.8 < held["held_seconds"] <= STABLE
    dialed = rig.engine.counters.dialed
    await asyncio.sleep(STABLE * 0.5 / rig.clock.scale)
    assert rig.engine.counters.dialed == dialed  # nothing placed while the link settles
    await until(lambda: rig.engine.dialing_allowed(), 5)
    await until(lambda: rig.engine.counters.dialed > dialed, 5)

    # Two more drops within the flapping window: the hold doubles each time.
    await _drop(rig)
    assert STABLE * 1.6 < rig.engine.dialing_status()["held_seconds"] <= STABLE * 2
    await _drop(rig)
    assert STABLE * 3.2 < rig.engine.dialing_status()["held_seconds"] <= STABLE * 4


async def test_a_live_answer_lost_while_the_link_was_down_counts_as_abandoned_with_its_times(
    rig: Rig,
):
    # One person who answers; no agent is ready, so the debtor waits on hold; the link
    # drops before the AMD decision reaches the dialer and stays down past the limit.
    await all_day_campaign(rig, "lost-live", ["+393335100000"], pacing={"ratio": 1})
    agent = rig.agents[0]
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.engine.counters.dialed == 1, 10)
    key = next(iter(rig.engine.live))
    rig.desk.change(SYSTEM, agent, AgentState.PAUSED, pause_reason="break")
    await until(lambda: (c := rig.engine.calls.tracker.get(key)) is not None
                and c.timings.answered is not None, 10)  # fmt: skip
    rig.client._manager.reconnect_timeout = 3.0  # 60 virtual seconds down
    protocol = rig.client._manager.protocol
    assert protocol is not None and protocol.transport is not None
    protocol.transport.abort()
    await until(lambda: key not in rig.engine.live, 20)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM call_attempts WHERE attempt_key = $1", key)
    assert row["outcome"] == "abandoned", row
    assert row["answered_at"] is not None and row["abandoned_at"] is not None
    assert row["abandoned_at"] >= row["answered_at"]
    assert row["end_source"] == "reconciled"


async def test_a_person_whose_amd_decision_was_lost_in_a_drop_is_put_through_after_it(rig: Rig):
    # The AMD decision and the hold's WaitingForAgent are sent while the link is down; once
    # it is back, the call's context (the hold) says a person is waiting: put through at
    # once, not left to the dialplan's 30-second safety net and its message.
    await all_day_campaign(rig, "lost-decision", ["+393335200000"], pacing={"ratio": 1})
    agent = rig.agents[0]
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.engine.counters.dialed == 1, 10)
    key = next(iter(rig.engine.live))
    await until(lambda: (c := rig.engine.calls.tracker.get(key)) is not None
                and c.timings.answered is not None, 10)  # fmt: skip
    rig.client._manager.reconnect_timeout = 0.3  # 6 virtual seconds: AMD decides meanwhile
    protocol = rig.client._manager.protocol
    assert protocol is not None and protocol.transport is not None
    protocol.transport.abort()
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL, 10)
    assert rig.engine.live[key].connected is not None
    assert rig.sim.pbx.truth.get("abandon_message", 0) == 0
