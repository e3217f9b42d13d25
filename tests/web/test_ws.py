from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from core import cases
from core.identity import SYSTEM, Role
from tests.support.factories import new_case
from tests.support.web import login
from web.keys import BUS, POOL


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
    # The listener follows the new topic before the reply: the first event arrives.
    await client.app[BUS].broadcast(f"agent:{agent_id}", {"screen_pop": {"case_id": 42}})
    msg = await ws.receive_json(timeout=5)
    assert msg == {
        "type": "event",
        "topic": f"agent:{agent_id}",
        "data": {"screen_pop": {"case_id": 42}},
    }
    await ws.close()


async def test_no_event_is_lost_when_the_topics_change(client: TestClient):
    """A screen pop sent while the console starts following the popped case must arrive:
    the connection's listener changes its topics in place."""
    agent_id = (await login(client, "ag3", Role.AGENT)).id
    async with client.app[POOL].acquire() as conn:
        case_id = await new_case(conn)
        await cases.assign_case(conn, SYSTEM, case_id, agent_id)
    case_topic = f"case:{case_id}"
    bus = client.app[BUS]
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=5)
    events: list[int] = []

    async def request(request_id: int, **message) -> dict:  # type: ignore[no-untyped-def]
        await ws.send_json({"id": request_id, **message})
        while True:
            got = await ws.receive_json(timeout=5)
            if got["type"] == "event":
                events.append(got["data"]["n"])
            elif got["id"] == request_id:
                return got

    assert (await request(1, type="subscribe", topic=f"agent:{agent_id}"))["ok"]
    await bus.broadcast(f"agent:{agent_id}", {"n": 1})  # right after the reply
    for n in range(2, 6):  # waiting for the connection while it changes topics
        await bus.broadcast(f"agent:{agent_id}", {"n": n})
    assert (await request(2, type="subscribe", topic=case_topic))["ok"]
    await bus.broadcast(case_topic, {"n": 6})
    assert (await request(3, type="unsubscribe", topic=f"agent:{agent_id}"))["ok"]
    await bus.broadcast(f"agent:{agent_id}", {"n": 8})  # no longer followed
    await bus.broadcast(case_topic, {"n": 9})
    while len(events) < 7:
        got = await ws.receive_json(timeout=5)
        assert got["type"] == "event"
        events.append(got["data"]["n"])
    assert events == [1, 2, 3, 4, 5, 6, 9]
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
