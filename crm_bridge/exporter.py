"""The return file a creditor expects: each case's outcome (status, last contact,
promises, payments, balance), as CSV or XLSX, streamed from a server-side cursor."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from core import audit
from core.identity import Actor, Role

COLUMNS = [
    ("reference", "Case reference"),
    ("creditor", "Creditor"),
    ("portfolio", "Portfolio"),
    ("debtor", "Debtor"),
    ("status", "Status"),
    ("status_changed_at", "Status since"),
    ("last_contact_at", "Last contact"),
    ("last_call_outcome", "Last call outcome"),
    ("calls", "Calls"),
    ("total_due", "Total due"),
    ("total_paid", "Paid"),
    ("balance", "Balance"),
    ("promises_pending", "Promises pending"),
    ("promised_amount", "Promised amount (pending)"),
    ("next_promise_due", "Next promise due"),
    ("promises_kept", "Promises kept"),
    ("promises_broken", "Promises broken"),
    ("last_payment_on", "Last payment"),
]

_QUERY = """
SELECT c.reference, cr.code AS creditor, p.code AS portfolio,
       COALESCE(d.company_name, concat_ws(' ', d.first_name, d.last_name)) AS debtor,
       c.status, c.status_changed_at, c.last_contact_at,
       (SELECT a.outcome FROM call_attempts a WHERE a.case_id = c.id AND a.ended_at IS NOT NULL
        ORDER BY a.started_at DESC LIMIT 1) AS last_call_outcome,
       (SELECT count(*) FROM call_attempts a WHERE a.case_id = c.id) AS calls,
       c.total_due, c.total_paid, c.balance,
       count(pr.id) FILTER (WHERE pr.status = 'pending') AS promises_pending,
       COALESCE(sum(pr.amount) FILTER (WHERE pr.status = 'pending'), 0) AS promised_amount,
       min(pr.due_date) FILTER (WHERE pr.status = 'pending') AS next_promise_due,
       count(pr.id) FILTER (WHERE pr.status = 'kept') AS promises_kept,
       count(pr.id) FILTER (WHERE pr.status = 'broken') AS promises_broken,
       (SELECT max(pm.paid_on) FROM payments pm WHERE pm.case_id = c.id) AS last_payment_on
FROM cases c
JOIN creditors cr ON cr.id = c.creditor_id
JOIN portfolios p ON p.id = c.portfolio_id
JOIN debtors d ON d.id = c.debtor_id
LEFT JOIN promises pr ON pr.case_id = c.id
WHERE ($1::text IS NULL OR cr.code = $1) AND ($2::text IS NULL OR p.code = $2)
GROUP BY c.id, cr.code, p.code, d.company_name, d.first_name, d.last_name
ORDER BY cr.code, p.code, c.reference
"""


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportResult:
    rows: int
    path: Path


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


async def export_outcomes(
    pool: asyncpg.Pool,
    actor: Actor,
    output: Path,
    fmt: str = "csv",
    creditor: str | None = None,
    portfolio: str | None = None,
) -> ExportResult:
    actor.require(Role.MANAGER, "exporting case outcomes")
    if fmt not in {"csv", "xlsx"}:
        raise ExportError("format: csv or xlsx")
    rows = 0
    async with pool.acquire() as conn, conn.transaction():
        cursor = conn.cursor(_QUERY, creditor, portfolio, prefetch=2000)
        if fmt == "csv":
            with output.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow([label for _, label in COLUMNS])
                async for record in cursor:
                    writer.writerow([_cell(record[name]) for name, _ in COLUMNS])
                    rows += 1
        else:
            import xlsxwriter

            workbook = xlsxwriter.Workbook(str(output), {"constant_memory": True})
            sheet = workbook.add_worksheet("Outcomes")
            money = workbook.add_format({"num_format": "#,##0.00"})
            bold = workbook.add_format({"bold": True})
            sheet.write_row(0, 0, [label for _, label in COLUMNS], bold)
            async for record in cursor:
                rows += 1
                for col, (name, _) in enumerate(COLUMNS):
                    value = record[name]
                    if isinstance(value, Decimal):
                        sheet.write_number(rows, col, float(value), money)
                    else:
                        sheet.write(rows, col, _cell(value))
            workbook.close()
        await audit.record(
            conn, actor, "portfolio.export", "export", None,
            after={"creditor": creditor, "portfolio": portfolio, "rows": rows, "format": fmt},
        )  # fmt: skip
    return ExportResult(rows, output)
