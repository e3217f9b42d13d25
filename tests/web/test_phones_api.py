"""A phone's contact flags over HTTP (do-not-call, consent, wrong number), the status change
that stops a case's calls, and the wrong-number disposition: each takes effect for the
very next claim."""

from datetime import UTC, datetime, time

from aiohttp.test_utils import TestClient

from core import audit, cases
from core.identity import SYSTEM, Role
from dialer.campaigns import create_campaign
from dialer.leads import claim_leads, load_leads, zone_sets
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import POOL

ROME = ["Europe/Rome"]


async def _campaign(client: TestClient, name: str):
    async with client.app[POOL].acquire() as conn:
        c = await create_campaign(
            conn, SYSTEM, name, window_start=time(0), window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
        )  # fmt: skip
        await load_leads(conn, c, datetime.now(UTC), ROME)
    return c


async def _claim(client: TestClient, c) -> list:
    async with client.app[POOL].acquire() as conn:
        now = datetime.now(UTC)
        return await claim_leads(conn, c, now, 50, "t", now.date(), await zone_sets(conn))


async def _phones(client: TestClient, case_id: int) -> list[dict]:
    card = await (await client.get(f"/api/cases/{case_id}")).json()
    return card["phones"]


async def test_an_agent_sets_do_not_call_and_the_next_claim_skips_the_number(client: TestClient):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=("+393331230001",))
        other = await new_case(conn, last_name="Bianchi", phones=("+393331230002",))
    anna = await login(client, "anna", Role.AGENT)
    async with client.app[POOL].acquire() as conn:
        await cases.assign_case(conn, SYSTEM, case_id, anna.id)
    c = await _campaign(client, "dnc")
    [phone] = await _phones(client, case_id)
    r = await client.post(
        f"/api/cases/{case_id}/phones/{phone['id']}",
        json={"do_not_call": True, "reason": "asked not to be called"},
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["do_not_call"] is True and body["callable"] is False
    assert [lead.case_id for lead in await _claim(client, c)] == [other]
    async with client.app[POOL].acquire() as conn:
        [entry] = [e for e in await audit.entries_for(conn, "phone", phone["id"])]
        activity = await conn.fetchrow(
            "SELECT kind, summary, body, agent_id FROM activities WHERE case_id = $1", case_id
        )
        lead = await conn.fetchrow(
            "SELECT state, cancel_reason FROM leads WHERE case_id = $1", case_id
        )
    assert (entry.action, entry.actor, entry.before["do_not_call"], entry.after["do_not_call"]) == (
        "phone.contact",
        "anna (agent)",
        False,
        True,
    )
    assert activity["kind"] == "system" and activity["agent_id"] == anna.id
    assert activity["summary"] == "Phone +393331230001: do not call"
    assert activity["body"] == "asked not to be called"
    # The debtor has no other number: the lead stops instead of waiting on a blocked one.
    assert (lead["state"], lead["cancel_reason"]) == ("cancelled", "no phone that may be called")


async def test_revoked_consent_and_a_wrong_number_move_the_lead_to_the_next_phone(
    client: TestClient,
):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=("+393331240001", "+393331240002", "+393331240003"))
    await login(client, "sup", Role.SUPERVISOR)
    c = await _campaign(client, "consent")
    first, second, third = await _phones(client, case_id)
    r = await client.post(f"/api/cases/{case_id}/phones/{first['id']}", json={"consent": "revoked"})
    assert r.status == 200, await r.text()
    r = await client.post(
        f"/api/cases/{case_id}/phones/{second['id']}", json={"wrong_number": True}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["active"] is False
    [lead] = await _claim(client, c)
    assert lead.e164 == "+393331240003"
    phones = {p["id"]: p for p in await _phones(client, case_id)}
    assert phones[first["id"]]["consent"] == "revoked"
    assert phones[second["id"]]["active"] is False and phones[third["id"]]["active"] is True


async def test_phone_changes_are_validated_and_limited_to_who_may_see_the_case(
    client: TestClient,
):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=("+393331250001",))
        hidden = await new_case(conn, last_name="Nascosto", phones=("+393331250002",))
    anna = await login(client, "anna2", Role.AGENT)
    async with client.app[POOL].acquire() as conn:
        await cases.assign_case(conn, SYSTEM, case_id, anna.id)
        hidden_phone = await conn.fetchval(
            "SELECT p.id FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id WHERE c.id = $1",
            hidden,
        )
    [phone] = await _phones(client, case_id)
    url = f"/api/cases/{case_id}/phones/{phone['id']}"
    r = await client.post(f"/api/cases/{hidden}/phones/{hidden_phone}", json={"do_not_call": True})
    assert r.status == 403
    # A phone of another debtor through a case the agent may see.
    r = await client.post(f"/api/cases/{case_id}/phones/{hidden_phone}", json={"do_not_call": True})
    assert r.status == 404
    for bad, message in [
        ({}, "nothing to change"),
        ({"consent": "maybe"}, "consent"),
        ({"do_not_call": "yes"}, "do_not_call"),
        ({"wrong_number": 1}, "wrong_number"),
        ({"colour": "red"}, "colour"),
    ]:
        r = await client.post(url, json=bad)
        assert r.status == 400, bad
        assert message in (await r.json())["message"], bad
    assert (await client.post(url, json={"do_not_call": True})).status == 200
    # Lifting a restriction is a supervisor's decision.
    r = await client.post(url, json={"do_not_call": False})
    assert r.status == 403 and "supervisor" in (await r.json())["message"]
    await login(client, "sup2", Role.SUPERVISOR)
    r = await client.post(url, json={"do_not_call": False, "consent": "granted"})
    assert r.status == 200
    assert (await r.json())["callable"] is True
    async with client.app[POOL].acquire() as conn:
        changes = [e for e in await audit.entries_for(conn, "phone", phone["id"])]
    assert [e.outcome for e in changes] == ["done", "refused", "done"]


async def test_a_manager_sets_a_case_paid_over_the_api_and_its_leads_stop(client: TestClient):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn, phones=("+393331260001",))
        other = await new_case(conn, last_name="Verdi", phones=("+393331260002",))
    c = await _campaign(client, "paid")
    await login(client, "boss", Role.MANAGER)
    r = await client.post(f"/api/cases/{case_id}/status", json={"status": "paid"})
    assert r.status == 200, await r.text()
    assert [lead.case_id for lead in await _claim(client, c)] == [other]
    card = await (await client.get(f"/api/cases/{case_id}")).json()
    assert card["contactable"] is False
