"""The built-in case store: search over cases and saved filters.

A filter is a validated set of predicates (never SQL text): each known key maps to one
SQL fragment with its own parameters, so user input only ever travels as parameters.
Results are paged with a keyset cursor. Agents only see cases assigned to them or to
their team; supervisors and above see every case.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from core import audit
from core.cases import CaseError, money
from core.identity import SYSTEM, Actor, PermissionDenied, Role

MAX_PAGE = 200
SORTS = {
    "recent": ("c.updated_at", "DESC"),
    "balance": ("c.balance", "DESC"),
    "id": ("c.id", "DESC"),
}

# "Birthday today" is that day in every year a debtor can have been born in, looked up
# through the plain index on debtors.birth_date (core migration 0004).
FIRST_BIRTH_YEAR = 1850


def birthdays(today: date) -> list[date]:
    days = []
    for year in range(FIRST_BIRTH_YEAR, today.year + 1):
        try:
            days.append(today.replace(year=year))
        except ValueError:
            continue  # 29 February, in a year without one
    return days


class FilterError(ValueError):
    """A filter definition is invalid; the message names the key."""


@dataclass(frozen=True)
class CaseFilter:
    portfolio_ids: tuple[int, ...] = ()
    creditor_id: int | None = None
    statuses: tuple[str, ...] = ()
    agent_id: int | None = None
    team_id: int | None = None
    balance_min: Decimal | None = None
    balance_max: Decimal | None = None
    text: str | None = None
    promises_overdue: bool = False
    birthday_today: bool = False
    sentiment: str | None = None
    sort: str = "recent"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if value in (None, (), False) or (key == "sort" and value == "recent"):
                continue
            out[key] = (
                str(value)
                if isinstance(value, Decimal)
                else (list(value) if isinstance(value, tuple) else value)
            )
        return out


def parse_filter(raw: Mapping[str, Any]) -> CaseFilter:
    known = set(CaseFilter.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise FilterError(f"unknown filter keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    try:
        for key in ("portfolio_ids",):
            if key in raw:
                values[key] = tuple(int(v) for v in raw[key])
        for key in ("creditor_id", "agent_id", "team_id"):
            if raw.get(key) is not None:
                values[key] = int(raw[key])
        if "statuses" in raw:
            values["statuses"] = tuple(str(s) for s in raw["statuses"])
        for key in ("balance_min", "balance_max"):
            if raw.get(key) is not None:
                values[key] = money(raw[key], key)
        for key in ("promises_overdue", "birthday_today"):
            if key in raw:
                if not isinstance(raw[key], bool):
                    raise FilterError(f"{key}: must be true or false")
                values[key] = raw[key]
        for key in ("text", "sentiment"):
            if raw.get(key) is not None:
                values[key] = str(raw[key]).strip() or None
        if "sort" in raw:
            if raw["sort"] not in SORTS:
                raise FilterError(f"sort: one of {', '.join(SORTS)}")
            values["sort"] = raw["sort"]
    except (TypeError, ValueError, CaseError) as exc:
        if isinstance(exc, FilterError):
            raise
        raise FilterError(f"invalid filter: {exc}") from None
    if values.get("text") and len(values["text"]) > 200:
        raise FilterError("text: at most 200 characters")
    return CaseFilter(**values)


@dataclass
class _Where:
    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, fragment: str, *args: Any) -> None:
        # Each `?` in the fragment becomes the next positional parameter.
        for arg in args:
            self.args.append(arg)
            fragment = fragment.replace("?", f"${len(self.args)}", 1)
        self.clauses.append(fragment)


def _where(f: CaseFilter, viewer: Actor, viewer_team: int | None, today: date) -> _Where:
    w = _Where()
    if not viewer.role.at_least(Role.SUPERVISOR):
        if viewer_team is None:
            w.add("c.assigned_agent_id = ?", viewer.user_id)
        else:
            w.add("(c.assigned_agent_id = ? OR c.team_id = ?)", viewer.user_id, viewer_team)
    if f.portfolio_ids:
        w.add("c.portfolio_id = ANY(?::bigint[])", list(f.portfolio_ids))
    if f.creditor_id is not None:
        w.add("c.creditor_id = ?", f.creditor_id)
    if f.statuses:
        w.add("c.status = ANY(?::text[])", list(f.statuses))
    if f.agent_id is not None:
        w.add("c.assigned_agent_id = ?", f.agent_id)
    if f.team_id is not None:
        w.add("c.team_id = ?", f.team_id)
    if f.balance_min is not None:
        w.add("c.balance >= ?", f.balance_min)
    if f.balance_max is not None:
        w.add("c.balance <= ?", f.balance_max)
    if f.sentiment is not None:
        w.add("c.sentiment = ?", f.sentiment)
    if f.promises_overdue:
        w.add(
            "EXISTS (SELECT 1 FROM promises pr WHERE pr.case_id = c.id "
            "AND pr.status IN ('pending', 'broken') AND pr.due_date < ?)",
            today,
        )
    if f.birthday_today:
        w.add("d.birth_date = ANY(?::date[])", birthdays(today))
    if f.text:
        like = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        digits = "".join(ch for ch in f.text if ch.isdigit())
        w.add(
            "(c.reference ILIKE ? OR d.last_name ILIKE ? OR d.first_name ILIKE ? "
            "OR d.company_name ILIKE ? OR d.tax_code = upper(?) "
            "OR EXISTS (SELECT 1 FROM emails e WHERE e.debtor_id = d.id AND lower(e.address) = lower(?)) "
            "OR (? <> '' AND EXISTS (SELECT 1 FROM phones p WHERE p.debtor_id = d.id "
            "AND p.e164 LIKE '%' || ?)))",
            like, like, like, like, f.text, f.text, digits, digits,
        )  # fmt: skip
    return w


def _cursor(sort_value: Any, case_id: int) -> str:
    raw = json.dumps([str(sort_value), case_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, int]:
    try:
        value, case_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(value), int(case_id)
    except (ValueError, TypeError):
        raise FilterError("invalid cursor") from None


@dataclass(frozen=True)
class SearchPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


async def search(
    conn: asyncpg.Connection,
    viewer: Actor,
    viewer_team: int | None,
    f: CaseFilter,
    today: date,
    limit: int = 50,
    cursor: str | None = None,
) -> SearchPage:
    if not 1 <= limit <= MAX_PAGE:
        raise FilterError(f"limit must be between 1 and {MAX_PAGE}")
    w = _where(f, viewer, viewer_team, today)
    column, _ = SORTS[f.sort]
    if cursor is not None:
        value, case_id = _decode(cursor)
        cast = {"c.updated_at": "timestamptz", "c.balance": "numeric", "c.id": "bigint"}[column]
        w.add(f"({column}, c.id) < (?::{cast}, ?)", value, case_id)
    where = " AND ".join(w.clauses) or "true"
    w.args.append(limit + 1)
    # Every fragment is a constant of this module; user input is only in w.args.
    sql = (
        "SELECT c.id, c.reference, c.status, c.balance, c.currency, c.assigned_agent_id, "  # noqa: S608
        "c.updated_at, c.last_contact_at, d.first_name, d.last_name, d.company_name, "
        f"{column} AS sort_value FROM cases c JOIN debtors d ON d.id = c.debtor_id "
        f"WHERE {where} ORDER BY {column} DESC, c.id DESC LIMIT ${len(w.args)}"
    )
    rows = await conn.fetch(sql, *w.args)
    items = []
    for r in rows[:limit]:
        item = dict(r)
        item.pop("sort_value")
        item["balance"] = str(item["balance"])
        for key in ("updated_at", "last_contact_at"):
            item[key] = item[key].isoformat() if item[key] else None
        items.append(item)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        sort_value = last["sort_value"]
        next_cursor = _cursor(
            sort_value.isoformat() if hasattr(sort_value, "isoformat") else sort_value, last["id"]
        )
    return SearchPage(items, next_cursor)


async def saved_filter_case_ids(conn: asyncpg.Connection, filter_id: int, today: date) -> list[int]:
    """Every case a saved filter matches, whoever may see them (a campaign's selection)."""
    definition = await conn.fetchval(
        "SELECT definition FROM saved_filters WHERE id = $1", filter_id
    )
    if definition is None:
        raise FilterError(f"no saved filter {filter_id}")
    w = _where(parse_filter(definition), SYSTEM, None, today)
    where = " AND ".join(w.clauses) or "true"
    # Every fragment is a constant of this module; user input is only in w.args.
    rows = await conn.fetch(
        f"SELECT c.id FROM cases c JOIN debtors d ON d.id = c.debtor_id WHERE {where}",  # noqa: S608
        *w.args,
    )
    return [r["id"] for r in rows]


async def may_see_case(
    conn: asyncpg.Connection, viewer: Actor, viewer_team: int | None, case_id: int
) -> bool:
    if viewer.role.at_least(Role.SUPERVISOR):
        return True
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM cases c WHERE c.id = $1 AND (c.assigned_agent_id = $2 "
            "OR ($3::bigint IS NOT NULL AND c.team_id = $3) "
            # A case the dialer put on this agent's screen in the last day.
            "OR EXISTS (SELECT 1 FROM call_attempts a WHERE a.case_id = c.id AND a.agent_id = $2 "
            "AND a.started_at > now() - interval '1 day') "
            # A callback the agent agreed with the debtor and has yet to make.
            "OR EXISTS (SELECT 1 FROM callbacks cb WHERE cb.case_id = c.id AND cb.agent_id = $2 "
            "AND cb.state = 'pending')))",
            case_id,
            viewer.user_id,
            viewer_team,
        )
    )


