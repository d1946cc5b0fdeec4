"""Quality: mode and reasons from data age, gaps, overruns and clock skew (table-tested, pure)."""
from __future__ import annotations

import pytest

from actors.features.quality import OverrunClock, QualityParams, StreamInput, VenueInput, assess

S = 1_000_000_000
NOW = 1_800_000_000 * S
P = QualityParams(stale_ns=2 * S, max_skew_ns=S)


def venue(name="futures", trade=NOW - S // 10, quote=NOW - S // 10, overrun=(0, 0), gap=0, skew=20_000_000,
          lapped=(0, 0)):
    return VenueInput(name, (StreamInput("trade", trade, overrun[0], lapped[0]),
                             StreamInput("quote", quote, overrun[1], lapped[1])), gap, skew)


CASES = [
    ("fresh", venue(), [], 0, 100, "OK", []),
    ("nothing yet", venue(trade=None, quote=None, skew=None), [], 0, 1, "BAD",
     ["futures.trade: no data", "futures.quote: no data"]),
    ("quotes only", venue(trade=None), [], 0, 1, "BAD", ["futures.trade: no data"]),
    ("stale", venue(trade=NOW - 2_800_000_000, quote=NOW - 2_800_000_000), [], 0, 1, "BAD",
     ["futures.trade: stale 2.8s", "futures.quote: stale 2.8s"]),
    ("at the stale limit", venue(trade=NOW - 2 * S), [], 0, 1, "OK", []),
    ("skew", venue(skew=-1_270_000_000), [], 0, 1, "DEGRADED",
     ["futures: clock skew -1270 ms (receive − exchange time)"]),
    ("recent gap", venue(gap=NOW - 3 * S), [], 0, 1, "DEGRADED", ["futures: gap 3s ago"]),
    ("old gap", venue(gap=NOW - 30 * S), [], 0, 1, "OK", []),
    ("recent overrun", venue(overrun=(7, 0), lapped=(NOW - 3 * S, 0)), [], 0, 1, "DEGRADED",
     ["futures.trade: overrun 3s ago (7 records lost in all)"]),
    ("old overrun: remembered as long as a gap", venue(overrun=(7, 0), lapped=(NOW - 30 * S, 0)), [], 0, 1, "OK", []),
    ("a count without a time is not an overrun seen", venue(overrun=(7, 0)), [], 0, 1, "OK", []),
    ("other venue silent: not assessed", venue(), [venue("spot", None, None, skew=None)], 0, 1, "OK", []),
    ("other venue stale: degraded, not bad", venue(), [venue("spot", trade=NOW - 5 * S)], 0, 1, "DEGRADED",
     ["spot.trade: stale 5.0s"]),
    ("tick overruns over 1 %", venue(), [], 2, 100, "DEGRADED", ["compute: 2 tick overruns"]),
    ("tick overruns at 1 %", venue(), [], 1, 100, "OK", []),
]


@pytest.mark.parametrize("name,primary,others,overruns,ticks,mode,reasons", CASES, ids=[c[0] for c in CASES])
def test_quality_table(name, primary, others, overruns, ticks, mode, reasons):
    q = assess(NOW, primary, others, overruns, ticks, P)
    assert (q.mode, q.reasons) == (mode, reasons)


