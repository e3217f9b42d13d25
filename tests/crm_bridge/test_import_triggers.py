"""New cases are written without per-row foreign-key triggers when the session may skip
them: the result must be the same as with the triggers, every constraint must still hold,
and a role without the privilege must import as before (real PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

from core import db
from core.identity import SYSTEM
from crm_bridge.importer import TRUSTED_TABLES, import_portfolio, may_skip_row_triggers
from crm_bridge.mapping import load_mapping
from tests.crm_bridge.test_import_batches import HEADER, _row

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
MAPPING = load_mapping(FIXTURES / "mapping.toml")
ROWS = 1500

# What an import writes, without the ids and times that differ from one database to another.
_CONTENT = {
    "cases": """SELECT c.reference, cr.code, p.code, c.currency, c.total_due, c.status, d.last_name,
                       d.first_name, d.birth_date
                FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
                JOIN portfolios p ON p.id = c.portfolio_id JOIN debtors d ON d.id = c.debtor_id""",
    "debts": """SELECT c.reference, t.reference, t.capital, t.interest, t.fees, t.total, t.due_date
                FROM debts t JOIN cases c ON c.id = t.case_id""",
    "phones": """SELECT d.last_name, d.first_name, p.e164, p.kind, p.source, p.position, p.time_zones
                 FROM phones p JOIN debtors d ON d.id = p.debtor_id""",
    "emails": "SELECT d.last_name, e.address FROM emails e JOIN debtors d ON d.id = e.debtor_id",
    "addresses": """SELECT d.last_name, a.kind, a.line1, a.postal_code, a.city, a.country
                    FROM addresses a JOIN debtors d ON d.id = a.debtor_id""",
    "guarantors": """SELECT c.reference, g.last_name, l.relation FROM debtor_links l
                     JOIN cases c ON c.id = l.case_id JOIN debtors g ON g.id = l.debtor_id""",
}


async def _content(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    async with pool.acquire() as conn:
        return {
            name: sorted(tuple(r) for r in await conn.fetch(query))
            for name, query in _CONTENT.items()
        }


async def _check_foreign_keys(pool: asyncpg.Pool) -> int:
    """Re-create every foreign key of the written tables (PostgreSQL checks each existing
    row when a constraint is added), in a transaction rolled back afterwards."""
    async with pool.acquire() as conn:
        keys = await conn.fetch(
            "SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS def "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY($1)",
            list(TRUSTED_TABLES),
        )
        transaction = conn.transaction()
        await transaction.start()
        try:
            for key in keys:
                await conn.execute(f'ALTER TABLE {key["tab"]} DROP CONSTRAINT "{key["conname"]}"')
                await conn.execute(
                    f'ALTER TABLE {key["tab"]} ADD CONSTRAINT "{key["conname"]}" {key["def"]}'
                )
        finally:
            await transaction.rollback()
    return len(keys)


async def _import_twice(pool: asyncpg.Pool, tmp_path: Path, **options: object) -> None:
    lines = [_row(n) for n in range(ROWS)]
    first = tmp_path / "first.csv"
    first.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    result = await import_portfolio(pool, SYSTEM, first, MAPPING, batch_rows=400, **options)  # type: ignore[arg-type]
    assert (result.cases_created, result.cases_updated) == (ROWS, 0)
    # Half of the second file is known (updated), half new: both paths in each batch.
    more = [_row(n, capital="2.000,00") for n in range(ROWS // 2, ROWS + ROWS // 2)]
    second = tmp_path / "second.csv"
    second.write_text("\n".join([HEADER, *more]) + "\n", encoding="utf-8")
    result = await import_portfolio(pool, SYSTEM, second, MAPPING, batch_rows=400, **options)  # type: ignore[arg-type]
    assert (result.cases_created, result.cases_updated) == (ROWS // 2, ROWS // 2)


async def test_without_row_triggers_the_import_writes_the_same_and_keeps_every_key(
    pool, postgres_admin_url, tmp_path
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        assert await may_skip_row_triggers(conn)  # the fixtures' role is the cluster's owner
    (tmp_path / "a").mkdir()
    await _import_twice(pool, tmp_path / "a")
    fast = await _content(pool)
    assert len(fast["cases"]) == ROWS + ROWS // 2 and len(fast["phones"]) > 3 * ROWS
    assert await _check_foreign_keys(pool) >= 7

    # The same files in another database, with the triggers kept.
    name = f"pratica_triggers_{os.getpid()}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "pratica_template"')
    try:
        other = await db.create_pool(postgres_admin_url.rpartition("/")[0] + "/" + name, 1, 2)
        try:
            (tmp_path / "b").mkdir()
            await _import_twice(other, tmp_path / "b", skip_row_triggers=False)
            assert await _content(other) == fast
        finally:
            await other.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_role_that_may_not_skip_triggers_imports_with_them(
    pool, database_url, tmp_path
) -> None:
    role = f"plain_importer_{os.getpid()}"
    async with pool.acquire() as conn:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'plain' NOSUPERUSER")
        await conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        await conn.execute(
            f"GRANT CREATE, TEMPORARY ON DATABASE {database_url.rsplit('/', 1)[1]} TO {role}"
        )
    scheme, rest = database_url.split("://", 1)
    url = f"{scheme}://{role}:plain@{rest.split('@', 1)[-1]}"
    plain = await db.create_pool(url, 1, 2)
    try:
        async with plain.acquire() as conn, conn.transaction():
            assert not await may_skip_row_triggers(conn)
            # The refusal happened in a savepoint: the transaction is still usable.
            assert await conn.fetchval("SELECT current_user") == role
        await _import_twice(plain, tmp_path)
        assert len((await _content(pool))["cases"]) == ROWS + ROWS // 2
        assert await _check_foreign_keys(pool) >= 7
    finally:
        await plain.close()
        async with pool.acquire() as conn:
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")


async def test_the_tables_an_import_writes_have_no_triggers_of_their_own(conn) -> None:
    """With the triggers off for new cases, a trigger added to these tables by a future
    migration would silently not run: such a change must revisit the import. Only the
    INSERTs of new rows run with the triggers off, so a trigger that fires on UPDATE alone
    (the dialer's, when a case stops being contactable) loses nothing."""
    own = await conn.fetch(
        "SELECT tgrelid::regclass::text AS tab, tgname FROM pg_trigger "
        "WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY($1) "
        "AND (tgtype & 4) <> 0",  # TRIGGER_TYPE_INSERT
        list(TRUSTED_TABLES),
    )
    assert [tuple(t) for t in own] == []
