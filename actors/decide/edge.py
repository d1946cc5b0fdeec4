"""Edge of buying UP or DOWN on the Polymarket window, net of the taker fee, with vetoes. Pure.

Definitions (DESIGN.md "Features", "Venue facts"):
- the walk: `slice_usd` is spent on shares, taking the asks best-first (ascending price), each
  level whole while the money lasts and the last one partly (remaining / price shares)
  (`walk_with_fee` below). The fee is charged ON TOP of slice_usd (it is not part of the budget);
- fee per share at a level = rate·(p·(1−p))^exponent at that level's price p (fee_per_share below),
  fee_usd = Σ fee_per_share(p_i)·shares_i over the levels taken;
- avg_price = Σ p_i·shares_i / shares, avg_fee_per_share = fee_usd / shares,
  effective_cost = avg_price + avg_fee_per_share = (spent + fee_usd) / shares;
- fair for the side: UP → fair_up, DOWN → 1 − fair_up;
- edge_bps = (fair − effective_cost) / effective_cost · 1e4;
- filled = the asks covered slice_usd (to within 1e-9 USD); a partial fill is vetoed
  ("partial_fill") but its numbers are still reported.
Vetoes (each {"code", "side", "reason"}; side None = the whole decision):
  global: no_window, window_not_started, window_ended, window_inactive, time_left, quality, no_fair;
  per side: stale, no_asks, no_bids, crossed, spread, depth, partial_fill.
- stale: book age_s unknown or > stale_threshold_sec;
- spread_bps = (best_ask − best_bid) / mid · 1e4, mid = (best_ask + best_bid)/2; vetoed above
  max_spread_bps; a crossed book (bid ≥ ask) is its own veto;
- depth_usd = Σ p·size over the top `depth_levels` asks; vetoed below min_depth (USD);
- time_left_s = window end − now; vetoed below min_time_left_sec.
Decision: among sides with no veto (and no global veto) whose edge_bps > edge_buffer_bps, the larger
edge ("BUY_UP"/"BUY_DOWN"; UP on an exact tie), else "NONE".
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


from ipc import names

DUST_USD = 1e-9          # a remainder below this is rounding, not money left to spend
SIDES = names.POLY_TOKENS
DECISIONS = {"UP": "BUY_UP", "DOWN": "BUY_DOWN"}


@dataclass(frozen=True, kw_only=True)
class EdgeParams:
    slice_usd: float              # SLICE_USD
    edge_buffer_bps: float        # EDGE_BUFFER_BPS
    stale_threshold_sec: float    # POLYMARKET_STALE_THRESHOLD_SEC
    max_spread_bps: float         # POLYMARKET_MAX_SPREAD_BPS
    min_depth_usd: float          # POLYMARKET_MIN_DEPTH (USD of ask notional over depth_levels)
    depth_levels: int = 5         # POLYMARKET_DEPTH_LEVELS
    min_time_left_sec: float = 30.0   # EDGE_MIN_TIME_LEFT_SEC

    @classmethod
    def from_settings(cls, s) -> "EdgeParams":
        return cls(slice_usd=s.decisions.slice_usd, edge_buffer_bps=s.decisions.edge_buffer_bps,
                   stale_threshold_sec=s.decisions.stale_threshold_sec,
                   max_spread_bps=s.decisions.max_spread_bps, min_depth_usd=s.decisions.min_depth_usd,
                   depth_levels=s.decisions.depth_levels, min_time_left_sec=s.decisions.edge_min_time_left_sec)


def fee_per_share(rate: float, price: float, exponent: float = 1.0) -> float:
    """Polymarket's taker fee per share in USD: rate·(p·(1−p))^exponent (rate·p·(1−p) at exponent 1).

    Not rounded: the venue floors the charged fee to 5 decimals (per NautilusTrader's model).
    """
    pq = price * (1.0 - price)
    return rate * (pq if exponent == 1.0 else pq ** exponent)


def _sorted_asks(asks) -> list[tuple[float, float]]:
    return sorted(((float(p), float(s)) for p, s in asks if float(s) > 0.0), key=lambda l: l[0])


def _sorted_bids(bids) -> list[tuple[float, float]]:
    return sorted(((float(p), float(s)) for p, s in bids if float(s) > 0.0), key=lambda l: -l[0])


def walk_with_fee(asks, slice_usd: float, fee_rate: float, fee_exponent: float = 1.0) -> dict:
    """Spend slice_usd on the asks (best-first); fee on top, per level. See the module docstring."""
    remaining = float(slice_usd)
    shares = spent = fee = 0.0
    used = 0
    if remaining > 0.0:
        for px, sz in asks:
            if remaining <= DUST_USD:
                break
            if not (0.0 < px < 1.0) or not sz > 0.0:
                continue
            used += 1
            cost = px * sz
            if cost <= remaining:
                took = sz
                spent += cost
                remaining -= cost
            else:
                took = remaining / px
                spent += remaining
                remaining = 0.0
            shares += took
            fee += fee_per_share(fee_rate, px, fee_exponent) * took
            if remaining == 0.0:
                break
    filled = slice_usd > 0.0 and remaining <= DUST_USD
    if shares <= 0.0:
        return {"shares": 0.0, "spent_usd": 0.0, "avg_price": None, "fee_usd": 0.0,
                "avg_fee_per_share": None, "effective_cost": None, "levels_used": 0, "filled": False}
    return {"shares": shares, "spent_usd": spent, "avg_price": spent / shares, "fee_usd": fee,
            "avg_fee_per_share": fee / shares, "effective_cost": (spent + fee) / shares,
            "levels_used": used, "filled": filled}


def _fair_ok(fair_up) -> bool:
    return fair_up is not None and isinstance(fair_up, (int, float)) and math.isfinite(fair_up) \
        and 0.0 <= fair_up <= 1.0


def edge_for(side: str, fair_up, asks, slice_usd: float, fee_rate: float,
             fee_exponent: float = 1.0) -> dict:
    """The walk of `asks` for slice_usd plus fair and edge_bps for `side` ("UP" or "DOWN").

    edge_bps is None (with "reason") when fair is unknown or nothing could be bought.
    """
    if side not in SIDES:
        raise ValueError(f"side must be UP or DOWN, not {side!r}")
    out = walk_with_fee(_sorted_asks(asks), slice_usd, fee_rate, fee_exponent)
    out["side"] = side
    out["fee_rate"] = fee_rate
    out["fee_exponent"] = fee_exponent
    if not _fair_ok(fair_up):
        out["fair"] = None
        out["edge_bps"] = None
        out["reason"] = "fair value unknown"
        return out
    fair = float(fair_up) if side == "UP" else 1.0 - float(fair_up)
    out["fair"] = fair
    eff = out["effective_cost"]
    if eff is None or not eff > 0.0:
        out["edge_bps"] = None
        out["reason"] = "no asks to buy"
        return out
    out["edge_bps"] = (fair - eff) / eff * 1e4
    return out


def _veto(code: str, side, reason: str) -> dict:
    return {"code": code, "side": side, "reason": reason}


def _window_vetoes(now_ns: int, window, min_time_left_sec: float) -> tuple[list[dict], float | None]:
    if window is None:
        return [_veto("no_window", None, "no current window")], None
    v = []
    start_ns, end_ns = int(window.start_ns), int(window.end_ns)
    time_left_s = (end_ns - now_ns) / 1e9
    if now_ns < start_ns:
        v.append(_veto("window_not_started", None,
                       f"window starts in {(start_ns - now_ns) / 1e9:.3f} s"))
    if now_ns >= end_ns:
        v.append(_veto("window_ended", None, f"window ended {-time_left_s:.3f} s ago"))
    flags = []
    if not getattr(window, "active", True):
        flags.append("not active")
    if getattr(window, "closed", False):
        flags.append("closed")
    if not getattr(window, "accepting_orders", True):
        flags.append("not accepting orders")
    if flags:
        v.append(_veto("window_inactive", None, "market " + ", ".join(flags)))
    if now_ns < end_ns and time_left_s < min_time_left_sec:
        v.append(_veto("time_left", None,
                       f"{time_left_s:.3f} s left < {min_time_left_sec:g} s minimum"))
    return v, time_left_s


def _book_side(side: str, book, fair_up, fee_rate: float, fee_exponent: float,
               p: EdgeParams) -> dict:
    book = book or {}
    asks = _sorted_asks(book.get("asks") or [])
    bids = _sorted_bids(book.get("bids") or [])
    age_s = book.get("age_s")
    e = edge_for(side, fair_up, asks, p.slice_usd, fee_rate, fee_exponent)
    vetoes = []
    if age_s is None or not math.isfinite(age_s) or age_s > p.stale_threshold_sec:
        vetoes.append(_veto("stale", side, "book age unknown" if age_s is None else
                            f"book {age_s:.3f} s old > {p.stale_threshold_sec:g} s"))
    best_ask = asks[0][0] if asks else None
    best_bid = bids[0][0] if bids else None
    spread_bps = None
    if best_ask is None:
        vetoes.append(_veto("no_asks", side, "no asks in the book"))
    if best_bid is None:
        vetoes.append(_veto("no_bids", side, "no bids in the book: spread undefined"))
    if best_ask is not None and best_bid is not None:
        if best_bid >= best_ask:
            vetoes.append(_veto("crossed", side, f"crossed book: bid {best_bid} >= ask {best_ask}"))
        else:
            mid = (best_ask + best_bid) / 2.0
            spread_bps = (best_ask - best_bid) / mid * 1e4
            if spread_bps > p.max_spread_bps:
                vetoes.append(_veto("spread", side,
                                    f"spread {spread_bps:.1f} bps > {p.max_spread_bps:g} bps"))
    top = asks[:p.depth_levels]
    depth_usd = sum(px * sz for px, sz in top)
    if asks and depth_usd < p.min_depth_usd:
        vetoes.append(_veto("depth", side, f"top-{p.depth_levels} ask depth {depth_usd:.2f} USD"
                            f" < {p.min_depth_usd:g} USD"))
    if asks and not e["filled"]:
        vetoes.append(_veto("partial_fill", side,
                            f"insufficient depth: asks cover {e['spent_usd']:.4f} of "
                            f"{p.slice_usd:g} USD"))
    e.update({"best_bid": best_bid, "best_ask": best_ask, "spread_bps": spread_bps,
              "depth_usd": depth_usd, "age_s": age_s, "vetoes": vetoes,
              # the inputs that decided this side, for the decision log
              "asks_top": asks[:max(p.depth_levels, e["levels_used"])], "bids_top": bids[:1]})
    return e


def evaluate(now_ns: int, window, fair_up, books: dict, quality_mode: str, params: EdgeParams) -> dict:
    """Per-side edges, vetoes and the decision for one tick.

    window: an actors.decide.window.Window (or anything with start_ns, end_ns, active, closed,
    accepting_orders, fee.rate, fee.exponent: gamma.WindowInfo in tests), or None. books: {"UP"|"DOWN": {"asks": [(p, size)],
    "bids": [(p, size)], "age_s": float | None}}. quality_mode: "OK" / "DEGRADED" / "BAD".
    """
    vetoes, time_left_s = _window_vetoes(now_ns, window, params.min_time_left_sec)
    if quality_mode != "OK":
        vetoes.append(_veto("quality", None, f"quality is {quality_mode}"))
    if not _fair_ok(fair_up):
        vetoes.append(_veto("no_fair", None, "fair value unknown" if fair_up is None
                            else f"fair value {fair_up!r} not a probability"))
    fee = getattr(window, "fee", None)
    fee_rate = float(fee.rate) if fee is not None else 0.0
    fee_exp = float(fee.exponent) if fee is not None else 1.0
    sides = {s: _book_side(s, (books or {}).get(s), fair_up, fee_rate, fee_exp, params)
             for s in SIDES}
    for s in SIDES:
        vetoes.extend(sides[s]["vetoes"])

    decision, reason = "NONE", None
    global_v = [v for v in vetoes if v["side"] is None]
    if global_v:
        reason = "vetoed: " + ", ".join(v["code"] for v in global_v)
    else:
        best = None
        for s in SIDES:
            e = sides[s]
            if e["vetoes"] or e["edge_bps"] is None or not e["edge_bps"] > params.edge_buffer_bps:
                continue
            if best is None or e["edge_bps"] > sides[best]["edge_bps"]:
                best = s
        if best is not None:
            decision = DECISIONS[best]
            reason = f"{best} edge {sides[best]['edge_bps']:.1f} bps > {params.edge_buffer_bps:g} bps"
        else:
            parts = []
            for s in SIDES:
                e = sides[s]
                if e["vetoes"]:
                    parts.append(f"{s} vetoed ({', '.join(v['code'] for v in e['vetoes'])})")
                elif e["edge_bps"] is None:
                    parts.append(f"{s} edge unknown")
                else:
                    parts.append(f"{s} edge {e['edge_bps']:.1f} bps <= buffer")
            reason = "; ".join(parts)
    return {
        "ts_ns": int(now_ns),
        "decision": decision,
        "reason": reason,
        "vetoes": vetoes,
        "sides": sides,
        "fair_up": fair_up if _fair_ok(fair_up) else None,
        "quality": quality_mode,
        "time_left_s": time_left_s,
        "window": None if window is None else {
            "slug": getattr(window, "slug", None), "start_ns": int(window.start_ns),
            "end_ns": int(window.end_ns), "active": getattr(window, "active", None),
            "closed": getattr(window, "closed", None),
            "accepting_orders": getattr(window, "accepting_orders", None),
            "fee_rate": fee_rate, "fee_exponent": fee_exp},
        "params": asdict(params),
    }
