"""actors.feed.continuity, table-driven: per kind, a sequence of records -> which were accepted, and
the duplicate, id-gap and missing-id counts. Pure: no ring, no bus, no process."""
from __future__ import annotations

import pytest

from actors.feed.continuity import RECENT, Continuity
from ipc.schema import DTYPES, MAX_LEVELS

T0 = 1_700_000_000_000_000_000
Z = [0.0] * MAX_LEVELS


def trade(a, t=T0):                     # aggTrade: trade_id a, first/last ids of the fills
    return (t, t + 5, 0, a, a * 10, a * 10 + 1, 65000.0, 0.1, 1)


def quote(u, t=T0):
    return (t, t + 5, 0, u, 64999.9, 1.0, 65000.1, 2.0)


def depth(u, pu, t=T0):                 # pu -1: not sent (spot)
    return (t, t + 5, 0, u, u - 3, pu, 0, 0, Z, Z, Z, Z)


def kline(tf, open_s, event_ns):
    o = open_s * 1_000_000_000
    return (event_ns, event_ns + 5, 0, o, o + tf * 1_000_000_000 - 1_000_000, tf, 0,
            1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 4.0, 7)


def liq(t, px, qty=0.01):
    return (t, t + 5, 0, t - 1, px, px, qty, qty, -1)


def mark(t):
    return (t, t + 5, 0, 65000.0, 64990.0, 65001.0, 0.0001, t + 3_600_000_000_000)


CASES = {
    # contiguous aggTrade ids: 4 then 8 skips 5, 6, 7; 3 and a second 8 are duplicates
    "trade ids jump and repeat": ("trade", [trade(1), trade(2), trade(4), trade(3), trade(8), trade(8),
                                            trade(9)],
                                  [True, True, True, False, True, False, True], 2, 2, 4),
    "trade in order": ("trade", [trade(i) for i in range(100, 110)], [True] * 10, 0, 0, 0),
    # quote update ids are increasing but not contiguous: no gaps, only duplicates
    "quote ids": ("quote", [quote(10), quote(15), quote(15), quote(12), quote(40)],
                  [True, True, False, False, True], 2, 0, 0),
    # futures depth: pu must be the previous u; a break counts a gap and is still accepted
    "depth pu chain and break": ("depth", [depth(100, 90), depth(105, 100), depth(110, 104),
                                           depth(110, 105), depth(120, 110)],
                                 [True, True, True, False, True], 1, 1, 0),
    # spot partial depth: no pu (-1): never a gap
    "depth without pu": ("depth", [depth(5, -1), depth(9, -1), depth(7, -1)], [True, True, False], 1, 0, 0),
    # klines: per interval by (open, event); a 1m update never shadows a 5m one
    "klines per interval": ("kline", [kline(60, 600, T0), kline(300, 600, T0), kline(60, 600, T0 + 1),
                                      kline(60, 600, T0), kline(300, 600, T0 - 1), kline(60, 540, T0 + 9),
                                      kline(60, 660, T0 + 2)],
                            [True, True, True, False, False, False, True], 3, 0, 0),
    # liquidations: no id; equal (but for receive time) is a duplicate, a second at the same time is not
    "liquidations by content": ("liquidation", [liq(T0, 65000.0), liq(T0, 65000.0, 0.02), liq(T0, 65000.0),
                                                liq(T0 - 9, 64000.0)],
                                [True, True, False, True], 1, 0, 0),
    # kinds without an id are ordered by event time
    "mark by event time": ("mark", [mark(T0), mark(T0 + 1), mark(T0 + 1), mark(T0 - 5), mark(T0 + 2)],
                           [True, True, False, False, True], 2, 0, 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_continuity_table(name):
    kind, recs, accepted, duplicates, id_gaps, ids_missing = CASES[name]
    for r in recs:
        assert len(r) == len(DTYPES[kind].names), "a test record not in the schema's shape"
    c = Continuity(kind)
    assert [c.is_new(r) for r in recs] == accepted
    assert (c.duplicates, c.id_gaps, c.ids_missing) == (duplicates, id_gaps, ids_missing)


def test_liquidations_are_remembered_for_a_bounded_window():
    c = Continuity("liquidation")
    first = liq(T0, 65000.0)
    assert c.is_new(first)
    for i in range(RECENT):
        assert c.is_new(liq(T0 + 1 + i, 65000.0))
    assert c.is_new(first), "forgotten after RECENT others: accepted again"


def test_keys_order_the_successor_during_rotation():
    t = Continuity("trade")
    assert t.last_key() is None
    t.is_new(trade(7))
    assert t.key(trade(8)) == (None, 8) and t.last_key() == 7
    k = Continuity("kline")
    k.is_new(kline(60, 600, T0))
    assert k.key(kline(300, 600, T0 + 1)) == (300, (600 * 10**9, T0 + 1))
    assert k.last_key(60) == (600 * 10**9, T0) and k.last_key(300) is None
    assert not Continuity("liquidation").ordered and Continuity("quote").ordered
