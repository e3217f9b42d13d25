from datetime import UTC, datetime, timedelta

from dialer.retry import AttemptOutcome, LeadState, RetryRules, next_step

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_busy_retries_after_its_delay():
    step = next_step(AttemptOutcome.BUSY, 1, 1, RetryRules(), NOW, TOMORROW)
    assert step.state is LeadState.SCHEDULED
    assert step.next_attempt_at == NOW + timedelta(minutes=10)


def test_daily_limit_moves_the_retry_to_the_next_day():
    step = next_step(AttemptOutcome.BUSY, 3, 3, RetryRules(max_per_day=3), NOW, TOMORROW)
    assert step.next_attempt_at == TOMORROW


def test_total_limit_exhausts_the_lead():
    step = next_step(AttemptOutcome.NO_ANSWER, 10, 1, RetryRules(max_total=10), NOW, TOMORROW)
    assert step.state is LeadState.EXHAUSTED


def test_abandoned_call_respects_the_profile_embargo():
    rules = RetryRules(abandon_embargo=timedelta(hours=72))
    step = next_step(AttemptOutcome.ABANDONED, 1, 1, rules, NOW, TOMORROW)
    assert step.next_attempt_at == NOW + timedelta(hours=72)


def test_wrong_number_deactivates_that_phone_only_and_connected_is_done():
    wrong = next_step(AttemptOutcome.WRONG_NUMBER, 1, 1, RetryRules(), NOW, TOMORROW)
    assert wrong.deactivate_phone and wrong.state is LeadState.SCHEDULED
    assert (
        next_step(AttemptOutcome.CONNECTED, 1, 1, RetryRules(), NOW, TOMORROW).state
        is LeadState.DONE
    )
