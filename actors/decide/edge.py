"""Edge of buying UP or DOWN on one Polymarket window, all-in after the taker fee, with vetoes. Pure.

Definitions, per side (DESIGN.md "Features", "Venue facts", Amendments "Edge"):
- the walk: `slice_usd` is spent on shares, taking the asks best-first (ascending price), each
  level whole while the money lasts and the last one partly (remaining / price shares)
  (`walk_with_fee`). The fee is charged ON TOP of slice_usd (it is not part of the budget);
- the fee, as the venue charges it: each fill (one ask level taken, C shares at price p) pays
  fee = C·rate·(p·(1−p))^exponent USD ("fee = C × feeRate × p × (1 − p)" at exponent 1, the
  market's `feeSchedule`), floored to 5 decimals (0.00001 pUSD: the venue's charge, as in
  NautilusTrader's Polymarket fee model). Only takers pay (`taker_only`); we take, so we pay. A
  zero rate charges nothing;
- fair = the side's probability: UP → fair_up, DOWN → 1 − fair_up;
- avg_price = Σ p_i·C_i / shares; fee_per_share = fee_usd / shares;
  cost_per_share (all-in) = avg_price + fee_per_share = (spent_usd + fee_usd) / shares;
- edge = fair − cost_per_share, in probability (a share pays 1 USD if the side wins, so edge is
  the expected profit per share in USD); edge_bps = edge·1e4 (probability points × 100), the
  number EDGE_BUFFER_BPS is compared with; return_on_cost = edge / cost_per_share (expected
  profit per dollar spent); ev_usd = edge·shares (the slice's expected profit);
- filled = the asks covered slice_usd (to within 1e-9 USD); a partial fill is vetoed
  ("partial_fill") but its numbers are still reported.

Worked example: fair 0.10 against one ask level at 0.08, rate 0.07, exponent 1, SLICE_USD 20:
  250 shares; fee = 250·0.07·0.08·0.92 = 1.288 USD, fee_per_share = 0.005152;
  cost_per_share = 0.085152; edge = 0.10 − 0.085152 = 0.014848 = 148.48 bps (1.48 points);
  return_on_cost = 0.014848 / 0.085152 = 17.44 %; ev_usd = 0.014848·250 = 3.712 USD.
  (The old edge_bps, (fair − cost)/cost·1e4, read 1,743.7 bps here: a return, not an edge, and
  it ranked longshots first.)

Vetoes (each {"code", "side", "reason"}; side None = the whole decision):
  global: no_window, window_not_started, window_ended, window_inactive, time_left, quality,
    no_fair, settlement_source, binance_missing, binance_stale, chainlink_missing,
    chainlink_stale, candle_missing, candle_stale, arbitrage;
  per side: stale, no_asks, no_bids, crossed, spread, depth, partial_fill, min_price, min_size.
- input ages (`inputs`, the edge document's own): binance_stale when the Binance microprice's quote
  is older (receive time) than binance_max_age_ms; chainlink_stale when the last Chainlink value
  is older (receive time) than chainlink_max_age_sec, only for a window that settles on Chainlink;
  candle_stale when the settlement-source spot price of a Binance-candle window is older than
  binance_max_age_ms; stale (per side) when the book's age (now − its record's receive time) is
  unknown or above stale_threshold_sec. Each reason carries the age. An input that is not there
  at all (no price or no age) has no age to compare and is its own veto: binance_missing (no
  microprice yet), chainlink_missing (a Chainlink-settled window, no value yet), candle_missing
  (a Binance-candle window, no price of its market yet), each saying what is missing;
- settlement_source: the window's rule settles on a stream (`rule.stream`) other than the one
  compute reads (`inputs.chainlink.stream` for Chainlink, `inputs.candle.stream`, the configured
  SYMBOL, for Binance candles): "settles on BTCUSDC candles; the collector reads BTCUSDT". Its
  price to beat and fair value would be about another market;
- quality: the quality of THIS decision's own inputs (`{"mode", "reasons"}`) is not OK; the
  reason lists them;
- arbitrage: with both best asks known, ask_sum = best_ask_UP + best_ask_DOWN, and with both
  walks done, cost_sum = cost_per_share_UP + cost_per_share_DOWN; flagged when either is < 1.
  A pair (one UP and one DOWN share) pays exactly 1, so cost_sum < 1 is a free arbitrage (buying
  both locks in 1 − cost_sum per pair: the strategy should handle it, this engine buys one side),
  and ask_sum < 1 ≤ cost_sum books that disagree with each other (one is stale or wrong). Either
  way the books are not a market to take one side in: a global veto saying which;
- spread_bps = (best_ask − best_bid) / mid · 1e4, mid = (best_ask + best_bid)/2; vetoed above
  max_spread_bps; a crossed book (bid ≥ ask) is its own veto;
- depth_usd = Σ p·size over the top `depth_levels` asks; vetoed below min_depth (USD);
- min_price: avg_price < min_price (EDGE_MIN_PRICE: a longshot's fair value is mostly model
  error); min_size: shares < the market's orderMinSize (the venue rejects a smaller order);
- time_left_s = window end − now; vetoed below min_time_left_sec.
Decision (`best_side`): among the sides with no veto (and no global veto) whose edge_bps >
edge_buffer_bps, the one with the highest return_on_cost, i.e. expected value per dollar
("BUY_UP"/"BUY_DOWN"; UP on an exact tie), else "NONE". With one fair value for both sides,
edge_UP + edge_DOWN = 1 − cost_sum, so two sides over the buffer always come with the arbitrage
veto: the ranking decides only between candidates that `best_side` is given.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

from ipc import names

DUST_USD = 1e-9          # a remainder below this is rounding, not money left to spend
FEE_DECIMALS = 5         # the venue charges fees in units of 0.00001 pUSD
_FEE_UNIT = 10 ** FEE_DECIMALS
SIDES = names.POLY_TOKENS
DECISIONS = {"UP": "BUY_UP", "DOWN": "BUY_DOWN"}


@dataclass(frozen=True, kw_only=True)
class EdgeParams:
    slice_usd: float              # SLICE_USD
    edge_buffer_bps: float        # EDGE_BUFFER_BPS (probability points × 100)
    stale_threshold_sec: float    # POLYMARKET_STALE_THRESHOLD_SEC
    max_spread_bps: float         # POLYMARKET_MAX_SPREAD_BPS
    min_depth_usd: float          # POLYMARKET_MIN_DEPTH (USD of ask notional over depth_levels)
    depth_levels: int = 5         # POLYMARKET_DEPTH_LEVELS
    min_time_left_sec: float = 30.0   # EDGE_MIN_TIME_LEFT_SEC
    min_price: float = 0.0            # EDGE_MIN_PRICE
    binance_max_age_ms: float = math.inf     # EDGE_BINANCE_MAX_AGE_MS
    chainlink_max_age_sec: float = math.inf  # FAIR_CHAINLINK_MAX_AGE_SEC

    @classmethod
    def from_settings(cls, s) -> "EdgeParams":
        d = s.decisions
        return cls(slice_usd=d.slice_usd, edge_buffer_bps=d.edge_buffer_bps,
                   stale_threshold_sec=d.stale_threshold_sec, max_spread_bps=d.max_spread_bps,
                   min_depth_usd=d.min_depth_usd, depth_levels=d.depth_levels,
                   min_time_left_sec=d.edge_min_time_left_sec, min_price=d.edge_min_price,
                   binance_max_age_ms=d.edge_binance_max_age_ms,
                   chainlink_max_age_sec=d.fair_chainlink_max_age_sec)


@functools.lru_cache(maxsize=16)
def _params_doc(params: EdgeParams) -> dict:
    return asdict(params)


def fee_per_share(rate: float, price: float, exponent: float = 1.0) -> float:
    """The fee schedule's rate per share in USD, rate·(p·(1−p))^exponent, unrounded (the venue
    rounds the fee of a whole fill: `fill_fee`)."""
    pq = price * (1.0 - price)
    return rate * (pq if exponent == 1.0 else pq ** exponent)


def fill_fee(shares: float, rate: float, price: float, exponent: float = 1.0) -> float:
    """The fee of one fill, C·rate·(p·(1−p))^exponent floored to 5 decimals. A product that lands
    within 1e-6 of a unit below a 5-decimal boundary (binary rounding of an exact decimal, e.g.
    250·0.07·0.08·0.92 = 1.2879999999999998) is that boundary."""
    raw = shares * fee_per_share(rate, price, exponent) * _FEE_UNIT
    return math.floor(round(raw, 6)) / _FEE_UNIT


def _sorted_asks(asks) -> list[tuple[float, float]]:
    return sorted(((float(p), float(s)) for p, s in asks if float(s) > 0.0), key=lambda l: l[0])


def _sorted_bids(bids) -> list[tuple[float, float]]:
    return sorted(((float(p), float(s)) for p, s in bids if float(s) > 0.0), key=lambda l: -l[0])


def walk_with_fee(asks, slice_usd: float, fee_rate: float, fee_exponent: float = 1.0) -> dict:
    """Spend slice_usd on the asks (best-first); the fee on top, per fill. See the module docstring."""
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
            fee += fill_fee(took, fee_rate, px, fee_exponent)
            if remaining == 0.0:
                break
    filled = slice_usd > 0.0 and remaining <= DUST_USD
    if shares <= 0.0:
        return {"shares": 0.0, "spent_usd": 0.0, "avg_price": None, "fee_usd": 0.0,
                "fee_per_share": None, "cost_per_share": None, "levels_used": 0, "filled": False}
    return {"shares": shares, "spent_usd": spent, "avg_price": spent / shares, "fee_usd": fee,
            "fee_per_share": fee / shares, "cost_per_share": (spent + fee) / shares,
            "levels_used": used, "filled": filled}


def _fair_ok(fair_up) -> bool:
    return fair_up is not None and isinstance(fair_up, (int, float)) and math.isfinite(fair_up) \
        and 0.0 <= fair_up <= 1.0


_NO_EDGE = {"edge": None, "edge_bps": None, "return_on_cost": None, "ev_usd": None}


def edge_for(side: str, fair_up, asks, slice_usd: float, fee_rate: float,
             fee_exponent: float = 1.0) -> dict:
    """The walk of `asks` for slice_usd plus fair, edge, edge_bps, return_on_cost and ev_usd for
    `side` ("UP" or "DOWN"). The edge fields are None (with "reason") when fair is unknown or
    nothing could be bought."""
    if side not in SIDES:
        raise ValueError(f"side must be UP or DOWN, not {side!r}")
    out = walk_with_fee(_sorted_asks(asks), slice_usd, fee_rate, fee_exponent)
    out.update(side=side, fee_rate=fee_rate, fee_exponent=fee_exponent, **_NO_EDGE)
    if not _fair_ok(fair_up):
        out["fair"] = None
        out["reason"] = "fair value unknown"
        return out
    fair = float(fair_up) if side == "UP" else 1.0 - float(fair_up)
    out["fair"] = fair
    cost = out["cost_per_share"]
    if cost is None or not cost > 0.0:
        out["reason"] = "no asks to buy"
        return out
    edge = fair - cost
    out.update(edge=edge, edge_bps=edge * 1e4, return_on_cost=edge / cost, ev_usd=edge * out["shares"])
    return out


def best_side(sides: dict, edge_buffer_bps: float) -> str | None:
    """The side to buy: among those without a veto whose edge_bps > edge_buffer_bps, the highest
    return_on_cost (UP first on an exact tie); None if there is none."""
    best = None
    for s in SIDES:
        e = sides.get(s)
        if not e or e["vetoes"] or e["edge_bps"] is None or not e["edge_bps"] > edge_buffer_bps:
            continue
        if best is None or e["return_on_cost"] > sides[best]["return_on_cost"]:
            best = s
    return best


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


def _missing(inp: dict) -> bool:
    return inp.get("price") is None or inp.get("age_ms") is None


def _age_vetoes(window, inputs: dict | None, p: EdgeParams) -> list[dict]:
    """The decision-wide inputs: each missing or too old (module docstring); `inputs` is the edge
    document's (None: not checked)."""
    if not inputs:
        return []
    v = []
    bn = inputs.get("binance") or {}
    age = bn.get("age_ms")
    if _missing(bn):
        v.append(_veto("binance_missing", None, f"no binance microprice: no quote from "
                                                f"{bn.get('venue') or 'the primary venue'} yet"))
    elif age > p.binance_max_age_ms:
        v.append(_veto("binance_stale", None,
                       f"binance microprice {age:.0f} ms old > {p.binance_max_age_ms:g} ms"))
    source = getattr(getattr(window, "rule", None), "source", None)
    if source == "chainlink":
        cl = inputs.get("chainlink") or {}
        age = cl.get("age_ms")
        if _missing(cl):
            v.append(_veto("chainlink_missing", None,
                           "no chainlink value yet: the window settles on chainlink"))
        elif age / 1e3 > p.chainlink_max_age_sec:
            v.append(_veto("chainlink_stale", None,
                           f"chainlink {age / 1e3:.1f} s old > {p.chainlink_max_age_sec:g} s"))
    elif source is not None:
        c = inputs.get("candle") or {}
        age = c.get("age_ms")
        venue = c.get("venue") or source
        if _missing(c):
            v.append(_veto("candle_missing", None, f"no {venue} price (no quote or trade yet): the"
                                                   f" window settles on its candles"))
        elif age > p.binance_max_age_ms:
            v.append(_veto("candle_stale", None, f"{venue} price {age:.0f} ms old"
                                                 f" > {p.binance_max_age_ms:g} ms"))
    return v


