import asyncio
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest

from core import users
from core.identity import SYSTEM, Role
from crm_bridge import store
from dialer.campaigns import CampaignError, create_campaign
from dialer.leads import (
    claim_leads,
    finish_attempt,
    load_leads,
    promote_due,
    release_claims,
    zone_sets,
)
from dialer.retry import AttemptOutcome, LeadState

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # Tuesday: 15:00 Rome, 09:00 New York
TODAY = date(2026, 11, 24)
ROME = ["Europe/Rome"]


async def make_cases(
    conn: asyncpg.Connection,
    phones_per_case: list[list[tuple[str, list[str]]]],
    balances: list[int] | None = None,
) -> list[int]:
    creditor = await conn.fetchval(
        "INSERT INTO creditors (code, name) VALUES ('bank', 'Bank') "
        "ON CONFLICT (code) DO UPDATE SET name = 'Bank' RETURNING id"
    )
    portfolio = await conn.fetchval(
        "INSERT INTO portfolios (creditor_id, code, name) VALUES ($1, 'p1', 'P1') "
        "ON CONFLICT (creditor_id, code) DO UPDATE SET name = 'P1' RETURNING id",
        creditor,
    )
    case_ids = []
    for index, phones in enumerate(phones_per_case):
        debtor = await conn.fetchval(
            "INSERT INTO debtors (last_name) VALUES ($1) RETURNING id", f"Debtor{index}"
        )
        for position, (e164, zones) in enumerate(phones):
            await conn.execute(
                "INSERT INTO phones (debtor_id, e164, time_zones, position) VALUES ($1, $2, $3, $4)",
                debtor,
                e164,
                zones,
                position,
            )
        balance = balances[index] if balances else 100 + index
        case_ids.append(
            await conn.fetchval(
                "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, total_due) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                creditor,
                portfolio,
                debtor,
                f"REF{index}-{debtor}",
                balance,
            )
        )
    return case_ids


async def due_claims(conn, c, at, limit, today=TODAY):
    """What an engine tick does: promote due retries, then claim."""
    await promote_due(conn, c.id, at)
    return await claim_leads(conn, c, at, limit, "n", today, await zone_sets(conn))


async def campaign(conn: asyncpg.Connection, **kwargs):
    return await create_campaign(conn, SYSTEM, kwargs.pop("name", "c1"), **kwargs)


async def test_leads_are_claimed_by_priority_and_never_twice(conn):
    await make_cases(
        conn, [[(f"+3933312345{i:02d}", ROME)] for i in range(5)], [10, 50, 30, 40, 20]
    )
    c = await campaign(conn)
    assert await load_leads(conn, c, NOW, ROME) == 5
    assert await load_leads(conn, c, NOW, ROME) == 0  # idempotent
    sets = await zone_sets(conn)
    first = await claim_leads(conn, c, NOW, 2, "node-a", TODAY, sets)
    balances = [
        await conn.fetchval("SELECT balance FROM cases WHERE id = $1", lead.case_id)
        for lead in first
    ]
    assert balances == [50, 40]
    rest = await claim_leads(conn, c, NOW, 10, "node-a", TODAY, sets)
    assert len(rest) == 3
    assert {lead.id for lead in first}.isdisjoint({lead.id for lead in rest})
    assert await claim_leads(conn, c, NOW, 10, "node-a", TODAY, sets) == []


async def test_concurrent_claimers_share_without_overlap(pool):
    async with pool.acquire() as conn:
        await make_cases(conn, [[(f"+39333123{i:04d}", ROME)] for i in range(200)])
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        sets = await zone_sets(conn)

    async def claimer(name: str) -> list[int]:
        got: list[int] = []
        async with pool.acquire() as conn:
            while True:
                batch = await claim_leads(conn, c, NOW, 7, name, TODAY, sets)
                if not batch:
                    return got
                got.extend(lead.id for lead in batch)

    results = await asyncio.gather(*(claimer(f"node-{n}") for n in range(4)))
    everything = [lead for result in results for lead in result]
    assert len(everything) == 200 and len(set(everything)) == 200


