"""actors.venues.polymarket.gamma: window discovery on the two real Gamma captures, fees (slugs and
windows: test_polymarket_series.py)."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from actors.venues.polymarket import series
from actors.venues.polymarket.gamma import (FeeSchedule, GammaError, MarketNotFound, WindowInfo, markets_path,
                                            markets_by_condition_path, parse_market)
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
    assert series.slug("btc", "5m", series.window_start("5m", start + 299.999)) == m["slug"]
    assert series.window_start("5m", start - 1) == start - 300


def test_series_and_asset_are_the_callers():
    w = parse_market(body(AUG), True, "btc-updown-5m-1787414400", series="5m", asset="btc")
    assert (w.series, w.asset) == ("5m", "btc")
    assert w._replace(series="", asset="") == parse_market(body(AUG), True)
    assert (parse_market(body(AUG), True).series, parse_market(body(AUG), True).asset) == ("", "")
    with pytest.raises(ValueError, match="unknown up/down series"):
        parse_market(body(AUG), True, series="2h")


def test_numbered_4h_slug_must_name_event_start_time():
    # a 4h window on the ET grid: 2026-08-22 16:00Z = 12PM EDT, the 4h slug's number is its start
    m = dict(obj(AUG), slug="btc-updown-4h-1787414400", endDate="2026-08-22T20:00:00Z")
    w = parse_market(m, True, "btc-updown-4h-1787414400", series="4h", asset="btc")
    assert (w.start_s, w.end_s, w.window_sec) == (1787414400, 1787414400 + 4 * 3600, 14400)
    assert w.slug == series.slug("btc", "4h", series.window_start("4h", 1787414400 + 3600))
    with pytest.raises(GammaError, match="slug names start"):
        parse_market(dict(m, slug="btc-updown-4h-1787400000"), True)


def test_hourly_and_daily_slugs_carry_no_start_number():
    # ET-dated slugs end with "et" or a year: never mistaken for a window start
    for s_ in ("bitcoin-up-or-down-august-22-2026-12pm-et", "bitcoin-up-or-down-on-august-23-2026"):
        assert parse_market(dict(obj(AUG), slug=s_), True, s_).slug == s_


def test_markets_path():
    assert markets_path("btc-updown-15m-1773306900") == "/markets?slug=btc-updown-15m-1773306900"
    assert markets_by_condition_path("0x2eea") == "/markets?condition_ids=0x2eea"


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
    # by condition id (a window already known; its slug may be shared by another window)
    hourly = "bitcoin-up-or-down-august-22-2026-12pm-et"
    twin = orjson.dumps([dict(a, slug=hourly), dict(b, slug=hourly)])
    assert parse_market(twin, True, want_condition=a["conditionId"]).start_s == 1773307200
    assert parse_market(twin, True, want_condition=b["conditionId"]).start_s == 1787414400
    with pytest.raises(MarketNotFound, match="no market with condition id '0x1'"):
        parse_market(twin, True, want_condition="0x1")
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
