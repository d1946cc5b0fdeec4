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


W15 = 1795489200                   # 03:00 UTC: the 15m window's start (s), and the 1h window's
W1H = 1795489200


def side(fair, ask, bid, edge, roc, age_ms, vetoes=()):
    return {"fair": fair, "best_bid": bid, "best_ask": ask, "cost_per_share": ask + 0.01, "edge": edge,
            "edge_bps": edge * 1e4, "return_on_cost": roc, "age_ms": age_ms,
            "vetoes": [{"code": c, "side": None, "reason": c} for c in vetoes]}


def edge(ts_ns=T0, fair_up=0.3283, decision="BUY_DOWN", series="15m"):
    """compute's edge document of one series (the 15m window settles on a Chainlink TWAP, its price
    to beat an estimate; the 1h window on the Binance candle, the venue's number)."""
    if series == "15m":
        start, end, slug = W15, W15 + 900, f"btc-updown-15m-{W15}"
        ptb = {"price": 65049.955, "source": "estimate", "method": "twap", "status": "ok"}
        rule = {"source": "chainlink", "stream": "btc/usd", "method": "twap", "twap_lookback_sec": 60,
                "candle_tf": None, "assumed": False}
        sides = {"UP": side(0.3283, 0.41, 0.40, -0.0917, -0.2186, 120.0),
                 "DOWN": side(0.6717, 0.60, 0.59, 0.0617, 0.1011, 35.0)}
    else:
        start, end, slug = W1H, W1H + 3600, "bitcoin-up-or-down-november-24-2026-5pm-et"
        ptb = {"price": 64990.5, "source": "venue", "method": "candle", "status": "ok"}
        rule = {"source": "binance", "stream": "BTCUSDT", "method": "candle", "twap_lookback_sec": 0,
                "candle_tf": "1h", "assumed": False}
        sides = {"UP": side(0.8, 0.78, 0.77, 0.01, 0.0127, 8.0, ("min_price",)),
                 "DOWN": side(0.2, 0.23, 0.22, -0.04, -0.16, 9.0)}
    return {"symbol": "BTCUSDT", "series": series, "ts_ns": ts_ns, "window": slug,
            "window_start_ns": start * SEC_NS, "window_end_ns": end * SEC_NS, "price_to_beat": ptb, "rule": rule,
            "inputs": {"binance": {"venue": "futures", "price": 65010.0, "age_ms": 4.0, "max_age_ms": 1000.0},
                       "chainlink": {"price": 64996.74, "obs_ns": T0 - 2 * SEC_NS, "age_ms": 2300.0,
                                     "obs_age_ms": 2000.0, "max_age_ms": 5000.0},
                       "books": {s: {"age_ms": sides[s]["age_ms"], "update_id": 9, "best_bid": sides[s]["best_bid"],
                                     "best_ask": sides[s]["best_ask"]} for s in ("UP", "DOWN")},
                       "candle": None},
            "fair": {"fast": fair_up, "smooth": 0.3205, "reason": None},
            "edge": {"decision": decision, "reason": "DOWN edge 6.2 pt", "vetoes": [],
                     "sides": sides, "time_left_s": 733.7 if series == "15m" else 3433.7},
            "accumulate": {"action": "HOLD", "side": "DOWN", "reason": "cooldown", "slices": 1, "usd": 10.0}}


def edge_block(ts_ns=T0):
    return {"ts_ns": ts_ns, "symbol": "BTCUSDT", "disabled": None,
            "series": {s: edge(ts_ns, series=s, fair_up=0.3283 if s == "15m" else 0.8,
                               decision="BUY_DOWN" if s == "15m" else "NONE") for s in ("15m", "1h")}}


def window(series="15m", start=W15, length=900, ptb=None):
    slug = f"btc-updown-15m-{start}" if series == "15m" else "bitcoin-up-or-down-november-24-2026-5pm-et"
    return {"series": series, "slug": slug, "window_start_ns": start * SEC_NS,
            "window_end_ns": (start + length) * SEC_NS, "price_to_beat": ptb,
            "price_to_beat_source": "venue" if ptb is not None else None, "resolution": None}


def poly():
    books = {"UP": {"valid": True, "best_bid": 0.4, "best_ask": 0.41, "mid": 0.405},
             "DOWN": {"valid": True, "best_bid": 0.59, "best_ask": 0.6, "mid": 0.595}}
    return {"ts_ns": T0, "disabled": None,
            "series": {"15m": {"window": window(), "next": None, "books": books, "resolved": []},
                       "1h": {"window": window("1h", W1H, 3600, 64990.5), "next": None, "books": {}, "resolved": []}}}


