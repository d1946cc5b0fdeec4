"""A recording of real captures for the export tests, written as the recorder writes one (ipc.recording
lines, gzip files per stream and period): Binance futures bookTicker and trade and spot trade streams
with their own receive times (hftbacktest captures, 2024-08-08), Chainlink BTC/USD updates (RTDS,
2026-02), and a Polymarket up/down window: the captured CLOB burst (a `book`, 49 `price_change`
batches, the resent `book`; 2026-09-29) and a captured `last_trade_price`, recorded under `book_5m` /
`trade_5m` as feed_poly records them, with the window's Gamma answers. No Gamma answer of the
burst's market was captured, so the window's answers are the captured 5m `/markets` object
re-pointed at the burst's market (slug, conditionId, clobTokenIds, times), once open and once closed
(outcomePrices 1/0), and the trade is the captured one re-pointed at the UP token inside the window.
"""
from __future__ import annotations

import gzip
import json

from ipc import names, recording
from tests.support.fixtures import BINANCE, POLYMARKET, need

UP = "76670567130917723816490572615540605537878462672464291990940067659127658071111"
DOWN = "54179564009642723353355316176091991063553046330768303687769988635499280029688"
MARKET = "0x285746de0e4f751fd4dc8f9dc2cecd0101ba9ad0096a43145ed9643b09514f01"
WINDOW_S = 1790658600                     # the 5m window holding the burst (05:10-05:15Z)
SLUG = f"btc-updown-5m-{WINDOW_S}"
MS = 1_000_000
RUN = "4242-1790000000000000000"


def iso_utc(s: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def gamma_answer(closed: bool) -> bytes:
    m = json.loads(need(POLYMARKET / "gamma_market_btc_updown_5m_2026-03.json").read_text())
    m.update(slug=SLUG, conditionId=MARKET, clobTokenIds=json.dumps([UP, DOWN]),
             eventStartTime=iso_utc(WINDOW_S), endDate=iso_utc(WINDOW_S + 300), closed=closed, active=not closed,
             acceptingOrders=not closed, outcomePrices='["1", "0"]' if closed else '["0.5", "0.5"]')
    return json.dumps([m]).encode()


def capture_log(path, n=None):
    """(recv_ns, frame) of an hftbacktest capture (`<recv_ns> <frame>` lines)."""
    out = []
    for line in need(path).read_bytes().splitlines()[:n]:
        ts, frame = line.split(b" ", 1)
        out.append((int(ts), frame))
    return out


def write_venue(root, venue, lines, run=RUN, period_sec=3600, period_file=None):
    """lines: (ts_recv_ns, conn, stream, payload, meta), in receive order; seq numbered here. Files
    by receive-time period, or all in `period_file` (the recorder's open period after a clock step)."""
    files: dict = {}
    for seq, (ts, conn, stream, payload, meta) in enumerate(sorted(lines, key=lambda t: t[0])):
        key = (recording.safe_stream(stream), period_file or recording.period_name(ts, period_sec))
        files.setdefault(key, []).append(recording.encode_line(seq, ts, conn, stream, payload, meta, run))
    for (d, name), ls in files.items():
        (root / venue / d).mkdir(parents=True, exist_ok=True)
        (root / venue / d / name).write_bytes(gzip.compress(b"".join(ls)))
    return len(lines)


def poly_lines():
    burst = json.loads(need(POLYMARKET / "ws_book_and_price_change_burst_2026.json").read_bytes())
    lines = [((WINDOW_S + 20) * 10**9, "rest", "gamma", gamma_answer(False), f"gamma 200 /markets?slug={SLUG}")]
    for m in burst:
        lines.append((int(m["timestamp"]) * MS + 30 * MS, "market", "book_5m", json.dumps(m).encode(), ""))
    trade = json.loads(need(POLYMARKET / "ws_last_trade_price_2026_with_tx_hash.json").read_bytes())
    trade.update(market=MARKET, asset_id=UP, timestamp=str((WINDOW_S + 250) * 1000))
    lines.append(((WINDOW_S + 250) * 10**9 + 40 * MS, "market", "trade_5m", json.dumps(trade).encode(), ""))
    lines.append(((WINDOW_S + 255) * 10**9, "market", "_control", b"PONG", ""))
    lines.append(((WINDOW_S + 330) * 10**9, "rest", "gamma", gamma_answer(True),
                  f"gamma 200 /markets?condition_ids={MARKET}"))
    return lines


def build_recording(root) -> dict:
    """A recording of real captures under `root`; the line counts per venue."""
    fut = [(ts, "market", "btcusdt@bookTicker", f, "")
           for ts, f in capture_log(BINANCE / "futures_btcusdt_bookTicker_stream_2024-08-08.log", 3000)]
    fut += [(ts, "market", "btcusdt@trade", f, "")
            for ts, f in capture_log(BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log", 2000)]
    # what the feed could not parse: recorded under _malformed; one of them not even UTF-8
    fut.append((fut[0][0] + 1, "market", "_malformed", b"\xff\xfe not utf-8", ""))
    spot = [(ts, "combined", "btcusdt@trade", f, "")
            for ts, f in capture_log(BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log", 1000)]
    cl = []
    for line in need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl").read_bytes().splitlines():
        cl.append((json.loads(line)["timestamp"] * MS + 7 * MS, "rtds", "btc/usd", line, ""))
    return {names.FUTURES: write_venue(root, names.FUTURES, fut), names.SPOT: write_venue(root, names.SPOT, spot),
            names.CHAINLINK: write_venue(root, names.CHAINLINK, cl),
            names.POLY: write_venue(root, names.POLY, poly_lines())}