def _source_vetoes(window, inputs: dict | None) -> list[dict]:
    """settlement_source: the window settles on a stream other than the one compute reads (its
    rule's `stream` against `inputs.chainlink.stream` / `inputs.candle.stream`, where given)."""
    rule = getattr(window, "rule", None)
    if rule is None or not inputs:
        return []
    chainlink = rule.source == "chainlink"
    reads = (inputs.get("chainlink" if chainlink else "candle") or {}).get("stream")
    if reads is None or reads == rule.stream:
        return []
    shown = f"chainlink {rule.stream}" if chainlink else f"{rule.stream} candles"
    return [_veto("settlement_source", None, f"settles on {shown}; the collector reads {reads}")]


def _book_side(side: str, book, fair_up, fee_rate: float, fee_exponent: float, min_size: float,
               p: EdgeParams) -> dict:
    book = book or {}
    asks = _sorted_asks(book.get("asks") or [])
    bids = _sorted_bids(book.get("bids") or [])
    age_ms = book.get("age_ms")
    e = edge_for(side, fair_up, asks, p.slice_usd, fee_rate, fee_exponent)
    vetoes = []
    if age_ms is None or not math.isfinite(age_ms) or age_ms / 1e3 > p.stale_threshold_sec:
        vetoes.append(_veto("stale", side, (book.get("reason") or "no book for this window")
                            if age_ms is None else
                            f"book {age_ms / 1e3:.3f} s old > {p.stale_threshold_sec:g} s"))
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
    if e["avg_price"] is not None and e["avg_price"] < p.min_price:
        vetoes.append(_veto("min_price", side,
                            f"average price {e['avg_price']:.4f} < {p.min_price:g} minimum"))
    if e["shares"] > 0.0 and e["shares"] < min_size:
        vetoes.append(_veto("min_size", side, f"{e['shares']:.2f} shares < the market's minimum"
                                              f" order of {min_size:g}"))
    e.update({"best_bid": best_bid, "best_ask": best_ask, "spread_bps": spread_bps,
              "depth_usd": depth_usd, "age_ms": age_ms, "vetoes": vetoes,
              # the inputs that decided this side, for the decision log
              "asks_top": asks[:max(p.depth_levels, e["levels_used"])], "bids_top": bids[:1]})
    return e


