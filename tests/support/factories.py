"""Building domain data through the real services, for tests."""

from __future__ import annotations

import itertools
from datetime import date

import asyncpg

from core import cases, debtors
from core.identity import SYSTEM

_seq = itertools.count(1)


async def new_case(
    conn: asyncpg.Connection,
    *,
    last_name: str = "Rossi",
    phones: tuple[str, ...] = ("+393331234567",),
    capital: str = "1000.00",
    portfolio: str = "P1",
    workflow: str = "default",
    birth_date: date | None = None,
    reference: str | None = None,
) -> int:
    creditor = await cases.ensure_creditor(conn, SYSTEM, "BANK", "Banca Esempio")
    portfolio_id = await cases.ensure_portfolio(
        conn, SYSTEM, creditor, portfolio, portfolio, workflow
    )
    debtor = await debtors.create_debtor(
        conn,
        SYSTEM,
        debtors.DebtorInput(
            last_name=last_name,
            first_name="Mario",
            birth_date=birth_date,
            phones=[debtors.PhoneInput(p, kind="mobile") for p in phones],
            emails=[f"{last_name.lower()}@example.org"],
        ),
        region="IT",
    )
    case_id = await cases.create_case(
        conn,
        SYSTEM,
        creditor_id=creditor,
        portfolio_id=portfolio_id,
        debtor_id=debtor,
        reference=reference or f"REF-{next(_seq)}",
    )
    await cases.add_debt(conn, SYSTEM, case_id, capital=capital, interest="50.00")
    return case_id
