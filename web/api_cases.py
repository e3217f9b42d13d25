"""Cases over HTTP: search, the case card, its activity stream, notes, statuses, promises,
payments, and saved filters. Agents reach only the cases they may see."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiohttp import web

from core import activity, cases, promises
from core.identity import PermissionDenied, Role
from crm_bridge import store
from crm_bridge.workflow import change_status, workflow_of_case
from dialer.leads import NotContactable
from web.api_agents import DESK
from web.auth import current_actor, current_user, requires
from web.errors import ERROR_MAP
from web.keys import BUS, CLOCK, POOL
from web.ws import HUB, Connection

# E.g. a callback asked for a case that is paid, or whose numbers may all not be called.
ERROR_MAP.append((NotContactable, 409, "not_contactable"))


def _case_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text="send a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return body


def _date(value: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise cases.CaseError(f"{field}: expected a date like 2026-12-31") from None


async def ensure_visible(request: web.Request, case_id: int) -> None:
    """Agents see their cases, their team's, and the one the dialer put on their screen."""
    user = current_user(request)
    if user.role.at_least(Role.SUPERVISOR):
        return
    if request.app[DESK].session(user.id).case_id == case_id:
        return
    async with request.app[POOL].acquire() as conn:
        if not await store.may_see_case(conn, user.actor, user.team_id, case_id):
            raise PermissionDenied(f"case {case_id} is not assigned to you or your team")


@requires(Role.AGENT)
async def search_cases(request: web.Request) -> web.Response:
    user = current_user(request)
    query = request.query
    raw: dict[str, Any] = {}
    async with request.app[POOL].acquire() as conn:
        if "saved_filter" in query:
            saved = await store.get_filter(conn, user.actor, int(query["saved_filter"]))
            raw = saved.definition.as_json()
        if "filter" in query:
            try:
                raw.update(json.loads(query["filter"]))
            except json.JSONDecodeError:
                raise store.FilterError("filter: not JSON") from None
        limit = int(query.get("limit", "50"))
        page = await store.search(
            conn,
            user.actor,
            user.team_id,
            store.parse_filter(raw),
            request.app[CLOCK].now().date(),
            limit=limit,
            cursor=query.get("cursor"),
        )
    return web.json_response({"items": page.items, "next_cursor": page.next_cursor})


