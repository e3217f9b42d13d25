"""The activity stream: one ordered timeline per case of everything that happened.

Calls, SMS, WhatsApp messages, emails, chat messages, notes, status changes, promises and
payments all land here. Appending is idempotent by (channel, external id), so a webhook
retried by its sender, or a call event replayed after a reconnect, is filed once. Reading
is newest first with a stable keyset cursor over (occurred_at, id): pages do not shift when
new activities arrive. Every append is announced on the bus after its transaction
commits: durable topic `activities` (for consumers such as CRM outboxes) and live
channel `case:<id>` (for browsers following the case).

Event payload (both): {"type": "activity.added", "activity": <Activity.as_json()>}
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from core.bus import EventBus

ACTIVITIES_TOPIC = "activities"
MAX_PAGE = 200


class ActivityKind(enum.StrEnum):
    CALL = "call"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    CHAT = "chat"
    NOTE = "note"
    STATUS_CHANGE = "status_change"
    PROMISE = "promise"
    PAYMENT = "payment"
    SYSTEM = "system"


class Channel(enum.StrEnum):
    VOICE = "voice"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    CHAT = "chat"
    INTERNAL = "internal"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class ActivityError(ValueError):
    """An activity or a cursor is malformed; the message says why."""


@dataclass(frozen=True)
class NewActivity:
    case_id: int
    kind: ActivityKind
    channel: Channel
    direction: Direction
    occurred_at: datetime
    summary: str
    agent_id: int | None = None
    body: str | None = None
    reference: str | None = None
    delivery_status: str | None = None
    external_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.summary.strip():
            raise ActivityError("an activity needs a summary")
        if self.occurred_at.tzinfo is None:
            raise ActivityError("occurred_at must carry a time zone")


@dataclass(frozen=True)
class Activity:
    id: int
    case_id: int
    kind: ActivityKind
    channel: Channel
    direction: Direction
    occurred_at: datetime
    agent_id: int | None
    summary: str
    body: str | None
    reference: str | None
    delivery_status: str | None
    external_id: str | None
    data: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind.value,
            "channel": self.channel.value,
            "direction": self.direction.value,
            "occurred_at": self.occurred_at.isoformat(),
            "agent_id": self.agent_id,
            "summary": self.summary,
            "body": self.body,
            "reference": self.reference,
            "delivery_status": self.delivery_status,
            "external_id": self.external_id,
            "data": dict(self.data),
        }


_COLUMNS = (
    "id, case_id, kind, channel, direction, occurred_at, agent_id, summary, body, reference, "
    "delivery_status, external_id, data"
)


def _activity(row: asyncpg.Record) -> Activity:
    values = dict(row)
    values["kind"] = ActivityKind(values["kind"])
    values["channel"] = Channel(values["channel"])
    values["direction"] = Direction(values["direction"])
    return Activity(**values)


@dataclass(frozen=True)
class Appended:
    activity: Activity
    created: bool  # False when an earlier append with the same external id was found


async def append(conn: asyncpg.Connection, new: NewActivity) -> Appended:
    """File an activity in the case's stream (inside the caller's transaction, if any).

    The caller announces it with `announce` after its transaction commits."""
    row = await conn.fetchrow(
        "INSERT INTO activities (case_id, kind, channel, direction, occurred_at, agent_id, "
        "summary, body, reference, delivery_status, external_id, data) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING "
        "RETURNING " + _COLUMNS,
        new.case_id,
        new.kind.value,
        new.channel.value,
        new.direction.value,
        new.occurred_at,
        new.agent_id,
        new.summary,
        new.body,
        new.reference,
        new.delivery_status,
        new.external_id,
        dict(new.data),
    )
    if row is not None:
        return Appended(_activity(row), True)
    existing = await conn.fetchrow(
        "SELECT " + _COLUMNS + " FROM activities WHERE channel = $1 AND external_id = $2",  # noqa: S608
        new.channel.value,
        new.external_id,
    )
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish in between
        raise ActivityError("duplicate external id but no activity found")
    return Appended(_activity(existing), False)


async def announce(bus: EventBus, activity: Activity) -> None:
    event = {"type": "activity.added", "activity": activity.as_json()}
    await bus.publish(ACTIVITIES_TOPIC, event)
    await bus.broadcast(f"case:{activity.case_id}", event)


async def add(
    pool_or_conn: asyncpg.Pool | asyncpg.Connection, bus: EventBus, new: NewActivity
) -> Appended:
    """Append in its own transaction and announce it (once) when it is new."""
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            result = await append(conn, new)
    else:
        result = await append(pool_or_conn, new)
    if result.created:
        await announce(bus, result.activity)
    return result


async def add_many(pool: asyncpg.Pool, bus: EventBus, items: list[NewActivity]) -> list[Appended]:
    """Append a batch in one transaction and one statement (a burst of webhooks, a channel
    sync); same idempotency by external id and the same announcements as `add`."""
    if not items:
        return []
    columns = list(zip(*(
        (n.case_id, n.kind.value, n.channel.value, n.direction.value, n.occurred_at, n.agent_id,
         n.summary, n.body, n.reference, n.delivery_status, n.external_id, dict(n.data))
        for n in items
    ), strict=True))  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "INSERT INTO activities (case_id, kind, channel, direction, occurred_at, agent_id, "  # noqa: S608
            "summary, body, reference, delivery_status, external_id, data) "
            "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], "
            "$5::timestamptz[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], "
            "$11::text[], $12::jsonb[]) "
            "ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING "
            "RETURNING " + _COLUMNS,
            *(list(c) for c in columns),
        )
        created = {(r["channel"], r["external_id"]): _activity(r) for r in rows if r["external_id"]}
        fresh = [_activity(r) for r in rows]
        missing = [
            n for n in items if n.external_id and (n.channel.value, n.external_id) not in created
        ]
        existing: dict[tuple[str, str], Activity] = {}
        if missing:
            found = await conn.fetch(
                "SELECT " + _COLUMNS + " FROM activities a "  # noqa: S608
                "JOIN unnest($1::text[], $2::text[]) AS k(channel, external_id) "
                "USING (channel, external_id)",
                [n.channel.value for n in missing],
                [n.external_id for n in missing],
            )
            existing = {(r["channel"], r["external_id"]): _activity(r) for r in found}
    for act in fresh:
        await announce(bus, act)
    out: list[Appended] = []
    unkeyed = iter(a for a in fresh if a.external_id is None)
    returned: set[tuple[str, str]] = set()
    for n in items:
        if n.external_id is None:
            out.append(Appended(next(unkeyed), True))
            continue
        key = (n.channel.value, n.external_id)
        if key in created:
            out.append(Appended(created[key], key not in returned))  # a repeat within the batch
            returned.add(key)
        else:
            out.append(Appended(existing[key], False))
    return out


async def update_delivery(
    conn: asyncpg.Connection, channel: Channel, external_id: str, status: str
) -> Activity | None:
    """Record a delivery receipt (sent, delivered, read, failed) by the external id."""
    row = await conn.fetchrow(
        "UPDATE activities SET delivery_status = $3 WHERE channel = $1 AND external_id = $2 "  # noqa: S608
        "RETURNING " + _COLUMNS,
        channel.value,
        external_id,
        status,
    )
    return None if row is None else _activity(row)


def encode_cursor(activity: Activity) -> str:
    raw = json.dumps([activity.occurred_at.isoformat(), activity.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, activity_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(at), int(activity_id)
    except (ValueError, TypeError):
        raise ActivityError("invalid cursor") from None


@dataclass(frozen=True)
class Page:
    items: list[Activity]
    next_cursor: str | None


async def timeline(
    conn: asyncpg.Connection, case_id: int, limit: int = 50, cursor: str | None = None
) -> Page:
    """The case's activities, newest first; pass `next_cursor` back for older ones."""
    if not 1 <= limit <= MAX_PAGE:
        raise ActivityError(f"limit must be between 1 and {MAX_PAGE}")
    if cursor is None:
        rows = await conn.fetch(
            "SELECT " + _COLUMNS + " FROM activities WHERE case_id = $1 "  # noqa: S608
            "ORDER BY occurred_at DESC, id DESC LIMIT $2",
            case_id,
            limit + 1,
        )
    else:
        at, activity_id = decode_cursor(cursor)
        rows = await conn.fetch(
            "SELECT " + _COLUMNS + " FROM activities WHERE case_id = $1 "  # noqa: S608
            "AND (occurred_at, id) < ($2, $3) ORDER BY occurred_at DESC, id DESC LIMIT $4",
            case_id,
            at,
            activity_id,
            limit + 1,
        )
    items = [_activity(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1]) if more and items else None)
