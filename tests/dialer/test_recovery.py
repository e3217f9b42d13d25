"""Nothing is stranded by a crash or a stop: what a dialer node left unfinished is
reconciled with Asterisk when it starts again, and a stopped campaign or a clean stop
leaves no lead dialing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time

import asyncpg
import pytest

from core.activity import timeline
from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.campaigns import Campaign, DialMode, create_campaign
from dialer.leads import load_leads
from tests.dialer.engine_rig import ROME, Rig, crash, engine_rig, restart, until
from tests.dialer.test_leads import make_cases

# Lab debtors: the last digit decides (0-4 a person who answers, 5-6 no answer).
LIVE, NO_ANSWER, SPARE_1, SPARE_2 = (
    "+393331000000",
    "+393331000015",
    "+393331000021",
    "+393331000032",
)
NODE = "node-1"


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    # Slower than the other rigs: a connected call (15 virtual s) lasts 3 real seconds, long
    # enough to crash and restart the dialer in the middle of it.
    async with engine_rig(pool, agents=1, prefix="rec", scale=5.0) as rig:
        yield rig


async def _campaign(
    rig: Rig, numbers: list[str], balances: list[int]
) -> tuple[Campaign, list[int]]:
    async with rig.pool.acquire() as conn:
        cases = await make_cases(conn, [[(n, ROME)] for n in numbers], balances)
        campaign = await create_campaign(
            conn, SYSTEM, "recovery", mode=DialMode.POWER, pacing={"ratio": 2},
            window_start=time(0), window_end=time(23, 59), days_of_week=(1, 2, 3, 4, 5, 6, 7),
            no_answer_timeout=25,
        )  # fmt: skip
        await load_leads(conn, campaign, rig.clock.now(), ROME)
    return campaign, cases


async def _open_attempts(rig: Rig) -> list[asyncpg.Record]:
    async with rig.pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM call_attempts WHERE ended_at IS NULL")


async def _lead(rig: Rig, case_id: int) -> asyncpg.Record:
    async with rig.pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM leads WHERE case_id = $1", case_id)


async def test_after_a_crash_calls_still_up_are_adopted_and_what_is_gone_is_closed(rig: Rig):
    # The two best leads are dialed first (power mode, ratio 2, one agent): a person who
    # answers and a phone that rings on; the two spares wait.
    campaign, (live_case, ringing_case, claimed_case, stranded_case) = await _campaign(
        rig, [LIVE, NO_ANSWER, SPARE_1, SPARE_2], [4000, 3000, 2000, 1000]
    )
    agent = rig.agents[0]
    await rig.engine.add_campaign(campaign.id)
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL, 10)
    rig.engine.remove_campaign(campaign.id)  # the spares stay ready for the hand-made state
    assert len(rig.engine.live) == 2
    live_key = rig.desk.session(agent).attempt_key
    # What a process killed between its steps leaves: a lead claimed but not yet dialed,
    # and an attempt written but whose Originate never left.
    async with rig.pool.acquire() as conn:
        await conn.execute(
            "UPDATE leads SET state = 'dialing', claimed_by = $2, attempts_total = 1, "
            "attempts_today = 1, attempts_day = current_date WHERE case_id = $1",
            claimed_case, NODE,
        )  # fmt: skip
        stranded = await conn.fetchrow(
            "UPDATE leads SET state = 'dialing', claimed_by = $2, attempts_total = 1, "
            "attempts_today = 1, attempts_day = current_date WHERE case_id = $1 "
            "RETURNING id, debtor_id, phone_id",
            stranded_case, NODE,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, debtor_id, "
            "phone_id, e164, started_at, node) VALUES ('stranded1', $1, $2, $3, $4, $5, $6, "
            "now(), $7)",
            campaign.id, stranded["id"], stranded_case, stranded["debtor_id"],
            stranded["phone_id"], SPARE_2, NODE,
        )  # fmt: skip

    await crash(rig)
    await restart(rig)

    # At once: the attempt whose call never existed is closed as lost, the claimed lead is
    # back with its counters, and the agent is back on the call that outlived the process.
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        gone = await conn.fetchrow("SELECT * FROM call_attempts WHERE attempt_key = 'stranded1'")
    assert gone["outcome"] == "lost" and gone["end_source"] == "recovered"
    claimed = await _lead(rig, claimed_case)
    assert claimed["state"] == "ready" and claimed["attempts_total"] == 0
    assert (await _lead(rig, stranded_case))["state"] == "scheduled"
    session = rig.desk.session(agent)
    assert session.state is AgentState.ON_CALL and session.attempt_key == live_key
    assert agent in rig.engine.legs_up
    assert {c.lead.case_id for c in rig.engine.live.values()} == {live_case, ringing_case}

    # Then both adopted calls are followed to their end like any other.
    await until(lambda: not rig.engine.live, 20)
    await until(lambda: rig.desk.session(agent).state is AgentState.READY, 10)
    await rig.engine.ledger.drain()
    assert await _open_attempts(rig) == []
    async with rig.pool.acquire() as conn:
        rows = {
            r["case_id"]: r
            for r in await conn.fetch(
                "SELECT * FROM call_attempts WHERE case_id = ANY($1::bigint[])",
                [live_case, ringing_case],
            )
        }
        dialing = await conn.fetchval("SELECT count(*) FROM leads WHERE state = 'dialing'")
        page = await timeline(conn, live_case, limit=10)
    assert rows[live_case]["outcome"] == "completed"
    assert rows[live_case]["agent_id"] == agent
    assert rows[ringing_case]["outcome"] == "no_answer"
    assert dialing == 0
    assert [a.summary for a in page.items if a.external_id == live_key] == [
        "Outbound call: connected to an agent"
    ]


async def test_stopping_a_campaign_mid_call_leaves_no_lead_dialing(rig: Rig):
    campaign, (live_case, ringing_case, *_) = await _campaign(
        rig, [LIVE, NO_ANSWER, SPARE_1, SPARE_2], [4000, 3000, 2000, 1000]
    )
    agent = rig.agents[0]
    await rig.engine.add_campaign(campaign.id)
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL, 10)
    rig.engine.remove_campaign(campaign.id)
    # The calls end after the campaign stopped; the agent's wrap-up runs out undisposed.
    await until(lambda: not rig.engine.live, 20)
    await until(lambda: rig.desk.session(agent).state is AgentState.READY, 10)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        states = dict(await conn.fetch("SELECT case_id, state FROM leads"))
    assert states[ringing_case] == "scheduled"  # no answer: retried later
    assert states[live_case] == "done"  # contacted
    assert "dialing" not in states.values()


async def test_a_clean_stop_ends_ringing_calls_and_releases_what_it_claimed(rig: Rig):
    campaign, (live_case, ringing_case, *_) = await _campaign(
        rig, [LIVE, NO_ANSWER, SPARE_1, SPARE_2], [4000, 3000, 2000, 1000]
    )
    agent = rig.agents[0]
    await rig.engine.add_campaign(campaign.id)
    rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: rig.desk.session(agent).state is AgentState.ON_CALL, 10)
    await rig.engine.stop()
    async with rig.pool.acquire() as conn:
        open_keys = [r["case_id"] for r in await conn.fetch(
            "SELECT case_id FROM call_attempts WHERE ended_at IS NULL")]  # fmt: skip
        ringing = await conn.fetchrow(
            "SELECT outcome, end_source FROM call_attempts WHERE case_id = $1", ringing_case
        )
        dialing = [r["case_id"] for r in await conn.fetch(
            "SELECT case_id FROM leads WHERE state = 'dialing'")]  # fmt: skip
    # The ringing call was hung up and recorded; the connected call is handed over (it is
    # still up on Asterisk, and the next start of this node adopts it).
    assert ringing["outcome"] == "no_answer"
    assert open_keys == [live_case] and dialing == [live_case]
    await rig.desk.stop()
    await rig.calls.stop()
    await rig.client.close()
    await restart(rig)
    await until(lambda: not rig.engine.live, 20)
    await rig.engine.ledger.drain()
    assert await _open_attempts(rig) == []


async def test_a_reconnect_does_not_release_a_lead_claimed_but_not_yet_written(rig: Rig):
    # Seen in the long soak: the reconciliation after a reconnect released leads that a
    # running pacing tick had claimed and was about to write and dial; each was then
    # claimed again and its number dialed twice at once.
    campaign, (case_id, *_) = await _campaign(
        rig, [NO_ANSWER, SPARE_1, SPARE_2, LIVE], [4000, 3000, 2000, 1000]
    )
    async with rig.pool.acquire() as conn:
        await conn.execute(
            "UPDATE leads SET state = 'dialing', claimed_by = $2, attempts_total = 1 "
            "WHERE case_id = $1",
            case_id, NODE,
        )  # fmt: skip
    await rig.engine.recover()  # as after an AMI reconnect, while this process runs
    lead = await _lead(rig, case_id)
    assert lead["state"] == "dialing" and lead["attempts_total"] == 1