def state_doc(mode="OK"):
    hb = {"pid": 10, "running": True, "alive": True, "heartbeat_age_ms": 40.0, "uptime_s": 5.0, "counters": {}}
    return {"ts_ns": T0, "quality": {"mode": mode, "reasons": [], "ts_ns": T0},
            "actors": {"bus": hb, "feed_futures": {**hb, "data_fresh": True,
                                                   "connections": {"market": {"reconnects": 2}},
                                                   "streams": {"trade": {"age_ms": 12.0, "fresh": True}}}}}


def loaded() -> DashState:
    st = DashState(required=REQUIRED, followed=("15m", "1h"))
    st.rest_due(T0)
    st.apply_rest(STATE_PATH, 200, state_doc(), None, T0)
    st.apply_rest("/latest/features", 200, features(), None, T0)
    st.apply_rest("/latest/edge", 200, edge_block(), None, T0)
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
    flow = {label: v for label, v, _ in st.flow_rows()}
    assert flow["basis"].value == 1.8855 and flow["CVD futures"].value == -0.781
    text = screen(st)
    assert "TDC dashboard" in text and "65,005.70" in text and "65,006.60" in text
    assert "quality OK" in text and "API ok" in text and "BUY_DOWN" in text
    assert "+1.89 bps" in text and "35.6 %" in text                      # basis, σ fast annualised


def test_two_series_each_with_its_window_price_to_beat_edge_and_ages():
    st = loaded()
    assert st.series_keys() == ["15m", "1h"]
    a = st.series_info("15m", T0)
    assert a["slug"].value == f"btc-updown-15m-{W15}" and a["time_left_s"].value == 733.7
    assert (a["price_to_beat"].value, a["price_to_beat"].note, a["rule"]) == (65049.955, "estimate", "twap")
    assert a["fair"].value == 0.3283 and a["decision"].value == "BUY_DOWN"
    up, down = a["sides"]
    # the book from /latest/polymarket; fair, edge (probability points) and return on cost from compute
    assert (up["bid"].value, up["ask"].value, up["fair"].value) == (0.4, 0.41, 0.3283)
    assert up["edge_pts"].value == pytest.approx(-9.17) and up["roc"].value == -0.2186
    assert down["edge_pts"].value == pytest.approx(6.17) and down["roc"].value == 0.1011
    assert (up["book_age_ms"].value, down["book_age_ms"].value) == (120.0, 35.0)
    assert (a["ages"]["binance"].value, a["ages"]["chainlink"].value) == (4.0, 2300.0)
    b = st.series_info("1h", T0)
    assert (b["price_to_beat"].value, b["price_to_beat"].note, b["rule"]) == (64990.5, "venue", "candle")
    assert b["decision"].value == "NONE" and b["sides"][0]["vetoes"] == ["min_price"]
    # no 1h book from feed_poly yet: the book the decision used (the edge document's inputs)
    assert (b["sides"][0]["bid"].value, b["sides"][0]["ask"].value) == (0.77, 0.78)
    text = screen(st)
    lines = text.splitlines()
    row = lambda label, after: next(ln for ln in lines[lines.index(after):] if label in ln)   # noqa: E731
    w15 = next(ln for ln in lines if "15m 03:00" in ln)
    w1h = next(ln for ln in lines if "1h  03:00" in ln)
    assert "left 12m13s  beat 65,049.96 est. twap" in w15          # (then the slug, cut to the width)
    assert "1h  03:00–04:00 left 57m13s  beat 64,990.50 venue candl" in w1h
    assert "15m 03:00–03:15 left 12m13s" in w15
    assert "UP    0.400  0.410  0.328    -9.17   -21.9%  120 ms" in row("UP", w15)
    assert "DOWN  0.590  0.600  0.672    +6.17   +10.1%   35 ms" in row("DOWN", w15)
    assert "UP    0.770  0.780  0.800    +1.00    +1.3%    8 ms  mi" in row("UP", w1h)   # min_price, cut
    dec15 = row("decision", w15)
    assert "BUY_DOWN" in dec15 and "binance 4 ms" in dec15 and "chainlink 2.3 s" in dec15


def test_a_followed_series_without_data_says_why():
    st = DashState(required=REQUIRED, followed=("5m", "15m"))
    assert st.series_keys() == ["5m", "15m"]
    info = st.series_info("5m", T0)
    assert info["slug"] == info["slug"].__class__(None, "no window yet")
    assert info["decision"].value is None and info["decision"].reason == "no edge yet"
    st.apply_rest("/latest/polymarket", 200, {"ts_ns": T0, "disabled": "SYMBOL ADAUSDT has no up/down market",
                                              "series": {}}, None, T0)
    assert st.series_info("5m", T0)["slug"].reason == "Polymarket off: SYMBOL ADAUSDT has no up/down market"
    assert "Polymarket off: SYMBOL ADAUSDT" in screen(st)


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
            ev = sub.observe(names.edge_topic("BTCUSDT", "15m"), msg)
            st.apply_bus(ev.topic, ev.msg, ev.lost, ev.restarted, T0 + seq)
        t = st.topics[names.edge_topic("BTCUSDT", "15m")]
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


