"""The headless-browser harness (tests/support/browser.py) on a tiny page served here on 127.0.0.1
under a strict Content-Security-Policy: console errors and warnings are captured, a CSP violation
reaches the console as an error, canvases are measured, the screenshot is a real PNG of the page,
and nothing of the browser is left behind."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pytest

from tests.support import browser as br
from tests.support.wait import wait_for

CSP = "default-src 'none'; script-src 'self'; style-src 'self'"
BG = (12, 34, 56)
PAGES = {
    "/": ("text/html", (
        "<!doctype html><html><head><title>harness</title><link rel='stylesheet' href='/app.css'></head>"
        "<body data-status='loading'><canvas id='ink' width='100' height='50'></canvas>"
        "<canvas id='blank' width='30' height='30'></canvas>"
        "<script>window.inlineRan = true;</script>"       # refused by the CSP: a console error
        "<script src='/app.js'></script></body></html>")),
    "/app.css": ("text/css", f"html, body {{ margin: 0; background: rgb{BG}; }} canvas {{ display: block; }}"),
    "/app.js": ("text/javascript", (
        "const g = document.getElementById('ink').getContext('2d');"
        "g.fillStyle = '#ff0000'; g.fillRect(10, 5, 20, 10);"    # 200 pixels of ink
        "console.error('harness-marker-error'); console.warn('harness-marker-warn');"
        "console.log('harness-marker-log');"
        "document.body.dataset.status = 'live';")),
}


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):
        kind, body = PAGES.get(self.path, ("text/plain", None))
        if body is None:
            self.send_response(204 if self.path == "/favicon.ico" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


def test_console_csp_canvas_screenshot_and_cleanup(page_url, tmp_path):
    with br.browser(window=(800, 600)) as b:
        driver_pid, profile = b.driver.service.process.pid, b.profile
        assert profile.is_dir() and driver_pid in br.session_alive(driver_pid)
        b.open(page_url)
        assert b.wait_js("document.body.dataset.status === 'live'", 10, "the page's script to run") is True
        assert b.js("return window.inlineRan === undefined") is True      # the CSP held
        problems = wait_for(lambda: p if len(p := b.console_problems()) >= 3 else None, 10,
                            "the CSP violation, the error and the warning in the console")
        assert len(problems) == 3, problems
        csp = [p for p in problems if "Content Security Policy" in p]
        assert len(csp) == 1 and csp[0].startswith("SEVERE ") and "script-src 'self'" in csp[0], problems
        assert [p.startswith("SEVERE ") for p in problems if "harness-marker-error" in p] == [True], problems
        assert [p.startswith("WARNING ") for p in problems if "harness-marker-warn" in p] == [True], problems
        assert any("harness-marker-log" in e["message"] and e["level"] == "INFO" for e in b.console())
        assert b.console_problems() == problems                # kept, not handed out once
        assert b.canvas_ink("#ink") == [200] and b.canvas_ink("#blank") == [0]
        assert b.canvas_ink("canvas") == [200, 0]
        shot = b.screenshot("harness.png", tmp_path)
        w, h, dpr = b.js("return [window.innerWidth, window.innerHeight, window.devicePixelRatio]")
        with pytest.raises(AssertionError, match="never-true"):
            b.wait_js("false", 0.2, "never-true")
    data = shot.read_bytes()
    # the viewport: the window's width, its height less the headless frame's bar
    assert br.png_size(data) == (round(w * dpr), round(h * dpr)) and w == 800 and 300 < h <= 600
    assert br.png_pixel(data, 200, 150)[:3] == BG                 # the page's background, drawn
    assert br.png_pixel(data, 20, 10)[:3] == (255, 0, 0)          # the canvas's red rectangle
    assert br.session_alive(driver_pid) == []                     # chromedriver and chromium gone
    assert not profile.exists()                                   # the fresh profile removed


def test_png_pixel_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="not a PNG"):
        br.png_size(b"GIF89a" + bytes(40))


def test_require_skips_or_fails_by_environment(monkeypatch):
    monkeypatch.setattr(br, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("TDC_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        br.require()
    monkeypatch.setenv("TDC_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="TDC_REQUIRE_BROWSER=1 but no browser"):
        br.require()
