"""Wrap-up over the API: the countdown, more time, "pause after this call", a disposition
saved after the limit, and logging out during a call."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core.identity import SYSTEM, Role
from dialer.agents import AgentState
from tests.support.web import login
from tests.web.test_disposition import connected_call
from web.api_agents import DESK
from web.keys import POOL


def _on_call(client: TestClient, agent: int, case_id: int, key: str) -> None:
    """What the dialer does when a debtor is put through to the agent."""
    desk = client.app[DESK]
    desk.change(SYSTEM, agent, AgentState.READY)
    desk.change(SYSTEM, agent, AgentState.RESERVED, case_id=case_id, attempt_key=key)
    desk.change(SYSTEM, agent, AgentState.ON_CALL)


async def test_countdown_more_time_and_pause_after_this_call(client: TestClient):
    agent = (await login(client, "wrapper", Role.AGENT)).id
    case_id, _ = await connected_call(client, agent, "w1")
    _on_call(client, agent, case_id, "w1")
    r = await client.post("/api/agents/me/pause-after-call", json={"reason": "lunch"})
    assert r.status == 200, await r.text()
    assert (await r.json())["agent"]["pause_after_call"] == "lunch"
    bad = await client.post("/api/agents/me/pause-after-call", json={"reason": "nap"})
    assert bad.status == 409 and "unknown pause reason" in (await bad.json())["message"]
    # The call ends: wrap-up with a limit, which the console counts down.
    desk = client.app[DESK]
    desk.change(SYSTEM, agent, AgentState.WRAP_UP, wrap_up_until=desk.clock.monotonic() + 60.0)
    me = (await (await client.get("/api/agents/me")).json())["agent"]
    assert me["state"] == "wrap_up" and 55 <= me["wrap_up_seconds_left"] <= 60
    assert me["wrap_up_extend_left"] == 120.0
    r = await client.post("/api/agents/me/wrap-up/extend", json={"seconds": 100})
    view = (await r.json())["agent"]
    assert r.status == 200 and 150 <= view["wrap_up_seconds_left"] <= 160
    r = await client.post("/api/agents/me/wrap-up/extend")  # 30 s asked, 20 s left
    assert (await r.json())["agent"]["wrap_up_extend_left"] == 0.0
    refused = await client.post("/api/agents/me/wrap-up/extend")
    assert refused.status == 409 and "maximum" in (await refused.json())["message"]
    # Saving the disposition ends wrap-up: the agent goes to the pause they asked for.
    r = await client.post("/api/calls/w1/disposition", json={"status": "refused"})
    assert r.status == 200, await r.text()
    session = desk.session(agent)
    assert (session.state, session.pause_reason, session.pause_after_call) == (
        AgentState.PAUSED,
        "lunch",
        None,
    )
    await desk._queue.join()
    async with client.app[POOL].acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE entity = 'agent' AND entity_id = $1 "
                "ORDER BY id",
                str(agent),
            )
        ]
    assert actions.count("agent.wrap_up_extend") == 2
    assert "agent.pause_after_call" in actions


async def test_supervisors_set_how_much_time_agents_may_add(client: TestClient):
    await login(client, "boss", Role.SUPERVISOR)
    r = await client.post("/api/agents/wrap-up-policy", json={"extend_max": 300})
    assert r.status == 200 and (await r.json())["extend_max"] == 300.0
    assert client.app[DESK].wrap_up_extend_max == 300.0
    await login(client, "not-boss", Role.AGENT)
    r = await client.post("/api/agents/wrap-up-policy", json={"extend_max": 3000})
    assert r.status == 403


async def test_a_disposition_after_the_limit_is_accepted_and_listed_until_then(
    client: TestClient,
):
    agent = (await login(client, "late", Role.AGENT)).id
    case_id, lead_id = await connected_call(client, agent, "w2")
    async with client.app[POOL].acquire() as conn:
        # What the engine records when the wrap-up limit runs out.
        await conn.execute(
            "UPDATE call_attempts SET settled_provisionally_at = now() WHERE attempt_key = 'w2'"
        )
        await conn.execute("UPDATE leads SET state = 'done' WHERE id = $1", lead_id)
    me = await (await client.get("/api/agents/me")).json()
    assert [c["attempt_key"] for c in me["undisposed"]] == ["w2"]
    r = await client.post("/api/calls/w2/disposition", json={"status": "refused"})
    assert r.status == 200, await r.text()
    me = await (await client.get("/api/agents/me")).json()
    assert me["undisposed"] == []


async def test_logging_out_during_a_call_asks_first(client: TestClient):
    agent = (await login(client, "leaver", Role.AGENT)).id
    case_id, _ = await connected_call(client, agent, "w3")
    _on_call(client, agent, case_id, "w3")
    r = await client.post("/api/agents/me/state", json={"state": "logout"})
    body = await r.json()
    assert r.status == 409 and body["error"] == "on_call" and "log out anyway" in body["message"]
    assert client.app[DESK].session(agent).state is AgentState.ON_CALL
    r = await client.post("/api/agents/me/state", json={"state": "logout", "confirm": True})
    assert r.status == 200 and (await r.json())["agent"]["state"] == "logged_out"


async def test_logging_out_over_the_websocket_during_a_call_asks_first(client: TestClient):
    agent = (await login(client, "wsleaver", Role.AGENT)).id
    _on_call(client, agent, (await connected_call(client, agent, "w4"))[0], "w4")
    async with client.ws_connect("/ws") as ws:
        assert (await ws.receive_json())["type"] == "hello"
        await ws.send_json({"id": 1, "type": "agent.state", "state": "logout"})
        reply = await ws.receive_json()
        assert (reply["ok"], reply["error"]) == (False, "on_call")
        await ws.send_json({"id": 2, "type": "agent.state", "state": "logout", "confirm": True})
        reply = await ws.receive_json()
        assert reply["ok"] and reply["data"]["agent"]["state"] == "logged_out"
