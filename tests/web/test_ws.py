from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from core.identity import Role
from tests.support.web import login
from web.keys import BUS


async def ask(ws, request_id: int, **message):
    await ws.send_json({"id": request_id, **message})
    while True:
        reply = await ws.receive_json(timeout=5)
        if reply["type"] == "reply" and reply["id"] == request_id:
            return reply


async def test_handshake_without_session_is_closed(client: TestClient):
    ws = await client.ws_connect("/ws")
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and msg.data == 4401


async def test_agents_follow_only_their_own_channel(client: TestClient):
    agent_id = (await login(client, "ag1", Role.AGENT)).id
    ws = await client.ws_connect("/ws")
    hello = await ws.receive_json(timeout=5)
    assert hello["user"] == {"id": agent_id, "role": "agent"}
    assert (await ask(ws, 1, type="subscribe", topic=f"agent:{agent_id}"))["ok"]
    other = await ask(ws, 2, type="subscribe", topic=f"agent:{agent_id + 100}")
    assert (other["ok"], other["error"]) == (False, "forbidden")
    wallboard = await ask(ws, 3, type="subscribe", topic="agents")
    assert wallboard["error"] == "forbidden"
    await ws.close()


async def test_events_on_the_bus_reach_the_browser(client: TestClient):
    agent_id = (await login(client, "ag2", Role.AGENT)).id
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=5)
    await ask(ws, 1, type="subscribe", topic=f"agent:{agent_id}")
    for _ in range(50):  # the listener starts asynchronously after the reply
        await client.app[BUS].broadcast(f"agent:{agent_id}", {"screen_pop": {"case_id": 42}})
        msg = await ws.receive_json(timeout=5)
        if msg["type"] == "event":
            break
    assert msg == {
        "type": "event",
        "topic": f"agent:{agent_id}",
        "data": {"screen_pop": {"case_id": 42}},
    }
    await ws.close()


async def test_supervisors_follow_the_wallboard_and_bad_messages_get_clear_errors(
    client: TestClient,
):
    await login(client, "sup", Role.SUPERVISOR)
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=5)
    assert (await ask(ws, 1, type="subscribe", topic="agents"))["ok"]
    assert (await ask(ws, 2, type="subscribe", topic="nonsense:1"))["error"] == "forbidden"
    assert (await ask(ws, 3, type="launch_missiles"))["error"] == "unknown_type"
    await ws.send_str("not json")
    reply = await ws.receive_json(timeout=5)
    assert reply["error"] == "bad_request"
    await ws.close()
