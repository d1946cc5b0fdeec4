"""The terminal dashboard's screens: `DashState` → a rich renderable, and the keys. Pure: no I/O.

Invariants:
- `render(state, ui, now_ns, height)` reads the state only; the same inputs give the same screen;
- a missing value is "—" followed by its reason (dim) when there is one: never a number
  the state does not hold;
- prices are shown with two decimals and thousands separators, rates in bps with a sign,
  probabilities with three decimals, edges in probability points with a sign and two decimals,
  returns on cost in % with a sign, ages in ms / s / min;
- the Polymarket panel has one block per followed series (window, UP, DOWN, decision with the
  input ages), one line while a series has nothing yet; its columns line up across series;
- every screen fits `height` rows: bar tables are cut to the rows that fit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ipc import names

from actors.tools.tui.state import SEC_NS, VENUES, DashState, Val

TITLE = "TDC dashboard"
PANELS = ("overview", "bars", "health")
DASH = "—"
KEYS_HELP = "q quit · 1 overview · 2 bars · 3 health · tab next panel · v venue (bars)"
LEVEL_STYLE = {"info": "", "ok": "green", "warn": "yellow", "bad": "bold red"}
POLY_ROWS = 12                 # the Polymarket panel's least height: two series, header, border
MODE_STYLE = {"OK": "bold green", "DEGRADED": "bold yellow", "BAD": "bold red"}


@dataclass
class Ui:
    """What the keys change: the panel, the bars panel's venue, and whether to quit."""
    panel: str = "overview"
    venue: str = names.FUTURES
    quit: bool = False

    def on_key(self, key: str) -> bool:
        """Apply one key; True when the screen should be repainted now."""
        if key in ("q", "Q"):
            self.quit = True
        elif key in ("1", "2", "3"):
            self.panel = PANELS[int(key) - 1]
        elif key == "\t":
            self.panel = PANELS[(PANELS.index(self.panel) + 1) % len(PANELS)]
        elif key == "\x1b[Z":                      # shift-tab
            self.panel = PANELS[(PANELS.index(self.panel) - 1) % len(PANELS)]
        elif key in ("v", "V"):
            self.venue = VENUES[(VENUES.index(self.venue) + 1) % len(VENUES)]
        else:
            return False
        return True


def split_keys(data: str) -> list[str]:
    """Keys from a terminal read: escape sequences (CSI …) stay whole, other characters are one key each."""
    keys, i = [], 0
    while i < len(data):
        if data[i] == "\x1b" and i + 1 < len(data) and data[i + 1] == "[":
            j = i + 2
            while j < len(data) and not ("@" <= data[j] <= "~"):
                j += 1
            keys.append(data[i:j + 1])
            i = j + 1
        else:
            keys.append(data[i])
            i += 1
    return keys


# --- formatting -----------------------------------------------------------------------------
def is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt_num(x: float, kind: str) -> str:
    if not is_num(x):                  # a payload of the wrong shape: show it, never guess
        return f"?{str(x)[:10]}"
    if kind == "price":
        return f"{x:,.2f}"
    if kind == "bps":
        return f"{x:+.2f} bps"
    if kind == "bps1":
        return f"{x:+.1f}"
    if kind == "qty":
        return f"{x:+,.3f}"
    if kind == "pct":
        return f"{x * 100:.1f} %"
    if kind == "z":
        return f"{x:+.2f}"
    if kind == "prob":
        return f"{x:.3f}"
    if kind == "pts":                  # probability points: 0.0231 -> "+2.31"
        return f"{x:+.2f}"
    if kind == "roc":                  # return on cost, a fraction: 0.123 -> "+12.3%"
        return f"{x * 100:+.1f}%"
    if kind == "sec":
        return fmt_age(x * 1e3)
    return str(x)


