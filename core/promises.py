"""Promises to pay and payments: a promise is kept when payments cover it and broken when
its due date passes; a payment counts once, whatever its sender re-sends. Each files its
activity and audit entry in the transaction of the change."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from core import audit
from core.activity import Activity, ActivityKind, Channel, Direction, NewActivity, append
from core.cases import CaseError, case_exists, money, refresh_totals
from core.identity import Actor


class PromiseStatus(enum.StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Promise:
    id: int
    case_id: int
    amount: Decimal
    due_date: date
    status: PromiseStatus
    created_by: int | None
    created_at: datetime


@dataclass(frozen=True)
class Payment:
    id: int
    case_id: int
    amount: Decimal
    paid_on: date
    method: str | None
    external_id: str | None


async def add_promise(
    conn: asyncpg.Connection,
    actor: Actor,
    case_id: int,
    amount: object,
    due_date: date,
    today: date,
    occurred_at: datetime,
) -> tuple[Promise, Activity]:
    value = money(amount)
    if value <= 0:
        raise CaseError("a promise needs a positive amount")
    if due_date < today:
        raise CaseError("a promise cannot be due in the past")
    async with conn.transaction():
        await case_exists(conn, case_id)
        row = await conn.fetchrow(
            "INSERT INTO promises (case_id, amount, due_date, created_by) VALUES ($1, $2, $3, $4) "
            "RETURNING id, case_id, amount, due_date, status, created_by, created_at",
            case_id,
            value,
            due_date,
            actor.user_id,
        )
        promise = _promise(row)
        appended = await append(
            conn,
            NewActivity(
                case_id,
                ActivityKind.PROMISE,
                Channel.INTERNAL,
                Direction.INTERNAL,
                occurred_at,
                f"Promise to pay {value} by {due_date.isoformat()}",
                agent_id=actor.user_id,
                data={
                    "promise_id": promise.id,
                    "amount": str(value),
                    "due_date": due_date.isoformat(),
                },
            ),
        )
        await audit.record(
            conn, actor, "promise.add", "case", case_id,
            after={"promise_id": promise.id, "amount": str(value), "due_date": due_date.isoformat()},
        )  # fmt: skip
    return promise, appended.activity


def _promise(row: asyncpg.Record) -> Promise:
    values = dict(row)
    values["status"] = PromiseStatus(values["status"])
    return Promise(**values)


async def record_payment(
    conn: asyncpg.Connection,
    actor: Actor,
    case_id: int,
    amount: object,
    paid_on: date,
    occurred_at: datetime,
    method: str | None = None,
    external_id: str | None = None,
) -> tuple[Payment, Activity | None]:
    """Record a payment; idempotent by `external_id` (a re-sent payment counts once).

    Pending promises due by `paid_on` are marked kept when payments cover them."""
    value = money(amount)
    if value == 0:
        raise CaseError("a payment of zero is not a payment")
    async with conn.transaction():
        await case_exists(conn, case_id)
        row = await conn.fetchrow(
            "INSERT INTO payments (case_id, amount, paid_on, method, external_id) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (external_id) DO NOTHING "
            "RETURNING id, case_id, amount, paid_on, method, external_id",
            case_id,
            value,
            paid_on,
            method,
            external_id,
        )
        if row is None:
            existing = await conn.fetchrow(
                "SELECT id, case_id, amount, paid_on, method, external_id FROM payments "
                "WHERE external_id = $1",
                external_id,
            )
            return Payment(**dict(existing)), None
        payment = Payment(**dict(row))
        await refresh_totals(conn, case_id)
        await _settle_promises(conn, case_id, paid_on)
        appended = await append(
            conn,
            NewActivity(
                case_id,
                ActivityKind.PAYMENT,
                Channel.INTERNAL,
                Direction.INBOUND,
                occurred_at,
                f"Payment of {value} received ({paid_on.isoformat()})",
                agent_id=actor.user_id,
                reference=external_id,
                data={"payment_id": payment.id, "amount": str(value), "method": method},
            ),
        )
        await audit.record(
            conn, actor, "payment.record", "case", case_id,
            after={"payment_id": payment.id, "amount": str(value)},
        )  # fmt: skip
    return payment, appended.activity


async def _settle_promises(conn: asyncpg.Connection, case_id: int, paid_on: date) -> None:
    """Pending promises, oldest due first, are kept while payments made since the first
    of them was given cover them."""
    promises = await conn.fetch(
        "SELECT id, amount, created_at FROM promises WHERE case_id = $1 AND status = 'pending' "
        "ORDER BY due_date, id",
        case_id,
    )
    if not promises:
        return
    paid = await conn.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM payments WHERE case_id = $1 AND created_at >= $2",
        case_id,
        promises[0]["created_at"],
    )
    kept_total = await conn.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM promises WHERE case_id = $1 AND status = 'kept' "
        "AND created_at >= $2",
        case_id,
        promises[0]["created_at"],
    )
    available = Decimal(paid) - Decimal(kept_total)
    for p in promises:
        if available < p["amount"]:
            break
        available -= p["amount"]
        await conn.execute(
            "UPDATE promises SET status = 'kept', settled_at = now() WHERE id = $1", p["id"]
        )


async def break_overdue_promises(conn: asyncpg.Connection, today: date) -> int:
    """Pending promises past their due date become broken; run daily."""
    status = await conn.execute(
        "UPDATE promises SET status = 'broken', settled_at = now() "
        "WHERE status = 'pending' AND due_date < $1",
        today,
    )
    return int(status.split()[-1])
