"""`pratica import` and `pratica export`: portfolios in, case outcomes out."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from core import db
from core.identity import SYSTEM
from core.settings import Settings
from crm_bridge.exporter import ExportError, export_outcomes
from crm_bridge.importer import ImportError_, ImportRejected, ImportResult, import_portfolio
from crm_bridge.mapping import MappingError, load_mapping

SHOWN_ERRORS = 50


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import", help="import a portfolio file (CSV, XLSX, or a ZIP of them)")
    p.add_argument("file", type=Path)
    p.add_argument("--mapping", type=Path, required=True, help="TOML mapping of columns to fields")
    p.add_argument(
        "--accept-valid", action="store_true", help="import the valid rows, reject the rest"
    )
    p.add_argument(
        "--rejects", type=Path, help="where --accept-valid writes the rejected rows (CSV)"
    )
    p.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    p.add_argument("--workers", type=int, help="validation processes (default: up to 2)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write case outcomes for a creditor (CSV or XLSX)")
    p.add_argument("--creditor", help="creditor code")
    p.add_argument("--portfolio", help="portfolio code")
    p.add_argument("--format", choices=["csv", "xlsx"], help="default: from the file name")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.set_defaults(func=cmd_export)


class ProgressBar:
    """Rows, rows per second and time left, redrawn in place on a terminal only."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, rows: int, fraction: float) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        elapsed = now - self.start
        rate = rows / elapsed if elapsed > 0 else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        left = elapsed / fraction - elapsed if fraction > 0.01 else 0.0
        filled = int(fraction * 30)
        bar = "#" * filled + "-" * (30 - filled)
        sys.stderr.write(
            f"\r[{bar}] {fraction:6.1%} {rows:>10,} rows {rate:>9,.0f}/s ETA {left:5.0f}s"
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _report(result: ImportResult) -> None:
    for error in result.errors[:SHOWN_ERRORS]:
        print(f"  {error}", file=sys.stderr)
    if result.rejected > SHOWN_ERRORS:
        print(f"  ... and {result.rejected - SHOWN_ERRORS} more rejected rows", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    try:
        mapping = load_mapping(args.mapping, settings.locale.default_region)
    except MappingError as exc:
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    if args.accept_valid and args.rejects is None:
        args.rejects = args.file.with_name(args.file.stem + ".rejects.csv")
    bar = ProgressBar(sys.stderr.isatty() and not os.environ.get("PRATICA_NO_PROGRESS"))

    async def run() -> ImportResult:
        async with db.open_database(settings) as database:
            return await import_portfolio(
                database.pool, SYSTEM, args.file, mapping,
                accept_valid=args.accept_valid, rejects_path=args.rejects, dry_run=args.dry_run,
                currency=settings.locale.currency, workers=args.workers, progress=bar,
            )  # fmt: skip

    started = time.monotonic()
    try:
        result = asyncio.run(run())
    except ImportRejected as exc:
        bar.done()
        print(f"pratica: {args.file.name}: {exc}", file=sys.stderr)
        _report(exc.result)
        print("Fix the rows, or import the valid ones with --accept-valid.", file=sys.stderr)
        return 1
    except (ImportError_, MappingError) as exc:
        bar.done()
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    bar.done()
    took = time.monotonic() - started
    if args.dry_run:
        print(
            f"{args.file.name}: {result.rows} rows, {result.rejected} invalid (dry run: nothing written)"
        )
        _report(result)
        return 1 if result.rejected else 0
    print(
        f"{args.file.name}: {result.rows} rows, {result.imported} imported "
        f"({result.cases_created} new cases, {result.cases_updated} already known), "
        f"{result.rejected} rejected, in {took:.1f} s"
    )
    if result.rejected:
        _report(result)
        print(f"rejected rows written to {result.rejects_path}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("xlsx" if args.output.suffix.lower() == ".xlsx" else "csv")

    async def run() -> int:
        async with db.open_database(args.settings) as database:
            result = await export_outcomes(
                database.pool, SYSTEM, args.output, fmt, args.creditor, args.portfolio
            )
        return result.rows

    try:
        rows = asyncio.run(run())
    except ExportError as exc:
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {rows} cases to {args.output}")
    return 0
