"""Cases and what hangs off them: debts, promises to pay, payments, notes, assignment.

A case (ticket) belongs to a creditor's portfolio and a debtor. Its balance is kept
consistent in the same transaction as every change of debts or payments. Changes that
belong in the timeline (promises, payments, notes) file their activity in that
transaction too; services return the activities, and the caller announces them on the
bus after commit (`core.activity.announce`). Every change is audited.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from core import audit
from core.activity import Activity, ActivityKind, Channel, Direction, NewActivity, append
from core.identity import Actor, Role


class CaseError(ValueError):
    """A change to a case is invalid; the message says why."""


class CaseNotFound(LookupError):
    pass


class PromiseStatus(enum.StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


def money(value: object, field: str = "amount") -> Decimal:
    """A positive-or-zero amount with at most two decimals, never a float."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise CaseError(f"{field}: not an amount: {value!r}") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise CaseError(f"{field}: at most two decimals, got {value!r}")
    return amount.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Debt:
    id: int
    reference: str | None
    description: str | None
    capital: Decimal
    interest: Decimal
    fees: Decimal
    costs: Decimal
    total: Decimal
    due_date: date | None


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


async def ensure_creditor(conn: asyncpg.Connection, actor: Actor, code: str, name: str) -> int:
    actor.require(Role.MANAGER, "creating creditors")
    existing = await conn.fetchval("SELECT id FROM creditors WHERE code = $1", code)
    if existing is not None:
        return int(existing)
    creditor_id = await conn.fetchval(
        "INSERT INTO creditors (code, name) VALUES ($1, $2) RETURNING id", code, name
    )
    await audit.record(
        conn, actor, "creditor.create", "creditor", creditor_id, after={"code": code}
    )
    return int(creditor_id)


async def ensure_portfolio(
    conn: asyncpg.Connection,
    actor: Actor,
    creditor_id: int,
    code: str,
    name: str,
    workflow: str = "default",
    received_on: date | None = None,
) -> int:
    actor.require(Role.MANAGER, "creating portfolios")
    existing = await conn.fetchval(
        "SELECT id FROM portfolios WHERE creditor_id = $1 AND code = $2", creditor_id, code
    )
    if existing is not None:
        return int(existing)
    portfolio_id = await conn.fetchval(
        "INSERT INTO portfolios (creditor_id, code, name, workflow, received_on) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        creditor_id,
        code,
        name,
        workflow,
        received_on,
    )
    await audit.record(
        conn, actor, "portfolio.create", "portfolio", portfolio_id, after={"code": code}
    )
    return int(portfolio_id)


async def create_case(
    conn: asyncpg.Connection,
    actor: Actor,
    *,
    creditor_id: int,
    portfolio_id: int,
    debtor_id: int,
    reference: str,
    currency: str = "EUR",
    status: str = "new",
    assigned_agent_id: int | None = None,
    team_id: int | None = None,
) -> int:
    actor.require(Role.MANAGER, "creating cases")
    if not reference.strip():
        raise CaseError("a case needs the creditor's reference")
    async with conn.transaction():
        try:
            case_id = await conn.fetchval(
                "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, currency, status, "
                "assigned_agent_id, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                creditor_id,
                portfolio_id,
                debtor_id,
                reference,
                currency,
                status,
                assigned_agent_id,
                team_id,
            )
        except asyncpg.UniqueViolationError:
            raise CaseError(f"the creditor already has a case {reference!r}") from None
        await audit.record(
            conn, actor, "case.create", "case", case_id, after={"reference": reference}
        )
    return int(case_id)


async def case_exists(conn: asyncpg.Connection, case_id: int) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM cases WHERE id = $1)", case_id):
        raise CaseNotFound(f"no case {case_id}")


async def _refresh_totals(conn: asyncpg.Connection, case_id: int) -> None:
    await conn.execute(
        "UPDATE cases SET total_due = COALESCE((SELECT sum(total) FROM debts WHERE case_id = $1), 0), "
        "total_paid = COALESCE((SELECT sum(amount) FROM payments WHERE case_id = $1), 0), "
        "updated_at = now() WHERE id = $1",
        case_id,
    )


async def add_debt(
    conn: asyncpg.Connection,
    actor: Actor,
    case_id: int,
    *,
    capital: object = 0,
    interest: object = 0,
    fees: object = 0,
    costs: object = 0,
    due_date: date | None = None,
    reference: str | None = None,
    description: str | None = None,
) -> int:
    actor.require(Role.MANAGER, "changing debts")
    amounts = {
        name: money(value, name)
        for name, value in (
            ("capital", capital),
            ("interest", interest),
            ("fees", fees),
            ("costs", costs),
        )
    }
    if any(v < 0 for v in amounts.values()):
        raise CaseError("debt amounts cannot be negative")
    async with conn.transaction():
        await case_exists(conn, case_id)
        debt_id = await conn.fetchval(
            "INSERT INTO debts (case_id, reference, description, capital, interest, fees, costs, "
            "due_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            case_id,
            reference,
            description,
            amounts["capital"],
            amounts["interest"],
            amounts["fees"],
            amounts["costs"],
            due_date,
        )
        await _refresh_totals(conn, case_id)
        await audit.record(
            conn, actor, "debt.add", "case", case_id,
            after={k: str(v) for k, v in amounts.items()} | {"debt_id": debt_id},
        )  # fmt: skip
    return int(debt_id)


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
        await _refresh_totals(conn, case_id)
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