def fmt_age(ms: float | None) -> str:
    if ms is None:
        return DASH
    if not is_num(ms):
        return f"?{str(ms)[:10]}"
    ms = max(0.0, ms)                 # clocks of two processes: a few µs "in the future" is now
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1e3:.1f} s"
    s = int(ms / 1e3)
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt(v: Val, kind: str = "", style: str = "", reason: bool = True) -> Text:
    """A value, or "—" and its reason (the caller shows the reason elsewhere when `reason` is False)."""
    if v.value is None:
        t = Text(DASH, style="dim")
        if v.reason and reason:
            t.append(f" {v.reason}", style="dim italic")
        return t
    if is_num(v.value):
        return Text(fmt_num(v.value, kind), style=style)
    return Text(str(v.value), style=style)


def _hms(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / SEC_NS))


def _hm(start_ns: int, end_ns: int) -> str:
    """A window's span, UTC: `17:00–17:15`; with the dates when it is a day or longer."""
    form = "%H:%M" if end_ns - start_ns < 86400 * SEC_NS else "%m-%d %H:%M"
    return "–".join(time.strftime(form, time.gmtime(t / SEC_NS)) for t in (start_ns, end_ns))


def _kv_table(value_width: int = 10) -> Table:
    """label | value (right-aligned, fixed width) | note: the value's age, source or, for "—", why."""
    t = Table.grid(padding=(0, 1), expand=True)       # expand: so min widths hold against the note
    t.add_column(style="cyan", no_wrap=True, min_width=14)
    t.add_column(no_wrap=True, justify="right", min_width=value_width)
    t.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    return t


def kv_row(t: Table, label: str, v: Val, kind: str, style: str = "") -> None:
    if v.value is None:
        note = Text(v.reason or "", style="dim italic")
    else:
        note = Text(fmt_age(v.age_ms) if v.age_ms is not None else (v.note or ""), style="dim")
    t.add_row(label, fmt(v, kind, style, reason=False), note)


def guarded(title: str, build, *args):
    """`build(*args)`, or a panel saying why it cannot be shown: a payload of an unexpected shape
    blanks one panel, not the dashboard."""
    try:
        return build(*args)
    except Exception as exc:          # noqa: BLE001 - shown on screen instead of a traceback
        return Panel(Text(f"cannot show this panel: {type(exc).__name__}: {exc}", style="bold red"),
                     title=title, title_align="left", border_style="red")


# --- header and footer ----------------------------------------------------------------------
def header(state: DashState, ui: Ui, now_ns: int) -> Group:
    """Line 1: title, panel tabs, quality, API; line 2: bus liveness and loss, API detail, clock."""
    top = Text(no_wrap=True, overflow="ellipsis")
    top.append(f" {TITLE} ", style="bold white on blue")
    top.append(f" {state.symbol}  ", style="bold")
    for i, name in enumerate(PANELS, 1):
        cur = ui.panel == name
        top.append(f"[{i} {name.capitalize()}]" if cur else f" {i} {name.capitalize()} ",
                   style="bold reverse" if cur else "dim")
        top.append(" ")
    q, _ = state.quality_val()
    top.append(" quality ")
    top.append_text(fmt(q, style=MODE_STYLE.get(q.value, "")) if q.value else Text(DASH, style="dim"))
    api = state.api_status(now_ns)
    top.append("  API ")
    if api.value is not None:
        top.append("ok", style="green")
    elif state.api_down_since_ns:
        top.append("unreachable, retrying", style="bold red")
    else:
        top.append(api.reason or DASH, style="dim")
    line = Text(no_wrap=True, overflow="ellipsis")
    bus = state.bus_status(now_ns)
    recv, gaps, lost, restarts = state.bus_totals()
    line.append(" bus ")
    if bus.value is None:
        line.append(f"{DASH} {bus.reason}", style="dim")
    else:
        line.append(f"last message {fmt_age(bus.age_ms)} ago", style="green" if bus.age_ms < 3000 else "yellow")
    line.append(f" · {recv} msgs · seq gaps {gaps} (lost {lost}) · restarts {restarts}",
                style="bold yellow" if gaps or restarts else "")
    line.append(f" · {_hms(now_ns)} UTC")
    if state.api_down_since_ns:
        line.append(f" · {api.reason}", style="bold red")
    return Group(top, line)


