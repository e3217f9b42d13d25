"""The `wrong_number` disposition marks the number of THAT call wrong, whichever way the
call was placed (campaign, preview, manual call), as the console sends it: by status."""

from datetime import UTC, datetime, time

from aiohttp.test_utils import TestClient

from core.identity import SYSTEM, Role
from dialer.campaigns import create_campaign
from dialer.leads import claim_leads, load_leads, zone_sets
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import POOL

ROME = ["Europe/Rome"]
PHONES = ("+393331270001", "+393331270002")


async def _phone_ids(client: TestClient, case_id: int) -> list[int]:
    async with client.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT p.id FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id "
            "WHERE c.id = $1 ORDER BY p.position, p.id",
            case_id,
        )
    return [r["id"] for r in rows]


async def _call(
    client: TestClient, key: str, case_id: int, phone_id: int, agent_id: int,
    campaign_id: int | None = None, lead_id: int | None = None,
) -> None:  # fmt: skip
    async with client.app[POOL].acquire() as conn:
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, phone_id, e164, "
            "started_at, answered_at, connected_at, agent_id, ended_at, outcome) "
            "SELECT $1, $2, $3, $4, p.id, p.e164, now(), now(), now(), $6, now(), 'completed' "
            "FROM phones p WHERE p.id = $5",
            key,
            campaign_id,
            lead_id,
            case_id,
            phone_id,
            agent_id,
        )


async def _active(client: TestClient, phone_ids: list[int]) -> list[bool]:
    async with client.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, active FROM phones WHERE id = ANY($1::bigint[])", phone_ids
        )
    by_id = {r["id"]: r["active"] for r in rows}
    return [by_id[i] for i in phone_ids]


async def test_a_manual_call_disposed_wrong_number_marks_that_number_wrong(client: TestClient):
    agent = (await login(client, "wn1", Role.AGENT)).id
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=PHONES)
        campaign = await create_campaign(
            conn, SYSTEM, "wn-manual", window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        await load_leads(conn, campaign, datetime.now(UTC), ROME)
    first, second = await _phone_ids(client, case_id)
    # The agent dialed the debtor's first number by hand, outside any campaign.
    await _call(client, "m1", case_id, first, agent)
    r = await client.post("/api/calls/m1/disposition", json={"status": "wrong_number"})
    assert r.status == 200, await r.text()
    assert await _active(client, [first, second]) == [False, True]
    async with client.app[POOL].acquire() as conn:
        now = datetime.now(UTC)
        [lead] = await claim_leads(conn, campaign, now, 5, "t", now.date(), await zone_sets(conn))
        summaries = [
            r["summary"]
            for r in await conn.fetch(
                "SELECT summary FROM activities WHERE case_id = $1 ORDER BY id", case_id
            )
        ]
    # The campaign's lead, which pointed at that number, moved on to the next one.
    assert lead.e164 == PHONES[1]
    assert "Phone +393331270001: wrong number" in summaries


async def test_a_campaign_call_disposed_wrong_number_moves_the_lead_to_the_next_phone(
    client: TestClient,
):
    agent = (await login(client, "wn2", Role.AGENT)).id
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=PHONES)
        campaign = await create_campaign(
            conn, SYSTEM, "wn-campaign", window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        await load_leads(conn, campaign, datetime.now(UTC), ROME)
        now = datetime.now(UTC)
        [lead] = await claim_leads(conn, campaign, now, 5, "t", now.date(), await zone_sets(conn))
    first, second = await _phone_ids(client, case_id)
    await _call(client, "c1", case_id, first, agent, campaign.id, lead.id)
    r = await client.post("/api/calls/c1/disposition", json={"status": "wrong_number"})
    assert r.status == 200, await r.text()
    assert await _active(client, [first, second]) == [False, True]
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT state, phone_id FROM leads WHERE id = $1", lead.id)
    assert row["phone_id"] == second and row["state"] in ("scheduled", "ready")


async def test_a_callback_for_a_call_disposed_paid_is_refused_and_nothing_is_kept(
    client: TestClient,
):
    supervisor = (await login(client, "wn3", Role.SUPERVISOR)).id
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=PHONES)
        campaign = await create_campaign(conn, SYSTEM, "wn-paid")
        await load_leads(conn, campaign, datetime.now(UTC), ROME)
        lead_id = await conn.fetchval("SELECT id FROM leads WHERE case_id = $1", case_id)
    first, _ = await _phone_ids(client, case_id)
    await _call(client, "p1", case_id, first, supervisor, campaign.id, lead_id)
    r = await client.post(
        "/api/calls/p1/disposition",
        json={"status": "paid", "callback_at": "2099-01-01T10:00:00+01:00"},
    )
    assert r.status == 409, await r.text()
    body = await r.json()
    assert body["error"] == "not_contactable" and "must not be contacted" in body["message"]
    async with client.app[POOL].acquire() as conn:
        status = await conn.fetchval("SELECT status FROM cases WHERE id = $1", case_id)
    assert status == "new"