def chainlink(recv=NOW - S // 2, gap=0, required=True):
    return VenueInput("chainlink", (StreamInput("", recv),), gap, None, stale_ns=5 * S, required=required)


def books(up=NOW - S, down=NOW - S, required=True):
    return VenueInput("poly.15m", (StreamInput("UP", up), StreamInput("DOWN", down)), 0, None,
                      stale_ns=5 * S, required=required)


SOURCES = [
    ("chainlink fresh", [chainlink()], (), "OK", []),
    ("chainlink stale, its own limit", [chainlink(NOW - 7 * S)], (), "DEGRADED", ["chainlink: stale 7.0s"]),
    ("chainlink required, silent", [chainlink(None)], (), "DEGRADED", ["chainlink: no data"]),
    ("chainlink not required, silent: not assessed", [chainlink(None, required=False)], (), "OK", []),
    ("chainlink gap", [chainlink(gap=NOW - 2 * S)], (), "DEGRADED", ["chainlink: gap 2s ago"]),
    ("a book stale", [books(up=NOW - 6_200_000_000)], (), "DEGRADED", ["poly.15m.UP: stale 6.2s"]),
    ("books silent", [books(None, None)], (), "DEGRADED", ["poly.15m.UP: no data", "poly.15m.DOWN: no data"]),
    ("a critical source stale is BAD", [chainlink(NOW - 7 * S)], ("chainlink",), "BAD", ["chainlink: stale 7.0s"]),
    ("a critical source with a gap is DEGRADED", [chainlink(gap=NOW - 2 * S)], ("chainlink",), "DEGRADED",
     ["chainlink: gap 2s ago"]),
]


@pytest.mark.parametrize("name,others,critical,mode,reasons", SOURCES, ids=[c[0] for c in SOURCES])
def test_polymarket_and_chainlink_are_named(name, others, critical, mode, reasons):
    q = assess(NOW, venue(), others, 0, 1, P, critical=critical)
    assert (q.mode, q.reasons) == (mode, reasons)


def test_a_decision_is_judged_on_its_own_inputs():
    """The global quality names every source; a decision's own takes only the primary venue and its
    settlement source, so a spot-only problem or a skew elsewhere does not touch it."""
    spot_stale = venue("spot", trade=NOW - 5 * S, skew=-1_500_000_000)
    glob = assess(NOW, venue(), [spot_stale, chainlink()], 0, 1, P)
    assert glob.mode == "DEGRADED" and glob.reasons == [
        "spot.trade: stale 5.0s", "spot: clock skew -1500 ms (receive − exchange time)"]
    own_chainlink_window = assess(NOW, venue(), [chainlink()], 0, 0, P, critical=("chainlink",))
    assert (own_chainlink_window.mode, own_chainlink_window.reasons) == ("OK", [])
    # a window settling on the spot candle: spot is its settlement source
    own_candle_window = assess(NOW, venue(), [spot_stale], 0, 0, P, critical=("spot",))
    assert own_candle_window.mode == "BAD" and own_candle_window.reasons == glob.reasons


def test_params_from_settings_carry_units():
    from config.settings import load_settings
    p = QualityParams.from_settings(load_settings(health_data_stale_sec=2.5, quality_max_skew_ms=750))
    assert (p.stale_ns, p.max_skew_ns) == (2_500_000_000, 750_000_000)


def test_an_overrun_is_remembered_like_a_gap_then_forgotten():
    """A reader's count only grows; quality reports it from the tick the count changed, for
    gap_memory_ns (30 s), then no more, until the count grows again (an overrun on Chainlink, a
    critical settlement source, degrades and does not make BAD)."""
    clock = OverrunClock()
    t0 = NOW - 40 * S
    clock.see(0, t0)
    assert (clock.count, clock.last_ns) == (0, 0)
    clock.see(12, t0 + S)                          # lapped: 12 records lost
    assert clock.stream("", NOW) == StreamInput("", NOW, 12, t0 + S)

    def chainlink_q(now):
        v = VenueInput("chainlink", (clock.stream("", now - S // 2),), 0, None, stale_ns=5 * S, required=True)
        q = assess(now, venue(), [v], 0, 0, P, critical=("chainlink",))
        return q.mode, q.reasons

    assert chainlink_q(t0 + 2 * S) == ("DEGRADED", ["chainlink: overrun 1s ago (12 records lost in all)"])
    clock.see(12, t0 + 20 * S)                     # unchanged count: the time stays
    assert chainlink_q(t0 + 30 * S) == ("DEGRADED", ["chainlink: overrun 29s ago (12 records lost in all)"])
    assert chainlink_q(t0 + 31 * S) == ("OK", [])
    clock.see(15, t0 + 35 * S)                     # lapped again
    assert chainlink_q(t0 + 35 * S) == ("DEGRADED", ["chainlink: overrun 0s ago (15 records lost in all)"])
