"""actors/venues/http.py: the one backoff rule, Retry-After reading and capping, a host's pause."""
from __future__ import annotations

import math

from actors.venues.http import HostPause, backoff_sec, clamp_sec, header, retry_after_value_sec

NOW = 1_800_000_000.0       # epoch s: 2027-01-15T08:00:00Z


def test_backoff_doubles_to_its_cap_and_never_overflows():
    assert [backoff_sec(k, 0.5, 30.0) for k in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_sec(10 ** 9, 0.5, 30.0) == 30.0          # 2**1e9 would overflow
    assert backoff_sec(3, 0.5, 30.0, 0.5) == 2.0            # the caller's jitter scales it


def test_retry_after_reads_seconds_dates_and_junk():
    assert retry_after_value_sec("7") == 7.0 and retry_after_value_sec(" 2.5 ") == 2.5
    assert retry_after_value_sec("inf") == math.inf and retry_after_value_sec("1e400") == math.inf
    assert retry_after_value_sec("-3") == -3.0
    assert retry_after_value_sec(None) is None and retry_after_value_sec("NaN") is None
    assert retry_after_value_sec("soon") is None and retry_after_value_sec("soon", NOW) is None
    assert retry_after_value_sec("Fri, 15 Jan 2027 08:00:30 GMT", NOW) == 30.0
    assert retry_after_value_sec("Fri, 15 Jan 2027 08:00:30 GMT") is None      # a date needs the clock
    assert retry_after_value_sec("Fri, 31 Dec 9999 23:59:59 GMT", NOW) > 2.5e11
    assert (clamp_sec(math.inf, 600.0), clamp_sec(-3.0, 600.0), clamp_sec(math.nan, 600.0),
            clamp_sec(12.0, 600.0, 1.0)) == (600.0, 0.0, 600.0, 12.0)
    assert header([("retry-after", "4")], "Retry-After") == "4" and header({}, "Retry-After") is None


def test_a_host_pause_is_capped_only_moves_later_and_ignores_other_statuses():
    p = HostPause(cap_sec=60.0)
    assert p.on_response(200, {"Retry-After": "5"}, 100.0, 5.0) is None
    assert p.on_response(503, {}, 100.0, 5.0) is None               # a 503 without Retry-After: a retry
    assert p.on_response(429, {"Retry-After": "inf"}, 100.0, 5.0) == 60.0
    assert p.remaining_sec(100.0) == 60.0 and p.remaining_sec(170.0) == 0.0
    assert p.on_response(429, {"retry-after": "2"}, 101.0, 5.0) == 2.0   # a shorter one keeps the longer
    assert p.until_s == 160.0
    assert p.on_response(429, {}, 200.0, 5.0) == 5.0                    # none: the caller's default
    assert p.on_response(503, {"Retry-After": "1e300"}, 300.0, 5.0) == 60.0
    assert p.on_response(429, {"Retry-After": "-7"}, 400.0, 5.0) == 0.0
    assert p.pauses == 5 and p.until_s == 400.0
