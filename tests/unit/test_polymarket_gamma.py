"""actors.venues.polymarket.gamma: window discovery on the two real Gamma captures, slugs, fees."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from actors.venues.polymarket.gamma import (SERIES, FeeSchedule, GammaError, MarketNotFound, WindowInfo, markets_path, parse_market, slug, slug_candidates, window_start)
from ipc import names
from tests.support.fixtures import POLYMARKET, need

MAR = "gamma_market_btc_updown_5m_2026-03.json"
AUG = "gamma_market_btc_updown_5m_twap_2026-08_reduced.json"


def body(name: str) -> bytes:
    return need(POLYMARKET / name).read_bytes()


def obj(name: str) -> dict:
    return orjson.loads(body(name))


# ---------------------------------------------------------------------------------------------
# the captures
# ---------------------------------------------------------------------------------------------

def test_gamma_2026_08_twap_reduced():
    w = parse_market(body(AUG), up_is_yes=True)
    assert w == WindowInfo(
        slug="btc-updown-5m-1787414400", market_id="3763487",
        condition_id="0x2eea28aa905ace2f5cace17ea2b9e0e7b85a27f32ee14ed292f02fa104956bc4",
        question="Bitcoin Up or Down - August 22, 12:00PM-12:05PM ET",
        up_token="113013382422133157315656090194075928009220145127085300671933810669470922115281",
        down_token="38034349155375505476764349018583065542443879908961992019053731521216367745079",
        start_s=1787414400, end_s=1787414700,
        fee=FeeSchedule(rate=0.07, exponent=1.0, taker_only=True, rebate_rate=0.2, source="feeSchedule"),
        tick_size=0.01, min_size=5.0,
        resolution_source="https://data.chain.link/streams/btc-usd-twap-60s-streams",
        twap_enabled=True, twap_lookback_sec=60, price_to_beat=None, final_price=None,
        active=True, closed=False, accepting_orders=True, neg_risk=False)
    assert (w.start_ns, w.end_ns, w.window_sec) == (1787414400 * 10**9, 1787414700 * 10**9, 300)


def test_gamma_2026_03_full_object_without_fee_schedule():
    w = parse_market(body(MAR), up_is_yes=False)         # Up/Down outcomes: up_is_yes is irrelevant
    assert w == WindowInfo(
        slug="btc-updown-5m-1773307200", market_id="1557558",
        condition_id="0x78443f961b9a65869dcb39359de9960165c7e5cbad0904eac7f29cd77872a63b",
        question="Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET",
        up_token="104239898038807136052399800151408521467737075933964991162589336683346093173875",
        down_token="71183960810705820955071415844881728181970340514894896943812046065452395013351",
        start_s=1773307200, end_s=1773307500,
        # no feeSchedule in this capture: takerBaseFee 1000 (bps) -> 0.10, the documented fallback
        fee=FeeSchedule(rate=0.1, exponent=1.0, taker_only=True, rebate_rate=0.0, source="takerBaseFee"),
        tick_size=0.01, min_size=5.0, resolution_source="https://data.chain.link/streams/btc-usd",
        twap_enabled=False, twap_lookback_sec=0, price_to_beat=None, final_price=None,
        active=True, closed=False, accepting_orders=True, neg_risk=False)


@pytest.mark.parametrize("name,start,listed", [(MAR, 1773307200, "2026-03-11T09:29:01.328428Z"),
                                               (AUG, 1787414400, "2026-08-21T16:08:38.248161Z")])
def test_window_start_is_event_start_time_not_start_date(name, start, listed):
    m = obj(name)
    assert m["startDate"] == listed                        # the listing, about a day earlier
    w = parse_market(m, True)
    assert w.start_s == start == int(m["slug"].rsplit("-", 1)[1])
    assert slug("5m", window_start(start + 299.999, 300)) == m["slug"]
    assert window_start(start - 1, 300) == start - 300


def test_answer_list_picks_the_slug():
    a, b = obj(MAR), obj(AUG)
    ans = orjson.dumps([a, b])
    assert parse_market(ans, True, "btc-updown-5m-1787414400").start_s == 1787414400
    assert parse_market(ans, True, "btc-updown-5m-1773307200").start_s == 1773307200
    assert parse_market([b], True).slug == "btc-updown-5m-1787414400"
    with pytest.raises(MarketNotFound):
        parse_market(ans, True, "btc-updown-5m-1")
    with pytest.raises(MarketNotFound):
        parse_market(b"[]", True, "btc-updown-5m-1787414400")
    with pytest.raises(GammaError, match="2 markets"):
        parse_market(ans, True)
    assert issubclass(MarketNotFound, GammaError) and issubclass(GammaError, ValueError)


def test_outcome_order_and_yes_no_markets():
    m = obj(AUG)
    up, down = json.loads(m["clobTokenIds"])
    swapped = dict(m, outcomes='["Down", "Up"]')
    w = parse_market(swapped, True)
    assert (w.up_token, w.down_token) == (down, up)
    yes_no = dict(m, outcomes='["Yes", "No"]')
    assert (parse_market(yes_no, True).up_token, parse_market(yes_no, False).up_token) == (up, down)
    as_lists = dict(m, outcomes=["Up", "Down"], clobTokenIds=[up, down])   # real lists are accepted too
    assert parse_market(as_lists, True) == parse_market(m, True)
    for bad in ('["A", "B"]', '["Up", "Up"]', '["Up"]', "not json", "42"):
        with pytest.raises(GammaError):
            parse_market(dict(m, outcomes=bad), True)
    with pytest.raises(GammaError):
        parse_market(dict(m, clobTokenIds='["1"]'), True)


def test_fee_fallbacks():
    m = obj(AUG)
    del m["feeSchedule"]
    assert parse_market(m, True).fee == FeeSchedule(0.1, 1.0, True, 0.0, "takerBaseFee")
    assert parse_market(dict(m, feesEnabled=False), True).fee == FeeSchedule(0.0, 1.0, True, 0.0, "feesEnabled")
    del m["takerBaseFee"]
    with pytest.raises(GammaError, match="fee is unknown"):
        parse_market(m, True)
    s = dict(obj(AUG), feeSchedule='{"rate": 0.25, "exponent": 2, "takerOnly": false}')
    assert parse_market(s, True).fee == FeeSchedule(0.25, 2.0, False, 0.0, "feeSchedule")


def test_price_to_beat_from_event_metadata():
    m = obj(MAR)
    m["events"][0]["eventMetadata"] = {"priceToBeat": 72151.5956398658, "finalPrice": 72304.1338669154}
    w = parse_market(m, True)
    assert (w.price_to_beat, w.final_price) == (72151.5956398658, 72304.1338669154)
    m["eventMetadata"] = '{"priceToBeat": "70000.5"}'     # market level wins, JSON string accepted
    assert (parse_market(m, True).price_to_beat, parse_market(m, True).final_price) == (70000.5, None)


def test_start_time_fallback_and_consistency():
    m = obj(MAR)
    del m["eventStartTime"]
    assert parse_market(m, True).start_s == 1773307200      # events[0].startTime
    m["events"][0].pop("startTime")
    with pytest.raises(GammaError, match="eventStartTime"):
        parse_market(m, True)
    with pytest.raises(GammaError, match="slug names start"):
        parse_market(dict(obj(AUG), eventStartTime="2026-08-22T16:05:00Z", endDate="2026-08-22T16:10:00Z"), True)
    with pytest.raises(GammaError, match="not after"):
        parse_market(dict(obj(AUG), endDate="2026-08-22T16:00:00Z"), True)


def test_flags():
    w = parse_market(dict(obj(AUG), closed=True, active=False, acceptingOrders=False), True)
    assert (w.closed, w.active, w.accepting_orders) == (True, False, False)


@pytest.mark.parametrize("bad", [b"", b"nope", b"null", b"42", b'"x"', b"[1]",
                                 b'{"error":"not found"}', b'{"slug":"x"}'])
def test_malformed_answers_raise_gamma_error(bad):
    with pytest.raises(GammaError):
        parse_market(bad, True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["slug", "conditionId", "clobTokenIds", "outcomes", "eventStartTime",
                                        "endDate", "feeSchedule", "takerBaseFee", "orderPriceMinTickSize",
                                        "orderMinSize", "cryptoMarketConfig", "eventMetadata", "events"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
                       | st.lists(st.text(max_size=5), max_size=3)
                       | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)))
def test_fuzz_only_gamma_error(d):
    base = obj(AUG)
    base.update(d)
    try:
        parse_market(json.dumps(base).encode(), True)
    except GammaError:
        pass


# ---------------------------------------------------------------------------------------------
# windows and slugs
# ---------------------------------------------------------------------------------------------

def test_series_table():
    assert SERIES["5m"] == ("btc-updown-5m", 300)
    assert SERIES["15m"] == ("btc-updown-15m", 900)
    assert SERIES["1h"] == ("bitcoin-up-or-down", 3600)


def test_series_are_the_declared_polymarket_series():
    """gamma's slug table covers exactly ipc.names.POLY_SERIES, in its order, with its window lengths."""
    assert tuple(SERIES) == names.POLY_SERIES == ("5m", "15m", "1h")
    assert {tf: sec for tf, (_, sec) in SERIES.items()} == {tf: names.tf_sec(tf) for tf in names.POLY_SERIES}


