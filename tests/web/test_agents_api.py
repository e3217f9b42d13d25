import asyncio

from aiohttp.test_utils import TestClient

from core.identity import SYSTEM, Role
from dialer.agents import AgentState
from tests.support.web import login
from web.api_agents import DESK
from web.keys import POOL


async def test_agent_goes_ready_pauses_and_it_is_logged_audited_and_visible(client: TestClient):
    agent_id = (await login(client, "desk1", Role.AGENT)).id
    r = await client.post("/api/agents/me/state", json={"state": "ready"})
    assert r.status == 200 and (await r.json())["agent"]["state"] == "ready"
    r = await client.post("/api/agents/me/state", json={"state": "pause", "reason": "nap"})
    assert r.status == 409 and "unknown pause reason" in (await r.json())["message"]
    r = await client.post("/api/agents/me/state", json={"state": "pause", "reason": "break"})
    assert (await r.json())["agent"]["pause_reason"] == "break"
    assert (await client.get("/api/agents")).status == 403  # agents do not see the wallboard
    await client.app[DESK]._queue.join()
    async with client.app[POOL].acquire() as conn:
        states = [
            r["state"]
            for r in await conn.fetch(
                "SELECT state FROM agent_state_log WHERE agent_id = $1 ORDER BY id", agent_id
            )
        ]
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'agent.state' AND entity_id = $1",
            str(agent_id),
        )
    assert states == ["ready", "paused"] and audited == 2


async def test_browsers_cannot_claim_engine_states_and_supervisors_see_all(client: TestClient):
    agent_id = (await login(client, "desk2", Role.AGENT)).id
    r = await client.post("/api/agents/me/state", json={"state": "on_call"})
    assert r.status == 409
    desk = client.app[DESK]
    desk.change(SYSTEM, agent_id, AgentState.READY)
    desk.change(SYSTEM, agent_id, AgentState.RESERVED, case_id=5, attempt_key="k")
    client.session.cookie_jar.clear()
    await login(client, "boss", Role.SUPERVISOR)
    agents = (await (await client.get("/api/agents")).json())["agents"]
    assert [(a["agent_id"], a["state"], a["case_id"]) for a in agents] == [
        (agent_id, "reserved", 5)
    ]


async def test_state_changes_are_published_to_the_agent_and_wallboard(client: TestClient):
    agent_id = (await login(client, "desk3", Role.AGENT)).id
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=5)
    await ws.send_json({"id": 1, "type": "subscribe", "topic": f"agent:{agent_id}"})
    assert (await ws.receive_json(timeout=5))["ok"]
    await asyncio.sleep(0.2)  # the bus listener starts after the reply
    await ws.send_json({"id": 2, "type": "agent.state", "state": "ready"})
    seen = []
    while len(seen) < 2:
        seen.append(await ws.receive_json(timeout=5))
    event = next(m for m in seen if m["type"] == "event")
    reply = next(m for m in seen if m["type"] == "reply")
    assert reply["ok"] and event["data"]["agent"]["state"] == "ready"
    await ws.close()


async def test_supervisors_choose_an_agents_call_groups_agents_cannot(client: TestClient):
    agent_id = (await login(client, "desk4", Role.AGENT)).id
    r = await client.post(
        f"/api/agents/{agent_id}/groups", json={"inbound": False, "outbound": True}
    )
    assert r.status == 403
    client.session.cookie_jar.clear()
    await login(client, "boss2", Role.SUPERVISOR)
    r = await client.post(
        f"/api/agents/{agent_id}/groups", json={"inbound": False, "outbound": False}
    )
    assert r.status == 409 and "at least one group" in (await r.json())["message"]
    r = await client.post(f"/api/agents/{agent_id}/groups", json={"inbound": "yes"})
    assert r.status == 400
    r = await client.post(
        f"/api/agents/{agent_id}/groups", json={"inbound": True, "outbound": False}
    )
    assert r.status == 200
    body = (await r.json())["agent"]
    assert body["inbound"] is True and body["outbound"] is False
    session = client.app[DESK].session(agent_id)
    assert session.inbound and not session.outbound
    async with client.app[POOL].acquire() as conn:
        audited = await conn.fetchrow(
            "SELECT before, after FROM audit_log WHERE action = 'agent.groups' AND entity_id = $1",
            str(agent_id),
        )
    assert audited is not None
    assert audited["before"] == {"inbound": False, "outbound": True}
    assert audited["after"] == {"inbound": True, "outbound": False}
