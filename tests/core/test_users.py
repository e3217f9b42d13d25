import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

from core import audit, users
from core.identity import SYSTEM, Actor, PermissionDenied, Role


async def test_passwords_are_hashed_and_checked(pool, conn):
    user = await users.create_user(conn, SYSTEM, "anna", "correct horse", Role.AGENT)
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert await users.authenticate(pool, "anna", "correct horse") == user
    assert await users.authenticate(pool, "anna", "wrong") is None
    assert await users.authenticate(pool, "nobody", "correct horse") is None


async def test_only_admins_create_users_and_creation_is_audited(conn):
    manager = Actor(None, "boss", Role.MANAGER)
    with pytest.raises(PermissionDenied, match="requires the admin role"):
        await users.create_user(conn, manager, "x1", "password1", Role.AGENT)
    user = await users.create_user(conn, SYSTEM, "x2", "password1", Role.SUPERVISOR)
    [entry] = await audit.entries_for(conn, "user", user.id)
    assert entry.action == "user.create" and entry.after == {
        "username": "x2",
        "role": "supervisor",
        "team_id": None,
    }
    with pytest.raises(users.UserError, match="already exists"):
        await users.create_user(conn, SYSTEM, "x2", "password1", Role.AGENT)
    with pytest.raises(users.UserError, match="at least 8"):
        await users.create_user(conn, SYSTEM, "x3", "short", Role.AGENT)


async def test_sessions_expire(conn):
    user = await users.create_user(conn, SYSTEM, "bea", "password1", Role.AGENT)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = await users.open_session(conn, user, now)
    assert await users.session_user(conn, token, now + timedelta(hours=1)) == user
    assert await users.session_user(conn, token, now + timedelta(hours=13)) is None
    await users.close_session(conn, token)
    assert await users.session_user(conn, token, now) is None


async def test_passwords_are_hashed_in_threads_that_yield_to_the_event_loop():
    assert (await users.hash_off_loop("long enough")).startswith("$argon2id$")
    hashing = [t for t in threading.enumerate() if t.name.startswith("password-hash")]
    assert 1 <= len(hashing) <= users.HASHING_THREADS
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for thread in hashing:
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, ours + 10)
