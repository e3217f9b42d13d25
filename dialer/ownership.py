"""Which node runs a campaign: one pacing owner per campaign, by PostgreSQL advisory lock.

The lock lives on a dedicated connection: if the owning node dies, PostgreSQL drops its
connection and the lock with it, and another node's next `try_acquire` takes over. Leads
are safe either way (the claim is a row lock); ownership only keeps two pacers from
dialing for the same agents.
"""

from __future__ import annotations

import asyncpg

_NAMESPACE = 0x50524154  # "PRAT", the first half of the two-key advisory lock


class CampaignOwnership:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self.owned: set[int] = set()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn)
            self.owned.clear()  # a new session holds no locks
        return self._conn

    async def try_acquire(self, campaign_id: int) -> bool:
        if campaign_id in self.owned:
            return True
        conn = await self._connection()
        got = bool(
            await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _NAMESPACE, campaign_id)
        )
        if got:
            self.owned.add(campaign_id)
        return got

    async def release(self, campaign_id: int) -> None:
        if campaign_id not in self.owned or self._conn is None:
            return
        await self._conn.fetchval("SELECT pg_advisory_unlock($1, $2)", _NAMESPACE, campaign_id)
        self.owned.discard(campaign_id)

    async def still_owner(self, campaign_id: int) -> bool:
        """False when the lock connection was lost (the lock went with it)."""
        if campaign_id not in self.owned:
            return False
        try:
            conn = await self._connection()
            await conn.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            self.owned.clear()
            return False
        return campaign_id in self.owned

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self.owned.clear()
