"""The long crash soak: one simulated day of a predictive campaign with the dialer node
killed (SIGKILL) and the AMI link cut at random moments (100 of each by default), then the
database checked as the short soak in the test suite checks it (`tests/support/soak.py`).

    .venv/bin/python -m bench.dialer.soak --hours 24 --scale 60 --kills 100 --drops 100

Prints the report as JSON (and `--out FILE` keeps it); the figures are recorded in
`bench/dialer/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
from pathlib import Path

from bench.cpu import reference_ms
from core.embedded_pg import EmbeddedPostgres, free_port
from tests.support.soak import SoakPlan, SoakReport, run_soak


async def _main(args: argparse.Namespace) -> SoakReport:
    plan = SoakPlan(
        virtual_hours=args.hours,
        scale=args.scale,
        kills=args.kills,
        link_drops=args.drops,
        agents=args.agents,
        cases=args.cases,
        seed=args.seed,
    )
    print(f"machine: {platform.machine()}, speed reference {reference_ms():.1f} ms", flush=True)
    with tempfile.TemporaryDirectory(prefix="pratica-soak-") as root:
        server = EmbeddedPostgres(Path(root) / "data", free_port(), fast=True)
        server.start()
        try:
            report = await run_soak(server.url, plan, log=lambda m: print(m, flush=True))
        finally:
            server.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours")
    parser.add_argument("--scale", type=float, default=60.0, help="virtual seconds per second")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--drops", type=int, default=100)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="also write the JSON report here")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    text = report.as_json()
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    failed = (
        report.unended
        or report.stuck_leads
        or report.overlapping_leads
        or report.overlapping_numbers
        or report.connected_off_timeline
        or report.counters != report.recount
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