def test_window_start_floors():
    assert window_start(1773307200, 900) == 1773306900
    assert window_start(1773306900, 900) == 1773306900        # a boundary opens its own window
    assert window_start(1773307799.999, 900) == 1773306900
    assert window_start(1773307800, 900) == 1773307800
    assert window_start(125, 60) == 120                        # sim/test-shortened windows
    with pytest.raises(ValueError):
        window_start(1, 0)


def test_slugs():
    assert slug("15m", 1773306900) == "btc-updown-15m-1773306900"
    assert slug("5m", 1773307200) == "btc-updown-5m-1773307200"
    assert markets_path("btc-updown-15m-1773306900") == "/markets?slug=btc-updown-15m-1773306900"
    with pytest.raises(ValueError):
        slug("2h", 0)


@pytest.mark.parametrize("start,expected", [
    (1781870400, "bitcoin-up-or-down-june-19-2026-8am-et"),       # 12:00 UTC, EDT
    (1768489200, "bitcoin-up-or-down-january-15-2026-10am-et"),   # 15:00 UTC, EST
    (1773288000, "bitcoin-up-or-down-march-12-2026-12am-et"),     # 04:00 UTC = midnight EDT
    (1773331200, "bitcoin-up-or-down-march-12-2026-12pm-et"),     # 16:00 UTC = noon EDT
])
def test_hourly_slug_is_et_dated_unverified(start, expected):
    assert slug("1h", start) == expected
    assert slug_candidates("1h", start) == [expected, expected.replace("-2026-", "-")]
    assert slug_candidates("15m", 900) == ["btc-updown-15m-900"]
