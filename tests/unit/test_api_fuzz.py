"""Property-based fuzz of the REST API against its own OpenAPI document (schemathesis, in-process ASGI).

The app is built by create_app over real shared memory: state blocks and heartbeats written by
real writers, and a real REP socket answering control requests like compute. For every operation,
schemathesis generates valid and invalid requests (parameters, bodies, headers, with and without
the token) and checks: no 5xx, the status is documented, the body matches the documented schema,
the content type is the documented one, invalid data is rejected with a 4xx, auth is enforced.
"""
from __future__ import annotations

import time
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from actors.api import ShmView, create_app
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram
from config.settings import load_settings
from ipc.shm import unlink_prefix
from ipc.state import Heartbeat, Registry, StateBlock
from tests.support.api import TOKEN, FakeCompute, edge_doc, market_doc, poly_entry
from tests.support.history import write_history
from tests.support.ports import free_port

FOLLOWED = ("15m", "1h")     # the other series are valid names this system does not follow: 404
STREAM_PATH = "/stream"     # never ends by itself, takes no parameters: tests/unit/test_web_push.py
PAGE_PATHS = ("/", "/dashboard", "/static/{name}")
MAX_EXAMPLES = 100        # per operation and generation mode: the whole module stays well under 60 s


def _bar(tf: str, venue: str, start_ns: int, closed: bool) -> dict:
    return {"tf": tf, "venue": venue, "start_ns": start_ns, "end_ns": start_ns + 5_000_000_000,
            "open": 65000.0, "high": 65010.0, "low": 64990.0, "close": 65005.0, "volume": 1.5,
            "buy_volume": 1.0, "sell_volume": 0.5, "delta": 0.5, "notional": 97500.0, "vwap": 65000.0,
            "trades": 3, "first_trade_id": 1, "last_trade_id": 3, "closed": closed, "partial": False}


def write_state(s, now_ns: int) -> None:
    """What compute, feed_poly and the feeds would have written: small but schema-complete."""
    book = {"mid": 65000.05, "spread_bps": 0.015, "bid": 65000.0, "ask": 65000.1, "bid_qty": 1.0,
            "ask_qty": 2.0, "microprice": 65000.03, "imbalance": -0.33, "update_id": 7}
    venue = {"cvd": {"cvd": 1.5, "anchor_ns": now_ns - 10**12, "trades": 3, "last_trade_id": 3},
             "vwap": {"vwap": 65000.0, "sigma": 2.0, "dev_bps": 0.1, "dev_sigma": 0.5},
             "volatility": {}, "impulse": {}, "rvol": {}, "imbalance": {}, "last_price": 65005.0,
             "trade_age_ms": 5.0, "book": book, "quote_age_ms": 2.0, "bars": {}, "clock_offset_ms": 3.0}
    features = {"symbol": "BTCUSDT", "ts_ns": now_ns, "tick": 10, "venues": {"futures": venue, "spot": venue},
                "basis": {}, "liquidations": {}, "bias": {"score": None},
                "anchor": {"anchor_ns": now_ns - 10**12, "explicit": False},
                "quality": {"mode": "DEGRADED", "reasons": ["spot.trade: no data"]}}
    markets = {"15m": market_doc("15m", 1_700_000_100, 900), "1h": market_doc("1h", 1_699_999_200, 3600, 65001.5)}
    blocks = {
        "features": features,
        "bars": {"symbol": "BTCUSDT", "ts_ns": now_ns, "venues": {"futures": {
            "5s": {"current": _bar("5s", "futures", now_ns, False), "closed": [_bar("5s", "futures", now_ns - 5_000_000_000, True)]}}}},
        "quality": {"mode": "DEGRADED", "reasons": ["spot.trade: no data"], "tick_overruns": 0,
                    "ts_ns": now_ns, "changed": False},
        "polymarket": {"ts_ns": now_ns, "disabled": None,
                       "series": {s_: poly_entry(markets[s_]) for s_ in FOLLOWED},
                       "counters": {}, "lookup_errors": {}},
        "edge": {"ts_ns": now_ns, "symbol": "BTCUSDT", "disabled": None,
                 "series": {s_: edge_doc(s_, now_ns, markets[s_]) for s_ in FOLLOWED}},
    }
    for name, doc in blocks.items():
        StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, name, writer=True).write(doc)
    # compute's history rings: a few seconds of samples of each series' window and of the market
    past = [now_ns - k * 1_000_000_000 for k in range(5, -1, -1)]
    write_history(s, {s_: [edge_doc(s_, t, markets[s_]) for t in past] for s_ in FOLLOWED},
                  [{**features, "ts_ns": t} for t in past])
    age = Histogram(DATA_AGE_BOUNDS_MS)
    age.observe_ns(3_000_000)
    Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "feed_futures").beat(
        {"parse_errors": 0, "published": 3},
        feed={"venue": "futures", "last_venue_error": "",
              "connections": {"market": {"connected": True, "frames": 3, "bytes": 300, "reconnects": 0,
                                         "silent_streams": []}},
              "streams": {"trade": {"written": 3, "last_recv_ns": now_ns, "max_silence_s": None,
                                    "data_age": age.doc()}}})


@pytest.fixture(scope="module")
def api_app():
    prefix = "fz" + uuid.uuid4().hex[:8]
    url = f"tcp://127.0.0.1:{free_port()}"
    # a healthy system, so that every 5xx is a bug: the one required actor heartbeats (once, so
    # it may not look dead for the test's duration), both venues have a book, compute answers
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, api_token=TOKEN,
                      health_required="feed_futures", health_alive_sec=3600,
                      polymarket_windows=",".join(FOLLOWED))
    write_state(s, time.time_ns())
    fake = FakeCompute(url)
    try:
        yield create_app(ShmView(s), s)
    finally:
        fake.close()
        unlink_prefix("/dev/shm", prefix)


@pytest.fixture(scope="module")
def api_schema(api_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path=STREAM_PATH).parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi(case):
    # the token on every request (schemathesis' ignored_auth check retries without it and with a
    # wrong one, and expects a 401)
    r = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code < 500
    if case.path in PAGE_PATHS:            # the dashboard's page, assets and redirect
        assert r.headers["content-security-policy"], r.headers
    elif case.path != "/metrics":          # (the exposition format is text, and documented so)
        assert r.headers["content-type"] == ["application/json"], r.headers
    assert b"Traceback" not in r.content
