"""The `context` actor on real transports: a real HTTP klines server on 127.0.0.1, real shm rings,
state block and registry under /dev/shm (a unique prefix per test, every segment unlinked), a real
ZeroMQ socket for its messages.

The actor runs in-process (its class, on its own thread and event loop) with a clock the test
sets, shared with the server, so which klines exist and are closed is exact; one test runs it as a
real `python run.py context` process on the real clock. Every wait is on a condition with a
deadline; the only timing assertion is "waited at least Retry-After".
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from actors.context import context_ring, stream_ring
from actors.venues.binance import rest as br
from config.settings import load_settings
from ipc.ring import RingReader, RingWriter
from ipc.schema import FLAG_GAP, KLINE
from ipc.state import Registry
from tests.support.context import Actor, Sub
from tests.support.kline_server import Fault, FakeClock, KlineServer
from tests.support.ports import free_port
from tests.support.wait import wait_for

SHM_DIR = "/dev/shm"
ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
M1, M5 = 60_000, 300_000
FAPI = "/fapi/v1/klines"
T0 = 1_700_000_030_000           # 50 s into a minute; long before the real clock (Date never wins)
CORE = list(KLINE.names[3:])     # open_time_ns .. trades: what the venue decides


def core(recs: np.ndarray) -> list:
    return recs[CORE].tolist()


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def server(clock):
    with KlineServer(clock) as srv:
        yield srv


@pytest.fixture
def sub():
    s = Sub()
    yield s
    s.close()


def settings(prefix, server, sub=None, **kw):
    kw.setdefault("context_tfs", ("1m", "5m"))
    kw.setdefault("context_bootstrap_limit", 10)
    kw.setdefault("context_stream_grace_sec", 3600.0)    # no REST catch-up unless a test wants it
    kw.setdefault("context_rest_backoff_max_sec", 0.5)
    return load_settings(shm_dir=SHM_DIR, shm_prefix=prefix, futures_rest=server.url,
                         zmq_xsub_url=f"tcp://127.0.0.1:{sub.port if sub else free_port()}", **kw)


def ring(s, tf: str) -> np.ndarray:
    return RingReader(SHM_DIR, context_ring(s.ipc.shm_prefix, s.general.symbol, tf), KLINE, from_oldest=True).read()


def served(server, tf: str, first: int, last: int, now: int) -> np.ndarray:
    """What the venue says about klines [first, last], parsed as the actor parses it."""
    return br.parse_klines(orjson.dumps(server.rows(tf, first, last)), tf, 0, now)


def assert_contiguous(recs: np.ndarray, tf_ms: int):
    assert not (recs["flags"] & FLAG_GAP).any()
    assert recs["closed"].all()
    assert np.all(np.diff(recs["open_time_ns"] // MS) == tf_ms)


# --- bootstrap ---------------------------------------------------------------------------------------

def test_bootstrap_fills_each_ring_with_the_closed_klines(prefix, server, clock, sub):
    s = settings(prefix, server, sub, context_bootstrap_limit=50)
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "bootstrap")
        st = a.state()
        hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["bootstrapped"] == 2 and h,
                        5, "heartbeat after bootstrap")
    for tf, tf_ms in (("1m", M1), ("5m", M5)):
        cur = T0 // tf_ms * tf_ms
        first = cur - 49 * tf_ms
        recs = ring(s, tf)
        assert len(recs) == 49
        assert core(recs) == core(served(server, tf, first, cur - tf_ms, T0))
        assert_contiguous(recs, tf_ms)
        assert (recs["ts_event_ns"] == 0).all() and (recs["ts_recv_ns"] > 0).all()
        # the kline in progress is in the state block, not in the ring
        tfs = st["tfs"][tf]
        assert tfs["current"]["open_time_ns"] == cur * MS and tfs["current"]["closed"] == 0
        assert tfs["last_closed"]["open_time_ns"] == (cur - tf_ms) * MS
        assert (tfs["count"], tfs["appended"], tfs["from_rest"], tfs["duplicates"]) == (49, 49, 49, 0)
        assert tfs["ring"] == f"{prefix}.BTCUSDT.context.kline_{tf}"
        # one request per tf, exactly the window
        (req,) = [r for r in server.requests(FAPI) if r.query["interval"] == tf]
        assert req.query == {"symbol": "BTCUSDT", "interval": tf, "limit": "50", "startTime": str(first)}
    c = hb["counters"]
    assert (c["klines_appended"], c["from_rest"], c["from_stream"], c["rest_requests"]) == (98, 98, 0, 2)
    assert c["weight_used"] == 2 and c["rest_errors"] == 0 and c["banned"] is False
    assert hb["rest"]["weight_limit"] == 2400 and "stopped" not in hb
    assert Registry(SHM_DIR, prefix).read("context")["stopped"] is True    # its last beat
    assert st["rest"]["requests"] == 2 and st["stream"]["ring"] == f"{prefix}.BTCUSDT.futures.kline"


def test_bootstrap_paginates_past_the_venue_cap(prefix, server, clock):
    s = settings(prefix, server, context_tfs=("1m",), context_bootstrap_limit=2000)
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 15, "bootstrap")
    cur = T0 // M1 * M1
    first = cur - 1999 * M1
    recs = ring(s, "1m")
    assert len(recs) == 1999
    assert core(recs) == core(served(server, "1m", first, cur - M1, T0))
    assert_contiguous(recs, M1)
    reqs = server.requests(FAPI)
    assert [(r.query["limit"], r.query["startTime"], r.status) for r in reqs] == [
        ("1500", str(first), 200), ("500", str(first + 1500 * M1), 200)]
    assert RingWriter(SHM_DIR, context_ring(prefix, "BTCUSDT", "1m"), KLINE, 4000).count == 1999


def test_restart_does_not_duplicate_and_resumes_after_the_newest(prefix, server, clock):
    s = settings(prefix, server, context_tfs=("1m",))
    cur = T0 // M1 * M1
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "first bootstrap")
    first = ring(s, "1m")
    assert len(first) == 9

    # restart at the same time: nothing new is closed, so nothing is appended
    n0 = len(server.requests(FAPI))
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "second bootstrap")
        assert a.tf("1m")["appended"] == 0
    assert ring(s, "1m").tolist() == first.tolist()
    (req,) = server.requests(FAPI)[n0:]
    assert (req.query["startTime"], req.query["limit"]) == (str(cur), "1")

    # restart 3 minutes later: exactly the 3 klines closed meanwhile
    clock.ms = T0 + 3 * M1
    n0 = len(server.requests(FAPI))
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "third bootstrap")
        assert a.tf("1m")["appended"] == 3
    recs = ring(s, "1m")
    assert len(recs) == 12 and recs[:9].tolist() == first.tolist()
    assert core(recs[9:]) == core(served(server, "1m", cur, cur + 2 * M1, clock.ms))
    assert_contiguous(recs, M1)
    (req,) = server.requests(FAPI)[n0:]
    assert (req.query["startTime"], req.query["limit"]) == (str(cur), "4")


def test_restart_after_more_than_the_window_marks_the_hole(prefix, server, clock):
    s = settings(prefix, server, context_tfs=("1m",))
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "first bootstrap")
    clock.ms = T0 + 100 * M1
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "bootstrap after the long stop")
        assert a.tf("1m")["discontinuities"] == 1
    recs = ring(s, "1m")
    assert len(recs) == 9 + 1 + 9
    assert recs[9]["flags"] & FLAG_GAP
    cur = clock.ms // M1 * M1
    assert core(recs[10:]) == core(served(server, "1m", cur - 9 * M1, cur - M1, clock.ms))
    assert_contiguous(recs[:9], M1)
    assert_contiguous(recs[10:], M1)


# --- the stream -----------------------------------------------------------------------------------

def stream_rec(open_ms: int, tf_ms: int, closed: bool, close: float, event_ms: int) -> np.ndarray:
    rec = np.zeros((), dtype=KLINE)
    rec["ts_event_ns"] = event_ms * MS
    rec["ts_recv_ns"] = time.time_ns()
    rec["open_time_ns"] = open_ms * MS
    rec["close_time_ns"] = (open_ms + tf_ms - 1) * MS
    rec["tf_sec"] = tf_ms // 1000
    rec["closed"] = int(closed)
    rec["open"], rec["high"], rec["low"], rec["close"] = close - 1, close + 1, close - 2, close
    rec["volume"], rec["quote_volume"], rec["taker_buy_volume"], rec["trades"] = 3.0, 3 * close, 1.0, 42
    return rec


def test_stream_appends_closed_klines_and_backfills_a_gap(prefix, server, clock, sub):
    s = settings(prefix, server, sub)
    feed = RingWriter(SHM_DIR, stream_ring(prefix, "BTCUSDT"), KLINE, 1024)   # as the feed would
    cur = T0 // M1 * M1
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "bootstrap")
        assert len(ring(s, "1m")) == 9

        # an open kline: the tf's current one, not in the ring
        feed.append(stream_rec(cur, M1, False, 12345.0, T0))
        wait_for(lambda: (a.tf("1m")["current"] or {}).get("close") == 12345.0, 5, "open kline")
        # a tf we do not track and a gap marker: counted, ignored
        feed.append(stream_rec(T0 // 900_000 * 900_000, 900_000, True, 1.0, T0))
        feed.append_gap(time.time_ns())
        wait_for(lambda: a.state()["stream"]["other_tf"] == 1 and
                   a.state()["stream"]["gap_markers"] == 1, 5, "ignored records")

        # it closes
        clock.ms = cur + M1 + 200
        closed = stream_rec(cur, M1, True, 12346.0, clock.ms)
        feed.append(closed)
        wait_for(lambda: len(ring(s, "1m")) == 10, 5, "the closed kline in the ring")
        assert core(ring(s, "1m")[-1:]) == core(closed.reshape(1))
        assert ring(s, "1m")[-1]["ts_event_ns"] == clock.ms * MS
        st = a.tf("1m")
        assert st["current"] is None and st["from_stream"] == 1

        # delivered twice: not appended twice
        feed.append(closed)
        wait_for(lambda: a.tf("1m")["duplicates"] == 1, 5, "the duplicate counted")
        assert len(ring(s, "1m")) == 10

        # the stream skips two closed klines: they are fetched by REST, then the stream's one
        n0 = len(server.requests(FAPI))
        clock.ms = cur + 4 * M1 + 200
        ahead = stream_rec(cur + 3 * M1, M1, True, 777.0, clock.ms)
        feed.append(ahead)
        wait_for(lambda: len(ring(s, "1m")) == 13, 10, "backfill and the stream kline")
        st = a.tf("1m")
        assert (st["stream_gaps"], st["backfilled"], st["from_stream"], st["duplicates"]) == (1, 2, 2, 1)
        # kline messages only: the indicator messages on the same topic carry a tf too (TAAPI_TFS has 1m)
        wait_for(lambda: len([m for m in sub.messages() if m["tf"] == "1m" and "kline" in m
                                and m["kline"]["open_time_ns"] >= cur * MS]) == 4, 5, "messages")
    recs = ring(s, "1m")
    assert_contiguous(recs, M1)
    assert core(recs[10:12]) == core(served(server, "1m", cur + M1, cur + 2 * M1, clock.ms))
    assert core(recs[12:]) == core(ahead.reshape(1))
    (req,) = server.requests(FAPI)[n0:]
    assert req.query == {"symbol": "BTCUSDT", "interval": "1m", "limit": "2",
                         "startTime": str(cur + M1), "endTime": str(cur + 3 * M1 - 1)}
    msgs = [m for m in sub.messages() if m["tf"] == "1m" and "kline" in m and m["kline"]["open_time_ns"] >= cur * MS]
    assert [(m["kline"]["open_time_ns"] // MS - cur, m["source"]) for m in msgs] == [
        (0, "stream"), (M1, "rest"), (2 * M1, "rest"), (3 * M1, "stream")]
    assert msgs[0]["kline"]["close"] == 12346.0 and msgs[0]["kline"]["closed"] == 1
    assert all({"seq", "boot", "ts_ns"} <= m.keys() for m in msgs)
    assert len(ring(s, "5m")) == 9      # the 5m ring saw nothing new


def test_feed_down_klines_come_from_rest_after_the_grace(prefix, server, clock):
    s = settings(prefix, server, context_tfs=("1m",), context_stream_grace_sec=2.0)
    cur = T0 // M1 * M1
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 10, "bootstrap")
        n0 = len(server.requests(FAPI))
        clock.ms = cur + 3 * M1 + 2500       # 3 klines closed, the first for more than the grace
        wait_for(lambda: len(ring(s, "1m")) == 12, 10, "REST catch-up")
        st = a.tf("1m")
        assert (st["backfilled"], st["from_rest"], st["from_stream"]) == (3, 12, 0)
        assert st["current"]["open_time_ns"] == (cur + 3 * M1) * MS
    recs = ring(s, "1m")
    assert core(recs[9:]) == core(served(server, "1m", cur, cur + 2 * M1, clock.ms))
    assert_contiguous(recs, M1)
    req = server.requests(FAPI)[n0]
    assert (req.query["startTime"], req.query["limit"]) == (str(cur), "4")


# --- REST trouble ---------------------------------------------------------------------------------

def test_ban_reported_in_heartbeat_waited_and_recovered(prefix, server, clock):
    server.fail_next(Fault(418, {"Retry-After": "2"}))
    s = settings(prefix, server, context_tfs=("1m",))
    with Actor(s, clock) as a:
        hb = wait_for(lambda: (h := a.heartbeat()) and h.get("counters", {}).get("banned") and h,
                        10, "the ban in the heartbeat")
        assert hb["rest"]["bans"] == 1 and hb["counters"]["banned_until_ns"] > time.time_ns()
        wait_for(a.bootstrapped, 10, "bootstrap after the ban")
        wait_for(lambda: a.heartbeat()["counters"]["banned"] is False, 5, "the ban over")
    reqs = server.requests(FAPI)
    assert [r.status for r in reqs] == [418, 200]
    assert reqs[1].t_arrive - reqs[0].t_reply >= 2.0
    assert len(ring(s, "1m")) == 9


def test_429_then_500_then_timeout_all_recovered(prefix, server, clock):
    server.fail_next(Fault(429, {"Retry-After": "1"}), Fault(500), Fault(None, delay=5.0))
    s = settings(prefix, server, context_tfs=("1m",), context_rest_timeout_sec=0.5)
    with Actor(s, clock) as a:
        wait_for(a.bootstrapped, 20, "bootstrap through the faults")
        rest = a.state()["rest"]
    assert rest["errors"] == {"429": 1, "500": 1, "timeout": 1}
    assert (rest["requests"], rest["ok"], rest["retries"]) == (4, 1, 3)
    reqs = server.requests(FAPI)
    assert reqs[1].t_arrive - reqs[0].t_reply >= 1.0
    assert len(ring(s, "1m")) == 9


@pytest.mark.parametrize("trouble", ["unreachable", "bad symbol"])
def test_rest_failures_keep_retrying_and_are_reported(prefix, server, clock, trouble):
    kw = {"context_tfs": ("1m",), "context_rest_retries": 0}
    if trouble == "unreachable":
        s = settings(prefix, server, **kw).replace(futures_rest=f"http://127.0.0.1:{free_port()}")
    else:
        s = settings(prefix, server, symbol="ETHUSDT", **kw)
    with Actor(s, clock) as a:
        hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["sync_errors"] >= 3 and h,
                        15, "repeated, reported failures")
        assert a.thread.is_alive()
        err = hb["errors"]["1m"]
        assert ("HTTP 0" in err) if trouble == "unreachable" else ("-1121" in err and "Invalid symbol" in err)
        st = a.tf("1m")
        assert st["bootstrapped"] is False and st["error"] and st["count"] == 0


# --- the real process -----------------------------------------------------------------------------

def test_run_py_context_process(prefix):
    with KlineServer() as srv:        # the real clock
        env = {**os.environ, "SHM_PREFIX": prefix, "SHM_DIR": SHM_DIR, "FUTURES_REST": srv.url,
               "CONTEXT_TFS": "1m,5m", "CONTEXT_BOOTSTRAP_LIMIT": "30", "SYMBOL": "BTCUSDT",
               "ZMQ_XSUB_URL": f"tcp://127.0.0.1:{free_port()}", "LOG_LEVEL": "INFO"}
        proc = subprocess.Popen([sys.executable, "run.py", "context"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            reg = Registry(SHM_DIR, prefix)
            wait_for(lambda: (h := reg.read("context")) and h["counters"]["bootstrapped"] == 2,
                       20, "the process bootstrapped")
            s = load_settings(shm_prefix=prefix)
            for tf, tf_ms in (("1m", M1), ("5m", M5)):
                recs = ring(s, tf)
                assert len(recs) in (29, 30)            # a minute may close during the call
                assert_contiguous(recs, tf_ms)
                first = int(recs[0]["open_time_ns"]) // MS
                last = int(recs[-1]["open_time_ns"]) // MS
                assert core(recs) == core(served(srv, tf, first, last, last + tf_ms))
            hb = reg.read("context")
            assert hb["pid"] == proc.pid
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert reg.read("context").get("stopped") is True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            err = proc.stderr.read().decode()
            proc.stderr.close()
        assert '"level": "ERROR"' not in err, err[-2000:]