async def add_note(
    conn: asyncpg.Connection, actor: Actor, case_id: int, text: str, occurred_at: datetime
) -> Activity:
    text = text.strip()
    if not text:
        raise CaseError("a note cannot be empty")
    if len(text) > 10_000:
        raise CaseError("a note is limited to 10,000 characters")
    async with conn.transaction():
        await case_exists(conn, case_id)
        first_line = text.splitlines()[0]
        appended = await append(
            conn,
            NewActivity(
                case_id,
                ActivityKind.NOTE,
                Channel.INTERNAL,
                Direction.INTERNAL,
                occurred_at,
                first_line[:200],
                agent_id=actor.user_id,
                body=text,
            ),
        )
        await audit.record(
            conn, actor, "note.add", "case", case_id, after={"activity_id": appended.activity.id}
        )
    return appended.activity


async def assign_case(
    conn: asyncpg.Connection,
    actor: Actor,
    case_id: int,
    agent_id: int | None,
    team_id: int | None = None,
) -> None:
    actor.require(Role.SUPERVISOR, "assigning cases")
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT assigned_agent_id, team_id FROM cases WHERE id = $1 FOR UPDATE", case_id
        )
        if before is None:
            raise CaseNotFound(f"no case {case_id}")
        await conn.execute(
            "UPDATE cases SET assigned_agent_id = $2, team_id = COALESCE($3, team_id), "
            "updated_at = now() WHERE id = $1",
            case_id,
            agent_id,
            team_id,
        )
        await audit.record(
            conn, actor, "case.assign", "case", case_id, before=dict(before),
            after={"assigned_agent_id": agent_id, "team_id": team_id or before["team_id"]},
        )  # fmt: skip


SENTIMENTS = ("cooperative", "neutral", "hostile", "distressed", "unreachable")


async def set_sentiment(
    conn: asyncpg.Connection, actor: Actor, case_id: int, sentiment: str | None
) -> None:
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise CaseError(f"sentiment must be one of {', '.join(SENTIMENTS)}")
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT sentiment FROM cases WHERE id = $1 FOR UPDATE", case_id
        )
        await case_exists(conn, case_id)
        await conn.execute(
            "UPDATE cases SET sentiment = $2, updated_at = now() WHERE id = $1", case_id, sentiment
        )
        await audit.record(
            conn, actor, "case.sentiment", "case", case_id,
            before={"sentiment": before}, after={"sentiment": sentiment},
        )  # fmt: skip


async def case_card(conn: asyncpg.Connection, case_id: int) -> dict[str, Any]:
    """Everything an agent needs on screen about a case, as JSON-ready values."""
    case = await conn.fetchrow(
        "SELECT c.id, c.reference, c.status, c.status_changed_at, c.assigned_agent_id, c.team_id, "
        "c.sentiment, c.currency, c.total_due, c.total_paid, c.balance, c.last_contact_at, "
        "c.opened_at, c.closed_at, c.debtor_id, c.portfolio_id, p.code AS portfolio_code, "
        "p.workflow, cr.code AS creditor_code, cr.name AS creditor_name "
        "FROM cases c JOIN portfolios p ON p.id = c.portfolio_id "
        "JOIN creditors cr ON cr.id = c.creditor_id WHERE c.id = $1",
        case_id,
    )
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    debtor = await conn.fetchrow(
        "SELECT id, kind, first_name, last_name, company_name, tax_code, birth_date, language "
        "FROM debtors WHERE id = $1",
        case["debtor_id"],
    )
    phones = await conn.fetch(
        "SELECT id, e164, kind, consent, do_not_call, active, time_zones, last_outcome "
        "FROM phones WHERE debtor_id = $1 ORDER BY position, id",
        case["debtor_id"],
    )
    emails = await conn.fetch(
        "SELECT id, address, consent, active FROM emails WHERE debtor_id = $1 ORDER BY id",
        case["debtor_id"],
    )
    addresses = await conn.fetch(
        "SELECT kind, line1, line2, postal_code, city, region, country FROM addresses "
        "WHERE debtor_id = $1 ORDER BY id",
        case["debtor_id"],
    )
    debts = await conn.fetch(
        "SELECT id, reference, description, capital, interest, fees, costs, total, due_date "
        "FROM debts WHERE case_id = $1 ORDER BY due_date NULLS LAST, id",
        case_id,
    )
    promises = await conn.fetch(
        "SELECT id, amount, due_date, status, created_at FROM promises WHERE case_id = $1 "
        "ORDER BY due_date DESC, id DESC",
        case_id,
    )
    payments = await conn.fetch(
        "SELECT id, amount, paid_on, method FROM payments WHERE case_id = $1 ORDER BY paid_on DESC, id DESC",
        case_id,
    )
    linked = await conn.fetch(
        "SELECT dl.relation, d.id, d.first_name, d.last_name, d.company_name "
        "FROM debtor_links dl JOIN debtors d ON d.id = dl.debtor_id WHERE dl.case_id = $1",
        case_id,
    )
    return _jsonable(
        {
            **dict(case),
            "debtor": dict(debtor) if debtor else None,
            "phones": [dict(r) for r in phones],
            "emails": [dict(r) for r in emails],
            "addresses": [dict(r) for r in addresses],
            "debts": [dict(r) for r in debts],
            "promises": [dict(r) for r in promises],
            "payments": [dict(r) for r in payments],
            "linked_persons": [dict(r) for r in linked],
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