def footer() -> Text:
    return Text(f" {KEYS_HELP}", style="dim", no_wrap=True, overflow="ellipsis")


# --- overview -------------------------------------------------------------------------------
def prices_panel(state: DashState, now_ns: int) -> Panel:
    t = _kv_table()
    for label, v in state.price_rows(now_ns):
        kv_row(t, label, v, "price", "bold")
    return Panel(t, title="Prices", title_align="left", border_style="blue")


def flow_panel(state: DashState) -> Panel:
    t = _kv_table()
    for label, v, kind in state.flow_rows():
        kv_row(t, label, v, kind)
    return Panel(t, title="Basis · CVD · VWAP · volatility", title_align="left", border_style="blue")


def quality_panel(state: DashState) -> Panel:
    q, reasons = state.quality_val()
    lines = [Text.assemble("mode ", fmt(q, style=MODE_STYLE.get(q.value, "")))]
    lines += [Text(f"• {r}", style="yellow", no_wrap=True, overflow="ellipsis") for r in reasons]
    lines += [Text(f"• alert {a.get('actor')}: {a.get('alert')}", style="bold red", no_wrap=True,
                   overflow="ellipsis") for a in state.alerts if isinstance(a, dict)]
    if q.value is not None and not reasons:
        lines.append(Text("no reasons", style="dim"))
    return Panel(Group(*lines), title="Quality", title_align="left", border_style="blue")


SIDE_COLUMNS = (("side", 4, "left"), ("bid", 5, "right"), ("ask", 5, "right"), ("fair", 5, "right"),
                ("edge pt", 7, "right"), ("RoC", 7, "right"), ("book", 6, "right"))
SOURCE_NOTE = {"venue": "venue", "estimate": "est."}


def series_lines(state: DashState, series: str, now_ns: int, header: bool) -> list:
    """One series: its window line, a row per side, and its decision with the input ages."""
    info = state.series_info(series, now_ns)
    if _empty(info):                       # followed, nothing known yet: one line saying why
        return [Text.assemble((f"{series:<4}", "bold magenta"), fmt(info["slug"]), no_wrap=True, overflow="ellipsis")]
    ptb = info["price_to_beat"]
    # the slug last: hourly and daily slugs are long, the numbers must stay on a half screen
    span = info["span"]
    top = Text.assemble((f"{series:<4}", "bold magenta"),
                        (f"{_hm(span[0], span[1])} " if span else "", "bold"), ("left ", "cyan"),
                        fmt(info["time_left_s"], "sec", reason=False),
                        ("  beat ", "cyan"), fmt(ptb, "price", "bold", reason=False))
    if ptb.value is not None:
        top.append(f" {SOURCE_NOTE.get(ptb.note, ptb.note or '?')}" + (f" {info['rule']}" if info["rule"] else ""),
                   style="dim")
    elif ptb.reason:
        top.append(f" {ptb.reason}", style="dim italic")
    top.append("  ")
    top.append_text(fmt(info["slug"], style="bold"))
    t = Table(box=box.SIMPLE_HEAD, show_header=header, show_edge=False, pad_edge=False,
              expand=True, padding=(0, 1, 0, 0))
    for name, width, justify in SIDE_COLUMNS:
        t.add_column(name, justify=justify, no_wrap=True, width=width)
    t.add_column("vetoes", no_wrap=True, overflow="ellipsis", ratio=1)
    for r in info["sides"]:
        note = ", ".join(r["vetoes"]) or next((v.reason for v in (r["edge_pts"], r["ask"]) if v.value is None
                                               and v.reason), "")
        t.add_row(Text(r["side"], style="bold"), fmt(r["bid"], "prob", reason=False),
                  fmt(r["ask"], "prob", "bold", reason=False), fmt(r["fair"], "prob", reason=False),
                  fmt(r["edge_pts"], "pts", "bold", reason=False), fmt(r["roc"], "roc", reason=False),
                  Text(fmt_age(r["book_age_ms"].value), style="dim") if r["book_age_ms"].value is not None
                  else Text(DASH, style="dim"),
                  Text(note, style="yellow" if r["vetoes"] else "dim italic"))
    dv = info["decision"]
    dec = Text.assemble(("    decision ", "cyan"),
                        fmt(dv, style="bold green" if dv.value not in (None, "NONE") else "bold", reason=False))
    if dv.value is None and dv.reason:
        dec.append(f" {dv.reason}", style="dim italic")
    for k, v in info["ages"].items():
        dec.append(f"  {k} ", style="cyan")
        dec.append(fmt_age(v.value) if v.value is not None else DASH, style="" if v.value is not None else "dim")
    if info["reason"]:
        dec.append(f"  {info['reason']}", style="dim")
    acc = info["accumulate"]
    lines = [top, t, dec]
    if acc and acc.get("action") == "SLICE":
        lines.append(Text(f"    accumulate SLICE {acc.get('side') or ''} · slices {acc.get('slices')} · "
                          f"{acc.get('usd')} USD", style="green"))
    for ln in lines:
        if isinstance(ln, Text):
            ln.no_wrap, ln.overflow = True, "ellipsis"
    return lines


