"""Presence over a real server and real WebSockets: an agent whose console is gone, and
not back within the grace period, is no longer offered calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.identity import SYSTEM, Role
from core.settings import load_settings
from dialer.agents import AgentState
from tests.support.web import login
from web.api_agents import DESK
from web.app import create_app
from web.keys import POOL

GRACE = 0.4


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[TestClient]:
    settings = load_settings(
        environ={"DATABASE_URL": database_url, "PRATICA_AGENTS_CONSOLE_GRACE": str(GRACE)}
    )
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def _console(client: TestClient):  # type: ignore[no-untyped-def]
    ws = await client.ws_connect("/ws")
    assert (await ws.receive_json())["type"] == "hello"
    return ws


async def _ready(ws) -> None:  # type: ignore[no-untyped-def]
    await ws.send_json({"id": 1, "type": "agent.state", "state": "ready"})
    reply = await ws.receive_json()
    assert reply["ok"], reply


async def test_an_agent_whose_console_closed_is_paused_after_the_grace_period(
    client: TestClient,
):
    agent = (await login(client, "gone", Role.AGENT)).id
    ws = await _console(client)
    await _ready(ws)
    await ws.close()
    await asyncio.sleep(GRACE / 2)
    desk = client.app[DESK]
    assert desk.session(agent).state is AgentState.READY  # within the grace period
    await asyncio.sleep(GRACE)
    session = desk.session(agent)
    assert (session.state, session.pause_reason) == (AgentState.PAUSED, "technical")
    await desk._queue.join()
    async with client.app[POOL].acquire() as conn:
        audited = await conn.fetchrow(
            "SELECT actor_id, after FROM audit_log WHERE action = 'agent.state' "
            "AND entity_id = $1 ORDER BY id DESC LIMIT 1",
            str(agent),
        )
    assert audited["actor_id"] is None and "console disconnected" in str(audited["after"])


async def test_a_console_back_within_the_grace_period_changes_nothing(client: TestClient):
    agent = (await login(client, "blip", Role.AGENT)).id
    ws = await _console(client)
    await _ready(ws)
    await ws.close()
    await asyncio.sleep(GRACE / 4)
    again = await _console(client)  # a reload
    await asyncio.sleep(GRACE * 2)
    assert client.app[DESK].session(agent).state is AgentState.READY
    # One of two consoles closing is not an absence either.
    second = await _console(client)
    await second.close()
    await asyncio.sleep(GRACE * 2)
    assert client.app[DESK].session(agent).state is AgentState.READY
    await again.close()


async def test_an_agent_on_a_call_keeps_it_and_is_paused_when_it_ends(client: TestClient):
    agent = (await login(client, "talking", Role.AGENT)).id
    ws = await _console(client)
    await _ready(ws)
    desk = client.app[DESK]
    desk.change(SYSTEM, agent, AgentState.RESERVED, attempt_key="call-1")
    desk.change(SYSTEM, agent, AgentState.ON_CALL)
    await ws.close()
    await asyncio.sleep(GRACE * 2)
    session = desk.session(agent)
    assert (session.state, session.pause_after_call) == (AgentState.ON_CALL, "technical")
    # The call ends; when wrap-up ends the dialer would make the agent ready: paused instead.
    desk.change(SYSTEM, agent, AgentState.WRAP_UP)
    desk.change(SYSTEM, agent, AgentState.READY)
    session = desk.session(agent)
    assert (session.state, session.pause_reason) == (AgentState.PAUSED, "technical")


async def test_an_agent_back_during_the_call_decides_again(client: TestClient):
    agent = (await login(client, "back", Role.AGENT)).id
    ws = await _console(client)
    await _ready(ws)
    desk = client.app[DESK]
    desk.change(SYSTEM, agent, AgentState.RESERVED, attempt_key="call-2")
    desk.change(SYSTEM, agent, AgentState.ON_CALL)
    await ws.close()
    await asyncio.sleep(GRACE * 2)
    assert desk.session(agent).pause_after_call == "technical"
    again = await _console(client)
    assert desk.session(agent).pause_after_call is None
    await again.close()
