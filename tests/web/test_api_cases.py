from aiohttp.test_utils import TestClient

from core import cases
from core.identity import SYSTEM, Role
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import POOL


async def test_agent_works_a_case_assigned_to_them(client: TestClient):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn)
        hidden = await new_case(conn, last_name="Nascosto")
    anna = await login(client, "anna", Role.AGENT)
    async with client.app[POOL].acquire() as conn:
        await cases.assign_case(conn, SYSTEM, case_id, anna.id)
    card = await (await client.get(f"/api/cases/{case_id}")).json()
    assert card["debtor"]["last_name"] == "Rossi" and card["status_label"] == "New"
    assert "closed" not in [s["code"] for s in card["allowed_statuses"]]
    assert (await client.get(f"/api/cases/{hidden}")).status == 403
    r = await client.post(f"/api/cases/{case_id}/notes", json={"text": "Spoke with the debtor"})
    assert r.status == 201
    r = await client.post(
        f"/api/cases/{case_id}/promises", json={"amount": "120.50", "due_date": "2099-01-31"}
    )
    assert r.status == 201
    r = await client.post(f"/api/cases/{case_id}/status", json={"status": "promise_to_pay"})
    assert r.status == 200
    r = await client.post(f"/api/cases/{case_id}/status", json={"status": "closed"})
    assert r.status == 403 and "manager" in (await r.json())["message"]
    page = await (await client.get(f"/api/cases/{case_id}/activities?limit=2")).json()
    assert [a["kind"] for a in page["items"]] == ["status_change", "promise"]
    older = await (
        await client.get(f"/api/cases/{case_id}/activities?limit=2&cursor={page['next_cursor']}")
    ).json()
    assert [a["kind"] for a in older["items"]] == ["note"]
    found = await (await client.get("/api/cases?filter=%7B%22text%22%3A%22rossi%22%7D")).json()
    assert [i["id"] for i in found["items"]] == [case_id]


async def test_bad_input_gets_clear_errors(client: TestClient):
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn)
    await login(client, "sup", Role.SUPERVISOR)
    r = await client.post(
        f"/api/cases/{case_id}/promises", json={"amount": "1.234", "due_date": "2099-01-01"}
    )
    assert r.status == 400 and "two decimals" in (await r.json())["message"]
    r = await client.post(
        f"/api/cases/{case_id}/promises", json={"amount": "10", "due_date": "soon"}
    )
    assert r.status == 400 and "due_date" in (await r.json())["message"]
    r = await client.get("/api/cases?filter=%7B%22nope%22%3A1%7D")
    assert r.status == 400 and (await r.json())["error"] == "invalid_filter"
    assert (await client.get("/api/cases/424242")).status == 404
    r = await client.post(f"/api/cases/{case_id}/status", json={"status": "teleported"})
    assert r.status == 409
    r = await client.post(
        f"/api/cases/{case_id}/payments", json={"amount": "10", "paid_on": "2026-11-01"}
    )
    assert r.status == 403  # payments are recorded by managers


async def test_saved_filters_over_http(client: TestClient):
    async with client.app[POOL].acquire() as conn:
        await new_case(conn, capital="9000.00", reference="BIG")
        await new_case(conn, capital="10.00", reference="SMALL")
    await login(client, "mgr", Role.MANAGER)
    r = await client.post(
        "/api/filters", json={"name": "big", "definition": {"balance_min": "5000"}}
    )
    filter_id = (await r.json())["id"]
    found = await (await client.get(f"/api/cases?saved_filter={filter_id}")).json()
    assert [i["reference"] for i in found["items"]] == ["BIG"]
    listed = await (await client.get("/api/filters")).json()
    assert listed["filters"][0]["definition"] == {"balance_min": "5000.00"}
    assert (await client.delete(f"/api/filters/{filter_id}")).status == 200
