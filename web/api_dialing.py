"""Calls an agent places over HTTP: a manual call from a case, and the preview's choice.

`POST /api/cases/{id}/call` (`{"phone_id": 12}` optional: the case's first callable
phone otherwise), `POST /api/previews/{lead}/call` and `/skip`. The call itself runs in
the dialer (`dialer.agent_dialing`); these handlers check who asks and audit it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core import audit
from core.identity import Role
from dialer.agent_dialing import AgentDialError
from web.api_cases import ensure_visible
from web.auth import current_actor, current_user, requires
from web.dialer_runtime import ENGINE
from web.errors import ERROR_MAP, json_error
from web.keys import POOL

ERROR_MAP.append((AgentDialError, 409, "cannot_dial"))


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise AgentDialError("send a JSON object") from None
    if not isinstance(body, dict):
        raise AgentDialError("send a JSON object")
    return body


@requires(Role.AGENT)
async def call_case(request: web.Request) -> web.Response:
    engine = request.app.get(ENGINE)
    if engine is None:
        return json_error(503, "no_dialer", "the dialer is not running on this server")
    case_id = _int(request, "id")
    await ensure_visible(request, case_id)
    body = await _json(request)
    phone_id = body.get("phone_id")
    if phone_id is not None and (not isinstance(phone_id, int) or isinstance(phone_id, bool)):
        raise AgentDialError("phone_id: a phone id of the case")
    user = current_user(request)
    actor = current_actor(request)
    try:
        key = await engine.agent_calls.dial_case(actor, user.id, case_id, phone_id)
    except AgentDialError as exc:
        async with request.app[POOL].acquire() as conn:
            await audit.record(
                conn, actor, "call.manual", "case", case_id,
                after={"phone_id": phone_id, "reason": str(exc)}, outcome="refused",
            )  # fmt: skip
        raise
    async with request.app[POOL].acquire() as conn:
        await audit.record(
            conn, actor, "call.manual", "case", case_id,
            after={"attempt_key": key, "phone_id": phone_id},
        )  # fmt: skip
    return web.json_response({"attempt_key": key, "case_id": case_id}, status=202)


async def _preview(request: web.Request, action: str) -> web.Response:
    engine = request.app.get(ENGINE)
    if engine is None:
        return json_error(503, "no_dialer", "the dialer is not running on this server")
    lead_id = _int(request, "lead")
    user = current_user(request)
    actor = current_actor(request)
    reply: dict[str, Any] = {"lead_id": lead_id}
    if action == "call":
        reply["attempt_key"] = await engine.agent_calls.dial_preview(actor, user.id, lead_id)
    else:
        await engine.agent_calls.skip_preview(actor, user.id, lead_id)
    async with request.app[POOL].acquire() as conn:
        await audit.record(conn, actor, f"preview.{action}", "lead", lead_id, after=reply)
    return web.json_response(reply, status=202 if action == "call" else 200)


@requires(Role.AGENT)
async def call_preview(request: web.Request) -> web.Response:
    return await _preview(request, "call")


@requires(Role.AGENT)
async def skip_preview(request: web.Request) -> web.Response:
    return await _preview(request, "skip")


def setup(app: web.Application) -> None:
    app.router.add_post("/api/cases/{id}/call", call_case)
    app.router.add_post("/api/previews/{lead}/call", call_preview)
    app.router.add_post("/api/previews/{lead}/skip", skip_preview)
