from dialer.agents import AgentSession, AgentState
from dialer.switchboard import Switchboard, WaitingCall


def agent(
    agent_id: int, idle_since: float, campaigns=frozenset({1}), inbound=False
) -> AgentSession:
    return AgentSession(agent_id, campaign_ids=campaigns, inbound=inbound).to(
        AgentState.READY, idle_since
    )


def live(key: str, at: float, case_agent: int | None = None, campaign: int = 1) -> WaitingCall:
    return WaitingCall(
        key, arrived=at, deadline=at + 2.0, campaign_id=campaign, preferred_agent_id=case_agent
    )


def test_live_answer_goes_to_the_case_agent_else_the_longest_idle():
    board = Switchboard()
    board.arrive(live("a", 0.0, case_agent=2))
    board.arrive(live("b", 0.5))
    assigned = board.assign([agent(1, 5.0), agent(2, 9.0), agent(3, 1.0)])
    assert [(c.key, a.agent_id) for c, a in assigned] == [("a", 2), ("b", 3)]
    assert board.waiting == {}


def test_live_answer_without_free_agent_is_abandoned_at_the_connect_limit():
    board = Switchboard()
    board.arrive(live("a", 10.0))
    assert board.assign([agent(1, 0.0).to(AgentState.PAUSED, 1.0, pause_reason="break")]) == []
    assert board.next_deadline() == 12.0
    assert board.expired(11.99) == []
    assert [c.key for c in board.expired(12.0)] == ["a"]


def test_agents_only_take_calls_of_their_campaigns_and_inbound_group():
    board = Switchboard()
    board.arrive(live("other", 0.0, campaign=2))
    board.arrive(live("mine", 0.1, campaign=1))
    board.arrive(WaitingCall("in", 0.2, 60.2, inbound=True, caller="+39333"))
    assigned = board.assign([agent(1, 0.0), agent(2, 0.0, campaigns=frozenset(), inbound=True)])
    assert sorted((c.key, a.agent_id) for c, a in assigned) == [("in", 2), ("mine", 1)]
    assert list(board.waiting) == ["other"]
    assert board.gone("other") is not None and board.waiting == {}
