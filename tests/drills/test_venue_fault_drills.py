"""Fault drills, part 2: the venues misbehave (POST /__sim/fault on the running system's sim) and
the API gets malformed requests; one system for the whole module.

For the Binance faults the trade ring is read across the fault and accounted for exactly: every
trade id the feed did not write is counted in its `ids_missing`, a reconnect leaves a gap record,
no id is ever written twice (tests/support/stack.trade_accounting)."""
from __future__ import annotations

import os
import re
import signal
import socket
import time

import numpy as np
import pytest

from actors.sim.faults import INSANE_REASONS, inject, stats
from ipc.state import Registry
from ipc import names
from tests.support.rings import open_reader
from tests.support.stack import trade_accounting
from tests.support.wait import wait_for

from .tools import SYMBOL, actor, children, healthy, raw_http, read_answer, running_system, state, wait_or_logs

OUTCOMES: dict[str, dict] = {}


class Drill:
    """The running system and direct views of its feeds' heartbeats (read from the registry, as
    the API does, so that a consistent view of counters and ring is quick to catch)."""

    def __init__(self, system):
        self.system = system
        self.s = system.settings()
        self.registry = Registry(self.s.ipc.shm_dir, self.s.ipc.shm_prefix)
        self.futures_url = f"http://127.0.0.1:{system.env['SIM_PORT']}"
        self.spot_url = f"http://127.0.0.1:{system.env['SIM_SPOT_PORT']}"
        self.poly_url = f"http://127.0.0.1:{system.env['SIM_POLY_PORT']}"

    def hb(self, actor_: str) -> dict:
        return self.registry.read(actor_) or {}

    def stream(self, kind: str, actor_: str = "feed_futures") -> dict:
        return (self.hb(actor_).get("feed") or {}).get("streams", {}).get(kind, {})

    def conn(self, name: str, actor_: str = "feed_futures") -> dict:
        return (self.hb(actor_).get("feed") or {}).get("connections", {}).get(name, {})

    def counters(self, actor_: str = "feed_futures") -> dict:
        return self.hb(actor_).get("counters", {})

    def reader(self, venue: str, kind: str):
        return open_reader(names.venue_ring(venue, kind), self.s.ipc.shm_prefix, SYMBOL, self.s.ipc.shm_dir,
                           from_oldest=True)

    def settled(self, reader, actor_: str = "feed_futures") -> dict:
        """The trade stream's counters once the heartbeat has caught up with the ring."""
        return wait_for(lambda: (lambda st: st if st.get("ring_count") == reader.published else None)(
            self.stream("trade", actor_)), 15, f"{actor_} trade heartbeat to match the ring", interval=0.005)


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    with running_system(tmp / "sys", FEED_STALE_SEC="2.5") as system:
        healthy(system)
        yield Drill(system)


class TradeWindow:
    """The trade ring from the last record before the fault to `min_new` records after it, and
    the feed's counters at both ends."""

    def __init__(self, d: Drill, venue: str = "futures", actor_: str = "feed_futures"):
        self.d, self.actor = d, actor_
        self.r = d.reader(venue, "trade")
        self.before = d.settled(self.r, actor_)
        self.recs = [self.r.read()[-1:]]

    def close(self, min_new: int = 60) -> tuple[np.ndarray, dict]:
        def resumed():
            self.recs.append(self.r.read())
            return sum(len(x) for x in self.recs) >= min_new + 1
        wait_or_logs(self.d.system, resumed, 30, f"{min_new} trades after the fault")
        after = self.d.settled(self.r, self.actor)
        self.recs.append(self.r.read())
        assert self.r.overrun == 0
        return np.concatenate(self.recs), after


def test_malformed_frames_are_counted_exactly(drill):
    w = TradeWindow(drill)
    pe0 = drill.counters()["parse_errors"]
    inject(drill.futures_url, "malformed", count=3, stream="btcusdt@aggTrade")
    recs, after = w.close()
    wait_for(lambda: drill.counters()["parse_errors"] - pe0 == 3, 10, "exactly three parse errors")
    data, gaps, skipped = trade_accounting(recs)
    assert gaps == 0, "a malformed frame is skipped, the connection stays"
    # the three frames replaced real trades: their ids are missing, and counted as such
    assert skipped == after["ids_missing"] - w.before["ids_missing"] >= 3
    assert after["duplicates"] == w.before["duplicates"]
    healthy(drill.system, 10)
    OUTCOMES["malformed"] = {"parse_errors": 3, "ids_missing": skipped}


