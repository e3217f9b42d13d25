"""Import of 1,000,000 case rows with 2 phones each from CSV (target: < 60 s, < 1 GiB).

Generates the file (not committed), starts a private PostgreSQL cluster (fsync on, as
an embedded install runs), imports through `import_portfolio` as `pratica import` does,
and reports wall time, rows/s, peak memory of this process and its workers, and the CPU
seconds the importer, its workers and the PostgreSQL server spent (the machine is shared:
CPU seconds show what the import itself cost, whatever else ran on the cores).

    .venv/bin/python -m bench.import.run [--rows N] [--workers N] [--row-triggers] [--again]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.cpu import cluster_cpu, reference_ms
from core import db
from core.embedded_pg import EmbeddedPostgres, free_port
from core.identity import SYSTEM
from core.settings import load_settings
from crm_bridge.importer import import_portfolio
from crm_bridge.mapping import PortfolioMapping, load_mapping

MAPPING = """
[source]
delimiter = ";"
default_region = "IT"
date_format = "%d/%m/%Y"
decimal = ","

[target]
creditor = "BENCH"
portfolio = "P1"

[fields]
reference = "Pratica"
last_name = "Cognome"
first_name = "Nome"
tax_code = "CF"
birth_date = "Nascita"
capital = "Capitale"
interest = "Interessi"
due_date = "Scadenza"
address_line1 = "Indirizzo"
postal_code = "CAP"
city = "Citta"
phones = [{ column = "Cellulare", kind = "mobile" }, { column = "Telefono", kind = "landline" }]
emails = ["Email"]
"""

SURNAMES = ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"]
NAMES = ["Mario", "Luca", "Giulia", "Francesca", "Marco", "Anna", "Paolo", "Sara"]
AREAS = ["02", "06", "011", "051", "055", "081", "091", "010"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write(
            "Pratica;Cognome;Nome;CF;Nascita;Capitale;Interessi;Scadenza;Indirizzo;CAP;Citta;"
            "Cellulare;Telefono;Email\n"
        )
        for n in range(rows):
            surname, name = rng.choice(SURNAMES), rng.choice(NAMES)
            capital = rng.randint(10_000, 5_000_000)
            f.write(
                f"R{n:08d};{surname};{name};;{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/"
                f"{rng.randint(1940, 2000)};{capital // 100:,}".replace(",", ".")
                + f",{capital % 100:02d};{rng.randint(0, 9999)},00;31/12/2025;Via Roma {n % 300};"
                f"{rng.randint(10000, 99999)};Roma;3{rng.randint(20, 49)} {rng.randint(1000000, 9999999)};"
                f"{rng.choice(AREAS)} {rng.randint(100000, 9999999)};u{n}@example.org\n"
            )


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


async def run(
    url: str, data: Path, mapping_path: Path, workers: int, datadir: Path, triggers: bool,
    again: bool,
) -> None:  # fmt: skip
    conn = await db.connect(url)
    await db.migrate(conn)
    await conn.close()
    pool = await db.create_pool(url, 1, 4)
    mapping = load_mapping(mapping_path)
    for label in ("import", "re-import of the same file")[: 2 if again else 1]:
        print(f"-- {label}")
        await _measured(pool, data, mapping, workers, datadir, triggers)
    await pool.close()


async def _measured(
    pool: asyncpg.Pool, data: Path, mapping: PortfolioMapping, workers: int, datadir: Path,
    triggers: bool,
) -> None:  # fmt: skip
    own0 = _cpu(resource.getrusage(resource.RUSAGE_SELF))
    workers0 = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    server0 = cluster_cpu(datadir)
    started = time.perf_counter()
    read_until = [started]

    def progress(rows: int, fraction: float) -> None:
        read_until[0] = time.perf_counter()  # the last call: every row validated

    result = await import_portfolio(
        pool, SYSTEM, data, mapping, workers=workers, progress=progress,
        skip_row_triggers=not triggers,
    )  # fmt: skip
    took = time.perf_counter() - started
    server = cluster_cpu(datadir) - server0
    own = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - own0
    # The worker processes have exited (and been waited for) when the import returns.
    in_workers = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - workers0
    async with pool.acquire() as c:
        phones = await c.fetchval("SELECT count(*) FROM phones")
        cases = await c.fetchval("SELECT count(*) FROM cases")
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"rows {result.rows:,}  imported {result.imported:,}  rejected {result.rejected}  "
        f"created {result.cases_created:,}  known {result.cases_updated:,}"
    )
    print(f"cases {cases:,}  phones {phones:,}")
    print(f"wall {took:.1f} s  ({result.rows / took:,.0f} rows/s)")
    print(
        f"rows read and validated after {read_until[0] - started:.1f} s; the database "
        f"finished applying {took - (read_until[0] - started):.1f} s later"
    )
    print(
        f"CPU s (user+sys): importer {own:.1f}, workers {in_workers:.1f}, "
        f"postgres {server:.1f}, total {own + in_workers + server:.1f}"
    )
    print(f"peak RSS: importer {own_rss:.0f} MiB, largest worker {children_rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--row-triggers", action="store_true",
        help="keep per-row foreign-key triggers (as for a role that may not skip them)",
    )  # fmt: skip
    parser.add_argument("--again", action="store_true", help="then import the same file again")
    args = parser.parse_args()
    settings = load_settings(environ={})
    print(f"machine speed: sum(range(10**6)) in {reference_ms():.1f} ms (lower is faster)")
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        data, mapping = tmpdir / "portfolio.csv", tmpdir / "mapping.toml"
        t0 = time.perf_counter()
        generate(data, args.rows)
        mapping.write_text(MAPPING)
        print(
            f"generated {args.rows:,} rows ({data.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        server = EmbeddedPostgres(tmpdir / "pg", free_port())
        server.start()
        try:
            asyncio.run(
                run(
                    server.url,
                    data,
                    mapping,
                    args.workers,
                    server.datadir,
                    args.row_triggers,
                    args.again,
                )  # fmt: skip
            )
        finally:
            server.stop()
    assert settings


if __name__ == "__main__":
    main()