async def test_window_dnc_and_consent_are_checked_in_the_claim(conn):
    await make_cases(
        conn,
        [
            [("+12125550101", ["America/New_York"])],  # 09:00 local: open
            [("+13105550101", ["America/Los_Angeles"])],  # 06:00 local: closed
            [("+12125550102", ["America/New_York", "America/Los_Angeles"])],  # not open in both
            [("+393331112222", ROME)],
            [("+393331113333", ROME)],
        ],
    )
    await conn.execute("UPDATE phones SET do_not_call = true WHERE e164 = '+393331112222'")
    await conn.execute("UPDATE phones SET consent = 'revoked' WHERE e164 = '+393331113333'")
    c = await campaign(conn, window_start=time(8), window_end=time(21), compliance_profile="US")
    await load_leads(conn, c, NOW, ROME)
    claimed = await claim_leads(conn, c, NOW, 10, "n", TODAY, await zone_sets(conn))
    assert [lead.e164 for lead in claimed] == ["+12125550101"]
    later = NOW + timedelta(hours=4)  # 10:00 Los Angeles
    claimed = await claim_leads(conn, c, later, 10, "n", TODAY, await zone_sets(conn))
    assert sorted(lead.e164 for lead in claimed) == ["+12125550102", "+13105550101"]


async def test_outcomes_schedule_retries_and_limits(conn):
    await make_cases(conn, [[("+393330000001", ROME)]])
    c = await campaign(conn, max_attempts_per_day=2, max_attempts_total=3)
    await load_leads(conn, c, NOW, ROME)
    sets = await zone_sets(conn)
    [lead] = await claim_leads(conn, c, NOW, 1, "n", TODAY, sets)
    step = await finish_attempt(conn, c, lead.id, AttemptOutcome.BUSY, NOW, ROME)
    assert step.next_attempt_at == NOW + timedelta(minutes=10)
    assert await due_claims(conn, c, NOW + timedelta(minutes=5), 1) == []
    t2 = NOW + timedelta(minutes=11)
    [lead] = await due_claims(conn, c, t2, 1)
    step = await finish_attempt(conn, c, lead.id, AttemptOutcome.BUSY, t2, ROME)
    # Two attempts today: the next one waits for tomorrow's window in Rome (09:00 = 08:00 UTC).
    assert step.next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    t3 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert await due_claims(conn, c, t3 - timedelta(minutes=61), 1) == []
    [lead] = await due_claims(conn, c, t3, 1, date(2026, 11, 25))
    step = await finish_attempt(conn, c, lead.id, AttemptOutcome.NO_ANSWER, t3, ROME)
    assert step.state is LeadState.EXHAUSTED
    state = await conn.fetchval("SELECT state FROM leads WHERE id = $1", lead.id)
    assert state == "exhausted"


async def test_wrong_number_moves_to_the_next_phone_only(conn):
    await make_cases(conn, [[("+393330000001", ROME), ("+12125550199", ["America/New_York"])]])
    c = await campaign(conn)
    await load_leads(conn, c, NOW, ROME)
    [lead] = await claim_leads(conn, c, NOW, 1, "n", TODAY, await zone_sets(conn))
    assert lead.e164 == "+393330000001"
    await finish_attempt(conn, c, lead.id, AttemptOutcome.WRONG_NUMBER, NOW, ROME)
    active = await conn.fetch("SELECT e164, active FROM phones ORDER BY position")
    assert [(r["e164"], r["active"]) for r in active] == [
        ("+393330000001", False),
        ("+12125550199", True),
    ]
    [again] = await due_claims(conn, c, NOW + timedelta(minutes=2), 1)
    assert again.e164 == "+12125550199"
    step = await finish_attempt(conn, c, again.id, AttemptOutcome.INVALID_NUMBER, NOW, ROME)
    assert step.state is LeadState.EXHAUSTED


async def test_abandoned_number_is_embargoed_across_campaigns(conn):
    await make_cases(conn, [[("+447700900123", ["Europe/London"])]])
    uk = await campaign(conn, compliance_profile="UK")
    await load_leads(conn, uk, NOW, ROME)
    [lead] = await claim_leads(conn, uk, NOW, 1, "n", TODAY, await zone_sets(conn))
    step = await finish_attempt(conn, uk, lead.id, AttemptOutcome.ABANDONED, NOW, ROME)
    assert step.next_attempt_at == NOW + timedelta(hours=72)
    other = await campaign(conn, name="c2", compliance_profile="UK")
    await load_leads(conn, other, NOW, ROME)
    assert await due_claims(conn, other, NOW + timedelta(hours=1), 5) == []
    # The first campaign's own retry is not due either until the embargo ends.
    assert await due_claims(conn, uk, NOW + timedelta(hours=71), 5) == []
    assert len(await due_claims(conn, uk, NOW + timedelta(hours=72), 5)) == 1


