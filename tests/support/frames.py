"""Venue frames and their expected levels for tests: Binance's documented markPrice/forceOrder
frames (no data-file capture of them exists), a capture wrapped as a combined stream delivers it,
a captured side's levels best first (read from the capture text, not the parser), and the UP book
of a real Polymarket snapshot as the feed writes it. Captures are read in place (tests.support.fixtures).
"""
from __future__ import annotations

from actors.venues.polymarket import clob
from actors.venues.polymarket.book import OrderBook
from ipc.schema import FLAG_SNAPSHOT, MAX_LEVELS
from tests.support.fixtures import BINANCE, POLYMARKET, need

RECV = 1_700_000_000_123_456_789   # the receive time, ns, poly_book_record stamps
MS = 1_000_000

MARK_FRAME = (b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
              b'"s":"BTCUSDT","p":"11794.15000000","ap":"11794.15000000","P":"11784.62659091",'
              b'"i":"11784.25641265","r":"0.00038167","T":1562306400000}}')
LIQ_FRAME = (b'{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1568014460893,"o":{'
             b'"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910",'
             b'"X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}')


def combined(stream: str, name: str) -> bytes:
    """A captured payload as the combined stream `stream` delivers it."""
    return b'{"stream":"' + stream.encode() + b'","data":' + need(BINANCE / name).read_bytes() + b"}"


def side(levels: list, bids: bool, n: int = MAX_LEVELS) -> tuple[list[float], list[float]]:
    """(prices, qtys) of a captured side, best first, at most n levels."""
    lv = sorted(((float(p), float(q)) for p, q in levels), reverse=bids)[:n]
    return [p for p, _ in lv], [q for _, q in lv]


def poly_book_record() -> tuple:
    """The UP book of a real 2026 snapshot (7 bids, 57 asks) as the feed writes it."""
    (b,) = clob.parse_frame(need(POLYMARKET / "ws_book_2026_captured.json").read_bytes(), RECV)
    ob = OrderBook()
    ob.apply_snapshot(b.bids, b.asks, b.timestamp_ms, b.tick_size)
    return ob.record(0, 1_786_603_500 * 10**9, 7, b.timestamp_ms * MS, RECV, b.last_trade_price,
                     flags=FLAG_SNAPSHOT)
