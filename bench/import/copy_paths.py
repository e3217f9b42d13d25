"""What writing a table costs the database, staged as the importer does it or copied
straight in: backend CPU per row for phones and cases, into the real schema (its indexes,
per-row triggers off as the import runs them).

- staged: COPY (text) into a temporary staging table, then INSERT ... SELECT, as
  `crm_bridge.importer` writes new cases today;
- COPY text / COPY binary: the rows copied straight into the table, ids given.

    .venv/bin/python -m bench.import.copy_paths [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from bench.cpu import process_cpu
from bench.postgres import private_postgres
from core import db

ZONE = "Europe/Rome"
PHONE_COLUMNS = ["debtor_id", "e164", "kind", "source", "time_zones", "position"]
CASE_COLUMNS = [
    "id",
    "creditor_id",
    "portfolio_id",
    "debtor_id",
    "reference",
    "currency",
    "total_due",
]


async def _text(lines: list[str]) -> AsyncIterator[bytes]:
    for start in range(0, len(lines), 10_000):
        yield "".join(lines[start : start + 10_000]).encode()


# Fixed statements per table measured (no SQL is built from values).
_EMPTY = {"phones": "TRUNCATE phones CASCADE", "cases": "TRUNCATE cases CASCADE"}
_COUNT = {"phones": "SELECT count(*) FROM phones", "cases": "SELECT count(*) FROM cases"}


async def _measured(
    conn: asyncpg.Connection, table: str, write: Callable[[], Awaitable[None]]
) -> tuple[float, int, float]:
    await conn.execute(_EMPTY[table])
    await conn.execute("CHECKPOINT")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu0, t0 = process_cpu(pid), time.perf_counter()
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await write()
    cpu, wall = process_cpu(pid) - cpu0, time.perf_counter() - t0
    return cpu, await conn.fetchval(_COUNT[table]), wall


async def run(url: str, rows: int) -> None:
    conn = await db.connect(url)
    await db.migrate(conn)
    await conn.execute("SET session_replication_role = replica")  # no debtors needed
    creditor = await conn.fetchval(
        "INSERT INTO creditors (code, name) VALUES ('B', 'B') RETURNING id"
    )
    portfolio = await conn.fetchval(
        "INSERT INTO portfolios (creditor_id, code, name) VALUES ($1, 'P', 'P') RETURNING id",
        creditor,
    )
    phones = [
        (i + 1, e164, kind, "import", [ZONE], position)
        for i in range(rows)
        for position, (e164, kind) in enumerate(
            ((f"+3933{i:08d}", "mobile"), (f"+39020{i:07d}", "landline"))
        )
    ]
    cases = [(i + 1, creditor, portfolio, i + 1, f"R{i:08d}", "EUR", 1234.56) for i in range(rows)]

    def phone_lines() -> list[str]:
        return [f"{d}\t{e}\t{k}\t{s}\t{{{z[0]}}}\t{p}\n" for d, e, k, s, z, p in phones]

    def case_lines() -> list[str]:
        return [f"{i}\t{c}\t{p}\t{d}\t{r}\t{cur}\t{t}\n" for i, c, p, d, r, cur, t in cases]

    async def staged_phones() -> None:
        await conn.execute(
            "CREATE TEMPORARY TABLE st (debtor_id bigint, phones text[], kinds text[], "
            "zones text[]) ON COMMIT DROP"
        )
        lines = [
            f'{i + 1}\t{{"+3933{i:08d}","+39020{i:07d}"}}\t{{"mobile","landline"}}\t{{"{ZONE}","{ZONE}"}}\n'
            for i in range(rows)
        ]
        await conn.copy_to_table("st", source=_text(lines))
        await conn.execute(
            "INSERT INTO phones (debtor_id, e164, kind, source, time_zones, position) "
            "SELECT s.debtor_id, p.e164, p.kind, 'import', string_to_array(p.zones, '|'), p.ord - 1 "
            "FROM st s, unnest(s.phones, s.kinds, s.zones) WITH ORDINALITY AS p(e164, kind, zones, ord)"
        )

    async def staged_cases() -> None:
        await conn.execute(
            "CREATE TEMPORARY TABLE sc (case_id bigint, debtor_id bigint, reference text, "
            "creditor_code text, portfolio_code text, capital numeric(14,2)) ON COMMIT DROP"
        )
        lines = [f"{i + 1}\t{i + 1}\tR{i:08d}\tB\tP\t1234.56\n" for i in range(rows)]
        await conn.copy_to_table("sc", source=_text(lines))
        await conn.execute(
            "INSERT INTO cases (id, creditor_id, portfolio_id, debtor_id, reference, currency, total_due) "
            "SELECT s.case_id, cr.id, p.id, s.debtor_id, s.reference, 'EUR', s.capital "
            "FROM sc s JOIN creditors cr ON cr.code = s.creditor_code "
            "JOIN portfolios p ON p.creditor_id = cr.id AND p.code = s.portfolio_code"
        )

    paths: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        ("phones", "staged + INSERT ... SELECT", staged_phones),
        ("phones", "COPY text", lambda: conn.copy_to_table("phones", source=_text(phone_lines()), columns=PHONE_COLUMNS)),
        ("phones", "COPY binary", lambda: conn.copy_records_to_table("phones", records=phones, columns=PHONE_COLUMNS)),
        ("cases", "staged + INSERT ... SELECT", staged_cases),
        ("cases", "COPY text", lambda: conn.copy_to_table("cases", source=_text(case_lines()), columns=CASE_COLUMNS)),
        ("cases", "COPY binary", lambda: conn.copy_records_to_table("cases", records=cases, columns=CASE_COLUMNS)),
    ]  # fmt: skip
    print("| table | path | rows | backend CPU s | µs per row | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for table, label, write in paths:
        cpu, count, wall = await _measured(conn, table, write)
        print(
            f"| {table} | {label} | {count:,} | {cpu:.2f} | {cpu / count * 1e6:.1f} | {wall:.1f} |"
        )
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000, help="cases (two phones each)")
    args = parser.parse_args()
    with private_postgres(fast=False) as (url, _datadir):  # fsync on, as the import runs
        asyncio.run(run(url, args.rows))


if __name__ == "__main__":
    main()