# --- saved filters ---------------------------------------------------------------------


@dataclass(frozen=True)
class SavedFilter:
    id: int
    owner_id: int
    name: str
    shared: bool
    definition: CaseFilter


async def save_filter(
    conn: asyncpg.Connection,
    actor: Actor,
    name: str,
    definition: Mapping[str, Any],
    shared: bool = False,
) -> SavedFilter:
    if actor.user_id is None:
        raise PermissionDenied("saved filters belong to a user")
    if shared and not actor.role.at_least(Role.SUPERVISOR):
        raise PermissionDenied("only supervisors and above share filters")
    if not name.strip():
        raise FilterError("a saved filter needs a name")
    parsed = parse_filter(definition)
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO saved_filters (owner_id, name, shared, definition) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (owner_id, name) DO UPDATE SET shared = $3, definition = $4 "
            "RETURNING id",
            actor.user_id,
            name.strip(),
            shared,
            parsed.as_json(),
        )
        await audit.record(
            conn, actor, "filter.save", "saved_filter", row["id"],
            after={"name": name, "shared": shared, "definition": parsed.as_json()},
        )  # fmt: skip
    return SavedFilter(row["id"], actor.user_id, name.strip(), shared, parsed)


async def list_filters(conn: asyncpg.Connection, actor: Actor) -> list[SavedFilter]:
    rows = await conn.fetch(
        "SELECT id, owner_id, name, shared, definition FROM saved_filters "
        "WHERE owner_id = $1 OR shared ORDER BY name, id",
        actor.user_id,
    )
    return [
        SavedFilter(r["id"], r["owner_id"], r["name"], r["shared"], parse_filter(r["definition"]))
        for r in rows
    ]


async def get_filter(conn: asyncpg.Connection, actor: Actor, filter_id: int) -> SavedFilter:
    for f in await list_filters(conn, actor):
        if f.id == filter_id:
            return f
    raise FilterError(f"no saved filter {filter_id} visible to you")


async def delete_filter(conn: asyncpg.Connection, actor: Actor, filter_id: int) -> None:
    async with conn.transaction():
        owner = await conn.fetchval("SELECT owner_id FROM saved_filters WHERE id = $1", filter_id)
        if owner is None:
            raise FilterError(f"no saved filter {filter_id}")
        if owner != actor.user_id and not actor.role.at_least(Role.MANAGER):
            raise PermissionDenied("only the owner or a manager deletes a saved filter")
        await conn.execute("DELETE FROM saved_filters WHERE id = $1", filter_id)
        await audit.record(conn, actor, "filter.delete", "saved_filter", filter_id)
