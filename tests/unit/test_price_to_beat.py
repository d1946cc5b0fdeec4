"""The price to beat: the first Chainlink observation at or after each window start."""
from __future__ import annotations

import numpy as np

from actors.decide.settlement import PriceToBeat
from ipc.schema import CHAINLINK, FLAG_GAP

S = 1_000_000_000


def recs(points, flags=None):
    a = np.zeros(len(points), dtype=CHAINLINK)
    a["ts_event_ns"] = [t * S for t, _ in points]
    a["price"] = [p for _, p in points]
    if flags:
        a["flags"] = flags
    return a


def test_exact_boundary_observations():
    p = PriceToBeat(60)
    p.update(recs([(119, 1.0), (120, 2.0), (121, 3.0), (179, 4.0), (180, 5.0)]))
    assert p.windows == {120: {"price": 2.0, "obs_ns": 120 * S, "exact": True},
                         180: {"price": 5.0, "obs_ns": 180 * S, "exact": True}}


def test_missing_boundary_second_takes_the_next_observation():
    p = PriceToBeat(60)
    p.update(recs([(118, 1.0)]))
    p.update(recs([(122, 2.0), (125, 3.0)]))            # 119..121 never arrived
    assert p.windows == {120: {"price": 2.0, "obs_ns": 122 * S, "exact": False}}


def test_no_window_from_the_middle_of_a_window():
    p = PriceToBeat(60)
    p.update(recs([(130, 1.0), (131, 2.0)]))            # started after 120: its price is unknown
    assert p.windows == {}
    assert p.doc(60)["price"] == 2.0


def test_gap_records_are_skipped():
    p = PriceToBeat(60)
    p.update(recs([(119, 1.0), (0, 0.0), (120, 2.0)], flags=[0, FLAG_GAP, 0]))
    assert p.windows[120]["price"] == 2.0
