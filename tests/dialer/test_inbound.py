from dialer.agents import AgentSession, AgentState
from dialer.inbound import InboundQueue, WaitingCall, identify_caller
from tests.dialer.test_leads import make_cases


def inbound_agent(agent_id: int, idle_since: float) -> AgentSession:
    return AgentSession(agent_id, inbound=True).to(AgentState.READY, idle_since)


async def test_caller_is_identified_over_all_phones_and_linked_persons(conn):
    cases = await make_cases(
        conn,
        [
            [("+393331110000", ["Europe/Rome"]), ("+393332220000", ["Europe/Rome"])],
            [("+393333330000", ["Europe/Rome"])],
        ],
        [100, 900],
    )
    match = await identify_caller(conn, "+393332220000")
    assert match is not None and match.case_id == cases[0] and match.relation == "debtor"
    # The first debtor guarantees the second case: his call pops the larger, open case.
    debtor = await conn.fetchval("SELECT debtor_id FROM cases WHERE id = $1", cases[0])
    await conn.execute(
        "INSERT INTO debtor_links (case_id, debtor_id, relation) VALUES ($1, $2, 'guarantor')",
        cases[1],
        debtor,
    )
    match = await identify_caller(conn, "+393331110000")
    assert match.case_id == cases[1] and match.relation == "guarantor"
    assert set(match.case_ids) == set(cases)
    assert await identify_caller(conn, "+12125550000") is None


def test_queue_prefers_the_case_agent_then_the_longest_idle():
    queue = InboundQueue(max_wait=30)
    queue.arrive(WaitingCall("a", "+39", 1, preferred_agent_id=2, arrived=0.0))
    queue.arrive(WaitingCall("b", "+39", 2, preferred_agent_id=None, arrived=1.0))
    queue.arrive(WaitingCall("c", "+39", 3, preferred_agent_id=None, arrived=2.0))
    agents = [inbound_agent(1, 5.0), inbound_agent(2, 9.0)]
    assigned = queue.assign(agents)
    assert [(call.key, agent.agent_id) for call, agent in assigned] == [("a", 2), ("b", 1)]
    assert [c.key for c in queue.waiting] == ["c"]
    assert [c.key for c in queue.expired(31.9)] == []
    assert [c.key for c in queue.expired(32.0)] == ["c"]
    assert (queue.answered, queue.abandoned) == (2, 1)


def test_outbound_only_agents_do_not_take_inbound_calls_and_hangups_count():
    queue = InboundQueue()
    queue.arrive(WaitingCall("x", "+39", None, None, 0.0))
    outbound_only = AgentSession(1).to(AgentState.READY, 0.0)
    assert queue.assign([outbound_only]) == []
    assert queue.caller_hung_up("x") is not None and queue.abandoned == 1
