"""The dashboard's pure parts: DashState fed sample payloads (shaped as compute, feed_poly and the API
send them), the screens it renders, and the keys."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from actors.tools.tui.state import REST_FALLBACK_QUIET_NS, SEC_NS, STATE_PATH, DashState
from actors.tools.tui.view import Ui, render, split_keys
from ipc import names
from ipc.bus import Subscriber

T0 = 1_795_489_366_200_000_000
REQUIRED = ("bus", "feed_futures", "compute")


def features(ts_ns=T0, last=65005.7, warm=True, mode="OK", reasons=()):
    vol = {"returns": 30, "warmup": 30, "sigma_fast_ann": 0.356, "sigma_slow_ann": 0.357,
           "sigma_blend_ann": 0.3567}
    if not warm:
        vol = {"returns": 2, "warmup": 30, "sigma_fast_ann": None, "sigma_slow_ann": None,
               "sigma_blend_ann": None, "reason": "warming up: 2 of 30 one-second returns"}
    fut = {"cvd": {"cvd": -0.781}, "last_price": last, "trade_age_ms": 16.4,
           "vwap": {"vwap": 65005.31, "dev_bps": 0.0595, "dev_sigma": 0.089},
           "volatility": vol, "impulse": {"z": None, "reason": "less than 10 s of trades"},
           "book": {"mid": 65005.35, "microprice": 65005.33}, "quote_age_ms": 3.2,
           "bars": {"5s": bar(T0 - T0 % (5 * SEC_NS), closed=False)}}
    return {"symbol": "BTCUSDT", "ts_ns": ts_ns, "tick": 42,
            "venues": {"futures": fut},
            "basis": {"basis_bps": 1.8855, "mark": 65006.599, "index": 64996.727, "premium_bps": 1.5188,
                      "funding_bps": 0.9807, "mark_age_ms": 198.3},
            "bias": {"score": 0.1526}, "quality": {"mode": mode, "reasons": list(reasons)}}


def bar(start_ns, closed=True, tf="5s", close=65005.7):
    return {"tf": tf, "venue": "futures", "start_ns": start_ns, "end_ns": start_ns + 5 * SEC_NS,
            "open": 65009.5, "high": 65012.0, "low": 65004.1, "close": close, "volume": 6.368,
            "buy_volume": 1.948, "sell_volume": 4.42, "delta": -2.472, "vwap": 65009.8, "trades": 57,
            "closed": closed, "partial": False}


def edge(ts_ns=T0, fair_up=0.3283, decision="BUY_DOWN"):
    sides = {s: {"edge_bps": e, "best_bid": b, "best_ask": a, "vetoes": []}
             for s, e, b, a in (("UP", -2310.03, 0.40, 0.41), ("DOWN", 889.91, 0.59, 0.60))}
    return {"symbol": "BTCUSDT", "ts_ns": ts_ns, "window": "btc-updown-15m-1795489200",
            "fair": {"fast": fair_up, "smooth": 0.3205, "reason": None, "chainlink": 64996.74,
                     "chainlink_ts_ns": T0 - 2 * SEC_NS, "chainlink_age_ms": 2300.0},
            "edge": {"decision": decision, "reason": "DOWN edge 889.9 bps > 100 bps", "vetoes": [],
                     "sides": sides, "time_left_s": 733.7},
            "accumulate": {"action": "HOLD", "side": "DOWN", "reason": "cooldown", "slices": 1, "usd": 10.0}}


def poly():
    return {"ts_ns": T0, "window": {"slug": "btc-updown-15m-1795489200", "window_start_ns": 1795489200 * SEC_NS,
                                    "window_end_ns": 1795490100 * SEC_NS, "price_to_beat": 65049.955,
                                    "price_to_beat_source": "gamma"},
            "books": {"UP": {"valid": True, "best_bid": 0.4, "best_ask": 0.41, "mid": 0.405},
                      "DOWN": {"valid": True, "best_bid": 0.59, "best_ask": 0.6, "mid": 0.595}}}


def state_doc(mode="OK"):
    hb = {"pid": 10, "running": True, "alive": True, "heartbeat_age_ms": 40.0, "uptime_s": 5.0, "counters": {}}
    return {"ts_ns": T0, "quality": {"mode": mode, "reasons": [], "ts_ns": T0},
            "actors": {"bus": hb, "feed_futures": {**hb, "data_fresh": True,
                                                   "connections": {"market": {"reconnects": 2}},
                                                   "streams": {"trade": {"age_ms": 12.0, "fresh": True}}}}}


def loaded() -> DashState:
    st = DashState(required=REQUIRED)
    st.rest_due(T0)
    st.apply_rest(STATE_PATH, 200, state_doc(), None, T0)
    st.apply_rest("/latest/features", 200, features(), None, T0)
    st.apply_rest("/latest/edge", 200, edge(), None, T0)
    st.apply_rest("/latest/polymarket", 200, poly(), None, T0)
    closed = [bar(T0 - T0 % (5 * SEC_NS) - k * 5 * SEC_NS) for k in (3, 2, 1)]
    st.apply_rest("/latest/bars", 200, {"venues": {"futures": {"5s": {"current": None, "closed": closed}}}},
                  None, T0)
    return st


def screen(st: DashState, panel: str = "overview", now_ns: int = T0) -> str:
    c = Console(width=120, height=40, record=True, file=io.StringIO())
    c.print(render(st, Ui(panel=panel), now_ns, 40))
    return c.export_text()


def test_first_screen_from_rest():
    st = loaded()
    rows = dict(st.price_rows(T0))
    assert rows["futures last"].value == 65005.7 and rows["futures last"].age_ms == 16.4
    assert rows["mark"].value == 65006.599 and rows["chainlink"].value == 64996.74
    assert rows["price to beat"].value == 65049.955 and rows["price to beat"].note == "gamma"
    flow = {label: v for label, v, _ in st.flow_rows()}
    assert flow["basis"].value == 1.8855 and flow["CVD futures"].value == -0.781
    up, down = st.poly_rows()
    assert up["fair"].value == 0.3283 and down["fair"].value == pytest.approx(1 - 0.3283)
    assert up["mid"].value == 0.405 and down["edge_bps"].value == 889.91
    text = screen(st)
    assert "TDC dashboard" in text and "65,005.70" in text and "65,006.60" in text
    assert "quality OK" in text and "API ok" in text and "BUY_DOWN" in text
    assert "+1.89 bps" in text and "35.6 %" in text                      # basis, σ fast annualised
    assert "0.328" in text and "0.672" in text                           # fair UP and DOWN


def test_missing_values_show_their_reason_never_a_number():
    st = loaded()
    st.apply_bus(names.features_topic("BTCUSDT"), features(T0 + SEC_NS, warm=False), 0, False, T0 + SEC_NS)
    flow = {label: v for label, v, _ in st.flow_rows()}
    assert flow["σ fast (ann.)"].value is None
    assert flow["σ fast (ann.)"].reason == "warming up: 2 of 30 one-second returns"
    assert flow["impulse z"] == flow["impulse z"].__class__(None, "less than 10 s of trades")
    text = screen(st, now_ns=T0 + SEC_NS)
    assert "— warming up: 2 of 30" in text                                  # cut to the width
    assert "— less than 10 s of trades" in text
    assert "%" not in text.split("σ fast (ann.)")[1].split("\n")[0]
    # nothing at all yet: every value is a dash with why
    empty = DashState(required=REQUIRED)
    assert all(v.value is None and v.reason for _, v in empty.price_rows(T0))
    assert "—" in screen(empty) and "65," not in screen(empty)


def test_newer_document_wins_whatever_its_source():
    st = loaded()
    st.apply_bus(names.features_topic("BTCUSDT"), features(T0 + 2 * SEC_NS, last=65100.0), 0, False, T0 + 2 * SEC_NS)
    st.apply_rest("/latest/features", 200, features(T0 + SEC_NS, last=64900.0), None, T0 + 3 * SEC_NS)
    assert dict(st.price_rows(T0))["futures last"].value == 65100.0


def test_replayed_documents_compare_by_data_time_not_publish_time():
    """Under replay the bus's wall-clock stamp (pub_ts_ns) is far ahead of the data time; the REST
    snapshot and the topic carry the same data-time ts_ns, so the newer tick still wins."""
    st = loaded()
    wall = T0 + 3600 * SEC_NS
    st.apply_bus(names.features_topic("BTCUSDT"), {**features(T0 + SEC_NS, last=65100.0), "pub_ts_ns": wall},
                 0, False, wall)
    st.apply_rest("/latest/features", 200, features(T0 + 2 * SEC_NS, last=65200.0), None, wall)
    assert dict(st.price_rows(T0))["futures last"].value == 65200.0


def test_bus_gaps_and_restarts_come_from_the_subscriber():
    sub = Subscriber("tcp://127.0.0.1:1", (names.EDGE_PREFIX,))      # no bus needed: only its seq bookkeeping
    try:
        st = loaded()
        for boot, seq in ((7, 1), (7, 2), (7, 6), (8, 1), (8, 2)):
            msg = edge(T0 + seq * SEC_NS)
            msg.update(boot=boot, seq=seq)
            ev = sub.observe(names.edge_topic("BTCUSDT"), msg)
            st.apply_bus(ev.topic, ev.msg, ev.lost, ev.restarted, T0 + seq)
        t = st.topics[names.edge_topic("BTCUSDT")]
        assert (t.received, t.gaps, t.lost, t.restarts) == (5, 1, 3, 1)
        assert st.bus_totals() == (5, 1, 3, 1)
        assert "seq gaps 1 (lost 3) · restarts 1" in screen(st, now_ns=T0 + 10)
        assert any("3 message(s) lost" in e[1] for e in st.events)
    finally:
        sub.close()


def test_bars_merge_rest_and_bus_without_duplicates():
    st = loaded()
    base = T0 - T0 % (5 * SEC_NS)
    btc, eth = names.bar_topic("5s", names.FUTURES, "BTCUSDT"), names.bar_topic("5s", names.FUTURES, "ETHUSDT")
    st.apply_bus(btc, bar(base - 5 * SEC_NS), 0, False, T0)     # already held
    st.apply_bus(btc, bar(base, close=65010.0), 0, False, T0)    # new
    st.apply_bus(eth, bar(base + 5 * SEC_NS), 0, False, T0)      # other symbol
    closed = list(st.bars[("futures", "5s")]["closed"])
    assert [b["start_ns"] for b in closed] == [base - k * 5 * SEC_NS for k in (3, 2, 1, 0)]
    rows, why = st.bar_rows("futures", "5s", 10)
    assert why is None and rows[0]["start_ns"] == base and rows[0]["closed"]   # the current one closed
    assert st.bar_rows("spot", "1m", 10) == ([], "no spot 1m bars yet")
    text = screen(st, "bars")
    assert "5s bars · futures" in text and "1m bars · futures" in text and "65,010.00" in text
    assert "— no futures 1m bars yet" in text


def test_state_topic_quality_and_events():
    st = loaded()
    st.apply_bus(names.STATE_TOPIC, {"mode": "DEGRADED", "reasons": ["futures: gap 3s ago"], "ts_ns": T0 + SEC_NS},
                 0, False, T0 + SEC_NS)
    st.apply_bus(names.STATE_TOPIC, {"event": "anchor_reset", "anchor_ns": T0}, 0, False, T0 + SEC_NS)
    q, reasons = st.quality_val()
    assert q.value == "DEGRADED" and reasons == ["futures: gap 3s ago"]
    assert any("quality OK → DEGRADED" in e[1] for e in st.events)
    assert any("anchor_reset" in e[1] for e in st.events)
    text = screen(st, now_ns=T0 + SEC_NS)
    assert "quality DEGRADED" in text and "futures: gap 3s ago" in text


def test_poly_ticks_window_change_and_chainlink():
    st = loaded()
    up_topic, down_topic = (names.POLY_BOOK_RING.token_topic(i) for i in (0, 1))
    st.apply_bus(up_topic, {"best_bid": 0.37, "best_ask": 0.40, "last_trade": 0.38,
                            "ts_recv_ns": T0}, 0, False, T0)
    st.apply_bus(down_topic, {"best_bid": None, "best_ask": 0.6, "ts_recv_ns": T0}, 0, False, T0)
    up, down = st.poly_rows()
    assert up["mid"].value == pytest.approx(0.385)
    assert down["mid"].value is None and down["mid"].reason == "book not valid"
    assert st.window_info(T0)["time_left_s"].value == 733.7               # compute's, not the wall clock's
    st.apply_bus(names.POLY_MARKET_TOPIC, {**poly()["window"], "slug": "btc-updown-15m-1795490100",
                                      "window_end_ns": 1795491000 * SEC_NS}, 0, False, T0)
    assert st.window_info(T0)["slug"].value == "btc-updown-15m-1795490100"
    assert st.window_info(T0)["time_left_s"].value == (1795491000 * SEC_NS - T0) / SEC_NS   # edge is stale
    assert any("window → btc-updown-15m-1795490100" in e[1] for e in st.events)
    assert st.chainlink_val(T0) == st.chainlink_val(T0).__class__(64996.74, None, 2300.0)   # the edge doc's
    st.apply_bus(names.CHAINLINK_RING.topic("BTCUSDT"), {"ts_event_ns": T0 - SEC_NS, "ts_recv_ns": T0 - 800_000_000,
                                                 "price": 64999.5}, 0, False, T0)
    v = st.chainlink_val(T0 + 300_000_000)
    # newer than the edge doc's; aged by its own stamps (200 ms lag) plus the wall time since receipt
    assert v.value == 64999.5 and v.age_ms == pytest.approx(500.0)


def test_actor_rows_and_api_unreachable():
    st = loaded()
    rows = {r["name"]: r for r in st.actor_rows(T0 + 500 * 1_000_000)}
    assert rows["feed_futures"]["status"].value == "up" and rows["feed_futures"]["reconnects"] == 2
    assert rows["feed_futures"]["heartbeat_age_ms"].value == pytest.approx(540.0)
    assert rows["compute"]["status"] == rows["compute"]["status"].__class__(None, "never seen")
    st.rest_due(T0 + 2 * SEC_NS)
    st.apply_rest(STATE_PATH, None, None, "ConnectError: [Errno 111] Connection refused", T0 + 2 * SEC_NS)
    assert st.api_status(T0 + 5 * SEC_NS).value is None
    assert "API unreachable for 3 s" in st.api_status(T0 + 5 * SEC_NS).reason
    text = screen(st, now_ns=T0 + 5 * SEC_NS)
    assert "API unreachable" in text and "65,005.70" in text                # the last data stays
    st.apply_rest("/latest/features", 503, {"title": "no data yet", "description": "compute has not written"},
                  None, T0 + 6 * SEC_NS)
    assert st.api_status(T0 + 6 * SEC_NS).value == "ok"
    empty = DashState()
    empty.rest_due(T0)
    no_data = {"title": "no data yet", "description": "compute has not written"}
    empty.apply_rest("/latest/features", 503, no_data, None, T0)
    assert dict(empty.price_rows(T0))["futures last"].reason == "no data yet: compute has not written"


def test_rest_schedule_first_screen_then_bus_then_fallback():
    st = DashState()
    first = st.rest_due(T0)
    assert set(first) == {STATE_PATH, "/latest/features", "/latest/edge", "/latest/bars", "/latest/polymarket"}
    assert st.rest_due(T0 + 5 * SEC_NS) == []                              # all in flight
    for p in first:
        st.apply_rest(p, 200, {"ts_ns": T0}, None, T0)
    for topic in (names.features_topic("BTCUSDT"), names.edge_topic("BTCUSDT"), names.POLY_BOOK_RING.token_topic(0)):
        st.apply_bus(topic, {"ts_ns": T0}, 0, False, T0 + SEC_NS)
    assert st.rest_due(T0 + SEC_NS + 1) == [STATE_PATH]                     # the bus keeps the rest fresh
    later = T0 + SEC_NS + REST_FALLBACK_QUIET_NS + 1                          # the bus went quiet
    st.apply_rest(STATE_PATH, 200, {"ts_ns": T0}, None, later)
    assert set(st.rest_due(later)) == {STATE_PATH, "/latest/features", "/latest/edge", "/latest/bars",
                                       "/latest/polymarket"}


def test_keys():
    ui = Ui()
    for key, panel in (("2", "bars"), ("3", "health"), ("\t", "overview"), ("\t", "bars"),
                       ("\x1b[Z", "overview"), ("\x1b[Z", "health"), ("1", "overview")):
        assert ui.on_key(key) and ui.panel == panel
    assert not ui.on_key("x") and not ui.quit
    assert ui.on_key("v") and ui.venue == "spot"
    assert ui.on_key("q") and ui.quit
    assert split_keys("\x1b[Z2\x1b[A q") == ["\x1b[Z", "2", "\x1b[A", " ", "q"]
