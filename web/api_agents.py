"""Agent state over HTTP and WebSocket: agents go ready, pause and log out, extend their
wrap-up and ask to be paused after the current call; supervisors see every agent's state
and time in state, and set how much wrap-up time agents may add."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core import audit
from core.identity import Actor, Role
from core.secret_key import secret_key
from dialer.agent_desk import AgentDesk
from dialer.agent_presence import AgentPresence
from dialer.agents import AgentState, AgentStateError
from dialer.sip_accounts import sip_password
from web.auth import current_actor, current_user, requires
from web.errors import json_error
from web.keys import BUS, CLOCK, POOL, SETTINGS
from web.ws import HUB, Connection, WsError

DESK = web.AppKey("agent_desk", AgentDesk)
PRESENCE = web.AppKey("agent_presence", AgentPresence)
# Seconds one press of "more time" adds to the wrap-up, when the request names none.
EXTEND_STEP = 30.0
# States in which logging out would leave a debtor on the line.
_ON_A_CALL = {AgentState.RESERVED, AgentState.ON_CALL}

# What a browser may ask for; the dialer sets the rest.
_AGENT_REQUESTS = {
    "ready": AgentState.READY,
    "pause": AgentState.PAUSED,
    "logout": AgentState.LOGGED_OUT,
}


async def desk_ctx(app: web.Application) -> AsyncIterator[None]:
    agents = app[SETTINGS].agents
    reasons = agents.pause_limits()
    reasons.setdefault(agents.disconnect_reason, 10 * 60)
    desk = AgentDesk(
        app[POOL], app[BUS], app[CLOCK], reasons,
        wrap_up_max=agents.wrap_up_max, wrap_up_extend_max=agents.wrap_up_extend_max,
    )  # fmt: skip
    app[DESK] = desk
    presence = AgentPresence(desk, agents.console_grace, agents.disconnect_reason)
    app[PRESENCE] = presence
    await desk.start()
    yield
    await presence.close()
    await desk.stop()


def _request_state(body: dict[str, Any]) -> tuple[AgentState, str | None]:
    wanted = body.get("state")
    if wanted not in _AGENT_REQUESTS:
        raise AgentStateError(f"state must be one of {', '.join(_AGENT_REQUESTS)}")
    reason = body.get("reason")
    return _AGENT_REQUESTS[wanted], None if reason is None else str(reason)


class OnACall(AgentStateError):
    """Logging out now would leave the debtor on the line; the agent must confirm."""


def _change_own_state(desk: AgentDesk, actor: Actor, agent_id: int, body: dict[str, Any]) -> Any:
    state, reason = _request_state(body)
    if (
        state is AgentState.LOGGED_OUT
        and desk.session(agent_id).state in _ON_A_CALL
        and body.get("confirm") is not True
    ):
        raise OnACall('you are on a call; send "confirm": true to log out anyway')
    return desk.change(actor, agent_id, state, pause_reason=reason)


def _extend_seconds(body: dict[str, Any]) -> float:
    seconds = body.get("seconds", EXTEND_STEP)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise AgentStateError("seconds: a positive number of seconds")
    return float(seconds)


def _pause_reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise AgentStateError("reason: a pause reason code, or null to cancel")
    return reason


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise AgentStateError("send a JSON object") from None
    if not isinstance(body, dict):
        raise AgentStateError("send a JSON object")
    return body


async def undisposed_calls(conn: Any, agent_id: int) -> list[dict[str, Any]]:
    """The agent's connected calls of the last day still waiting for a disposition (the
    wrap-up ran out, or the agent paused): the console keeps a form open for each."""
    rows = await conn.fetch(
        "SELECT attempt_key, case_id, ended_at FROM call_attempts "
        "WHERE agent_id = $1 AND disposition IS NULL AND connected_at IS NOT NULL "
        "AND ended_at IS NOT NULL AND case_id IS NOT NULL "
        "AND started_at > now() - interval '1 day' ORDER BY started_at",
        agent_id,
    )
    return [
        {"attempt_key": r["attempt_key"], "case_id": r["case_id"],
         "ended_at": r["ended_at"].isoformat()}
        for r in rows
    ]  # fmt: skip


@requires(Role.SUPERVISOR)
async def list_agents(request: web.Request) -> web.Response:
    return web.json_response({"agents": request.app[DESK].snapshot()})


@requires(Role.AGENT)
async def my_state(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    user = current_user(request)
    async with request.app[POOL].acquire() as conn:
        undisposed = await undisposed_calls(conn, user.id)
    return web.json_response(
        {
            "agent": desk.view(desk.session(user.id)),
            "pause_reasons": desk.pause_reasons,
            "undisposed": undisposed,
        }
    )


@requires(Role.AGENT)
async def change_my_state(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return json_error(400, "bad_request", "send JSON with a state")
    try:
        session = _change_own_state(desk, current_actor(request), current_user(request).id, body)
    except OnACall as exc:
        return json_error(409, "on_call", str(exc))
    except AgentStateError as exc:
        return json_error(409, "invalid_state_change", str(exc))
    return web.json_response({"agent": desk.view(session)})


@requires(Role.AGENT)
async def extend_my_wrap_up(request: web.Request) -> web.Response:
    """More wrap-up time: `{"seconds": 30}` (30 when absent), within the maximum."""
    desk = request.app[DESK]
    seconds = _extend_seconds(await _json_object(request))
    session = desk.extend_wrap_up(current_actor(request), current_user(request).id, seconds)
    return web.json_response({"agent": desk.view(session)})


@requires(Role.AGENT)
async def pause_me_after_call(request: web.Request) -> web.Response:
    """Pause when the current call and its wrap-up end: `{"reason": "break"}`; `null`
    cancels."""
    desk = request.app[DESK]
    reason = _pause_reason(await _json_object(request))
    session = desk.pause_after_call(current_actor(request), current_user(request).id, reason)
    return web.json_response({"agent": desk.view(session)})


@requires(Role.SUPERVISOR)
async def set_wrap_up_policy(request: web.Request) -> web.Response:
    """How many seconds agents may add to one wrap-up: `{"extend_max": 180}` (this node,
    until the server restarts; `[agents] wrap_up_extend_max` is the lasting setting)."""
    body = await _json_object(request)
    value = body.get("extend_max")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 3600:
        return json_error(400, "bad_request", "extend_max: 0..3600 seconds")
    desk = request.app[DESK]
    before = desk.wrap_up_extend_max
    desk.wrap_up_extend_max = float(value)
    async with request.app[POOL].acquire() as conn:
        await audit.record(
            conn, current_actor(request), "agents.wrap_up_policy", "agents", None,
            before={"extend_max": before}, after={"extend_max": float(value)},
        )  # fmt: skip
    return web.json_response(
        {"wrap_up_max": desk.wrap_up_max, "extend_max": desk.wrap_up_extend_max}
    )


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
    return web.json_response({"agent": desk.view(session)})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(desk_ctx)
    app.router.add_post("/api/agents/{id}/groups", set_agent_groups)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_get("/api/agents/me", my_state)
    app.router.add_get("/api/agents/me/softphone", my_softphone)
    app.router.add_post("/api/agents/me/state", change_my_state)
    app.router.add_post("/api/agents/me/wrap-up/extend", extend_my_wrap_up)
    app.router.add_post("/api/agents/me/pause-after-call", pause_me_after_call)
    app.router.add_post("/api/agents/wrap-up-policy", set_wrap_up_policy)
    hub = app[HUB]

    def follow_presence(conn: Connection, is_open: bool) -> None:
        presence = conn.app.get(PRESENCE)
        if presence is None:
            return
        if is_open:
            presence.connected(conn.user.id)
        else:
            presence.disconnected(conn.user.id)

    hub.presence.append(follow_presence)

    @hub.handler("agent.state", Role.AGENT)
    async def ws_change(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        desk = conn.app[DESK]
        try:
            session = _change_own_state(desk, conn.user.actor, conn.user.id, message)
        except OnACall as exc:
            raise WsError("on_call", str(exc)) from None
        return {"agent": desk.view(session)}

    @hub.handler("agent.wrap_up.extend", Role.AGENT)
    async def ws_extend(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        desk = conn.app[DESK]
        session = desk.extend_wrap_up(conn.user.actor, conn.user.id, _extend_seconds(message))
        return {"agent": desk.view(session)}

    @hub.handler("agent.pause_after_call", Role.AGENT)
    async def ws_pause_after_call(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        desk = conn.app[DESK]
        session = desk.pause_after_call(conn.user.actor, conn.user.id, _pause_reason(message))
        return {"agent": desk.view(session)}
