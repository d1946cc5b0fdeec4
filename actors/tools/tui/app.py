"""`python run.py tui`: a live terminal dashboard of the running system.

It paints its first screen from REST (GET /state, /latest/features, /latest/bars,
/latest/polymarket, /latest/edge on HTTP_HOST:HTTP_PORT), then follows the bus (ZMQ_PUB_URL):
`features.<SYMBOL>`, `edge.<SYMBOL>.<series>`, `bar.*`, `state`, `tick.poly.market.<series>`,
`tick.poly.book.<series>.<UP|DOWN>`, `tick.chainlink.price.*`, for every series (the followed ones,
POLYMARKET_WINDOWS, are shown even before their first document). Keys: q quits, 1/2/3 or tab
switch panels, v switches the bars venue.

Invariants:
- one loop, one thread owning the screen and the state: it waits on the bus socket and stdin in
  one poll (timeout ≤ 1/fps), so a key is handled within a frame and nothing blocks on the API;
- REST requests run on one daemon thread (a hung API stalls only that thread) and their answers
  are handed back through a queue: `DashState` is only ever touched by the loop;
- the API or the bus being down is shown on screen and retried forever, never a traceback;
- the terminal is restored (cbreak off, cursor on, alternate screen left) on q, SIGINT, SIGTERM and
  SIGHUP, and on any exception, since both are undone by `with` blocks around the loop.
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import termios
import threading
import time
import tty

import httpx
import orjson
import zmq

from actors.tools.tui.state import DashState
from ipc import names
from actors.tools.tui.view import PANELS, Ui, render, split_keys

BUS_DRAIN_MAX = 5000           # messages taken per loop turn before keys and paint get their turn
REST_TIMEOUT_SEC = 2.0


def bus_prefixes(symbol: str) -> tuple[str, ...]:
    """Every topic the dashboard reads; the per-series ones for every series (ipc.names spells them)."""
    per_series = tuple(t for s in names.POLY_SERIES for t in (
        names.edge_topic(symbol, s), *(names.poly_topic("book", s, tok) for tok in names.POLY_TOKENS)))
    return (names.features_topic(symbol), names.BAR_PREFIX, names.STATE_TOPIC, names.POLY_MARKET_PREFIX,
            names.CHAINLINK_TOPIC_PREFIX, *per_series)


def followed(settings) -> tuple[str, ...]:
    """The series the system follows (none while its Polymarket side is off)."""
    return tuple(settings.venues.polymarket_windows) if settings.polymarket_on else ()


class RestFetcher(threading.Thread):
    """Fetches the paths it is given, one at a time; answers go to `out` as
    (path, status or None, doc, error, done_ns)."""

    def __init__(self, base_url: str, timeout_s: float = REST_TIMEOUT_SEC):
        super().__init__(name="tui-rest", daemon=True)
        self.base_url, self.timeout_s = base_url, timeout_s
        self.wanted: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.out: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._stop = threading.Event()

    def want(self, paths: list[str]) -> None:
        for p in paths:
            self.wanted.put(p)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    path = self.wanted.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    r = client.get(path)
                    try:
                        doc = orjson.loads(r.content)
                    except orjson.JSONDecodeError:
                        doc = None
                    self.out.put((path, r.status_code, doc, None, time.time_ns()))
                except httpx.HTTPError as exc:
                    msg = str(exc).split("\n")[0][:80] or type(exc).__name__
                    self.out.put((path, None, None, f"{type(exc).__name__}: {msg}", time.time_ns()))


class Keyboard:
    """stdin in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still signals) while open.
    Not a terminal: no keys (the dashboard then stops on a signal only)."""

    def __init__(self, stream=None):
        stream = stream or sys.stdin
        try:
            self.fd = stream.fileno() if stream.isatty() else None
        except (AttributeError, ValueError, OSError):
            self.fd = None
        self._saved = None

    def __enter__(self) -> "Keyboard":
        if self.fd is not None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> list[str]:
        try:
            data = os.read(self.fd, 256)
        except (BlockingIOError, InterruptedError):
            return []
        if not data:                   # the terminal went away: behave as if q was pressed
            return ["q"]
        return split_keys(data.decode("utf-8", errors="ignore"))


class Dashboard:
    def __init__(self, settings, ui: Ui | None = None, fps: float = 4.0):
        self.s = settings
        self.ui = ui or Ui()
        self.period_ns = int(1e9 / max(0.5, fps))
        self.state = DashState(symbol=settings.general.symbol, required=tuple(settings.ipc.health_required),
                               followed=followed(settings))
        self.stop_reason: str | None = None
        self.render_errors = 0
        self._repaint = True

    def on_signal(self, signum, _frame) -> None:
        if signum == signal.SIGWINCH:
            self._repaint = True
        else:
            self.stop_reason = signal.Signals(signum).name

    def apply_rest_answers(self, fetcher: RestFetcher) -> None:
        while True:
            try:
                path, status, doc, error, done_ns = fetcher.out.get_nowait()
            except queue.Empty:
                return
            self.state.apply_rest(path, status, doc, error, done_ns)

    def drain_bus(self, sub_sock: zmq.Socket, track) -> None:
        for _ in range(BUS_DRAIN_MAX):
            try:
                t, payload = sub_sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = time.time_ns()
            topic = t.decode(errors="replace")
            try:
                msg = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self.state.apply_bus(topic, None, 0, False, now)   # counted as a bad payload
                continue
            ev = track(topic, msg) if isinstance(msg, dict) else None
            self.state.apply_bus(topic, msg, ev.lost if ev else 0, ev.restarted if ev else False, now)

    def screen(self, now_ns: int, height: int):
        """The current screen; a rendering fault shows as a message on it (and in the events)
        instead of ending the dashboard with a traceback."""
        try:
            return render(self.state, self.ui, now_ns, height)
        except Exception as exc:     # noqa: BLE001 - a dashboard outlives one bad frame
            from rich.text import Text
            self.render_errors += 1
            msg = f"render error #{self.render_errors}: {type(exc).__name__}: {exc}"[:200]
            self.state.event(now_ns, msg, "bad")
            return Text(f"{msg}\n(press q to quit; the next frame is tried in 1/fps s)", style="bold red")

    def run(self) -> int:
        from rich.console import Console
        from rich.live import Live

        from ipc.bus import Subscriber

        sub = Subscriber(self.s.ipc.zmq_pub_url, bus_prefixes(self.s.general.symbol), ctx=zmq.Context())
        fetcher = RestFetcher(f"http://{self.s.general.http_host}:{self.s.general.http_port}")
        fetcher.start()
        console = Console()
        handlers = {sig: signal.signal(sig, self.on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH)}
        try:
            with Keyboard() as kb, Live(console=console, screen=True, auto_refresh=False,
                                         redirect_stdout=False, redirect_stderr=False) as live:
                poller = zmq.Poller()
                poller.register(sub.sock, zmq.POLLIN)
                if kb.fd is not None:
                    poller.register(kb.fd, zmq.POLLIN)
                next_paint = 0
                while self.stop_reason is None and not self.ui.quit:
                    now = time.time_ns()
                    fetcher.want(self.state.rest_due(now))
                    wait_ms = max(0, min(100, (next_paint - now) // 1_000_000))
                    ready = dict(poller.poll(wait_ms))
                    if sub.sock in ready:
                        self.drain_bus(sub.sock, sub.observe)
                    if kb.fd is not None and kb.fd in ready:
                        for key in kb.read():
                            self._repaint |= self.ui.on_key(key)
                    if self.ui.quit or self.stop_reason:
                        break
                    self.apply_rest_answers(fetcher)
                    now = time.time_ns()
                    if now >= next_paint or self._repaint:
                        live.update(self.screen(now, console.size.height), refresh=True)
                        next_paint, self._repaint = now + self.period_ns, False
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            fetcher.stop()
            sub.close()
            sub.ctx.term()
        return 0


def once(settings, ui: Ui, width: int | None, height: int | None) -> int:
    """Fetch every REST snapshot once and print one screen (no bus, no keys): for scripts."""
    from rich.console import Console
    state = DashState(symbol=settings.general.symbol, required=tuple(settings.ipc.health_required),
                      followed=followed(settings))
    base = f"http://{settings.general.http_host}:{settings.general.http_port}"
    with httpx.Client(base_url=base, timeout=REST_TIMEOUT_SEC) as client:
        for path in state.rest_due(time.time_ns()):
            try:
                r = client.get(path)
                state.apply_rest(path, r.status_code, r.json(), None, time.time_ns())
            except (httpx.HTTPError, ValueError) as exc:
                state.apply_rest(path, None, None, f"{type(exc).__name__}: {exc}", time.time_ns())
    console = Console(width=width, height=height)
    if height is None and not console.is_terminal:
        console.height = 40            # a pipe has no height: the size the layout is made for
    console.print(render(state, ui, time.time_ns(), console.size.height))
    return 0 if not state.api_down_since_ns else 1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py tui", description=__doc__.split("\n")[0])
    ap.add_argument("--panel", choices=PANELS, default="overview", help="panel shown first")
    ap.add_argument("--venue", choices=names.BINANCE_VENUES, default=names.FUTURES, help="bars panel venue")
    ap.add_argument("--fps", type=float, default=4.0, help="screen refreshes per second")
    ap.add_argument("--once", action="store_true",
                    help="print one screen from the REST snapshots and exit (1 if the API is unreachable)")
    ap.add_argument("--width", type=int, help="with --once: the screen width")
    ap.add_argument("--height", type=int, help="with --once: the screen height (40 when not a terminal)")
    a = ap.parse_args(argv)
    from config.settings import SettingsError, load_settings
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    ui = Ui(panel=a.panel, venue=a.venue)
    if a.once:
        return once(settings, ui, a.width, a.height)
    if not sys.stdout.isatty():
        sys.stderr.write("run.py tui needs a terminal (or use --once)\n")
        return 2
    return Dashboard(settings, ui, a.fps).run()
