"""compute over real rings and blocks, in-process, for tests: a Rig is Compute with followed series
(by default 5m on a Chainlink TWAP and 1h on the spot candle; `WINDOWS`) and a writer for every ring
and block it reads, its publisher's sends kept in `sent`; `market` is a window's market document and
`book_rec` a Polymarket book record. The caller closes the Rig (which unlinks its shm prefix)."""
from __future__ import annotations

import time

import numpy as np

from actors.compute import Compute
from actors.decide import settlement
from config.settings import load_settings
from ipc import names
from ipc.bus import Publisher
from ipc.ring import RingWriter
from ipc.schema import DTYPES, POLY_BOOK
from ipc.shm import unlink_prefix
from ipc.state import StateBlock
from tests.support.ports import free_port

NS = 1_000_000_000
MS = 1_000_000
TWAP = settlement.Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60)
CANDLE = settlement.Rule("binance", "BTCUSDT", "candle", candle_tf="1h")
DAILY = settlement.Rule("binance", "BTCUSDT", "candle_close", candle_tf="1m")
# each followed series of a Rig: (its window started this long ago, s; its length, s; its rule)
WINDOWS = {"5m": (100, 300, TWAP), "1h": (600, 3600, CANDLE), "1d": (20 * 3600, 86400, DAILY)}


def market(series: str, start_s: int, length: int, rule: settlement.Rule, ptb=None) -> dict:
    return {"series": series, "asset": "btc", "slug": f"btc-updown-{series}-{start_s}",
            "window_start_ns": start_s * NS, "window_end_ns": (start_s + length) * NS,
            "start_s": start_s, "end_s": start_s + length, "active": True, "closed": False,
            "accepting_orders": True, "condition_id": "0xc", "up_token": "u", "down_token": "d",
            "fee_rate": 0.07, "fee_exponent": 1.0, "fee_taker_only": True, "tick_size": 0.01,
            "min_size": 5.0, "twap_enabled": rule.method == "twap",
            "twap_lookback_sec": rule.twap_lookback_sec, "resolution_source": "", "rule": rule.doc(),
            "price_to_beat": ptb, "price_to_beat_source": "venue" if ptb is not None else None,
            "final_price": None, "resolution": None}


def book_rec(window_ns: int, token: int, uid: int, recv_ns: int, bids=((0.49, 500.0),),
             asks=((0.51, 500.0),), flags: int = 0):
    r = np.zeros((), POLY_BOOK)
    r["ts_event_ns"], r["ts_recv_ns"], r["flags"] = recv_ns - 5 * MS, recv_ns, flags
    r["window_start_ns"], r["update_id"], r["token"] = window_ns, uid, token
    r["n_bids"], r["n_asks"] = len(bids), len(asks)
    for i, (p, s) in enumerate(bids):
        r["bid_px"][i], r["bid_sz"][i] = p, s
    for i, (p, s) in enumerate(asks):
        r["ask_px"][i], r["ask_sz"][i] = p, s
    r["best_bid"] = bids[0][0] if bids else np.nan
    r["best_ask"] = asks[0][0] if asks else np.nan
    return r


class Rig:
    """Compute with followed series (by default 5m on a Chainlink TWAP and 1h on the spot candle;
    `WINDOWS`) and a writer for every ring and block it reads."""

    def __init__(self, prefix: str, tmp_path, series=("5m", "1h"), **kw):
        self.s = load_settings(decision_log_dir=str(tmp_path / "decisions"), shm_prefix=prefix,
                               zmq_control_url=f"tcp://127.0.0.1:{free_port()}",
                               zmq_xsub_url="tcp://127.0.0.1:1", health_data_stale_sec=5.0,
                               quality_max_skew_ms=1000, polymarket_windows=",".join(series), **kw)
        s, d, pre, sym = self.s, self.s.ipc.shm_dir, self.s.ipc.shm_prefix, self.s.general.symbol
        mk = lambda ring, cap=4096: RingWriter(d, ring.name(pre, sym), DTYPES[ring.kind], cap)
        self.fut = {k: mk(names.FUTURES_RINGS[k]) for k in ("trade", "quote")}
        self.spot = {k: mk(names.SPOT_RINGS[k]) for k in ("trade", "quote", "kline")}
        self.chainlink = mk(names.CHAINLINK_RING)
        self.books = {x: mk(names.poly_book_ring(x)) for x in series}
        self.poly = StateBlock(d, pre, names.POLYMARKET_BLOCK, writer=True)
        self.now = (time.time_ns() // NS) * NS
        self.start = {x: self.now // NS - WINDOWS[x][0] for x in series}
        self.windows = {x: market(x, self.start[x], WINDOWS[x][1], WINDOWS[x][2]) for x in series}
        self.write_poly()
        self.c = Compute(s, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0))
        self.sent: list[tuple] = []
        self.c.pub.publish = lambda topic, doc: self.sent.append(
            (topic.decode() if isinstance(topic, bytes) else topic, doc))

    def write_poly(self, resolved=()):
        self.poly.write({"ts_ns": self.now, "disabled": None, "series": {
            s: {"window": w, "next": None, "books": {}, "resolved": list(resolved) if s == "5m" else []}
            for s, w in self.windows.items()}, "counters": {}, "lookup_errors": {}})

    def binance(self, t_ns: int, venue: str = "futures", quote_recv_ns: int | None = None, px=65_000.0):
        rings = self.fut if venue == "futures" else self.spot
        uid = int(t_ns // MS)
        rings["trade"].append((t_ns - 10 * MS, t_ns, 0, uid, uid, uid, px, 0.01, 1))
        q = t_ns if quote_recv_ns is None else quote_recv_ns
        rings["quote"].append((q - 10 * MS, q, 0, uid, px - 0.1, 1.0, px + 0.1, 1.0))

    def obs(self, obs_s: int, price: float, recv_ns: int | None = None):
        recv = obs_s * NS + 800 * MS if recv_ns is None else recv_ns
        self.chainlink.append((obs_s * NS, recv, 0, recv - 10 * MS, price))

    def fresh(self, at_ns: int):
        """Every Binance input fresh at `at_ns`, and one Chainlink observation a second before."""
        self.binance(at_ns)
        self.binance(at_ns, "spot")
        self.obs(at_ns // NS - 1, 65_000.0, at_ns - 200 * MS)

    def tick(self, at_ns: int) -> dict:
        self.sent.clear()
        self.c.tick(at_ns)
        return self.c.blocks[names.EDGE_BLOCK].read()

    def close(self):
        self.c.control.close(0)
        unlink_prefix(self.s.ipc.shm_dir, self.s.ipc.shm_prefix)
