from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core import audit, cases, promises, users
from core.cases import CaseError
from core.debtors import DebtorError, DebtorInput, PhoneInput, create_debtor
from core.identity import SYSTEM, Actor, PermissionDenied, Role
from tests.support.factories import new_case

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)


@pytest.fixture
async def agent(conn) -> Actor:
    user = await users.create_user(conn, SYSTEM, "anna", "password1", Role.AGENT)
    return user.actor


async def balance(conn, case_id):
    row = await conn.fetchrow(
        "SELECT total_due, total_paid, balance FROM cases WHERE id = $1", case_id
    )
    return row["total_due"], row["total_paid"], row["balance"]


async def test_balance_follows_debts_and_payments(conn):
    case_id = await new_case(conn, capital="1000.00")  # + 50.00 interest
    assert await balance(conn, case_id) == (Decimal("1050.00"), 0, Decimal("1050.00"))
    await cases.add_debt(conn, SYSTEM, case_id, capital="200.10", fees="9.90")
    payment, act = await promises.record_payment(
        conn, SYSTEM, case_id, "300", TODAY, NOW, "bank", "BANK-1"
    )
    assert act is not None and "300" in act.summary
    assert await balance(conn, case_id) == (
        Decimal("1260.00"),
        Decimal("300.00"),
        Decimal("960.00"),
    )
    # The bank re-sends the same payment: counted once.
    again, none = await promises.record_payment(
        conn, SYSTEM, case_id, "300", TODAY, NOW, "bank", "BANK-1"
    )
    assert again.id == payment.id and none is None
    assert (await balance(conn, case_id))[2] == Decimal("960.00")


async def test_money_is_exact(conn, agent):
    case_id = await new_case(conn)
    with pytest.raises(CaseError, match="two decimals"):
        await promises.record_payment(conn, SYSTEM, case_id, "10.005", TODAY, NOW)
    with pytest.raises(CaseError, match="not an amount"):
        await cases.add_debt(conn, SYSTEM, case_id, capital="ten")
    with pytest.raises(PermissionDenied):
        await cases.add_debt(conn, agent, case_id, capital="10")


async def test_promises_are_kept_by_payments_or_broken_when_overdue(conn, agent):
    case_id = await new_case(conn)
    promise, act = await promises.add_promise(
        conn, agent, case_id, "150.00", date(2026, 12, 1), TODAY, NOW
    )
    assert act.kind == "promise" and act.agent_id == agent.user_id
    other_case = await new_case(conn, last_name="Verdi")
    await promises.add_promise(conn, agent, other_case, "80", date(2026, 11, 30), TODAY, NOW)
    await promises.record_payment(conn, SYSTEM, case_id, "150.00", date(2026, 11, 28), NOW)
    assert await conn.fetchval("SELECT status FROM promises WHERE id = $1", promise.id) == "kept"
    assert await promises.break_overdue_promises(conn, date(2026, 12, 1)) == 1
    assert (
        await conn.fetchval("SELECT status FROM promises WHERE case_id = $1", other_case)
        == "broken"
    )
    with pytest.raises(CaseError, match="past"):
        await promises.add_promise(conn, agent, case_id, "10", date(2026, 1, 1), TODAY, NOW)


async def test_notes_assignment_and_sentiment_are_audited(conn, agent):
    case_id = await new_case(conn)
    note = await cases.add_note(conn, agent, case_id, "Called back\nwill pay on Friday", NOW)
    assert note.summary == "Called back" and note.body.endswith("Friday")
    with pytest.raises(PermissionDenied):
        await cases.assign_case(conn, agent, case_id, agent.user_id)
    await cases.set_sentiment(conn, agent, case_id, "cooperative")
    with pytest.raises(CaseError, match="sentiment"):
        await cases.set_sentiment(conn, agent, case_id, "grumpy")
    actions = [e.action for e in await audit.entries_for(conn, "case", case_id)]
    assert "note.add" in actions and "case.sentiment" in actions


async def test_case_card_has_everything_for_the_screen(conn):
    case_id = await new_case(conn, phones=("+393331112222", "02 1234 5678"))
    card = await cases.case_card(conn, case_id)
    assert card["debtor"]["last_name"] == "Rossi"
    assert [p["e164"] for p in card["phones"]] == ["+393331112222", "+390212345678"]
    assert card["phones"][0]["time_zones"] == ["Europe/Rome", "Europe/Vatican"]
    assert card["balance"] == "1050.00" and card["creditor_code"] == "BANK"
    with pytest.raises(cases.CaseNotFound):
        await cases.case_card(conn, 999999)


async def test_debtor_validation_names_the_problem(conn):
    with pytest.raises(DebtorError, match="phone '12'"):
        await create_debtor(
            conn, SYSTEM, DebtorInput(last_name="X", phones=[PhoneInput("12")]), "IT"
        )
    with pytest.raises(DebtorError, match="last name"):
        await create_debtor(conn, SYSTEM, DebtorInput(first_name="X"), "IT")
