"""Logging in through the real API, for web tests."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core import users
from core.identity import SYSTEM, Role
from web.keys import POOL


async def login(
    client: TestClient, username: str, role: Role, team: str | None = None
) -> users.User:
    """Create a user and log the client in as that user (replacing any earlier session)."""
    async with client.app[POOL].acquire() as conn:
        team_id = await users.ensure_team(conn, team) if team else None
        user = await users.create_user(conn, SYSTEM, username, "password1", role, team_id=team_id)
    client.session.cookie_jar.clear()
    response = await client.post("/api/login", json={"username": username, "password": "password1"})
    assert response.status == 200
    return user
