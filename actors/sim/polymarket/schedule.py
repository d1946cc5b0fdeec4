"""The sim's Polymarket up/down windows and their Gamma REST answers (pure: times are arguments).

A `Schedule` names the windows of one (asset, series): every asset of ipc.names.ASSETS and every
series of ipc.names.POLY_SERIES has one (`Catalog`). A followed series (settings.venues.window_secs)
has the window length the settings give (tests shorten it); any other series its own length.
Everything about a window derives from its slug and start, deterministically: the same window gives
the same ids in every run, so a consumer restarted against a restarted sim sees the same market.

Windows and slugs come from actors.venues.polymarket.series (the consumer's own grid and slugs):
- the window grid is `series.window_start` / `next_window_start` (5m, 15m, 1h on multiples of the
  length since the epoch; 4h on the ET four-hour grid; 1d ET noon to ET noon; a shortened window:
  plain multiples of its length); a window is [start, next start), so an unshortened 4h or 1d
  window spanning a DST change is an hour shorter or longer;
- the slug is `series.slug` (the first of `slug_candidates`): numbered
  `<asset>-updown-<series>-<start>`, hourly `bitcoin-up-or-down-<month>-<day>-<year>-<h><am|pm>-et`,
  daily `bitcoin-up-or-down-on-<month>-<day>-<year>` (the ET date of the series window's end).
  Exactly ONE form is answered per window, the with-year one: the venue uses one form per period,
  so a client that only tries the older no-year hourly form finds nothing here, as it would live;
- with a shortened hourly or daily window several windows share one slug (the slug names the series
  window they fall in); `lookup` then picks the one in progress, else the next, else the latest past
  (a known limitation: a client asking for the NEXT such window by slug gets the current one until
  it ends; it can tell by `eventStartTime`, and ask for a window it knows by
  `?condition_ids=` / `?clob_token_ids=` as Gamma allows: Catalog.by_id).

Listing: a market exists from `LISTED_SEC` (a day) before its start to a day after its end (a daily
window is still answered while it resolves); its listing time (`startDate`) is one day before its
start (as captured); an unknown, unlisted, wrong-form or off-grid slug is not found (Gamma answers
`[]`).

Settlement (`settles`, what the window's Gamma metadata says and what the sim settles it on):
- 5m, 15m, 4h: the asset's Chainlink stream (`resolutionSource`
  `https://data.chain.link/streams/<asset>-usd`), or with `sim_poly_twap` its 60 s TWAP
  (`...<asset>-usd-twap-60s-streams`, `cryptoMarketConfig` twapEnabled / twapLookbackSeconds 60);
- 1h: the Binance spot candle of the window's length opening at the window start
  (`https://www.binance.com/en/trade/<ASSET>_USDT`, no TWAP): price to beat = its open, settlement =
  its close, Up iff close >= open. A shortened hourly window whose length is no Binance kline
  interval cannot settle on a candle: it settles on Chainlink and its metadata says so;
- 1d: the close of the Binance 1m candle opening at the window end against the close of the one
  opening at its start (settlement.rule_for's `candle_close`); a shortened daily window whose
  length is not whole minutes settles on Chainlink instead.

Ids: condition id and question id `0x` + 64 hex, token ids 77-digit decimals, all sha256 of the
slug and start; outcomes ["Up", "Down"], UP is clobTokenIds[0].

`market_obj` has the keys, key order and typing of the real capture
(fixtures/polymarket/gamma_market_btc_updown_5m_2026-03.json: `clobTokenIds`, `outcomes`,
`outcomePrices` JSON-encoded strings, `liquidity`/`volume` strings at the market level, numbers in
the event), plus `feeSchedule` and (TWAP markets only) `cryptoMarketConfig` as in the 2026-08 TWAP
capture, appended at the end (their position in a full object is not captured).
`events[0].eventMetadata` is present only when a price to beat is given (the caller decides: after
the window start plus a delay, once the rule's number exists), with `finalPrice` once the window is
resolved. No capture shows it filled; the shape is the one other clients' tests use. Titles,
descriptions and series objects of the series other than btc 5m are by analogy (not captured).
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import NamedTuple

import orjson

from actors.venues.polymarket import series as ser
from ipc.names import ASSETS, KLINE_TFS, POLY_SERIES, TIMEFRAME_SEC

LISTED_SEC = 86_400            # markets are listed a day ahead and answered for a day after the end
TWAP_SEC = 60                  # the TWAP markets' lookback (the 2026-08 capture)
_ET = ser.ET
ASSET_LIST: tuple[str, ...] = tuple(dict.fromkeys(ASSETS.values()))
DISPLAY = {"btc": "Bitcoin", "eth": "Ethereum", "sol": "Solana", "xrp": "XRP"}
TICKER = {a: a.upper() for a in ASSET_LIST}
if set(DISPLAY) != set(ASSET_LIST):
    raise ImportError(f"schedule.DISPLAY {sorted(DISPLAY)} != ipc.names.ASSETS {sorted(ASSET_LIST)}")
_NAME_TO_ASSET = {n: a for a, n in ser.ASSET_NAMES.items()}
_MONTH = {m: i + 1 for i, m in enumerate(("january", "february", "march", "april", "may", "june",
                                            "july", "august", "september", "october", "november",
                                            "december"))}
_TF_OF_SEC = {TIMEFRAME_SEC[tf]: tf for tf in KLINE_TFS}
# series objects: btc 5m as captured; btc 15m and hourly ids as seen in public clients; the rest
# by analogy (ids derived from the names)
_SERIES_IDS = {("btc", "5m"): "10684", ("btc", "15m"): "10192", ("btc", "1h"): "10114"}
_RECURRENCE = {"5m": "5m", "15m": "15m", "1h": "hourly", "4h": "4h", "1d": "daily"}
_SERIES_TITLE = {"5m": "5m", "15m": "15m", "1h": "Hourly", "4h": "4h", "1d": "Daily"}

_NUMBERED = re.compile(r"([a-z]+)-updown-([0-9]+[mhd])-([0-9]{1,12})")
_HOURLY = re.compile(r"([a-z]+)-up-or-down-([a-z]+)-([0-9]{1,2})-([0-9]{4})-([0-9]{1,2})(am|pm)-et")
_DAILY = re.compile(r"([a-z]+)-up-or-down-on-([a-z]+)-([0-9]{1,2})-([0-9]{4})")


class Settles(NamedTuple):
    """What a window settles on (the sim's own rule; its Gamma metadata says the same)."""
    source: str                # "chainlink" | "binance"
    method: str                # "point" | "twap" | "candle" | "candle_close"
    candle_tf: str | None = None   # binance: the kline interval
    twap_sec: int = 0              # twap: the lookback

    @property
    def candle_sec(self) -> int:
        return TIMEFRAME_SEC[self.candle_tf] if self.candle_tf else 0


def settles(series: str, window_sec: int, twap: bool) -> Settles:
    """The rule of a window of `series` with length `window_sec` (see the module docstring)."""
    form = ser.spec(series).slug_form
    if form == "hourly" and window_sec in _TF_OF_SEC:
        return Settles("binance", "candle", _TF_OF_SEC[window_sec])
    if form == "daily" and window_sec % 60 == 0:
        return Settles("binance", "candle_close", "1m")
    if twap:
        return Settles("chainlink", "twap", None, TWAP_SEC)
    return Settles("chainlink", "point")


def resolution_source(asset: str, st: Settles) -> str:
    if st.source == "binance":
        return f"https://www.binance.com/en/trade/{TICKER[asset]}_USDT"
    if st.method == "twap":
        return f"https://data.chain.link/streams/{asset}-usd-twap-{st.twap_sec}s-streams"
    return f"https://data.chain.link/streams/{asset}-usd"


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
    asset: str
    series: str

    @property
    def tokens(self) -> tuple[str, str]:
        return self.up_token, self.down_token

    @property
    def key(self) -> tuple[str, str, int]:
        return self.asset, self.series, self.start


def _sha(*parts: str) -> bytes:
    return hashlib.sha256("|".join(parts).encode()).digest()


def token_id(slug: str, outcome: str, start: int | None = None) -> str:
    """A 77-digit decimal token id derived from the slug (and start) and the outcome."""
    parts = ("token", outcome, slug) if start is None else ("token", outcome, slug, str(start))
    n = int.from_bytes(_sha(*parts), "big")
    return str(10 ** 76 + n % (9 * 10 ** 76))


def iso(ts: float, micros: bool = False) -> str:
    """`2026-03-12T09:20:00Z` (or with 6 fractional digits, as Gamma's createdAt/startDate)."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")


def _et_clock(t: datetime, seconds: bool) -> str:
    h = t.hour % 12 or 12
    s = f":{t.second:02d}" if seconds else ""
    return f"{h}:{t.minute:02d}{s}{'AM' if t.hour < 12 else 'PM'}"


def _day(t: datetime) -> str:
    return f"{t.strftime('%B')} {t.day}"


def title(asset: str, series: str, start: int, end: int) -> str:
    """`Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET`; hourly `..., 5AM ET`; daily
    `Bitcoin Up or Down on March 13?` (the date of the slug)."""
    name = DISPLAY[asset]
    a, b = datetime.fromtimestamp(start, _ET), datetime.fromtimestamp(end, _ET)
    form = ser.spec(series).slug_form
    if form == "daily":
        e = datetime.fromtimestamp(ser.window_end(series, start), _ET)
        return f"{name} Up or Down on {_day(e)}?"
    if form == "hourly" and end - start == 3600 and a.minute == 0:
        h = a.hour % 12 or 12
        return f"{name} Up or Down - {_day(a)}, {h}{'AM' if a.hour < 12 else 'PM'} ET"
    secs = start % 60 != 0 or end % 60 != 0
    return f"{name} Up or Down - {_day(a)}, {_et_clock(a, secs)}-{_et_clock(b, secs)} ET"


class Schedule:
    """The windows of one (asset, series) (see the module docstring)."""

    def __init__(self, asset: str, series: str, window_sec: int | None = None, twap: bool = True,
                 index: dict | None = None):
        self.spec = ser.spec(series)
        # condition id / token id -> Window of every window made (shared by a Catalog)
        self.index: dict[str, Window] = {} if index is None else index
        if asset not in DISPLAY:
            raise ValueError(f"unknown asset {asset!r}; known: {', '.join(DISPLAY)}")
        window_sec = self.spec.length_sec if window_sec is None else int(window_sec)
        if window_sec <= 0:
            raise ValueError("window_sec must be > 0")
        self.asset = asset
        self.series = series
        self.window_sec = window_sec
        self.shortened = window_sec != self.spec.length_sec
        self.settles = settles(series, window_sec, twap)
        self.source = resolution_source(asset, self.settles)
        if self.spec.slug_form == "numbered":
            self.prefix = f"{asset}-updown-{series}"
        elif self.spec.slug_form == "hourly":
            self.prefix = f"{ser.ASSET_NAMES[asset]}-up-or-down"
        else:
            self.prefix = f"{ser.ASSET_NAMES[asset]}-up-or-down-on"
        self._cache: dict[int, Window] = {}
        self._grid = None if self.shortened else window_sec   # None: series.py's own grid

    # --- the grid ------------------------------------------------------------------------------
    def start_of(self, now_s: float) -> int:
        return ser.window_start(self.series, now_s, self.window_sec)

    def next_start(self, start: int) -> int:
        return ser.next_window_start(self.series, start, self.window_sec)

    def on_grid(self, start: int) -> bool:
        return self.start_of(start) == start

    def starts(self, t0: float, t1: float):
        """The grid starts in [t0, t1), in order."""
        s = self.start_of(t0)
        if s < t0:
            s = self.next_start(s)
        while s < t1:
            yield s
            s = self.next_start(s)

    def listed(self, start: int, now_s: float) -> bool:
        """Whether the window starting at `start` is answered at now_s (see the module docstring)."""
        if start - LISTED_SEC > now_s or not self.on_grid(start):
            return False
        return now_s <= self.next_start(start) + LISTED_SEC

    def window(self, start: int) -> Window:
        w = self._cache.get(start)
        if w is not None:
            return w
        if len(self._cache) > 4096:
            self._cache.clear()
        s = ser.slug(self.asset, self.series, start)
        end = self.next_start(start)
        k = str(start)
        w = Window(start, end, s,
                   str(1_000_000 + int.from_bytes(_sha("market", s, k)[:6], "big") % 8_000_000),
                   str(100_000 + int.from_bytes(_sha("event", s, k)[:6], "big") % 800_000),
                   "0x" + _sha("condition", s, k).hex(), "0x" + _sha("question", s, k).hex(),
                   token_id(s, "Up", start), token_id(s, "Down", start),
                   title(self.asset, self.series, start, end), self.asset, self.series)
        self._cache[start] = w
        if len(self.index) > 60_000:
            self.index.clear()
        for k in (w.condition_id, w.up_token, w.down_token):
            self.index[k] = w
        return w

    # --- slugs ---------------------------------------------------------------------------------
    def _span(self, slug: str) -> tuple[int, int] | None:
        """The series window [s0, e0) an hourly or daily slug names (None: not this schedule's)."""
        form = self.spec.slug_form
        m = (_HOURLY if form == "hourly" else _DAILY).fullmatch(slug)
        if m is None or _NAME_TO_ASSET.get(m.group(1)) != self.asset:
            return None
        month = _MONTH.get(m.group(2))
        if month is None:
            return None
        day, year = int(m.group(3)), int(m.group(4))
        try:
            if form == "hourly":
                h12 = int(m.group(5))
                if not 1 <= h12 <= 12:
                    return None
                hour = h12 % 12 + (12 if m.group(6) == "pm" else 0)
                s0 = int(datetime(year, month, day, hour, tzinfo=_ET).timestamp())
                s0 = ser.window_start(self.series, s0)
            else:                   # the date of the series window's END (ET noon)
                e0 = int(datetime(year, month, day, 12, tzinfo=_ET).timestamp())
                s0 = ser.window_start(self.series, e0 - 1)
        except (ValueError, OverflowError, OSError):
            return None
        if ser.slug(self.asset, self.series, s0) != slug:
            return None             # another spelling (the no-year form, a bad date): not answered
        return s0, ser.window_end(self.series, s0)

    def lookup(self, slug: str, now_s: float) -> Window | None:
        """The listed window named by `slug`, or None (unknown, another form, out of range)."""
        if self.spec.slug_form == "numbered":
            head, _, tail = slug.rpartition("-")
            if head != self.prefix or not tail.isdigit() or len(tail) > 12:
                return None
            start = int(tail)
            if not self.listed(start, now_s) or self.window(start).slug != slug:
                return None
            return self.window(start)
        span = self._span(slug)
        if span is None:
            return None
        lo = max(span[0], now_s - LISTED_SEC - self.spec.length_sec - 3600)
        hi = min(span[1], now_s + LISTED_SEC + 1)
        cands = [s for s in self.starts(lo, hi) if self.listed(s, now_s)]
        if not cands:
            return None

        def rank(start: int) -> tuple:
            # the window in progress first, then the next ones, then the latest past
            here = start <= now_s < self.window(start).end
            return (0 if here else 1 if start > now_s else 2, abs(start - now_s))
        return self.window(min(cands, key=rank))


class Catalog:
    """Every (asset, series) Schedule; a followed series has its configured window length."""

    def __init__(self, window_secs: dict[str, int], twap: bool):
        self.index: dict[str, Window] = {}
        self.scheds: dict[tuple[str, str], Schedule] = {
            (a, s): Schedule(a, s, window_secs.get(s), twap, self.index)
            for a in ASSET_LIST for s in POLY_SERIES}

    def by_id(self, key: str) -> Window | None:
        """A window already made (looked up, listed, live), by condition id or token id."""
        return self.index.get(key)

    def __getitem__(self, key: tuple[str, str]) -> Schedule:
        return self.scheds[key]

    def lookup(self, slug: str, now_s: float) -> Window | None:
        m = _NUMBERED.fullmatch(slug)
        if m is not None:
            sch = self.scheds.get((m.group(1), m.group(2)))
            return None if sch is None else sch.lookup(slug, now_s)
        for form, pat in (("hourly", _HOURLY), ("daily", _DAILY)):
            m = pat.fullmatch(slug)
            if m is None:
                continue
            asset = _NAME_TO_ASSET.get(m.group(1))
            for (a, s), sch in self.scheds.items():
                if a == asset and sch.spec.slug_form == form:
                    return sch.lookup(slug, now_s)
        return None


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


def _num(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def _image(asset: str) -> str:
    return f"https://polymarket-upload.s3.us-east-2.amazonaws.com/{TICKER[asset]}+fullsize.png"


def _series_obj(sched: Schedule, now_s: float) -> dict:
    a, s = sched.asset, sched.series
    sid = _SERIES_IDS.get((a, s)) or str(10_000 + int.from_bytes(_sha("series", a, s)[:4], "big") % 90_000)
    ticker = f"{a}-up-or-down-{_RECURRENCE[s]}"
    return {
        "id": sid, "ticker": ticker, "slug": ticker, "title": f"{TICKER[a]} Up or Down {_SERIES_TITLE[s]}",
        "seriesType": "single", "recurrence": _RECURRENCE[s], "image": "", "icon": "", "active": True,
        "closed": False, "archived": False, "featured": False, "restricted": True,
        "createdAt": "2025-11-21T21:46:22.201627Z", "updatedAt": iso(now_s - 30.0, True),
        "volume24hr": 42805542.367599964, "volume": 64234.19264499972, "liquidity": 6011579.0442,
        "commentCount": 27205, "requiresTranslation": False}


def _event_obj(sched: Schedule, w: Window, lv: Live, description: str, markets: list | None) -> dict:
    listed = w.start - LISTED_SEC
    closed = lv.up_won is not None
    vol, liq = _num(lv.volume), _num(lv.liquidity, 4)
    img = _image(w.asset)
    ev = {
        "id": w.event_id, "ticker": w.slug, "slug": w.slug, "title": w.title,
        "description": description, "resolutionSource": sched.source,
        "startDate": iso(listed + 36.152914, True), "creationDate": iso(listed + 36.152908, True),
        "endDate": iso(w.end), "image": img, "icon": img,
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
    so = _series_obj(sched, lv.now_s)
    ev.update({
        "series": [so],
        "cyom": False, "showAllOutcomes": True, "showMarketImages": True, "enableNegRisk": False,
        "automaticallyActive": True, "startTime": iso(w.start), "seriesSlug": so["slug"],
        "negRiskAugmented": False, "pendingDeployment": False, "deploying": False,
        "requiresTranslation": False,
    })
    if lv.price_to_beat is not None:
        md = {"priceToBeat": lv.price_to_beat}
        if lv.final_price is not None:
            md["finalPrice"] = lv.final_price
        ev["eventMetadata"] = md
    return ev


_TF_WORDS = {"1m": "1 minute", "3m": "3 minute", "5m": "5 minute", "15m": "15 minute",
             "30m": "30 minute", "1h": "1 hour", "2h": "2 hour", "4h": "4 hour", "6h": "6 hour",
             "8h": "8 hour", "12h": "12 hour", "1d": "1 day"}


def description(sched: Schedule) -> str:
    """The market's rules text (the 5m Chainlink text as captured; the others by analogy)."""
    a, st, src = sched.asset, sched.settles, sched.source
    name, pair = DISPLAY[a], f"{TICKER[a]}/USD"
    if st.method == "candle":
        bp = f"{TICKER[a]}/USDT"
        return (f"This market will resolve to \"Up\" if the close price is greater than or equal to "
                f"the open price for the {bp} {_TF_WORDS[st.candle_tf]} candle that begins on the "
                "time and date specified in the title. Otherwise, this market will resolve to "
                f"\"Down\".\nThe resolution source for this market is information from Binance, "
                f"specifically the {bp} pair ({src} with \"{st.candle_tf.upper()}\" and \"Candles\" "
                "selected on the top left of the chart).\nPlease note that the outcome of this "
                f"market depends solely on the price data from the Binance {bp} trading pair, not "
                "according to other sources or spot markets.")
    if st.method == "candle_close":
        bp = f"{TICKER[a]}/USDT"
        return (f"This market will resolve to \"Up\" if the close price of the Binance 1 minute "
                f"candle for {bp} 12:00 in the ET timezone (noon) on the date specified in the "
                "title is greater than or equal to the close price of the 12:00 ET candle one day "
                f"before. Otherwise, this market will resolve to \"Down\".\nThe resolution source "
                f"for this market is information from Binance, specifically the {bp} pair ({src} "
                "with \"1m\" and \"Candles\" selected on the top left of the chart).")
    if st.method == "twap":
        how = (f"the Chainlink {pair} {st.twap_sec}-second TWAP data stream available at {src}. The "
               f"price at the end of the range is the average of the stream over its last "
               f"{st.twap_sec} seconds.")
    else:
        how = f"information from Chainlink, specifically the {pair} data stream available at {src}."
    return (f"This market will resolve to \"Up\" if the {name} price at the end of the time range "
            "specified in the title is greater than or equal to the price at the beginning of that "
            "range. Otherwise, it will resolve to \"Down\".\nThe resolution source for this market is "
            + how + f"\nPlease note that this market is about the price according to Chainlink data "
            f"stream {pair}, not according to other sources or spot markets.")


def _price_str(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x else "0"


def market_obj(sched: Schedule, w: Window, lv: Live, *, with_event: bool = True) -> dict:
    """The Gamma `/markets` object of window `w` (see the module docstring)."""
    desc = description(sched)
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
    img = _image(w.asset)
    m = {
        "id": w.market_id, "question": w.title, "conditionId": w.condition_id, "slug": w.slug,
        "resolutionSource": sched.source, "endDate": iso(w.end), "liquidity": f"{liq}",
        "startDate": iso(listed + 1.328428, True), "image": img, "icon": img,
        "description": desc, "outcomes": "[\"Up\", \"Down\"]",
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
        m["events"] = [_event_obj(sched, w, lv, desc, None)]
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
    st = sched.settles
    if st.method == "twap":
        m["cryptoMarketConfig"] = {"id": f"{w.asset}-{w.series}-twap-{st.twap_sec}",
                                   "asset": w.asset, "duration": w.series, "twapEnabled": True,
                                   "twapLookbackSeconds": st.twap_sec}
    return m


def event_obj(sched: Schedule, w: Window, lv: Live) -> dict:
    """The Gamma `/events` object of window `w`: the event with `markets[]` (one market)."""
    return _event_obj(sched, w, lv, description(sched), [market_obj(sched, w, lv, with_event=False)])
