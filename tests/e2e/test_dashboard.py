"""End to end: the live dashboard in a real headless Chromium (tests/support/browser.py) against the
whole system on the sim, one system and one page for the module.

Everything is read through the page's DOM hooks (the dashboard's contract with this test): the
page goes live, every chart has points and is redrawn as data arrives, its canvas has ink, the
time left counts down, the health tables list every required actor alive and the data ages, the
window panel shows the window /latest/edge reports, /history/window answers; the browser console
stays free of errors and warnings (a CSP violation is one), and the screenshot is saved as
dashboard.png in the artifact directory ($TDC_ARTIFACT_DIR, default <repo>/artifacts/).
"""
from __future__ import annotations

import re

import httpx
import pytest

from ipc.names import REQUIRED_ACTORS
from tests.support import browser as br
from tests.support.system import running_system
from tests.support.wait import wait_for

CHARTS = ("price", "prob", "edge", "candles", "cvd", "basis", "liq")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                    "cross-origin-opener-policy": "same-origin", "cross-origin-resource-policy": "same-origin"}
LIVE_SEC = 60          # history loaded and the stream open, after /health 200
UPDATE_SEC = 40        # every chart redrawn at least once more (a 15 s bar closes well within it)
MIN_INK_PX = 200       # a chart's canvas with axes, grid and a series has thousands of pixels of ink

# every chart's hooks at once: {name: {points, updates, last_ts_ns}} (null for a missing chart)
CHARTS_JS = """
const out = {};
for (const name of arguments[0]) {
  const el = document.querySelector(`.chart[data-chart="${name}"]`);
  out[name] = el && {points: Number(el.dataset.points), updates: Number(el.dataset.updates),
                     values: Number(el.dataset.values),
                     last_ts_ns: el.dataset.lastTsNs ? BigInt(el.dataset.lastTsNs).toString() : null};
}
return out;
"""


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """The running, healthy system (stopped with the clean-stop checks after the last test)."""
    br.require()
    with running_system(tmp_path_factory.mktemp("dash"), SIM_TRADE_RATE="60", VOL_WARMUP_SAMPLES="3") as sys_:
        wait_for(lambda: sys_.health()[0] == 200, 60, "/health 200 after start\n" + sys_.logs())
        yield sys_


@pytest.fixture(scope="module")
def dash(system):
    """(system, browser) with /dashboard open and the page live."""
    with br.browser() as b:
        try:
            b.open(system.http + "/dashboard")
            b.wait_js("document.body && document.body.dataset.status === 'live'", LIVE_SEC,
                      "the dashboard to go live (history loaded, stream open)")
            yield system, b
        finally:
            b.screenshot("dashboard.png")       # also when a check failed: what the page showed


def charts(b: br.Browser) -> dict:
    return b.js(CHARTS_JS, list(CHARTS))


def seconds_of(text: str) -> float:
    """#time-left's text as seconds: "h:mm:ss", "m:ss" or "N s" / "Ns"."""
    t = text.strip()
    if m := re.fullmatch(r"(?:(\d+):)?(\d+):(\d\d)", t):
        return int(m[1] or 0) * 3600 + int(m[2]) * 60 + int(m[3])
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*s", t):
        return float(m[1])
    raise ValueError(f"#time-left {text!r} is not a time left")


def selected_series(b: br.Browser) -> str:
    s = b.js("return document.getElementById('window-panel').dataset.series")
    assert s, "#window-panel has no data-series"
    active = b.js("return [...document.querySelectorAll('#series-tabs button.active')].map(e => e.dataset.series)")
    assert active == [s], f"the active tab {active} is not the window panel's series {s}"
    return s