@requires(Role.AGENT)
async def get_case(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    user = current_user(request)
    async with request.app[POOL].acquire() as conn:
        card = await cases.case_card(conn, case_id)
        workflow, status = await workflow_of_case(conn, case_id)
    card["status_label"] = workflow.status(status).label
    # Whether the debtor may be contacted about this case at all (paid, closed, withdrawn:
    # no); the dialer refuses such cases whatever a phone's flags say.
    card["contactable"] = not workflow.status(status).no_contact
    card["allowed_statuses"] = [
        {"code": s.code, "label": s.label} for s in workflow.allowed_after(status, user.role)
    ]
    return web.json_response(card)


@requires(Role.AGENT)
async def get_activities(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise activity.ActivityError("limit: not a number") from None
    async with request.app[POOL].acquire() as conn:
        await cases.case_exists(conn, case_id)
        page = await activity.timeline(conn, case_id, limit, request.query.get("cursor"))
    return web.json_response(
        {"items": [a.as_json() for a in page.items], "next_cursor": page.next_cursor}
    )


@requires(Role.AGENT)
async def add_note(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    body = await _body(request)
    async with request.app[POOL].acquire() as conn:
        note = await cases.add_note(
            conn,
            current_actor(request),
            case_id,
            str(body.get("text", "")),
            request.app[CLOCK].now(),
        )
    await activity.announce(request.app[BUS], note)
    return web.json_response(note.as_json(), status=201)


@requires(Role.AGENT)
async def set_status(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    body = await _body(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        changed = await change_status(
            conn,
            pool,
            current_actor(request),
            case_id,
            str(body.get("status", "")),
            request.app[CLOCK].now(),
            body.get("reason"),
        )
    await activity.announce(request.app[BUS], changed)
    return web.json_response(changed.as_json())


@requires(Role.AGENT)
async def add_promise(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    body = await _body(request)
    now = request.app[CLOCK].now()
    async with request.app[POOL].acquire() as conn:
        promise, act = await promises.add_promise(
            conn,
            current_actor(request),
            case_id,
            body.get("amount"),
            _date(body.get("due_date"), "due_date"),
            now.date(),
            now,
        )
    await activity.announce(request.app[BUS], act)
    return web.json_response(
        {
            "id": promise.id,
            "amount": str(promise.amount),
            "due_date": promise.due_date.isoformat(),
            "status": promise.status.value,
        },
        status=201,
    )


@requires(Role.MANAGER)
async def add_payment(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    body = await _body(request)
    async with request.app[POOL].acquire() as conn:
        payment, act = await promises.record_payment(
            conn,
            current_actor(request),
            case_id,
            body.get("amount"),
            _date(body.get("paid_on"), "paid_on"),
            request.app[CLOCK].now(),
            body.get("method"),
            body.get("external_id"),
        )
    if act is not None:
        await activity.announce(request.app[BUS], act)
    return web.json_response(
        {"id": payment.id, "amount": str(payment.amount), "duplicate": act is None},
        status=201 if act is not None else 200,
    )


@requires(Role.AGENT)
async def set_sentiment(request: web.Request) -> web.Response:
    case_id = _case_id(request)
    await ensure_visible(request, case_id)
    body = await _body(request)
    async with request.app[POOL].acquire() as conn:
        await cases.set_sentiment(conn, current_actor(request), case_id, body.get("sentiment"))
    return web.json_response({"sentiment": body.get("sentiment")})


@requires(Role.AGENT)
async def list_saved(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        saved = await store.list_filters(conn, current_actor(request))
    return web.json_response(
        {
            "filters": [
                {
                    "id": f.id,
                    "name": f.name,
                    "shared": f.shared,
                    "owner_id": f.owner_id,
                    "definition": f.definition.as_json(),
                }
                for f in saved
            ]
        }
    )


@requires(Role.AGENT)
async def create_saved(request: web.Request) -> web.Response:
    body = await _body(request)
    definition = body.get("definition")
    if not isinstance(definition, dict):
        raise store.FilterError("definition: a JSON object of filter keys")
    async with request.app[POOL].acquire() as conn:
        saved = await store.save_filter(
            conn,
            current_actor(request),
            str(body.get("name", "")),
            definition,
            bool(body.get("shared")),
        )
    return web.json_response({"id": saved.id, "name": saved.name}, status=201)


@requires(Role.AGENT)
async def delete_saved(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        await store.delete_filter(conn, current_actor(request), _case_id(request))
    return web.json_response({"deleted": True})


async def _may_follow_case(conn: Connection, topic: str) -> bool:
    try:
        case_id = int(topic.split(":", 1)[1])
    except (IndexError, ValueError):
        return False
    user = conn.user
    if user.role.at_least(Role.SUPERVISOR) or conn.app[DESK].session(user.id).case_id == case_id:
        return True
    async with conn.app[POOL].acquire() as db:
        return await store.may_see_case(db, user.actor, user.team_id, case_id)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/cases", search_cases)
    app.router.add_get("/api/cases/{id}", get_case)
    app.router.add_get("/api/cases/{id}/activities", get_activities)
    app.router.add_post("/api/cases/{id}/notes", add_note)
    app.router.add_post("/api/cases/{id}/status", set_status)
    app.router.add_post("/api/cases/{id}/promises", add_promise)
    app.router.add_post("/api/cases/{id}/payments", add_payment)
    app.router.add_post("/api/cases/{id}/sentiment", set_sentiment)
    app.router.add_get("/api/filters", list_saved)
    app.router.add_post("/api/filters", create_saved)
    app.router.add_delete("/api/filters/{id}", delete_saved)
    app[HUB].topic("case", Role.AGENT, _may_follow_case)
