import asyncio

from aiohttp.test_utils import TestClient

from core import users
from core.identity import SYSTEM, Role
from web.keys import POOL


async def _user(client: TestClient, username: str, role: Role) -> None:
    async with client.app[POOL].acquire() as conn:
        await users.create_user(conn, SYSTEM, username, "password1", role)


async def test_login_sets_a_session_and_me_answers(client: TestClient):
    await _user(client, "agent7", Role.AGENT)
    response = await client.post("/api/login", json={"username": "agent7", "password": "password1"})
    assert response.status == 200
    body = await response.json()
    assert body["user"]["role"] == "agent"
    me = await client.get("/api/me")  # cookie from the login
    assert (await me.json())["username"] == "agent7"
    bearer = await client.get(
        "/api/me", headers={"Authorization": f"Bearer {body['token']}"}, cookies={}
    )
    assert bearer.status == 200


async def test_wrong_password_is_refused_and_audited(client: TestClient):
    await _user(client, "agent8", Role.AGENT)
    response = await client.post("/api/login", json={"username": "agent8", "password": "nope"})
    assert response.status == 401
    assert (await response.json())["error"] == "bad_credentials"
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT action, outcome FROM audit_log WHERE action = 'session.login' ORDER BY id DESC"
        )
    assert (row["action"], row["outcome"]) == ("session.login", "refused")


async def test_endpoints_need_a_session(client: TestClient):
    response = await client.get("/api/me")
    assert response.status == 401
    assert (await client.get("/healthz")).status == 200


async def test_malformed_login_gets_a_clear_error(client: TestClient):
    response = await client.post("/api/login", data="not json")
    assert response.status == 400
    assert "username and password" in (await response.json())["message"]


async def test_repeated_failures_are_throttled(client: TestClient):
    await _user(client, "agent9", Role.AGENT)
    for _ in range(5):
        r = await client.post("/api/login", json={"username": "agent9", "password": "guess"})
        assert r.status == 401
    r = await client.post("/api/login", json={"username": "agent9", "password": "password1"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0


async def test_concurrent_guesses_are_throttled_while_they_are_checked(client: TestClient):
    # Passwords are checked off the event loop, one after the other: guesses sent all at
    # once must not all be let through before the first failures are counted.
    await _user(client, "agent10", Role.AGENT)
    guesses = [
        client.post("/api/login", json={"username": "agent10", "password": f"guess{n}"})
        for n in range(12)
    ]
    statuses = sorted(r.status for r in await asyncio.gather(*guesses))
    assert statuses == [401] * 5 + [429] * 7