def test_dashboard_is_served_with_the_security_headers(system):
    sys_ = system
    r = httpx.get(sys_.http + "/dashboard", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert {k: r.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
    root = httpx.get(sys_.http + "/", timeout=5)
    assert root.status_code == 308 and root.headers["location"].endswith("/dashboard")


def test_every_chart_has_points(dash):
    _, b = dash
    def plotted():
        c = charts(b)
        # points on the time axis, and values of the chart's main series (a field misread would
        # leave only nulls: an empty line on drawn axes)
        return c if all(x and x["points"] > 0 and x["values"] > 0 for x in c.values()) else None

    got = wait_for(plotted, UPDATE_SEC, "every chart to have points and values (" + ", ".join(CHARTS) + ")")
    assert all(0 < got[n]["values"] <= 2 * got[n]["points"] for n in CHARTS), got


def test_charts_and_last_update_advance(dash):
    _, b = dash
    first = charts(b)
    assert all(first[n] is not None for n in CHARTS), first
    last_ts0 = int(b.js("return document.getElementById('last-update').dataset.tsNs"))

    def grown():
        now = charts(b)
        lag = [n for n in CHARTS if not (now[n]["updates"] > first[n]["updates"]
                                         and int(now[n]["last_ts_ns"] or 0) > int(first[n]["last_ts_ns"] or 0))]
        return now if not lag else None

    wait_for(grown, UPDATE_SEC, f"every chart's data-updates and data-last-ts-ns to grow from {first}")
    wait_for(lambda: int(b.js("return document.getElementById('last-update').dataset.tsNs")) > last_ts0, 5,
             "#last-update's data-ts-ns to advance")


def test_canvases_are_not_blank(dash):
    _, b = dash
    ink = {n: b.canvas_ink(f'.chart[data-chart="{n}"] canvas') for n in CHARTS}
    assert all(ink[n] and max(ink[n]) >= MIN_INK_PX for n in CHARTS), ink


def test_time_left_counts_down(dash):
    _, b = dash

    def reading():
        return (b.js("return document.getElementById('window-panel').dataset.windowStartNs"),
                seconds_of(b.js("return document.getElementById('time-left').textContent")))

    w0, t0 = reading()
    wait_for(lambda: (r := reading())[0] != w0 or r[1] < t0, 5, f"#time-left to count down from {t0} s")


def test_health_tables(dash):
    sys_, b = dash
    required = list(REQUIRED_ACTORS)
    b.wait_js("arguments[0].every(a => document.querySelector(`#actors tr[data-actor=\"${a}\"][data-alive=\"true\"]`))",
              10, f"#actors rows alive for {required}", required)
    # one row per stream of every feed's health; a stream that never delivered (liquidations, on a
    # quiet sim) has no age, the others a number. The page's view and /health's are up to a second
    # apart, so they are compared until they agree
    streams = {f"{a}.{k}": st for a, info in sys_.health()[1]["actors"].items()
               for k, st in (info.get("streams") or {}).items()}
    b.wait_js("document.querySelectorAll('#ages tr[data-stream]').length > 0", 5, "#ages rows")

    def agree():
        now = {f"{a}.{k}": st for a, info in sys_.health()[1]["actors"].items()
               for k, st in (info.get("streams") or {}).items()}
        ages = dict(b.js("return [...document.querySelectorAll('#ages tr[data-stream]')]"
                         ".map(e => [e.dataset.stream, e.dataset.ageMs])"))
        if set(ages) != set(now):
            return None
        ok = all((age == "") == (now[k]["age_ms"] is None) or (age == "") == (streams[k]["age_ms"] is None)
                 for k, age in ages.items())
        return ages if ok else None

    ages = wait_for(agree, 10, "#ages rows: one per stream of /health, an age where /health has one")
    assert set(ages) == set(streams)
    for stream, age in ages.items():
        assert re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", stream), stream
        assert age == "" or float(age) >= 0, (stream, age)
    mode = b.js("return document.getElementById('quality-mode').textContent").strip()
    assert mode in ("OK", "DEGRADED", "BAD"), mode


def test_window_panel_is_the_latest_window(dash):
    sys_, b = dash
    s = selected_series(b)

    def same():
        page = b.js("return document.getElementById('window-panel').dataset.windowStartNs")
        slug = b.js("return document.getElementById('window-slug').textContent").strip()
        ptb = b.js("return document.getElementById('price-to-beat').textContent").strip()
        api = sys_.get(f"/latest/edge?series={s}").json()
        want = api["price_to_beat"]["price"]
        same_ptb = want is not None and re.fullmatch(r"\$[\d,]+\.\d\d", ptb) \
            and float(ptb[1:].replace(",", "")) == round(want, 2)
        return page is not None and int(page) == api["window_start_ns"] and slug == api["window"] and same_ptb

    wait_for(same, 10, f"#window-panel's data-window-start-ns, #window-slug and #price-to-beat to be "
                       f"/latest/edge?series={s}'s")


def test_history_window_answers(system):
    sys_ = system
    s = next(iter(sys_.get("/latest/edge").json()["series"]))

    def answered():                     # (compared again if a window rolled over in between)
        r = sys_.get(f"/history/window?series={s}")
        assert r.status_code == 200, r.text
        doc = r.json()
        return doc if doc["window_start_ns"] == sys_.get(f"/latest/edge?series={s}").json()["window_start_ns"] else None

    doc = wait_for(answered, 10, f"/history/window?series={s} of /latest/edge's window")
    assert doc["series"] == s and doc["n"] > 0 and doc["events_dropped"] == 0
    assert 0 < len(doc["columns"]["ts_ns"]) <= 2000
    assert doc["columns"]["settlement"] == doc["columns"]["chainlink"]     # a Chainlink-settled series


def test_no_console_errors_or_warnings(dash):
    _, b = dash
    assert b.console_problems() == []


def test_screenshot_saved(dash):
    _, b = dash
    path = b.screenshot("dashboard.png")
    w, h = b.js("return [Math.round(innerWidth * devicePixelRatio), Math.round(innerHeight * devicePixelRatio)]")
    assert br.png_size(path.read_bytes()) == (w, h) and w == br.WINDOW[0]
