"""ipc.client on a real bus (the Proxy on random ports): real feeds' sinks and a real compute publish
records parsed from real captures, the client decodes each topic family to exact values; depth
levels are exactly the capture's; what cannot be decoded is counted and handed on, never raised;
every family carries the payload version."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import numpy as np
import orjson
import pytest
import zmq

from actors.clients.indicator_source import make_entry
from actors.decide.settlement import rule_for
from actors.feed.sink import Sink
from actors.venues.binance.kline_sync import kline_doc
from actors.venues.binance.parse import parse_frame
from actors.venues.polymarket import chainlink, clob
from actors.venues.polymarket.gamma import parse_market
from actors.venues.polymarket.session import market_doc
from ipc import names
from ipc.bus import PAYLOAD_VERSION, Proxy, Publisher, free_tcp_port
from ipc.client import (MODELS, AnchorReset, Bar, Chainlink, Client, ContextIndicators, ContextKline,
                        Depth, Edge, Features, Kline, Liquidation, Mark, PayloadError, PolyBook,
                        PolyMarket, PolyTrade, Quote, StateQuality, TickGap, Trade, family, parse)
from ipc.ring import RingWriter
from ipc.schema import DTYPES, FLAG_SNAPSHOT, KLINE
from tests.support.fixtures import BINANCE, POLYMARKET, need
from tests.support.frames import LIQ_FRAME, MARK_FRAME, combined, poly_book_record, side
from tests.support.wait import wait_for

RECV = 1_700_000_000_123_456_789
NS, MS = 1_000_000_000, 1_000_000
SYMBOL = "BTCUSDT"
STAMPS = {"seq", "boot", "v", "ts_ns", "pub_ts_ns"}
BUS_ADDED = STAMPS - {"ts_ns"}          # compute's documents carry their own ts_ns (data time)


@pytest.fixture
def bus():
    ctx = zmq.Context()
    xsub, xpub = f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"
    proxy = Proxy(xsub, xpub, ctx)
    th = threading.Thread(target=proxy.run, daemon=True)
    th.start()
    yield ctx, xsub, xpub
    ctx.destroy(linger=0)      # closes every socket a test left open, then ends the proxy
    th.join(5)
    assert not th.is_alive()


def joined(pub: Publisher, topic: str) -> None:
    """Until the client's subscription has reached the publisher (through the bus's XPUB first)."""
    t = topic.encode()
    wait_for(lambda: (pub.refresh(), pub._subs and pub.wants(t))[1], 10, f"a subscriber of {topic}")


def take(client: Client, n: int | None = None, until=None, timeout_s: float = 10.0) -> list:
    """The next n messages (or those up to the first that `until` accepts), failing after the deadline."""
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n if n is not None else not (out and until(out[-1])):
        left_ms = int((deadline - time.monotonic()) * 1000)
        assert left_ms > 0, f"{len(out)} of {n or 'the'} messages came: {[m.topic for m in out]}"
        m = client.recv(left_ms)
        if m is not None:
            out.append(m)
    return out


def sink(prefix: str, ring: names.Ring, topic: str) -> Sink:
    w = RingWriter("/dev/shm", ring.name(prefix, SYMBOL), DTYPES[ring.kind], 64)
    return Sink(ring.kind, w, topic.encode())


# --- the publishers, each returning what the client received ---------------------------------

def binance_messages(ctx, xsub, xpub, prefix) -> dict:
    frames = {
        "trade": need(BINANCE / "futures_aggTrade.json").read_bytes(),
        "quote": need(BINANCE / "futures_bookTicker.json").read_bytes(),
        "mark": MARK_FRAME, "liquidation": LIQ_FRAME,
        "depth": combined("btcusdt@depth10@100ms", "spot_depth_rest_limit10.json"),
        "kline": need(BINANCE / "futures_kline_1m_closed.json").read_bytes(),
    }
    client = Client(xpub, ("tick.futures.",), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, "tick.futures.trade.BTCUSDT")
    sinks = {k: sink(prefix, names.FUTURES_RINGS[k], names.FUTURES_RINGS[k].topic(SYMBOL)) for k in frames}
    for k, f in frames.items():
        assert sinks[k].accept(parse_frame(f, RECV).recs[0], pub)
    sinks["depth"].mark_gap(pub, "disconnect")
    got = {"gap" if isinstance(m.model, TickGap) else m.topic.split(".")[2]: m
           for m in take(client, len(frames) + 1)}
    for s in sinks.values():
        s.ring.close()
    client.close(), pub.close()
    return got


def poly_messages(ctx, xsub, xpub, prefix) -> dict:
    client = Client(xpub, ("tick.poly.", "tick.chainlink."), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, "tick.poly.book.15m.UP")
    book = sink(prefix, names.poly_book_ring("15m"), names.poly_topic("book", "15m", "UP"))
    assert book.accept(poly_book_record(), pub)
    (t,) = clob.parse_frame(need(POLYMARKET / "ws_last_trade_price_2026_with_tx_hash.json").read_bytes(), RECV)
    trade = sink(prefix, names.poly_trade_ring("15m"), names.poly_topic("trade", "15m", "DOWN"))
    assert trade.accept(clob.trade_record(t, 1, 1_786_728_000 * NS), pub)
    line = need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl").read_bytes().splitlines()[0]
    cl = sink(prefix, names.CHAINLINK_RING, names.CHAINLINK_RING.topic(SYMBOL))
    assert cl.accept(chainlink.parse_frame(line, RECV, "btc/usd").recs[0], pub)
    info = parse_market(need(POLYMARKET / "gamma_market_btc_updown_5m_2026-03.json").read_bytes(), True,
                        series="5m", asset="btc")
    rule = rule_for("5m", "btc", info.window_sec, info.resolution_source, info.twap_enabled,
                    info.twap_lookback_sec)
    pub.publish(names.poly_market_topic("5m"), market_doc(info, rule, None))
    got = {m.topic: m for m in take(client, 4)}
    for s in (book, trade, cl):
        s.ring.close()
    client.close(), pub.close()
    return got


def compute_messages(ctx, xsub, xpub, tmp_path) -> tuple[dict, dict]:
    """A real compute ticking twice over rings a Rig fills (tests/support/compute_rig.py): its
    features, edge, bar and state documents; and its blocks."""
    from tests.support.compute_rig import Rig, book_rec
    rig = Rig("e" + uuid.uuid4().hex[:8], tmp_path)
    try:
        rig.c.pub.close()
        pub = rig.c.pub = Publisher(xsub, ctx=ctx)
        client = Client(xpub, ("features.", "edge.", "bar.", "state"), ctx=ctx)
        joined(pub, names.STATE_TOPIC)
        w5 = rig.start["5m"] * NS
        for token in (0, 1):
            rig.books["5m"].append(book_rec(w5, token, token + 1, rig.now - 100 * MS))
        first = rig.now - 6 * NS                  # a 5 s bar closes between the two ticks
        rig.fresh(first)
        rig.c.tick(first)
        rig.fresh(rig.now)
        rig.c.tick(rig.now)
        rig.c.handle_control({"cmd": "anchor_reset", "anchor_ns": 1_700_000_000 * NS})
        # tick 1: features, state, 2 edges; tick 2: the bars that closed (5 s, maybe 15 s and 1m, each
        # venue), features, state, 2 edges; then the reset
        got = take(client, until=lambda m: isinstance(m.model, AnchorReset))
        blocks = {b: rig.c.blocks[b].read() for b in (names.FEATURES_BLOCK, names.EDGE_BLOCK)}
        client.close()
        return got, blocks
    finally:
        rig.close()


def context_messages(ctx, xsub, xpub) -> list:
    client = Client(xpub, ("context.",), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, names.context_topic(SYMBOL))
    rec = np.zeros((), KLINE)
    rec[()] = parse_frame(need(BINANCE / "futures_kline_1m_closed.json").read_bytes(), RECV).recs[0]
    topic = names.context_topic(SYMBOL)
    pub.publish(topic, {"tf": "1m", "kline": kline_doc(rec), "source": "stream"})     # as the context actor
    entry = make_entry("local", {"rsi": {"value": 55.5}}, {}, 1626992700000 * MS, RECV, klines=200)
    pub.publish(topic, {"tf": "1m", "indicators": {"1m": entry}})                      # as its indicators
    got = take(client, 2)
    client.close(), pub.close()
    return got


# --- the tests ---------------------------------------------------------------------------------

def test_binance_ticks_decode_to_exact_values(bus, segs):
    got = binance_messages(*bus, segs.prefix)
    tr = got["trade"].model
    assert isinstance(tr, Trade) and (tr.trade_id, tr.first_id, tr.last_id, tr.price, tr.qty, tr.side) == \
        (16599292, 23961322, 23961322, 1.011, 10.0, 1)
    assert (tr.ts_event_ns, tr.ts_recv_ns, tr.flags) == (1626992741421 * MS, RECV, 0)
    q = got["quote"].model
    assert isinstance(q, Quote) and (q.update_id, q.bid, q.bid_qty, q.ask, q.ask_qty) == \
        (600859600576, 7.611, 2.0, 7.612, 297.0)
    mk = got["mark"].model
    assert isinstance(mk, Mark) and (mk.mark, mk.index, mk.est_settle, mk.funding_rate, mk.next_funding_ns) == \
        (11794.15, 11784.25641265, 11784.62659091, 0.00038167, 1562306400000 * MS)
    lq = got["liquidation"].model
    assert isinstance(lq, Liquidation) and (lq.price, lq.avg_price, lq.qty, lq.filled_qty, lq.side) == \
        (9910.0, 9910.0, 0.014, 0.014, -1)
    k = got["kline"].model
    assert isinstance(k, Kline) and (k.open_time_ns, k.tf_sec, k.closed, k.open, k.high, k.low, k.close) == \
        (1626992700000 * MS, 60, True, 7.608, 7.618, 7.607, 7.617)
    assert (k.volume, k.quote_volume, k.taker_buy_volume, k.trades) == (3005.0, 22875.859, 1900.0, 113)
    # the depth10 frame: 10 levels a side, exactly the capture's, best first
    raw = orjson.loads(need(BINANCE / "spot_depth_rest_limit10.json").read_bytes())
    d = got["depth"].model
    assert isinstance(d, Depth) and (d.n_bids, d.n_asks, d.flags, d.update_id) == (10, 10, FLAG_SNAPSHOT, 14527958487)
    assert d.bids == list(zip(*side(raw["bids"], True))) and d.asks == list(zip(*side(raw["asks"], False)))
    assert d.bids[0] == (60650.0, 0.00213) and d.asks[-1] == (60659.94, 0.9617)
    assert len(got["depth"].doc["bid_px"]) == 10             # on the wire too, not only in the model
    g = got["gap"].model
    assert isinstance(g, TickGap) and g.reason == "disconnect" and g.flags == 1
    assert got["gap"].topic == "tick.futures.depth.BTCUSDT"
    assert all(m.lost == 0 and not m.restarted and m.model.v == PAYLOAD_VERSION for m in got.values())


def test_polymarket_and_chainlink_ticks_decode_to_exact_values(bus, segs):
    got = poly_messages(*bus, segs.prefix)
    raw = orjson.loads(need(POLYMARKET / "ws_book_2026_captured.json").read_bytes())
    b = got["tick.poly.book.15m.UP"].model
    assert isinstance(b, PolyBook) and (b.n_bids, b.n_asks, b.token, b.update_id) == (7, 20, 0, 7)
    assert b.bids == sorted(((float(x["price"]), float(x["size"])) for x in raw["bids"]), reverse=True)
    assert b.asks == sorted((float(x["price"]), float(x["size"])) for x in raw["asks"])[:20]
    assert (b.best_bid, b.best_ask, b.flags) == (0.07, 0.08, FLAG_SNAPSHOT)
    t = got["tick.poly.trade.15m.DOWN"].model
    assert isinstance(t, PolyTrade) and (t.price, t.size, t.side, t.fee_rate_bps, t.token) == (0.585, 2.46, -1, 0.0, 1)
    assert t.ts_event_ns == 1786728467101 * MS
    c = got["tick.chainlink.price.BTCUSD"].model
    assert isinstance(c, Chainlink) and (c.price, c.ts_event_ns, c.ts_sent_ns) == \
        (64790.08246810615, 1771820699000 * MS, 1771820699964 * MS)
    m = got["tick.poly.market.5m"].model
    assert isinstance(m, PolyMarket) and (m.series, m.asset) == ("5m", "btc")
    assert m.slug.startswith("btc-updown-5m-") and m.window_end_ns - m.window_start_ns == 300 * NS
    assert m.rule["source"] == "chainlink" and m.resolution is None


def test_compute_documents_decode_and_equal_its_blocks(bus, tmp_path):
    got, blocks = compute_messages(*bus, tmp_path)
    by_type = Counter(type(m.model).__name__ for m in got)
    assert by_type - Counter(Bar=by_type["Bar"]) == {"Features": 2, "StateQuality": 2, "Edge": 4, "AnchorReset": 1}
    feats = [m for m in got if isinstance(m.model, Features)][-1]
    # the published document is the block compute wrote, plus the bus's stamps
    assert {k: v for k, v in feats.doc.items() if k not in BUS_ADDED} == blocks[names.FEATURES_BLOCK]
    f = feats.model
    assert (f.symbol, f.tick, f.venues["futures"].last_price) == (SYMBOL, 1, 65_000.0)
    assert (f.venues["futures"].book.bid, f.venues["futures"].book.ask) == (64_999.9, 65_000.1)
    edges = {m.model.series: m for m in got[-7:] if isinstance(m.model, Edge)}
    for series, m in edges.items():
        # (compute publishes each edge document before writing the block, so the block's copy carries
        # the stamps too; compare without them)
        block_doc = blocks[names.EDGE_BLOCK]["series"][series]
        assert {k: v for k, v in m.doc.items() if k not in BUS_ADDED} == \
            {k: v for k, v in block_doc.items() if k not in BUS_ADDED}
        assert m.model.edge.decision in ("BUY_UP", "BUY_DOWN", "NONE") and m.topic == names.edge_topic(SYMBOL, series)
    bars = {(m.model.venue, m.model.tf): m.model for m in got if isinstance(m.model, Bar)}
    assert {("futures", "5s"), ("spot", "5s")} <= set(bars) and all(b.closed for b in bars.values())
    # when rig.now falls on a 5 s boundary the empty bar [now - 5 s, now) closes too: take the traded one
    (bar,) = [m.model for m in got if isinstance(m.model, Bar) and (m.model.venue, m.model.tf) == ("futures", "5s")
              and m.model.trades]
    assert (bar.tf, bar.open, bar.close, bar.volume, bar.trades, bar.closed) == ("5s", 65_000.0, 65_000.0, 0.01, 1, True)
    assert bar.end_ns - bar.start_ns == 5 * NS
    st = [m for m in got if isinstance(m.model, StateQuality)][-1]
    assert st.model.mode == st.doc["mode"] and st.model.mode in ("OK", "DEGRADED", "BAD")
    assert st.model.reasons == st.doc["reasons"] and set(st.model.actors) == set(st.doc["actors"])
    (reset,) = [m.model for m in got if isinstance(m.model, AnchorReset)]
    assert reset.anchor_ns == 1_700_000_000 * NS


def test_context_documents_decode(bus):
    kl, ind = context_messages(*bus)
    assert isinstance(kl.model, ContextKline) and kl.model.source == "stream" and kl.model.tf == "1m"
    assert (kl.model.kline.open, kl.model.kline.close, kl.model.kline.trades, kl.model.kline.closed) == \
        (7.608, 7.617, 113, True)
    assert isinstance(ind.model, ContextIndicators)
    assert ind.model.indicators["1m"]["rsi"] == {"value": 55.5} and ind.model.indicators["1m"]["klines"] == 200


def test_every_topic_family_is_decoded_and_carries_the_version(bus, segs, tmp_path):
    msgs = [*binance_messages(*bus, segs.prefix).values(), *poly_messages(*bus, segs.prefix).values(),
            *compute_messages(*bus, tmp_path)[0], *context_messages(*bus)]
    assert all(m.error is None and m.doc["v"] == PAYLOAD_VERSION == m.model.v for m in msgs)
    assert {family(m.topic) for m in msgs} == set(MODELS)


def test_what_cannot_be_decoded_is_counted_and_handed_on(bus):
    ctx, xsub, xpub = bus
    client = Client(xpub, ("tick.",), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, "tick.futures.trade.BTCUSDT")
    topic = b"tick.futures.trade.BTCUSDT"
    stamps = lambda seq, v=PAYLOAD_VERSION: {"seq": seq, "boot": 7, "v": v, "ts_ns": 1, "pub_ts_ns": 1}
    pub.sock.send_multipart([topic, b"{not json"])
    pub.sock.send_multipart([topic, b"[1, 2]"])
    pub.sock.send_multipart([topic, b"{}", b"{}"])
    pub.sock.send_multipart([topic, orjson.dumps({**stamps(1), "seq": "1"})])
    pub.sock.send_multipart([topic, orjson.dumps({**stamps(1, v=2), "price": 1.0})])
    pub.sock.send_multipart([b"tick.nowhere.x.Y", orjson.dumps(stamps(1))])
    pub.sock.send_multipart([topic, orjson.dumps({**stamps(2), "price": "abc"})])
    # a depth payload padded to 20 slots (the shape before version 3) does not pass as one
    padded = {**stamps(1), "ts_event_ns": 0, "ts_recv_ns": 1, "flags": 2, "update_id": 1, "first_update_id": -1,
              "prev_update_id": -1, "n_bids": 1, "n_asks": 1, "bid_px": [1.0] + [0.0] * 19,
              "bid_qty": [1.0] + [0.0] * 19, "ask_px": [2.0] + [0.0] * 19, "ask_qty": [1.0] + [0.0] * 19}
    pub.sock.send_multipart([b"tick.spot.depth.BTCUSDT", orjson.dumps(padded)])
    rec = parse_frame(need(BINANCE / "futures_aggTrade.json").read_bytes(), RECV).recs[0]
    pub.publish(topic, dict(zip(DTYPES["trade"].names, rec)))
    got = take(client, 9)
    assert [m.error.reason if m.error else None for m in got] == \
        ["not_json", "not_object", "frames", "stamps", "version", "unknown_topic", "malformed", "malformed", None]
    assert client.skipped == Counter(not_json=1, not_object=1, frames=1, stamps=1, version=1,
                                     unknown_topic=1, malformed=2)
    assert [m.value for m in got[:3]] == [None, None, None]
    assert got[6].value == {**stamps(2), "price": "abc"}          # handed on raw
    assert "bid_px holds 20 levels, its count says 1" in str(got[7].error)
    ok = got[8]
    assert isinstance(ok.model, Trade) and ok.model.price == 1.011 and ok.lost == 0
    # the skipped-but-stamped ones were tracked: seq 1 then 2 of boot 7, no gap
    assert client.tracks[topic.decode()].gaps == 0 and client.received == 9
    client.close(), pub.close()


def test_iteration_yields_topic_and_model(bus):
    ctx, xsub, xpub = bus
    client = Client(xpub, ("tick.futures.trade.",), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, "tick.futures.trade.BTCUSDT")
    rec = parse_frame(need(BINANCE / "futures_aggTrade.json").read_bytes(), RECV).recs[0]
    pub.publish("tick.futures.trade.BTCUSDT", dict(zip(DTYPES["trade"].names, rec)))
    pub.sock.send_multipart([b"tick.futures.trade.BTCUSDT", b"junk"])
    it = iter(client)
    topic, m = next(it)
    assert topic == "tick.futures.trade.BTCUSDT" and isinstance(m, Trade) and m.qty == 10.0
    assert next(it) == ("tick.futures.trade.BTCUSDT", None) and client.skipped == {"not_json": 1}
    client.close(), pub.close()


# --- the pure part -----------------------------------------------------------------------------

def test_every_declared_tick_topic_has_its_record_family():
    for rings in names.VENUE_RINGS.values():
        for r in rings.values():
            topics = [r.token_topic(t) for t in (0, 1)] if r.series else [r.topic(SYMBOL)]
            assert {family(t) for t in topics} == {r.kind}
    assert (family(names.poly_market_topic("1h")), family(names.bar_topic("1m", "spot", SYMBOL)),
            family(names.features_topic(SYMBOL)), family(names.edge_topic(SYMBOL, "15m")),
            family(names.context_topic(SYMBOL)), family(names.STATE_TOPIC)) == \
        ("poly_market", "bar", "features", "edge", "context", "state")
    assert family("tick.nowhere.x.Y") is None and family("bars.1m") is None and family("") is None


def test_record_models_declare_exactly_their_dtype_fields():
    for kind, dt in DTYPES.items():
        assert set(MODELS[kind].model_fields) - STAMPS == set(dt.names), kind


def test_parse_refuses_another_version_and_bad_bytes():
    with pytest.raises(PayloadError) as e:
        parse("state", orjson.dumps({"v": PAYLOAD_VERSION - 1}))
    assert e.value.reason == "version"
    with pytest.raises(PayloadError) as e:
        parse("state", b"\xff")
    assert e.value.reason == "not_json"


def test_the_documented_strategy_runs_against_the_bus(bus, segs):
    """docs/api.md's example, run as its own process on this bus: it prints a depth10 frame's best
    levels and bid depth, a gap, and a junk message's count, and keeps running."""
    import subprocess
    import sys
    from pathlib import Path
    ctx, xsub, xpub = bus
    root = Path(__file__).resolve().parents[2]
    section = (root / "docs" / "api.md").read_text().split("\n## Topics and payloads\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "tcp://127.0.0.1:5556" in code
    proc = subprocess.Popen([sys.executable, "-u", "-c", code.replace("tcp://127.0.0.1:5556", xpub)],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        pub = Publisher(xsub, ctx=ctx)
        topic = names.FUTURES_RINGS["depth"].topic(SYMBOL)
        joined(pub, topic)
        depth = sink(segs.prefix, names.FUTURES_RINGS["depth"], topic)
        assert depth.accept(parse_frame(combined("btcusdt@depth10@100ms", "spot_depth_rest_limit10.json"), RECV).recs[0], pub)
        depth.mark_gap(pub, "disconnect")
        pub.sock.send_multipart([topic.encode(), b"junk"])
        wait_for(lambda: len(lines) >= 3, 20, "the example's three lines")
        raw = orjson.loads(need(BINANCE / "spot_depth_rest_limit10.json").read_bytes())
        bids = list(zip(*side(raw["bids"], True)))
        want = round(sum(p * q for p, q in bids[:5]), 2)
        assert lines[:3] == [f"{topic} best (60650.0, 0.00213) (60650.01, 0.61982) bid depth {want}\n",
                             f"{topic} gap: disconnect\n",
                             f"{topic} not decoded: {{'not_json': 1}}\n"]
        assert proc.poll() is None, "the loop survived the junk"
        depth.ring.close()
        pub.close()
    finally:
        proc.kill()            # the one process this test started
        proc.wait(10)
