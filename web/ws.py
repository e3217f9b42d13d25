"""The WebSocket hub: live updates to browsers, and commands from them.

One socket per browser tab, authenticated by the session cookie at the handshake. Every
client message names a `type`; each type is registered with the minimum role allowed to
send it (deny by default: an unknown type is refused), and its handler may check more
(e.g. whether an agent may follow this case). Subscriptions map to event-bus channels,
so a browser connected to any node receives events published on any node. Features may
follow who is connected (`Hub.presence`: called when a console opens and closes).

Wire format (JSON text frames):
  client -> server  {"id": 7, "type": "subscribe", "topic": "case:42"}
  server -> client  {"type": "reply", "id": 7, "ok": true, "data": {...}}
                    {"type": "reply", "id": 7, "ok": false, "error": "forbidden", "message": "..."}
                    {"type": "event", "topic": "case:42", "data": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from core.bus import Subscription
from core.identity import PermissionDenied, Role
from core.tasks import cancel_and_wait
from core.users import User
from web.auth import public, resolve_user
from web.keys import BUS

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
MAX_TOPICS = 50


class WsError(Exception):
    """A refused or malformed client message; `code` is sent back to the client."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Connection:
    user: User
    ws: web.WebSocketResponse
    app: web.Application
    topics: set[str] = field(default_factory=set)
    # The bus listener of this connection, changed in place when its topics change (a
    # new listener would lose the events queued for the old one, e.g. a screen pop).
    subscription: Subscription | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def retopic(self) -> None:
        """Make the bus listener follow `topics`; done before the request is answered, so
        an event sent after the reply is delivered."""
        async with self.lock:
            if self.subscription is not None:
                await self.subscription.update(*sorted(self.topics))

    async def send_event(self, topic: str, data: Any) -> None:
        await self.ws.send_json({"type": "event", "topic": topic, "data": data})


Handler = Callable[[Connection, dict[str, Any]], Awaitable[Any]]
TopicRule = Callable[[Connection, str], Awaitable[bool]]
# Called with (connection, True) once it is open and (connection, False) when it closes.
PresenceListener = Callable[[Connection, bool], None]


@dataclass(frozen=True)
class _Registered:
    role: Role
    handler: Handler


class Hub:
    """Message types and topic access rules; features register theirs at startup."""

    def __init__(self) -> None:
        self.handlers: dict[str, _Registered] = {}
        self.topic_rules: dict[str, tuple[Role, TopicRule | None]] = {}
        self.presence: list[PresenceListener] = []

    def _tell_presence(self, conn: Connection, is_open: bool) -> None:
        for listener in self.presence:
            try:
                listener(conn, is_open)
            except Exception:
                log.exception("a presence listener failed")

    def handler(self, message_type: str, role: Role) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if message_type in self.handlers:
                raise ValueError(f"message type {message_type!r} registered twice")
            self.handlers[message_type] = _Registered(role, fn)
            return fn

        return register

    def topic(self, prefix: str, role: Role, rule: TopicRule | None = None) -> None:
        """Allow subscribing to `<prefix>` or `<prefix>:<anything>` for `role` and above,
        when `rule` (if given) also agrees."""
        self.topic_rules[prefix] = (role, rule)

    async def may_follow(self, conn: Connection, topic: str) -> bool:
        prefix = topic.split(":", 1)[0]
        entry = self.topic_rules.get(prefix)
        if entry is None:
            return False
        role, rule = entry
        if not conn.user.role.at_least(role):
            return False
        return True if rule is None else await rule(conn, topic)

    async def dispatch(self, conn: Connection, raw: str) -> dict[str, Any]:
        if len(raw) > MAX_MESSAGE:
            raise WsError("too_large", f"messages are limited to {MAX_MESSAGE} bytes")
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            raise WsError("bad_request", "messages must be JSON objects") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise WsError("bad_request", "messages must be JSON objects with a 'type'")
        registered = self.handlers.get(message["type"])
        if registered is None:
            raise WsError("unknown_type", f"unknown message type {message['type']!r}")
        if not conn.user.role.at_least(registered.role):
            raise WsError("forbidden", f"{message['type']} requires the {registered.role} role")
        try:
            data = await registered.handler(conn, message)
        except PermissionDenied as exc:
            raise WsError("forbidden", str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            # Domain errors (invalid transitions, bad values) are ValueErrors too.
            raise WsError("bad_request", str(exc)) from None
        return {"ok": True, "data": data}


HUB = web.AppKey("hub", Hub)


def _own_agent_topic(conn: Connection, topic: str) -> Awaitable[bool]:
    async def check() -> bool:
        # Agents follow only their own channel; supervisors may follow anyone's.
        return conn.user.role.at_least(Role.SUPERVISOR) or topic == f"agent:{conn.user.id}"

    return check()


def default_hub() -> Hub:
    hub = Hub()
    hub.topic("agent", Role.AGENT, _own_agent_topic)
    hub.topic("agents", Role.SUPERVISOR)
    hub.topic("campaign", Role.SUPERVISOR)
    hub.topic("inbound", Role.SUPERVISOR)

    @hub.handler("subscribe", Role.AGENT)
    async def subscribe(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        topic = str(message["topic"])
        if not await conn.app[HUB].may_follow(conn, topic):
            raise PermissionDenied(f"you may not follow {topic}")
        if len(conn.topics) >= MAX_TOPICS and topic not in conn.topics:
            raise ValueError(f"at most {MAX_TOPICS} topics per connection")
        conn.topics.add(topic)
        await conn.retopic()
        return {"topics": sorted(conn.topics)}

    @hub.handler("unsubscribe", Role.AGENT)
    async def unsubscribe(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        conn.topics.discard(str(message["topic"]))
        await conn.retopic()
        return {"topics": sorted(conn.topics)}

    @hub.handler("ping", Role.AGENT)
    async def ping(conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    return hub


async def _pump(conn: Connection) -> None:
    """Forward bus events on the connection's topics, for as long as it is open."""
    async with conn.app[BUS].listen(*sorted(conn.topics)) as sub:
        async with conn.lock:
            conn.subscription = sub
            await sub.update(*sorted(conn.topics))  # topics added while it started
        while not conn.ws.closed:
            message = await sub.get(timeout=1.0)
            if message is not None and message.topic in conn.topics:
                await conn.send_event(message.topic, dict(message.data))


@public  # the handshake authenticates itself, so it can answer with a close code
async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=25, max_msg_size=MAX_MESSAGE * 2)
    user = await resolve_user(request)
    await ws.prepare(request)
    if user is None:
        await ws.close(code=4401, message=b"login required")
        return ws
    conn = Connection(user, ws, request.app)
    hub = request.app[HUB]
    pump = asyncio.create_task(_pump(conn))
    hub._tell_presence(conn, True)
    try:
        await ws.send_json({"type": "hello", "user": {"id": user.id, "role": user.role.value}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            request_id = None
            try:
                with contextlib.suppress(Exception):
                    request_id = json.loads(msg.data).get("id")
                reply = await hub.dispatch(conn, msg.data)
                await ws.send_json({"type": "reply", "id": request_id, **reply})
            except WsError as exc:
                await ws.send_json(
                    {
                        "type": "reply",
                        "id": request_id,
                        "ok": False,
                        "error": exc.code,
                        "message": str(exc),
                    }
                )
    finally:
        hub._tell_presence(conn, False)
        await cancel_and_wait(pump)
    return ws


def setup(app: web.Application, hub: Hub | None = None) -> Hub:
    app[HUB] = hub or default_hub()
    app.router.add_get("/ws", websocket)
    return app[HUB]
