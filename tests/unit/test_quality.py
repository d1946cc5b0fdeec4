"""Quality: mode and reasons from data age, gaps, overruns and clock skew (table-tested, pure)."""
from __future__ import annotations

import pytest

from actors.features.quality import QualityParams, StreamInput, VenueInput, assess

S = 1_000_000_000
NOW = 1_800_000_000 * S
P = QualityParams(stale_ns=2 * S, max_skew_ns=S)


def venue(name="futures", trade=NOW - S // 10, quote=NOW - S // 10, overrun=(0, 0), gap=0, skew=20_000_000):
    return VenueInput(name, (StreamInput("trade", trade, overrun[0]), StreamInput("quote", quote, overrun[1])),
                      gap, skew)


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
    ("overrun", venue(overrun=(7, 0)), [], 0, 1, "DEGRADED", ["futures.trade: 7 records overrun"]),
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


def test_params_from_settings_carry_units():
    from config.settings import load_settings
    p = QualityParams.from_settings(load_settings(health_data_stale_sec=2.5, quality_max_skew_ms=750))
    assert (p.stale_ns, p.max_skew_ns) == (2_500_000_000, 750_000_000)
