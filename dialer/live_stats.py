"""The supervisor's live numbers: campaign counters fed by call events, rebuilt from the
attempt ledger at start, served as JSON and pushed to wallboards every second.

The engine publishes each finished attempt on the durable `calls` topic:
    {"type": "call.ended", "attempt_key": "...", "campaign_id": 3, "started_at": "<iso>",
     "outcome": "abandoned", "amd_result": "HUMAN", "answered": true, "promise": false}
Every node keeps its own counters (its own consumer group), so any node can answer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core.bus import EventBus
from core.clock import Clock
from core.tasks import cancel_and_wait
from dialer.attempts import CALLS_TOPIC
from dialer.compliance import profile
from dialer.stats import CampaignStats, Tally, rebuild, tallies_for_attempt

log = logging.getLogger(__name__)


_LEDGER = """
SELECT a.campaign_id, date_trunc('minute', a.started_at) AS bucket, a.outcome, a.amd_result,
       a.answered_at IS NOT NULL AS answered, count(*) AS attempts, count(a.promise_id) AS promises
FROM call_attempts a
WHERE a.campaign_id IS NOT NULL AND a.ended_at IS NOT NULL AND a.started_at > $1
GROUP BY 1, 2, 3, 4, 5
ORDER BY 2
"""

_OLDER_TOTALS = """
SELECT a.campaign_id, a.outcome, a.amd_result, a.answered_at IS NOT NULL AS answered,
       count(*) AS attempts, count(a.promise_id) AS promises
FROM call_attempts a
WHERE a.campaign_id IS NOT NULL AND a.ended_at IS NOT NULL AND a.started_at <= $1
GROUP BY 1, 2, 3, 4
"""


class LiveStats:
    def __init__(self, pool: asyncpg.Pool, bus: EventBus, clock: Clock, node: str | None = None):
        self.pool = pool
        self.bus = bus
        self.clock = clock
        self.node = node or socket.gethostname()
        self.group = f"stats-{self.node}"
        self.campaigns: dict[int, CampaignStats] = {}
        # Attempts the rebuild counted that may also arrive as events: counted once.
        self._rebuilt_keys: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def _stats_for(self, conn: asyncpg.Connection, campaign_id: int) -> CampaignStats:
        stats = self.campaigns.get(campaign_id)
        if stats is None:
            code = await conn.fetchval(
                "SELECT compliance_profile FROM campaigns WHERE id = $1", campaign_id
            )
            stats = CampaignStats(campaign_id, profile(code or "IT"))
            self.campaigns[campaign_id] = stats
        return stats

    async def rebuild(self, joined: datetime | None = None) -> None:
        """Counters from the ledger: totals older than 30 days, then minute buckets.

        `joined` is when this node started following the `calls` topic; attempts that ended
        since then may arrive as events too and are remembered so they count once."""
        now = self.clock.now()
        floor = now - timedelta(days=30)
        self.campaigns.clear()
        async with self.pool.acquire() as conn:
            for r in await conn.fetch(_OLDER_TOTALS, floor):
                stats = await self._stats_for(conn, r["campaign_id"])
                for tally in tallies_for_attempt(
                    r["outcome"] or "failed", r["amd_result"], r["answered"]
                ):
                    stats.totals[tally] += r["attempts"]
                stats.totals[Tally.PROMISE] += r["promises"]
            if joined is not None:
                keys = await conn.fetch(
                    "SELECT attempt_key FROM call_attempts WHERE ended_at >= $1",
                    joined - timedelta(seconds=5),
                )
                self._rebuilt_keys = {r["attempt_key"] for r in keys}
            rows = await conn.fetch(_LEDGER, floor)
            for r in rows:
                stats = await self._stats_for(conn, r["campaign_id"])
                rebuild(
                    stats,
                    [
                        (
                            r["bucket"],
                            r["outcome"] or "failed",
                            r["amd_result"],
                            r["answered"],
                            r["attempts"],
                            r["promises"],
                        )
                    ],
                    now,
                )

    async def apply(self, event: dict[str, Any]) -> None:
        if event.get("campaign_id") is None:
            return
        if event.get("type") == "call.disposition":
            if event.get("promise"):
                async with self.pool.acquire() as conn:
                    stats = await self._stats_for(conn, int(event["campaign_id"]))
                stats.add(Tally.PROMISE, datetime.fromisoformat(event["at"]))
            return
        if event.get("type") != "call.ended":
            return
        if event.get("attempt_key") in self._rebuilt_keys:
            self._rebuilt_keys.discard(event["attempt_key"])
            return
        async with self.pool.acquire() as conn:
            stats = await self._stats_for(conn, int(event["campaign_id"]))
        at = datetime.fromisoformat(event["started_at"])
        for tally in tallies_for_attempt(
            event["outcome"], event.get("amd_result"), bool(event.get("answered"))
        ):
            stats.add(tally, at)
        if event.get("promise"):
            stats.add(Tally.PROMISE, at)

    def snapshot(self, campaign_id: int) -> dict[str, Any] | None:
        stats = self.campaigns.get(campaign_id)
        return None if stats is None else stats.snapshot(self.clock.now())

    async def start(self) -> None:
        joined = self.clock.now()
        await self.bus.join_at_end(CALLS_TOPIC, self.group)
        await self.rebuild(joined)
        self._tasks = [
            asyncio.create_task(self._consume(), name="live-stats-consume"),
            asyncio.create_task(self._publish(), name="live-stats-publish"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    async def _consume(self) -> None:
        group = self.group
        while True:
            try:
                for message in await self.bus.read(CALLS_TOPIC, group, "stats", block=1.0):
                    await self.apply(dict(message.data))
                    await self.bus.ack(CALLS_TOPIC, group, message.id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live stats: could not apply call events")
                await asyncio.sleep(1.0)

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for campaign_id in list(self.campaigns):
                snapshot = self.snapshot(campaign_id)
                if snapshot is not None:
                    await self.bus.broadcast(f"campaign:{campaign_id}:stats", snapshot)
