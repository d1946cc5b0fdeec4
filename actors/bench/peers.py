"""Peer clients on the firehose: what users would pick instead of this collector, measured here.

  python -m actors.bench.peers {cryptofeed|nautilus} WS_BASE REST_BASE N
      runs that library's own Binance USD-M futures client against WS_BASE (ws://127.0.0.1:PORT)
      and REST_BASE (http://127.0.0.1:PORT), counts decoded trades in the library's own callback
      and prints the line of `receivers count`: {"frames", "seconds", "rate"}, the rate from the
      first to the N-th trade, plus "first_id", "last_id" (the firehose numbers trades 1..N),
      "peer" and "version". Exit 2: the peer is not importable.
  python -m actors.bench.peers version PEER      its distribution's version (exit 2: not installed)
  python -m actors.bench.peers bench N [PYTHON]  bench_peers: both peers, run by PYTHON (default
      $TDC_PEERS_PYTHON), each between two bare loops (ours) on one firehose; JSON, then the rows

What each peer runs (the layer its users subscribe at, with its defaults, uvloop included):
- cryptofeed: a FeedHandler with its BinanceFutures feed (endpoints pointed at the firehose by a
  subclass overriding only the two endpoint lists), channel TRADES, an async callback receiving
  each `Trade` (Decimal price and amount) it builds from a combined-stream aggTrade frame.
- nautilus: a TradingNode built by BinanceLiveDataClientFactory (BinanceFuturesDataClient,
  USDT_FUTURES, use_agg_trade_ticks, base URLs set to the firehose, a dummy key: the instrument
  provider's account query is signed), and an Actor subscribing to trade ticks of
  BTCUSDT-PERP.BINANCE: each frame goes Rust WebSocket client -> msgspec decode -> TradeTick ->
  LiveDataEngine queue -> message bus -> Actor.on_trade_tick, where it is counted.
Both fetch exchangeInfo (nautilus also the account and positions) from the firehose's REST routes.
Nothing here reaches past 127.0.0.1: bench_peers hands them only loopback URLs.

This module is run by the peers' interpreter (a separate venv: requirements-bench-peers.txt), so
at import it needs the standard library only; `bench_peers` runs under ours.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PEERS = ("cryptofeed", "nautilus")
DISTRIBUTIONS = {"cryptofeed": "cryptofeed", "nautilus": "nautilus_trader"}
LAYERS = {"cryptofeed": "FeedHandler + BinanceFutures, TRADES callback",
          "nautilus": "TradingNode + BinanceFuturesDataClient, Actor.on_trade_tick"}
BARE_PATH = "/market/stream?streams=btcusdt@aggTrade"      # the ingest bench's bare-loop route
EXIT_NOT_INSTALLED = 2
PEER_DEADLINE_S = 240.0
ROOT = Path(__file__).resolve().parents[2]


class TradeCounter:
    """Counts trades; the clock runs from the first to the n-th (as `receivers count`). The first
    and n-th trade ids are kept (the firehose numbers them 1..N: a peer that dropped or doubled a
    trade shows it there)."""

    def __init__(self, n: int):
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        self.n = n
        self.got = 0
        self.t_first = self.t_last = 0.0
        self.first_id = self.last_id = None

    def add(self, now_s: float, trade_id) -> bool:
        """Count one trade at perf-counter time now_s; True once the n-th is in."""
        self.got += 1
        if self.got == 1:
            self.t_first, self.first_id = now_s, trade_id
        if self.got == self.n:
            self.t_last, self.last_id = now_s, trade_id
        return self.got >= self.n

    def line(self) -> dict:
        dt = self.t_last - self.t_first
        return {"frames": self.n, "seconds": dt, "rate": (self.n - 1) / dt if dt > 0 else 0.0,
                "first_id": int(str(self.first_id)), "last_id": int(str(self.last_id))}


def version_of(peer: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(DISTRIBUTIONS[peer])
    except PackageNotFoundError:
        return None


def _finish(peer: str, counter: TradeCounter) -> None:
    # the libraries' own shutdown paths (tasks, Rust threads, log writers) are not what is measured
    # and can outlive the count: print and leave at once
    print(json.dumps({**counter.line(), "peer": peer, "version": version_of(peer)}), flush=True)
    os._exit(0)


def _watchdog(peer: str, counter: TradeCounter, deadline_s: float) -> None:
    import threading

    def expire():
        print(json.dumps({"error": f"{peer} decoded {counter.got} of {counter.n} trades in {deadline_s:.0f} s",
                          "peer": peer}), flush=True)
        os._exit(1)
    t = threading.Timer(deadline_s, expire)
    t.daemon = True
    t.start()


def run_cryptofeed(ws_base: str, rest_base: str, n: int) -> None:
    from cryptofeed import FeedHandler
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.defines import TRADES
    from cryptofeed.exchanges import BinanceFutures

    plain = ws_base.startswith("ws://")

    class FirehoseBinanceFutures(BinanceFutures):
        # cryptofeed's WSAsyncConn accepts wss:// addresses only; its pre-connect hook (an
        # endpoint with `authentication`) hands back the address it connects to: ws:// again, so
        # the peer runs without TLS like the bare loop (the hook runs once per connection)
        websocket_endpoints = [WebsocketEndpoint("wss://" + ws_base.split("://", 1)[1], options={"compression": None},
                                                 authentication=plain)]
        rest_endpoints = [RestEndpoint(rest_base, routes=Routes(
            "/fapi/v1/exchangeInfo", l2book="/fapi/v1/depth?symbol={}&limit={}",
            authentication="/fapi/v1/listenKey", open_interest="/fapi/v1/openInterest?symbol={}"))]

        async def _ws_authentication(self, address: str, ws_options: dict):
            return "ws://" + address.split("://", 1)[1], ws_options

    counter = TradeCounter(n)
    clock = time.perf_counter

    async def on_trade(trade, receipt_timestamp):
        if counter.add(clock(), trade.id):
            _finish("cryptofeed", counter)

    _watchdog("cryptofeed", counter, PEER_DEADLINE_S)
    fh = FeedHandler(config={"uvloop": True, "log": {"filename": os.devnull, "level": "WARNING"}})
    fh.add_feed(FirehoseBinanceFutures(symbols=["BTC-USDT-PERP"], channels=[TRADES], callbacks={TRADES: on_trade}))
    # FeedHandler.run() asks for the current loop, and uvloop 0.22's policy (set by the
    # FeedHandler) has none until one is set
    asyncio.set_event_loop(asyncio.new_event_loop())
    fh.run()


def run_nautilus(ws_base: str, rest_base: str, n: int) -> None:
    from nautilus_trader.adapters.binance import (BINANCE, BinanceAccountType, BinanceDataClientConfig,
                                                  BinanceLiveDataClientFactory)
    from nautilus_trader.common.actor import Actor
    from nautilus_trader.config import InstrumentProviderConfig, LoggingConfig, TradingNodeConfig
    from nautilus_trader.live.node import TradingNode
    from nautilus_trader.model.identifiers import InstrumentId, TraderId

    instrument_id = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
    counter = TradeCounter(n)
    clock = time.perf_counter

    class TradeCountActor(Actor):
        def on_start(self) -> None:
            self.subscribe_trade_ticks(instrument_id)

        def on_trade_tick(self, tick) -> None:
            if counter.add(clock(), tick.trade_id):
                _finish("nautilus", counter)

    config = TradingNodeConfig(
        trader_id=TraderId("BENCH-001"),
        logging=LoggingConfig(log_level="WARNING"),
        data_clients={BINANCE: BinanceDataClientConfig(
            api_key="bench", api_secret="bench",          # never sent past 127.0.0.1
            account_type=BinanceAccountType.USDT_FUTURES,
            base_url_http=rest_base, base_url_ws=ws_base,
            use_agg_trade_ticks=True, update_instruments_interval_mins=None,
            instrument_provider=InstrumentProviderConfig(load_ids=frozenset({str(instrument_id)})))},
    )
    _watchdog("nautilus", counter, PEER_DEADLINE_S)
    node = TradingNode(config=config)
    node.trader.add_actor(TradeCountActor())
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.build()
    node.run()


RUNNERS = {"cryptofeed": run_cryptofeed, "nautilus": run_nautilus}


def loopback_only(*urls: str) -> None:
    """Refuse any URL whose host is not 127.0.0.1 (the peers would otherwise go to the venue)."""
    from urllib.parse import urlsplit
    for u in urls:
        if urlsplit(u).hostname != "127.0.0.1":
            raise ValueError(f"peer URLs must be on 127.0.0.1, got {u!r}")


# -- the bench side (our interpreter) --------------------------------------------------------------

def _json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def peer_result(peer: str, python: str, ws_base: str, rest_base: str, n: int, timeout_s: float) -> dict:
    """One peer run: its JSON line, or {"error": ...} ("not installed" when `python` lacks it)."""
    try:
        r = subprocess.run([python, "-m", "actors.bench.peers", peer, ws_base, rest_base, str(n)], cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout_s,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    except OSError as e:
        return {"error": f"cannot run {python}: {e}"}
    if r.returncode == EXIT_NOT_INSTALLED:
        return {"error": "not installed"}
    line = _json_line(r.stdout)
    if r.returncode != 0 or line is None or "rate" not in line:
        why = (line or {}).get("error") or (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {r.returncode}: {why}"[:300]}
    return line


def bench_peers(n: int, python: str, log=print, peers: tuple[str, ...] = PEERS) -> dict:
    """Each peer (run by `python`) between two runs of the bare websockets+orjson loop (run by
    ours), one after the other on the same frames of one firehose (ours): {peer: {"rate",
    "bare_rate" (the mean of the two), "ratio", "bare_runs", "version", "layer"}} or
    {peer: {"error": "not installed" | ...}}."""
    import socket
    from ipc.bus import free_tcp_port
    port = free_tcp_port()
    ws_base, rest_base = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    loopback_only(ws_base, rest_base)
    out: dict = {}
    fire = subprocess.Popen([sys.executable, "-m", "actors.bench.firehose", str(port), str(n), "futures"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:                         # the firehose pre-encodes its frames first
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or fire.poll() is not None:
                    raise RuntimeError("firehose did not start")
                time.sleep(0.1)
        def bare_rate() -> float:
            r = subprocess.run([sys.executable, "-m", "actors.bench.receivers", "count", ws_base + BARE_PATH, str(n)],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
            line = _json_line(r.stdout)
            if r.returncode != 0 or line is None:
                raise RuntimeError(f"bare loop failed: {r.stderr.strip()[-300:]}")
            return line["rate"]

        for peer in peers:
            log(f"peer {peer}: bare loop, then {peer} ({python}), {n} frames")
            before = bare_rate()
            res = peer_result(peer, python, ws_base, rest_base, n, PEER_DEADLINE_S + 60)
            if "error" not in res and (res.get("first_id"), res.get("last_id")) != (1, n):
                res = {"error": f"trade ids {res.get('first_id')}..{res.get('last_id')}, expected 1..{n}"}
            if "error" not in res:
                # the bare loop on either side of the peer: this machine's speed drifts between runs
                runs = [before, bare_rate()]
                bare = sum(runs) / 2
                res = {"rate": res["rate"], "bare_rate": bare, "ratio": res["rate"] / bare, "bare_runs": runs,
                       "version": res.get("version"), "layer": LAYERS[peer]}
            out[peer] = res
            log(f"peer {peer}: {res}")
    finally:
        fire.terminate()
        try:
            fire.wait(10)
        except subprocess.TimeoutExpired:
            fire.kill()
            fire.wait(5)
    return out


def peer_rows(res: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(measure, value, baseline, ratio, target, result) rows for the bench table; result "info"."""
    rows = []
    for peer in PEERS:
        r = res.get(peer)
        if r is None:
            continue
        if "error" in r:
            rows.append((f"peer {peer} (trades/s)", r["error"], "-", "-", "-", "info"))
            continue
        rows.append((f"peer {peer} {r['version']} (trades/s)", f"{r['rate']:,.0f}",
                     f"bare loop {r['bare_rate']:,.0f}", f"{r['ratio']:.2f}", "-", "info"))
    return rows


def main(argv: list[str]) -> int:
    if argv[:1] == ["bench"] and len(argv) in (2, 3):
        python = argv[2] if len(argv) == 3 else os.environ.get("TDC_PEERS_PYTHON", sys.executable)
        res = bench_peers(int(argv[1]), python, lambda m: print(m, file=sys.stderr))
        print(json.dumps(res))
        for row in peer_rows(res):
            print(" | ".join(row))
        return 0
    if len(argv) == 2 and argv[0] == "version" and argv[1] in PEERS:
        v = version_of(argv[1])
        print(v or "not installed")
        return 0 if v else EXIT_NOT_INSTALLED
    if len(argv) != 4 or argv[0] not in PEERS:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 64
    peer, ws_base, rest_base, n = argv[0], argv[1], argv[2], int(argv[3])
    loopback_only(ws_base, rest_base)
    try:
        __import__(DISTRIBUTIONS[peer])
    except ImportError as e:
        print(f"{peer} not installed for {sys.executable}: {e}", file=sys.stderr)
        return EXIT_NOT_INSTALLED
    RUNNERS[peer](ws_base, rest_base, n)
    return 1                                # the runner exits itself once the n-th trade is in


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
