"""Record dtypes of the shared-memory rings, one per stream kind.

Invariants:
- every dtype starts with the same three fields: `ts_event_ns` (exchange time, 0 when the venue
  does not send one), `ts_recv_ns` (local receive time, epoch ns) and `flags`;
- a record with `FLAG_GAP` set is a gap marker, not data: records before it may be missing
  (reconnect, restart, id gap); readers count it and skip it in every computation;
- changing any dtype bumps SCHEMA_VERSION, so a reader never attaches to a segment of another layout;
- `DTYPES` are the feeds' record kinds (also the bus's record families, ipc/client.py); compute's
  history samples are `HISTORY_DTYPES`, never published; `RING_DTYPES` is every ring's kind.
"""
from __future__ import annotations

import numpy as np

SCHEMA_VERSION = 1

FLAG_GAP = 1          # gap marker: data before this record may be missing
FLAG_SNAPSHOT = 2     # the record is a full snapshot (book), not an increment

MAX_LEVELS = 20       # top-N depth records hold up to this many levels per side

_HEAD = [("ts_event_ns", "<i8"), ("ts_recv_ns", "<i8"), ("flags", "<u4")]

# aggTrade / trade. side: +1 taker bought (m=false), -1 taker sold (m=true).
TRADE = np.dtype(_HEAD + [
    ("trade_id", "<i8"), ("first_id", "<i8"), ("last_id", "<i8"),
    ("price", "<f8"), ("qty", "<f8"), ("side", "<i1"),
], align=True)

# bookTicker: best bid/ask.
QUOTE = np.dtype(_HEAD + [
    ("update_id", "<i8"), ("bid", "<f8"), ("bid_qty", "<f8"), ("ask", "<f8"), ("ask_qty", "<f8"),
], align=True)

# markPrice@1s.
MARK = np.dtype(_HEAD + [
    ("mark", "<f8"), ("index", "<f8"), ("est_settle", "<f8"), ("funding_rate", "<f8"),
    ("next_funding_ns", "<i8"),
], align=True)

# forceOrder. side: +1 the liquidation order buys (a short was liquidated), -1 it sells (a long).
LIQUIDATION = np.dtype(_HEAD + [
    ("trade_time_ns", "<i8"), ("price", "<f8"), ("avg_price", "<f8"), ("qty", "<f8"),
    ("filled_qty", "<f8"), ("side", "<i1"),
], align=True)

# partial depth (top N). Levels are best-first; unused levels are 0 with n_bids/n_asks saying how many.
DEPTH = np.dtype(_HEAD + [
    ("update_id", "<i8"), ("first_update_id", "<i8"), ("prev_update_id", "<i8"),
    ("n_bids", "<u2"), ("n_asks", "<u2"),
    ("bid_px", "<f8", (MAX_LEVELS,)), ("bid_qty", "<f8", (MAX_LEVELS,)),
    ("ask_px", "<f8", (MAX_LEVELS,)), ("ask_qty", "<f8", (MAX_LEVELS,)),
], align=True)

