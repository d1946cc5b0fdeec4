"""The example strategy: paper-trades the edge engine's decisions, knowing the system only through
ZeroMQ. Copy it: everything it needs arrives on three topics of the bus (ZMQ_PUB_URL).

  edge.<SYMBOL>                 every compute tick: fair value, per-side edge, accumulator, spikes
  tick.poly.market              a window change: slug, start/end, price to beat, TWAP settings
  tick.chainlink.price.BTCUSD   the Chainlink BTC/USD observations the markets settle on

The rule (paper fills: a buy of `usd` at a side's `effective_cost` gets usd / effective_cost
shares; cost = usd; the fee is already inside effective_cost):
1. follow the accumulator: when `accumulate.action == "SLICE"`, buy SLICE_USD of
   `accumulate.side`;
2. contrarian favourite dip: the favourite is the side whose Polymarket mid (`spikes.<side>.mid`)
   is > 0.5; when its spike state turns into "dip" (this doc says "dip", the previous one did not)
   and its edge_bps > 0 and it is tradable, buy one slice of it;
3. hedge, checked after each buy of rule 1 or 2: with usd[X] the money spent on side X in this
   window and Y the other side, if usd[X] > HEDGE_RATIO·usd[Y] + HEDGE_SLACK_SLICES·SLICE_USD and
   Y's edge_bps > −HEDGE_BUFFER_BPS and Y is tradable, buy one slice of Y.
   Tradable = no global veto in `edge.vetoes`, no veto on that side, an effective_cost known.

Settlement of every window announced on `tick.poly.market` (held or not, for calibration):
- price to beat: the market's `price_to_beat`, else the edge docs' `fair.s0`, else the first
  Chainlink observation at or after the window start;
- settlement price and winner: the one rule of actors/decide/settlement.py (the observation at
  the window end, else the last one before it; or, if `twap_enabled`, the mean of the observations
  in (end − twap_lookback_sec, end]); a window settles once an observation at or after its end has
  arrived (and, for TWAP, only if our history covers the whole lookback; otherwise it is dropped
  as unsettled);
- Up wins if settlement ≥ price to beat; PnL = Σ shares bought of the winner · 1 USD − Σ cost.
One JSON log line per settled window, also appended to `<DECISION_LOG_DIR>/../strategy/settled.jsonl`
(the input of `python run.py calibrate`). Heartbeat counters: windows settled, pnl_usd, slices,
and the bus's seq gaps and publisher restarts.
"""
from __future__ import annotations

import logging
import signal
import time
from collections import deque

import orjson

from config.settings import Settings
from ipc import names
from ipc.bus import Subscriber
from ipc.names import edge_topic
from ipc.state import Heartbeat, Registry

from actors.decide.settlement import settled_path, settlement_price, winner as settled_winner

log = logging.getLogger("strategy")
SIDES = names.POLY_TOKENS
OTHER = {"UP": "DOWN", "DOWN": "UP"}
HEDGE_RATIO = 2.0
HEDGE_SLACK_SLICES = 2
HEDGE_BUFFER_BPS = 200.0
MARKET_TOPIC = names.POLY_MARKET_TOPIC


def window_pnl(fills: list[dict], winner: str) -> float:
    """Σ shares of the winner · 1 − Σ cost."""
    return sum(f["shares"] for f in fills if f["side"] == winner) - sum(f["usd"] for f in fills)


def tradable(edge: dict, side: str) -> bool:
    e = (edge.get("sides") or {}).get(side) or {}
    return not edge.get("vetoes") and not e.get("vetoes") and bool(e.get("effective_cost"))


