"""The mapping of a creditor's portfolio file onto our fields, and the value parsers.

A mapping is a TOML file:

    [source]
    delimiter = ";"            # CSV; sniffed when absent
    encoding = "utf-8-sig"     # CSV
    sheet = "Pratiche"         # XLSX; the first sheet when absent
    default_region = "IT"      # for phone numbers written without a prefix
    date_format = "%d/%m/%Y"   # one format or a list of accepted formats
    decimal = ","              # "," (1.234,56) or "." (1,234.56)

    [target]
    creditor = "BANCA1"        # creditor code (or creditor_column = "...")
    portfolio = "2026-11"      # portfolio code (or portfolio_column = "...")

    [fields]                   # our field = the file's column header
    reference = "Pratica"
    last_name = "Cognome"
    first_name = "Nome"
    birth_date = { column = "Nato il", format = "%Y-%m-%d" }
    capital = "Capitale"
    phones = [{ column = "Cellulare", kind = "mobile" }, { column = "Telefono", kind = "landline" }]
    emails = ["Email"]

Field names are those of FIELDS below; only `reference` is required.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

# Our fields and their types.
TEXT, DATE, AMOUNT, CHOICE = "text", "date", "amount", "choice"
FIELDS: dict[str, str] = {
    "reference": TEXT,
    "kind": CHOICE,  # person / company (P/C, persona/azienda accepted)
    "first_name": TEXT,
    "last_name": TEXT,
    "company_name": TEXT,
    "tax_code": TEXT,
    "birth_date": DATE,
    "language": TEXT,
    "currency": TEXT,
    "debt_reference": TEXT,
    "description": TEXT,
    "capital": AMOUNT,
    "interest": AMOUNT,
    "fees": AMOUNT,
    "costs": AMOUNT,
    "due_date": DATE,
    "address_line1": TEXT,
    "address_line2": TEXT,
    "postal_code": TEXT,
    "city": TEXT,
    "region": TEXT,
    "country": TEXT,
    "guarantor_last_name": TEXT,
    "guarantor_first_name": TEXT,
    "guarantor_phone": TEXT,
}
LIST_FIELDS = ("phones", "emails")


class MappingError(ValueError):
    """The mapping file is invalid; the message names the key."""


@dataclass(frozen=True)
class Column:
    header: str
    formats: tuple[str, ...] = ()  # dates


@dataclass(frozen=True)
class PhoneColumn:
    header: str
    kind: str = "unknown"


@dataclass(frozen=True)
class PortfolioMapping:
    fields: Mapping[str, Column]
    phones: tuple[PhoneColumn, ...] = ()
    emails: tuple[str, ...] = ()
    delimiter: str | None = None
    encoding: str = "utf-8-sig"
    sheet: str | None = None
    default_region: str = "IT"
    date_formats: tuple[str, ...] = ("%Y-%m-%d", "%d/%m/%Y")
    decimal: str = "."
    creditor: str | None = None
    creditor_column: str | None = None
    portfolio: str | None = None
    portfolio_column: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def headers(self) -> set[str]:
        out = {c.header for c in self.fields.values()}
        out |= {p.header for p in self.phones}
        out |= set(self.emails)
        out |= {h for h in (self.creditor_column, self.portfolio_column) if h}
        return out


def _formats(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise MappingError(f"{where}: a date format or a list of them")


def parse_mapping(data: Mapping[str, Any], default_region: str = "IT") -> PortfolioMapping:
    source = data.get("source", {})
    target = data.get("target", {})
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, dict):
        raise MappingError("[fields] is missing")
    unknown = set(data) - {"source", "target", "fields"}
    if unknown:
        raise MappingError(f"unknown sections: {', '.join(sorted(unknown))}")
    date_formats = _formats(
        source.get("date_format", ["%Y-%m-%d", "%d/%m/%Y"]), "source.date_format"
    )
    fields: dict[str, Column] = {}
    phones: list[PhoneColumn] = []
    emails: list[str] = []
    for name, spec in raw_fields.items():
        if name == "phones":
            for item in spec if isinstance(spec, list) else [spec]:
                if isinstance(item, str):
                    phones.append(PhoneColumn(item))
                elif isinstance(item, dict) and isinstance(item.get("column"), str):
                    phones.append(PhoneColumn(item["column"], str(item.get("kind", "unknown"))))
                else:
                    raise MappingError("fields.phones: columns, or tables with column and kind")
            continue
        if name == "emails":
            items = spec if isinstance(spec, list) else [spec]
            if not all(isinstance(i, str) for i in items):
                raise MappingError("fields.emails: a column or a list of columns")
            emails.extend(items)
            continue
        if name not in FIELDS:
            raise MappingError(f"fields.{name}: unknown field; known: {', '.join(sorted(FIELDS))}")
        if isinstance(spec, str):
            fields[name] = Column(spec, date_formats if FIELDS[name] == DATE else ())
        elif isinstance(spec, dict) and isinstance(spec.get("column"), str):
            formats = (
                _formats(spec["format"], f"fields.{name}.format")
                if "format" in spec
                else date_formats
            )
            fields[name] = Column(spec["column"], formats if FIELDS[name] == DATE else ())
        else:
            raise MappingError(f"fields.{name}: a column header, or a table with column")
    if "reference" not in fields:
        raise MappingError("fields.reference is required (the creditor's case reference)")
    decimal = source.get("decimal", ".")
    if decimal not in {".", ","}:
        raise MappingError("source.decimal: '.' or ','")
    if not (target.get("creditor") or target.get("creditor_column")):
        raise MappingError("target.creditor (or target.creditor_column) is required")
    if not (target.get("portfolio") or target.get("portfolio_column")):
        raise MappingError("target.portfolio (or target.portfolio_column) is required")
    region = str(source.get("default_region", default_region))
    if len(region) != 2 or not region.isupper():
        raise MappingError("source.default_region: a country code like 'IT'")
    return PortfolioMapping(
        fields=fields,
        phones=tuple(phones),
        emails=tuple(emails),
        delimiter=source.get("delimiter"),
        encoding=str(source.get("encoding", "utf-8-sig")),
        sheet=source.get("sheet"),
        default_region=region,
        date_formats=date_formats,
        decimal=decimal,
        creditor=target.get("creditor"),
        creditor_column=target.get("creditor_column"),
        portfolio=target.get("portfolio"),
        portfolio_column=target.get("portfolio_column"),
    )


def load_mapping(path: Path, default_region: str = "IT") -> PortfolioMapping:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"mapping file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: {exc}") from None
    return parse_mapping(data, default_region)


# --- value parsers (pure, used in worker processes) ------------------------------------


def parse_amount(text: str, decimal: str) -> Decimal:
    """'1.234,56' with decimal ',' or '1,234.56' with decimal '.'; at most two decimals."""
    cleaned = (
        text.strip()
        .replace(" ", "")
        .replace("\u00a0", "")
        .replace("€", "")
        .replace("£", "")
        .replace("$", "")
    )
    if decimal == ",":
        cleaned = cleaned.replace(".", "").replace(",", ".")
    else:
        cleaned = cleaned.replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    if value < 0:
        raise ValueError(f"negative amount: {text!r}")
    return value.quantize(Decimal("0.01"))


@functools.lru_cache(maxsize=64)
def _fields_of(fmt: str) -> tuple[str, tuple[str, ...]] | None:
    """('/', ('d', 'm', 'Y')) for '%d/%m/%Y': such formats skip strptime (the import's hot
    path); anything else uses strptime."""
    match = re.fullmatch(r"%([dmY])([^%\w])%([dmY])\2%([dmY])", fmt)
    if not match or len({match.group(1), match.group(3), match.group(4)}) != 3:
        return None
    return match.group(2), (match.group(1), match.group(3), match.group(4))


def parse_date(text: str, formats: Sequence[str]) -> date:
    if isinstance(formats, tuple):
        # Pure, and files repeat dates (due dates, birth dates): parse each text once.
        return _parse_date_cached(text, formats)
    return _parse_date(text, formats)


@functools.lru_cache(maxsize=100_000)
def _parse_date_cached(text: str, formats: tuple[str, ...]) -> date:
    return _parse_date(text, formats)


def _parse_date(text: str, formats: Sequence[str]) -> date:
    value = text.strip()
    for fmt in formats:
        fast = _fields_of(fmt)
        if fast is not None:
            parts = value.split(fast[0])
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                got = dict(zip(fast[1], parts, strict=True))
                if len(got["Y"]) == 4:
                    try:
                        return date(int(got["Y"]), int(got["m"]), int(got["d"]))
                    except ValueError:
                        continue
            continue
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    # Spreadsheet date cells arrive in ISO form whatever the mapping says.
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError(f"not a date in {' or '.join(formats)}: {text!r}")
