"""Case status workflows: which statuses exist, which may follow which, and who may set them.

A portfolio names its workflow; the default is New, Contact later, No answer, Promise to
pay, Refused, Wrong number, Paid, Closed, Withdrawn. Each status may require a minimum
role (only managers close a case) and lists the statuses allowed after it. The rules are
enforced here, in the service, whatever the UI shows. A refused change raises and is
audited as refused on its own connection, so the record survives the caller's rollback.

A status may also forbid contact: final statuses and those marked `no_contact` (Paid,
and Withdrawn when the creditor recalls a case). The status change keeps
`cases.contactable` in step in its transaction, so that the dialer's claim, one SQL
statement, refuses such cases; the dialer's trigger on that column cancels the case's
queued leads and callbacks in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core import audit
from core.activity import Activity, ActivityKind, Channel, Direction, NewActivity, append
from core.cases import CaseNotFound
from core.identity import Actor, PermissionDenied, Role


class WorkflowError(ValueError):
    """A status or transition the workflow does not allow."""


class StatusChangeRefused(PermissionDenied):
    """The actor's role may not set this status (e.g. an agent closing a case)."""


@dataclass(frozen=True)
class Status:
    code: str
    label: str
    role: Role = Role.AGENT  # minimum role to set it
    final: bool = False  # the case is closed in this status
    next: tuple[str, ...] = ()  # statuses allowed after this one
    no_contact: bool = False  # the debtor must not be contacted about the case (final too)

    def __post_init__(self) -> None:
        if self.final:
            object.__setattr__(self, "no_contact", True)


@dataclass(frozen=True)
class Workflow:
    name: str
    statuses: Mapping[str, Status]
    initial: str

    def status(self, code: str) -> Status:
        try:
            return self.statuses[code]
        except KeyError:
            raise WorkflowError(f"unknown status {code!r} in workflow {self.name!r}") from None

    def no_contact_codes(self) -> list[str]:
        return [s.code for s in self.statuses.values() if s.no_contact]

    def allowed_after(self, current: str, role: Role) -> list[Status]:
        source = self.status(current)
        if source.final and not role.at_least(source.role):
            return []
        return [self.statuses[c] for c in source.next if role.at_least(self.statuses[c].role)]

    def check(self, current: str, new: str, role: Role) -> Status:
        target = self.status(new)
        if new not in self.status(current).next:
            raise WorkflowError(
                f"a case in {self.status(current).label!r} cannot move to {target.label!r}"
            )
        if not role.at_least(target.role):
            raise StatusChangeRefused(
                f"only a {target.role} or above may set {target.label!r}; you are {role}"
            )
        source = self.status(current)
        if source.final and not role.at_least(source.role):
            # A closed case is reopened only by those who may close it.
            raise StatusChangeRefused(
                f"only a {source.role} or above may reopen a case in {source.label!r}; you are {role}"
            )
        return target

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "initial": self.initial,
            "statuses": [
                {
                    "code": s.code,
                    "label": s.label,
                    "role": s.role.value,
                    "final": s.final,
                    "no_contact": s.no_contact,
                    "next": list(s.next),
                }
                for s in self.statuses.values()
            ],
        }


def parse_workflow(definition: Mapping[str, Any]) -> Workflow:
    """Validate a workflow definition (JSON) and build it; raises WorkflowError."""
    try:
        name = str(definition["name"])
        items = definition["statuses"]
        statuses: dict[str, Status] = {}
        for item in items:
            code = str(item["code"])
            if code in statuses:
                raise WorkflowError(f"status {code!r} defined twice")
            statuses[code] = Status(
                code=code,
                label=str(item.get("label", code)),
                role=Role(item.get("role", "agent")),
                final=bool(item.get("final", False)),
                next=tuple(str(n) for n in item.get("next", ())),
                no_contact=bool(item.get("no_contact", False)),
            )
        initial = str(definition.get("initial", next(iter(statuses))))
    except (KeyError, TypeError, StopIteration) as exc:
        raise WorkflowError(f"malformed workflow definition: {exc}") from None
    except ValueError as exc:
        raise WorkflowError(f"malformed workflow definition: {exc}") from None
    for status in statuses.values():
        for n in status.next:
            if n not in statuses:
                raise WorkflowError(f"status {status.code!r} leads to unknown status {n!r}")
    if initial not in statuses:
        raise WorkflowError(f"initial status {initial!r} is not defined")
    return Workflow(name, statuses, initial)


_OPEN = ("new", "contact_later", "no_answer", "promise_to_pay", "refused", "wrong_number")


