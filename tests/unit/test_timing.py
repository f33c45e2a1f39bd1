from datetime import UTC, datetime, timedelta, timezone

import pytest

from herald.errors import NonexistentLocalTime, ScheduleError, TimeInPast, UnknownTimeZone
from herald.timing import LocalTime, check_not_past, resolve, to_utc, zone


def test_ordinary_local_time():
    got = resolve(LocalTime(datetime(2026, 7, 1, 9, 0), "Europe/Paris"))
    assert got == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_gap_is_an_error_naming_the_gap():
    with pytest.raises(NonexistentLocalTime, match=r"does not exist in Europe/Paris.*60 minutes"):
        resolve(LocalTime(datetime(2026, 3, 29, 2, 30), "Europe/Paris"))


@pytest.mark.parametrize(
    ("wall", "zone_name", "expected_utc"),
    [
        # Spring forward 02:00 -> 03:00: 02:30 becomes 03:30 CEST.
        (datetime(2026, 3, 29, 2, 30), "Europe/Paris", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # New York: 02:30 becomes 03:30 EDT.
        (datetime(2026, 3, 8, 2, 30), "America/New_York", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
        # Lord Howe moves by 30 minutes: 02:15 becomes 02:45 (+11:00).
        (
            datetime(2026, 10, 4, 2, 15),
            "Australia/Lord_Howe",
            datetime(2026, 10, 3, 15, 45, tzinfo=UTC),
        ),
    ],
)
def test_gap_shifts_forward_by_its_length_when_asked(wall, zone_name, expected_utc):
    assert resolve(LocalTime(wall, zone_name), on_gap="shift") == expected_utc


def test_fold_takes_first_occurrence_by_default():
    # Fall back 03:00 -> 02:00 in Paris: 02:30 happens at 00:30 UTC and again at 01:30 UTC.
    local = LocalTime(datetime(2026, 10, 25, 2, 30), "Europe/Paris")
    assert resolve(local) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert resolve(local, on_fold="later") == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_on_fold_later_does_not_change_unambiguous_times():
    local = LocalTime(datetime(2026, 10, 25, 12, 0), "Europe/Paris")
    assert resolve(local, on_fold="later") == resolve(local)


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "../etc/passwd", " Europe/Paris", "/etc/localtime"]
)
def test_unknown_zone(name):
    with pytest.raises(UnknownTimeZone):
        zone(name)


def test_local_time_must_be_naive():
    with pytest.raises(ScheduleError, match="must not carry"):
        resolve(LocalTime(datetime(2026, 7, 1, 9, 0, tzinfo=UTC), "Europe/Paris"))


def test_to_utc_refuses_naive_and_converts_offsets():
    with pytest.raises(ScheduleError, match="ambiguous"):
        to_utc(datetime(2026, 7, 1, 9, 0))
    got = to_utc(datetime(2026, 7, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))))
    assert got == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_check_not_past_grace():
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    check_not_past(now - timedelta(seconds=30), now=now, grace=timedelta(minutes=1))
    with pytest.raises(TimeInPast, match="120 s in the past"):
        check_not_past(now - timedelta(minutes=2), now=now, grace=timedelta(minutes=1))
