"""Polymarket CLOB wire format of the sim (pure): the generator's messages as the venue's JSON.

Shapes, key orders and typing follow real captures of the venue (the ones the parser tests read):
- `book` (WebSocket): the 2026 shape `market, asset_id, timestamp, hash, bids, asks, tick_size,
  event_type, last_trade_price` for dumps and resyncs; the shorter shape `market, asset_id, bids,
  asks, hash, timestamp, event_type` for the book the venue resends after a trade (burst capture);
  sides worst-first (bids ascending, asks descending: the best price is the last element);
- `price_change`: `market, price_changes[{asset_id, price, size, side, hash, best_bid, best_ask}],
  timestamp, event_type`; size is the new total ("0" deletes); an empty side's best is "";
- `last_trade_price`: `market, asset_id, price, size, fee_rate_bps, side, timestamp, event_type,
  transaction_hash` (fee_rate_bps "0" as in the 2026 capture; side is the taker's);
- `best_bid_ask`: `market, asset_id, best_bid, best_ask, spread, timestamp, event_type`;
- `tick_size_change`: `asset_id, event_type, market, new_tick_size, old_tick_size, timestamp`;
- `market_resolved`: no capture; the shape of the unverified docs-derived sample;
- `new_market`: the key set and order of the 2025 capture (ws_new_market_2025.json, an NVDA
  market: `event_type, id, question, market, slug, description, assets_ids, outcomes,
  event_message{id, ticker, slug, title, description}, timestamp, tags, condition_id, active,
  clob_token_ids, sports_market_type, line, game_start_time, order_price_min_tick_size,
  group_item_title`), filled for an up/down window (no up/down new_market was captured);
- REST `/book`: `market, asset_id, timestamp, hash, bids, asks, min_order_size, tick_size,
  neg_risk, last_trade_price` ("" before any trade).
Prices are decimal strings without trailing zeros ("0.5", "0.07", "0.001"); sizes have up to two
decimals ("220045", "3793.8"); timestamps are ms strings; hashes 40 hex.
"""
from __future__ import annotations

import orjson

from actors.sim.polymarket import schedule as pg
from actors.sim.polymarket import books as pm

NO_BOOK = orjson.dumps({"error": "No orderbook exists for the requested token id"}).decode()


def px(mil: int | None) -> str:
    """Polymarket's price strings: "0.5", "0.07", "0.001" ("" for none)."""
    if mil is None:
        return ""
    return f"{mil / 1000:.3f}".rstrip("0").rstrip(".")


def sz(c: int) -> str:
    """Sizes in hundredths of a share: "220045", "422.69", "3793.8"."""
    if c % 100 == 0:
        return str(c // 100)
    return f"{c // 100}.{c % 100:02d}".rstrip("0")


def tick_str(t: int) -> str:
    return "0.01" if t == pm.COARSE else "0.001"


def _levels(levels) -> list[dict]:
    return [{"price": px(p), "size": sz(s)} for p, s in levels]


def book_msg(w: pg.Window, s: pm.Snapshot, *, full: bool | None = None) -> dict:
    tok = w.tokens[s.token]
    h = pm.book_hash(tok, s.version)
    if s.full if full is None else full:
        return {"market": w.condition_id, "asset_id": tok, "timestamp": str(s.ts), "hash": h,
                "bids": _levels(s.bids), "asks": _levels(s.asks), "tick_size": tick_str(s.tick),
                "event_type": "book",
                "last_trade_price": "" if s.last_trade is None else f"{s.last_trade / 1000:.3f}"}
    return {"market": w.condition_id, "asset_id": tok, "bids": _levels(s.bids),
            "asks": _levels(s.asks), "hash": h, "timestamp": str(s.ts), "event_type": "book"}


def rest_book(w: pg.Window, s: pm.Snapshot) -> dict:
    tok = w.tokens[s.token]
    return {"market": w.condition_id, "asset_id": tok, "timestamp": str(s.ts),
            "hash": pm.book_hash(tok, s.version), "bids": _levels(s.bids), "asks": _levels(s.asks),
            "min_order_size": "5", "tick_size": tick_str(s.tick), "neg_risk": False,
            "last_trade_price": "" if s.last_trade is None else f"{s.last_trade / 1000:.3f}"}


def encode(w: pg.Window, m, blocked: frozenset = frozenset()) -> tuple[dict, set[str]] | None:
    """(message, tokens it concerns), without the entries of `blocked` tokens; None if empty."""
    toks = w.tokens
    if m.kind == "price_change":
        ents = [e for e in m.entries if toks[e.token] not in blocked]
        if not ents:
            return None
        return ({"market": w.condition_id,
                 "price_changes": [{"asset_id": toks[e.token], "price": px(e.price),
                                    "size": sz(e.size), "side": "BUY" if e.buy else "SELL",
                                    "hash": pm.book_hash(toks[e.token], e.version),
                                    "best_bid": px(e.best_bid), "best_ask": px(e.best_ask)}
                                   for e in ents],
                 "timestamp": str(m.ts), "event_type": "price_change"},
                {toks[e.token] for e in ents})
    tok = toks[m.token]
    if tok in blocked:
        return None
    if m.kind == "book":
        return book_msg(w, m), {tok}
    if m.kind == "last_trade_price":
        return ({"market": w.condition_id, "asset_id": tok, "price": px(m.price), "size": sz(m.size),
                 "fee_rate_bps": "0", "side": "BUY" if m.taker_buy else "SELL",
                 "timestamp": str(m.ts), "event_type": "last_trade_price",
                 "transaction_hash": m.tx}, {tok})
    if m.kind == "best_bid_ask":
        spread = "" if m.best_bid is None or m.best_ask is None else px(m.best_ask - m.best_bid)
        return ({"market": w.condition_id, "asset_id": tok, "best_bid": px(m.best_bid),
                 "best_ask": px(m.best_ask), "spread": spread, "timestamp": str(m.ts),
                 "event_type": "best_bid_ask"}, {tok})
    if m.kind == "tick_size_change":
        return ({"asset_id": tok, "event_type": "tick_size_change", "market": w.condition_id,
                 "new_tick_size": tick_str(m.new), "old_tick_size": tick_str(m.old),
                 "timestamp": str(m.ts)}, {tok})
    raise ValueError(f"unknown message {m!r}")


def resolved_msg(w: pg.Window, up_won: bool, ts_ms: int) -> dict:
    """`market_resolved` in the (uncaptured, docs-derived) shape of the unverified sample."""
    win = w.up_token if up_won else w.down_token
    return {"event_type": "market_resolved", "id": w.market_id, "market": w.condition_id,
            "assets_ids": [w.up_token, w.down_token], "winning_asset_id": win,
            "winning_outcome": "Up" if up_won else "Down", "timestamp": str(ts_ms),
            "tags": ["crypto"]}


def new_market_msg(w: pg.Window, description: str, ts_ms: int) -> dict:
    """`new_market` for a freshly listed window, in the key order of the 2025 capture."""
    toks = [w.up_token, w.down_token]
    return {"event_type": "new_market", "id": w.market_id, "question": w.title,
            "market": w.condition_id, "slug": w.slug, "description": description,
            "assets_ids": toks, "outcomes": ["Up", "Down"],
            "event_message": {"id": w.event_id, "ticker": w.slug, "slug": w.slug, "title": w.title,
                              "description": description},
            "timestamp": str(ts_ms), "tags": ["crypto"], "condition_id": w.condition_id,
            "active": True, "clob_token_ids": list(toks), "sports_market_type": "", "line": "",
            "game_start_time": "", "order_price_min_tick_size": "0.01", "group_item_title": ""}
