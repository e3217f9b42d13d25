"""Calls over HTTP: the agent's disposition after a connected call, and the agent's own
callbacks (listed, popped on screen when due, cancelled)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from aiohttp import web

from core import activity
from core.identity import SYSTEM, Role
from core.tasks import cancel_and_wait
from dialer import callbacks
from dialer.agents import AgentState
from web.api_agents import DESK
from web.auth import current_actor, requires
from web.dispositions import Disposition, DispositionError, apply_disposition
from web.errors import ERROR_MAP
from web.keys import BUS, CLOCK, POOL, SETTINGS

log = logging.getLogger(__name__)
ERROR_MAP.append((DispositionError, 409, "invalid_disposition"))
# Seconds between two looks for callbacks whose time has come.
CALLBACK_POLL = 5.0


def _parse(body: dict[str, Any]) -> Disposition:
    if not isinstance(body.get("status"), str):
        raise DispositionError("status: the case status after this call is required")
    promise = body.get("promise") or {}
    try:
        due = date.fromisoformat(promise["due_date"]) if promise.get("due_date") else None
        callback = datetime.fromisoformat(body["callback_at"]) if body.get("callback_at") else None
    except (ValueError, TypeError) as exc:
        raise DispositionError(f"bad date: {exc}") from None
    if callback is not None and callback.tzinfo is None:
        raise DispositionError(
            "callback_at: include the time zone (e.g. 2026-12-01T10:00:00+01:00)"
        )
    return Disposition(
        status=body["status"],
        note=body.get("note"),
        promise_amount=promise.get("amount"),
        promise_due=due,
        callback_at=callback,
        callback_personal=bool(body.get("callback_personal", True)),
        wrong_number=bool(body.get("wrong_number", False)),
        campaigns_may_call=bool(body.get("campaigns_may_call", False)),
    )


@requires(Role.AGENT)
async def dispose(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise DispositionError("send a JSON object") from None
    actor = current_actor(request)
    zones = (request.app[SETTINGS].locale.timezone,)
    applied = await apply_disposition(
        request.app[POOL],
        request.app[BUS],
        actor,
        key,
        _parse(body),
        request.app[CLOCK].now(),
        zones,
    )
    for act in applied.activities:
        await activity.announce(request.app[BUS], act)
    desk = request.app[DESK]
    if applied.agent_id is not None:
        session = desk.session(applied.agent_id)
        if session.state is AgentState.WRAP_UP and session.attempt_key == key:
            desk.change(SYSTEM, applied.agent_id, AgentState.READY)
    return web.json_response(
        {
            "case_id": applied.case_id,
            "promise_id": applied.promise_id,
            "activities": [a.id for a in applied.activities],
        }
    )


@requires(Role.AGENT)
async def my_callbacks(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        listed = await callbacks.agent_callbacks(conn, current_actor(request).user_id or 0)
    return web.json_response({"callbacks": listed})


@requires(Role.AGENT)
async def cancel_callback(request: web.Request) -> web.Response:
    try:
        callback_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with request.app[POOL].acquire() as conn:
        done = await callbacks.cancel_callback(
            conn, current_actor(request), callback_id, request.app[CLOCK].now()
        )
    if not done:
        raise DispositionError(f"no pending callback {callback_id}")
    return web.json_response({"id": callback_id, "state": "cancelled"})


async def _announce_loop(app: web.Application) -> None:
    while True:
        try:
            await callbacks.announce_due(app[POOL], app[BUS], app[CLOCK].now())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not announce the callbacks due")
        await app[CLOCK].sleep(CALLBACK_POLL)


async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Personal callbacks pop on their agent's screen when their time comes."""
    task = asyncio.create_task(_announce_loop(app), name="callbacks-due")
    yield
    await cancel_and_wait(task)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(callbacks_ctx)
    app.router.add_post("/api/calls/{key}/disposition", dispose)
    app.router.add_get("/api/agents/me/callbacks", my_callbacks)
    app.router.add_post("/api/callbacks/{id}/cancel", cancel_callback)
