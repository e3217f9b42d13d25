"""Shared fixtures: real PostgreSQL (a migrated template cloned per test) and Redis."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from core import db
from tests.support.servers import private_postgres, private_redis

TEMPLATE = "pratica_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a database on a server where we may create databases."""
    given = os.environ.get("PRATICA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with private_postgres() as server:
        yield server.url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
async def template_url(postgres_admin_url: str) -> str:
    """A database with every migration applied, cloned for each test that needs one."""
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    url = _with_database(postgres_admin_url, TEMPLATE)
    conn = await db.connect(url)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture
async def empty_database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh empty database (no migrations)."""
    name = f"pratica_empty_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database_url(postgres_admin_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh migrated database for one test."""
    name = f"pratica_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(database_url, 1, 5)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("PRATICA_TEST_REDIS_URL")
    if given:
        yield given
        return
    with private_redis() as url:
        yield url
