"""Authentication and role checks for every HTTP endpoint.

Deny by default: a handler must be marked `@public` or `@requires(role)`, otherwise the
middleware refuses the request, so a new endpoint cannot be exposed by forgetting a check.
Sessions come from the `pratica_session` cookie or an `Authorization: Bearer` header.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from aiohttp import web

from core import audit, users
from core.clock import Clock
from core.identity import Actor, Role
from web.errors import json_error
from web.keys import CLOCK, POOL

COOKIE = "pratica_session"
_ROLE_ATTR = "__pratica_role__"
_PUBLIC = "public"
USER = web.RequestKey("user", users.User)

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


class LoginThrottle:
    """Slows password guessing: after `limit` failures for a username or a client address
    within `window` seconds, further attempts are refused until the window passes.

    Attempts still being checked count as failures for their key until they end (a check
    waits its turn in the hashing threads, so a burst of guesses would otherwise all pass
    before the first failure is counted); only usernames are tracked this way, not addresses:
    many agents behind one address log in at once at the start of a shift."""

    def __init__(self, limit: int = 5, window: float = 900.0):
        self.limit = limit
        self.window = window
        self.failures: dict[str, list[float]] = {}
        self.checking: Counter[str] = Counter()

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [t for t in self.failures.get(key, []) if now - t < self.window]
        if recent:
            self.failures[key] = recent
        else:
            self.failures.pop(key, None)
        return recent

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds to wait, 0 when an attempt is allowed."""
        wait = 0.0
        for key in keys:
            recent = self._recent(key, now)
            if len(recent) >= self.limit:
                wait = max(wait, self.window - (now - recent[0]))
            elif len(recent) + self.checking[key] >= self.limit:
                wait = max(wait, 1.0)  # the attempts being checked will tell
        return wait

    @contextlib.contextmanager
    def check(self, key: str) -> Iterator[None]:
        """An attempt for `key` is being checked (counted by `retry_after` meanwhile)."""
        self.checking[key] += 1
        try:
            yield
        finally:
            self.checking[key] -= 1
            if not self.checking[key]:
                del self.checking[key]

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            self.failures.setdefault(key, []).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)


THROTTLE = web.AppKey("login_throttle", LoginThrottle)


def requires(role: Role) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _ROLE_ATTR, role)
        return handler

    return mark


def public(handler: H) -> H:
    setattr(handler, _ROLE_ATTR, _PUBLIC)
    return handler


def current_user(request: web.Request) -> users.User:
    user = request.get(USER)
    if user is None:
        raise web.HTTPUnauthorized(text="login required")
    return user


def current_actor(request: web.Request) -> Actor:
    return current_user(request).actor


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    return request.cookies.get(COOKIE)


def _declared_role(request: web.Request) -> Any:
    handler: Any = request.match_info.handler
    role = getattr(handler, _ROLE_ATTR, None)
    if role is None and hasattr(handler, "__self__"):  # class-based views
        role = getattr(type(handler.__self__), _ROLE_ATTR, None)
    return role


async def resolve_user(request: web.Request) -> users.User | None:
    token = _token(request)
    if token is None:
        return None
    clock: Clock = request.app[CLOCK]
    async with request.app[POOL].acquire() as conn:
        return await users.session_user(conn, token, clock.now())


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    role = _declared_role(request)
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405 from the router
    if role is None:
        return json_error(500, "unguarded_endpoint", "this endpoint declares no access rule")
    if role == _PUBLIC:
        return await handler(request)
    user = await resolve_user(request)
    if user is None:
        return json_error(401, "unauthorized", "login required")
    if not user.role.at_least(role):
        return json_error(403, "forbidden", f"requires the {role} role")
    request[USER] = user
    return await handler(request)


@public
async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        username = str(body["username"])
        password = str(body["password"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return json_error(400, "bad_request", "send JSON with username and password")
    clock: Clock = request.app[CLOCK]
    throttle = request.app[THROTTLE]
    keys = [f"user:{username.lower()}", f"addr:{request.remote}"]
    wait = throttle.retry_after(keys, clock.monotonic())
    if wait > 0:
        response = json_error(429, "too_many_attempts", "too many failed logins; try again later")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    pool = request.app[POOL]
    with throttle.check(keys[0]):
        user = await users.authenticate(pool, username, password)
    if user is None:
        throttle.failed(keys, clock.monotonic())
    else:
        throttle.succeeded(keys[:1])
    async with pool.acquire() as conn:
        if user is None:
            await audit.record(
                conn,
                Actor(None, "anonymous", Role.AGENT),
                "session.login",
                "user",
                None,
                after={"username": username},
                outcome="refused",
            )
            return json_error(401, "bad_credentials", "wrong username or password")
        token = await users.open_session(conn, user, clock.now())
        await audit.record(conn, user.actor, "session.login", "user", user.id)
    response = web.json_response(
        {
            "token": token,
            "user": {
                "id": user.id,
                "username": user.username,
                "role": user.role.value,
                "display_name": user.display_name,
            },
        }
    )
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
    )
    return response


@requires(Role.AGENT)
async def logout(request: web.Request) -> web.Response:
    token = _token(request)
    user = current_user(request)
    async with request.app[POOL].acquire() as conn:
        if token:
            await users.close_session(conn, token)
        await audit.record(conn, user.actor, "session.logout", "user", user.id)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE)
    return response


@requires(Role.AGENT)
async def me(request: web.Request) -> web.Response:
    user = current_user(request)
    return web.json_response(
        {
            "id": user.id,
            "username": user.username,
            "role": user.role.value,
            "display_name": user.display_name,
            "team_id": user.team_id,
        }
    )


def setup(app: web.Application) -> None:
    app[THROTTLE] = LoginThrottle()
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
