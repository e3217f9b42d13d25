"""Running the dialer inside the server: the AMI connection, call control and the engine.

Started when `[ami] secret` is set (the demo points it at the embedded simulator).
Campaigns marked active are resumed at start; managers start and stop them over HTTP.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core import audit
from core.identity import Role
from crm_bridge import store
from dialer.ami_api import AmiError
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.call_window import CallWindow
from dialer.campaigns import get_campaign
from dialer.engine import CampaignEngine, EngineSettings
from dialer.inbound_router import InboundSettings
from dialer.leads import load_leads
from dialer.pacing_bridge import CampaignPacer
from web.api_agents import DESK
from web.auth import current_actor, requires
from web.errors import json_error
from web.keys import BUS, CLOCK, POOL, SETTINGS

log = logging.getLogger(__name__)
ENGINE = web.AppKey("engine", CampaignEngine)
# Per-agent wrap-up limits (seconds) for simulated agents in the demo.
WRAP_LIMITS: web.AppKey[dict[int, float]] = web.AppKey("wrap_limits", dict)


async def dialer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.ami.secret:
        log.info("no [ami] secret configured: the dialer is not started")
        yield
        return
    client = AmiClient.from_settings(settings.ami)
    try:
        await client.connect(timeout=10.0)
    except AmiError as exc:
        log.error("AMI connection to %s:%d failed: %s; the dialer is not started",
                  settings.ami.host, settings.ami.port, exc)  # fmt: skip
        await client.close()
        yield
        return
    calls = CallControl(client)
    calls.start()
    wrap_limits: dict[int, float] = app[WRAP_LIMITS] if WRAP_LIMITS in app else {}
    engine = CampaignEngine(
        app[POOL],
        app[BUS],
        app[CLOCK],
        app[DESK],
        calls,
        CampaignPacer(),
        EngineSettings(
            dial_template=settings.ami.dial_template,
            agent_dial_template=settings.ami.agent_dial_template,
            default_zones=(settings.locale.timezone,),
            node=socket.gethostname(),
            wrap_limits=wrap_limits,
            wrap_up_max=settings.agents.wrap_up_max,
            manual_window=CallWindow(*settings.manual_window(), frozenset(range(1, 8))),
            inbound=InboundSettings(
                max_wait=settings.inbound.max_wait,
                callback_campaign_id=settings.inbound.callback_campaign or None,
                reserved_agents=settings.inbound.reserved_agents,
                blended=settings.inbound.blended,
                default_region=settings.locale.default_region,
            ),
        ),
    )
    app[ENGINE] = engine
    await engine.start()
    async with app[POOL].acquire() as conn:
        active = [
            r["id"] for r in await conn.fetch("SELECT id FROM campaigns WHERE active ORDER BY id")
        ]
    for campaign_id in active:
        await engine.add_campaign(campaign_id)
    try:
        yield
    finally:
        await engine.stop()
        await calls.stop()
        await client.close()


def _campaign_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


@requires(Role.MANAGER)
async def start_campaign(request: web.Request) -> web.Response:
    engine = request.app.get(ENGINE)
    if engine is None:
        return json_error(409, "dialer_not_running", "the dialer is not connected to Asterisk")
    campaign_id = _campaign_id(request)
    clock = request.app[CLOCK]
    zones = (request.app[SETTINGS].locale.timezone,)
    async with request.app[POOL].acquire() as conn:
        campaign = await get_campaign(conn, campaign_id)
        if campaign is None:
            return json_error(404, "not_found", f"no campaign {campaign_id}")
        case_ids = None
        if campaign.saved_filter_id is not None:
            case_ids = await store.saved_filter_case_ids(
                conn, campaign.saved_filter_id, clock.now().date()
            )
        loaded = await load_leads(conn, campaign, clock.now(), zones, case_ids)
        await conn.execute(
            "UPDATE campaigns SET active = true, updated_at = now() WHERE id = $1", campaign_id
        )
        await audit.record(conn, current_actor(request), "campaign.start", "campaign", campaign_id,
                           after={"leads_added": loaded})  # fmt: skip
    await engine.add_campaign(campaign_id)
    return web.json_response({"campaign_id": campaign_id, "leads_added": loaded, "active": True})


@requires(Role.MANAGER)
async def stop_campaign(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    engine = request.app.get(ENGINE)
    if engine is not None:
        engine.remove_campaign(campaign_id)
    async with request.app[POOL].acquire() as conn:
        await conn.execute(
            "UPDATE campaigns SET active = false, updated_at = now() WHERE id = $1", campaign_id
        )
        await audit.record(conn, current_actor(request), "campaign.stop", "campaign", campaign_id)
    return web.json_response({"campaign_id": campaign_id, "active": False})


def engine_view(app: web.Application) -> dict[str, Any]:
    engine = app.get(ENGINE)
    if engine is None:
        return {"running": False}
    c = engine.counters
    inbound = engine.inbound.view()
    return {"running": True, "link_up": engine.calls.link_up, "dialed": c.dialed, "live": c.live,
            "connected": c.connected, "abandoned": c.abandoned, "machines": c.machines,
            "in_flight": len(engine.live), "inbound": inbound,
            "dialing": engine.dialing_status(), "refused": c.refused,
            "agent_left": c.agent_left, "recovered": c.recovered,
            "abandoned_unheard": c.abandoned_unheard}  # fmt: skip


@requires(Role.SUPERVISOR)
async def dialer_status(request: web.Request) -> web.Response:
    return web.json_response(engine_view(request.app))


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(dialer_ctx)
    app.router.add_post("/api/campaigns/{id}/start", start_campaign)
    app.router.add_post("/api/campaigns/{id}/stop", stop_campaign)
    app.router.add_get("/api/dialer", dialer_status)
