"""Users, teams and login sessions. Passwords are hashed with argon2id; session tokens are
random and only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    if len(password) < 8:
        raise UserError("password must be at least 8 characters")
    return _hasher.hash(password)


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
    password_hash = hash_password(password)
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


async def authenticate(conn: asyncpg.Connection, username: str, password: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1",  # noqa: S608
        username,
    )
    stored = _DUMMY_HASH if row is None else row["password_hash"]
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row["active"]:
        return None
    if _hasher.check_needs_rehash(stored):
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE id = $2", _hasher.hash(password), row["id"]
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
