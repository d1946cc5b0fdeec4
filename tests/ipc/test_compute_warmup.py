"""compute's warm-up and its guard against insane values, on real rings, a real sim (REST klines
and aggTrades over real sockets) and real compute objects.

The reference is computed here from the sim's own trades (REST aggTrades, paged by id from the
anchor) with exact decimal arithmetic: a restarted compute must give the same CVD and VWAP to the
last unit as an uninterrupted run over the same trades."""
from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from decimal import Decimal

import httpx
import pytest

from actors.compute import Compute
from actors.sim.market import Market
from config.settings import load_settings
from ipc import names
from ipc.bus import Publisher
from ipc.ring import RingWriter
from ipc.schema import QUOTE, TRADE
from ipc.shm import unlink_prefix
from tests.support.ports import free_port
from tests.support.sim import running_sim
from tests.support.wait import wait_for

SEC = 1_000_000_000
E8 = 10 ** 8


def _settings(segs, tmp_path, **kw):
    return load_settings(decision_log_dir=str(tmp_path / "decisions"),
                         shm_prefix=segs.prefix.replace("tdctest-", "w"),
                         zmq_control_url=f"tcp://127.0.0.1:{free_port()}", zmq_xsub_url="tcp://127.0.0.1:1",
                         polymarket_enabled=False, **kw)


def _compute(s):
    return Compute(s, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0))


def _ring(s, venue, kind="trade", dtype=TRADE, cap=4096):
    return RingWriter(s.ipc.shm_dir, names.venue_ring(venue, kind).name(s.ipc.shm_prefix, s.general.symbol),
                      dtype, cap)


