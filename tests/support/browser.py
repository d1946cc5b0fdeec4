"""A real headless Chromium for the tests: Debian's /usr/bin/chromium driven by selenium through
Debian's /usr/bin/chromedriver, never anything fetched at run time.

Invariants:
- offline: the driver path is given to selenium's Service, so Selenium Manager is never run, and
  SE_OFFLINE=true is set for the case it would be (selenium's own "no network" switch);
- isolated: a fresh --user-data-dir under a temporary directory per browser, removed at the end;
- nothing left behind: chromedriver starts in its own session and every process of that session
  (chromedriver, chromium and its helpers) is killed at the end, even when the test failed or
  `quit` did not answer;
- the browser console is kept whole: `console()` returns every entry since the start (Chrome's
  log endpoint hands each entry out once; this module accumulates them);
- skip only where there can be no browser: without /usr/bin/chromium, /usr/bin/chromedriver or
  selenium the caller is skipped with the reason, unless TDC_REQUIRE_BROWSER=1 (.ci/run sets it,
  having installed both), where that is a failure.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tests.support import procs

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1600, 1200)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
# Chrome's console levels (goog:loggingPrefs): console.error and page errors (CSP violations,
# uncaught exceptions, failed loads) are SEVERE, console.warn is WARNING
BAD_LEVELS = ("SEVERE", "WARNING")

os.environ.setdefault("SE_OFFLINE", "true")


def missing() -> str | None:
    """Why no browser can run here (None: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


def require() -> None:
    """Skip the calling test where no browser can run, fail instead under TDC_REQUIRE_BROWSER=1."""
    import pytest
    why = missing()
    if why is None:
        return
    if os.environ.get("TDC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TDC_REQUIRE_BROWSER=1 but no browser: {why}")
    pytest.skip(f"no headless browser: {why}")


def artifact_dir() -> Path:
    """Where screenshots go: $TDC_ARTIFACT_DIR, else <repo>/artifacts/ (git-ignored)."""
    d = Path(os.environ.get("TDC_ARTIFACT_DIR") or ROOT / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; ValueError if `data` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def png_pixel(data: bytes, x: int, y: int) -> tuple[int, ...]:
    """The (R, G, B[, A]) of pixel (x, y) of an 8-bit, non-interlaced RGB/RGBA PNG (what Chrome's
    screenshots are), decoded here (zlib and the five row filters) so that no imaging library is
    needed; rows below `y` are not decoded."""
    w, h = png_size(data)
    depth, ctype, interlace = data[24], data[25], data[28]
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    idat, pos = bytearray(), 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw, stride = zlib.decompress(bytes(idat)), w * bpp
    prev = bytearray(stride)
    for row in range(y + 1):
        f, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:(x + 1) * bpp])


# count, per canvas matched by a CSS selector, the pixels that differ from its top-left pixel
# (the background); -1 for a canvas that cannot be read (tainted or 0-sized)
_CANVAS_INK_JS = """
const out = [];
for (const c of document.querySelectorAll(arguments[0])) {
  try {
    if (!c.width || !c.height) { out.push(-1); continue; }
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i] !== d[0] || d[i+1] !== d[1] || d[i+2] !== d[2] || d[i+3] !== d[3]) n++;
    out.push(n);
  } catch (e) { out.push(-1); }
}
return out;
"""


@dataclass
class Browser:
    driver: Any
    profile: Path
    log: list[dict] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def console(self) -> list[dict]:
        """Every console entry since the browser started: {"level", "message", "source", "timestamp"}."""
        self.log.extend(self.driver.get_log("browser"))
        return list(self.log)

    def console_problems(self, levels: tuple[str, ...] = BAD_LEVELS) -> list[str]:
        """The console's errors and warnings, as "LEVEL message" lines."""
        return [f"{e['level']} {e['message']}" for e in self.console() if e.get("level") in levels]

    def js(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body: `return ...`) in the page."""
        return self.driver.execute_script(script, *args)

    def wait_js(self, expr: str, timeout: float, what: str, *args: Any) -> Any:
        """Wait until the JavaScript expression `expr` is truthy; its value. On the deadline an
        AssertionError naming `what`, with the last value and the console's problems."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait
        last: list[Any] = [None]

        def cond(driver):
            try:
                last[0] = driver.execute_script(f"return ({expr});", *args)
            except WebDriverException as e:      # the page is (re)loading: not yet
                last[0] = f"<{type(e).__name__}: {e.msg}>"
                return False
            return last[0]

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(cond)
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({expr}); last value "
                                 f"{last[0]!r}; console: {self.console_problems()}") from None

    def canvas_ink(self, selector: str) -> list[int]:
        """Non-background pixels of each canvas matched by `selector` (-1: unreadable)."""
        return self.js(_CANVAS_INK_JS, selector)

    def screenshot(self, name: str, directory: Path | None = None) -> Path:
        """The viewport as PNG `name` in `directory` (default: artifact_dir())."""
        path = (directory or artifact_dir()) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.driver.get_screenshot_as_png())
        return path


def session_alive(pid: int) -> list[int]:
    """Live (non-zombie) processes of session `pid`."""
    return procs.session_pids(pid)


@contextlib.contextmanager
def browser(window: tuple[int, int] = WINDOW, page_load_timeout: float = 30) -> Iterator[Browser]:
    """A headless Chromium (selenium Chrome driver), closed and cleaned up at the end; calls
    `require()` first (skip, or fail under TDC_REQUIRE_BROWSER=1, where there is none)."""
    require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = Path(tempfile.mkdtemp(prefix="tdc-chromium-"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={window[0]},{window[1]}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(profile.with_suffix(".driver.log")),
                      popen_kw={"start_new_session": True})
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(page_load_timeout)
        driver.set_script_timeout(page_load_timeout)
        yield Browser(driver, profile)
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        proc = getattr(service, "process", None)
        if proc is not None:
            procs.kill_session(proc.pid)
            with contextlib.suppress(Exception):
                proc.wait(5)
            deadline = time.monotonic() + 5
            while session_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        shutil.rmtree(profile, ignore_errors=True)
        with contextlib.suppress(OSError):
            profile.with_suffix(".driver.log").unlink()
