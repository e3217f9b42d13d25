"""Portfolio import against a real PostgreSQL: good, bad, duplicate and updated files."""

import asyncio
import os
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from core.identity import SYSTEM, Actor, PermissionDenied, Role
from crm_bridge.importer import ImportError_, ImportRejected, import_portfolio
from crm_bridge.mapping import MappingError, load_mapping, parse_amount

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
MAPPING = load_mapping(FIXTURES / "mapping.toml")
PRATICA = str(Path(sys.executable).parent / "pratica")


async def test_a_good_file_imports_everything(pool):
    result = await import_portfolio(pool, SYSTEM, FIXTURES / "good.csv", MAPPING)
    assert (result.rows, result.imported, result.rejected, result.cases_created) == (3, 3, 0, 3)
    async with pool.acquire() as conn:
        case = await conn.fetchrow(
            "SELECT c.total_due, d.last_name, d.birth_date, d.tax_code FROM cases c "
            "JOIN debtors d ON d.id = c.debtor_id WHERE c.reference = 'P-001'"
        )
        assert case["total_due"] == Decimal("1345.06")  # 1.234,56 + 100,00 + 10,50
        assert case["birth_date"].isoformat() == "1970-01-01"
        phones = await conn.fetch(
            "SELECT p.e164, p.kind, p.time_zones FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id "
            "WHERE c.reference = 'P-001' ORDER BY p.position"
        )
        assert [(p["e164"], p["kind"]) for p in phones] == [
            ("+393331234567", "mobile"),
            ("+390612345678", "landline"),
        ]
        assert phones[1]["time_zones"] == ["Europe/Rome"]
        us = await conn.fetchval(
            "SELECT p.time_zones FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id WHERE c.reference = 'P-003'"
        )
        assert us == ["America/New_York"]
        company = await conn.fetchrow(
            "SELECT d.kind, d.company_name FROM cases c JOIN debtors d ON d.id = c.debtor_id WHERE c.reference = 'P-002'"
        )
        assert (company["kind"], company["company_name"]) == ("company", "Acme S.r.l.")
        guarantor = await conn.fetchrow(
            "SELECT d.last_name, p.e164 FROM debtor_links dl JOIN cases c ON c.id = dl.case_id "
            "JOIN debtors d ON d.id = dl.debtor_id JOIN phones p ON p.debtor_id = d.id WHERE c.reference = 'P-002'"
        )
        assert (guarantor["last_name"], guarantor["e164"]) == ("Bianchi", "+393401112222")
        batch = await conn.fetchrow("SELECT rows_imported, sha256 FROM import_batches")
        assert batch["rows_imported"] == 3 and len(batch["sha256"]) == 64
        audited = await conn.fetch("SELECT action FROM audit_log WHERE action = 'portfolio.import'")
        assert len(audited) == 1  # one entry per batch, not per row


async def test_re_importing_is_idempotent_and_updates_changed_values(pool, tmp_path):
    await import_portfolio(pool, SYSTEM, FIXTURES / "good.csv", MAPPING)
    again = await import_portfolio(pool, SYSTEM, FIXTURES / "good.csv", MAPPING)
    assert (again.cases_created, again.cases_updated) == (0, 3)
    changed = tmp_path / "changed.csv"
    changed.write_text((FIXTURES / "good.csv").read_text().replace("1.234,56", "2.000,00"))
    await import_portfolio(pool, SYSTEM, changed, MAPPING)
    async with pool.acquire() as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM cases) AS cases, (SELECT count(*) FROM debtors) AS debtors, "
            "(SELECT count(*) FROM phones) AS phones, (SELECT count(*) FROM debts) AS debts, "
            "(SELECT count(*) FROM debtor_links) AS links"
        )
        total = await conn.fetchval("SELECT total_due FROM cases WHERE reference = 'P-001'")
    assert dict(counts) == {"cases": 3, "debtors": 4, "phones": 5, "debts": 3, "links": 1}
    assert total == Decimal("2110.50")


async def test_a_bad_file_reports_every_bad_row_and_imports_nothing(pool):
    with pytest.raises(ImportRejected) as caught:
        await import_portfolio(pool, SYSTEM, FIXTURES / "bad.csv", MAPPING)
    result = caught.value.result
    assert (result.rows, result.rejected) == (4, 3)
    reported = [str(e) for e in result.errors]
    assert "line 3, column 'Data di nascita': not a date in %d/%m/%Y: '31/02/1980'" in reported
    assert "line 3, column 'Cellulare': phone '12': not a valid number for its country" in reported
    assert "line 4, column 'Pratica': the case reference is empty" in reported
    assert "line 5, column 'Pratica': case reference 'B-001' appears twice in the file" in reported
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cases") == 0
        assert await conn.fetchval("SELECT count(*) FROM import_batches") == 0