def test_skipped_ids_are_counted_exactly(drill):
    w = TradeWindow(drill)
    d0 = drill.stream("depth")["id_gaps"]
    inject(drill.futures_url, "gap", count=5)
    recs, after = w.close()
    data, gaps, skipped = trade_accounting(recs)
    assert after["id_gaps"] - w.before["id_gaps"] == 1
    assert after["ids_missing"] - w.before["ids_missing"] == 5 == skipped
    assert gaps == 0
    wait_for(lambda: drill.stream("depth")["id_gaps"] - d0 == 1, 10, "the depth pu break counted once")
    OUTCOMES["gap"] = {"ids_missing": 5, "id_gaps": 1, "depth_id_gaps": 1}


@pytest.mark.parametrize("kind", ["drop", "disconnect"])
def test_connection_loss_reconnects_and_accounts(drill, kind):
    """drop: TCP reset; disconnect: close 1001, what the venue does at its 24 h limit."""
    w = TradeWindow(drill)
    rc0 = {c: drill.conn(c)["reconnects"] for c in ("market", "public")}
    answer = inject(drill.futures_url, kind)
    assert answer["connections"] >= 2
    wait_for(lambda: all(drill.conn(c)["reconnects"] == rc0[c] + 1 and drill.conn(c)["connected"] for c in rc0),
             20, f"both connections back after {kind}")
    recs, after = w.close()
    data, gaps, skipped = trade_accounting(recs)
    assert gaps == 1, "one gap record marks the reconnect"
    assert skipped == after["ids_missing"] - w.before["ids_missing"], "every missing id counted"
    assert after["duplicates"] == w.before["duplicates"]
    healthy(drill.system, 20)
    q = state(drill.system)["quality"]
    assert any(r.startswith("futures: gap") for r in q["reasons"]), q
    OUTCOMES[kind] = {"reconnects": 1, "gap_records": gaps, "ids_missing": skipped, "quality": q["mode"]}


def test_spot_stall_degrades_quality_then_recovers(drill):
    """A venue that keeps the connection open but sends no data: detected on data age (not
    pings): quality DEGRADED with the reason, /health 503 naming it, the connection replaced;
    then data again and /health 200."""
    healthy(drill.system)
    sr0 = drill.conn("combined", "feed_spot")["stale_rotations"]
    inject(drill.spot_url, "stall", seconds=6)
    q = wait_for(lambda: (lambda q: q if any(re.match(r"spot\.(trade|quote): stale", r) for r in q["reasons"])
                          else None)(state(drill.system)["quality"]), 10, "the stale reason in quality")
    assert q["mode"] == "DEGRADED", q        # spot is not the primary venue: degraded, not bad
    # /health's own threshold per stream: max(HEALTH_DATA_STALE_SEC, the stream's normal silence)
    h = wait_for(lambda: (lambda c, b: b if c == 503 else None)(*drill.system.health()), 5,
                 "/health 503 during the stall")
    assert any(p.startswith("feed_spot: stale data") for p in h["problems"]), h["problems"]
    wait_for(lambda: drill.conn("combined", "feed_spot")["stale_rotations"] > sr0, 10,
             "the silent connection replaced")
    healthy(drill.system, 20)
    q2 = wait_for(lambda: (lambda q: q if not any("stale" in r for r in q["reasons"]) else None)(
        state(drill.system)["quality"]), 10, "no stale reason")
    OUTCOMES["stall_spot"] = {"quality_during": q["mode"], "reasons_during": q["reasons"],
                              "quality_after": q2["mode"]}


def test_futures_trade_stall_is_bad(drill):
    """The primary venue's trades stop (quotes flow): quality BAD with the reason, then back."""
    healthy(drill.system)
    inject(drill.futures_url, "stall", seconds=5, stream="btcusdt@aggTrade")
    q = wait_for(lambda: (lambda q: q if any(r.startswith("futures.trade: stale") for r in q["reasons"])
                          else None)(state(drill.system)["quality"]), 10, "futures.trade stale")
    assert q["mode"] == "BAD", q
    healthy(drill.system, 20)
    q2 = wait_for(lambda: (lambda q: q if q["mode"] != "BAD" else None)(state(drill.system)["quality"]), 10,
                  "quality no longer BAD")
    OUTCOMES["stall_futures_trades"] = {"quality_during": q["mode"], "quality_after": q2["mode"]}