def arbitrage(sides: dict) -> tuple[dict, dict | None]:
    """({"ask_sum", "cost_sum", "flagged"}, the veto or None) of the two sides (module docstring)."""
    up, down = sides["UP"], sides["DOWN"]
    ask_sum = (up["best_ask"] + down["best_ask"]
               if up["best_ask"] is not None and down["best_ask"] is not None else None)
    cost_sum = (up["cost_per_share"] + down["cost_per_share"]
                if up["cost_per_share"] is not None and down["cost_per_share"] is not None else None)
    veto = None
    if cost_sum is not None and cost_sum < 1.0:
        veto = _veto("arbitrage", None,
                     f"all-in cost sum {cost_sum:.5f} < 1: buying both sides locks in "
                     f"{1.0 - cost_sum:.5f} per pair, a free arbitrage the strategy should handle "
                     f"(or books out of date)")
    elif ask_sum is not None and ask_sum < 1.0:
        veto = _veto("arbitrage", None,
                     f"ask sum {ask_sum:.4f} < 1 (UP {up['best_ask']:g} + DOWN {down['best_ask']:g}):"
                     f" the books are inconsistent (one is stale or wrong)")
    return {"ask_sum": ask_sum, "cost_sum": cost_sum, "flagged": veto is not None}, veto


