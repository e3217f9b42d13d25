"""Validation of portfolio rows: raw cells in, a staging record or every problem out.

Pure and picklable, so the import can spread it over worker processes. The workers also
encode good records as lines of PostgreSQL's COPY text format, so the importer's main
process (which reads the file and feeds the database) only passes bytes along.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from core.phones import InvalidPhoneNumber, normalize
from crm_bridge.mapping import AMOUNT, DATE, FIELDS, PortfolioMapping, parse_amount, parse_date

# Column order of the staging table (see importer.STAGE_COLUMNS).
STAGE_FIELDS = (
    "line", "reference", "creditor_code", "portfolio_code", "kind", "first_name", "last_name",
    "company_name", "tax_code", "birth_date", "language", "currency", "debt_reference",
    "description", "capital", "interest", "fees", "costs", "due_date", "phones", "phone_kinds",
    "phone_zones", "emails", "address_line1", "address_line2", "postal_code", "city", "region",
    "country", "guarantor_last_name", "guarantor_first_name", "guarantor_phone", "guarantor_zones",
)  # fmt: skip

_KINDS = {
    "person": "person", "p": "person", "persona": "person", "pf": "person", "individual": "person",
    "company": "company", "c": "company", "azienda": "company", "pg": "company", "societa": "company",
    "società": "company", "business": "company",
}  # fmt: skip


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column!r}: {self.reason}"


_EMPTY_VALUES: dict[str, Any] = dict.fromkeys(STAGE_FIELDS)
_PARSERS = {AMOUNT: 1, DATE: 2}
# Staged whatever the mapping says; the first three are the key (see stage_chunk).
_ALWAYS_STAGED = frozenset(
    ("line", "reference", "creditor_code", "portfolio_code", "kind", "phones", "phone_kinds",
     "phone_zones", "emails")
)  # fmt: skip


def stage_columns(mapping: PortfolioMapping) -> tuple[str, ...]:
    """The staging columns a file with this mapping fills, in STAGE_FIELDS order: the
    others stay NULL, so neither the workers nor COPY spend time on them."""
    used = _ALWAYS_STAGED | set(mapping.fields)
    if "guarantor_phone" in used:
        used |= {"guarantor_zones"}
    return tuple(name for name in STAGE_FIELDS if name in used)


@dataclass(frozen=True)
class _RowPlan:
    """A mapping resolved against a file's header, once per chunk rather than per row."""

    fields: tuple[
        tuple[str, int, int, str, tuple[str, ...]], ...
    ]  # name, position, parser, header, formats
    phones: tuple[tuple[int, str, str], ...]  # position, header, kind
    emails: tuple[tuple[int, str], ...]  # position, header
    record: Any  # values -> the tuple of stage_columns(mapping)


def _plan(mapping: PortfolioMapping, index: Mapping[str, int]) -> _RowPlan:
    return _RowPlan(
        fields=tuple(
            (
                name,
                index[column.header],
                3 if name == "kind" else _PARSERS.get(FIELDS[name], 0),
                column.header,
                column.formats,
            )
            for name, column in mapping.fields.items()
        ),
        phones=tuple((index[p.header], p.header, p.kind) for p in mapping.phones),
        emails=tuple((index[h], h) for h in mapping.emails),
        record=operator.itemgetter(*stage_columns(mapping)),
    )


def _cell(cells: Sequence[str], position: int) -> str:
    return cells[position].strip() if position < len(cells) and cells[position] is not None else ""


