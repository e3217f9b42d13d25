"""Calls over HTTP: the agent's disposition after a connected call."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from aiohttp import web

from core import activity
from core.identity import SYSTEM, Role
from dialer.agents import AgentState
from web.api_agents import DESK
from web.auth import current_actor, requires
from web.dispositions import Disposition, DispositionError, apply_disposition
from web.errors import ERROR_MAP
from web.keys import BUS, CLOCK, POOL, SETTINGS

ERROR_MAP.append((DispositionError, 409, "invalid_disposition"))


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


def setup(app: web.Application) -> None:
    app.router.add_post("/api/calls/{key}/disposition", dispose)
