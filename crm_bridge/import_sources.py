"""Reading portfolio files as streams of rows: CSV (encoding and delimiter from the
mapping, or sniffed), XLSX (read-only, cells typed back to text), and ZIPs of them."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from crm_bridge.mapping import PortfolioMapping

_SUFFIXES = (".csv", ".txt", ".xlsx")


class ImportError_(ValueError):
    """The file cannot be imported at all (unreadable, wrong columns); no row is written."""


class _Counting(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


@dataclass
class Source:
    name: str
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    fraction: Callable[[], float]


def _csv_source(name: str, raw: IO[bytes], size: int, mapping: PortfolioMapping) -> Source:
    counting = _Counting(raw)
    buffered = io.BufferedReader(counting, 1 << 16)
    delimiter = mapping.delimiter
    if delimiter is None:
        # Sniff on a peek at the first block, without consuming it.
        sample = buffered.peek(1 << 16)[: 1 << 16].decode(mapping.encoding, errors="ignore")
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter
        except csv.Error:
            delimiter = ","
    text = io.TextIOWrapper(buffered, encoding=mapping.encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportError_(f"{name}: the file is empty") from None
    except UnicodeDecodeError:
        raise ImportError_(
            f"{name}: not {mapping.encoding} text; set source.encoding in the mapping"
        ) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield reader.line_num, cells
        except UnicodeDecodeError as exc:
            raise ImportError_(
                f"{name}: not {mapping.encoding} text near line {reader.line_num}: {exc}"
            ) from None
        except csv.Error as exc:
            raise ImportError_(
                f"{name}: malformed CSV near line {reader.line_num}: {exc}"
            ) from None

    return Source(name, header, rows(), lambda: counting.count / size if size else 1.0)


def _xlsx_source(name: str, raw: IO[bytes], mapping: PortfolioMapping) -> Source:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(raw, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportError_(f"{name}: not a readable XLSX workbook ({exc})") from None
    if mapping.sheet is not None and mapping.sheet not in workbook.sheetnames:
        raise ImportError_(
            f"{name}: no sheet {mapping.sheet!r}; sheets: {', '.join(workbook.sheetnames)}"
        )
    sheet = workbook[mapping.sheet] if mapping.sheet else workbook.worksheets[0]
    total = sheet.max_row or 1
    it = sheet.iter_rows(values_only=True)
    try:
        header = [str(h).strip() if h is not None else "" for h in next(it)]
    except StopIteration:
        raise ImportError_(f"{name}: the sheet is empty") from None
    state = {"line": 1}

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = str(Decimal(repr(value)))
            return number.replace(".", ",") if mapping.decimal == "," else number
        return str(value)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for values in it:
            state["line"] += 1
            cells = [text(v) for v in values]
            if any(c.strip() for c in cells):
                yield state["line"], cells

    return Source(name, header, rows(), lambda: state["line"] / total)


def open_sources(path: Path, mapping: PortfolioMapping) -> Iterator[Source]:
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.infolist()
                if m.filename.lower().endswith(_SUFFIXES) and not m.is_dir()
            ]
            if not members:
                raise ImportError_(f"{path.name}: no CSV or XLSX file inside")
            for member in sorted(members, key=lambda m: m.filename):
                with archive.open(member) as raw:
                    if member.filename.lower().endswith(".xlsx"):
                        yield _xlsx_source(member.filename, io.BytesIO(raw.read()), mapping)
                    else:
                        yield _csv_source(member.filename, raw, member.file_size, mapping)
        return
    if suffix == ".xlsx":
        with path.open("rb") as raw:
            yield _xlsx_source(path.name, raw, mapping)
        return
    with path.open("rb") as raw:
        yield _csv_source(path.name, raw, path.stat().st_size, mapping)