def _default() -> Workflow:
    def status(code: str, label: str, role: Role = Role.AGENT, final: bool = False,
               next_: Sequence[str] = (), no_contact: bool = False) -> dict[str, Any]:  # fmt: skip
        return {
            "code": code,
            "label": label,
            "role": role.value,
            "final": final,
            "no_contact": no_contact,
            "next": list(next_),
        }

    working = [*_OPEN, "paid", "closed", "withdrawn"]
    return parse_workflow(
        {
            "name": "default",
            "initial": "new",
            "statuses": [
                status("new", "New", next_=[s for s in working if s != "new"]),
                status("contact_later", "Contact later", next_=working),
                status("no_answer", "No answer", next_=working),
                status("promise_to_pay", "Promise to pay", next_=working),
                status("refused", "Refused", next_=working),
                status("wrong_number", "Wrong number", next_=working),
                # Payments are verified by the back office, not claimed by an agent.
                status(
                    "paid",
                    "Paid",
                    Role.SUPERVISOR,
                    next_=["closed", "new", "withdrawn"],
                    no_contact=True,
                ),
                status("closed", "Closed", Role.MANAGER, final=True, next_=["new"]),
                # The creditor recalled the case: a manager records it (later, the CRM bridge).
                status("withdrawn", "Withdrawn", Role.MANAGER, final=True, next_=["new"]),
            ],
        }
    )


DEFAULT_WORKFLOW = _default()


async def get_workflow(conn: asyncpg.Connection, name: str) -> Workflow:
    if name == DEFAULT_WORKFLOW.name:
        stored = await conn.fetchval("SELECT definition FROM workflows WHERE name = $1", name)
        return DEFAULT_WORKFLOW if stored is None else parse_workflow(stored)
    stored = await conn.fetchval("SELECT definition FROM workflows WHERE name = $1", name)
    if stored is None:
        raise WorkflowError(f"no workflow named {name!r}")
    return parse_workflow(stored)


async def save_workflow(
    conn: asyncpg.Connection, actor: Actor, definition: Mapping[str, Any]
) -> Workflow:
    actor.require(Role.ADMIN, "changing workflows")
    workflow = parse_workflow(definition)
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT definition FROM workflows WHERE name = $1", workflow.name
        )
        await conn.execute(
            "INSERT INTO workflows (name, definition) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET definition = $2, updated_at = now()",
            workflow.name,
            workflow.as_json(),
        )
        # Statuses may have changed meaning: the cases already in them follow at once
        # (those that stop being contactable lose their queued leads, by the trigger).
        await conn.execute(
            "UPDATE cases c SET contactable = NOT (c.status = ANY($2::text[])) "
            "FROM portfolios p WHERE p.id = c.portfolio_id AND p.workflow = $1 "
            "AND c.contactable IS DISTINCT FROM NOT (c.status = ANY($2::text[]))",
            workflow.name,
            workflow.no_contact_codes(),
        )
        await audit.record(
            conn, actor, "workflow.save", "workflow", workflow.name, before=before,
            after=workflow.as_json(),
        )  # fmt: skip
    return workflow


async def workflow_of_case(conn: asyncpg.Connection, case_id: int) -> tuple[Workflow, str]:
    row = await conn.fetchrow(
        "SELECT c.status, p.workflow FROM cases c JOIN portfolios p ON p.id = c.portfolio_id "
        "WHERE c.id = $1",
        case_id,
    )
    if row is None:
        raise CaseNotFound(f"no case {case_id}")
    return await get_workflow(conn, row["workflow"]), row["status"]


async def change_status(
    conn: asyncpg.Connection,
    audit_pool: asyncpg.Pool,
    actor: Actor,
    case_id: int,
    new_status: str,
    occurred_at: datetime,
    reason: str | None = None,
) -> Activity:
    """Move a case to `new_status` if its workflow and the actor's role allow it.

    Writes the status, the audit entry and a status-change activity in one transaction
    (joining the caller's, if any). A refusal is audited through `audit_pool`."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT c.status, p.workflow FROM cases c JOIN portfolios p ON p.id = c.portfolio_id "
            "WHERE c.id = $1 FOR UPDATE OF c",
            case_id,
        )
        if row is None:
            raise CaseNotFound(f"no case {case_id}")
        workflow = await get_workflow(conn, row["workflow"])
        current = row["status"]
        try:
            target = workflow.check(current, new_status, actor.role)
        except (WorkflowError, StatusChangeRefused) as exc:
            async with audit_pool.acquire() as log_conn:
                await audit.record(
                    log_conn, actor, "case.status", "case", case_id,
                    before={"status": current}, after={"status": new_status, "refused": str(exc)},
                    outcome="refused",
                )  # fmt: skip
            raise
        # `contactable` is what the dialer's claim reads; making it false cancels the
        # case's queued leads and callbacks in this transaction (the dialer's trigger).
        await conn.execute(
            "UPDATE cases SET status = $2, status_changed_at = $3::timestamptz, updated_at = now(), "
            "closed_at = CASE WHEN $4 THEN $3::timestamptz ELSE NULL END, contactable = $5 "
            "WHERE id = $1",
            case_id,
            new_status,
            occurred_at,
            target.final,
            not target.no_contact,
        )
        appended = await append(
            conn,
            NewActivity(
                case_id,
                ActivityKind.STATUS_CHANGE,
                Channel.INTERNAL,
                Direction.INTERNAL,
                occurred_at,
                f"Status: {workflow.status(current).label} → {target.label}",
                agent_id=actor.user_id,
                body=reason,
                data={"from": current, "to": new_status},
            ),
        )
        await audit.record(
            conn, actor, "case.status", "case", case_id,
            before={"status": current, "contactable": not workflow.status(current).no_contact},
            after={"status": new_status, "contactable": not target.no_contact},
        )  # fmt: skip
    return appended.activity
