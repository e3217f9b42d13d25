import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from core.identity import Role
from dialer.live_stats import CALLS_TOPIC
from tests.support.web import login
from web.api_campaigns import STATS
from web.keys import BUS, POOL


async def record_attempts(client: TestClient, campaign_id: int, outcomes: list[str]) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    async with client.app[POOL].acquire() as conn:
        for n, outcome in enumerate(outcomes):
            answered = outcome in {"connected", "abandoned", "machine"}
            await conn.execute(
                "INSERT INTO call_attempts (attempt_key, campaign_id, e164, started_at, answered_at, "
                "amd_result, ended_at, outcome) VALUES ($1, $2, '+390000000', $3, $4, $5, now(), $6)",
                f"k{campaign_id}-{n}",
                campaign_id,
                now,
                now if answered else None,
                "MACHINE" if outcome == "machine" else ("HUMAN" if answered else None),
                outcome,
            )


async def test_managers_create_campaigns_and_agents_cannot(client: TestClient):
    await login(client, "ag", Role.AGENT)
    r = await client.post("/api/campaigns", json={"name": "x"})
    assert r.status == 403
    client.session.cookie_jar.clear()
    await login(client, "mgr", Role.MANAGER)
    r = await client.post(
        "/api/campaigns",
        json={
            "name": "Spring",
            "mode": "predictive",
            "compliance_profile": "UK",
            "window_start": "08:00",
        },
    )
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["mode"] == "predictive" and body["window"]["start"] == "08:00:00"
    bad = await client.post("/api/campaigns", json={"name": "Bad", "mode": "telepathic"})
    assert bad.status == 400 and "telepathic" in (await bad.json())["message"]
    us = await client.post(
        "/api/campaigns", json={"name": "US", "compliance_profile": "US", "no_answer_timeout": 10}
    )
    assert "minimum ring" in (await us.json())["message"]


async def test_stats_are_rebuilt_from_the_ledger_and_follow_new_calls(client: TestClient):
    await login(client, "mgr2", Role.MANAGER)
    r = await client.post("/api/campaigns", json={"name": "Stats", "compliance_profile": "UK"})
    campaign_id = (await r.json())["id"]
    await record_attempts(
        client, campaign_id, ["connected"] * 30 + ["abandoned"] + ["machine"] * 5 + ["busy"] * 4
    )
    live = client.app[STATS]
    await live.stop()
    await live.start()  # as after a restart
    snap = await (await client.get(f"/api/campaigns/{campaign_id}/stats")).json()
    day = snap["windows"]["24h"]
    assert (day["dials"], day["live_answers"], day["abandons"], day["machines"]) == (40, 31, 1, 5)
    assert snap["abandon_rate"] == round(1 / 31, 5) and snap["regulatory_window"] == "24h"
    # A call that ended before the restart and is also delivered as an event counts once.
    await client.app[BUS].publish(
        CALLS_TOPIC,
        {
            "type": "call.ended",
            "attempt_key": f"k{campaign_id}-30",
            "campaign_id": campaign_id,
            "started_at": datetime.now(UTC).isoformat(),
            "outcome": "abandoned",
            "answered": True,
        },
    )
    await client.app[BUS].publish(
        CALLS_TOPIC,
        {
            "type": "call.ended",
            "attempt_key": "new-1",
            "campaign_id": campaign_id,
            "started_at": datetime.now(UTC).isoformat(),
            "outcome": "abandoned",
            "amd_result": "HUMAN",
            "answered": True,
        },
    )
    for _ in range(50):
        snap = await (await client.get(f"/api/campaigns/{campaign_id}/stats")).json()
        if snap["windows"]["24h"]["abandons"] == 2:
            break
        await asyncio.sleep(0.1)
    assert snap["windows"]["24h"]["abandons"] == 2 and snap["windows"]["24h"]["dials"] == 41
    assert (await client.get("/api/campaigns/999/stats")).status == 404