async def test_accept_valid_imports_the_good_rows_and_writes_rejects(pool, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = await import_portfolio(
        pool, SYSTEM, FIXTURES / "bad.csv", MAPPING, accept_valid=True, rejects_path=rejects
    )
    assert (result.imported, result.rejected) == (1, 3)
    text = rejects.read_text()
    assert "31/02/1980" in text and "not an amount" in text and text.count("\n") == 3
    async with pool.acquire() as conn:
        assert [r["reference"] for r in await conn.fetch("SELECT reference FROM cases")] == [
            "B-001"
        ]


async def test_xlsx_and_zip_inputs(pool, tmp_path):
    book = Workbook()
    sheet = book.active
    header = (FIXTURES / "good.csv").read_text().splitlines()[0].split(";")
    sheet.append(header)
    from datetime import datetime

    row = [
        "X-001",
        "Conti",
        "Sara",
        None,
        None,
        datetime(1985, 5, 17),
        1500.25,
        0,
        None,
        None,
        None,
        None,
        None,
        "IT",
        "3391234567",
        None,
        None,
        None,
        None,
        None,
    ]
    sheet.append(row)
    xlsx = tmp_path / "file.xlsx"
    book.save(xlsx)
    result = await import_portfolio(pool, SYSTEM, xlsx, MAPPING)
    assert result.imported == 1
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(FIXTURES / "good.csv", "part1.csv")
        z.write(xlsx, "part2.xlsx")
    result = await import_portfolio(pool, SYSTEM, archive, MAPPING)
    assert (result.rows, result.cases_created, result.cases_updated) == (4, 3, 1)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT c.total_due, d.birth_date FROM cases c JOIN debtors d "
            "ON d.id = c.debtor_id WHERE reference = 'X-001'"
        )
    assert row["total_due"] == Decimal("1500.25") and row["birth_date"].isoformat() == "1985-05-17"


async def test_unreadable_input_and_missing_columns_are_clear(pool, tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("Reference;Name\nA;B\n")
    with pytest.raises(ImportError_, match="columns named in the mapping are missing: .*Pratica"):
        await import_portfolio(pool, SYSTEM, wrong, MAPPING)
    latin = tmp_path / "latin.csv"
    latin.write_bytes((FIXTURES / "good.csv").read_text().encode("utf-16"))
    with pytest.raises(ImportError_, match="not utf-8-sig text"):
        await import_portfolio(pool, SYSTEM, latin, MAPPING)
    with pytest.raises(PermissionDenied):
        await import_portfolio(pool, Actor(1, "a", Role.AGENT), FIXTURES / "good.csv", MAPPING)


def test_amounts_and_mapping_validation(tmp_path):
    assert parse_amount("1.234.567,89", ",") == Decimal("1234567.89")
    assert parse_amount("1,234.5", ".") == Decimal("1234.50")
    assert parse_amount("€ 12,00", ",") == Decimal("12.00")
    assert parse_amount("1,234", ".") == Decimal("1234.00")  # a thousands separator
    with pytest.raises(ValueError, match="two decimals"):
        parse_amount("12.345", ".")
    with pytest.raises(ValueError, match="negative"):
        parse_amount("-5,00", ",")
    bad = tmp_path / "m.toml"
    bad.write_text(
        '[target]\ncreditor="X"\nportfolio="Y"\n[fields]\nreference="A"\nshoe_size="B"\n'
    )
    with pytest.raises(MappingError, match="fields.shoe_size: unknown field"):
        load_mapping(bad)


async def test_import_and_export_commands(database_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "PRATICA_DATA_DIR": str(tmp_path)}

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            PRATICA, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run(
        "import", str(FIXTURES / "bad.csv"), "--mapping", str(FIXTURES / "mapping.toml")
    )
    assert code == 1 and "3 of 4 rows are invalid; nothing imported" in err and "line 3" in err
    code, out, err = await run(
        "import", str(FIXTURES / "good.csv"), "--mapping", str(FIXTURES / "mapping.toml")
    )
    assert code == 0, err
    assert "3 rows, 3 imported (3 new cases, 0 already known), 0 rejected" in out
    code, out, err = await run(
        "import", str(tmp_path / "nope.csv"), "--mapping", str(FIXTURES / "mapping.toml")
    )
    assert code == 2 and "file not found" in err
    csv_out, xlsx_out = tmp_path / "out.csv", tmp_path / "out.xlsx"
    code, out, err = await run("export", "--creditor", "BANCA1", "-o", str(csv_out))
    assert code == 0 and "wrote 3 cases" in out, err
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("Case reference,Creditor,Portfolio,Debtor,Status")
    assert lines[1].startswith("P-001,BANCA1,2026-11,Mario Rossi,new")
    code, out, err = await run("export", "-o", str(xlsx_out))
    from openpyxl import load_workbook

    rows = list(load_workbook(xlsx_out, read_only=True).active.iter_rows(values_only=True))
    assert len(rows) == 4 and rows[1][0] == "P-001" and rows[1][11] == 1345.06
