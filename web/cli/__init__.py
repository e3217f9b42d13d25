"""The `pratica` command line: one subcommand per module in this package.

Each command module exposes `register(subparsers)`; errors the user can fix end the
command with one clear line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from core.settings import SettingsError, load_settings
from web.cli import admin, pacing_sim, portfolio, server, sim_pbx, stats

# Modules contributing subcommands; later features add theirs here.
COMMAND_MODULES = [server, admin, portfolio, stats, sim_pbx, pacing_sim]


class CommandError(Exception):
    """A problem the user can fix; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pratica", description="Pratica: dialer and omnichannel server for collections"
    )
    parser.add_argument("--config", help="TOML settings file (or PRATICA_CONFIG)")
    parser.add_argument("--data-dir", help="where embedded data lives (default ./var)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        from pathlib import Path

        args.settings = load_settings(
            Path(args.config) if args.config else None, data_dir=args.data_dir
        )
        return func(args)
    except (SettingsError, CommandError) as exc:
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