class Strategy:
    """The rule and the books, pure: feed it messages, it returns fills and settled windows."""

    def __init__(self, slice_usd: float):
        self.slice_usd = slice_usd
        self.windows: dict[str, dict] = {}           # slug -> window, fills, usd by side
        self.obs: deque[tuple[int, float]] = deque(maxlen=20_000)
        self.prev_spike: dict[str, str | None] = {"UP": None, "DOWN": None}
        self.settled = self.unsettled = self.slices = 0
        self.pnl_usd = 0.0

    def on_market(self, m: dict) -> None:
        w = self.windows.setdefault(m["slug"], {"slug": m["slug"], "fills": [], "usd": {"UP": 0.0, "DOWN": 0.0},
                                                "price_to_beat": None})
        w.update(start_ns=m["window_start_ns"], end_ns=m["window_end_ns"], twap=bool(m.get("twap_enabled")),
                 lookback_sec=m.get("twap_lookback_sec") or 0)
        w["price_to_beat"] = m.get("price_to_beat") or w["price_to_beat"]

    def buy(self, w: dict, edge: dict, side: str, kind: str, ts_ns: int) -> dict:
        cost = edge["sides"][side]["effective_cost"]
        fill = {"ts_ns": ts_ns, "side": side, "kind": kind, "usd": self.slice_usd, "price": cost,
                "shares": self.slice_usd / cost}
        w["fills"].append(fill)
        w["usd"][side] += self.slice_usd
        self.slices += 1
        return fill

    def on_edge(self, doc: dict) -> list[dict]:
        w = self.windows.get(doc.get("window"))
        spikes = doc.get("spikes") or {}
        states = {s: (spikes.get(s) or {}).get("state") for s in SIDES}
        prev, self.prev_spike = self.prev_spike, states
        if w is None:
            return []
        fair, edge, acc = doc.get("fair") or {}, doc.get("edge") or {}, doc.get("accumulate") or {}
        if w["price_to_beat"] is None and fair.get("s0") is not None:
            w["price_to_beat"] = fair["s0"]
        fills = []
        if acc.get("action") == "SLICE" and (edge.get("sides") or {}).get(acc.get("side"), {}).get("effective_cost"):
            fills.append(self.buy(w, edge, acc["side"], "slice", doc["ts_ns"]))
        fav = next((s for s in SIDES if ((spikes.get(s) or {}).get("mid") or 0) > 0.5), None)
        if fav and states[fav] == "dip" and prev[fav] != "dip" and tradable(edge, fav) \
                and (edge["sides"][fav].get("edge_bps") or 0) > 0:
            fills.append(self.buy(w, edge, fav, "dip", doc["ts_ns"]))
        if fills:
            big = max(SIDES, key=lambda s: w["usd"][s])
            small = OTHER[big]
            e_small = edge["sides"][small].get("edge_bps")
            if w["usd"][big] > HEDGE_RATIO * w["usd"][small] + HEDGE_SLACK_SLICES * self.slice_usd \
                    and tradable(edge, small) and e_small is not None and e_small > -HEDGE_BUFFER_BPS:
                fills.append(self.buy(w, edge, small, "hedge", doc["ts_ns"]))
        return fills

    def on_chainlink(self, ts_ns: int, price: float) -> list[dict]:
        """Record an observation; settle every window it closes. Returns the settled records."""
        if self.obs and ts_ns <= self.obs[-1][0]:
            return []
        self.obs.append((ts_ns, price))
        out = []
        for slug, w in list(self.windows.items()):
            if "end_ns" not in w or ts_ns < w["end_ns"]:
                continue
            del self.windows[slug]
            obs = list(self.obs)
            ptb = w["price_to_beat"]
            if ptb is None:
                ptb = next((p for t, p in obs if t >= w["start_ns"]), None) \
                    if obs[0][0] <= w["start_ns"] else None
            price_end, status = settlement_price(obs, w["end_ns"], w["twap"], w["lookback_sec"])
            if ptb is None or price_end is None:
                self.unsettled += 1
                log.warning("window %s not settled: %s", slug, "no price to beat" if ptb is None else status)
                continue
            winner = settled_winner(price_end, ptb)
            pnl = window_pnl(w["fills"], winner)
            self.settled += 1
            self.pnl_usd += pnl
            out.append({"slug": slug, "window_start_ns": w["start_ns"], "window_end_ns": w["end_ns"],
                        "price_to_beat": ptb, "settlement": price_end, "twap": w["twap"],
                        "twap_lookback_sec": w["lookback_sec"], "winner": winner,
                        "cost_usd": sum(f["usd"] for f in w["fills"]),
                        "shares": {s: sum(f["shares"] for f in w["fills"] if f["side"] == s) for s in SIDES},
                        "fills": len(w["fills"]), "pnl_usd": pnl, "total_pnl_usd": self.pnl_usd})
        return out


def main(settings: Settings) -> None:
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    chainlink_topic = names.CHAINLINK_RING.topic(settings.general.symbol)
    sub = Subscriber(settings.ipc.zmq_pub_url, (edge_topic(settings.general.symbol), MARKET_TOPIC, chainlink_topic))
    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), "strategy")
    strat = Strategy(settings.decisions.slice_usd)
    path = settled_path(settings.decisions.decision_log_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "ab")
    last_beat = 0.0
    log.info("strategy up: slice %s USD, settled windows to %s", settings.decisions.slice_usd, path)
    try:
        while not stop:
            ev = sub.recv(200)
            if ev is not None:
                if ev.lost or ev.restarted:
                    log.warning("%s: %d lost, restarted=%s", ev.topic, ev.lost, ev.restarted)
                if ev.topic == MARKET_TOPIC:
                    strat.on_market(ev.msg)
                elif ev.topic == chainlink_topic and not ev.msg.get("gap"):
                    for rec in strat.on_chainlink(ev.msg["ts_event_ns"], ev.msg["price"]):
                        log.info("settled", extra=rec)
                        out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
                        out.flush()
                elif ev.topic.startswith(names.EDGE_PREFIX):
                    for f in strat.on_edge(ev.msg):
                        log.info("fill", extra=f)
            if time.monotonic() - last_beat >= 0.5:
                last_beat = time.monotonic()
                tr = sub.tracks.values()
                hb.beat({"windows_settled": strat.settled, "windows_unsettled": strat.unsettled,
                         "pnl_usd": strat.pnl_usd, "slices": strat.slices,
                         "received": sum(t.received for t in tr), "seq_gaps": sum(t.gaps for t in tr),
                         "seq_lost": sum(t.lost for t in tr), "restarts": sum(t.restarts for t in tr)},
                        settled_file=str(path))
    finally:
        out.close()
        sub.close()
        log.info("strategy stopped: %d windows settled, pnl %.4f USD", strat.settled, strat.pnl_usd)
