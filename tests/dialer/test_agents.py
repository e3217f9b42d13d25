import pytest

from dialer.agents import AgentSession, AgentState, AgentStateError, pick_agent


def ready(agent_id: int, idle_since: float, campaigns=frozenset({1})) -> AgentSession:
    return AgentSession(agent_id, campaign_ids=campaigns).to(AgentState.READY, idle_since)


def test_a_shift_of_states_counts_calls_and_talk_time():
    s = ready(7, 0.0)
    s = s.to(AgentState.RESERVED, 10.0, case_id=42, attempt_key="a1")
    s = s.to(AgentState.ON_CALL, 10.5)
    assert s.case_id == 42 and s.attempt_key == "a1"
    s = s.to(AgentState.WRAP_UP, 190.5)
    assert (s.calls, s.talk_seconds) == (1, 180.0)
    assert s.overrun(250.5, wrap_up_max=30, pause_max={}) == 30.0
    s = s.to(AgentState.READY, 260.0)
    assert s.case_id is None and s.idle_since == 260.0


def test_illegal_transitions_and_pauses_need_a_reason():
    s = ready(1, 0.0)
    with pytest.raises(AgentStateError, match="cannot go from ready to wrap_up"):
        s.to(AgentState.WRAP_UP, 1.0)
    with pytest.raises(AgentStateError, match="reason"):
        s.to(AgentState.PAUSED, 1.0)
    paused = s.to(AgentState.PAUSED, 1.0, pause_reason="break")
    assert paused.overrun(1.0 + 16 * 60, 30, {"break": 15 * 60}) == 60.0


def test_longest_idle_ready_agent_takes_the_call_unless_the_case_agent_is_ready():
    agents = [ready(1, 50.0), ready(2, 10.0), ready(3, 30.0)]
    busy = ready(4, 0.0).to(AgentState.PAUSED, 1.0, pause_reason="lunch")
    assert pick_agent([*agents, busy], campaign_id=1).agent_id == 2
    assert pick_agent(agents, campaign_id=1, preferred_agent_id=3).agent_id == 3
    assert pick_agent(agents, campaign_id=1, preferred_agent_id=4).agent_id == 2
    assert pick_agent(agents, campaign_id=9) is None
    assert pick_agent([busy], campaign_id=1) is None


def test_a_reserved_agent_that_gets_no_call_keeps_its_place_in_line():
    s = ready(1, 5.0).to(AgentState.RESERVED, 9.0).to(AgentState.READY, 9.2)
    assert s.idle_since == 5.0
