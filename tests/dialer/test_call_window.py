from datetime import UTC, date, datetime, time

import pytest

from core.phones import InvalidPhoneNumber, _country_zones, time_zones, to_e164
from dialer.call_window import CallWindow, open_zone_sets

WEEKDAYS = CallWindow(time(8, 0), time(21, 0), frozenset({1, 2, 3, 4, 5}))


def test_window_is_evaluated_in_the_debtors_local_time():
    # 13:30 UTC on a Tuesday: 08:30 in New York, 05:30 in Los Angeles.
    now = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    assert WEEKDAYS.open_in(["America/New_York"], now)
    assert not WEEKDAYS.open_in(["America/Los_Angeles"], now)


def test_a_number_in_several_zones_needs_the_window_in_all_of_them():
    now = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    assert not WEEKDAYS.open_in(["America/New_York", "America/Los_Angeles"], now)
    later = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 12:00 NY, 09:00 LA
    assert WEEKDAYS.open_in(["America/New_York", "America/Los_Angeles"], later)
    assert not WEEKDAYS.open_in([], later)


def test_days_and_holidays():
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert not WEEKDAYS.open_in(["Europe/Rome"], saturday)
    holiday = CallWindow(
        time(8), time(21), frozenset({1, 2, 3, 4, 5}), frozenset({date(2026, 12, 8)})
    )
    assert not holiday.open_in(["Europe/Rome"], datetime(2026, 12, 8, 12, tzinfo=UTC))
    assert holiday.open_in(["Europe/Rome"], datetime(2026, 12, 9, 12, tzinfo=UTC))


def test_next_open_finds_the_first_common_opening():
    friday_night = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
    opening = WEEKDAYS.next_open(["Europe/Rome", "Europe/London"], friday_night)
    # Monday 08:00 in Rome is 07:00 in London, so the common opening is 08:00 London.
    assert opening == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_never_overlapping_windows_have_no_opening():
    short = CallWindow(time(9), time(10), frozenset(range(1, 8)))
    assert (
        short.next_open(["Europe/Rome", "Asia/Tokyo"], datetime(2026, 11, 24, tzinfo=UTC)) is None
    )


def test_open_zone_sets():
    now = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    sets = [(1, ["America/New_York"]), (2, ["America/Los_Angeles"]), (3, ["Europe/Rome"])]
    assert open_zone_sets(WEEKDAYS, sets, now) == [1, 3]


def test_invalid_window_is_refused():
    with pytest.raises(ValueError, match="start must be before end"):
        CallWindow(time(21), time(8))


def test_phone_zones_come_from_the_number():
    assert time_zones(to_e164("+1 212 555 1234", "US")) == ("America/New_York",)
    uk_mobile = to_e164("07911 123456", "GB")
    assert uk_mobile == "+447911123456"
    assert "Europe/London" in time_zones(uk_mobile)
    assert time_zones(to_e164("333 123 4567", "IT")) == ("Europe/Rome", "Europe/Vatican")
    # A whole country, for numbers phonenumbers cannot place.
    assert "America/Los_Angeles" in _country_zones()["US"]
    with pytest.raises(InvalidPhoneNumber):
        to_e164("12", "IT")