def validate_row(
    mapping: PortfolioMapping,
    index: Mapping[str, int],
    line: int,
    cells: Sequence[str],
    plan: _RowPlan | None = None,
) -> tuple[tuple[Any, ...] | None, list[RowError]]:
    if plan is None:
        plan = _plan(mapping, index)
    errors: list[RowError] = []

    def cell(header: str) -> str:
        return _cell(cells, index[header])

    values = _EMPTY_VALUES.copy()
    values["line"] = line
    for name, position, parser, header, formats in plan.fields:
        text = _cell(cells, position)
        if not text:
            continue
        try:
            if parser == 1:
                values[name] = parse_amount(text, mapping.decimal)
            elif parser == 2:
                values[name] = parse_date(text, formats)
            elif parser == 3:
                if text.lower() not in _KINDS:
                    raise ValueError(f"kind must be person or company, got {text!r}")
                values[name] = _KINDS[text.lower()]
            else:
                values[name] = text
        except ValueError as exc:
            errors.append(RowError(line, header, str(exc)))
    if not values["reference"]:
        errors.append(
            RowError(line, mapping.fields["reference"].header, "the case reference is empty")
        )
    if values["kind"] is None:
        values["kind"] = (
            "company" if values["company_name"] and not values["last_name"] else "person"
        )
    if values["kind"] == "person" and not values["last_name"]:
        header = (
            mapping.fields["last_name"].header if "last_name" in mapping.fields else "last_name"
        )
        errors.append(RowError(line, header, "a person needs a last name"))
    if values["kind"] == "company" and not values["company_name"]:
        header = (
            mapping.fields["company_name"].header
            if "company_name" in mapping.fields
            else "company_name"
        )
        errors.append(RowError(line, header, "a company needs a company name"))
    if values["currency"] is not None:
        currency = str(values["currency"]).upper()
        if len(currency) != 3 or not currency.isalpha():
            errors.append(
                RowError(line, mapping.fields["currency"].header, "currency: a code like EUR")
            )
        values["currency"] = currency
    if values["country"] is not None:
        country = str(values["country"]).upper()
        if len(country) != 2 or not country.isalpha():
            errors.append(
                RowError(line, mapping.fields["country"].header, "country: a code like IT")
            )
        values["country"] = country
    region = (
        values["country"]
        if values["country"] and len(values["country"]) == 2
        else mapping.default_region
    )
    phones: list[str] = []
    kinds: list[str] = []
    zones: list[str] = []
    for position, header, kind in plan.phones:
        text = _cell(cells, position)
        if not text:
            continue
        try:
            e164, tz = normalize(text, region)
        except InvalidPhoneNumber as exc:
            errors.append(RowError(line, header, f"phone {text!r}: {exc}"))
            continue
        if e164 not in phones:
            phones.append(e164)
            kinds.append(kind)
            zones.append("|".join(tz))
    values["phones"], values["phone_kinds"], values["phone_zones"] = phones, kinds, zones
    emails: list[str] = []
    for position, header in plan.emails:
        text = _cell(cells, position)
        if not text:
            continue
        if "@" not in text[1:] or " " in text or "." not in text.rsplit("@", 1)[-1]:
            errors.append(RowError(line, header, f"not an email address: {text!r}"))
        elif text.lower() not in (e.lower() for e in emails):
            emails.append(text)
    values["emails"] = emails
    if values["guarantor_phone"]:
        try:
            e164, tz = normalize(values["guarantor_phone"], region)
            values["guarantor_phone"], values["guarantor_zones"] = e164, "|".join(tz)
        except InvalidPhoneNumber as exc:
            errors.append(RowError(line, mapping.fields["guarantor_phone"].header, f"phone: {exc}"))
    if values["guarantor_phone"] and not values["guarantor_last_name"]:
        errors.append(RowError(line, "guarantor_last_name", "a guarantor needs a last name"))
    if mapping.creditor_column:
        values["creditor_code"] = cell(mapping.creditor_column) or None
        if not values["creditor_code"]:
            errors.append(RowError(line, mapping.creditor_column, "the creditor code is empty"))
    else:
        values["creditor_code"] = mapping.creditor
    if mapping.portfolio_column:
        values["portfolio_code"] = cell(mapping.portfolio_column) or None
        if not values["portfolio_code"]:
            errors.append(RowError(line, mapping.portfolio_column, "the portfolio code is empty"))
    else:
        values["portfolio_code"] = mapping.portfolio
    if errors:
        return None, errors
    return plan.record(values), []


def validate_chunk(
    mapping: PortfolioMapping, index: Mapping[str, int], rows: Sequence[tuple[int, Sequence[str]]]
) -> tuple[list[tuple[Any, ...]], list[tuple[int, list[RowError]]]]:
    """Validate rows (line, cells); returns the good records and (line, errors) pairs."""
    good: list[tuple[Any, ...]] = []
    bad: list[tuple[int, list[RowError]]] = []
    plan = _plan(mapping, index)
    for line, cells in rows:
        record, errors = validate_row(mapping, index, line, cells, plan)
        if record is None:
            bad.append((line, errors))
        else:
            good.append(record)
    return good, bad


# --- COPY text format ---------------------------------------------------------------------

# Backslash, tab, newline and carriage return are the characters COPY's text format escapes.


def _copy_text(value: str) -> str:
    # Nearly always nothing to escape (the escaped characters are not printable, except
    # the backslash): return the text itself.
    if value.isprintable() and "\\" not in value:
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _array_literal(items: Sequence[str]) -> str:
    """A text[] literal: each element double-quoted, its backslashes and quotes escaped."""
    if not items:
        return "{}"
    joined = '","'.join(items)
    if "\\" in joined or joined.count('"') != 2 * (len(items) - 1):
        joined = '","'.join(item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return '{"' + joined + '"}'


def _copy_array(items: Sequence[str]) -> str:
    return _copy_text(_array_literal(items))


def _copy_date(value: date) -> str:
    return value.isoformat()


_ENCODERS: dict[type, Any] = {
    str: _copy_text, list: _copy_array, tuple: _copy_array, date: _copy_date, int: str, Decimal: str,
}  # fmt: skip


def copy_field(value: Any) -> str:
    """One value as a field of a COPY text-format line (\\N is NULL)."""
    if value is None:
        return "\\N"
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return str(encoder(value))
    if isinstance(value, str):
        return _copy_text(value)
    if isinstance(value, list | tuple):
        return _copy_array(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return str(value)
    raise TypeError(f"no COPY encoding for {type(value).__name__}")


def _field(value: Any) -> str:
    # copy_field with the common types tested first: this runs for every staged value.
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return _copy_text(value)
    if kind is Decimal or kind is int:
        return str(value)
    if kind is list:
        return _copy_array(value)
    if kind is date:
        return value.isoformat()
    return copy_field(value)


def copy_line(record: Sequence[Any]) -> bytes:
    return ("\t".join(map(_field, record)) + "\n").encode("utf-8")


def stage_chunk(
    mapping: PortfolioMapping, index: Mapping[str, int], rows: Sequence[tuple[int, Sequence[str]]]
) -> tuple[list[tuple[int, str | None, str]], list[bytes], list[tuple[int, list[RowError]]]]:
    """Validate rows (line, cells) for staging: (line, creditor code, reference) and the
    COPY line (of the columns `stage_columns(mapping)`) of each good row, and (line,
    errors) of each bad one."""
    keys: list[tuple[int, str | None, str]] = []
    lines: list[bytes] = []
    good, bad = validate_chunk(mapping, index, rows)
    for record in good:
        keys.append((record[0], record[2], record[1]))
        lines.append(copy_line(record))
    return keys, lines, bad
