"""Users, teams and login sessions. Passwords are hashed with argon2id; session tokens are
random and only their SHA-256 is stored."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import audit
from core.identity import Actor, Role

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a login takes the same time either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
SESSION_LIFETIME = timedelta(hours=12)
T = TypeVar("T")

# An argon2 hash or check takes 0.1-0.3 s of one core and 64 MiB (argon2-cffi's defaults),
# far longer than the event loop may stop: the loop also runs the dialer, whose live
# answers must reach an agent within 2 s. argon2 releases the GIL, so the work runs in
# these threads. At most half the cores hash at once (one on a 2-core machine, at most 4):
# a login storm then queues here, each login waiting its turn holding no database
# connection, while the event loop and PostgreSQL keep the other cores. On Linux the
# threads also run at a lower priority (nice +10, that thread only): when the cores are
# busy a login waits a little longer rather than the dialer.
HASHING_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
HASHING_NICE = 10


def _lower_priority() -> None:
    if sys.platform == "linux":  # elsewhere the call would renice the whole process
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            nice = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + HASHING_NICE))


_hashing = ThreadPoolExecutor(
    HASHING_THREADS, thread_name_prefix="password-hash", initializer=_lower_priority
)


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    team_id: int | None
    active: bool
    sip_extension: str | None

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.username, self.role)


_COLUMNS = "id, username, display_name, role, team_id, active, sip_extension"


def _user(row: asyncpg.Record) -> User:
    values = dict(row)
    values["role"] = Role(values["role"])
    return User(**values)


def hash_password(password: str) -> str:
    """The argon2 hash of a password (blocking: from a coroutine, use `hash_off_loop`)."""
    if len(password) < 8:
        raise UserError("password must be at least 8 characters")
    return _hasher.hash(password)


async def _off_loop(work: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hashing, work, *args)


async def hash_off_loop(password: str) -> str:
    """`hash_password` in the hashing threads, leaving the event loop free meanwhile."""
    return await _off_loop(hash_password, password)


def _password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def ensure_team(conn: asyncpg.Connection, name: str) -> int:
    team_id = await conn.fetchval(
        "INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING id",
        name,
    )
    return int(team_id)


async def create_user(
    conn: asyncpg.Connection,
    actor: Actor,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    team_id: int | None = None,
    sip_extension: str | None = None,
) -> User:
    actor.require(Role.ADMIN, "creating users")
    if not _USERNAME.match(username):
        raise UserError(
            "username must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    password_hash = await hash_off_loop(password)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO users (username, display_name, role, team_id, password_hash, sip_extension) "
                "VALUES ($1, $2, $3, $4, $5, $6) "
                "RETURNING id, username, display_name, role, team_id, active, sip_extension",
                username,
                display_name or username,
                role.value,
                team_id,
                password_hash,
                sip_extension,
            )
        except asyncpg.UniqueViolationError:
            raise UserError(f"user {username!r} already exists") from None
        user = _user(row)
        await audit.record(
            conn,
            actor,
            "user.create",
            "user",
            user.id,
            after={"username": username, "role": role.value, "team_id": team_id},
        )
    return user


async def get_user(conn: asyncpg.Connection, user_id: int) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE id = $1",  # noqa: S608 - constant columns
        user_id,
    )
    return None if row is None else _user(row)


async def list_users(conn: asyncpg.Connection) -> list[User]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users ORDER BY username"  # noqa: S608 - constant columns
    )
    return [_user(r) for r in rows]


async def authenticate(pool: asyncpg.Pool, username: str, password: str) -> User | None:
    """The active user with this username and password, else None.

    Takes a pool, not a connection: the row is read with a connection held only for the
    query, and the password is checked off the event loop with none held, so a burst of
    logins neither stalls the loop nor takes the pool from every other request."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1",  # noqa: S608
            username,
        )
    stored = _DUMMY_HASH if row is None else row["password_hash"]
    if not await _off_loop(_password_matches, stored, password):
        return None
    if row is None or not row["active"]:
        return None
    if _hasher.check_needs_rehash(stored):
        rehashed = await _off_loop(_hasher.hash, password)
        async with pool.acquire() as conn:
            # Unless the password was changed meanwhile.
            await conn.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
                rehashed,
                row["id"],
                stored,
            )
    values = dict(row)
    values.pop("password_hash")
    values["role"] = Role(values["role"])
    return User(**values)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(conn: asyncpg.Connection, user: User, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        _token_hash(token),
        user.id,
        now + SESSION_LIFETIME,
    )
    return token


async def session_user(conn: asyncpg.Connection, token: str, now: datetime) -> User | None:
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.display_name, u.role, u.team_id, u.active, u.sip_extension "
        "FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active",
        _token_hash(token),
        now,
    )
    return None if row is None else _user(row)


async def close_session(conn: asyncpg.Connection, token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = $1", _token_hash(token))
