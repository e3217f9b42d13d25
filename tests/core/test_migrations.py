import asyncpg
import pytest

from core import db


async def test_migrations_apply_from_empty_and_rerun_is_a_no_op(empty_database_url: str):
    conn = await db.connect(empty_database_url)
    try:
        applied = await db.migrate(conn)
        assert [(m.package, m.version) for m in applied][:2] == [("core", 1), ("core", 2)]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "users",
            "audit_log",
            "cases",
            "activities",
            "phones",
            "schema_migrations",
        } <= tables
        assert await db.migrate(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(applied)
    finally:
        await conn.close()


async def test_changed_migration_is_refused(empty_database_url: str):
    conn = await db.connect(empty_database_url)
    try:
        await db.migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(db.MigrationError, match="changed after it was applied"):
            await db.migrate(conn)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_applied(empty_database_url: str, monkeypatch):
    good = db.discover_migrations()
    broken = [*good[:1], db.Migration("core", 2, "broken", "CREATE TABLE x (y int); SELECT 1/0;")]
    monkeypatch.setattr(db, "discover_migrations", lambda packages=(): broken)
    conn = await db.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.migrate(conn)
        exists = await conn.fetchval("SELECT to_regclass('users') IS NOT NULL")
        assert exists is False
    finally:
        await conn.close()
