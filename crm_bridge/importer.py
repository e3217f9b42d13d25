"""Portfolio import: a creditor's CSV, XLSX or ZIP of them into cases, in one transaction.

Rows are read as a stream, validated in worker processes (phone normalization is the
costly part), and copied into a temporary staging table; set-based statements then
create debtors, cases, debts, phones, emails and addresses batch by batch, and update
the cases already known at the end, just before the commit (so their rows, which a
dialer also updates, are locked for as short a time as possible). Re-importing a file is
idempotent: cases are keyed by (creditor, the creditor's case reference), debts by
(case, debt reference), phones by (debtor, number), and only what changed is written.
A file with any bad row imports nothing unless `accept_valid` is set, in which case the
valid rows are imported and every rejected row is written, with its line and reasons,
to a rejects file.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg

from core import audit
from core.identity import Actor, Role
from core.tasks import cancel_and_wait
from crm_bridge.import_rows import STAGE_FIELDS, RowError, stage_chunk, stage_columns
from crm_bridge.import_sources import ImportError_, Source, open_sources
from crm_bridge.mapping import MappingError, PortfolioMapping

CHUNK = 2000
# Rows staged and applied at a time: the database applies one batch while the workers
# validate the next, and memory stays bounded whatever the file's size.
BATCH = 50_000
MAX_KEPT_ERRORS = 10_000

Progress = Callable[[int, float], None]  # rows read, fraction of input read (0..1)


@dataclass
class ImportResult:
    file_name: str
    sha256: str
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    cases_created: int = 0
    cases_updated: int = 0  # cases already known (each updated where the file changes it)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    committed: bool = False
    batch_id: int | None = None
    rejects_path: Path | None = None


class ImportRejected(Exception):
    """The file has bad rows and `accept_valid` was not given: nothing was imported."""

    def __init__(self, result: ImportResult):
        super().__init__(f"{result.rejected} of {result.rows} rows are invalid; nothing imported")
        self.result = result


# --- staging and applying -------------------------------------------------------------------

_STAGE_TYPES = {
    "line": "integer", "birth_date": "date", "due_date": "date", "capital": "numeric(14,2)",
    "interest": "numeric(14,2)", "fees": "numeric(14,2)", "costs": "numeric(14,2)",
    "phones": "text[]", "phone_kinds": "text[]", "phone_zones": "text[]", "emails": "text[]",
}  # fmt: skip

# Applying a staged batch: ids first, then the statements for new cases, then those for
# cases already known (a batch runs only the group it has rows for).
_RESOLVE = [
    # Creditors and portfolios named in the file (the mapping may fix them).
    """INSERT INTO creditors (code, name)
       SELECT DISTINCT creditor_code, creditor_code FROM import_stage ON CONFLICT (code) DO NOTHING""",
    """INSERT INTO portfolios (creditor_id, code, name)
       SELECT DISTINCT cr.id, s.portfolio_code, s.portfolio_code FROM import_stage s
       JOIN creditors cr ON cr.code = s.creditor_code ON CONFLICT (creditor_id, code) DO NOTHING""",
    # Cases already known keep their ids and debtor; new ones keep the fresh ids drawn
    # when they were staged. New rows take the plain INSERT path below (nothing can
    # conflict), known ones are updated. Creditor and portfolio ids are joined in where
    # needed rather than written into every staged row.
    """UPDATE import_stage s SET case_id = c.id, debtor_id = c.debtor_id, is_new = false
       FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
       WHERE cr.code = s.creditor_code AND c.reference = s.reference""",
]

_NEW = [
    """INSERT INTO debtors (id, kind, first_name, last_name, company_name, tax_code, birth_date, language)
       SELECT debtor_id, kind, first_name, last_name, company_name, tax_code, birth_date, language
       FROM import_stage WHERE is_new""",
    """INSERT INTO cases (id, creditor_id, portfolio_id, debtor_id, reference, currency, total_due)
       SELECT s.case_id, cr.id, p.id, s.debtor_id, s.reference, COALESCE(s.currency, $1),
              COALESCE(s.capital, 0) + COALESCE(s.interest, 0) + COALESCE(s.fees, 0)
              + COALESCE(s.costs, 0)
       FROM import_stage s JOIN creditors cr ON cr.code = s.creditor_code
       JOIN portfolios p ON p.creditor_id = cr.id AND p.code = s.portfolio_code
       WHERE s.is_new""",
    # One debt per row, keyed by its reference (the case reference when the file has none).
    """INSERT INTO debts (case_id, reference, description, capital, interest, fees, costs, due_date)
       SELECT case_id, COALESCE(debt_reference, reference), description, COALESCE(capital, 0),
              COALESCE(interest, 0), COALESCE(fees, 0), COALESCE(costs, 0), due_date
       FROM import_stage
       WHERE is_new AND (capital IS NOT NULL OR interest IS NOT NULL OR fees IS NOT NULL
                         OR costs IS NOT NULL)""",
    # Phones: the file's numbers in its order.
    """INSERT INTO phones (debtor_id, e164, kind, source, time_zones, position)
       SELECT s.debtor_id, p.e164, p.kind, 'import', string_to_array(p.zones, '|'), p.ord - 1
       FROM import_stage s,
            unnest(s.phones, s.phone_kinds, s.phone_zones) WITH ORDINALITY AS p(e164, kind, zones, ord)
       WHERE s.is_new""",
    """INSERT INTO emails (debtor_id, address)
       SELECT s.debtor_id, e.address FROM import_stage s, unnest(s.emails) AS e(address) WHERE s.is_new""",
    """INSERT INTO addresses (debtor_id, kind, line1, line2, postal_code, city, region, country)
       SELECT debtor_id, 'residence', address_line1, address_line2, postal_code, city, region, country
       FROM import_stage WHERE is_new AND address_line1 IS NOT NULL""",
]

# The rows _NEW writes reference only the debtors and cases it has just inserted from the
# same staged rows, and the creditors and portfolios joined in (locked below, as the
# foreign-key checks would lock them). Where the session may, those statements run with
# per-row triggers off (`session_replication_role = replica`, as pg_restore loads data):
# PostgreSQL's per-row foreign-key checks are about a third of the database's work in an
# import, and here they cannot fail. `_apply_batch` verifies what makes that true: every
# new row got its debtor and its case. The tables written have no triggers of their own
# (a test fails if a migration adds one).
TRUSTED_TABLES = ("debtors", "cases", "debts", "phones", "emails", "addresses")
_LOCK_PARENTS = """
SELECT 1 FROM creditors cr JOIN portfolios p ON p.creditor_id = cr.id
WHERE (cr.code, p.code) IN (SELECT DISTINCT creditor_code, portfolio_code FROM import_stage)
FOR KEY SHARE OF cr, p
"""

# Cases already known: applied after every new case, just before the commit, so that the
# rows they lock (a dialer updates cases and phones as it calls) stay locked for seconds,
# not for the whole import. Only what the file changes is written: re-importing an
# unchanged file locks and rewrites nothing. (The inserts skip what exists before they
# try: an index probe per row is cheaper than a refused speculative insertion.)
_KNOWN = [
    """UPDATE debtors d SET kind = s.kind, first_name = s.first_name, last_name = s.last_name,
           company_name = s.company_name, tax_code = COALESCE(s.tax_code, d.tax_code),
           birth_date = COALESCE(s.birth_date, d.birth_date),
           language = COALESCE(s.language, d.language), updated_at = now()
       FROM import_stage s WHERE d.id = s.debtor_id AND NOT s.is_new
         AND (d.kind, d.first_name, d.last_name, d.company_name, d.tax_code, d.birth_date, d.language)
             IS DISTINCT FROM (s.kind, s.first_name, s.last_name, s.company_name,
                               COALESCE(s.tax_code, d.tax_code), COALESCE(s.birth_date, d.birth_date),
                               COALESCE(s.language, d.language))""",
    # One debt per row, keyed by its reference (the case reference when the file has none).
    """UPDATE debts t SET description = s.description, capital = COALESCE(s.capital, 0),
           interest = COALESCE(s.interest, 0), fees = COALESCE(s.fees, 0),
           costs = COALESCE(s.costs, 0), due_date = s.due_date
       FROM import_stage s
       WHERE t.case_id = s.case_id AND t.reference = COALESCE(s.debt_reference, s.reference)
         AND NOT s.is_new AND (s.capital IS NOT NULL OR s.interest IS NOT NULL
                               OR s.fees IS NOT NULL OR s.costs IS NOT NULL)
         AND (t.description, t.capital, t.interest, t.fees, t.costs, t.due_date)
             IS DISTINCT FROM (s.description, COALESCE(s.capital, 0), COALESCE(s.interest, 0),
                               COALESCE(s.fees, 0), COALESCE(s.costs, 0), s.due_date)""",
    """INSERT INTO debts (case_id, reference, description, capital, interest, fees, costs, due_date)
       SELECT case_id, COALESCE(debt_reference, reference), description, COALESCE(capital, 0),
              COALESCE(interest, 0), COALESCE(fees, 0), COALESCE(costs, 0), due_date
       FROM import_stage s
       WHERE NOT is_new AND (capital IS NOT NULL OR interest IS NOT NULL OR fees IS NOT NULL
                             OR costs IS NOT NULL)
         AND NOT EXISTS (SELECT 1 FROM debts t WHERE t.case_id = s.case_id
                         AND t.reference = COALESCE(s.debt_reference, s.reference))
       ON CONFLICT (case_id, reference) WHERE reference IS NOT NULL DO NOTHING""",
    """UPDATE cases c SET currency = n.currency, total_due = n.total_due, updated_at = now()
       FROM (SELECT s.case_id, COALESCE(s.currency, k.currency) AS currency,
                    COALESCE((SELECT sum(total) FROM debts WHERE case_id = s.case_id), 0) AS total_due
             FROM import_stage s JOIN cases k ON k.id = s.case_id WHERE NOT s.is_new) n
       WHERE c.id = n.case_id AND (c.currency, c.total_due) IS DISTINCT FROM (n.currency, n.total_due)""",
    # Phones: the file's numbers in its order; numbers from other sources are kept.
    """UPDATE phones t SET kind = p.kind, time_zones = string_to_array(p.zones, '|'),
           position = p.ord - 1
       FROM import_stage s,
            unnest(s.phones, s.phone_kinds, s.phone_zones) WITH ORDINALITY AS p(e164, kind, zones, ord)
       WHERE NOT s.is_new AND t.debtor_id = s.debtor_id AND t.e164 = p.e164
         AND (t.kind, t.time_zones, t.position)
             IS DISTINCT FROM (p.kind, string_to_array(p.zones, '|'), (p.ord - 1)::integer)""",
    """INSERT INTO phones (debtor_id, e164, kind, source, time_zones, position)
       SELECT s.debtor_id, p.e164, p.kind, 'import', string_to_array(p.zones, '|'), p.ord - 1
       FROM import_stage s,
            unnest(s.phones, s.phone_kinds, s.phone_zones) WITH ORDINALITY AS p(e164, kind, zones, ord)
       WHERE NOT s.is_new
         AND NOT EXISTS (SELECT 1 FROM phones t WHERE t.debtor_id = s.debtor_id AND t.e164 = p.e164)
       ON CONFLICT (debtor_id, e164) DO NOTHING""",
    """INSERT INTO emails (debtor_id, address)
       SELECT s.debtor_id, e.address FROM import_stage s, unnest(s.emails) AS e(address)
       WHERE NOT s.is_new
         AND NOT EXISTS (SELECT 1 FROM emails t
                         WHERE t.debtor_id = s.debtor_id AND lower(t.address) = lower(e.address))
       ON CONFLICT (debtor_id, lower(address)) DO NOTHING""",
    # The file's residence address replaces the one it gave last time, if it differs.
    """DELETE FROM addresses a USING import_stage s
       WHERE a.debtor_id = s.debtor_id AND a.kind = 'residence' AND s.address_line1 IS NOT NULL
         AND NOT s.is_new
         AND (a.line1, a.line2, a.postal_code, a.city, a.region, a.country::text)
             IS DISTINCT FROM (s.address_line1, s.address_line2, s.postal_code, s.city, s.region,
                               s.country)""",
    """INSERT INTO addresses (debtor_id, kind, line1, line2, postal_code, city, region, country)
       SELECT debtor_id, 'residence', address_line1, address_line2, postal_code, city, region, country
       FROM import_stage s WHERE NOT is_new AND address_line1 IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM addresses a
                         WHERE a.debtor_id = s.debtor_id AND a.kind = 'residence')""",
]


_GUARANTORS = """
SELECT s.case_id, s.guarantor_last_name, s.guarantor_first_name, s.guarantor_phone, s.guarantor_zones,
       (SELECT dl.debtor_id FROM debtor_links dl
        WHERE dl.case_id = s.case_id AND dl.relation = 'guarantor' LIMIT 1) AS existing
