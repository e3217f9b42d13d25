"""Re-importing: an unchanged file rewrites nothing, a changed one only what changed, and
known cases are locked only at the end of the import, not while its new cases load (a
dialer updates cases and phones while it calls). Real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from core.identity import SYSTEM
from crm_bridge.importer import import_portfolio
from crm_bridge.mapping import load_mapping
from tests.crm_bridge.test_import_batches import HEADER, _row

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
MAPPING = load_mapping(FIXTURES / "mapping.toml")
TABLES = ("debtors", "cases", "debts", "phones", "emails", "addresses", "debtor_links")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


async def _versions(pool: asyncpg.Pool) -> dict[str, dict[int, str]]:
    """Each row's xmin: the transaction that last wrote it."""
    versions: dict[str, dict[int, str]] = {}
    async with pool.acquire() as conn:
        for table in TABLES:  # names from the list above, not input
            query = f"SELECT id, xmin::text FROM {table}"  # noqa: S608
            versions[table] = {r["id"]: r["xmin"] for r in await conn.fetch(query)}
    return versions


async def test_an_unchanged_file_rewrites_nothing_and_a_change_only_its_rows(
    pool, tmp_path
) -> None:
    lines = [_row(n) for n in range(400)]  # with guarantors on rows 7
    first = await import_portfolio(pool, SYSTEM, _write(tmp_path / "a.csv", lines), MAPPING)
    assert first.cases_created == 400
    before = await _versions(pool)

    again = await import_portfolio(pool, SYSTEM, _write(tmp_path / "b.csv", lines), MAPPING)
    assert (again.committed, again.cases_created, again.cases_updated) == (True, 0, 400)
    assert await _versions(pool) == before

    # Row 10: another capital; row 20: the two phones swapped and another street.
    changed = list(lines)
    changed[10] = _row(10, capital="5.000,00")
    cells = changed[20].split(";")
    cells[14], cells[15] = cells[15], cells[14]
    cells[10] = "Via Milano 1"
    changed[20] = ";".join(cells)
    await import_portfolio(pool, SYSTEM, _write(tmp_path / "c.csv", changed), MAPPING)
    after = await _versions(pool)
    async with pool.acquire() as conn:
        ids = {
            r["reference"]: (r["id"], r["debtor_id"])
            for r in await conn.fetch("SELECT id, debtor_id, reference FROM cases")
        }
        debt_of = {r["case_id"]: r["id"] for r in await conn.fetch("SELECT id, case_id FROM debts")}
        phones_of = await conn.fetch(
            "SELECT id, e164, position FROM phones WHERE debtor_id = $1 ORDER BY position",
            ids["B-00020"][1],
        )
        street = await conn.fetchval(
            "SELECT line1 FROM addresses WHERE debtor_id = $1", ids["B-00020"][1]
        )
        total = await conn.fetchval("SELECT total_due FROM cases WHERE reference = 'B-00010'")
    assert str(total) == f"{5000 + 10 % 97}.00"
    assert [p["e164"] for p in phones_of] == ["+3906" + str(10000020), "+39330" + str(1000020)]
    assert street == "Via Milano 1"
    rewritten = {
        table: {i for i, v in after[table].items() if before[table].get(i) != v} for table in TABLES
    }
    assert rewritten["cases"] == {ids["B-00010"][0]}
    assert rewritten["debts"] == {debt_of[ids["B-00010"][0]]}
    assert rewritten["phones"] == {p["id"] for p in phones_of}
    assert len(rewritten["addresses"]) == 1  # the new residence address (the old one deleted)
    assert len(after["addresses"]) == len(before["addresses"])
    assert rewritten["debtors"] == rewritten["emails"] == rewritten["debtor_links"] == set()


async def test_known_cases_stay_unlocked_while_the_new_ones_load(pool, tmp_path) -> None:
    await import_portfolio(
        pool, SYSTEM, _write(tmp_path / "a.csv", [_row(n) for n in range(300)]), MAPPING
    )
    # The known cases come first in the file, with a new capital, then 19,700 new cases.
    lines = [_row(n, capital="3.000,00") for n in range(300)]
    lines += [_row(n) for n in range(1000, 20_700)]
    reached = asyncio.Event()

    def progress(rows: int, fraction: float) -> None:
        if rows >= 6000:  # the batch holding the known cases has long been applied
            reached.set()

    importing = asyncio.ensure_future(
        import_portfolio(
            pool,
            SYSTEM,
            _write(tmp_path / "b.csv", lines),
            MAPPING,
            workers=1,
            batch_rows=300,
            progress=progress,
        )  # fmt: skip
    )
    await asyncio.wait_for(reached.wait(), 60)
    async with pool.acquire() as conn:
        # What a dialer does while it calls: with the import holding the case's row, this
        # would wait for its commit and fail after the lock timeout.
        await conn.execute("SET lock_timeout = '300ms'")
        await conn.execute("UPDATE cases SET sentiment = 'calm' WHERE reference = 'B-00001'")
    assert not importing.done()
    result = await importing
    assert (result.cases_created, result.cases_updated) == (19_700, 300)
    async with pool.acquire() as conn:
        case = await conn.fetchrow(
            "SELECT sentiment, total_due FROM cases WHERE reference = 'B-00001'"
        )
    assert (case["sentiment"], str(case["total_due"])) == ("calm", f"{3000 + 1 % 97}.00")
