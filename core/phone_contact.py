"""Whether a debtor's phone number may be called: do-not-call, consent, a wrong number.

Agents change these from the case card (and the wrong-number disposition of a call marks
its number). A change is audited and filed on the case's timeline in one transaction;
the dialer reads the phone's row in every claim, so it holds from the very next one.
Anyone who may see the case may restrict a number; allowing calls to it again (lifting
do-not-call, a revoked consent or a wrong number) is a supervisor's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core import audit
from core.activity import Activity, ActivityKind, Channel, Direction, NewActivity, append
from core.cases import CaseNotFound
from core.identity import Actor, PermissionDenied, Role

CONSENTS = ("unknown", "granted", "revoked")
_FIELDS = ("do_not_call", "consent", "wrong_number", "reason")


class PhoneError(ValueError):
    """A phone change is invalid; the message says why."""


class PhoneNotFound(CaseNotFound):
    """The case's debtor has no such phone."""


@dataclass(frozen=True)
class PhoneChange:
    """What to change; None leaves a flag as it is."""

    do_not_call: bool | None = None
    consent: str | None = None
    wrong_number: bool | None = None
    reason: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> PhoneChange:
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise PhoneError(f"unknown field(s): {', '.join(unknown)}; expected {_FIELDS}")
        for flag in ("do_not_call", "wrong_number"):
            if flag in body and not isinstance(body[flag], bool):
                raise PhoneError(f"{flag}: true or false")
        consent = body.get("consent")
        if consent is not None and consent not in CONSENTS:
            raise PhoneError(f"consent: one of {', '.join(CONSENTS)}")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
            raise PhoneError("reason: a text of at most 2,000 characters")
        change = cls(body.get("do_not_call"), consent, body.get("wrong_number"),
                     reason.strip() or None if reason else None)  # fmt: skip
        if change.do_not_call is None and change.consent is None and change.wrong_number is None:
            raise PhoneError("nothing to change: send do_not_call, consent or wrong_number")
        return change


@dataclass(frozen=True)
class PhoneFlags:
    do_not_call: bool
    consent: str
    active: bool  # false: a wrong (or invalid) number

    @property
    def callable(self) -> bool:
        return self.active and not self.do_not_call and self.consent != "revoked"

    def lifts(self, before: PhoneFlags) -> bool:
        """Whether these flags allow calls that `before` forbade."""
        return (
            (before.do_not_call and not self.do_not_call)
            or (before.consent == "revoked" and self.consent != "revoked")
            or (not before.active and self.active)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "do_not_call": self.do_not_call,
            "consent": self.consent,
            "active": self.active,
            "callable": self.callable,
        }


def _summary(e164: str, before: PhoneFlags, after: PhoneFlags) -> str:
    parts = []
    if before.do_not_call != after.do_not_call:
        parts.append("do not call" if after.do_not_call else "may be called again")
    if before.consent != after.consent:
        parts.append(f"consent {after.consent}")
    if before.active != after.active:
        parts.append("number reinstated" if after.active else "wrong number")
    return f"Phone {e164}: {', '.join(parts)}"


async def change_phone(
    conn: asyncpg.Connection,
    audit_pool: asyncpg.Pool,
    actor: Actor,
    case_id: int,
    phone_id: int,
    change: PhoneChange,
    occurred_at: datetime,
) -> tuple[dict[str, Any], Activity | None]:
    """Apply `change` to a phone of the case's debtor; returns the phone (JSON-ready) and
    the timeline activity (None when nothing changed). Joins the caller's transaction.
    A refusal (an agent lifting a restriction) is audited through `audit_pool`."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT p.id, p.e164, p.do_not_call, p.consent, p.active FROM phones p "
            "JOIN cases c ON c.debtor_id = p.debtor_id WHERE c.id = $1 AND p.id = $2 "
            "FOR UPDATE OF p",
            case_id,
            phone_id,
        )
        if row is None:
            raise PhoneNotFound(f"case {case_id} has no phone {phone_id}")
        before = PhoneFlags(row["do_not_call"], row["consent"], row["active"])
        after = PhoneFlags(
            before.do_not_call if change.do_not_call is None else change.do_not_call,
            before.consent if change.consent is None else change.consent,
            before.active if change.wrong_number is None else not change.wrong_number,
        )
        phone = {"id": phone_id, "e164": row["e164"], **after.as_json()}
        if after == before:
            return phone, None
        if after.lifts(before) and not actor.role.at_least(Role.SUPERVISOR):
            refused = (
                f"only a supervisor or above may allow calls to {row['e164']} again; "
                f"you are {actor.role}"
            )
            async with audit_pool.acquire() as log_conn:
                await audit.record(
                    log_conn, actor, "phone.contact", "phone", phone_id,
                    before=before.as_json(),
                    after={**after.as_json(), "case_id": case_id, "refused": refused},
                    outcome="refused",
                )  # fmt: skip
            raise PermissionDenied(refused)
        await conn.execute(
            "UPDATE phones SET do_not_call = $2, consent = $3, active = $4 WHERE id = $1",
            phone_id,
            after.do_not_call,
            after.consent,
            after.active,
        )
        appended = await append(
            conn,
            NewActivity(
                case_id,
                ActivityKind.SYSTEM,
                Channel.INTERNAL,
                Direction.INTERNAL,
                occurred_at,
                _summary(row["e164"], before, after),
                agent_id=actor.user_id,
                body=change.reason,
                data={"phone_id": phone_id, "before": before.as_json(), "after": after.as_json()},
            ),
        )
        await audit.record(
            conn, actor, "phone.contact", "phone", phone_id, before=before.as_json(),
            after={**after.as_json(), "case_id": case_id, "reason": change.reason},
        )  # fmt: skip
    return phone, appended.activity
