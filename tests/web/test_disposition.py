from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from core.identity import SYSTEM, Role
from dialer.campaigns import create_campaign
from dialer.leads import load_leads
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import POOL


async def connected_call(client: TestClient, agent_id: int, key: str) -> tuple[int, int]:
    """A case with a lead in a campaign and a connected call taken by `agent_id`."""
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, reference=f"CASE-{key}")
        campaign = await create_campaign(conn, SYSTEM, f"camp-{key}")
        await load_leads(conn, campaign, datetime.now(UTC), ["Europe/Rome"])
        lead_id = await conn.fetchval("SELECT id FROM leads WHERE case_id = $1", case_id)
        await conn.execute("UPDATE leads SET state = 'dialing' WHERE id = $1", lead_id)
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, e164, started_at, "
            "answered_at, connected_at, agent_id, ended_at, outcome) "
            "VALUES ($1, $2, $3, $4, '+393331234567', now(), now(), now(), $5, now(), 'completed')",
            key,
            campaign.id,
            lead_id,
            case_id,
            agent_id,
        )
    return case_id, lead_id


async def test_disposition_updates_case_promise_lead_and_ledger_together(client: TestClient):
    agent = (await login(client, "anna", Role.AGENT)).id
    case_id, lead_id = await connected_call(client, agent, "k1")
    r = await client.post(
        "/api/calls/k1/disposition",
        json={
            "status": "promise_to_pay",
            "note": "Pays on the 1st",
            "promise": {"amount": "250.00", "due_date": "2099-01-01"},
        },
    )
    assert r.status == 200, await r.text()
    async with client.app[POOL].acquire() as conn:
        case = await conn.fetchrow("SELECT status FROM cases WHERE id = $1", case_id)
        lead = await conn.fetchrow("SELECT state FROM leads WHERE id = $1", lead_id)
        call = await conn.fetchrow(
            "SELECT disposition, promise_id FROM call_attempts WHERE attempt_key = 'k1'"
        )
        kinds = [
            r["kind"]
            for r in await conn.fetch(
                "SELECT kind FROM activities WHERE case_id = $1 ORDER BY id", case_id
            )
        ]
    assert case["status"] == "promise_to_pay" and lead["state"] == "done"
    assert call["disposition"] == "promise_to_pay" and call["promise_id"] is not None
    assert kinds == ["status_change", "promise", "note"]
    again = await client.post("/api/calls/k1/disposition", json={"status": "refused"})
    assert again.status == 409 and "already" in (await again.json())["message"]


async def test_only_the_calls_agent_disposes_and_a_bad_status_changes_nothing(client: TestClient):
    owner = (await login(client, "owner", Role.AGENT)).id
    case_id, _ = await connected_call(client, owner, "k2")
    await login(client, "intruder", Role.AGENT)
    r = await client.post("/api/calls/k2/disposition", json={"status": "refused"})
    assert r.status == 403
    await login(client, "owner2", Role.AGENT)
    client.session.cookie_jar.clear()
    await client.post("/api/login", json={"username": "owner", "password": "password1"})
    r = await client.post(
        "/api/calls/k2/disposition",
        json={"status": "closed", "promise": {"amount": "10", "due_date": "2099-01-01"}},
    )
    assert r.status == 403  # agents cannot close; nothing of the disposition is kept
    async with client.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM promises WHERE case_id = $1", case_id) == 0
        assert (
            await conn.fetchval("SELECT disposition FROM call_attempts WHERE attempt_key = 'k2'")
            is None
        )


async def test_a_callback_reschedules_the_lead_for_the_same_agent(client: TestClient):
    agent = (await login(client, "cb", Role.AGENT)).id
    _, lead_id = await connected_call(client, agent, "k3")
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    r = await client.post(
        "/api/calls/k3/disposition", json={"status": "contact_later", "callback_at": at.isoformat()}
    )
    assert r.status == 200, await r.text()
    async with client.app[POOL].acquire() as conn:
        lead = await conn.fetchrow(
            "SELECT state, next_attempt_at, callback_agent_id FROM leads WHERE id = $1", lead_id
        )
    assert (lead["state"], lead["next_attempt_at"], lead["callback_agent_id"]) == (
        "scheduled",
        at,
        agent,
    )
    naive = await client.post(
        "/api/calls/k3/disposition",
        json={"status": "contact_later", "callback_at": "2099-01-01T10:00:00"},
    )
    assert naive.status == 409