def test_polymarket_drop_reconnects(drill):
    healthy(drill.system)
    rc0 = drill.counters("feed_poly")["reconnects"]
    inject(drill.poly_url, "drop")
    wait_for(lambda: drill.counters("feed_poly")["reconnects"] > rc0, 20, "feed_poly reconnected")
    healthy(drill.system, 20)
    # both books resynchronised from a fresh snapshot on the new connection
    wait_for(lambda: (lambda b: b["UP"]["valid"] and b["DOWN"]["valid"] and not b["UP"]["stale"]
                      and not b["DOWN"]["stale"])(drill.system.get("/latest/polymarket", params={"series": "15m"}).json()["books"]),
             20, "both Polymarket books valid again")
    OUTCOMES["poly_drop"] = {"reconnects": drill.counters("feed_poly")["reconnects"] - rc0}


@pytest.mark.parametrize("kind,status", [("rest429", "429"), ("rest418", "418")])
def test_rest_limits_context_backs_off(drill, kind, status):
    """The next REST call is answered 429 (slow down) / 418 (IP ban) with Retry-After: 3. The
    context actor (restarted, so it syncs by REST) makes no request until it has passed; then its
    sync completes."""
    retry = 3
    answers0 = stats(drill.futures_url)["rest"]["answers"]
    inject(drill.futures_url, kind, count=1, retry_after=retry)
    old_pid = actor(drill.system, "context")["pid"]
    os.kill(old_pid, signal.SIGTERM)        # a clean stop; supervisord starts it again
    # watch the sim's answers: the forced one, then nothing until Retry-After has passed. Each
    # poll is timed: the forced answer came after the start of the last poll that did not see
    # it, the next one before the end of the first poll that did: an upper bound of the quiet
    # time, so a slow poll can never make a client that waited look impatient
    def polls(done, timeout):
        deadline = time.monotonic() + timeout
        prev_start = time.monotonic()
        while time.monotonic() < deadline:
            start = time.monotonic()
            answers = stats(drill.futures_url)["rest"]["answers"]
            if done(answers):
                return prev_start, time.monotonic(), answers
            prev_start = start
            time.sleep(0.01)
        raise AssertionError("timed out watching the sim's REST answers\n" + drill.system.logs())

    t_fault, _, seen = polls(lambda a: a.get(status, 0) > answers0.get(status, 0), 30)
    total = sum(seen.values())
    assert total == sum(answers0.values()) + 1, "the forced answer must be the only one so far"
    _, t_next, _ = polls(lambda a: sum(a.values()) > total, retry + 10)
    quiet = t_next - t_fault
    assert quiet >= retry - 0.1, f"a request {quiet:.2f}s after the {status}: Retry-After {retry}s not honoured"
    hb = wait_for(lambda: (lambda h: h if h.get("pid") != old_pid and h.get("counters", {}).get("bootstrapped") == 1
                           else None)(drill.hb("context")), 20, "the sync done after the pause")
    rest = hb["rest"]
    assert rest["errors"].get(status) == 1 and rest["paused_ms"] >= retry * 1000 - 100, rest
    if status == "418":
        assert rest["bans"] == 1
    answers = stats(drill.futures_url)["rest"]["answers"]
    assert answers.get(status, 0) - answers0.get(status, 0) == 1, "exactly one forced answer, no more"
    assert answers.get("418", 0) == answers0.get("418", 0) + (status == "418"), "no ban earned by ignoring it"
    healthy(drill.system, 20)
    OUTCOMES[kind] = {"quiet_s": round(quiet, 2), "paused_ms": rest["paused_ms"], "bans": rest.get("bans")}


# --- the API ------------------------------------------------------------------------------------
TOKEN = b"Authorization: Bearer drill-token-0123456789\r\n"


