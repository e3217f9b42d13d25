"""PostgreSQL access: the asyncpg pool and the numbered SQL migrations.

Each package that owns tables keeps them in `<package>/migrations/NNNN_name.sql`. The
composition root passes the packages in dependency order; all pending migrations are
applied in one transaction under an advisory lock, so two servers starting together do
not race and a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from core.embedded_pg import EmbeddedPostgres, free_port
from core.settings import Settings

log = logging.getLogger(__name__)

# Packages owning tables, in the order their migrations must run.
DEFAULT_MIGRATION_PACKAGES = ("core", "crm_bridge", "dialer", "channels")

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5052_4154  # "PRAT": serializes migrations across processes


class MigrationError(RuntimeError):
    """A migration file is malformed, or an applied migration was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    package: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover_migrations(packages: Sequence[str] = DEFAULT_MIGRATION_PACKAGES) -> list[Migration]:
    found: list[Migration] = []
    for package in packages:
        try:
            folder = resources.files(package) / "migrations"
        except ModuleNotFoundError:
            raise MigrationError(f"unknown package {package!r}") from None
        if not folder.is_dir():
            continue
        per_package: list[Migration] = []
        for entry in folder.iterdir():
            if not entry.name.endswith(".sql"):
                continue
            match = _MIGRATION_NAME.match(entry.name)
            if not match:
                raise MigrationError(
                    f"{package}/migrations/{entry.name}: name must look like 0001_what_it_does.sql"
                )
            per_package.append(
                Migration(package, int(match.group(1)), match.group(2), entry.read_text("utf-8"))
            )
        per_package.sort(key=lambda m: m.version)
        versions = [m.version for m in per_package]
        if len(set(versions)) != len(versions):
            raise MigrationError(f"{package}: two migrations share a number")
        found.extend(per_package)
    return found


async def migrate(
    conn: asyncpg.Connection, packages: Sequence[str] = DEFAULT_MIGRATION_PACKAGES
) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty when up to date)."""
    migrations = discover_migrations(packages)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                package    text NOT NULL,
                version    integer NOT NULL,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (package, version)
            )
            """
        )
        rows = await conn.fetch("SELECT package, version, checksum FROM schema_migrations")
        applied = {(r["package"], r["version"]): r["checksum"] for r in rows}
        done: list[Migration] = []
        for m in migrations:
            key = (m.package, m.version)
            if key in applied:
                if applied[key] != m.checksum:
                    raise MigrationError(
                        f"{m.package}/migrations/{m.version:04d}_{m.name}.sql changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            log.info("applying migration %s %04d_%s", m.package, m.version, m.name)
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (package, version, name, checksum) "
                "VALUES ($1, $2, $3, $4)",
                m.package,
                m.version,
                m.name,
                m.checksum,
            )
            done.append(m)
    return done


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_json_dumps, decoder=json.loads, schema="pg_catalog"
        )


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when misused
        raise RuntimeError("could not create the database pool")
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


@dataclass(frozen=True)
class Database:
    url: str
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def open_database(
    settings: Settings, packages: Sequence[str] = DEFAULT_MIGRATION_PACKAGES
) -> AsyncIterator[Database]:
    """The database for a server or a command: `database.url`, or else the embedded
    cluster under `data_dir/pg`, shared with the other pratica processes using it (started
    here if none is, stopped on exit by the last one out). Migrations run first."""
    embedded: EmbeddedPostgres | None = None
    url = settings.database.url
    if not url:
        embedded = EmbeddedPostgres(
            settings.data_dir / "pg", settings.database.embedded_port or free_port()
        )
        await asyncio.to_thread(embedded.join)
        url = embedded.url
        log.info(
            "embedded PostgreSQL on 127.0.0.1:%d (data in %s)", embedded.port, embedded.datadir
        )
    try:
        conn = await connect(url)
        try:
            applied = await migrate(conn, packages)
        finally:
            await conn.close()
        if applied:
            log.info("applied %d migration(s)", len(applied))
        pool = await create_pool(url, settings.database.pool_min, settings.database.pool_max)
        try:
            yield Database(url, pool)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.leave)
