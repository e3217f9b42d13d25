"""Cases that must not be contacted (paid, closed, withdrawn by the creditor, or any status
its workflow marks so) are never claimed, and a status change stops their queued leads."""

from datetime import timedelta

import asyncpg
import pytest

from core import audit, users
from core.identity import SYSTEM, Actor, Role
from crm_bridge.workflow import StatusChangeRefused, change_status, save_workflow
from dialer.leads import (
    claim_leads,
    finish_attempt,
    load_leads,
    release_claims,
    schedule_callback,
    skip_lead,
    zone_sets,
)
from dialer.retry import AttemptOutcome, LeadState
from tests.dialer.test_leads import NOW, ROME, TODAY, campaign, due_claims, make_cases

MANAGER = Actor(None, "marco", Role.MANAGER)
ADMIN = Actor(None, "root", Role.ADMIN)


async def claim_all(conn: asyncpg.Connection, c, at=NOW) -> list:
    return await claim_leads(conn, c, at, 100, "n", TODAY, await zone_sets(conn))


async def lead_of(conn: asyncpg.Connection, case_id: int) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT id, state, cancel_reason, cancelled_at FROM leads WHERE case_id = $1", case_id
    )


async def test_cases_set_to_paid_with_ready_leads_are_never_claimed(pool):
    async with pool.acquire() as conn:
        case_ids = await make_cases(conn, [[(f"+3933300010{i:02d}", ROME)] for i in range(8)])
        c = await campaign(conn)
        assert await load_leads(conn, c, NOW, ROME) == 8
        paid = case_ids[:6]
        for case_id in paid:
            await change_status(conn, pool, MANAGER, case_id, "paid", NOW)
        claimed = await claim_all(conn, c)
        assert sorted(lead.case_id for lead in claimed) == sorted(case_ids[6:])
        for case_id in paid:
            lead = await lead_of(conn, case_id)
            assert (lead["state"], lead["cancel_reason"]) == ("cancelled", "case status paid")
            assert lead["cancelled_at"] is not None
            entries = await audit.entries_for(conn, "case", case_id)
            assert {"case.status", "lead.cancel"} <= {e.action for e in entries}
            [cancel] = [e for e in entries if e.action == "lead.cancel"]
            assert cancel.after == {"lead_ids": [lead["id"]], "reason": "case status paid"}
        # Later claims, when the leads would have been due again, find nothing either.
        assert await due_claims(conn, c, NOW + timedelta(days=1), 100) == []


async def test_closed_and_withdrawn_cases_are_not_claimed_and_agents_cannot_withdraw(pool):
    async with pool.acquire() as conn:
        closed, withdrawn, open_ = await make_cases(
            conn, [[(f"+3933300020{i:02d}", ROME)] for i in range(3)]
        )
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        await change_status(conn, pool, MANAGER, closed, "closed", NOW)
        with pytest.raises(
            StatusChangeRefused, match="only a manager or above may set 'Withdrawn'"
        ):
            await change_status(
                conn, pool, Actor(None, "anna", Role.AGENT), withdrawn, "withdrawn", NOW
            )
        await change_status(conn, pool, MANAGER, withdrawn, "withdrawn", NOW, "recalled")
        assert [lead.case_id for lead in await claim_all(conn, c)] == [open_]
        assert (await lead_of(conn, withdrawn))["cancel_reason"] == "case status withdrawn"
        row = await conn.fetchrow(
            "SELECT contactable, closed_at FROM cases WHERE id = $1", withdrawn
        )
        assert row["contactable"] is False and row["closed_at"] == NOW


async def test_a_claim_racing_a_status_change_never_takes_the_case(pool):
    async with pool.acquire() as conn:
        [case_id] = await make_cases(conn, [[("+393330003000", ROME)]])
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
    async with pool.acquire() as changer, pool.acquire() as claimer:
        tx = changer.transaction()
        await tx.start()
        await change_status(changer, pool, MANAGER, case_id, "paid", NOW)
        # The change is not committed yet: the claim must not take the lead meanwhile.
        assert await claim_all(claimer, c) == []
        await tx.commit()
        assert await claim_all(claimer, c) == []


async def test_a_dialing_lead_keeps_its_call_but_is_never_requeued(pool):
    async with pool.acquire() as conn:
        cases = await make_cases(conn, [[(f"+3933300040{i:02d}", ROME)] for i in range(3)])
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        leads = {lead.case_id: lead for lead in await claim_all(conn, c)}
        for case_id in cases:
            await change_status(conn, pool, MANAGER, case_id, "paid", NOW)
            assert (await lead_of(conn, case_id))["state"] == "dialing"  # its call goes on
        step = await finish_attempt(
            conn, c, leads[cases[0]].id, AttemptOutcome.NO_ANSWER, NOW, ROME
        )
        assert step.state is LeadState.CANCELLED
        assert await release_claims(conn, "n", [leads[cases[1]].id]) == 1
        assert await skip_lead(conn, "n", leads[cases[2]].id, NOW + timedelta(minutes=30))
        for case_id in cases:
            assert (await lead_of(conn, case_id))["state"] == "cancelled"
        assert await due_claims(conn, c, NOW + timedelta(days=1), 100) == []


