"""The sim's Polymarket window schedule and its Gamma REST answers (pure: times are arguments).

A `Schedule` names the "Bitcoin Up or Down" windows of one series (settings.venues.polymarket_window) with
a window length (settings.venues.polymarket_window_sec, shorter than the series' in tests), and derives
everything about a window from its slug, deterministically: the same slug gives the same ids in
every run, so a consumer restarted against a restarted sim sees the same market.

Invariants:
- window starts are multiples of `window_sec` (Unix s); a market exists for every aligned start in
  [now - 1 day, now + 1 day] (`LISTED_SEC`); its listing time (`startDate`) is one day before its
  start; an unknown or out-of-range slug is not found (Gamma answers `[]`);
- slugs come from actors.venues.polymarket.gamma (`slug()`): `btc-updown-5m-<start>` / `btc-updown-15m-<start>`,
  the ET-dated hourly pattern for `1h`. With a shortened hourly window several windows share one
  ET-hour slug; `lookup` then picks the one in progress, else the next (a known limitation);
- ids: condition id and question id `0x` + 64 hex, token ids 77-digit decimals, all sha256 of the
  slug; outcomes ["Up", "Down"], UP is clobTokenIds[0];
- `market_obj` has the keys, key order and typing of the real capture
  (fixtures/polymarket/gamma_market_btc_updown_5m_2026-03.json: `clobTokenIds`, `outcomes`,
  `outcomePrices` JSON-encoded strings, `liquidity`/`volume` strings at the market level, numbers
  in the event), plus `feeSchedule` and `cryptoMarketConfig` as in the 2026-08 TWAP capture,
  appended at the end (their position in a full object is not captured);
- `events[0].eventMetadata` is present only when a price to beat is given (the caller decides:
  after the window start plus a delay), with `finalPrice` once the window is resolved. No capture
  shows it filled; the shape is the one other clients' tests use.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import orjson

from actors.venues.polymarket import gamma as gm

LISTED_SEC = 86_400            # markets are listed a day ahead and answered for a day after
_ET = ZoneInfo("America/New_York")
_IMAGE = "https://polymarket-upload.s3.us-east-2.amazonaws.com/BTC+fullsize.png"
_SRC_SPOT = "https://data.chain.link/streams/btc-usd"
_SRC_TWAP = "https://data.chain.link/streams/btc-usd-twap-60s-streams"
# series objects: 5m as captured; 15m and hourly by analogy (not captured)
_SERIES = {
    "5m": ("10684", "btc-up-or-down-5m", "BTC Up or Down 5m", "5m"),
    "15m": ("10192", "btc-up-or-down-15m", "BTC Up or Down 15m", "15m"),
    "1h": ("10114", "btc-up-or-down-hourly", "BTC Up or Down Hourly", "hourly"),
}


class Window(NamedTuple):
    start: int                 # Unix s, eventStartTime
    end: int                   # Unix s, endDate
    slug: str
    market_id: str
    event_id: str
    condition_id: str
    question_id: str
    up_token: str
    down_token: str
    title: str

    @property
    def tokens(self) -> tuple[str, str]:
        return self.up_token, self.down_token


def _sha(*parts: str) -> bytes:
    return hashlib.sha256("|".join(parts).encode()).digest()


def token_id(slug: str, outcome: str) -> str:
    """A 77-digit decimal token id derived from the slug and the outcome."""
    n = int.from_bytes(_sha("token", outcome, slug), "big")
    return str(10 ** 76 + n % (9 * 10 ** 76))


def iso(ts: float, micros: bool = False) -> str:
    """`2026-03-12T09:20:00Z` (or with 6 fractional digits, as Gamma's createdAt/startDate)."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")


def _et_clock(t: datetime, seconds: bool) -> str:
    h = t.hour % 12 or 12
    s = f":{t.second:02d}" if seconds else ""
    return f"{h}:{t.minute:02d}{s}{'AM' if t.hour < 12 else 'PM'}"


def title(series: str, start: int, end: int) -> str:
    """`Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET` (hourly: `..., 5AM ET`)."""
    a, b = datetime.fromtimestamp(start, _ET), datetime.fromtimestamp(end, _ET)
    day = f"{a.strftime('%B')} {a.day}"
    if series == "1h" and end - start == 3600 and a.minute == 0:
        h = a.hour % 12 or 12
        return f"Bitcoin Up or Down - {day}, {h}{'AM' if a.hour < 12 else 'PM'} ET"
    secs = start % 60 != 0 or end % 60 != 0
    return f"Bitcoin Up or Down - {day}, {_et_clock(a, secs)}-{_et_clock(b, secs)} ET"


class Schedule:
    """The windows of one series (see the module docstring)."""

    def __init__(self, series: str, window_sec: int):
        if series not in gm.SERIES:
            raise ValueError(f"unknown series {series!r}")
        if window_sec <= 0:
            raise ValueError("window_sec must be > 0")
        self.series = series
        self.window_sec = int(window_sec)
        self.prefix = gm.SERIES[series][0]
        self._cache: dict[int, Window] = {}

    def start_of(self, now_s: float) -> int:
        return gm.window_start(now_s, self.window_sec)

    def window(self, start: int) -> Window:
        w = self._cache.get(start)
        if w is not None:
            return w
        if len(self._cache) > 4096:
            self._cache.clear()
        s = gm.slug(self.series, start)
        end = start + self.window_sec
        k = start // self.window_sec
        w = Window(start, end, s, str(1_000_000 + k % 8_000_000), str(100_000 + k % 800_000),
                   "0x" + _sha("condition", s).hex(), "0x" + _sha("question", s).hex(),
                   token_id(s, "Up"), token_id(s, "Down"), title(self.series, start, end))
        self._cache[start] = w
        return w

    def listed(self, start: int, now_s: float) -> bool:
        return start % self.window_sec == 0 and abs(start - now_s) <= LISTED_SEC

    def lookup(self, slug: str, now_s: float) -> Window | None:
        """The listed window named by `slug`, or None (unknown, wrong series, out of range)."""
        if self.series != "1h":
            head, _, tail = slug.rpartition("-")
            if head != self.prefix or not tail.isdigit() or len(tail) > 12:
                return None
            start = int(tail)
            return self.window(start) if self.listed(start, now_s) else None
        # hourly: ET-dated slugs; test each listed hour (both published patterns)
        def rank(start: int) -> tuple:
            # the window in progress first, then the next ones, then the past
            here = start <= now_s < start + self.window_sec
            return (0 if here else 1 if start > now_s else 2, abs(start - now_s))
        best = None
        h0 = int(now_s // 3600) * 3600
        for h in range(h0 - LISTED_SEC - 3600, h0 + LISTED_SEC + 3600, 3600):
            if slug not in gm.slug_candidates("1h", h):
                continue
            for start in range(h - h % self.window_sec, h + 3600, self.window_sec):
                if h <= start < h + 3600 and self.listed(start, now_s):
                    if best is None or rank(start) < rank(best):
                        best = start
        return None if best is None else self.window(best)


class Live(NamedTuple):
    """What the market object says about the window's state at the time of the answer."""
    now_s: float
    up_mid: float              # outcomePrices before resolution
    best_bid: float | None     # UP book
    best_ask: float | None
    last_trade: float | None
    volume: float              # shares traded (both tokens)
    liquidity: float           # USD resting near the touch (both sides of UP)
    price_to_beat: float | None   # None: not published yet
    final_price: float | None     # None: not resolved yet
    up_won: bool | None           # None: not resolved yet
    twap: bool


def _num(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def _event_obj(sched: Schedule, w: Window, lv: Live, description: str, source: str,
               markets: list | None) -> dict:
    sid, sticker, stitle, recurrence = _SERIES[sched.series]
    listed = w.start - LISTED_SEC
    closed = lv.up_won is not None
    vol, liq = _num(lv.volume), _num(lv.liquidity, 4)
    ev = {
        "id": w.event_id, "ticker": w.slug, "slug": w.slug, "title": w.title,
        "description": description, "resolutionSource": source,
        "startDate": iso(listed + 36.152914, True), "creationDate": iso(listed + 36.152908, True),
        "endDate": iso(w.end), "image": _IMAGE, "icon": _IMAGE,
        "active": True, "closed": closed, "archived": False, "new": False, "featured": False,
        "restricted": True, "liquidity": liq, "volume": vol, "openInterest": 0,
        "createdAt": iso(listed - 73.962775, True),
        "updatedAt": iso(min(lv.now_s, w.end + 60.0) - 7.5, True),
        "competitive": 0.9999750006249843, "volume24hr": vol, "volume1wk": vol, "volume1mo": vol,
        "volume1yr": vol, "enableOrderBook": True, "liquidityClob": liq, "negRisk": False,
        "commentCount": 0,
    }
    if markets is not None:
        ev["markets"] = markets
    ev.update({
        "series": [{
            "id": sid, "ticker": sticker, "slug": sticker, "title": stitle, "seriesType": "single",
            "recurrence": recurrence, "image": "", "icon": "", "active": True, "closed": False,
            "archived": False, "featured": False, "restricted": True,
            "createdAt": "2025-11-21T21:46:22.201627Z", "updatedAt": iso(lv.now_s - 30.0, True),
            "volume24hr": 42805542.367599964, "volume": 64234.19264499972, "liquidity": 6011579.0442,
            "commentCount": 27205, "requiresTranslation": False}],
        "cyom": False, "showAllOutcomes": True, "showMarketImages": True, "enableNegRisk": False,
        "automaticallyActive": True, "startTime": iso(w.start), "seriesSlug": sticker,
        "negRiskAugmented": False, "pendingDeployment": False, "deploying": False,
        "requiresTranslation": False,
    })
    if lv.price_to_beat is not None:
        md = {"priceToBeat": lv.price_to_beat}
        if lv.final_price is not None:
            md["finalPrice"] = lv.final_price
        ev["eventMetadata"] = md
    return ev


def _description(twap: bool) -> tuple[str, str]:
    if twap:
        src = _SRC_TWAP
        how = ("the Chainlink BTC/USD 60-second TWAP data stream available at " + src + ". The "
               "price at the end of the range is the average of the stream over its last 60 seconds.")
    else:
        src = _SRC_SPOT
        how = "information from Chainlink, specifically the BTC/USD data stream available at " + src + "."
    text = ("This market will resolve to \"Up\" if the Bitcoin price at the end of the time range "
            "specified in the title is greater than or equal to the price at the beginning of that "
            "range. Otherwise, it will resolve to \"Down\".\nThe resolution source for this market is "
            + how + "\nPlease note that this market is about the price according to Chainlink data "
            "stream BTC/USD, not according to other sources or spot markets.")
    return text, src


def _price_str(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x else "0"


def market_obj(sched: Schedule, w: Window, lv: Live, *, with_event: bool = True) -> dict:
    """The Gamma `/markets` object of window `w` (see the module docstring)."""
    description, source = _description(lv.twap)
    listed = w.start - LISTED_SEC
    ended = lv.now_s >= w.end
    closed = lv.up_won is not None
    if closed:
        prices = ["1", "0"] if lv.up_won else ["0", "1"]
    else:
        up = min(max(round(lv.up_mid, 3), 0.0), 1.0)
        prices = [_price_str(up), _price_str(round(1.0 - up, 3))]
    vol, liq = _num(lv.volume), _num(lv.liquidity, 4)
    bb = lv.best_bid if lv.best_bid is not None else 0.0
    ba = lv.best_ask if lv.best_ask is not None else 1.0
    d_start = datetime.fromtimestamp(listed, timezone.utc).strftime("%Y-%m-%d")
    d_end = datetime.fromtimestamp(w.end, timezone.utc).strftime("%Y-%m-%d")
    m = {
        "id": w.market_id, "question": w.title, "conditionId": w.condition_id, "slug": w.slug,
        "resolutionSource": source, "endDate": iso(w.end), "liquidity": f"{liq}",
        "startDate": iso(listed + 1.328428, True), "image": _IMAGE, "icon": _IMAGE,
        "description": description, "outcomes": "[\"Up\", \"Down\"]",
        "outcomePrices": orjson.dumps(prices).decode().replace("\",\"", "\", \""),
        "volume": f"{vol}", "active": True, "closed": closed, "marketMakerAddress": "",
        "createdAt": iso(listed - 68.859747, True),
        "updatedAt": iso(min(lv.now_s, w.end + 60.0) - 3.2, True),
        "new": False, "featured": False, "archived": False, "restricted": True,
        "groupItemThreshold": "0", "questionID": w.question_id, "enableOrderBook": True,
        "orderPriceMinTickSize": 0.01, "orderMinSize": 5, "volumeNum": vol, "liquidityNum": liq,
        "endDateIso": d_end, "startDateIso": d_start, "hasReviewedDates": True,
        "volume24hr": vol, "volume1wk": vol, "volume1mo": vol, "volume1yr": vol,
        "clobTokenIds": f"[\"{w.up_token}\", \"{w.down_token}\"]",
        "volume24hrClob": vol, "volume1wkClob": vol, "volume1moClob": vol, "volume1yrClob": vol,
        "volumeClob": vol, "liquidityClob": liq, "makerBaseFee": 1000, "takerBaseFee": 1000,
        "acceptingOrders": not ended, "negRisk": False,
    }
    if with_event:
        m["events"] = [_event_obj(sched, w, lv, description, source, None)]
    m.update({
        "ready": False, "funded": False, "acceptingOrdersTimestamp": iso(listed - 65.0),
        "cyom": False, "competitive": 0.9999750006249843, "pagerDutyNotificationEnabled": False,
        "approved": True, "rewardsMinSize": 50, "rewardsMaxSpread": 4.5,
        "spread": _num(ba - bb, 4), "lastTradePrice": lv.last_trade if lv.last_trade is not None else 0.0,
        "bestBid": bb, "bestAsk": ba, "automaticallyActive": True, "clearBookOnStart": False,
        "showGmpSeries": False, "showGmpOutcome": False, "manualActivation": False,
        "negRiskOther": False, "umaResolutionStatuses": "[]", "pendingDeployment": False,
        "deploying": False, "rfqEnabled": False, "eventStartTime": iso(w.start),
        "holdingRewardsEnabled": False, "feesEnabled": True, "requiresTranslation": False,
        "makerRebatesFeeShareBps": 10000, "feeType": "crypto_fees",
        "feeSchedule": {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2},
    })
    if lv.twap:
        dur = sched.series if sched.series != "1h" else "1h"
        m["cryptoMarketConfig"] = {"id": f"btc-{dur}-twap-60", "asset": "btc", "duration": dur,
                                   "twapEnabled": True, "twapLookbackSeconds": 60}
    return m


def event_obj(sched: Schedule, w: Window, lv: Live) -> dict:
    """The Gamma `/events` object of window `w`: the event with `markets[]` (one market)."""
    description, source = _description(lv.twap)
    return _event_obj(sched, w, lv, description, source,
                      [market_obj(sched, w, lv, with_event=False)])
