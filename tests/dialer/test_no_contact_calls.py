"""No call reaches a case that must not be contacted: a running campaign, a preview on an
agent's screen, a manual call from the case; with the engine against the AMI simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time

import asyncpg
import pytest

from core.identity import SYSTEM, Actor, Role
from crm_bridge.workflow import change_status
from dialer.agent_dialing import AgentDialError
from dialer.agents import AgentState
from dialer.ami_codec import AmiMessage
from dialer.call_window import CallWindow
from dialer.campaigns import DialMode, create_campaign
from dialer.leads import load_leads
from tests.dialer.engine_rig import ROME, Rig, engine_rig, next_message, until
from tests.dialer.test_leads import make_cases

ALWAYS = CallWindow(time(0, 0), time(23, 59), frozenset(range(1, 8)))
MANAGER = Actor(None, "marco", Role.MANAGER)


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with engine_rig(pool, prefix="nc") as rig:
        rig.engine.agent_calls.manual_window = ALWAYS
        yield rig


async def _ready(rig: Rig, agent_id: int) -> None:
    rig.desk.change(SYSTEM, agent_id, AgentState.READY)
    await until(lambda: agent_id in rig.engine.legs_up)


class RingLog:
    """What the simulator was asked to dial, by number and virtual time (its own record,
    independent of the engine's ledger)."""

    def __init__(self, rig: Rig):
        self.rig = rig
        self.rings: list[tuple[str, datetime]] = []
        rig.sim.pbx.listeners.append(self)

    def __call__(self, message: AmiMessage) -> None:
        if message.get("Event") == "UserEvent" and message.get("UserEvent") == "SimDebtor":
            self.rings.append(("+" + message.get("Number"), self.rig.sim.clock.now()))


async def _open_calls(rig: Rig) -> int:
    async with rig.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM call_attempts WHERE ended_at IS NULL"))


@pytest.mark.timeout(120)
async def test_cases_paid_while_a_campaign_runs_are_never_dialed_again(rig: Rig):
    # Ten debtors who answer (an agent talks with each, then wraps up) with the larger
    # balances come first; six with smaller balances wait in `ready` behind them.
    others = [f"+3933312{n:04d}0" for n in range(10)]
    targets = [f"+3933313{n:04d}0" for n in range(6)]
    async with rig.pool.acquire() as conn:
        case_ids = await make_cases(
            conn,
            [[(e164, ROME)] for e164 in others + targets],
            [10_000 + n for n in range(10)] + [10 + n for n in range(6)],
        )
        campaign = await create_campaign(
            conn, SYSTEM, "runs", window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        assert await load_leads(conn, campaign, rig.clock.now(), ROME) == 16
    paid_cases = case_ids[10:]
    log = RingLog(rig)
    await rig.engine.add_campaign(campaign.id)
    for agent in rig.agents:
        await _ready(rig, agent)
    await until(lambda: len(log.rings) >= 2)
    async with rig.pool.acquire() as conn:
        ready = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE case_id = ANY($1::bigint[]) AND state = 'ready'",
            paid_cases,
        )
        assert ready == 6  # the campaign is running and has not reached them yet
        for case_id in paid_cases:
            await change_status(conn, rig.pool, MANAGER, case_id, "paid", rig.clock.now())
    paid_at = rig.sim.clock.now()
    # The campaign goes on with the other debtors, every one of them.
    await until(lambda: {n for n, _ in log.rings} >= set(others), seconds=60)
    await until(lambda: rig.engine.counters.dialed == len(log.rings), seconds=10)
    # Give it the time it took before to reach the six (about 20 s), and more.
    dialed = len(log.rings)
    await rig.clock.sleep(60 * 2)
    assert not [(n, at) for n, at in log.rings if n in targets], "a paid case was dialed"
    assert len(log.rings) == dialed  # nothing else was left to dial
    async with rig.pool.acquire() as conn:
        attempts = await conn.fetchval(
            "SELECT count(*) FROM call_attempts WHERE case_id = ANY($1::bigint[]) "
            "AND started_at >= $2",
            paid_cases,
            paid_at,
        )
        states = await conn.fetch(
            "SELECT state, cancel_reason FROM leads WHERE case_id = ANY($1::bigint[])", paid_cases
        )
    assert attempts == 0
    assert [(r["state"], r["cancel_reason"]) for r in states] == [
        ("cancelled", "case status paid")
    ] * 6
    await until(lambda: rig.engine.live == {}, seconds=30)
    assert await _open_calls(rig) == 0


async def test_a_manual_call_to_a_no_contact_case_is_refused_with_the_reason(rig: Rig):
    agent = rig.agents[0]
    async with rig.pool.acquire() as conn:
        paid, withdrawn = await make_cases(
            conn, [[("+393331150000", ROME)], [("+393331150010", ROME)]]
        )
        await change_status(conn, rig.pool, MANAGER, paid, "paid", rig.clock.now())
        await change_status(conn, rig.pool, MANAGER, withdrawn, "withdrawn", rig.clock.now())
    await _ready(rig, agent)
    with pytest.raises(AgentDialError, match="must not be contacted.*paid"):
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, paid)
    with pytest.raises(AgentDialError, match="must not be contacted.*withdrawn"):
        async with rig.pool.acquire() as conn:
            phone = await conn.fetchval(
                "SELECT p.id FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id "
                "WHERE c.id = $1",
                withdrawn,
            )
        await rig.engine.agent_calls.dial_case(SYSTEM, agent, withdrawn, phone)
    assert rig.desk.session(agent).state is AgentState.READY
    assert rig.sim.pbx.truth.get("dialed", 0) == 0


async def test_a_previewed_case_paid_before_the_agent_calls_is_not_dialed(rig: Rig):
    agent = rig.agents[0]
    async with rig.pool.acquire() as conn:
        [case_id] = await make_cases(conn, [[("+393331160000", ROME)]])
        campaign = await create_campaign(
            conn, SYSTEM, "preview", mode=DialMode.PREVIEW, window_start=time(0),
            window_end=time(23, 59), days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    await rig.engine.add_campaign(campaign.id)
    async with rig.bus.listen(f"agent:{agent}") as pops:
        await _ready(rig, agent)
        offer = await next_message(pops, "preview", 10)
    assert offer["case_id"] == case_id
    async with rig.pool.acquire() as conn:
        await change_status(conn, rig.pool, MANAGER, case_id, "paid", rig.clock.now())
    with pytest.raises(AgentDialError, match="must not be contacted"):
        await rig.engine.agent_calls.dial_preview(SYSTEM, agent, offer["lead_id"])
    await rig.engine.agent_calls.skip_preview(SYSTEM, agent, offer["lead_id"])
    async with rig.pool.acquire() as conn:
        state = await conn.fetchval("SELECT state FROM leads WHERE id = $1", offer["lead_id"])
    assert state == "cancelled"
    assert rig.sim.pbx.truth.get("dialed", 0) == 0
