"""Turning domain exceptions into HTTP answers: a status code and a JSON body.

Domain errors carry no HTTP codes (services do not know about HTTP); this table is the
one place that maps them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.activity import ActivityError
from core.cases import CaseError, CaseNotFound
from core.debtors import DebtorError
from core.identity import PermissionDenied
from core.settings import SettingsError
from core.users import UserError
from crm_bridge.store import FilterError
from crm_bridge.workflow import WorkflowError
from dialer.agents import AgentStateError
from dialer.campaigns import CampaignError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (exception type, HTTP status, error code). First match wins; later issues append.
ERROR_MAP: list[tuple[type[Exception], int, str]] = [
    (PermissionDenied, 403, "forbidden"),
    (CaseNotFound, 404, "not_found"),
    (WorkflowError, 409, "status_not_allowed"),
    (AgentStateError, 409, "invalid_state_change"),
    (UserError, 400, "invalid_user"),
    (SettingsError, 400, "invalid_settings"),
    (CaseError, 400, "invalid_case_change"),
    (DebtorError, 400, "invalid_debtor"),
    (ActivityError, 400, "invalid_activity"),
    (FilterError, 400, "invalid_filter"),
    (CampaignError, 400, "invalid_campaign"),
]


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": code, "message": message}),
        content_type="application/json",
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(
                exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason
            )
        raise
    except Exception as exc:
        for kind, status, code in ERROR_MAP:
            if isinstance(exc, kind):
                return json_error(status, code, str(exc))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "internal error; see the server log")
