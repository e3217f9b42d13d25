"""A throwaway PostgreSQL cluster for a benchmark, from the installed binaries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

from core.embedded_pg import EmbeddedPostgres, free_port


@contextlib.contextmanager
def private_postgres(fast: bool = True) -> Iterator[tuple[str, Path]]:
    """A cluster in a temporary directory: its URL and data directory. `fast` turns fsync
    off; benchmarks of writing keep it on, as an embedded install runs."""
    with TemporaryDirectory() as tmp:
        datadir = Path(tmp) / "pg"
        server = EmbeddedPostgres(datadir, free_port(), fast=fast)
        server.start()
        try:
            yield server.url, datadir
        finally:
            server.stop()