def _post(body: bytes, ctype: bytes = b"application/json", extra: bytes = b"") -> bytes:
    return (b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\n" + TOKEN + b"Content-Type: " + ctype
            + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


# name -> (raw request, expected status; None: the front refuses it before the app, answering a 4xx
# of its own (JSON, actors/obs/uvicorn_front.py) and closing, or closing without an answer)
BAD_REQUESTS = {
    "garbage request line": (b"GARBAGE\r\n\r\n", None),
    "binary junk": (bytes(range(256)) + b"\r\n\r\n", None),
    "TLS handshake on the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), None),
    "request line over 4094 bytes": (b"GET /health?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", None),
    "header over 8190 bytes": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", None),
    "200 headers": (b"GET /health HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"\r\n", None),
    "bad HTTP version": (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", None),
    "header without colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n", None),
    "non-numeric Content-Length": (b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", None),
    "Content-Length and chunked": (_post(b"{}", extra=b"Transfer-Encoding: chunked\r\n"), None),
    "body over 4096 bytes": (_post(b" " * 6000), 413),
    "declared 1 MB body": (b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\n" + TOKEN
                           + b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n", 413),
    "bad JSON": (_post(b"{not json"), 400),
    "JSON not an object": (_post(b"[1, 2]"), 400),
    "anchor_ns a string": (_post(b'{"anchor_ns": "x"}'), 400),
    "wrong content type": (_post(b"{}", ctype=b"text/plain"), 415),
    "chunked body (no length)": (b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\n" + TOKEN
                                 + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + b"10\r\n{\"anchor_ns\": 5}\r\n0\r\n\r\n", 411),   # 0x10 = 16 bytes
    "bad token": (b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n", 401),
    "unknown route": (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "unknown method": (b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "made-up method": (b"FROB /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad query value": (b"GET /latest/book?venue=moon HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "missing query": (b"GET /latest/book HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad percent-encoding": (b"GET /latest/book?venue=%ZZ%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
}


def test_api_survives_malformed_requests(drill):
    system = drill.system
    port = int(system.env["HTTP_PORT"])
    api = actor(system, "api")
    workers = children(api["pid"])
    assert len(workers) == 2
    anchor0 = system.get("/latest/features").json()["anchor"]
    answers = {}
    for name, (raw, want) in BAD_REQUESTS.items():
        if name == "TLS handshake on the HTTP port":
            # no line end: the server waits for more; the client gives up (half-close)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
                got = s.recv(65536)
            answers[name] = int(got.split()[1]) if got else None
            assert not got or 400 <= answers[name] < 500, got[:200]
            continue
        r = raw_http(port, raw)
        answers[name] = r.status
        if want is None:
            assert r.status is None or (400 <= r.status < 500 and r.headers.get("connection") == "close"), \
                (name, r.status, r.body[:200])
            if r.status is not None:          # the front's own refusal, in the app's JSON shape
                assert r.headers["content-type"] == "application/json", (name, r.headers)
                assert isinstance(r.json()["title"], str), (name, r.body[:200])
        else:
            assert r.status == want, (name, r.status, r.body[:200])
            assert r.headers["content-type"] == "application/json", (name, r.headers)
            assert isinstance(r.json()["title"], str) and b"Traceback" not in r.body
    # none of it reached compute: the anchor is where it was
    assert system.get("/latest/features").json()["anchor"] == anchor0
    # the API is up, with the same master and the same two workers (none crashed or was replaced)
    healthy(system, 5)
    api2 = actor(system, "api")
    assert api2["pid"] == api["pid"] and api2["alive"] and api2["counters"]["workers"] == 2
    assert children(api["pid"]) == workers
    log = (system.tmp / "logs" / "api.log").read_text(errors="replace")
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log, log[-3000:]
    OUTCOMES["api"] = answers


def _refused(system) -> dict[str, float]:
    """tdc_api_refused_total by reason, summed over the API's workers (/metrics)."""
    out = {}
    for m in re.finditer(r'^tdc_api_refused_total\{reason="(\w+)"\} (\S+)$', system.get("/metrics").text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def test_api_idle_connections_cost_no_worker(drill):
    """16 half-sent requests and 16 silent connects held open: /health still answers at once;
    after the front's request timeout each half-sent one gets a JSON 408 and is closed, each silent
    one is closed; counted by reason; the same master and workers."""
    from actors.obs.uvicorn_front import REQUEST_TIMEOUT_SEC
    system = drill.system
    port = int(system.env["HTTP_PORT"])
    api = actor(system, "api")
    workers = children(api["pid"])
    refused0 = _refused(system)
    t_open = time.monotonic()
    half = [socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_SEC + 10) for _ in range(16)]
    for s in half:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")          # never the blank line
    idle = [socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_SEC + 10) for _ in range(16)]
    try:
        times_ms = []
        for _ in range(5):
            t0 = time.monotonic()
            r = raw_http(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            times_ms.append((time.monotonic() - t0) * 1e3)
            assert r.status == 200, (r.status, r.body[:300])
        assert max(times_ms) < 200, times_ms
        answers = [read_answer(s) for s in half]
        assert {(a.status, a.headers.get("content-type"), a.headers.get("connection")) for a in answers} == \
            {(408, "application/json", "close")}
        assert {a.json()["title"] for a in answers} == {"request timeout"}
        assert {s.recv(1) for s in half} == {b""}                     # closed after the 408
        assert {s.recv(1) for s in idle} == {b""}                     # closed without a word
        closed_s = time.monotonic() - t_open
        assert REQUEST_TIMEOUT_SEC * 0.9 <= closed_s < REQUEST_TIMEOUT_SEC + 3, closed_s
    finally:
        for s in half + idle:
            s.close()
    refused = _refused(system)
    delta = {k: refused.get(k, 0) - refused0.get(k, 0) for k in refused if refused.get(k, 0) != refused0.get(k, 0)}
    assert delta == {"slow_request": 16, "idle_connection": 16}, (refused0, refused)
    api2 = actor(system, "api")
    assert api2["pid"] == api["pid"] and children(api["pid"]) == workers
    OUTCOMES["api_idle"] = {"health_ms_max": round(max(times_ms), 1), "closed_after_s": round(closed_s, 2),
                            "refused": delta}


def test_insane_values_are_rejected_exactly(drill):
    """The sim sends well-formed frames with insane values on the live futures streams (POST
    /__sim/fault {"kind":"insane"}): 5 aggTrades (price 0, NaN, 1e400, qty -1, m "false") and 5
    bookTickers (bid 0, ask inf, crossed, bid qty -1, bid NaN). Each is counted under its reason,
    none reaches a ring, the trades they replaced are accounted as missing ids, and compute (the
    same process) keeps ticking."""
    healthy(drill.system)
    w = TradeWindow(drill)
    quotes = drill.reader("futures", "quote")
    quotes.read()                                   # from here on
    c0 = drill.counters()
    rj0, pe0 = dict(c0.get("rejected", {})), c0["parse_errors"]
    compute0 = actor(drill.system, "compute")
    want: dict[str, int] = {}
    for r in INSANE_REASONS["aggTrade"] + INSANE_REASONS["bookTicker"]:
        want[r] = want.get(r, 0) + 1
    inject(drill.futures_url, "insane", count=5, stream="btcusdt@aggTrade")
    inject(drill.futures_url, "insane", count=5, stream="btcusdt@bookTicker")
    recs, after = w.close()

    def grown():
        rj = drill.counters().get("rejected", {})
        return {k: v - rj0.get(k, 0) for k, v in rj.items() if v - rj0.get(k, 0)}
    got = wait_or_logs(drill.system, lambda: (lambda g: g if g == want else None)(grown()), 15,
                       f"rejects {want}")
    assert drill.counters()["parse_errors"] - pe0 == 10
    assert want == {"trade:price": 3, "trade:qty": 1, "trade:m": 1,
                    "quote:bid": 2, "quote:ask": 1, "quote:crossed": 1, "quote:bid_qty": 1}
    data, gaps, skipped = trade_accounting(recs)
    assert gaps == 0, "an insane frame is skipped, the connection stays"
    assert skipped == after["ids_missing"] - w.before["ids_missing"] >= 5
    assert after["duplicates"] == w.before["duplicates"]
    assert (np.isfinite(data["price"]) & (data["price"] > 0)).all() and (data["qty"] > 0).all()
    assert set(np.unique(data["side"]).tolist()) <= {-1, 1}
    chunks = [quotes.read()]
    wait_or_logs(drill.system, lambda: chunks.append(quotes.read()) or sum(map(len, chunks)) >= 20, 15,
                 "quotes after the fault")
    q = np.concatenate(chunks)
    assert quotes.overrun == 0
    assert (np.isfinite(q["bid"]) & np.isfinite(q["ask"]) & (q["bid"] > 0) & (q["bid"] <= q["ask"])).all()
    assert (q["bid_qty"] > 0).all() and (q["ask_qty"] > 0).all()
    ticks0 = compute0["counters"]["ticks"]
    c1 = wait_for(lambda: (lambda a: a if a.get("counters", {}).get("ticks", 0) > ticks0 + 5 else None)(
        actor(drill.system, "compute")), 10, "compute ticking after the fault")
    assert c1["pid"] == compute0["pid"], "compute was not restarted"
    healthy(drill.system, 10)
    OUTCOMES["insane"] = {"rejected": got, "ids_missing": skipped, "compute_pid_same": True}


def test_print_outcomes(drill):
    print("\nDRILL OUTCOMES", OUTCOMES)
