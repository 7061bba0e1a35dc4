"""The report's time stamps: the cached fast path agrees with the plain formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from batcher.send.stats import utc_stamp


def _plain(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@given(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=20))
def test_utc_stamp_is_isoformat_to_the_millisecond(moments: list[datetime]) -> None:
    for moment in moments:
        assert utc_stamp(moment) == _plain(moment)


def test_stamps_within_one_second_and_across_it() -> None:
    start = datetime(2026, 11, 24, 13, 0, 59, 998_500, tzinfo=UTC)
    stamps = [utc_stamp(start + timedelta(microseconds=700 * n)) for n in range(4)]
    assert stamps == [
        "2026-11-24T13:00:59.998Z",
        "2026-11-24T13:00:59.999Z",
        "2026-11-24T13:00:59.999Z",
        "2026-11-24T13:01:00.000Z",
    ]
    # Back to an earlier second: the cache is not a clock that only goes forward.
    assert utc_stamp(start) == "2026-11-24T13:00:59.998Z"


def test_utc_stamp_without_a_moment_is_now() -> None:
    before = _plain(datetime.now(UTC))
    stamp = utc_stamp()
    after = _plain(datetime.now(UTC))
    assert before <= stamp <= after