async def test_a_connected_call_of_a_case_paid_meanwhile_ends_done(pool):
    async with pool.acquire() as conn:
        [case_id] = await make_cases(conn, [[("+393330004100", ROME)]])
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        [lead] = await claim_all(conn, c)
        await change_status(conn, pool, MANAGER, case_id, "paid", NOW)
        step = await finish_attempt(conn, c, lead.id, AttemptOutcome.CONNECTED, NOW, ROME)
        assert step.state is LeadState.DONE
        assert (await lead_of(conn, case_id))["state"] == "done"


async def test_pending_callbacks_are_cancelled_and_none_can_be_scheduled(pool):
    from dialer.leads import NotContactable

    async with pool.acquire() as conn:
        agent = await users.create_user(conn, SYSTEM, "cb", "password1", Role.AGENT)
        [case_id] = await make_cases(conn, [[("+393330005000", ROME)]])
        c = await campaign(conn)
        other = await campaign(conn, name="c2")
        await load_leads(conn, c, NOW, ROME)
        at = NOW + timedelta(hours=1)
        callback = await schedule_callback(conn, agent.actor, other, case_id, at, agent.id, ROME)
        await change_status(conn, pool, MANAGER, case_id, "paid", NOW)
        states = await conn.fetch(
            "SELECT campaign_id, state FROM leads WHERE case_id = $1 ORDER BY campaign_id", case_id
        )
        assert [(r["campaign_id"], r["state"]) for r in states] == [
            (c.id, "cancelled"),
            (other.id, "cancelled"),
        ]
        assert await due_claims(conn, other, at, 10) == []
        with pytest.raises(NotContactable, match="must not be contacted"):
            await schedule_callback(conn, agent.actor, other, case_id, at, agent.id, ROME)
        assert (await conn.fetchval("SELECT state FROM leads WHERE id = $1", callback)) == (
            "cancelled"
        )


async def test_reopening_does_not_resurrect_leads_but_the_next_campaign_load_does(pool):
    async with pool.acquire() as conn:
        [case_id] = await make_cases(conn, [[("+393330006000", ROME)]])
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        await change_status(conn, pool, MANAGER, case_id, "paid", NOW)
        assert await load_leads(conn, c, NOW, ROME) == 0  # a no-contact case is not loaded
        await change_status(conn, pool, MANAGER, case_id, "new", NOW, "payment bounced")
        assert await claim_all(conn, c) == []
        assert (await lead_of(conn, case_id))["state"] == "cancelled"
        later = NOW + timedelta(hours=1)
        assert await load_leads(conn, c, later, ROME) == 1
        lead = await lead_of(conn, case_id)
        assert (lead["state"], lead["cancel_reason"]) == ("ready", None)
        assert [x.case_id for x in await claim_all(conn, c, later)] == [case_id]


async def test_a_custom_workflow_marks_its_own_no_contact_statuses(pool):
    definition = {
        "name": "soft",
        "initial": "new",
        "statuses": [
            {"code": "new", "label": "New", "next": ["dispute", "deceased"]},
            {"code": "dispute", "label": "Dispute", "next": ["new"]},
            {"code": "deceased", "label": "Deceased", "no_contact": True, "next": ["new"]},
        ],
    }
    async with pool.acquire() as conn:
        workflow = await save_workflow(conn, ADMIN, definition)
        assert workflow.status("deceased").no_contact and not workflow.status("new").no_contact
        cases = await make_cases(conn, [[(f"+3933300070{i:02d}", ROME)] for i in range(3)])
        await conn.execute("UPDATE portfolios SET workflow = 'soft'")
        c = await campaign(conn)
        await load_leads(conn, c, NOW, ROME)
        await change_status(conn, pool, MANAGER, cases[0], "deceased", NOW)
        await change_status(conn, pool, MANAGER, cases[1], "dispute", NOW)
        # The admin decides that disputed cases are not to be called either: the cases
        # already in that status stop at once.
        definition["statuses"][1]["no_contact"] = True
        await save_workflow(conn, ADMIN, definition)
        assert [lead.case_id for lead in await claim_all(conn, c)] == [cases[2]]
        assert (await lead_of(conn, cases[1]))["cancel_reason"] == "case status dispute"