def test_poly_ticks_window_change_resolution_and_chainlink():
    st = loaded()
    up15, down15 = (names.poly_book_ring("15m").token_topic(i) for i in (0, 1))
    st.apply_bus(up15, {"window_start_ns": W15 * SEC_NS, "best_bid": 0.37, "best_ask": 0.40, "last_trade": 0.38,
                        "ts_recv_ns": T0}, 0, False, T0)
    st.apply_bus(down15, {"window_start_ns": W15 * SEC_NS, "best_bid": float("nan"), "best_ask": 0.6,
                          "ts_recv_ns": T0}, 0, False, T0)
    # the next window's book on the same topic (the feed follows both): not this window's
    st.apply_bus(up15, {"window_start_ns": (W15 + 900) * SEC_NS, "best_bid": 0.9, "best_ask": 0.91,
                        "ts_recv_ns": T0}, 0, False, T0)
    # a 1h tick touches only the 1h series
    st.apply_bus(names.poly_book_ring("1h").token_topic(0), {"window_start_ns": W1H * SEC_NS, "best_bid": 0.7,
                                                               "best_ask": 0.72, "ts_recv_ns": T0}, 0, False, T0)
    up, down = st.series_info("15m", T0)["sides"]
    assert (up["bid"].value, up["ask"].value) == (0.37, 0.40)
    assert down["bid"].value is None and down["bid"].reason == "book not valid"
    assert st.series_info("1h", T0)["sides"][0]["ask"].value == 0.72
    assert st.series_info("15m", T0)["time_left_s"].value == 733.7              # compute's, not the wall clock's
    nxt = window(start=W15 + 900)
    st.apply_bus(names.poly_market_topic("15m"), nxt, 0, False, T0)
    info = st.series_info("15m", T0)
    assert info["slug"].value == f"btc-updown-15m-{W15 + 900}"
    assert info["time_left_s"].value == ((W15 + 1800) * SEC_NS - T0) / SEC_NS   # the edge doc is of the old window
    assert info["price_to_beat"].value is None and info["sides"][0]["ask"].reason == "no book yet"
    assert any(f"15m window → btc-updown-15m-{W15 + 900}" in e[1] for e in st.events)
    # the resolution of the old window: recorded, the current window stays
    st.apply_bus(names.poly_market_topic("15m"), {**window(), "resolution": {"winner": "DOWN", "source": "market_resolved",
                                                                            "ts_ns": T0}}, 0, False, T0)
    assert st.series_info("15m", T0)["slug"].value == f"btc-updown-15m-{W15 + 900}"
    assert [r["slug"] for r in st.markets["15m"]["resolved"]] == [f"btc-updown-15m-{W15}"]
    assert any(f"15m btc-updown-15m-{W15} resolved DOWN (market_resolved)" in e[1] for e in st.events)
    assert st.series_info("1h", T0)["slug"].value == "bitcoin-up-or-down-november-24-2026-5pm-et"
    assert st.chainlink_val(T0) == st.chainlink_val(T0).__class__(64996.74, None, 2300.0)   # an edge doc's input
    st.apply_bus(names.CHAINLINK_RING.topic("BTCUSDT"), {"ts_event_ns": T0 - SEC_NS, "ts_recv_ns": T0 - 800_000_000,
                                                 "price": 64999.5}, 0, False, T0)
    v = st.chainlink_val(T0 + 300_000_000)
    # newer than the edge doc's; aged by its own stamps (200 ms lag) plus the wall time since receipt
    assert v.value == 64999.5 and v.age_ms == pytest.approx(500.0)


def test_edge_topics_are_per_series_and_decisions_are_news_per_series():
    st = loaded()
    st.apply_bus(names.edge_topic("BTCUSDT", "1h"), edge(T0 + SEC_NS, 0.9, "BUY_UP", series="1h"), 0, False, T0 + SEC_NS)
    st.apply_bus(names.edge_topic("ETHUSDT", "1h"), edge(T0 + 2 * SEC_NS, 0.1, "BUY_DOWN", series="1h"), 0, False,
                 T0 + SEC_NS)                                                    # another symbol
    assert st.series_info("1h", T0)["fair"].value == 0.9 and st.series_info("15m", T0)["fair"].value == 0.3283
    assert st.last_decision["1h"][1] == "BUY_UP" and st.last_decision["15m"][1] == "BUY_DOWN"
    assert any(e[1].startswith("1h decision BUY_UP") for e in st.events)
    st.apply_bus("edge.BTCUSDT", {"ts_ns": T0}, 0, False, T0)                   # not an edge topic: ignored
    assert st.bad_payloads == 0


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
    for topic in (names.features_topic("BTCUSDT"), names.edge_topic("BTCUSDT", "15m"),
                  names.poly_book_ring("15m").token_topic(0)):
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
