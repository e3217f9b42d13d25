"""Upgrading a database with cases already paid or closed: the migration marks them not
contactable by their portfolio's workflow, so the claim refuses them from the start."""

import pytest

from core import db

NEW = {("core", "case_contactable"), ("crm_bridge", "no_contact_backfill"),
       ("dialer", "no_contact_leads")}  # fmt: skip


async def test_the_migration_marks_existing_no_contact_cases(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
):
    every = db.discover_migrations()
    assert NEW <= {(m.package, m.name) for m in every}
    before = [m for m in every if (m.package, m.name) not in NEW]
    conn = await db.connect(empty_database_url)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(db, "discover_migrations", lambda packages=(): before)
            await db.migrate(conn)
        await conn.execute(
            "INSERT INTO workflows (name, definition) VALUES ('soft', $1)",
            (
                {
                    "name": "soft",
                    "initial": "new",
                    "statuses": [
                        {"code": "new", "next": ["paid", "gone"]},
                        {"code": "paid", "next": ["new"]},  # an ordinary status here
                        {"code": "gone", "final": True},
                    ],
                }
            ),
        )
        await conn.execute("INSERT INTO creditors (code, name) VALUES ('b', 'B')")
        await conn.execute(
            "INSERT INTO portfolios (creditor_id, code, name, workflow) "
            "VALUES (1, 'std', 'Standard', 'default'), (1, 'soft', 'Soft', 'soft')"
        )
        await conn.execute("INSERT INTO debtors (last_name) VALUES ('Rossi')")
        rows = [(1, "new"), (1, "paid"), (1, "closed"), (1, "refused"), (2, "new"),
                (2, "paid"), (2, "gone")]  # fmt: skip
        for n, (portfolio, status) in enumerate(rows):
            await conn.execute(
                "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, status) "
                "VALUES (1, $1, 1, $2, $3)",
                portfolio,
                f"R{n}",
                status,
            )
        await db.migrate(conn)
        found = await conn.fetch(
            "SELECT portfolio_id, status, contactable FROM cases ORDER BY reference"
        )
    finally:
        await conn.close()
    assert [(r["portfolio_id"], r["status"], r["contactable"]) for r in found] == [
        (1, "new", True),
        (1, "paid", False),
        (1, "closed", False),
        (1, "refused", True),
        (2, "new", True),
        (2, "paid", True),
        (2, "gone", False),
    ]
