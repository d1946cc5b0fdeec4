"""The terminal dashboard (`python run.py tui`) in a real pseudo-terminal against the real system.

The dashboard runs in a 120x40 pty; what it writes goes through pyte (a VT100 emulator) and the
tests assert on the emulated screen, as a user would read it. Every wait is on a screen or process
condition with a deadline.

- with the API down it says so and keeps retrying (no traceback); SIGTERM or SIGINT end it with
  the terminal restored;
- started before the system, it recovers on its own once the API comes up, shows the BTC prices
  as GET /latest/features gives them, the quality mode of GET /state, switches panels on keys
  and quits on `q` with exit code 0, leaving the terminal as it found it.
"""
from __future__ import annotations

import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import fcntl
import time

import pyte
import pytest

from tests.support.ports import free_port
from tests.support.system import ROOT
from tests.support.wait import wait_for

COLS, ROWS = 120, 40
NUM = r"-?[\d,]+\.\d+"


class PtyApp:
    """A process on a fixed-size pseudo-terminal, its output fed to a VT emulator."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.tty_attrs_before = termios.tcgetattr(self.slave)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, start_new_session=True, close_fds=True)

    def pump(self, timeout: float) -> None:
        """Feed whatever the program writes within `timeout` seconds to the emulator."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.master], [], [], left)
            if not r:
                return
            try:
                data = os.read(self.master, 65536)
            except OSError:                  # EIO: every slave fd is closed
                return
            self.raw += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_screen(self, cond, timeout: float, what: str):
        """Pump until `cond(screen text)` is truthy; its value is returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            v = cond(self.text())
            if v:
                return v
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; exit code "
                             f"{self.proc.poll()}; screen:\n{self.text()}")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.05)
        if self.proc.poll() is None:
            raise AssertionError(f"still running {timeout}s later; screen:\n{self.text()}")
        self.pump(0.2)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def tui(env: dict[str, str], *args: str) -> PtyApp:
    return PtyApp([sys.executable, "run.py", "tui", *args], env)


def assert_terminal_restored(app: PtyApp) -> None:
    assert termios.tcgetattr(app.slave) == app.tty_attrs_before, "tty modes not restored"
    out = bytes(app.raw)
    assert out.rfind(b"\x1b[?1049l") > out.rfind(b"\x1b[?1049h") >= 0, "alternate screen not left"
    assert out.rfind(b"\x1b[?25h") > out.rfind(b"\x1b[?25l") >= 0, "cursor not shown again"
    assert b"Traceback" not in out, out[-2000:].decode(errors="replace")


def screen_value(text: str, label: str) -> float | None:
    """The number right after `label` on the screen (thousands separators dropped)."""
    m = re.search(re.escape(label) + r"\s+(" + NUM + ")", text)
    return float(m.group(1).replace(",", "")) if m else None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_tui_api_down_then_signal(sig):
    env = dict(os.environ, HTTP_PORT=str(free_port()), ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}")
    app = tui(env)
    try:
        app.wait_screen(lambda t: "TDC dashboard" in t and "API unreachable" in t, 15, "API unreachable")
        # it keeps retrying: the REST error counter on the health panel goes up
        app.send("3")
        app.wait_screen(lambda t: (m := re.search(r"/state\s+0\s+(\d+)", t)) and int(m.group(1)) >= 3, 15,
                        "/state retried at least 3 times")
        assert "Traceback" not in app.text()
        app.proc.send_signal(sig)
        assert app.wait_exit(5) == 0
        assert_terminal_restored(app)
    finally:
        app.close()


def test_tui_follows_the_system(system):
    # ports chosen first, so the dashboard can start before the system exists
    port, pub = str(free_port()), f"tcp://127.0.0.1:{free_port()}"
    app = tui(dict(os.environ, HTTP_PORT=port, ZMQ_PUB_URL=pub))
    try:
        app.wait_screen(lambda t: "TDC dashboard" in t and "API unreachable" in t, 15,
                        "the title and API unreachable before the system starts")
        system.start(HTTP_PORT=port, ZMQ_PUB_URL=pub, SIM_TRADE_RATE="60", VOL_WARMUP_SAMPLES="3")
        wait_for(lambda: system.health()[0] == 200, 60, "/health 200 after start\n" + system.logs())

        # --- overview: prices from the bus, matching the REST snapshot ----------------------
        def prices(t):
            v = {k: screen_value(t, k) for k in ("futures last", "spot last", "mark", "chainlink")}
            return v if all(x is not None for x in v.values()) and "API ok" in t else None

        app.wait_screen(prices, 30, "futures/spot/mark/chainlink prices and API ok")
        # the screen's futures last price lies within what the REST snapshot showed around it
        def price_matches(t):
            rest = []
            for _ in range(3):
                rest.append(system.get("/latest/features").json()["venues"]["futures"]["last_price"])
                app.pump(0.15)
            shown = screen_value(app.text(), "futures last")
            rest.append(system.get("/latest/features").json()["venues"]["futures"]["last_price"])
            return shown if min(rest) - 0.05 <= shown <= max(rest) + 0.05 else None

        shown = app.wait_screen(price_matches, 20, "the futures last price equal to the REST snapshot's")
        assert re.search(r"futures last\s+\d{1,3}(,\d{3})*\.\d{2}\b", app.text()), "price format"
        assert 1_000 < shown < 1_000_000

        # per series: the market's bid and ask and the fair probability are numbers in [0, 1], the
        # edge in probability points and the return on cost signed
        prob = r"\s+(0\.\d{3}|1\.000)"
        app.wait_screen(lambda t: re.search(r"UP" + prob * 3 + r"\s+([+-]\d+\.\d\d)\s+([+-]\d+\.\d%)", t), 30,
                        "the UP row: bid, ask, fair, edge in points, return on cost")
        assert re.search(r"15m\s+\d\d:\d\d–\d\d:\d\d left ", app.text()), "the 15m window line"
        assert re.search(r"decision (BUY_UP|BUY_DOWN|NONE)", app.text())

        # --- the quality mode is the one GET /state gives at about that time -----------------
        def same_quality(t):
            before = system.get("/state").json()["quality"]["mode"]
            app.pump(0.3)
            m = re.search(r"quality (OK|DEGRADED|BAD)", app.text())
            after = system.get("/state").json()["quality"]["mode"]
            return m and before == after == m.group(1)

        app.wait_screen(same_quality, 20, "the quality mode of GET /state")

        # --- panels ---------------------------------------------------------------------------
        app.send("2")
        app.wait_screen(lambda t: "5s bars · futures" in t and "1m bars · futures" in t
                        and "Prices" not in t, 5, "the bars panel")
        app.wait_screen(lambda t: re.search(r"\d\d:\d\d:\d\d\s+" + NUM + r"(\s+" + NUM + "){3}.*closed", t),
                        30, "a closed bar with OHLC")
        app.send("v")
        app.wait_screen(lambda t: "5s bars · spot" in t, 5, "the spot bars")
        app.send("3")
        app.wait_screen(lambda t: "Bus topics" in t and re.search(r"feed_futures\s+up", t)
                        and "features.BTCUSDT" in t, 10, "the health panel with the bus topics")
        app.send("\t")
        app.wait_screen(lambda t: "Prices" in t and "Bus topics" not in t, 5, "tab back to the overview")

        # --- q: clean exit, terminal restored ---------------------------------------------------
        app.send("q")
        assert app.wait_exit(5) == 0
        assert_terminal_restored(app)
    finally:
        app.close()
