"""Debtors (people or companies) and how to reach them: phones, emails, postal addresses.

Phones are stored in E.164 with the time zones they may ring in, their consent and
do-not-call flag; a wrong number deactivates that phone only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from core import audit
from core.identity import Actor, Role
from core.phones import InvalidPhoneNumber, normalize

PHONE_KINDS = ("mobile", "landline", "work", "voip", "other", "unknown")
CONSENTS = ("unknown", "granted", "revoked")


class DebtorError(ValueError):
    """Debtor data is invalid; the message names the field."""


@dataclass(frozen=True)
class PhoneInput:
    number: str
    kind: str = "unknown"
    source: str = "creditor"
    consent: str = "unknown"
    do_not_call: bool = False


@dataclass(frozen=True)
class AddressInput:
    line1: str
    kind: str = "residence"
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class DebtorInput:
    last_name: str | None = None
    first_name: str | None = None
    company_name: str | None = None
    kind: str = "person"
    tax_code: str | None = None
    birth_date: date | None = None
    language: str | None = None
    phones: Sequence[PhoneInput] = field(default_factory=tuple)
    emails: Sequence[str] = field(default_factory=tuple)
    addresses: Sequence[AddressInput] = field(default_factory=tuple)


def normalize_phone(phone: PhoneInput, region: str) -> tuple[str, tuple[str, ...]]:
    if phone.kind not in PHONE_KINDS:
        raise DebtorError(f"phone kind must be one of {', '.join(PHONE_KINDS)}")
    if phone.consent not in CONSENTS:
        raise DebtorError(f"phone consent must be one of {', '.join(CONSENTS)}")
    try:
        return normalize(phone.number, region)
    except InvalidPhoneNumber as exc:
        raise DebtorError(f"phone {phone.number!r}: {exc}") from None


async def create_debtor(
    conn: asyncpg.Connection, actor: Actor, debtor: DebtorInput, region: str
) -> int:
    actor.require(Role.MANAGER, "creating debtors")
    if debtor.kind == "person" and not debtor.last_name:
        raise DebtorError("a person needs a last name")
    if debtor.kind == "company" and not debtor.company_name:
        raise DebtorError("a company needs a company name")
    if debtor.kind not in ("person", "company"):
        raise DebtorError("kind must be person or company")
    phones = [(p, *normalize_phone(p, region)) for p in debtor.phones]
    for address in debtor.emails:
        if "@" not in address[1:]:
            raise DebtorError(f"not an email address: {address!r}")
    async with conn.transaction():
        debtor_id = await conn.fetchval(
            "INSERT INTO debtors (kind, first_name, last_name, company_name, tax_code, birth_date, "
            "language) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            debtor.kind,
            debtor.first_name,
            debtor.last_name,
            debtor.company_name,
            debtor.tax_code,
            debtor.birth_date,
            debtor.language,
        )
        for position, (phone, e164, zones) in enumerate(phones):
            await conn.execute(
                "INSERT INTO phones (debtor_id, e164, kind, source, consent, do_not_call, time_zones, "
                "position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (debtor_id, e164) DO NOTHING",
                debtor_id,
                e164,
                phone.kind,
                phone.source,
                phone.consent,
                phone.do_not_call,
                list(zones),
                position,
            )
        for address in debtor.emails:
            await conn.execute(
                "INSERT INTO emails (debtor_id, address) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                debtor_id,
                address.strip(),
            )
        for a in debtor.addresses:
            await conn.execute(
                "INSERT INTO addresses (debtor_id, kind, line1, line2, postal_code, city, region, "
                "country) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                debtor_id,
                a.kind,
                a.line1,
                a.line2,
                a.postal_code,
                a.city,
                a.region,
                a.country,
            )
        await audit.record(
            conn, actor, "debtor.create", "debtor", debtor_id, after={"kind": debtor.kind}
        )
    return int(debtor_id)


async def set_phone_flags(
    conn: asyncpg.Connection,
    actor: Actor,
    phone_id: int,
    *,
    do_not_call: bool | None = None,
    consent: str | None = None,
    active: bool | None = None,
) -> None:
    """Do-not-call and consent changes (e.g. a debtor's opt-out) take effect at the next claim."""
    if consent is not None and consent not in CONSENTS:
        raise DebtorError(f"consent must be one of {', '.join(CONSENTS)}")
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT do_not_call, consent, active FROM phones WHERE id = $1 FOR UPDATE", phone_id
        )
        if before is None:
            raise DebtorError(f"no phone {phone_id}")
        after = {
            "do_not_call": before["do_not_call"] if do_not_call is None else do_not_call,
            "consent": before["consent"] if consent is None else consent,
            "active": before["active"] if active is None else active,
        }
        await conn.execute(
            "UPDATE phones SET do_not_call = $2, consent = $3, active = $4 WHERE id = $1",
            phone_id,
            after["do_not_call"],
            after["consent"],
            after["active"],
        )
        await audit.record(
            conn, actor, "phone.flags", "phone", phone_id, before=dict(before), after=after
        )
