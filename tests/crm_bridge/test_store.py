from datetime import UTC, date, datetime

import pytest

from core import cases, promises, users
from core.identity import SYSTEM, PermissionDenied, Role
from crm_bridge.store import (
    FilterError,
    birthdays,
    delete_filter,
    list_filters,
    parse_filter,
    save_filter,
    search,
)
from tests.support.factories import new_case

TODAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


async def refs(conn, actor, team, **raw) -> list[str]:
    page = await search(conn, actor, team, parse_filter(raw), TODAY)
    return sorted(item["reference"] for item in page.items)


async def test_predicates(conn):
    await new_case(conn, reference="A", capital="100.00", last_name="Rossi")
    b = await new_case(
        conn,
        reference="B",
        capital="5000.00",
        last_name="Bianchi",
        birth_date=date(1970, 11, 24),
        phones=("+393339998877",),
    )
    c = await new_case(conn, reference="C", capital="900.00", last_name="Verdi")
    await promises.add_promise(conn, SYSTEM, c, "50", date(2026, 11, 25), date(2026, 11, 20), NOW)
    assert await refs(conn, SYSTEM, None, balance_min="1000") == ["B"]
    assert await refs(conn, SYSTEM, None, birthday_today=True) == ["B"]
    assert await refs(conn, SYSTEM, None, promises_overdue=True) == []
    page = await search(
        conn, SYSTEM, None, parse_filter({"promises_overdue": True}), date(2026, 11, 26)
    )
    assert [i["reference"] for i in page.items] == ["C"]
    assert await refs(conn, SYSTEM, None, text="bianchi") == ["B"]
    assert await refs(conn, SYSTEM, None, text="9998877") == ["B"]
    assert await refs(conn, SYSTEM, None, text="verdi@example.org") == ["C"]
    assert await refs(conn, SYSTEM, None, text="100%_") == []  # wildcards are literal
    assert await refs(conn, SYSTEM, None, statuses=["new"]) == ["A", "B", "C"]
    assert b


async def test_pages_by_balance_with_a_cursor(conn):
    for n in range(7):
        await new_case(conn, reference=f"R{n}", capital=f"{100 * (n + 1)}.00")
    f = parse_filter({"sort": "balance"})
    seen = []
    page = await search(conn, SYSTEM, None, f, TODAY, limit=3)
    while True:
        seen += [i["reference"] for i in page.items]
        if page.next_cursor is None:
            break
        page = await search(conn, SYSTEM, None, f, TODAY, limit=3, cursor=page.next_cursor)
    assert seen == [f"R{n}" for n in range(6, -1, -1)]


async def test_agents_see_their_own_and_their_teams_cases_only(conn):
    team = await users.ensure_team(conn, "North")
    anna = await users.create_user(conn, SYSTEM, "anna", "password1", Role.AGENT, team_id=team)
    mine = await new_case(conn, reference="MINE")
    ours = await new_case(conn, reference="OURS")
    await new_case(conn, reference="OTHER")
    await cases.assign_case(conn, SYSTEM, mine, anna.id)
    await cases.assign_case(conn, SYSTEM, ours, None, team)
    assert await refs(conn, anna.actor, team) == ["MINE", "OURS"]
    assert len(await refs(conn, SYSTEM, None)) == 3


def test_filters_are_validated():
    with pytest.raises(FilterError, match="unknown filter keys: drop_table"):
        parse_filter({"drop_table": "cases"})
    with pytest.raises(FilterError, match="balance_min"):
        parse_filter({"balance_min": "lots"})
    with pytest.raises(FilterError, match="sort"):
        parse_filter({"sort": "random"})


async def test_saved_filters_private_or_shared(conn):
    anna = await users.create_user(conn, SYSTEM, "anna", "password1", Role.AGENT)
    boss = await users.create_user(conn, SYSTEM, "boss", "password1", Role.SUPERVISOR)
    mine = await save_filter(conn, anna.actor, "big ones", {"balance_min": "1000"})
    with pytest.raises(PermissionDenied):
        await save_filter(conn, anna.actor, "for all", {"statuses": ["new"]}, shared=True)
    await save_filter(conn, boss.actor, "birthdays", {"birthday_today": True}, shared=True)
    assert [f.name for f in await list_filters(conn, anna.actor)] == ["big ones", "birthdays"]
    assert [f.name for f in await list_filters(conn, boss.actor)] == ["birthdays"]
    with pytest.raises(PermissionDenied):
        await delete_filter(conn, boss.actor, mine.id)
    await delete_filter(conn, anna.actor, mine.id)
    assert [f.name for f in await list_filters(conn, anna.actor)] == ["birthdays"]


async def test_birthdays_in_any_year_and_on_leap_days(conn):
    await new_case(conn, reference="OLD", last_name="Neri", birth_date=date(1901, 11, 24))
    await new_case(conn, reference="NEXT", last_name="Gialli", birth_date=date(1970, 11, 25))
    await new_case(conn, reference="LEAP", last_name="Blu", birth_date=date(1984, 2, 29))
    assert await refs(conn, SYSTEM, None, birthday_today=True) == ["OLD"]
    page = await search(
        conn, SYSTEM, None, parse_filter({"birthday_today": True}), date(2028, 2, 29)
    )
    assert [i["reference"] for i in page.items] == ["LEAP"]
    # On 28 February of a year without a 29th, only the 28th's birthdays (as before).
    page = await search(
        conn, SYSTEM, None, parse_filter({"birthday_today": True}), date(2027, 2, 28)
    )
    assert page.items == []
    days = birthdays(date(2027, 2, 28))
    assert days[0] == date(1850, 2, 28) and days[-1] == date(2027, 2, 28) and len(days) == 178
    assert len(birthdays(date(2028, 2, 29))) == len(
        [y for y in range(1850, 2029) if y % 4 == 0 and (y % 100 or y % 400 == 0)]
    )


async def test_birthday_lookups_use_the_date_index(conn):
    await conn.execute(
        "INSERT INTO debtors (last_name, birth_date) "
        "SELECT 'x', date '1940-01-01' + (g % 20000) FROM generate_series(1, 20000) g"
    )
    await conn.execute("ANALYZE debtors")
    plan = await conn.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT id FROM debtors WHERE birth_date = ANY($1::date[])",
        birthdays(TODAY),
    )
    assert "debtors_birth_date_idx" in str(plan)
