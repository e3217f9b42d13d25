"""The embedded cluster (what `make demo` and a config without `DATABASE_URL` run)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from core.embedded_pg import BULK_SETTINGS, EmbeddedPostgres, free_port


async def test_the_embedded_cluster_is_durable_and_sized_for_imports(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        conn = await asyncpg.connect(server.url)
        try:
            shown = {
                name: await conn.fetchval(f"SHOW {name}")
                for name in ("fsync", "synchronous_commit", "full_page_writes")
            }
            assert shown == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            for name, value in BULK_SETTINGS:
                assert await conn.fetchval(f"SHOW {name}") == value, name
        finally:
            await conn.close()
    finally:
        server.stop()


async def test_processes_share_the_cluster_and_the_last_one_out_stops_it(tmp_path: Path) -> None:
    # Two users of one data directory (flock locks are per open file, so two objects in
    # one process share it as two processes do), each configured with its own port.
    first = EmbeddedPostgres(tmp_path / "pg", free_port())
    second = EmbeddedPostgres(tmp_path / "pg", free_port())
    assert first.join() is True
    try:
        assert second.join() is False
        assert second.port == first.port  # attached to the running cluster
        conn = await asyncpg.connect(first.url)
        try:
            assert first.leave() is False  # the second still uses it
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        assert second.leave() is True
        assert second.running_port() is None
        assert not (tmp_path / "pg" / "postmaster.pid").exists()
    finally:
        first.leave()
        second.leave()
        first.stop()