FROM import_stage s WHERE s.guarantor_last_name IS NOT NULL AND s.is_new = $1
"""


async def _apply_guarantors(conn: asyncpg.Connection, new: bool) -> None:
    """Guarantors (of the new cases, or of the known ones) are few: linked row by row."""
    for g in await conn.fetch(_GUARANTORS, new):
        debtor_id = g["existing"]
        if debtor_id is None:
            debtor_id = await conn.fetchval(
                "INSERT INTO debtors (kind, first_name, last_name) VALUES ('person', $1, $2) RETURNING id",
                g["guarantor_first_name"],
                g["guarantor_last_name"],
            )
            await conn.execute(
                "INSERT INTO debtor_links (case_id, debtor_id, relation) VALUES ($1, $2, 'guarantor')",
                g["case_id"],
                debtor_id,
            )
        else:
            await conn.execute(
                "UPDATE debtors SET first_name = $2, last_name = $3, updated_at = now() "
                "WHERE id = $1 AND (first_name, last_name) IS DISTINCT FROM ($2, $3)",
                debtor_id,
                g["guarantor_first_name"],
                g["guarantor_last_name"],
            )
        if g["guarantor_phone"]:
            await conn.execute(
                "INSERT INTO phones (debtor_id, e164, source, time_zones) VALUES ($1, $2, 'import', "
                "string_to_array($3, '|')) ON CONFLICT (debtor_id, e164) DO NOTHING",
                debtor_id,
                g["guarantor_phone"],
                g["guarantor_zones"] or "",
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Staged = tuple[list[tuple[int, str | None, str]], list[bytes], list[tuple[int, list[RowError]]]]


async def _validated(
    source: Source,
    mapping: PortfolioMapping,
    executor: Executor | None,
    workers: int,
) -> AsyncIterator[tuple[Staged, dict[int, list[str]]]]:
    """Chunks of ((line, creditor, reference) keys and COPY lines of the good rows, bad
    lines with their errors), and the raw cells of the bad lines."""
    missing = sorted(mapping.headers() - set(source.header))
    if missing:
        raise ImportError_(
            f"{source.name}: columns named in the mapping are missing: {', '.join(missing)}; "
            f"the file has: {', '.join(h for h in source.header if h)}"
        )
    index = {h: i for i, h in enumerate(source.header) if h}
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future[Staged], list[tuple[int, list[str]]]]] = []

    def chunks() -> Iterator[list[tuple[int, list[str]]]]:
        chunk: list[tuple[int, list[str]]] = []
        for row in source.rows:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    for chunk in chunks():
        if executor is None:
            staged = stage_chunk(mapping, index, chunk)
            yield staged, _raw_of(chunk, staged[2])
            continue
        pending.append((loop.run_in_executor(executor, stage_chunk, mapping, index, chunk), chunk))
        # Enough chunks in flight that the workers stay busy while this process waits
        # for the database to take a batch.
        if len(pending) >= workers * 4:
            future, raw = pending.pop(0)
            staged = await future
            yield staged, _raw_of(raw, staged[2])
    for future, raw in pending:
        staged = await future
        yield staged, _raw_of(raw, staged[2])


def _raw_of(
    chunk: Sequence[tuple[int, list[str]]], bad: Sequence[tuple[int, list[RowError]]]
) -> dict[int, list[str]]:
    if not bad:
        return {}
    lines = {line for line, _ in bad}
    return {line: cells for line, cells in chunk if line in lines}


async def import_portfolio(
    pool: asyncpg.Pool,
    actor: Actor,
    path: Path,
    mapping: PortfolioMapping,
    *,
    accept_valid: bool = False,
    rejects_path: Path | None = None,
    dry_run: bool = False,
    currency: str = "EUR",
    workers: int | None = None,
    progress: Progress | None = None,
    batch_rows: int = BATCH,
    skip_row_triggers: bool = True,
) -> ImportResult:
    """Import `path`; raises ImportRejected (nothing written) when rows are bad and
    `accept_valid` is false, ImportError_ when the file cannot be read at all.

    Rows are applied `batch_rows` at a time, all in one transaction. New cases are
    written without per-row foreign-key triggers when the session may
    (`skip_row_triggers`, see TRUSTED_TABLES); the result is the same either way."""
    actor.require(Role.MANAGER, "importing portfolios")
    if not path.exists():
        raise ImportError_(f"file not found: {path}")
    result = ImportResult(path.name, _sha256(path))
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    big = path.stat().st_size > 512 * 1024
    executor: Executor | None = (
        ProcessPoolExecutor(max_workers=workers) if big and workers > 1 else None
    )
    rejects: Any = None
    rejects_file: IO[str] | None = None
    seen_references: set[tuple[str | None, str]] = set()
    try:
        async with pool.acquire() as conn, conn.transaction():
            # The statements below are simple set-based DML over large inputs: JIT
            # compilation (on by default, triggered by their cost) costs more than it saves.
            await conn.execute("SET LOCAL jit = off")
            trusted = skip_row_triggers and await may_skip_row_triggers(conn)
            staged = list(stage_columns(mapping))
            columns = ", ".join(f"{name} {_STAGE_TYPES.get(name, 'text')}" for name in STAGE_FIELDS)
            await conn.execute(
                # New ids are drawn as the rows are copied in; a known case's row takes
                # its case's ids instead (the values drawn for it are left unused).
                f"CREATE TEMPORARY TABLE import_stage ({columns}, "
                "case_id bigint DEFAULT nextval('cases_id_seq'), "
                "debtor_id bigint DEFAULT nextval('debtors_id_seq'), "
                "is_new boolean NOT NULL DEFAULT true) ON COMMIT DROP"
            )
            await conn.execute(
                "CREATE TEMPORARY TABLE import_known (LIKE import_stage) ON COMMIT DROP"
            )
            # Validation (in the workers) and applying (in the database) overlap: this
            # hands batches of COPY lines to `apply_batches` through a one-slot queue.
            batches: asyncio.Queue[list[bytes] | None] = asyncio.Queue(maxsize=1)

            async def apply_batches() -> None:
                while (batch := await batches.get()) is not None:
                    if result.rejected and not accept_valid:
                        continue  # the transaction will be rolled back: spare the work
                    await conn.copy_to_table("import_stage", source=_blocks(batch), columns=staged)
                    if not dry_run:
                        await _apply_batch(conn, currency, result, trusted)
                    await conn.execute("TRUNCATE import_stage")

            applier = asyncio.ensure_future(apply_batches())

            async def hand_over(batch: list[bytes] | None) -> None:
                put = asyncio.ensure_future(batches.put(batch))
                await asyncio.wait({put, applier}, return_when=asyncio.FIRST_COMPLETED)
                if not put.done():
                    put.cancel()
                    applier.result()  # the applier failed: raise its error here

            try:
                batch: list[bytes] = []
                pending_rows = 0
                for source in open_sources(path, mapping):
                    async for (keys, lines, bad), raw in _validated(
                        source, mapping, executor, workers
                    ):
                        result.rows += len(keys) + len(bad)
                        for line, errors in bad:
                            result.rejected += 1
                            if len(result.errors) < MAX_KEPT_ERRORS:
                                result.errors.extend(_located(errors, source.name, path.name))
                            if accept_valid and rejects_path is not None:
                                if rejects is None:
                                    rejects_file = rejects_path.open(
                                        "w", newline="", encoding="utf-8"
                                    )
                                    rejects = csv.writer(rejects_file)
                                    rejects.writerow(["source", "line", "errors", *source.header])
                                rejects.writerow(
                                    [
                                        source.name,
                                        line,
                                        "; ".join(f"{e.column}: {e.reason}" for e in errors),
                                        *raw[line],
                                    ]
                                )
                        kept: list[bytes] = []
                        for (line, creditor, reference), copy_line in zip(keys, lines, strict=True):
                            key = (creditor, reference)
                            if key in seen_references:
                                result.rejected += 1
                                error = RowError(
                                    line,
                                    mapping.fields["reference"].header,
                                    f"case reference {reference!r} appears twice in the file",
                                )
                                if len(result.errors) < MAX_KEPT_ERRORS:
                                    result.errors.extend(_located([error], source.name, path.name))
                                continue
                            seen_references.add(key)
                            result.imported += 1
                            kept.append(copy_line)
                        if kept:
                            batch.append(b"".join(kept))
                            pending_rows += len(kept)
                        if pending_rows >= batch_rows:
                            await hand_over(batch)
                            batch, pending_rows = [], 0
                        if progress is not None:
                            progress(result.rows, source.fraction())
                if batch:
                    await hand_over(batch)
                await hand_over(None)
                await applier
            finally:
                if not applier.done():
                    await cancel_and_wait(applier)
            if result.rejected and not accept_valid:
                result.imported = 0
                raise ImportRejected(result)
            if dry_run:
                raise _DryRun()
            if result.cases_updated:
                await _apply_known(conn)
            result.batch_id = await conn.fetchval(
                "INSERT INTO import_batches (file_name, sha256, rows_total, rows_imported, rows_rejected, "
                "cases_created, cases_updated, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                result.file_name,
                result.sha256,
                result.rows,
                result.imported,
                result.rejected,
                result.cases_created,
                result.cases_updated,
                actor.label,
            )
            await audit.record(
                conn, actor, "portfolio.import", "import_batch", result.batch_id,
                after={"file": result.file_name, "sha256": result.sha256, "rows": result.rows,
                       "imported": result.imported, "rejected": result.rejected,
                       "created": result.cases_created, "updated": result.cases_updated},
            )  # fmt: skip
        result.committed = True
    except _DryRun:
        pass
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        if rejects_file is not None:
            rejects_file.close()
            result.rejects_path = rejects_path
    return result


async def _blocks(batch: list[bytes]) -> AsyncIterator[bytes]:
    for block in batch:
        yield block


async def may_skip_row_triggers(conn: asyncpg.Connection) -> bool:
    """Whether this session may set `session_replication_role` (a superuser, or on
    PostgreSQL 15+ a role granted SET on it). Must run inside a transaction."""
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the import intact
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("SET LOCAL session_replication_role = origin")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])  # "INSERT 0 n"


async def _apply_batch(
    conn: asyncpg.Connection, currency: str, result: ImportResult, trusted: bool = False
) -> None:
    """Create the new cases the staged rows describe, with all they hold, and set the
    known ones aside for `_apply_known`."""
    for statement in _RESOLVE:
        await conn.execute(statement)
    counts = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE is_new) AS created, count(*) FILTER (WHERE NOT is_new) AS updated "
        "FROM import_stage"
    )
    created = counts["created"]
    if created:
        if trusted:
            await conn.execute(_LOCK_PARENTS)
            await conn.execute("SET LOCAL session_replication_role = replica")
        for i, statement in enumerate(_NEW):
            args = (currency,) if "$1" in statement else ()
            written = _count(await conn.execute(statement, *args))
            # Debtors, then cases: every new row must have both before anything refers
            # to them (with the triggers off, nothing else would notice).
            if i < 2 and written != created:
                table = ("debtors", "cases")[i]
                raise RuntimeError(f"import: {written} of {created} new rows written to {table}")
        if trusted:
            await conn.execute("SET LOCAL session_replication_role = origin")
    await _apply_guarantors(conn, new=True)
    if counts["updated"]:
        await conn.execute("INSERT INTO import_known SELECT * FROM import_stage WHERE NOT is_new")
    result.cases_created += counts["created"]
    result.cases_updated += counts["updated"]


async def _apply_known(conn: asyncpg.Connection) -> None:
    """Update the known cases set aside by every batch, in case order."""
    await conn.execute("TRUNCATE import_stage")
    await conn.execute("INSERT INTO import_stage SELECT * FROM import_known ORDER BY case_id")
    for statement in _KNOWN:
        await conn.execute(statement)
    await _apply_guarantors(conn, new=False)


class _DryRun(Exception):
    """Rolls the import back after validation and staging."""


def _located(errors: Sequence[RowError], source: str, file_name: str) -> list[RowError]:
    if source == file_name:
        return list(errors)
    return [RowError(e.line, f"{source}: {e.column}", e.reason) for e in errors]


__all__ = [
    "ImportError_",
    "ImportRejected",
    "ImportResult",
    "MappingError",
    "import_portfolio",
]
