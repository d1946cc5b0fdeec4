"""The API app (actors.api.create_app) over real shared memory, for in-process tests: a client
built from settings, a POST helper for the control route, and compute's real control server
(ipc.control) answering control requests like compute (recording them)."""
from __future__ import annotations

import threading

import zmq
from falcon import testing

from actors.api import ShmView, create_app
from config.settings import load_settings

TOKEN = "s3cret-token-0123456789"   # API_TOKEN: at least 16 characters


class FakeCompute:
    """compute's side of the control socket as compute runs it (ipc.control.ControlServer, which
    checks the token), answering like compute.handle_control and recording the requests."""

    def __init__(self, url: str, token: str = TOKEN):
        from ipc import control
        self.ctx = zmq.Context()
        self.server = control.ControlServer(self.ctx, url, token, self.handle)
        self.requests = []
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def handle(self, req: dict) -> dict:
        self.requests.append(req)
        return {"ok": True, "anchor_ns": req["anchor_ns"] or 123}

    def loop(self):
        while not self.stop.is_set():
            self.server.serve(50)

    def close(self):
        self.stop.set()
        self.th.join(5)
        self.server.close()
        self.ctx.term()


def client(url, prefix, token=TOKEN):
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, api_token=token)
    return testing.TestClient(create_app(ShmView(s), s))


def post(c, body=b"", token=TOKEN, content_type="application/json", **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    return c.simulate_post("/control/anchor/reset", body=body, headers=headers, **kw)


# --- sample documents, shaped as feed_poly and compute write them (brief of issue 14) ----------
SEC = 1_000_000_000


def rule_doc(series: str) -> dict:
    """A window's settlement rule (settlement.Rule.doc()): hourly on the Binance 1 h candle, the
    others on the 60 s Chainlink TWAP."""
    if series == "1h":
        return {"source": "binance", "stream": "BTCUSDT", "method": "candle", "twap_lookback_sec": 0,
                "candle_tf": "1h", "assumed": False}
    return {"source": "chainlink", "stream": "btc/usd", "method": "twap", "twap_lookback_sec": 60,
            "candle_tf": None, "assumed": False}


def market_doc(series: str, start_s: int, length_s: int, price_to_beat: float | None = None) -> dict:
    """feed_poly's market document (the `tick.poly.market.<series>` payload)."""
    return {"series": series, "asset": "btc", "slug": f"btc-updown-{series}-{start_s}",
            "window_start_ns": start_s * SEC, "window_end_ns": (start_s + length_s) * SEC,
            "start_s": start_s, "end_s": start_s + length_s, "active": True, "closed": False,
            "accepting_orders": True, "condition_id": "0xc0", "up_token": f"up{start_s}",
            "down_token": f"down{start_s}", "fee_rate": 0.072, "fee_exponent": 1.0, "fee_taker_only": True,
            "tick_size": 0.01, "min_size": 5.0, "twap_enabled": series != "1h",
            "twap_lookback_sec": 0 if series == "1h" else 60, "resolution_source": "https://data.chain.link",
            "rule": rule_doc(series), "price_to_beat": price_to_beat,
            "price_to_beat_source": "venue" if price_to_beat is not None else None,
            "final_price": None, "resolution": None}


def side_doc(fair: float, ask: float, bid: float, age_ms: float = 12.0, slice_usd: float = 20.0) -> dict:
    fee = 0.072 * ask * (1 - ask)
    cost = ask + fee
    shares = slice_usd / ask
    return {"fair": fair, "avg_price": ask, "fee_per_share": fee, "cost_per_share": cost,
            "edge": fair - cost, "edge_bps": (fair - cost) * 1e4, "return_on_cost": (fair - cost) / cost,
            "ev_usd": (fair - cost) * shares, "shares": shares, "spent_usd": slice_usd, "fee_usd": fee * shares,
            "filled": True, "levels_used": 1, "best_bid": bid, "best_ask": ask,
            "spread_bps": (ask - bid) / ((ask + bid) / 2) * 1e4, "depth_usd": 500.0, "age_ms": age_ms,
            "vetoes": []}


def edge_doc(series: str, ts_ns: int, market: dict | None, fair_up: float = 0.55,
             decision: str = "NONE", ptb: float | None = 65000.0, ptb_source: str | None = "estimate") -> dict:
    """compute's edge document of one series (`edge.<SYMBOL>.<series>`)."""
    m = market or {}
    sides = {"UP": side_doc(fair_up, 0.50, 0.49), "DOWN": side_doc(1 - fair_up, 0.47, 0.46, age_ms=30.0)}
    return {"symbol": "BTCUSDT", "series": series, "ts_ns": ts_ns, "window": m.get("slug"),
            "window_start_ns": m.get("window_start_ns"), "window_end_ns": m.get("window_end_ns"),
            "price_to_beat": {"price": ptb, "source": ptb_source if ptb is not None else None,
                              "method": (m.get("rule") or {}).get("method"), "status": "ok" if ptb else "pending"},
            "rule": m.get("rule"),
            "inputs": {"binance": {"venue": "futures", "price": 65010.0, "age_ms": 4.0, "max_age_ms": 1000.0},
                       "chainlink": {"price": 65003.0, "obs_ns": ts_ns - SEC, "age_ms": 1200.0,
                                     "obs_age_ms": 1000.0, "max_age_ms": 5000.0},
                       "books": {"UP": {"age_ms": 12.0, "update_id": 7, "best_bid": 0.49, "best_ask": 0.50},
                                 "DOWN": {"age_ms": 30.0, "update_id": 8, "best_bid": 0.46, "best_ask": 0.47}},
                       "candle": None},
            "fair": {"fast": fair_up, "smooth": fair_up - 0.01, "reason": None},
            "edge": {"decision": decision, "reason": "UP vetoed", "vetoes": [], "sides": sides, "fair_up": fair_up,
                     "arbitrage": {"ask_sum": 0.97, "cost_sum": 0.9876, "flagged": False},
                     "time_left_s": 600.0},
            "accumulate": {"action": "HOLD", "side": None, "reason": "no_signal", "slices": 0, "usd": 0.0},
            "spikes": {}, "quality": {"mode": "OK", "reasons": []}}


def poly_entry(market: dict | None) -> dict:
    book = {"valid": True, "stale": False, "best_bid": 0.49, "best_ask": 0.5, "mid": 0.495,
            "bids": [[0.49, 100.0]], "asks": [[0.5, 80.0]], "update_id": 7}
    return {"window": market, "next": None, "books": {"UP": book, "DOWN": {**book, "best_bid": 0.46,
                                                                               "best_ask": 0.47, "mid": 0.465}},
            "resolved": []}
