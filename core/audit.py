"""The audit log: every state-changing action records who, what, when, before and after.

`record` is called inside the transaction of the change, so the log and the change commit
or roll back together. Refused attempts (e.g. an agent trying to close a case) are
recorded too, with outcome 'refused', in their own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.identity import Actor


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    outcome: str


async def record(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    outcome: str = "done",
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor, action, entity, entity_id, before, after, outcome) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        actor.user_id,
        actor.label,
        action,
        entity,
        None if entity_id is None else str(entity_id),
        None if before is None else dict(before),
        None if after is None else dict(after),
        outcome,
    )


async def entries_for(
    conn: asyncpg.Connection, entity: str, entity_id: object, limit: int = 100
) -> list[AuditEntry]:
    rows = await conn.fetch(
        "SELECT id, at, actor_id, actor, action, entity, entity_id, before, after, outcome "
        "FROM audit_log WHERE entity = $1 AND entity_id = $2 ORDER BY id DESC LIMIT $3",
        entity,
        str(entity_id),
        limit,
    )
    return [AuditEntry(**dict(r)) for r in rows]