# --- insane values never reach the math --------------------------------------------------------
def test_insane_values_are_skipped_counted_and_never_poison_vwap_or_sigma(segs, tmp_path):
    s = _settings(segs, tmp_path)
    trades, quotes = _ring(s, names.FUTURES), _ring(s, names.FUTURES, "quote", QUOTE)
    c = _compute(s)
    try:
        t0 = (time.time_ns() // SEC - 40) * SEC
        good = []
        bad = [(0.0, 0.01, 1), (-65000.0, 0.01, 1), (math.inf, 0.01, 1), (math.nan, 0.01, -1),
               (float("1e400"), 0.01, 1), (65000.0, math.nan, 1), (65000.0, 0.0, -1),
               (65000.0, -0.5, 1), (65000.0, 0.01, 0),
               (6.5e10, 0.01, 1), (65000.0, 2e10, 1)]      # past the exact sums' int64 range
        tid = 1
        for sec in range(35):                 # one good trade a second, an insane one in between
            p = 65000.0 + (sec % 7) * 0.5
            good.append((p, 0.002 * (1 + sec % 3), 1 if sec % 2 else -1))
            trades.append((t0 + sec * SEC, t0 + sec * SEC, 0, tid, tid, tid, *good[-1]))
            tid += 1
            if sec < len(bad):
                trades.append((t0 + sec * SEC + 1, t0 + sec * SEC + 1, 0, tid, tid, tid, *bad[sec]))
                tid += 1
        quotes.append((t0, t0, 0, 1, math.nan, 1.0, 65000.1, 1.0))
        quotes.append((t0, t0, 0, 2, 64999.9, 1.0, -1.0, 1.0))
        quotes.append((t0, t0, 0, 3, 64999.9, math.inf, 65000.1, 1.0))
        quotes.append((t0, t0, 0, 4, 64999.9, 1.0, 65000.1, 1.0))
        c.tick(t0 + 36 * SEC)                 # before the guard: ValueError: math domain error
        f = c.venues[names.FUTURES].features(t0 + 36 * SEC)
        assert f["skipped"] == {"trade:price": 6, "trade:qty": 4, "trade:side": 1,
                                "quote:bid": 1, "quote:ask": 1, "quote:qty": 1}
        assert c.counters()["skipped_values"] == 14
        assert c.report()["skipped"]["futures.trade:price"] == 6
        qu = [int(Decimal(repr(q)) * E8) for _, q, _ in good]
        pu = [int(Decimal(repr(p)) * E8) for p, _, _ in good]
        assert f["cvd"]["cvd"] == sum(q * sd for q, (_, _, sd) in zip(qu, good)) / E8
        assert f["cvd"]["trades"] == f["vwap"]["trades"] == 35
        s1, q = sum(a * b for a, b in zip(pu, qu)), sum(qu)
        assert f["vwap"]["vwap"] == s1 / (q * E8)
        assert f["vwap"]["sigma"] == math.sqrt((q * sum(a * a * b for a, b in zip(pu, qu)) - s1 * s1)
                                               / (q * q * E8 * E8))
        assert f["volatility"]["returns"] == 34 and math.isfinite(f["volatility"]["sigma_fast"])
        assert f["book"]["bid"] == 64999.9 and f["book"]["update_id"] == 4
    finally:
        c.control.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


# --- the warm-up against a real sim ----------------------------------------------------------------
class SimThread:
    """The sim in-process on its own event loop, its market started `back_sec` in the past (it
    catches up at once: the trades of that time exist, with their klines, as on a venue)."""

    def __init__(self, back_sec: float, rate: float = 20.0):
        self.start_ns = (time.time_ns() - int(back_sec * SEC))
        self.market = Market(seed=7, trade_rate=rate, start_price=65000.0, start_ns=self.start_ns)
        self.ports = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._t.start()
        wait_for(lambda: self.ports, 10, "sim up")

    async def _main(self):
        async with running_sim(rate=20.0, market=self.market) as ports:
            self.ports = ports
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._t.join(10)


def _all_trades(base: str, path: str, start_ms: int) -> list[dict]:
    """Every aggTrade from start_ms on, paged by id."""
    out = httpx.get(f"{base}{path}?symbol=BTCUSDT&limit=1000&startTime={start_ms}", timeout=5).json()
    while out:
        page = httpx.get(f"{base}{path}?symbol=BTCUSDT&limit=1000&fromId={out[-1]['a'] + 1}", timeout=5).json()
        if not page:
            break
        out += page
    return out


def _reference(rows: list[dict], anchor_ns: int, last_id: int) -> dict:
    """CVD, VWAP, volume over the trades anchor ≤ T, id ≤ last_id: exact decimals."""
    rows = sorted({r["a"]: r for r in rows}.values(), key=lambda r: r["a"])     # each id once
    rows = [r for r in rows if r["T"] * 1_000_000 >= anchor_ns and r["a"] <= last_id]
    qu = [int(Decimal(r["q"]) * E8) for r in rows]
    pu = [int(Decimal(r["p"]) * E8) for r in rows]
    cvd = sum(-q if r["m"] else q for q, r in zip(qu, rows))
    s1, q = sum(a * b for a, b in zip(pu, qu)), sum(qu)
    return {"cvd": cvd / E8, "vwap": s1 / (q * E8), "volume": q / E8, "n": len(rows),
            "last_price": float(rows[-1]["p"])}


def _write(ring, rows):
    for r in rows:
        t = r["T"] * 1_000_000
        ring.append((t, t + 3_000_000, 0, r["a"], r["f"], r["l"], float(r["p"]), float(r["q"]),
                     -1 if r["m"] else 1))


@pytest.fixture(scope="module")
def sim():
    sim = SimThread(back_sec=150)
    # caught up: the newest trade is recent
    wait_for(lambda: httpx.get(sim.ports.fhttp + "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1", timeout=5)
             .json()[0]["T"] > time.time() * 1000 - 3000, 10, "the sim caught up")
    yield sim
    sim.stop()


def test_restart_rebuilds_cvd_and_vwap_exactly_from_klines_aggtrades_and_the_ring(sim, segs, tmp_path):
    s = _settings(segs, tmp_path, futures_rest=sim.ports.fhttp, spot_rest=sim.ports.shttp)
    # an anchor not on a minute, 7.3 s after the sim's market began: partial minute + klines + tail
    anchor = sim.start_ns + 7_300_000_000
    fut_rows = _all_trades(sim.ports.fhttp, "/fapi/v1/aggTrades", anchor // 1_000_000 - 60_000)
    now_ms = fut_rows[-1]["T"]
    ring = _ring(s, names.FUTURES)
    # what the feed wrote: older trades, a gap (a feed restart lost 5 trades), then the last 20 s
    # up to 5 s ago (REST is ahead of the ring: the overlap must not count twice)
    older = [r for r in fut_rows if now_ms - 40_000 <= r["T"] < now_ms - 30_000]
    recent = [r for r in fut_rows if now_ms - 20_000 <= r["T"] < now_ms - 5_000]
    _write(ring, older)
    ring.append_gap(time.time_ns())
    _write(ring, recent[5:])
    _set_anchor(s, anchor)
    c = _compute(s)
    try:
        reports = c.warm_up()
        fut, spot = c.venues[names.FUTURES], c.venues[names.SPOT]
        rep = reports[names.FUTURES]
        assert rep["source"] == "rest" and rep["exact"] is True and rep["reason"] is None
        assert rep["kline_minutes"] >= 1 and rep["rest_trades"] > 0 and rep["ring_trades"] == len(older) + len(recent) - 5
        ref = _reference(fut_rows, anchor, fut.boot_last_id)
        assert fut.boot_last_id == recent[-1]["a"]      # REST fills up to the ring, never past it
        f = fut.features(time.time_ns())
        assert f["cvd"]["cvd"] == ref["cvd"], (reports, anchor, now_ms, sim.start_ns, recent[5]["T"])
        assert f["cvd"]["anchor_ns"] == anchor and f["cvd"]["from_ns"] == anchor
        assert f["vwap"]["vwap"] == ref["vwap"] and f["vwap"]["volume"] == ref["volume"]
        assert f["vwap"]["from_ns"] == anchor and f["vwap"]["sigma_exact"] is False
        assert f["vwap"]["last_price"] == ref["last_price"]
        # the 1m bars before the tail come from the klines, consecutive with the live ones
        kbars = [b for b in fut.closed["1m"] if b.get("source") == "kline"]
        assert len(kbars) == rep["kline_minutes"] and fut.rvol["1m"].restarts == 0
        assert sum(b["volume"] for b in kbars) > 0
        # spot: its ring is empty, everything by REST
        spot_rows = _all_trades(sim.ports.shttp, "/api/v3/aggTrades", anchor // 1_000_000 - 60_000)
        sref = _reference(spot_rows, anchor, spot.boot_last_id)
        sf = spot.features(time.time_ns())
        assert reports[names.SPOT]["source"] == "rest" and reports[names.SPOT]["ring_trades"] == 0
        assert sf["cvd"]["cvd"] == sref["cvd"] and sf["vwap"]["vwap"] == sref["vwap"]
        # live: the feeds go on writing. Futures from where its ring stopped; spot's feed starts
        # now and writes the last 10 s, which REST had given already: not counted again
        later = _all_trades(sim.ports.fhttp, "/fapi/v1/aggTrades", recent[-1]["T"])
        later = [r for r in later if r["a"] > recent[-1]["a"]]
        _write(ring, later)
        # (a loaded machine's sim may take a moment to trade again after the warm-up's boot)
        spot_later = wait_for(lambda: (lambda rows: rows if rows and rows[-1]["a"] > spot.boot_last_id else None)(
            _all_trades(sim.ports.shttp, "/api/v3/aggTrades", spot_rows[-1]["T"] - 10_000)), 15,
            "a spot trade after the warm-up's boot")
        overlap = sum(1 for r in spot_later if r["a"] <= spot.boot_last_id)
        assert overlap > 0 and spot_later[-1]["a"] > spot.boot_last_id
        _write(_ring(s, names.SPOT), spot_later)
        c.tick(time.time_ns())
        ref2 = _reference(later + fut_rows, anchor, later[-1]["a"])
        f2 = fut.features(time.time_ns())
        assert f2["cvd"]["cvd"] == ref2["cvd"] and f2["vwap"]["vwap"] == ref2["vwap"]
        assert f2["cvd"]["last_trade_id"] == later[-1]["a"]
        sref2 = _reference(spot_later + spot_rows, anchor, spot_later[-1]["a"])
        sf2 = spot.features(time.time_ns())
        assert sf2["cvd"]["cvd"] == sref2["cvd"] and sf2["vwap"]["vwap"] == sref2["vwap"]
        assert c.counters()["warmup_overlap"] == overlap
    finally:
        c.control.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def _set_anchor(s, anchor_ns):
    from ipc.state import StateBlock
    from actors.compute import ANCHOR_BLOCK_BYTES
    b = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.ANCHOR_BLOCK, size=ANCHOR_BLOCK_BYTES, writer=True)
    b.write({"anchor_ns": anchor_ns, "set_ns": anchor_ns})
    b.close()


def test_ring_alone_rebuilds_exactly_when_it_reaches_back_past_the_anchor(sim, segs, tmp_path):
    # recording on: no REST (a replay must reproduce the state); the ring holds it all
    s = _settings(segs, tmp_path, futures_rest=sim.ports.fhttp, spot_rest=sim.ports.shttp,
                  record_enabled=True, record_dir=str(tmp_path / "rec"))
    rows = _all_trades(sim.ports.fhttp, "/fapi/v1/aggTrades", sim.start_ns // 1_000_000)
    anchor = rows[len(rows) // 2]["T"] * 1_000_000 + 1
    _write(_ring(s, names.FUTURES, cap=8192), rows)
    _set_anchor(s, anchor)
    c = _compute(s)
    try:
        before = httpx.get(sim.ports.fhttp + "/__sim/stats", timeout=5).json()["rest"]["answers"]
        reports = c.warm_up()
        assert httpx.get(sim.ports.fhttp + "/__sim/stats", timeout=5).json()["rest"]["answers"] == before
        assert reports[names.FUTURES] == {"anchor_ns": anchor, "ring_trades": len(rows), "kline_minutes": 0,
                                          "rest_trades": 0, "exact": True, "reason": None, "source": "ring"}
        assert reports[names.SPOT]["exact"] is False and reports[names.SPOT]["reason"] == \
            "REST warm-up off (recording or replay): the ring does not reach the anchor"
        ref = _reference(rows, anchor, rows[-1]["a"])
        f = c.venues[names.FUTURES].features(time.time_ns())
        assert f["cvd"]["cvd"] == ref["cvd"] and f["vwap"]["vwap"] == ref["vwap"]
        assert f["cvd"]["trades"] == ref["n"] and f["vwap"]["sigma_exact"] is True
    finally:
        c.control.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def test_a_venue_that_never_answers_costs_the_budget_not_the_tick(segs, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)                       # accepts (the kernel does), never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    s = _settings(segs, tmp_path, futures_rest=url, spot_rest=url)
    ring = _ring(s, names.FUTURES)
    now = time.time_ns()
    for i in range(3):
        ring.append((now - SEC + i, now - SEC + i, 0, 10 + i, 10 + i, 10 + i, 65000.0, 0.5, 1))
    c = _compute(s)
    try:
        t0 = time.monotonic()
        reports = c.warm_up(budget_sec=1.0)
        took = time.monotonic() - t0
        assert took < 2.0, took
        assert reports[names.FUTURES] == {
            "source": "ring", "exact": False, "ring_trades": 3,
            "reason": "warm-up failed, state from the ring only: over the 1 s budget"}
        f = c.venues[names.FUTURES].features(now)
        assert f["cvd"]["cvd"] == 1.5 and f["cvd"]["trades"] == 3
        c.tick(time.time_ns())                # and the ticks go on
        assert c.ticks == 1
    finally:
        c.control.close()
        silent.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def test_sim_aggtrades_rest_shapes_limits_and_weights(sim):
    f = sim.ports.fhttp + "/fapi/v1/aggTrades?symbol=BTCUSDT"
    r = httpx.get(f + "&limit=3", timeout=5)
    rows = r.json()
    assert [sorted(x) for x in rows] == [sorted("apqflTm")] * 3
    w0 = int(r.headers["X-MBX-USED-WEIGHT-1M"])
    r2 = httpx.get(f + f"&fromId={rows[0]['a']}&limit=2", timeout=5)
    assert [x["a"] for x in r2.json()] == [rows[0]["a"], rows[0]["a"] + 1]
    assert int(r2.headers["X-MBX-USED-WEIGHT-1M"]) in (w0 + 20, 20)      # 20 (a new minute: 20)
    bad = httpx.get(f + "&startTime=0&endTime=3600000", timeout=5)
    assert (bad.status_code, bad.json()["code"]) == (400, -1127)
    s = httpx.get(sim.ports.shttp + "/api/v3/aggTrades?symbol=BTCUSDT&limit=1", timeout=5)
    assert sorted(s.json()[0]) == sorted(["a", "p", "q", "f", "l", "T", "m", "M"]) and s.json()[0]["M"] is True


# --- warm-up edges, without a sim ------------------------------------------------------------------
def test_rest_trades_and_the_ring_must_meet_with_consecutive_ids():
    from actors import warmup
    from actors.features import warm as wm
    import numpy as np
    t = np.zeros(5, dtype=wm.TRADE)
    t["trade_id"] = [10, 11, 12, 15, 16]
    with pytest.raises(warmup.Failed) as e:
        warmup._union([t[:2], t[2:]], "minutes after the klines")
    assert str(e.value) == ("2 trade ids missing in the minutes after the klines (REST and the ring do "
                            "not meet)")
    both = warmup._union([t[:3], t[1:3]], "x")         # an overlap is fine: each id once
    assert both["trade_id"].tolist() == [10, 11, 12]


@pytest.mark.parametrize("p,q", [("NaN", "1"), ("1e400", "1"), ("0", "1"), ("-5", "1"), ("65000", "0"),
                                 ("65000", "inf"), ("65000", "2e10")])
def test_rest_aggtrades_with_insane_values_fail_the_warm_up_not_the_sums(p, q):
    from actors.features import warm as wm
    body = ('[{"a":1,"p":"%s","q":"%s","f":1,"l":1,"T":1700000000000,"m":true}]' % (p, q)).encode()
    with pytest.raises(ValueError, match="insane price or quantity"):
        wm.parse_agg_trades(body)
    ok = wm.parse_agg_trades(b'[{"a":1,"p":"65000.5","q":"0.001","f":1,"l":1,"T":1700000000000,"m":true}]')
    assert (ok["price"][0], ok["qty"][0], ok["side"][0]) == (65000.5, 0.001, -1)


def test_an_unexpected_failure_is_the_venues_warm_up_failing_not_computes(segs, tmp_path, monkeypatch):
    from actors import warmup
    s = _settings(segs, tmp_path, futures_rest="http://127.0.0.1:1", spot_rest="http://127.0.0.1:1")
    ring = _ring(s, names.FUTURES)
    now = time.time_ns()
    ring.append((now - SEC, now - SEC, 0, 10, 10, 10, 65000.0, 0.5, 1))
    _ring(s, names.SPOT).append((now - SEC, now - SEC, 0, 7, 7, 7, 65000.0, 0.25, -1))

    async def boom(*a, **kw):
        raise TypeError("float() argument must be a string or a real number, not 'NoneType'")
    monkeypatch.setattr(warmup, "warm_venue", boom)
    c = _compute(s)
    try:
        reports = c.warm_up(budget_sec=1.0)
        assert reports[names.FUTURES]["reason"] == ("warm-up failed, state from the ring only: TypeError: "
                                                    "float() argument must be a string or a real number, "
                                                    "not 'NoneType'")
        assert c.venues[names.FUTURES].features(now)["cvd"]["cvd"] == 0.5
        assert c.venues[names.SPOT].features(now)["cvd"]["cvd"] == -0.25
    finally:
        c.control.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def test_a_live_trade_that_does_not_follow_the_warm_up_marks_it_not_exact(segs, tmp_path):
    """The warm-up's last id was 100; the first live trade is 105: 4 ids were never received.
    Then the warm-up's id is forgotten: ids that restart (a sim restarted) are not dropped."""
    s = _settings(segs, tmp_path)
    ring = _ring(s, names.FUTURES)
    c = _compute(s)
    try:
        vs = c.venues[names.FUTURES]
        vs.boot_last_id, vs.warmup = 100, {"source": "rest", "exact": True, "reason": None}
        now = time.time_ns()
        for i in (99, 100, 105, 106):
            ring.append((now, now, 0, i, i, i, 65000.0, 0.5, 1))
        assert vs.take_trades()["trade_id"].tolist() == [105, 106] and vs.overlap == 2
        assert vs.warmup == {"source": "rest", "exact": False, "missed_ids": 4,
                             "reason": "4 trade ids between the warm-up and the first live trade were not received"}
        assert vs.boot_last_id is None
        ring.append((now, now, 0, 1, 1, 1, 65000.0, 0.5, 1))
        assert vs.take_trades()["trade_id"].tolist() == [1]
    finally:
        c.control.close()
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)
