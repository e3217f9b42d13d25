"""Cases and what hangs off them: debts, notes, assignment, sentiment, the case card.

A case (ticket) belongs to a creditor's portfolio and a debtor. Its balance is kept
consistent in the same transaction as every change of debts or payments. Changes that
belong in the timeline (promises, payments, notes) file their activity in that
transaction too; services return the activities, and the caller announces them on the
bus after commit (`core.activity.announce`). Every change is audited.
"""

from __future__ import annotations

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


async def refresh_totals(conn: asyncpg.Connection, case_id: int) -> None:
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
        await refresh_totals(conn, case_id)
        await audit.record(
            conn, actor, "debt.add", "case", case_id,
            after={k: str(v) for k, v in amounts.items()} | {"debt_id": debt_id},
        )  # fmt: skip
    return int(debt_id)


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
