"""Inbound calls: who is calling.

Identification matches the caller's number (E.164) against every phone of every debtor and
linked person. Identified calls then wait on the switchboard (`dialer.switchboard`) for
their case's agent or a ready agent of the inbound group. A caller we cannot identify
gets a triage ticket: a case of the `INBOUND` creditor holding the number, for an agent
to qualify (the next call from that number finds it).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from core import cases
from core.debtors import DebtorInput, PhoneInput, create_debtor
from core.identity import SYSTEM
from core.phones import InvalidPhoneNumber, to_e164

TRIAGE_CREDITOR = "INBOUND"
TRIAGE_PORTFOLIO = "triage"


@dataclass(frozen=True)
class CallerMatch:
    debtor_id: int
    case_id: int  # the case to pop: open before closed, then the largest balance
    case_ids: tuple[int, ...]
    assigned_agent_id: int | None
    relation: str  # 'debtor' or the linked person's relation (guarantor, ...)
    phone_id: int | None = None


_IDENTIFY = """
SELECT c.id AS case_id, c.debtor_id, c.assigned_agent_id, 'debtor' AS relation,
       c.status IN ('paid', 'closed') AS closed, c.balance, c.updated_at, p.id AS phone_id
FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id
WHERE p.e164 = $1
UNION ALL
SELECT c.id, dl.debtor_id, c.assigned_agent_id, dl.relation,
       c.status IN ('paid', 'closed'), c.balance, c.updated_at, p.id
FROM phones p JOIN debtor_links dl ON dl.debtor_id = p.debtor_id JOIN cases c ON c.id = dl.case_id
WHERE p.e164 = $1
ORDER BY closed, balance DESC, updated_at DESC
"""


async def identify_caller(conn: asyncpg.Connection, e164: str) -> CallerMatch | None:
    rows = await conn.fetch(_IDENTIFY, e164)
    if not rows:
        return None
    best = rows[0]
    return CallerMatch(
        debtor_id=best["debtor_id"],
        case_id=best["case_id"],
        case_ids=tuple(dict.fromkeys(r["case_id"] for r in rows)),
        assigned_agent_id=best["assigned_agent_id"],
        relation=best["relation"],
        phone_id=best["phone_id"],
    )


def caller_e164(caller: str, region: str) -> str | None:
    """The caller id as E.164, or None when withheld or not a valid number."""
    text = caller.strip()
    if not text or not any(c.isdigit() for c in text):
        return None  # anonymous, <unknown>, restricted
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        return to_e164(text, region)
    except InvalidPhoneNumber:
        return None


async def open_triage_case(
    conn: asyncpg.Connection, e164: str | None, key: str, region: str
) -> CallerMatch:
    """A ticket for a caller we do not know: a case of the triage portfolio with the
    caller's number (withheld numbers get a ticket of their own, keyed by the call)."""
    async with conn.transaction():
        creditor_id = await cases.ensure_creditor(
            conn, SYSTEM, TRIAGE_CREDITOR, "Inbound calls to qualify"
        )
        portfolio_id = await cases.ensure_portfolio(
            conn, SYSTEM, creditor_id, TRIAGE_PORTFOLIO, "Unknown callers"
        )
        phones = () if e164 is None else (PhoneInput(e164, kind="unknown", source="inbound"),)
        debtor_id = await create_debtor(
            conn,
            SYSTEM,
            DebtorInput(last_name="Unknown caller", phones=phones),
            region,
        )
        case_id = await cases.create_case(
            conn,
            SYSTEM,
            creditor_id=creditor_id,
            portfolio_id=portfolio_id,
            debtor_id=debtor_id,
            reference=e164 or f"withheld {key}",
        )
        phone_id = None
        if e164 is not None:
            phone_id = await conn.fetchval(
                "SELECT id FROM phones WHERE debtor_id = $1 AND e164 = $2", debtor_id, e164
            )
    return CallerMatch(debtor_id, case_id, (case_id,), None, "unknown", phone_id)
