"""Campaigns over HTTP: managers create and list them; supervisors read live statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, time
from typing import Any

from aiohttp import web

from core.identity import Role
from dialer.campaigns import CampaignError, DialMode, PriorityRule, create_campaign, get_campaign
from dialer.live_stats import LiveStats
from web.auth import current_actor, requires
from web.errors import json_error
from web.keys import BUS, CLOCK, POOL

STATS = web.AppKey("live_stats", LiveStats)


async def stats_ctx(app: web.Application) -> AsyncIterator[None]:
    stats = LiveStats(app[POOL], app[BUS], app[CLOCK])
    app[STATS] = stats
    await stats.start()
    yield
    await stats.stop()


def _campaign_view(c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "mode": c.mode.value,
        "active": c.active,
        "compliance_profile": c.compliance_profile,
        "portfolio_ids": list(c.portfolio_ids),
        "saved_filter_id": c.saved_filter_id,
        "window": {
            "start": c.window.start.isoformat(),
            "end": c.window.end.isoformat(),
            "days": sorted(c.window.days),
        },
        "pacing": dict(c.pacing),
    }


def _parse_create(body: dict[str, Any]) -> dict[str, Any]:
    known = {
        "portfolio_ids",
        "creditor_id",
        "statuses",
        "mode",
        "pacing",
        "compliance_profile",
        "window_start",
        "window_end",
        "days_of_week",
        "holidays",
        "caller_id",
        "amd",
        "max_attempts_per_day",
        "max_attempts_total",
        "retry_delays",
        "priority_rule",
        "no_answer_timeout",
        "active",
        "saved_filter_id",
    }
    unknown = set(body) - known - {"name"}
    if unknown:
        raise CampaignError(f"unknown fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {k: v for k, v in body.items() if k in known}
    try:
        if "mode" in out:
            out["mode"] = DialMode(out["mode"])
        if "priority_rule" in out:
            out["priority_rule"] = PriorityRule(out["priority_rule"])
        for key in ("window_start", "window_end"):
            if key in out:
                out[key] = time.fromisoformat(out[key])
        if "holidays" in out:
            out["holidays"] = tuple(date.fromisoformat(d) for d in out["holidays"])
        for key in ("portfolio_ids", "statuses", "days_of_week"):
            if key in out:
                out[key] = tuple(out[key])
    except (ValueError, TypeError) as exc:
        raise CampaignError(str(exc)) from None
    return out


@requires(Role.MANAGER)
async def create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise CampaignError("send JSON with at least a name")
        options = _parse_create(body)
        async with request.app[POOL].acquire() as conn:
            campaign = await create_campaign(conn, current_actor(request), body["name"], **options)
    except CampaignError as exc:
        return json_error(400, "invalid_campaign", str(exc))
    except ValueError:
        return json_error(400, "bad_request", "send JSON")
    return web.json_response(_campaign_view(campaign), status=201)


@requires(Role.SUPERVISOR)
async def list_campaigns(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM campaigns ORDER BY id")]
        campaigns = [await get_campaign(conn, i) for i in ids]
    return web.json_response({"campaigns": [_campaign_view(c) for c in campaigns if c]})


def _campaign_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


@requires(Role.SUPERVISOR)
async def stats(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    snapshot = request.app[STATS].snapshot(campaign_id)
    if snapshot is None:
        async with request.app[POOL].acquire() as conn:
            campaign = await get_campaign(conn, campaign_id)
        if campaign is None:
            return json_error(404, "not_found", f"no campaign {campaign_id}")
        from dialer.stats import CampaignStats

        snapshot = CampaignStats(campaign_id, campaign.compliance).snapshot(
            request.app[CLOCK].now()
        )
    return web.json_response(snapshot)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(stats_ctx)
    app.router.add_post("/api/campaigns", create)
    app.router.add_get("/api/campaigns", list_campaigns)
    app.router.add_get("/api/campaigns/{id}/stats", stats)
