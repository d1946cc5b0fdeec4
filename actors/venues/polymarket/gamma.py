"""Gamma REST: the market of one up/down window, as pure parsers.

The feed asks Gamma `GET /markets?slug=<slug>` for each of `series.slug_candidates(asset, series,
start)` in turn (actors/venues/polymarket/series.py owns the window grid and the slugs) and hands
the body to `parse_market`. A window it knows already (its price to beat, its resolution) it asks
for again by condition id, `GET /markets?condition_ids=<id>` (`markets_by_condition_path`, Gamma's
list filter): condition ids are unique, slugs need not be (a sim's shortened hourly windows share
one). No I/O or clock here.

Invariants:
- A numbered slug ends with the window start (`btc-updown-15m-1773306900`, 4h included), and
  `parse_market` checks that the number equals `eventStartTime`.
- The window start is `eventStartTime` (falling back to `events[0].startTime`), NEVER `startDate`
  (the listing time, about a day earlier); the end is `endDate`.
- `clobTokenIds` and `outcomes` are JSON-encoded strings inside the JSON (a real list is accepted
  too). UP/DOWN tokens are chosen by outcome name ("Up"/"Down"); for a "Yes"/"No" market, Yes is
  UP iff `up_is_yes`. Anything else is a GammaError: a token is never guessed by position.
- Fees: `feeSchedule` {rate, exponent, takerOnly, rebateRate} when present (2026-08: rate 0.07,
  exponent 1). Older markets (the 2026-03 capture) have no `feeSchedule`, only
  `takerBaseFee`/`makerBaseFee` (1000, in bps) with `feesEnabled`/`feeType: "crypto_fees"`: we
  then take rate = takerBaseFee / 10_000 (0.10), exponent 1, taker-only, `source="takerBaseFee"`.
  That mapping is NOT documented by Polymarket; it is a conservative stand-in (0.10 > 0.07, so the
  edge is under- rather than over-stated). `feesEnabled: false` -> rate 0, `source="feesEnabled"`.
- `cryptoMarketConfig` absent -> twap_enabled False, twap_lookback_sec 0 (those markets settle on
  one Chainlink print: "the price at the end ... greater than or equal to the price at the
  beginning"). What a window settles on is decided from these fields by
  actors/decide/settlement.rule_for. Up wins on >=.
- `priceToBeat`/`finalPrice` come from `eventMetadata` (market level, else events[0]); no capture
  has them filled, so they are None unless present.
- `WindowInfo.series` / `.asset` are the caller's (parse_market's keyword arguments), "" when not
  given: Gamma's answer does not name them reliably (only newer markets carry cryptoMarketConfig).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import NamedTuple

import orjson

from actors.venues.polymarket.series import SERIES

__all__ = [
    "GammaError", "MarketNotFound", "FeeSchedule", "WindowInfo", "parse_market", "markets_path",
    "markets_by_condition_path",
]

_NS = 1_000_000_000


class GammaError(ValueError):
    """A Gamma answer that cannot be used: not JSON, wrong shape, a missing or inconsistent field."""


class MarketNotFound(GammaError):
    """The answer holds no market with the slug (not listed yet, or a wrong slug): retry later."""


class FeeSchedule(NamedTuple):
    rate: float           # fee per share = rate * (p * (1 - p)) ** exponent
    exponent: float
    taker_only: bool
    rebate_rate: float    # share of fees rebated to makers (0 when not given)
    source: str           # 'feeSchedule', 'takerBaseFee' (undocumented fallback) or 'feesEnabled'


class WindowInfo(NamedTuple):
    slug: str
    market_id: str
    condition_id: str
    question: str
    up_token: str
    down_token: str
    start_s: int                  # eventStartTime
    end_s: int                    # endDate
    fee: FeeSchedule
    tick_size: float              # orderPriceMinTickSize
    min_size: float               # orderMinSize (shares)
    resolution_source: str
    twap_enabled: bool
    twap_lookback_sec: int
    price_to_beat: float | None
    final_price: float | None
    active: bool
    closed: bool
    accepting_orders: bool
    neg_risk: bool
    series: str = ""              # names.POLY_SERIES entry, the caller's ("" when not given)
    asset: str = ""               # "btc", "eth", ...: the caller's ("" when not given)

    @property
    def start_ns(self) -> int:
        return self.start_s * _NS

    @property
    def end_ns(self) -> int:
        return self.end_s * _NS

    @property
    def window_sec(self) -> int:
        return self.end_s - self.start_s


# ---------------------------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------------------------

def markets_path(slug_: str) -> str:
    """The Gamma request path for one slug."""
    return f"/markets?slug={slug_}"


def markets_by_condition_path(condition_id: str) -> str:
    """The Gamma request path for the market of one condition id (a window already known)."""
    return f"/markets?condition_ids={condition_id}"


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------

def _iso_s(v: object, name: str) -> int:
    if type(v) is not str or not v:
        raise GammaError(f"{name} missing or not a string: {v!r}")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise GammaError(f"{name} is not an ISO time: {v!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return math.floor(t.timestamp())


def _json_list(v: object, name: str) -> list:
    if type(v) is str:
        try:
            v = orjson.loads(v)
        except orjson.JSONDecodeError:
            raise GammaError(f"{name} is not a JSON-encoded list: {v!r}") from None
    if type(v) is not list:
        raise GammaError(f"{name} is not a list: {v!r}")
    return v


def _num(v: object, name: str, default: float | None = None) -> float:
    if v is None or v == "":
        if default is None:
            raise GammaError(f"{name} missing")
        return default
    if type(v) is bool or type(v) not in (int, float, str):
        raise GammaError(f"{name} is not a number: {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise GammaError(f"{name} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise GammaError(f"{name} is not finite: {v!r}")
    return x


def _opt_num(v: object, name: str) -> float | None:
    return None if v is None or v == "" else _num(v, name)


def _bool(v: object, default: bool) -> bool:
    return v if type(v) is bool else default


def _fee(m: dict) -> FeeSchedule:
    fs = m.get("feeSchedule")
    if type(fs) is str and fs:
        try:
            fs = orjson.loads(fs)
        except orjson.JSONDecodeError:
            raise GammaError(f"feeSchedule is not JSON: {fs!r}") from None
    if type(fs) is dict:
        return FeeSchedule(
            rate=_num(fs.get("rate"), "feeSchedule.rate"),
            exponent=_num(fs.get("exponent"), "feeSchedule.exponent", 1.0),
            taker_only=_bool(fs.get("takerOnly"), True),
            rebate_rate=_num(fs.get("rebateRate"), "feeSchedule.rebateRate", 0.0),
            source="feeSchedule",
        )
    if m.get("feesEnabled") is False:
        return FeeSchedule(0.0, 1.0, True, 0.0, "feesEnabled")
    base = _opt_num(m.get("takerBaseFee"), "takerBaseFee")
    if base is not None:
        # Undocumented: takerBaseFee is in bps (1000 seen with feeType "crypto_fees").
        return FeeSchedule(base / 10_000, 1.0, True, 0.0, "takerBaseFee")
    raise GammaError("no feeSchedule, feesEnabled or takerBaseFee: the fee is unknown")


def _event_metadata(m: dict) -> dict:
    evs = m.get("events")
    for holder in (m, *(e for e in (evs if type(evs) is list else []) if type(e) is dict)):
        md = holder.get("eventMetadata")
        if type(md) is str and md:
            try:
                md = orjson.loads(md)
            except orjson.JSONDecodeError:
                continue
        if type(md) is dict:
            return md
    return {}


def _tokens(m: dict, up_is_yes: bool) -> tuple[str, str]:
    ids = _json_list(m.get("clobTokenIds"), "clobTokenIds")
    outcomes = _json_list(m.get("outcomes"), "outcomes")
    if len(ids) != 2 or len(outcomes) != 2 or not all(type(x) is str and x for x in ids):
        raise GammaError(f"expected two token ids and two outcomes, got {ids!r} / {outcomes!r}")
    names = [o.strip().lower() if type(o) is str else "" for o in outcomes]
    if sorted(names) == ["down", "up"]:
        up = names.index("up")
    elif sorted(names) == ["no", "yes"]:
        up = names.index("yes") if up_is_yes else names.index("no")
    else:
        raise GammaError(f"outcomes {outcomes!r} are neither Up/Down nor Yes/No")
    return ids[up], ids[1 - up]


def _pick(body: object, want: str | None, want_condition: str | None = None) -> dict:
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise GammaError(f"not JSON ({exc}): {bytes(body)[:200]!r}" if not isinstance(body, str)
                             else f"not JSON ({exc}): {body[:200]!r}") from None
    if type(body) is dict:
        if "slug" not in body and ("error" in body or "message" in body):
            raise GammaError(f"error answer: {body!r}"[:300])
        cands = [body]
    elif type(body) is list:
        cands = [m for m in body if type(m) is dict]
        if len(cands) != len(body):
            raise GammaError("a /markets answer element is not an object")
    else:
        raise GammaError(f"not a market object or list: {type(body).__name__}")
    if want is not None:
        cands = [m for m in cands if m.get("slug") == want]
    if want_condition is not None:
        cands = [m for m in cands if m.get("conditionId") == want_condition]
        if not cands:
            raise MarketNotFound(f"no market with condition id {want_condition!r}")
    if not cands:
        raise MarketNotFound(f"no market with slug {want!r}" if want else "empty /markets answer")
    if len(cands) > 1:
        raise GammaError(f"{len(cands)} markets match slug {want!r}: pass the slug to choose")
    return cands[0]


def parse_market(body: bytes | str | dict | list, up_is_yes: bool, want_slug: str | None = None, *,
                 series: str | None = None, asset: str | None = None,
                 want_condition: str | None = None) -> WindowInfo:
    """WindowInfo from a Gamma `/markets?slug=` (or `?condition_ids=`) answer (a list), or one
    market object.

    With `want_slug`, the market with that slug is taken (MarketNotFound if none); with
    `want_condition`, the one with that `conditionId`; without either the answer must hold exactly
    one market. `series`/`asset` are stored in the WindowInfo ("" when not
    given; an unknown series is a ValueError: the caller's mistake, not Gamma's). Any defect of the
    answer raises GammaError, never another exception.
    """
    if series is not None and series not in SERIES:
        raise ValueError(f"unknown up/down series {series!r}; known: {', '.join(SERIES)}")
    try:
        return _parse_market(_pick(body, want_slug, want_condition), up_is_yes)._replace(
            series=series or "", asset=asset or "")
    except GammaError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise GammaError(f"bad market object ({type(exc).__name__}: {exc})") from None


def _parse_market(m: dict, up_is_yes: bool) -> WindowInfo:
    s = m.get("slug")
    if type(s) is not str or not s:
        raise GammaError("market without a slug")
    cid = m.get("conditionId")
    if type(cid) is not str or not cid:
        raise GammaError(f"{s}: no conditionId")
    up, down = _tokens(m, up_is_yes)

    start_v = m.get("eventStartTime")
    if not start_v:
        evs = m.get("events")
        if type(evs) is list and evs and type(evs[0]) is dict:
            start_v = evs[0].get("startTime")
    start = _iso_s(start_v, "eventStartTime")
    end = _iso_s(m.get("endDate"), "endDate")
    if end <= start:
        raise GammaError(f"{s}: endDate {end} is not after eventStartTime {start}")
    tail = s.rsplit("-", 1)[-1]
    if tail.isdigit() and len(tail) >= 9 and int(tail) != start:
        raise GammaError(f"{s}: slug names start {tail} but eventStartTime is {start}")

    cmc = m.get("cryptoMarketConfig")
    cmc = cmc if type(cmc) is dict else {}
    md = _event_metadata(m)
    rs = m.get("resolutionSource")
    q = m.get("question")
    return WindowInfo(
        slug=s, market_id=str(m.get("id", "")), condition_id=cid, question=q if type(q) is str else "",
        up_token=up, down_token=down, start_s=start, end_s=end, fee=_fee(m),
        tick_size=_num(m.get("orderPriceMinTickSize"), "orderPriceMinTickSize"),
        min_size=_num(m.get("orderMinSize"), "orderMinSize"),
        resolution_source=rs if type(rs) is str else "",
        twap_enabled=_bool(cmc.get("twapEnabled"), False),
        twap_lookback_sec=int(_num(cmc.get("twapLookbackSeconds"), "twapLookbackSeconds", 0.0)),
        price_to_beat=_opt_num(md.get("priceToBeat"), "priceToBeat"),
        final_price=_opt_num(md.get("finalPrice"), "finalPrice"),
        active=_bool(m.get("active"), False), closed=_bool(m.get("closed"), False),
        accepting_orders=_bool(m.get("acceptingOrders"), False), neg_risk=_bool(m.get("negRisk"), False),
    )