def _empty(info: dict) -> bool:
    return info["slug"].value is None and info["decision"].value is None


def series_rows(state: DashState, now_ns: int) -> int:
    """The height of the Polymarket panel: 4 lines per series (window, UP, DOWN, decision), one
    for a series with nothing yet, the column header and its rule, the border."""
    return sum(1 if _empty(state.series_info(k, now_ns)) else 4 for k in state.series_keys()) + 2 + 2


def poly_panel(state: DashState, now_ns: int) -> Panel:
    keys = state.series_keys()
    lines: list = []
    header = True                  # the column header over the first series that has a table
    for series in keys:
        got = series_lines(state, series, now_ns, header=header)
        header = header and len(got) == 1
        lines += got
    if not keys:
        lines.append(fmt(Val(None, state._series_why("/latest/polymarket", "Polymarket series"))))
    return Panel(Group(*lines), title="Polymarket · per series: edge in points, return on cost",
                 title_align="left", border_style="magenta")


def feeds_panel(state: DashState, now_ns: int, wide: bool = False) -> Panel:
    title = "Feed health (per actor, from GET /state)"
    if state.actors is None:
        why = state.api_status(now_ns).reason if state.api_down_since_ns else "waiting for GET /state"
        return Panel(fmt(Val(None, why)), title=title, title_align="left", border_style="blue")
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, padding=0)
    t.add_column("actor", no_wrap=True, min_width=14)
    t.add_column("status", no_wrap=True, min_width=6)
    t.add_column("heartbeat", no_wrap=True, justify="right", min_width=9)
    t.add_column("data age", no_wrap=True, justify="right", min_width=8)
    if wide:
        for c in ("pid", "uptime", "reconnects"):
            t.add_column(c, no_wrap=True, justify="right", min_width=len(c) + 1)
    t.add_column(" stale streams / last error", no_wrap=True, overflow="ellipsis", ratio=1)
    for r in state.actor_rows(now_ns):
        st = r["status"]
        style = {"up": "green", "stale": "yellow", "stalled": "yellow", "down": "bold red"}.get(st.value, "")
        problem = ", ".join(f"{s} stale" for s in r["stale"]) or r["error"] or st.reason or ""
        da = r["data_age_ms"]
        row = [r["name"], fmt(st, style=style, reason=False), fmt_age(r["heartbeat_age_ms"].value),
               Text(fmt_age(da.value)) if da.value is not None else fmt(da)]
        if wide:
            row += [str(r["pid"] or DASH), fmt_age(r["uptime_s"] * 1e3) if r["uptime_s"] is not None else DASH,
                    DASH if r["reconnects"] is None else str(r["reconnects"])]
        row.append(Text(f" {problem}", style="yellow"))
        t.add_row(*row)
    return Panel(t, title=title, title_align="left", border_style="blue")