def _quality(quality) -> dict:
    if isinstance(quality, dict):
        return {"mode": quality.get("mode"), "reasons": list(quality.get("reasons") or [])}
    return {"mode": quality, "reasons": []}


def evaluate(now_ns: int, window, fair_up, books: dict, quality, params: EdgeParams,
             inputs: dict | None = None) -> dict:
    """Per-side edges, vetoes and the decision for one tick.

    window: an actors.decide.window.Window (or anything with start_ns, end_ns, active, closed,
    accepting_orders, fee.rate, fee.exponent and optionally rule, min_size: gamma.WindowInfo in
    tests), or None. books: {"UP"|"DOWN": {"asks": [(p, size)], "bids": [(p, size)],
    "age_ms": float | None}}. quality: this decision's own input quality, {"mode", "reasons"}
    (or the mode alone). inputs: the edge document's `inputs` (input ages), or None.
    """
    vetoes, time_left_s = _window_vetoes(now_ns, window, params.min_time_left_sec)
    q = _quality(quality)
    if q["mode"] != "OK":
        vetoes.append(_veto("quality", None, f"quality {q['mode']}" + (
            ": " + "; ".join(q["reasons"]) if q["reasons"] else "")))
    if not _fair_ok(fair_up):
        vetoes.append(_veto("no_fair", None, "fair value unknown" if fair_up is None
                            else f"fair value {fair_up!r} not a probability"))
    vetoes.extend(_source_vetoes(window, inputs))
    vetoes.extend(_age_vetoes(window, inputs, params))
    fee = getattr(window, "fee", None)
    fee_rate = float(fee.rate) if fee is not None else 0.0
    fee_exp = float(fee.exponent) if fee is not None else 1.0
    min_size = float(getattr(window, "min_size", 0.0) or 0.0)
    sides = {s: _book_side(s, (books or {}).get(s), fair_up, fee_rate, fee_exp, min_size, params)
             for s in SIDES}
    arb, arb_veto = arbitrage(sides)
    if arb_veto is not None:
        vetoes.append(arb_veto)
    for s in SIDES:
        vetoes.extend(sides[s]["vetoes"])

    decision, reason = "NONE", None
    global_v = [v for v in vetoes if v["side"] is None]
    if global_v:
        reason = "vetoed: " + ", ".join(v["code"] for v in global_v)
    elif (best := best_side(sides, params.edge_buffer_bps)) is not None:
        e = sides[best]
        decision = DECISIONS[best]
        reason = (f"{best} edge {e['edge_bps']:.1f} bps > {params.edge_buffer_bps:g} bps, "
                  f"return on cost {e['return_on_cost'] * 100:.2f} %")
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
        "arbitrage": arb,
        "fair_up": fair_up if _fair_ok(fair_up) else None,
        "time_left_s": time_left_s,
        "window": None if window is None else {
            "slug": getattr(window, "slug", None), "start_ns": int(window.start_ns),
            "end_ns": int(window.end_ns), "active": getattr(window, "active", None),
            "closed": getattr(window, "closed", None),
            "accepting_orders": getattr(window, "accepting_orders", None),
            "fee_rate": fee_rate, "fee_exponent": fee_exp,
            "fee_taker_only": getattr(fee, "taker_only", None), "min_size": min_size},
        "params": dict(_params_doc(params)),
    }
