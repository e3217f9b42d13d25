"""The composition root: builds the aiohttp application and wires every part together.

Resources with a lifetime (the database, the event bus, background loops) are opened and
closed in `cleanup_ctx` generators, in order, and shared through typed `AppKey`s.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from core import db
from core.bus import EventBus, InProcessBus
from core.clock import Clock, SystemClock
from core.settings import Settings
from web import (
    api_agents,
    api_calls,
    api_campaigns,
    api_cases,
    api_dialing,
    api_phones,
    auth,
    dialer_runtime,
    ws,
)
from web.errors import error_middleware
from web.keys import BUS, CLOCK, DATABASE_URL, POOL, SETTINGS

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with db.open_database(app[SETTINGS]) as database:
        app[DATABASE_URL] = database.url
        app[POOL] = database.pool
        yield


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    bus: EventBus
    if settings.redis.url:
        from core.bus_redis import RedisBus

        bus = RedisBus(settings.redis.url, maxlen=settings.redis.stream_maxlen)
    else:
        bus = InProcessBus(maxlen=settings.redis.stream_maxlen)
    app[BUS] = bus
    yield
    await bus.close()


@auth.public
async def health(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        await conn.fetchval("SELECT 1")
    return web.json_response({"status": "ok"})


@auth.public
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@auth.public
async def static_file(request: web.Request) -> web.FileResponse:
    """Files of the front end (the built bundle under static/dist included)."""
    relative = Path(request.match_info["path"])
    target = (STATIC / relative).resolve()
    if (
        relative.is_absolute()
        or not target.is_relative_to(STATIC.resolve())
        or not target.is_file()
    ):
        raise web.HTTPNotFound()
    return web.FileResponse(target)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth.auth_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(bus_ctx)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", health)
    app.router.add_get("/static/{path:.+}", static_file)
    auth.setup(app)
    ws.setup(app)
    api_agents.setup(app)
    api_campaigns.setup(app)
    api_cases.setup(app)
    api_phones.setup(app)
    api_calls.setup(app)
    dialer_runtime.setup(app)
    api_dialing.setup(app)
    return app