def events_panel(state: DashState, rows: int) -> Panel:
    lines = [Text.assemble((_hms(ts) + " ", "dim"), (text, LEVEL_STYLE.get(level, "")))
             for ts, text, level in list(state.events)[-max(1, rows):]]
    for ln in lines:
        ln.no_wrap, ln.overflow = True, "ellipsis"
    return Panel(Group(*lines) if lines else Text(f"{DASH} nothing yet", style="dim"),
                 title="Events", title_align="left", border_style="blue")


def overview(state: DashState, now_ns: int, height: int) -> Layout:
    n_flow = len(state.flow_rows())
    left = Layout(name="left", ratio=1)
    left.split_column(Layout(guarded("Prices", prices_panel, state, now_ns), size=9),
                      Layout(guarded("Flow", flow_panel, state), size=n_flow + 2),
                      Layout(guarded("Quality", quality_panel, state)))
    poly_rows = min(max(series_rows(state, now_ns), 3), max(POLY_ROWS, height - 12))
    n_feeds = min(_n_actors(state), max(3, height - poly_rows - 8))
    right = Layout(name="right", ratio=1)
    right.split_column(Layout(guarded("Polymarket", poly_panel, state, now_ns), size=poly_rows),
                       Layout(guarded("Feed health", feeds_panel, state, now_ns), size=max(5, n_feeds + 4)),
                       Layout(guarded("Events", events_panel, state, height - poly_rows - n_feeds - 6)))
    body = Layout()
    body.split_row(left, right)
    return body


# --- bars -----------------------------------------------------------------------------------
BAR_COLUMNS = (("start UTC", 9), ("open", 10), ("high", 10), ("low", 10), ("close", 10), ("volume", 9),
               ("buy", 8), ("sell", 8), ("delta", 8), ("trades", 6), ("VWAP", 10), ("state", 7))


def bar_table(state: DashState, venue: str, tf: str, n: int):
    """The current bar and the newest closed ones of one timeframe, under a "<tf> bars · <venue>" title."""
    title = f"{tf} bars · {venue}"
    rows, why = state.bar_rows(venue, tf, n)
    if why:
        return Group(Text(title, style="bold cyan"), fmt(Val(None, why)))
    # padding 0: the box's column separator is the only gap, so all 12 columns fit in 120
    t = Table(title=title, title_justify="left", title_style="bold cyan",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, padding=0)
    for c, width in BAR_COLUMNS:
        t.add_column(c, justify="left" if c in ("start UTC", "state") else "right", no_wrap=True,
                     min_width=width)
    for b in rows:
        # partial: the first bar after a start, missing the trades before it
        state_txt = "partial" if b.get("partial") else "closed" if b.get("closed") else "open"
        vals = [_num(b.get(k), kind) for k, kind in (
            ("open", "price"), ("high", "price"), ("low", "price"), ("close", "price"),
            ("volume", "vol"), ("buy_volume", "vol"), ("sell_volume", "vol"), ("delta", "qty"),
            ("trades", "int"), ("vwap", "price"))]
        t.add_row(_hms(b["start_ns"]), *vals, Text(state_txt, style="dim" if b.get("closed") else "bold green"))
    return t


