"""Seed data for `pratica demo`: demo users (and, as features land, a demo portfolio).

Seeding is idempotent: running the demo again keeps what is there.
"""

from __future__ import annotations

import asyncpg

from core import users
from core.identity import SYSTEM, Role

DEMO_PASSWORD = "pratica-demo"
DEMO_USERS: list[tuple[str, Role]] = [
    ("admin", Role.ADMIN),
    ("manager", Role.MANAGER),
    ("supervisor", Role.SUPERVISOR),
    ("agent1", Role.AGENT),
    ("agent2", Role.AGENT),
    ("agent3", Role.AGENT),
]


async def seed_demo(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        team_id = await users.ensure_team(conn, "Demo team")
        existing = {u.username for u in await users.list_users(conn)}
        for index, (username, role) in enumerate(DEMO_USERS):
            if username in existing:
                continue
            await users.create_user(
                conn,
                SYSTEM,
                username,
                DEMO_PASSWORD,
                role,
                display_name=username.capitalize(),
                team_id=team_id,
                sip_extension=f"{1000 + index}",
            )
