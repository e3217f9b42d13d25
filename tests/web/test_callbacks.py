"""Callbacks set in the disposition of calls agents place (manual, preview, inbound): kept,
offered to the agent at the time or given to the case's campaign, and keeping campaigns
from calling the debtor before it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from aiohttp.test_utils import TestClient

from core.identity import SYSTEM, Role
from dialer import callbacks
from dialer.campaigns import DialMode, create_campaign
from dialer.leads import claim_leads, load_leads, zone_sets
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import BUS, POOL

ALL_DAY = {
    "window_start": time(0),
    "window_end": time(23, 59),
    "days_of_week": (1, 2, 3, 4, 5, 6, 7),
}


async def manual_call(client: TestClient, agent_id: int, key: str, case_id: int) -> None:
    """The ledger row of a call the agent placed from the case: no campaign, no lead."""
    async with client.app[POOL].acquire() as conn:
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, case_id, e164, started_at, answered_at, "
            "connected_at, agent_id, ended_at, outcome) "
            "VALUES ($1, $2, '+393331234567', now(), now(), now(), $3, now(), 'completed')",
            key,
            case_id,
            agent_id,
        )


async def _case(client: TestClient, reference: str, phone: str = "+393331234567") -> int:
    async with client.app[POOL].acquire() as conn:
        return await new_case(conn, reference=reference, phones=(phone,))


def _tomorrow() -> datetime:
    return (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)


async def test_a_personal_callback_of_a_manual_call_is_kept_for_the_agent(client: TestClient):
    agent = (await login(client, "manual", Role.AGENT)).id
    case_id = await _case(client, "CB-1")
    await manual_call(client, agent, "m1", case_id)
    at = _tomorrow()
    r = await client.post(
        "/api/calls/m1/disposition", json={"status": "contact_later", "callback_at": at.isoformat()}
    )
    assert r.status == 200, await r.text()
    r = await client.get("/api/agents/me/callbacks")
    assert r.status == 200, await r.text()
    listed = (await r.json())["callbacks"]
    assert [(c["case_id"], c["due_at"]) for c in listed] == [(case_id, at.isoformat())]


async def test_a_campaign_callback_of_a_manual_call_goes_to_the_cases_campaign(
    client: TestClient,
):
    agent = (await login(client, "manual2", Role.AGENT)).id
    case_id = await _case(client, "CB-2")
    async with client.app[POOL].acquire() as conn:
        campaign = await create_campaign(conn, SYSTEM, "cases-campaign", active=True, **ALL_DAY)
        await load_leads(conn, campaign, datetime.now(UTC), ["Europe/Rome"])
    await manual_call(client, agent, "m2", case_id)
    at = _tomorrow()
    r = await client.post(
        "/api/calls/m2/disposition",
        json={"status": "contact_later", "callback_at": at.isoformat(), "callback_personal": False},
    )
    assert r.status == 200, await r.text()
    async with client.app[POOL].acquire() as conn:
        lead = await conn.fetchrow(
            "SELECT state, next_attempt_at, callback_agent_id FROM leads WHERE case_id = $1",
            case_id,
        )
    assert (lead["state"], lead["next_attempt_at"], lead["callback_agent_id"]) == (
        "scheduled",
        at,
        None,
    )


async def test_a_personal_callback_of_a_preview_call_stays_with_its_agent(client: TestClient):
    """A preview campaign offers its leads to whichever agent is free, so a personal
    callback is the agent's own, not a lead for anyone."""
    agent = (await login(client, "previewer", Role.AGENT)).id
    case_id = await _case(client, "CB-3")
    async with client.app[POOL].acquire() as conn:
        campaign = await create_campaign(
            conn, SYSTEM, "preview", mode=DialMode.PREVIEW, active=True, **ALL_DAY
        )
        await load_leads(conn, campaign, datetime.now(UTC), ["Europe/Rome"])
        lead_id = await conn.fetchval("SELECT id FROM leads WHERE case_id = $1", case_id)
        await conn.execute("UPDATE leads SET state = 'dialing' WHERE id = $1", lead_id)
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, e164, "
            "started_at, answered_at, connected_at, agent_id, ended_at, outcome) VALUES "
            "('p1', $1, $2, $3, '+393331234567', now(), now(), now(), $4, now(), 'completed')",
            campaign.id,
            lead_id,
            case_id,
            agent,
        )
    at = _tomorrow()
    r = await client.post(
        "/api/calls/p1/disposition", json={"status": "contact_later", "callback_at": at.isoformat()}
    )
    assert r.status == 200, await r.text()
    listed = (await (await client.get("/api/agents/me/callbacks")).json())["callbacks"]
    assert [c["case_id"] for c in listed] == [case_id]
    async with client.app[POOL].acquire() as conn:
        state = await conn.fetchval("SELECT state FROM leads WHERE id = $1", lead_id)
    assert state == "done"  # no other agent is offered the debtor