def bars_screen(state: DashState, ui: Ui, height: int) -> Layout:
    per = max(4, height // len(names.BAR_TFS))
    body = Layout()
    # per − 3: the title, the column header and its rule
    body.split_column(*[Layout(guarded(f"{tf} bars", bar_table, state, ui.venue, tf, per - 3), size=per)
                        for tf in names.BAR_TFS])
    return body


def _num(x, kind: str) -> Text:
    if x is None:
        return Text(DASH, style="dim")
    if not is_num(x):
        return Text(fmt_num(x, kind), style="red")
    if kind == "vol":
        return Text(f"{x:,.3f}")
    if kind == "int":
        return Text(f"{x:,.0f}")
    return Text(fmt_num(x, kind))


# --- health ---------------------------------------------------------------------------------
def topics_panel(state: DashState, now_ns: int) -> Panel:
    topics = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, collapse_padding=True)
    for c, width in (("topic", 27), ("received", 8), ("gaps", 5), ("lost", 5), ("restarts", 8), ("last", 8)):
        topics.add_column(c, justify="left" if c == "topic" else "right", no_wrap=True, overflow="ellipsis",
                          min_width=width, ratio=1 if c == "topic" else None)
    for name, t, age_ms in state.topic_rows(now_ns):
        warn = "bold yellow" if t.gaps or t.restarts else ""
        topics.add_row(name, str(t.received), Text(str(t.gaps), style=warn), Text(str(t.lost), style=warn),
                       Text(str(t.restarts), style=warn), fmt_age(age_ms))
    if not state.topics:
        topics.add_row(fmt(Val(None, "no bus message yet")), "", "", "", "", "")
    return Panel(topics, title="Bus topics (seq gaps seen by this subscriber)", title_align="left",
                 border_style="blue")


def rest_panel(state: DashState, now_ns: int) -> Panel:
    rest = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, collapse_padding=True)
    for c, width in (("REST path", 18), ("ok", 5), ("errors", 6), ("last answer", 10)):
        rest.add_column(c, justify="right" if c in ("ok", "errors") else "left", no_wrap=True,
                        overflow="ellipsis", min_width=width, ratio=1 if c.startswith("last") else None)
    for path, st in sorted(state.rest.items()):
        last = st.last_error or (f"{fmt_age((now_ns - st.last_ok_ns) / 1e6)} ago" if st.last_ok_ns else DASH)
        rest.add_row(path, str(st.ok), str(st.errors), Text(last, style="yellow" if st.last_error else ""))
    q, reasons = state.quality_val()
    extra = Group(rest, Text(""),
                  Text.assemble(("quality ", "cyan"), fmt(q, style=MODE_STYLE.get(q.value, ""))),
                  *[Text(f"• {r}", style="yellow", no_wrap=True, overflow="ellipsis") for r in reasons],
                  Text(f"bad payloads {state.bad_payloads}",
                       style="bold red" if state.bad_payloads else "dim"))
    return Panel(extra, title="REST · quality", title_align="left", border_style="blue")


def health_screen(state: DashState, now_ns: int, height: int) -> Layout:
    bottom = Layout()
    bottom.split_row(Layout(guarded("Bus topics", topics_panel, state, now_ns), ratio=3),
                     Layout(guarded("REST", rest_panel, state, now_ns), ratio=2))
    body = Layout()
    body.split_column(Layout(guarded("Feed health", feeds_panel, state, now_ns, True),
                             size=min(max(5, _n_actors(state) + 4), height - 8)), bottom)
    return body


def _n_actors(state: DashState) -> int:
    """How many rows actor_rows gives (without building them)."""
    return len({*state.required, *(state.actors if isinstance(state.actors, dict) else ())})


# --- the whole screen -----------------------------------------------------------------------
def render(state: DashState, ui: Ui, now_ns: int, height: int = 40) -> Layout:
    body_h = max(10, height - 3)
    if ui.panel == "bars":
        body = bars_screen(state, ui, body_h)
    elif ui.panel == "health":
        body = health_screen(state, now_ns, body_h)
    else:
        body = overview(state, now_ns, body_h)
    root = Layout()
    root.split_column(Layout(guarded("header", header, state, ui, now_ns), size=2), Layout(body, name="body"),
                      Layout(footer(), size=1))
    return root