# kline update (open or closed). tf_sec: the interval in seconds.
KLINE = np.dtype(_HEAD + [
    ("open_time_ns", "<i8"), ("close_time_ns", "<i8"), ("tf_sec", "<i4"), ("closed", "<u1"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("volume", "<f8"), ("quote_volume", "<f8"), ("taker_buy_volume", "<f8"), ("trades", "<i8"),
], align=True)

# Polymarket up/down book of one outcome token after an update: top levels best-first (bids
# descending, asks ascending), prices in [0, 1], sizes in shares. `window_start_ns` names the window
# (no record of one window is ever read as another's); token: 0 = UP, 1 = DOWN. best_bid/best_ask
# are NaN on an empty side. `update_id` counts updates of this book within the feed (monotonic).
POLY_BOOK = np.dtype(_HEAD + [
    ("window_start_ns", "<i8"), ("update_id", "<i8"), ("token", "<u1"),
    ("n_bids", "<u2"), ("n_asks", "<u2"),
    ("best_bid", "<f8"), ("best_ask", "<f8"), ("last_trade", "<f8"), ("tick_size", "<f8"),
    ("bid_px", "<f8", (MAX_LEVELS,)), ("bid_sz", "<f8", (MAX_LEVELS,)),
    ("ask_px", "<f8", (MAX_LEVELS,)), ("ask_sz", "<f8", (MAX_LEVELS,)),
], align=True)

# Polymarket last_trade_price. side: +1 the taker bought, -1 sold.
POLY_TRADE = np.dtype(_HEAD + [
    ("window_start_ns", "<i8"), ("token", "<u1"), ("side", "<i1"),
    ("price", "<f8"), ("size", "<f8"), ("fee_rate_bps", "<f8"),
], align=True)

# Chainlink BTC/USD from Polymarket RTDS: ts_event_ns = the observation time (payload timestamp),
# ts_sent_ns = the message's own timestamp.
CHAINLINK = np.dtype(_HEAD + [
    ("ts_sent_ns", "<i8"), ("price", "<f8"),
], align=True)

DTYPES: dict[str, np.dtype] = {
    "trade": TRADE, "quote": QUOTE, "mark": MARK, "liquidation": LIQUIDATION,
    "depth": DEPTH, "kline": KLINE,
    "poly_book": POLY_BOOK, "poly_trade": POLY_TRADE, "chainlink": CHAINLINK,
}

# --- history: compute's samples for the dashboard (actors/decide/history.py), never on the bus ---
# ts_recv_ns is the sample's data-clock time (compute's tick), ts_event_ns the same; a missing value
# is NaN; the small codes index the tables of actors/decide/history.py (-1: unknown). Fields are
# ordered for packing (176 bytes), not as the page shows them.

# one sample of one series' current window (the edge document of that tick)
WINDOW_SAMPLE = np.dtype(_HEAD + [
    ("slices", "<i4"),                                   # accumulate.slices (this window's so far)
    ("window_start_ns", "<i8"), ("window_end_ns", "<i8"),  # 0: no window
    ("binance", "<f8"), ("chainlink", "<f8"),
    ("settlement", "<f8"),     # the rule's source: Chainlink, or the Binance candle (1h, 1d series)
    ("price_to_beat", "<f8"), ("fair_up", "<f8"),
    ("up_bid", "<f8"), ("up_ask", "<f8"), ("down_bid", "<f8"), ("down_ask", "<f8"),
    ("edge_up", "<f8"), ("edge_down", "<f8"),            # probability units (sides.X.edge)
    ("roc_up", "<f8"), ("roc_down", "<f8"),              # sides.X.return_on_cost
    ("buffer", "<f8"),                                   # EDGE_BUFFER_BPS / 1e4
    ("time_left_s", "<f8"), ("slice_usd", "<f8"), ("acc_usd", "<f8"),
    ("veto_mask", "<u4"),                                # bit i: VETO_CODES[i]; the last: other
    ("decision", "<i1"), ("action", "<i1"), ("slice_side", "<i1"), ("quality", "<i1"),
], align=True)

# one market sample a second (the features document of that tick)
MARKET_SAMPLE = np.dtype(_HEAD + [
    ("quality", "<i1"),
    ("futures", "<f8"), ("spot", "<f8"), ("futures_mid", "<f8"), ("spot_mid", "<f8"),
    ("cvd_futures", "<f8"), ("cvd_spot", "<f8"), ("basis_bps", "<f8"), ("mark", "<f8"),
    ("liq_long_usd", "<f8"), ("liq_short_usd", "<f8"),   # the liquidations window's notional
], align=True)

HISTORY_DTYPES: dict[str, np.dtype] = {"window_sample": WINDOW_SAMPLE, "market_sample": MARKET_SAMPLE}
# every ring record kind: the feeds' (DTYPES, the bus's record families too) and the history's
RING_DTYPES: dict[str, np.dtype] = {**DTYPES, **HISTORY_DTYPES}
