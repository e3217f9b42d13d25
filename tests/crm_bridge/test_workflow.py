from datetime import UTC, datetime

import pytest

from core import audit
from core.identity import Actor, Role
from crm_bridge.workflow import (
    DEFAULT_WORKFLOW,
    StatusChangeRefused,
    WorkflowError,
    change_status,
    parse_workflow,
    save_workflow,
)
from tests.support.factories import new_case

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AGENT = Actor(None, "anna", Role.AGENT)
MANAGER = Actor(None, "marco", Role.MANAGER)
ADMIN = Actor(None, "root", Role.ADMIN)


async def test_agent_attempt_to_close_is_refused_clearly_and_audited(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
        with pytest.raises(StatusChangeRefused, match="only a manager or above may set 'Closed'"):
            await change_status(conn, pool, AGENT, case_id, "closed", NOW)
        assert await conn.fetchval("SELECT status FROM cases WHERE id = $1", case_id) == "new"
        [entry] = [
            e for e in await audit.entries_for(conn, "case", case_id) if e.action == "case.status"
        ]
        assert (entry.action, entry.outcome, entry.after["status"]) == (
            "case.status",
            "refused",
            "closed",
        )


async def test_refusal_is_audited_even_when_the_callers_transaction_rolls_back(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
        with pytest.raises(StatusChangeRefused):
            async with conn.transaction():
                await change_status(conn, pool, AGENT, case_id, "closed", NOW)
        entries = await audit.entries_for(conn, "case", case_id)
    assert [e.outcome for e in entries if e.action == "case.status"] == ["refused"]


async def test_status_change_writes_status_activity_and_audit_together(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
        act = await change_status(conn, pool, AGENT, case_id, "promise_to_pay", NOW, "will pay")
        assert act.summary == "Status: New → Promise to pay" and act.kind == "status_change"
        await change_status(conn, pool, MANAGER, case_id, "closed", NOW)
        row = await conn.fetchrow("SELECT status, closed_at FROM cases WHERE id = $1", case_id)
        assert row["status"] == "closed" and row["closed_at"] == NOW
        # Closed is final for agents: only a manager reopens.
        with pytest.raises(StatusChangeRefused):
            await change_status(conn, pool, AGENT, case_id, "new", NOW)
        with pytest.raises(WorkflowError, match="cannot move"):
            await change_status(conn, pool, MANAGER, case_id, "refused", NOW)
        done = [e for e in await audit.entries_for(conn, "case", case_id) if e.outcome == "done"]
    assert [e.after["status"] for e in done if e.action == "case.status"] == [
        "closed",
        "promise_to_pay",
    ]


async def test_portfolios_can_have_their_own_workflow(pool):
    definition = {
        "name": "soft",
        "initial": "new",
        "statuses": [
            {"code": "new", "label": "New", "next": ["agreed"]},
            {"code": "agreed", "label": "Agreed", "next": ["closed"]},
            {"code": "closed", "label": "Closed", "role": "supervisor", "final": True},
        ],
    }
    async with pool.acquire() as conn:
        with pytest.raises(Exception, match="changing workflows requires the admin role"):
            await save_workflow(conn, MANAGER, definition)
        await save_workflow(conn, ADMIN, definition)
        case_id = await new_case(conn, portfolio="SOFT", workflow="soft")
        with pytest.raises(WorkflowError, match="unknown status 'promise_to_pay'"):
            await change_status(conn, pool, AGENT, case_id, "promise_to_pay", NOW)
        await change_status(conn, pool, AGENT, case_id, "agreed", NOW)


def test_workflow_definitions_are_validated():
    with pytest.raises(WorkflowError, match="unknown status 'nowhere'"):
        parse_workflow({"name": "x", "statuses": [{"code": "a", "next": ["nowhere"]}]})
    with pytest.raises(WorkflowError, match="malformed"):
        parse_workflow({"name": "x", "statuses": [{"code": "a", "role": "emperor"}]})
    labels = [s.label for s in DEFAULT_WORKFLOW.allowed_after("new", Role.AGENT)]
    assert "Closed" not in labels and "Paid" not in labels and "Promise to pay" in labels