async def test_a_pending_callback_keeps_campaigns_away_unless_the_agent_allows_it(
    client: TestClient,
):
    agent = (await login(client, "keeper", Role.AGENT)).id
    held = await _case(client, "CB-4", "+393331234501")
    allowed = await _case(client, "CB-5", "+393331234502")
    free = await _case(client, "CB-6", "+393331234503")
    async with client.app[POOL].acquire() as conn:
        campaign = await create_campaign(conn, SYSTEM, "claims", active=True, **ALL_DAY)
        await load_leads(conn, campaign, datetime.now(UTC), ["Europe/Rome"])
    await manual_call(client, agent, "m4", held)
    await manual_call(client, agent, "m5", allowed)
    at = _tomorrow().isoformat()
    for key, may_call in (("m4", False), ("m5", True)):
        r = await client.post(
            f"/api/calls/{key}/disposition",
            json={"status": "contact_later", "callback_at": at, "campaigns_may_call": may_call},
        )
        assert r.status == 200, await r.text()
    now = datetime.now(UTC)
    async with client.app[POOL].acquire() as conn:
        claimed = await claim_leads(conn, campaign, now, 10, "t", now.date(), await zone_sets(conn))
    assert sorted(lead.case_id for lead in claimed) == sorted([allowed, free])


async def test_a_due_callback_pops_on_the_agents_screen_once_and_a_later_call_closes_it(
    client: TestClient,
):
    agent = (await login(client, "popped", Role.AGENT)).id
    case_id = await _case(client, "CB-7")
    await manual_call(client, agent, "m6", case_id)
    r = await client.post(
        "/api/calls/m6/disposition",
        json={"status": "contact_later", "callback_at": _tomorrow().isoformat()},
    )
    assert r.status == 200
    pool, bus = client.app[POOL], client.app[BUS]
    async with bus.listen(f"agent:{agent}") as sub:
        assert await callbacks.announce_due(pool, bus, datetime.now(UTC)) == 0  # not yet
        later = datetime.now(UTC) + timedelta(days=1, minutes=1)
        assert await callbacks.announce_due(pool, bus, later) == 1
        assert await callbacks.announce_due(pool, bus, later) == 0  # announced once
        message = await sub.get(timeout=2.0)
    assert message is not None and message.data["type"] == "callback_due"
    assert message.data["case_id"] == case_id
    # The agent calls the debtor back and records the outcome: the callback is done.
    await manual_call(client, agent, "m7", case_id)
    r = await client.post("/api/calls/m7/disposition", json={"status": "refused"})
    assert r.status == 200
    assert (await (await client.get("/api/agents/me/callbacks")).json())["callbacks"] == []


async def test_an_agent_cancels_only_their_own_callback(client: TestClient):
    owner = (await login(client, "owner-cb", Role.AGENT)).id
    case_id = await _case(client, "CB-8")
    await manual_call(client, owner, "m8", case_id)
    await client.post(
        "/api/calls/m8/disposition",
        json={"status": "contact_later", "callback_at": _tomorrow().isoformat()},
    )
    callback_id = (await (await client.get("/api/agents/me/callbacks")).json())["callbacks"][0][
        "id"
    ]
    await login(client, "other-cb", Role.AGENT)
    r = await client.post(f"/api/callbacks/{callback_id}/cancel")
    assert r.status == 403
    client.session.cookie_jar.clear()
    await client.post("/api/login", json={"username": "owner-cb", "password": "password1"})
    r = await client.post(f"/api/callbacks/{callback_id}/cancel")
    assert r.status == 200, await r.text()
    assert (await (await client.get("/api/agents/me/callbacks")).json())["callbacks"] == []


async def test_an_agent_can_open_the_case_of_their_callback_days_later(client: TestClient):
    agent = (await login(client, "later", Role.AGENT)).id
    case_id = await _case(client, "CB-LATER")
    await manual_call(client, agent, "later1", case_id)
    at = _tomorrow() + timedelta(days=3)
    r = await client.post(
        "/api/calls/later1/disposition",
        json={"status": "contact_later", "callback_at": at.isoformat()},
    )
    assert r.status == 200, await r.text()
    async with client.app[POOL].acquire() as conn:
        # The call is from long ago; only the pending callback ties the agent to the case.
        await conn.execute(
            "UPDATE call_attempts SET started_at = now() - interval '3 days' "
            "WHERE attempt_key = 'later1'"
        )
    r = await client.get(f"/api/cases/{case_id}")
    assert r.status == 200, await r.text()
