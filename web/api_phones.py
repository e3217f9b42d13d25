"""A case's phone numbers over HTTP: do-not-call, consent, wrong number.

The change and its consequence for the dialer (the leads waiting to dial that number move
to the debtor's next one, or stop) are one transaction, so the very next claim sees both.
"""

from __future__ import annotations

from aiohttp import web

from core import activity
from core.identity import Role
from core.phone_contact import PhoneChange, PhoneError, change_phone
from dialer.leads import move_leads_off_phone
from web.api_cases import _body, ensure_visible
from web.auth import current_actor, requires
from web.errors import ERROR_MAP
from web.keys import BUS, CLOCK, POOL, SETTINGS

ERROR_MAP.append((PhoneError, 400, "invalid_phone_change"))


def _ids(request: web.Request) -> tuple[int, int]:
    try:
        return int(request.match_info["id"]), int(request.match_info["phone"])
    except ValueError:
        raise web.HTTPNotFound() from None


@requires(Role.AGENT)
async def change(request: web.Request) -> web.Response:
    """POST /api/cases/{id}/phones/{phone}: {do_not_call?, consent?, wrong_number?, reason?}."""
    case_id, phone_id = _ids(request)
    await ensure_visible(request, case_id)
    wanted = PhoneChange.parse(await _body(request))
    pool = request.app[POOL]
    now = request.app[CLOCK].now()
    zones = (request.app[SETTINGS].locale.timezone,)
    async with pool.acquire() as conn, conn.transaction():
        phone, act = await change_phone(
            conn, pool, current_actor(request), case_id, phone_id, wanted, now
        )
        moved = await move_leads_off_phone(conn, phone_id, now, zones)
    if act is not None:
        await activity.announce(request.app[BUS], act)
    return web.json_response({**phone, "leads_moved": moved})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/cases/{id}/phones/{phone}", change)
