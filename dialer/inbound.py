"""Inbound calls: who is calling.

Identification matches the caller's number (E.164) against every phone of every debtor and
linked person. Identified calls then wait on the switchboard (`dialer.switchboard`) for
their case's agent or a ready agent of the inbound group.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class CallerMatch:
    debtor_id: int
    case_id: int  # the case to pop: open before closed, then the largest balance
    case_ids: tuple[int, ...]
    assigned_agent_id: int | None
    relation: str  # 'debtor' or the linked person's relation (guarantor, ...)


_IDENTIFY = """
SELECT c.id AS case_id, c.debtor_id, c.assigned_agent_id, 'debtor' AS relation,
       c.status IN ('paid', 'closed') AS closed, c.balance, c.updated_at
FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id
WHERE p.e164 = $1
UNION ALL
SELECT c.id, dl.debtor_id, c.assigned_agent_id, dl.relation,
       c.status IN ('paid', 'closed'), c.balance, c.updated_at
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
    )
