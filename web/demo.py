"""Seed data for `pratica demo`: demo users, twenty simulated agents, a demo portfolio
imported through the real importer, and a predictive campaign over it.

Seeding is idempotent: running the demo again keeps what is there.
"""

from __future__ import annotations

import random
from pathlib import Path

import asyncpg

from core import users
from core.identity import SYSTEM, Role
from crm_bridge.importer import import_portfolio
from crm_bridge.mapping import parse_mapping
from dialer.campaigns import DialMode, create_campaign

DEMO_PASSWORD = "pratica-demo"
DEMO_USERS: list[tuple[str, Role]] = [
    ("admin", Role.ADMIN),
    ("manager", Role.MANAGER),
    ("supervisor", Role.SUPERVISOR),
    ("agent1", Role.AGENT),
    ("agent2", Role.AGENT),
    ("agent3", Role.AGENT),
]
SIMULATED_AGENTS = 20
DEMO_CAMPAIGN = "Demo predictive"
DEMO_CASES = 3000

_MAPPING = {
    "source": {"delimiter": ";", "default_region": "IT", "date_format": "%d/%m/%Y", "decimal": ","},
    "target": {"creditor": "DEMO-BANK", "portfolio": "DEMO-2026"},
    "fields": {
        "reference": "Pratica",
        "last_name": "Cognome",
        "first_name": "Nome",
        "birth_date": "Nascita",
        "capital": "Capitale",
        "interest": "Interessi",
        "fees": "Spese",
        "due_date": "Scadenza",
        "address_line1": "Indirizzo",
        "postal_code": "CAP",
        "city": "Citta",
        "phones": [
            {"column": "Cellulare", "kind": "mobile"},
            {"column": "Telefono", "kind": "landline"},
        ],
        "emails": ["Email"],
    },
}
_SURNAMES = ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
             "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Costa", "Giordano"]  # fmt: skip
_NAMES = ["Mario", "Luca", "Giulia", "Francesca", "Marco", "Anna", "Paolo", "Sara", "Elena",
          "Davide", "Chiara", "Andrea", "Federica", "Matteo", "Silvia", "Giorgio"]  # fmt: skip
_CITIES = [("Roma", "00184", "06"), ("Milano", "20121", "02"), ("Torino", "10121", "011"),
           ("Napoli", "80133", "081"), ("Bologna", "40121", "051"), ("Firenze", "50122", "055")]  # fmt: skip


def write_demo_portfolio(path: Path, cases: int = DEMO_CASES, seed: int = 2026) -> None:
    """A realistic Italian portfolio file: two phones per debtor, amounts with decimal comma."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write(
            "Pratica;Cognome;Nome;Nascita;Capitale;Interessi;Spese;Scadenza;Indirizzo;CAP;Citta;"
            "Cellulare;Telefono;Email\n"
        )
        for n in range(1, cases + 1):
            surname, name = rng.choice(_SURNAMES), rng.choice(_NAMES)
            city, cap, area = rng.choice(_CITIES)
            capital = rng.randint(15_000, 1_500_000)
            f.write(
                f"DEMO-{n:05d};{surname};{name};{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/"
                f"{rng.randint(1950, 2000)};{capital // 100},{capital % 100:02d};{rng.randint(0, 900)},00;"
                f"{rng.randint(5, 40)},00;{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2025;"
                f"Via {rng.choice(_SURNAMES)} {rng.randint(1, 200)};{cap};{city};"
                f"3{rng.randint(20, 49)} {rng.randint(1000000, 9999999)};{area} {rng.randint(100000, 999999)};"
                f"{name.lower()}.{surname.lower().replace(' ', '')}{n}@example.org\n"
            )


async def seed_demo(pool: asyncpg.Pool, data_dir: Path) -> tuple[int, list[int]]:
    """Users, the portfolio and the campaign; returns (campaign id, simulated agent ids)."""
    async with pool.acquire() as conn:
        team_id = await users.ensure_team(conn, "Demo team")
        existing = {u.username: u for u in await users.list_users(conn)}
        for index, (username, role) in enumerate(DEMO_USERS):
            if username not in existing:
                await users.create_user(
                    conn, SYSTEM, username, DEMO_PASSWORD, role,
                    display_name=username.capitalize(), team_id=team_id,
                    sip_extension=f"{1000 + index}",
                )  # fmt: skip
        simulated = []
        for n in range(1, SIMULATED_AGENTS + 1):
            username = f"sim{n:02d}"
            user = existing.get(username)
            if user is None:
                user = await users.create_user(
                    conn, SYSTEM, username, DEMO_PASSWORD + "-sim", Role.AGENT,
                    display_name=f"Simulated agent {n}", team_id=team_id,
                )  # fmt: skip
            simulated.append(user.id)
        have_cases = await conn.fetchval("SELECT count(*) FROM cases")
    if not have_cases:
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at seeding
        source = data_dir / "demo-portfolio.csv"
        write_demo_portfolio(source)
        await import_portfolio(pool, SYSTEM, source, parse_mapping(_MAPPING), workers=1)
        async with pool.acquire() as conn:
            # The demo team works the demo portfolio: its agents can find and call its cases.
            await conn.execute("UPDATE cases SET team_id = $1 WHERE team_id IS NULL", team_id)
    async with pool.acquire() as conn:
        campaign_id = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1", DEMO_CAMPAIGN)
        if campaign_id is None:
            from datetime import time

            campaign = await create_campaign(
                conn, SYSTEM, DEMO_CAMPAIGN, mode=DialMode.PREDICTIVE, compliance_profile="IT",
                # The demo runs at any hour: its window is the whole day.
                window_start=time(0, 0), window_end=time(23, 59), days_of_week=(1, 2, 3, 4, 5, 6, 7),
                max_attempts_per_day=5, max_attempts_total=10, active=True,
            )  # fmt: skip
            campaign_id = campaign.id
    return int(campaign_id), simulated
