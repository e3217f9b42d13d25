"""Administrative commands: `migrate` and `create-user`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from core import db, users
from core.identity import SYSTEM, Role
from core.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("create-user", help="create a user (password read from a prompt or stdin)")
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], required=True)
    p.add_argument("--display-name")
    p.add_argument("--team", help="team name (created if missing)")
    p.add_argument("--sip-extension")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=cmd_create_user)


def cmd_migrate(args: argparse.Namespace) -> int:
    async def run(settings: Settings) -> None:
        # open_database applies the migrations before handing out the pool.
        async with db.open_database(settings) as database:
            async with database.pool.acquire() as conn:
                count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        print(f"database is up to date ({count} migrations applied)")

    asyncio.run(run(args.settings))
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("PRATICA_NEW_PASSWORD")
    if env:
        return env
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise users.UserError("the two passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    async def run(settings: Settings, password: str) -> None:
        async with db.open_database(settings) as database, database.pool.acquire() as conn:
            team_id = await users.ensure_team(conn, args.team) if args.team else None
            user = await users.create_user(
                conn,
                SYSTEM,
                args.username,
                password,
                Role(args.role),
                display_name=args.display_name,
                team_id=team_id,
                sip_extension=args.sip_extension,
            )
        print(f"created {user.role} {user.username} (id {user.id})")

    try:
        asyncio.run(run(args.settings, _read_password(args.password_stdin)))
    except users.UserError as exc:
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    return 0
