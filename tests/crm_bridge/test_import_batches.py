"""Large imports: worker processes, COPY text encoding, and several batches in one
transaction (against a real PostgreSQL)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.identity import SYSTEM
from crm_bridge.import_rows import copy_line
from crm_bridge.importer import ImportRejected, import_portfolio
from crm_bridge.mapping import load_mapping

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
MAPPING = load_mapping(FIXTURES / "mapping.toml")
HEADER = (FIXTURES / "good.csv").read_text().splitlines()[0]
ROWS = 6000  # about 1 MiB: large enough for the worker processes


def _row(n: int, capital: str = "1.000,00", reference: str | None = None) -> str:
    guarantor = "Verdi;Anna;340 111 2222" if n % 1000 == 7 else ";;"
    return (
        f"{reference or f'B-{n:05d}'};Rossi {n};Mario;;;0{1 + n % 9}/01/1970;{capital};{n % 97},00;;"
        f"31/12/2025;Via Roma {n};00100;Roma;IT;33{n % 10} {1000000 + n};06 {10000000 + n};"
        f"m{n}@example.org;{guarantor}"
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    assert path.stat().st_size > 512 * 1024
    return path


async def test_copy_lines_round_trip_through_postgres(pool) -> None:
    tricky = ["tab\there", "new\nline", "cr\rhere", "back\\slash", 'quote"d', "{brace,comma}",
              "\\N", "NULL", "", " spaced ", "città €", "a\\\"b"]  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TEMPORARY TABLE t (n integer, s text, a text[], d date, m numeric(14,2))"
        )
        records = [(i, text, [text, "x", text], datetime.date(2000, 1, 1 + i), Decimal("12.30"))
                   for i, text in enumerate(tricky)]  # fmt: skip
        records.append((99, None, [], None, None))

        async def source():  # type: ignore[no-untyped-def]
            yield b"".join(copy_line(r) for r in records)

        await conn.copy_to_table("t", source=source(), columns=["n", "s", "a", "d", "m"])
        back = [tuple(r) for r in await conn.fetch("SELECT n, s, a, d, m FROM t ORDER BY n")]
    assert back == [(*r[:2], list(r[2]), *r[3:]) for r in records]


async def test_a_file_in_many_batches_imports_and_reimports(pool, tmp_path) -> None:
    path = _write(tmp_path / "big.csv", [_row(n) for n in range(ROWS)])
    result = await import_portfolio(pool, SYSTEM, path, MAPPING, workers=2, batch_rows=700)
    assert (result.rows, result.imported, result.cases_created, result.cases_updated) == (
        ROWS, ROWS, ROWS, 0,
    )  # fmt: skip
    async with pool.acquire() as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM cases) AS cases, (SELECT count(*) FROM phones) AS phones, "
            "(SELECT count(*) FROM emails) AS emails, (SELECT count(*) FROM debtor_links) AS links, "
            "(SELECT count(*) FROM addresses) AS addresses, (SELECT count(*) FROM import_batches) AS batches"
        )
        assert dict(counts) == {
            "cases": ROWS, "phones": 2 * ROWS + 6, "emails": ROWS, "links": 6,
            "addresses": ROWS, "batches": 1,
        }  # fmt: skip
        case = await conn.fetchrow(
            "SELECT c.total_due, d.last_name, d.birth_date FROM cases c JOIN debtors d ON d.id = c.debtor_id "
            "WHERE c.reference = 'B-04321'"
        )
        assert case["total_due"] == Decimal("1000.00") + 4321 % 97
        assert case["last_name"] == "Rossi 4321" and case["birth_date"] == datetime.date(
            1970, 1, 1 + 4321 % 9
        )
        phones = await conn.fetch(
            "SELECT p.e164, p.position, p.time_zones FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id "
            "WHERE c.reference = 'B-04321' ORDER BY p.position"
        )
        assert [(p["e164"], p["position"]) for p in phones] == [
            ("+39331" + str(1004321), 0), ("+3906" + str(10004321), 1),
        ]  # fmt: skip
        assert phones[1]["time_zones"] == ["Europe/Rome"]
    changed = [_row(n, capital="2.000,00" if n % 2 else "1.000,00") for n in range(ROWS)]
    again = await import_portfolio(
        pool, SYSTEM, _write(tmp_path / "again.csv", changed), MAPPING, workers=2, batch_rows=900
    )
    assert (again.cases_created, again.cases_updated) == (0, ROWS)
    async with pool.acquire() as conn:
        totals = await conn.fetch(
            "SELECT reference, total_due FROM cases WHERE reference IN ('B-00010', 'B-00011')"
            " ORDER BY reference"
        )
        assert [t["total_due"] for t in totals] == [Decimal("1010.00"), Decimal("2011.00")]
        assert await conn.fetchval("SELECT count(*) FROM phones") == 2 * ROWS + 6
        assert await conn.fetchval("SELECT count(*) FROM debtors") == ROWS + 6


async def test_a_late_bad_row_or_duplicate_undoes_earlier_batches(pool, tmp_path) -> None:
    lines = [_row(n) for n in range(ROWS)]
    lines[ROWS - 10] = _row(ROWS - 10, capital="mille")
    lines[ROWS - 5] = _row(ROWS - 5, reference="B-00003")  # a reference from the first batch
    path = _write(tmp_path / "late.csv", lines)
    with pytest.raises(ImportRejected) as caught:
        await import_portfolio(pool, SYSTEM, path, MAPPING, workers=2, batch_rows=500)
    result = caught.value.result
    assert (result.rows, result.rejected) == (ROWS, 2)
    reported = [str(e) for e in result.errors]
    assert f"line {ROWS - 10 + 2}, column 'Capitale': not an amount: 'mille'" in reported
    assert (
        f"line {ROWS - 5 + 2}, column 'Pratica': case reference 'B-00003' appears twice in the file"
        in reported
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cases") == 0
        assert await conn.fetchval("SELECT count(*) FROM debtors") == 0
    accepted = await import_portfolio(
        pool, SYSTEM, path, MAPPING, workers=2, batch_rows=500, accept_valid=True,
        rejects_path=tmp_path / "rejects.csv",
    )  # fmt: skip
    assert (accepted.imported, accepted.rejected, accepted.cases_created) == (ROWS - 2, 2, ROWS - 2)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cases") == ROWS - 2