async def test_released_claims_go_back_to_ready(conn):
    await make_cases(conn, [[("+393330000001", ROME)]])
    c = await campaign(conn)
    await load_leads(conn, c, NOW, ROME)
    [lead] = await claim_leads(conn, c, NOW, 1, "n", TODAY, await zone_sets(conn))
    assert await release_claims(conn, "other-node", [lead.id]) == 0
    assert await release_claims(conn, "n", [lead.id]) == 1
    row = await conn.fetchrow("SELECT state, attempts_total FROM leads WHERE id = $1", lead.id)
    assert (row["state"], row["attempts_total"]) == ("ready", 0)


async def test_campaign_validation_follows_the_profile(conn):
    with pytest.raises(CampaignError, match="below the US minimum ring of 15 s"):
        await campaign(conn, compliance_profile="US", no_answer_timeout=10)
    with pytest.raises(CampaignError, match="unknown outcome"):
        await campaign(conn, retry_delays={"sleeping": 5})


async def test_callbacks_jump_the_queue_when_due_and_name_their_agent(conn):
    from core import users
    from core.identity import Role
    from dialer.leads import schedule_callback

    agent = await users.create_user(conn, SYSTEM, "cb-agent", "password1", Role.AGENT)
    case_ids = await make_cases(
        conn, [[(f"+3933300000{i:02d}", ROME)] for i in range(3)], [500, 400, 10]
    )
    c = await campaign(conn)
    await load_leads(conn, c, NOW, ROME)
    at = NOW + timedelta(minutes=30)
    lead_id = await schedule_callback(conn, agent.actor, c, case_ids[2], at, agent.id, ROME)
    # Not due yet: the two other leads come first.
    first = await due_claims(conn, c, NOW, 1)
    assert first[0].case_id == case_ids[0]
    [callback] = await due_claims(conn, c, at, 1)
    assert (callback.id, callback.case_id, callback.callback_agent_id) == (
        lead_id,
        case_ids[2],
        agent.id,
    )
    await finish_attempt(conn, c, callback.id, AttemptOutcome.NO_ANSWER, at, ROME)
    row = await conn.fetchrow(
        "SELECT priority, callback_agent_id FROM leads WHERE id = $1", lead_id
    )
    assert (row["priority"], row["callback_agent_id"]) == (10, None)
    audited = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lead.callback'")
    assert audited == 1


async def test_us_profile_caps_attempts_per_debtor_at_seven_in_seven_days(conn):
    [case_id] = await make_cases(conn, [[("+12125550123", ["America/New_York"])]])
    c = await campaign(conn, compliance_profile="US", window_start=time(8), window_end=time(21))
    await load_leads(conn, c, NOW, ROME)
    debtor_id = await conn.fetchval("SELECT debtor_id FROM cases WHERE id = $1", case_id)
    for n in range(7):  # seven attempts this week, from any campaign
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, debtor_id, e164, started_at, ended_at, outcome) "
            "VALUES ($1, $2, '+12125550123', $3, $3, 'no_answer')",
            f"old-{n}",
            debtor_id,
            NOW - timedelta(days=6, hours=n),
        )
    assert await due_claims(conn, c, NOW, 1) == []
    # A day later the oldest attempts fall out of the 7-day window.
    assert len(await due_claims(conn, c, NOW + timedelta(days=1), 1, date(2026, 11, 25))) == 1


async def test_a_campaign_selects_its_cases_by_a_saved_filter_too(conn):
    cases = await make_cases(
        conn, [[(f"+3933312346{i:02d}", ROME)] for i in range(4)], [100, 900, 700, 50]
    )
    manager = await users.create_user(conn, SYSTEM, "filters", "password1", Role.MANAGER)
    saved = await store.save_filter(conn, manager.actor, "big", {"balance_min": "500"})
    c = await campaign(conn, saved_filter_id=saved.id)
    assert c.saved_filter_id == saved.id
    ids = await store.saved_filter_case_ids(conn, saved.id, TODAY)
    assert sorted(ids) == sorted([cases[1], cases[2]])
    assert await load_leads(conn, c, NOW, ROME, ids) == 2
    loaded = {r["case_id"] for r in await conn.fetch("SELECT case_id FROM leads")}
    assert loaded == {cases[1], cases[2]}
    with pytest.raises(CampaignError, match="no saved filter"):
        await campaign(conn, name="c2", saved_filter_id=saved.id + 100)
