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
