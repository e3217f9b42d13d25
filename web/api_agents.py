"""Agent state over HTTP and WebSocket: agents go ready, pause and log out; supervisors
see every agent's state and time in state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core.identity import Role
from core.secret_key import secret_key
from dialer.agent_desk import AgentDesk, session_view
from dialer.agents import AgentState, AgentStateError
from dialer.sip_accounts import sip_password
from web.auth import current_actor, current_user, requires
from web.errors import json_error
from web.keys import BUS, CLOCK, POOL, SETTINGS
from web.ws import HUB, Connection

DESK = web.AppKey("agent_desk", AgentDesk)

# What a browser may ask for; the dialer sets the rest.
_AGENT_REQUESTS = {
    "ready": AgentState.READY,
    "pause": AgentState.PAUSED,
    "logout": AgentState.LOGGED_OUT,
}


async def desk_ctx(app: web.Application) -> AsyncIterator[None]:
    agents = app[SETTINGS].agents
    desk = AgentDesk(
        app[POOL], app[BUS], app[CLOCK], agents.pause_limits(), wrap_up_max=agents.wrap_up_max
    )
    app[DESK] = desk
    await desk.start()
    yield
    await desk.stop()


def _request_state(body: dict[str, Any]) -> tuple[AgentState, str | None]:
    wanted = body.get("state")
    if wanted not in _AGENT_REQUESTS:
        raise AgentStateError(f"state must be one of {', '.join(_AGENT_REQUESTS)}")
    reason = body.get("reason")
    return _AGENT_REQUESTS[wanted], None if reason is None else str(reason)


@requires(Role.SUPERVISOR)
async def list_agents(request: web.Request) -> web.Response:
    return web.json_response({"agents": request.app[DESK].snapshot()})


@requires(Role.AGENT)
async def my_state(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    session = desk.session(current_user(request).id)
    return web.json_response(
        {
            "agent": session_view(session, desk.clock.monotonic()),
            "pause_reasons": desk.pause_reasons,
        }
    )


@requires(Role.AGENT)
async def change_my_state(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        state, reason = _request_state(body)
        session = request.app[DESK].change(
            current_actor(request), current_user(request).id, state, pause_reason=reason
        )
    except AgentStateError as exc:
        return json_error(409, "invalid_state_change", str(exc))
    except ValueError:
        return json_error(400, "bad_request", "send JSON with a state")
    return web.json_response({"agent": session_view(session, request.app[DESK].clock.monotonic())})


@requires(Role.AGENT)
async def my_softphone(request: web.Request) -> web.Response:
    """What the browser softphone needs to register: Asterisk's WSS URL and credentials."""
    settings = request.app[SETTINGS]
    user = current_user(request)
    if not settings.softphone.ws_url:
        return web.json_response({"enabled": False})
    if not user.sip_extension:
        return json_error(409, "no_extension", "your user has no SIP extension; ask an admin")
    return web.json_response(
        {
            "enabled": True,
            "ws_url": settings.softphone.ws_url,
            "sip_uri": f"sip:{user.sip_extension}@{settings.softphone.sip_domain}",
            "password": sip_password(secret_key(settings), user.sip_extension),
        },
        headers={"Cache-Control": "no-store"},
    )


@requires(Role.SUPERVISOR)
async def set_agent_groups(request: web.Request) -> web.Response:
    """Which calls an agent takes: `{"inbound": true, "outbound": false}` (blended: both)."""
    try:
        agent_id = int(request.match_info["id"])
        body = await request.json()
        inbound, outbound = body.get("inbound"), body.get("outbound")
        if not isinstance(inbound, bool) or not isinstance(outbound, bool):
            raise ValueError
    except ValueError:
        return json_error(400, "bad_request", 'send JSON like {"inbound": true, "outbound": true}')
    desk = request.app[DESK]
    try:
        session = await desk.set_groups(
            current_actor(request), agent_id, inbound=inbound, outbound=outbound
        )
    except AgentStateError as exc:
        return json_error(409, "invalid_groups", str(exc))
    return web.json_response({"agent": session_view(session, desk.clock.monotonic())})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(desk_ctx)
    app.router.add_post("/api/agents/{id}/groups", set_agent_groups)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_get("/api/agents/me", my_state)
    app.router.add_get("/api/agents/me/softphone", my_softphone)
    app.router.add_post("/api/agents/me/state", change_my_state)
    hub = app[HUB]

    @hub.handler("agent.state", Role.AGENT)
    async def ws_change(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        state, reason = _request_state(message)
        desk = conn.app[DESK]
        session = desk.change(conn.user.actor, conn.user.id, state, pause_reason=reason)
        return {"agent": session_view(session, desk.clock.monotonic())}
