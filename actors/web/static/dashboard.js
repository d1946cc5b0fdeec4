/* Live dashboard of one up/down window: history by REST, updates by Server-Sent Events.
 *
 * Invariants:
 * - read-only and same-origin: only GET fetches and one EventSource("/stream"); no eval, no inline
 *   code or style (CSP script-src/style-src 'self'); styles are set through element.style only.
 * - every chart's x is time in seconds, and every chart shows the selected series' current window
 *   [window_start, window_end], so all charts are time-aligned and share one cursor.
 * - each chart container `.chart[data-chart]` keeps data-points (x values plotted), data-values
 *   (non-null values of its main series), data-updates (times setData ran, increasing) and
 *   data-last-ts-ns (time of the last point) current.
 * - the window arrays hold one point per sampling period (the server's: max(tick, window/2000)),
 *   the newest doc of a period replacing its point, events and slices pinned; past
 *   MAX_WINDOW_POINTS they are halved evenly (and the period doubled); at most MAX_EVENTS events.
 * - a window change (edge doc's window_start_ns grows) resets the window charts and reloads the
 *   window's history; a reopened stream reloads every history (the push drops what it could not send).
 * - the live path is lossy by design (the hub coalesces to the latest message per topic every
 *   250 ms); what must be exact (every slice) is re-read from /history/window when the live
 *   counters say something was missed.
 */
(function () {
  "use strict";

  const NS = 1e9;
  const $ = (id) => document.getElementById(id);
  const WINDOW_COLS = ["binance", "chainlink", "settlement", "price_to_beat", "fair_up", "up_bid", "up_ask", "up_mid",
    "down_bid", "down_ask", "down_mid", "edge_up", "edge_down", "roc_up", "roc_down", "buffer", "time_left_s"];
  const MARKET_COLS = ["futures", "spot", "futures_mid", "spot_mid", "cvd_futures", "cvd_spot", "basis_bps",
    "mark", "liq_long_usd", "liq_short_usd"];
  const TF_SEC = { "5s": 5, "15s": 15, "1m": 60 };
  const POINTS_PER_WINDOW = 2000;     // live appends are bucketed like the server's sampler
  const MAX_WINDOW_POINTS = 4000;     // beyond this (a flood of events) the window is halved evenly
  const MAX_EVENTS = 5000;            // decision/veto events kept in memory (the newest)
  const MAX_MARKET_MIN = 240;         // /history/market's limit: the market ring holds ~4.5 h
  const MAX_MARKET_POINTS = 16384;
  const MAX_BARS = 800;               // per venue and timeframe
  const MAX_MARK_ROWS = 300;
  const FLUSH_MS = 200;

  // ---------- formatting (pure) ----------
  const nf = {};
  function fmtNum(v, d) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const k = d;
    if (!nf[k]) nf[k] = new Intl.NumberFormat("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
    return nf[k].format(v);
  }
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const num = (v) => (isNum(v) ? v : null);
  const sign = (v) => (v > 0 ? "+" : v < 0 ? "−" : "");
  const fmtUsd = (v, d = 2) => (isNum(v) ? (v < 0 ? "−$" : "$") + fmtNum(Math.abs(v), d) : "—");
  const fmtSigned = (v, d) => (isNum(v) ? sign(v) + fmtNum(Math.abs(v), d) : "—");
  const fmtPct = (p, d = 1) => (isNum(p) ? fmtNum(p * 100, d) + " %" : "—");
  function fmtCents(p) {
    if (!isNum(p)) return "—";
    const c = Math.round(p * 1000) / 10;    // books tick in 0.1 or 1 cent; 0.57 * 100 is 56.999…
    return fmtNum(c, c % 1 ? 1 : 0) + "¢";
  }
  const fmtPts = (e, d = 2) => (isNum(e) ? fmtSigned(e * 100, d) + " pts" : "—");
  function fmtCompactUsd(v) {
    if (!isNum(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e6) return fmtUsd(v / 1e6, 2) + "M";
    if (a >= 1e3) return fmtUsd(v / 1e3, 1) + "k";
    return fmtUsd(v, 0);
  }
  function fmtAge(ms) {
    if (!isNum(ms)) return "—";
    if (ms < 1000) return fmtNum(ms, 0) + " ms";
    if (ms < 60000) return fmtNum(ms / 1000, 1) + " s";
    if (ms < 3600000) return fmtNum(ms / 60000, 1) + " min";
    return fmtNum(ms / 3600000, 1) + " h";
  }
  function fmtDur(s) {
    if (!isNum(s)) return "—";
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
    const p2 = (x) => (x < 10 ? "0" : "") + x;
    return h ? h + ":" + p2(m) + ":" + p2(ss) : p2(m) + ":" + p2(ss);
  }
  function fmtClock(sec, withSec = true) {
    if (!isNum(sec)) return "—";
    const d = new Date(sec * 1000);
    const p2 = (x) => (x < 10 ? "0" : "") + x;
    return p2(d.getHours()) + ":" + p2(d.getMinutes()) + (withSec ? ":" + p2(d.getSeconds()) : "");
  }
  const nsStr = (ns) => (isNum(ns) ? BigInt(Math.round(ns)).toString() : "");
  function seriesSeconds(name) {
    const m = /^(\d+)([smhd])$/.exec(name || "");
    return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : 1e9;
  }

  // JSON whose "ts_ns" keeps its exact digits (a float64 holds ns times to ~256 ns only).
  const exactTs = new WeakMap();
  function parseJSON(text) {
    return JSON.parse(text, function (key, val, ctx) {
      if (key === "ts_ns" && ctx && typeof ctx.source === "string") exactTs.set(this, ctx.source);
      return val;
    });
  }
  const tsText = (doc) => exactTs.get(doc) || nsStr(doc.ts_ns);

  async function getJSON(url) {
    try {
      const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      const text = await r.text();
      let body = null;
      try { body = parseJSON(text); } catch (e) { body = null; }
      return { status: r.status, body };
    } catch (e) {
      return { status: 0, body: null };
    }
  }

  // ---------- DOM helpers ----------
  const textCache = new Map();
  function setText(id, txt, cls) {
    const el = typeof id === "string" ? $(id) : id;
    if (!el) return;
    if (textCache.get(el) !== txt) { el.textContent = txt; textCache.set(el, txt); }
    if (cls !== undefined && el.dataset.cls !== cls) {
      if (el.dataset.cls) el.dataset.cls.split(" ").forEach((c) => c && el.classList.remove(c));
      cls.split(" ").forEach((c) => c && el.classList.add(c));
      el.dataset.cls = cls;
    }
  }
  function td(text, cls) {
    const c = document.createElement("td");
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  }
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // ---------- state ----------
  const S = {
    symbol: null,
    series: [],           // followed series names, sorted by window length
    selected: null,
    lastEdge: {},         // series -> latest edge doc
    win: null,            // the selected series' current window (see newWindow)
    offsetNs: null,       // data clock minus local clock, ns (max of recent estimates)
    offsets: [],
    market: null,
    bars: { futures: {}, spot: {} },   // venue -> tf -> Map(start_ns -> bar)
    tf: null,
    lastFeatures: null,
    healthAt: 0,
    tickMs: 100,          // compute's tick (hello.tick_ms): the floor of the sampling period
    helloSeries: null,    // the followed series as the stream's hello named them
    marketSeq: 0,         // /history/market requests made (an older answer never replaces a newer)
    marketFromNs: null,   // the earliest time the loaded market history asked for
    es: null,
    streamOpen: false,
    hadError: false,
    windowLoaded: false,
    marketLoaded: false,
    dirty: new Set(),
    flushTimer: null,
    reloadTimer: null,
  };

  function newWindow(series, doc) {
    const w = {
      series, startNs: null, endNs: null, slug: null, complete: true,
      ns: [], x: [], c: {}, events: [], slices: [], lastKey: null, slicesCount: 0,
      loading: false, pending: [], waiting: false, needLoad: true, ptb: null,
      periodNs: null, pinned: false, nextLoadAt: 0, failures: 0, reloadAfter: false, retryTimer: null,
      settle: null, eventsDropped: 0,
    };
    WINDOW_COLS.forEach((k) => (w.c[k] = []));
    if (doc) { w.startNs = doc.window_start_ns; w.endNs = doc.window_end_ns; w.slug = doc.window; }
    return w;
  }

  function newMarket() {
    const m = { ns: [], x: [], c: {} };
    MARKET_COLS.forEach((k) => (m.c[k] = []));
    return m;
  }
  S.market = newMarket();

  function xRange() {
    const w = S.win;
    if (w && isNum(w.startNs) && isNum(w.endNs)) return [w.startNs / NS, w.endNs / NS];
    const now = localDataNs() / NS;
    return [now - 900, now + 60];
  }
  function localDataNs() { return Date.now() * 1e6 + (S.offsetNs || 0); }
  function noteClock(tsNs) {
    if (!isNum(tsNs)) return;
    // a doc arrives after its data time: the largest recent (data - local) is the closest estimate
    S.offsets.push(tsNs - Date.now() * 1e6);
    if (S.offsets.length > 40) S.offsets.shift();
    S.offsetNs = Math.max.apply(null, S.offsets);
  }

  // ---------- edge doc -> window sample (the same fields the history ring holds) ----------
  function vetoCodes(doc) {
    const e = doc.edge || {};
    const codes = new Set();
    (e.vetoes || []).forEach((v) => v && v.code && codes.add(v.code));
    const sides = e.sides || {};
    ["UP", "DOWN"].forEach((s) => ((sides[s] && sides[s].vetoes) || []).forEach((v) => v && v.code && codes.add(v.code)));
    return Array.from(codes).sort();
  }
  // The settlement source by the window's rule: Chainlink, or for a window settling on a Binance
  // candle (rule.source "binance", the 1h and 1d series) the candle source's price, inputs.candle.
  // Its price is the "settlement" column (the price chart's second line; "chainlink" stays Chainlink's).
  function settleOf(doc) {
    const rule = doc.rule || {}, inputs = doc.inputs || {};
    if (typeof rule.source === "string" && rule.source !== "chainlink") {
      const c = inputs.candle || {}, k = c.kline || {};
      const name = rule.source.charAt(0).toUpperCase() + rule.source.slice(1);
      return { price: isNum(c.price) ? c.price : num(k.close), age_ms: num(c.age_ms),
        label: name + (rule.candle_tf ? " " + rule.candle_tf : "") + " candle" };
    }
    const cl = inputs.chainlink || {};
    return { price: num(cl.price), age_ms: num(cl.obs_age_ms), label: "Chainlink" };
  }
  function sampleOf(doc) {
    const e = doc.edge || {};
    const sides = e.sides || {};
    const up = sides.UP || {}, dn = sides.DOWN || {};
    const books = (doc.inputs && doc.inputs.books) || {};
    const bUp = books.UP || {}, bDn = books.DOWN || {};
    const pick = (a, b) => (isNum(a) ? a : num(b));
    const upBid = pick(bUp.best_bid, up.best_bid), upAsk = pick(bUp.best_ask, up.best_ask);
    const dnBid = pick(bDn.best_bid, dn.best_bid), dnAsk = pick(bDn.best_ask, dn.best_ask);
    const mid = (b, a) => (isNum(b) && isNum(a) ? (a + b) / 2 : null);
    const params = e.params || {};
    const inputs = doc.inputs || {};
    return {
      binance: num(inputs.binance && inputs.binance.price),
      chainlink: num(inputs.chainlink && inputs.chainlink.price),
      settlement: settleOf(doc).price,
      price_to_beat: num(doc.price_to_beat && doc.price_to_beat.price),
      fair_up: num(e.fair_up),
      up_bid: upBid, up_ask: upAsk, up_mid: mid(upBid, upAsk),
      down_bid: dnBid, down_ask: dnAsk, down_mid: mid(dnBid, dnAsk),
      edge_up: num(up.edge), edge_down: num(dn.edge),
      roc_up: num(up.return_on_cost), roc_down: num(dn.return_on_cost),
      buffer: isNum(params.edge_buffer_bps) ? params.edge_buffer_bps / 1e4 : null,
      time_left_s: num(e.time_left_s),
    };
  }
  const eventKey = (decision, action, vetoes) => decision + "|" + action + "|" + vetoes.join(",");

  // the server's sampling period: max(tick, window / POINTS_PER_WINDOW)
  function periodOf(w) {
    const win = isNum(w.startNs) && isNum(w.endNs) ? w.endNs - w.startNs : 0;
    return Math.max(S.tickMs * 1e6, win / POINTS_PER_WINDOW);
  }

  function appendEdge(w, doc) {
    const ts = doc.ts_ns;
    if (!isNum(ts) || (w.ns.length && ts <= w.ns[w.ns.length - 1])) return;
    const smp = sampleOf(doc);
    if (isNum(smp.price_to_beat)) w.ptb = smp.price_to_beat;
    w.settle = settleOf(doc).label;
    const e = doc.edge || {}, acc = doc.accumulate || {};
    const decision = e.decision || "NONE", action = acc.action || "HOLD", vetoes = vetoCodes(doc);
    const key = eventKey(decision, action, vetoes);
    const event = key !== w.lastKey || action === "SLICE";
    // one point per sampling bucket, like the server: a doc in the last point's bucket replaces it
    // (the line's tail stays live), unless that point is pinned (an event, a slice, or history)
    if (w.periodNs === null) w.periodNs = periodOf(w);
    const n = w.ns.length;
    if (n && !w.pinned && Math.floor(ts / w.periodNs) === Math.floor(w.ns[n - 1] / w.periodNs)) {
      w.ns[n - 1] = ts; w.x[n - 1] = ts / NS;
      WINDOW_COLS.forEach((k) => (w.c[k][n - 1] = smp[k]));
    } else {
      w.ns.push(ts); w.x.push(ts / NS);
      WINDOW_COLS.forEach((k) => w.c[k].push(smp[k]));
    }
    w.pinned = event;
    if (key !== w.lastKey) {
      w.events.push({ ts_ns: ts, decision, action, side: action === "SLICE" ? acc.side : null,
        slice_usd: num(acc.slice_usd), acc_usd: num(acc.usd), slices: acc.slices, vetoes });
      if (w.events.length > MAX_EVENTS + 500) {
        w.eventsDropped += w.events.length - MAX_EVENTS;
        w.events.splice(0, w.events.length - MAX_EVENTS);
      }
      w.lastKey = key;
      S.dirty.add("marks");
    }
    if (isNum(acc.slices) && acc.slices > w.slicesCount) {
      if (action === "SLICE" && acc.slices === w.slicesCount + 1) {
        w.slices.push({ ts_ns: ts, side: acc.side, usd: num(acc.slice_usd) });
      } else {
        scheduleWindowReload();    // a SLICE tick was coalesced away: the history has it
      }
      w.slicesCount = acc.slices;
      S.dirty.add("slices");
    }
    if (w.x.length > MAX_WINDOW_POINTS) thinWindow(w);
    S.dirty.add("window");
  }

  // Halve the whole window evenly (every other point, and the last) and double the bucket, so the
  // points appended next are as dense as the ones kept: the window stays evenly sampled.
  function thinWindow(w) {
    const last = w.x.length - 1;
    const keep = (arr) => arr.filter((_, i) => i % 2 === 0 || i === last);
    w.ns = keep(w.ns); w.x = keep(w.x);
    WINDOW_COLS.forEach((k) => (w.c[k] = keep(w.c[k])));
    w.periodNs = (w.periodNs || periodOf(w)) * 2;
  }

  function fillWindowFromHistory(w, h) {
    const cols = h.columns || {};
    const ts = cols.ts_ns || [];
    w.startNs = h.window_start_ns; w.endNs = h.window_end_ns; w.slug = h.window;
    w.complete = h.complete !== false;
    w.ns = ts.slice(); w.x = ts.map((t) => t / NS);
    WINDOW_COLS.forEach((k) => {
      // (a server without the settlement column: its chainlink column is the settlement source's
      // for the Chainlink-settled series)
      const src = cols[k] || (k === "settlement" ? cols.chainlink : null) || [];
      w.c[k] = ts.map((_, i) => num(src[i]));
    });
    w.ptb = null;
    for (let i = w.c.price_to_beat.length - 1; i >= 0; i--) if (isNum(w.c.price_to_beat[i])) { w.ptb = w.c.price_to_beat[i]; break; }
    // the newest MAX_EVENTS are kept (the marks' table and the strip cover those); the server
    // may have left older ones out too (events_dropped)
    const evs = h.events || [];
    w.eventsDropped = (isNum(h.events_dropped) ? h.events_dropped : 0) + Math.max(0, evs.length - MAX_EVENTS);
    w.events = evs.slice(-MAX_EVENTS).map((e) => Object.assign({}, e, { vetoes: (e.vetoes || []).slice().sort() }));
    const last = w.events[w.events.length - 1];
    w.lastKey = last ? eventKey(last.decision || "NONE", last.action || "HOLD", last.vetoes) : null;
    w.slices = (h.slices || []).slice();
    w.periodNs = periodOf(w);
    w.pinned = true;      // the server's last sample stays; the next live doc appends
    w.slicesCount = last && isNum(last.slices) ? Math.max(last.slices, w.slices.length) : w.slices.length;
  }

  // ---------- charts ----------
  let C = {};    // colors, read from the stylesheet once
  const charts = {};

  // data-values: the non-null values of each chart's main series (data[i] is uPlot's series i)
  const nonNull = (a) => { let k = 0; for (let i = 0; i < a.length; i++) if (a[i] !== null && a[i] !== undefined) k++; return k; };
  const MAIN_VALUES = {
    price: (d) => nonNull(d[1]),                               // Binance
    prob: (d) => nonNull(d[1]),                                // fair P(Up)
    edge: (d) => Math.max(nonNull(d[1]), nonNull(d[2])),       // edge UP, edge DOWN
    candles: (d) => nonNull(d[4]),                             // close
    cvd: (d) => nonNull(d[1]),                                 // CVD futures
    basis: (d) => nonNull(d[1]),                               // basis bps
    liq: (d) => nonNull(d[1]) + nonNull(d[2]),                 // longs + shorts
  };

  class Chart {
    constructor(name, opts, height) {
      this.name = name;
      this.el = document.querySelector('.chart[data-chart="' + name + '"]');
      this.height = height;
      this.updates = 0;
      const width = Math.max(200, this.el.clientWidth || 800);
      opts.width = width; opts.height = height;
      const empty = opts.series.map(() => []);
      this.u = new uPlot(opts, empty, this.el);
      this.width = width;
      this.el.dataset.points = "0";
      this.el.dataset.values = "0";
      this.el.dataset.updates = "0";
      this.el.dataset.lastTsNs = "";
    }
    setLabel(i, text) {
      // a series' legend label (the settlement source's name depends on the window's rule)
      if (this.u.series[i].label === text) return;
      this.u.series[i].label = text;
      const row = this.u.root.querySelectorAll(".u-legend .u-series")[i];
      const lab = row && row.querySelector(".u-label");
      if (lab) lab.textContent = text;
    }
    set(data, lastNs) {
      this.u.setData(data);
      // without a hovering cursor the legend shows the latest values
      const n = data[0].length;
      if (n && !(this.u.cursor.left >= 0)) this.u.setLegend({ idx: n - 1 });
      this.updates += 1;
      this.el.dataset.points = String(data[0].length);
      this.el.dataset.values = String(MAIN_VALUES[this.name](data));
      this.el.dataset.updates = String(this.updates);
      this.el.dataset.lastTsNs = nsStr(lastNs);
    }
    resize() {
      const w = this.el.clientWidth;
      if (w > 0 && Math.abs(w - this.width) >= 1) { this.width = w; this.u.setSize({ width: w, height: this.height }); }
    }
  }

  function timeAxis() {
    return {
      stroke: C.muted, grid: { stroke: C.grid, width: 1 }, ticks: { stroke: C.grid, width: 1, size: 4 },
      font: "10.5px system-ui, sans-serif", size: 26, space: 55,
      values: (u, splits, ax, space, incr) => splits.map((s) => fmtClock(s, incr < 60)),
    };
  }
  function yAxis(fmt, opts) {
    return Object.assign({
      stroke: C.muted, grid: { stroke: C.grid, width: 1 }, ticks: { show: false },
      font: "10.5px ui-monospace, monospace", size: 70, gap: 4, space: 28,
      values: (u, splits) => splits.map(fmt),
    }, opts || {});
  }
  function rightAxis(fmt, scale) {
    return yAxis(fmt || (() => ""), { side: 1, scale: scale || "y", grid: { show: false }, size: 58 });
  }
  const xScale = () => ({ time: true, range: () => xRange() });
  function cursorOpts() {
    return { sync: { key: "tdc-window", setSeries: false }, drag: { x: false, y: false, setScale: false },
      points: { size: 5 }, focus: { prox: 16 } };
  }
  function line(label, stroke, fmt, extra) {
    return Object.assign({ label, stroke, width: 1.4, spanGaps: false, points: { show: false },
      value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)) }, extra || {});
  }
  function hidden(label, fmt, scale) {
    return { label, scale: scale || "y", paths: () => null, points: { show: false }, stroke: C.muted,
      value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)) };
  }

  // decision/veto strip and slice triangles, drawn over every window chart
  function marksPlugin(stripPx) {
    return {
      hooks: {
        draw: [(u) => {
          const w = S.win;
          if (!w) return;
          const ctx = u.ctx, b = u.bbox, pr = devicePixelRatio || 1;
          ctx.save();
          ctx.beginPath(); ctx.rect(b.left, b.top, b.width, b.height); ctx.clip();
          const lastX = w.x.length ? w.x[w.x.length - 1] : null;
          const evs = w.events;
          // segments are contiguous; one narrower than a pixel is not drawn alone: the run of them
          // is drawn once, in the colour of the segment that reaches a pixel past its start (no
          // holes, and a flood of events costs a fill per pixel at most)
          let from = null;
          ctx.globalAlpha = 0.9;
          for (let i = 0; i < evs.length; i++) {
            const x1 = i + 1 < evs.length ? evs[i + 1].ts_ns / NS : lastX;
            if (!isNum(x1)) continue;
            const p1 = u.valToPos(x1, "x", true);
            if (p1 < b.left) continue;
            if (from === null) from = u.valToPos(evs[i].ts_ns / NS, "x", true);
            if (p1 - from < pr && i + 1 < evs.length) continue;
            const ev = evs[i];
            ctx.fillStyle = ev.decision === "BUY_UP" ? C.up : ev.decision === "BUY_DOWN" ? C.down
              : ev.vetoes && ev.vetoes.length ? C.veto : C.none;
            ctx.fillRect(from, b.top, Math.max(p1 - from, pr), stripPx * pr);
            from = null;
            if (p1 > b.left + b.width) break;
          }
          ctx.globalAlpha = 1;
          const tri = 5 * pr;
          w.slices.forEach((s) => {
            const px = u.valToPos(s.ts_ns / NS, "x", true);
            const col = s.side === "UP" ? C.up : C.down;
            ctx.strokeStyle = col; ctx.globalAlpha = 0.28; ctx.lineWidth = pr;
            ctx.setLineDash([3 * pr, 3 * pr]);
            ctx.beginPath(); ctx.moveTo(px, b.top + stripPx * pr); ctx.lineTo(px, b.top + b.height); ctx.stroke();
            ctx.setLineDash([]); ctx.globalAlpha = 1; ctx.fillStyle = col;
            const yb = b.top + b.height - 2 * pr;
            ctx.beginPath();
            if (s.side === "UP") { ctx.moveTo(px - tri, yb); ctx.lineTo(px + tri, yb); ctx.lineTo(px, yb - 1.6 * tri); }
            else { ctx.moveTo(px - tri, yb - 1.6 * tri); ctx.lineTo(px + tri, yb - 1.6 * tri); ctx.lineTo(px, yb); }
            ctx.closePath(); ctx.fill();
          });
          ctx.restore();
        }],
      },
    };
  }
  function hlinePlugin(value, color, dash) {
    return {
      hooks: {
        draw: [(u) => {
          const v = typeof value === "function" ? value() : value;
          const sc = u.scales.y;
          if (!isNum(v) || !isNum(sc.min) || v < sc.min || v > sc.max) return;
          const ctx = u.ctx, b = u.bbox, pr = devicePixelRatio || 1;
          const y = Math.round(u.valToPos(v, "y", true)) + 0.5;
          ctx.save(); ctx.strokeStyle = color; ctx.lineWidth = pr; ctx.setLineDash(dash ? dash.map((d) => d * pr) : []);
          ctx.beginPath(); ctx.moveTo(b.left, y); ctx.lineTo(b.left + b.width, y); ctx.stroke(); ctx.restore();
        }],
      },
    };
  }

  function candlesPlugin() {
    return {
      hooks: {
        draw: [(u) => {
          const [xs, o, h, l, c, vol, dlt] = u.data;
          if (!xs || !xs.length) return;
          const ctx = u.ctx, b = u.bbox, pr = devicePixelRatio || 1;
          const tf = TF_SEC[S.tf] || 15;
          const bw = Math.max(pr, (u.valToPos(xs[0] + tf, "x", true) - u.valToPos(xs[0], "x", true)) * 0.72);
          const bandH = b.height * 0.2, bandBottom = b.top + b.height;
          let vmax = 0;
          for (let i = 0; i < xs.length; i++) if (isNum(vol[i]) && vol[i] > vmax) vmax = vol[i];
          ctx.save();
          ctx.beginPath(); ctx.rect(b.left, b.top, b.width, b.height); ctx.clip();
          for (let i = 0; i < xs.length; i++) {
            const px = u.valToPos(xs[i], "x", true);
            if (px < b.left - bw || px > b.left + b.width + bw) continue;
            if (vmax > 0 && isNum(vol[i])) {
              ctx.fillStyle = C.volume;
              const vh = vol[i] / vmax * bandH;
              ctx.fillRect(px - bw / 2, bandBottom - vh, bw, vh);
              if (isNum(dlt[i])) {
                ctx.fillStyle = dlt[i] >= 0 ? C.up : C.down;
                ctx.globalAlpha = 0.75;
                const dh = Math.abs(dlt[i]) / vmax * bandH;
                ctx.fillRect(px - bw / 2, bandBottom - dh, bw, dh);
                ctx.globalAlpha = 1;
              }
            }
            if (![o[i], h[i], l[i], c[i]].every(isNum)) continue;
            const col = c[i] >= o[i] ? C.up : C.down;
            const yo = u.valToPos(o[i], "y", true), yc = u.valToPos(c[i], "y", true);
            const yh = u.valToPos(h[i], "y", true), yl = u.valToPos(l[i], "y", true);
            ctx.fillStyle = col;
            ctx.fillRect(Math.round(px - pr / 2), yh, pr, Math.max(pr, yl - yh));
            ctx.fillRect(px - bw / 2, Math.min(yo, yc), bw, Math.max(pr, Math.abs(yc - yo)));
          }
          ctx.restore();
        }],
      },
    };
  }

  function makeCharts() {
    C = {
      up: cssVar("--up"), down: cssVar("--down"), veto: cssVar("--veto"), none: cssVar("--none"),
      binance: cssVar("--binance"), chainlink: cssVar("--chainlink"), fair: cssVar("--fair"),
      muted: cssVar("--muted"), grid: cssVar("--grid"), accent: cssVar("--accent"),
      volume: "rgba(125,135,154,0.35)",
    };
    const usd = (v) => fmtNum(v, 2);
    const usdAxis = (v) => fmtNum(v, Math.abs(v) >= 1000 ? 0 : 2);
    const pctAxis = (v) => fmtNum(v * 100, 0) + "%";
    const pct1 = (v) => fmtNum(v * 100, 1) + "%";
    const ptsAxis = (v) => fmtNum(v * 100, 1);
    const pts = (v) => fmtSigned(v * 100, 2) + " pts";
    const rocFmt = (v) => fmtSigned(v * 100, 1) + "%";
    const bpsFromPtb = (v) => {
      const p = S.win && S.win.ptb;
      return isNum(p) && p ? fmtSigned((v - p) / p * 1e4, 1) : "";
    };
    const WIN_H = 178;
    charts.price = new Chart("price", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => padRange(mn, mx, 0.08, 1) } },
      axes: [timeAxis(), yAxis(usdAxis), rightAxis(bpsFromPtb)],
      series: [{ value: (u, v) => fmtClock(v) },
        line("Binance", C.binance, usd, { width: 1.6 }),
        line("Chainlink", C.chainlink, usd, { width: 1.6 }),
        line("price to beat", C.fair, usd, { width: 1, dash: [6, 4] })],
      // the price to beat is one number per window: drawn across the whole window
      plugins: [hlinePlugin(() => S.win && S.win.ptb, "rgba(242,244,248,0.75)", [6, 4]), marksPlugin(3)],
    }, WIN_H);
    charts.prob = new Chart("prob", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: () => [0, 1] } },
      axes: [timeAxis(), yAxis(pctAxis, { space: 24 }), rightAxis(pctAxis)],
      series: [{ value: (u, v) => fmtClock(v) },
        line("fair P(Up)", C.fair, pct1, { width: 2 }),
        line("UP mid", C.up, pct1),
        line("UP ask", C.up, pct1, { dash: [4, 3], width: 1 }),
        line("DOWN mid", C.down, pct1),
        line("DOWN ask", C.down, pct1, { dash: [4, 3], width: 1 })],
      plugins: [hlinePlugin(0.5, "rgba(125,135,154,0.5)", [2, 3]), marksPlugin(3)],
    }, WIN_H);
    charts.edge = new Chart("edge", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => padRange(Math.min(mn, 0), Math.max(mx, 0.005), 0.1, 0.002) },
        roc: { range: (u, mn, mx) => padRange(Math.min(mn, 0), Math.max(mx, 0.01), 0.1, 0.01) } },
      axes: [timeAxis(), yAxis(ptsAxis), rightAxis(rocFmt, "roc")],
      series: [{ value: (u, v) => fmtClock(v) },
        line("edge UP", C.up, pts, { width: 1.6 }),
        line("edge DOWN", C.down, pts, { width: 1.6 }),
        line("buffer", C.veto, pts, { width: 1, dash: [5, 4] }),
        line("RoC UP", "rgba(34,195,142,0.45)", rocFmt, { width: 1, scale: "roc", dash: [1, 3] }),
        line("RoC DOWN", "rgba(240,80,110,0.45)", rocFmt, { width: 1, scale: "roc", dash: [1, 3] })],
      plugins: [hlinePlugin(0, "rgba(125,135,154,0.6)"), marksPlugin(8)],
    }, WIN_H + 10);
    const f1 = (v) => fmtNum(v, 1);
    charts.candles = new Chart("candles", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => { const r = padRange(mn, mx, 0.05, 1); return [r[0] - (r[1] - r[0]) * 0.3, r[1]]; } },
        vol: { range: (u, mn, mx) => [0, Math.max(mx || 1, 1e-9)] } },
      axes: [timeAxis(), yAxis(usdAxis), rightAxis()],
      series: [{ value: (u, v) => fmtClock(v) },
        hidden("O", usd), hidden("H", usd), hidden("L", usd), hidden("C", usd),
        hidden("vol", (v) => fmtNum(v, 3), "vol"), hidden("Δ", (v) => fmtSigned(v, 3), "vol"),
        line("spot", C.chainlink, usd, { width: 1.2, spanGaps: true })],
      plugins: [candlesPlugin()],
    }, 220);
    charts.cvd = new Chart("cvd", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => padRange(mn, mx, 0.1, 0.5) },
        y2: { range: (u, mn, mx) => padRange(mn, mx, 0.1, 0.05) } },
      axes: [timeAxis(), yAxis(f1), rightAxis((v) => fmtNum(v, 2), "y2")],
      series: [{ value: (u, v) => fmtClock(v) },
        line("CVD futures", C.accent, (v) => fmtSigned(v, 3) + " BTC", { width: 1.5 }),
        line("CVD spot", C.binance, (v) => fmtSigned(v, 3) + " BTC", { width: 1.2, scale: "y2" })],
    }, 130);
    charts.basis = new Chart("basis", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => padRange(Math.min(mn, 0), Math.max(mx, 0), 0.15, 0.5) } },
      axes: [timeAxis(), yAxis((v) => fmtNum(v, 1)), rightAxis()],
      series: [{ value: (u, v) => fmtClock(v) },
        line("basis", C.accent, (v) => fmtSigned(v, 2) + " bps", { width: 1.5, fill: "rgba(74,163,255,0.08)" })],
      plugins: [hlinePlugin(0, "rgba(125,135,154,0.6)")],
    }, 120);
    const stepped = uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
    charts.liq = new Chart("liq", {
      cursor: cursorOpts(), legend: { live: true },
      scales: { x: xScale(), y: { range: (u, mn, mx) => [0, Math.max(mx || 0, 1000) * 1.15] } },
      axes: [timeAxis(), yAxis(fmtCompactUsd), rightAxis()],
      series: [{ value: (u, v) => fmtClock(v) },
        line("longs", C.down, fmtCompactUsd, { width: 1.3, fill: "rgba(240,80,110,0.18)", paths: stepped }),
        line("shorts", C.up, fmtCompactUsd, { width: 1.3, fill: "rgba(34,195,142,0.18)", paths: stepped })],
    }, 120);
    const ro = new ResizeObserver(() => {
      clearTimeout(S.resizeTimer);
      S.resizeTimer = setTimeout(() => Object.values(charts).forEach((c) => c.resize()), 60);
    });
    Object.values(charts).forEach((c) => ro.observe(c.el));
  }

  function padRange(mn, mx, frac, minSpan) {
    if (!isNum(mn) || !isNum(mx)) return [0, 1];
    let span = mx - mn;
    if (span < minSpan) { const mid = (mx + mn) / 2; mn = mid - minSpan / 2; mx = mid + minSpan / 2; span = minSpan; }
    return [mn - span * frac, mx + span * frac];
  }

  // ---------- chart data ----------
  function renderWindowCharts() {
    const w = S.win;
    const x = w ? w.x : [];
    const c = w ? w.c : {};
    const col = (k) => (w ? c[k] : []);
    const last = w && w.ns.length ? w.ns[w.ns.length - 1] : null;
    charts.price.setLabel(2, (w && w.settle) || "Chainlink");
    charts.price.set([x, col("binance"), col("settlement"), col("price_to_beat")], last);
    charts.prob.set([x, col("fair_up"), col("up_mid"), col("up_ask"), col("down_mid"), col("down_ask")], last);
    charts.edge.set([x, col("edge_up"), col("edge_down"), col("buffer"), col("roc_up"), col("roc_down")], last);
  }
  function renderMarketCharts() {
    const m = S.market;
    const last = m.ns.length ? m.ns[m.ns.length - 1] : null;
    charts.cvd.set([m.x, m.c.cvd_futures, m.c.cvd_spot], last);
    charts.basis.set([m.x, m.c.basis_bps], last);
    charts.liq.set([m.x, m.c.liq_long_usd, m.c.liq_short_usd], last);
  }
  function renderCandles() {
    const tf = S.tf, sec = TF_SEC[tf];
    const fut = S.bars.futures[tf] || new Map(), spot = S.bars.spot[tf] || new Map();
    const [x0] = xRange();
    const keys = Array.from(fut.keys()).filter((k) => k / NS + sec >= x0).sort((a, b) => a - b);
    const xs = [], o = [], h = [], l = [], c = [], v = [], d = [], sp = [];
    keys.forEach((k) => {
      const b = fut.get(k);
      xs.push(k / NS + sec / 2);
      o.push(num(b.open)); h.push(num(b.high)); l.push(num(b.low)); c.push(num(b.close));
      v.push(num(b.volume)); d.push(num(b.delta));
      const s = spot.get(k);
      sp.push(s ? num(s.close) : null);
    });
    const lastNs = keys.length ? fut.get(keys[keys.length - 1]).end_ns : null;
    charts.candles.set([xs, o, h, l, c, v, d, sp], lastNs);
  }

  function putBar(b) {
    if (!b || !S.bars[b.venue] || !TF_SEC[b.tf] || !isNum(b.start_ns)) return;
    let m = S.bars[b.venue][b.tf];
    if (!m) m = S.bars[b.venue][b.tf] = new Map();
    m.set(b.start_ns, b);
    if (m.size > MAX_BARS) {
      const ks = Array.from(m.keys()).sort((a, c) => a - c);
      ks.slice(0, m.size - MAX_BARS).forEach((k) => m.delete(k));
    }
  }

  function appendMarket(f) {
    const m = S.market;
    if (!isNum(f.ts_ns) || (m.ns.length && f.ts_ns < m.ns[m.ns.length - 1] + 1e9)) return false;
    const v = f.venues || {}, fu = v.futures || {}, sp = v.spot || {}, ba = f.basis || {}, lq = f.liquidations || {};
    const row = {
      futures: num(fu.last_price), spot: num(sp.last_price),
      futures_mid: num(fu.book && fu.book.mid), spot_mid: num(sp.book && sp.book.mid),
      cvd_futures: num(fu.cvd && fu.cvd.cvd), cvd_spot: num(sp.cvd && sp.cvd.cvd),
      basis_bps: num(ba.basis_bps), mark: num(ba.mark),
      liq_long_usd: num(lq.long_notional), liq_short_usd: num(lq.short_notional),
    };
    m.ns.push(f.ts_ns); m.x.push(f.ts_ns / NS);
    MARKET_COLS.forEach((k) => m.c[k].push(row[k]));
    if (m.ns.length > MAX_MARKET_POINTS) {
      const cut = m.ns.length - MAX_MARKET_POINTS;
      m.ns.splice(0, cut); m.x.splice(0, cut);
      MARKET_COLS.forEach((k) => m.c[k].splice(0, cut));
    }
    return true;
  }

  // ---------- panels ----------
  function renderTabs() {
    const nav = $("series-tabs");
    S.series.forEach((s) => {
      let b = nav.querySelector('button[data-series="' + CSS.escape(s) + '"]');
      if (!b) {
        b = document.createElement("button");
        b.type = "button";
        b.dataset.series = s;
        b.appendChild(document.createTextNode(s));
        const dot = document.createElement("span");
        dot.className = "tab-dot";
        b.appendChild(dot);
        b.addEventListener("click", () => select(s));
        // keep the buttons in window-length order
        const after = Array.from(nav.children).find((o) => seriesSeconds(o.dataset.series) > seriesSeconds(s));
        nav.insertBefore(b, after || null);
      }
      b.classList.toggle("active", s === S.selected);
      const d = S.lastEdge[s], dot = b.querySelector(".tab-dot");
      const e = d && d.edge;
      const cls = !e ? "" : e.decision === "BUY_UP" ? "d-up" : e.decision === "BUY_DOWN" ? "d-down"
        : vetoCodes(d).length ? "d-veto" : "";
      dot.className = "tab-dot " + cls;
      b.title = d ? (d.window || s) + " · " + ((e && e.decision) || "NONE") : s + " · no data yet";
    });
  }

  function addSeries(list) {
    let changed = false;
    (list || []).forEach((s) => { if (typeof s === "string" && !S.series.includes(s)) { S.series.push(s); changed = true; } });
    if (!changed) return;
    S.series.sort((a, b) => seriesSeconds(a) - seriesSeconds(b));
    if (!S.selected) {
      const want = decodeURIComponent((location.hash || "").replace(/^#/, ""));
      select(S.series.includes(want) ? want : S.series[0]);
    } else renderTabs();
  }

  function select(s) {
    if (S.selected === s && S.win) return;
    S.selected = s;
    if (location.hash !== "#" + s) history.replaceState(null, "", "#" + s);
    const d = S.lastEdge[s];
    S.win = newWindow(s, d);
    if (!S.tf) setTf(seriesSeconds(s) <= 300 ? "5s" : seriesSeconds(s) <= 900 ? "15s" : "1m");
    renderTabs();
    resetWindowView();
    const w = S.win;
    if (d) { appendEdge(w, d); renderKpis(d); loadWindow(); }
    else {
      // the series' first edge doc triggers the load; a live stream without one means the series
      // has no sample yet: show "waiting" without asking (a 503 would be logged by the browser)
      setTimeout(() => {
        if (S.win !== w || !w.needLoad || w.loading || Date.now() < w.nextLoadAt) return;
        if (S.streamOpen && !S.lastEdge[w.series]) showWaiting(w);
        else loadWindow();
      }, 1500);
    }
  }

  function resetWindowView() {
    const w = S.win;
    const panel = $("window-panel");
    panel.dataset.series = w ? w.series : "";
    panel.dataset.windowStartNs = w && isNum(w.startNs) ? nsStr(w.startNs) : "";
    S.dirty.add("window"); S.dirty.add("marks"); S.dirty.add("slices"); S.dirty.add("candles"); S.dirty.add("market");
    // at once, so data-window-start-ns and the charts' data never disagree
    if (S.flushTimer !== null) { clearTimeout(S.flushTimer); S.flushTimer = null; }
    flush();
  }

  function setTf(tf) {
    S.tf = tf;
    document.querySelectorAll("#tf-select button").forEach((b) => b.classList.toggle("active", b.dataset.tf === tf));
    S.dirty.add("candles");
    scheduleFlush();
  }

  function renderKpis(d) {
    const e = d.edge || {}, acc = d.accumulate || {};
    const smp = sampleOf(d);
    const ptb = smp.price_to_beat;
    setText("window-slug", d.window || "—");
    const ws = d.window_start_ns, we = d.window_end_ns;
    setText("window-span", isNum(ws) ? fmtClock(ws / NS, false) + " → " + fmtClock(we / NS, false) + "  ·  " + fmtDur((we - ws) / NS)
      + (S.win && !S.win.complete ? "  ·  history partial" : "") : "—");
    setText("price-to-beat", fmtUsd(ptb));
    const pt = d.price_to_beat || {};
    setText("ptb-src", [pt.source, pt.method, pt.status].filter(Boolean).join(" · ") || "—");
    const delta = (p, id) => {
      if (!isNum(p) || !isNum(ptb) || !ptb) return setText(id, "—", "");
      const dd = p - ptb;
      setText(id, fmtSigned(dd, 2) + " $  " + fmtSigned(dd / ptb * 1e4, 1) + " bps", dd >= 0 ? "pos" : "neg");
    };
    setText("binance-price", fmtUsd(smp.binance)); delta(smp.binance, "binance-delta");
    // the settlement source's line: Chainlink, or the Binance candle for a candle rule (#chainlink-*
    // keep their ids; the label says which)
    const st = settleOf(d);
    const lab = $("chainlink-price").parentElement.querySelector(".label");
    const labText = lab && Array.from(lab.childNodes).find((n) => n.nodeType === 3 && n.textContent.trim());
    if (labText && labText.textContent !== st.label + " ") labText.textContent = st.label + " ";
    setText("chainlink-price", fmtUsd(smp.chainlink));
    const clAge = st.age_ms;
    if (isNum(smp.chainlink) && isNum(ptb)) {
      const dd = smp.chainlink - ptb;
      setText("chainlink-delta", fmtSigned(dd, 2) + " $  " + fmtSigned(dd / ptb * 1e4, 1) + " bps", dd >= 0 ? "pos" : "neg");
    } else setText("chainlink-delta", "—", "");
    setText("chainlink-age", isNum(clAge) ? "· " + fmtAge(clAge) : "");
    setText("fair-up", fmtPct(smp.fair_up, 1));
    setText("fair-down", isNum(smp.fair_up) ? "P(Down) " + fmtPct(1 - smp.fair_up, 1) : (d.fair && d.fair.reason) || "—");
    setText("up-book", fmtCents(smp.up_bid) + " / " + fmtCents(smp.up_ask));
    setText("down-book", fmtCents(smp.down_bid) + " / " + fmtCents(smp.down_ask));
    const edgeSub = (eV, roc, id) => setText(id, isNum(eV) ? fmtPts(eV) + " · RoC " + fmtSigned(roc * 100, 1) + "%" : "edge —",
      isNum(eV) ? (eV > (smp.buffer || 0) ? "pos" : eV < 0 ? "neg" : "") : "muted");
    edgeSub(smp.edge_up, smp.roc_up, "up-edge");
    edgeSub(smp.edge_down, smp.roc_down, "down-edge");
    const dec = e.decision || "NONE";
    setText("decision", dec, dec === "BUY_UP" ? "d-up" : dec === "BUY_DOWN" ? "d-down" : "d-none");
    const v = vetoCodes(d);
    setText("decision-reason", (e.reason || "") + (v.length && !(e.reason || "").includes(v[0]) ? " · vetoes: " + v.join(", ") : ""));
    setText("acc-usd", fmtUsd(num(acc.usd), 0));
    setText("acc-sub", (isNum(acc.slices) ? acc.slices + " slices" : "—") + " · " + (acc.action || "—") + (acc.reason ? " (" + acc.reason + ")" : ""));
    const lu = $("last-update");
    lu.dataset.tsNs = tsText(d);
    setText(lu, fmtClock(d.ts_ns / NS));
  }

  function renderMarks() {
    const w = S.win, el = $("marks");
    const evs = w ? w.events : [];
    el.dataset.count = String(evs.length);
    const dropped = w ? w.eventsDropped : 0;
    setText("marks-n", evs.length + " events" + (dropped ? " · " + dropped + " older not kept" : ""));
    const tb = el.querySelector("tbody");
    const rows = document.createDocumentFragment();
    for (let i = evs.length - 1; i >= Math.max(0, evs.length - MAX_MARK_ROWS); i--) {
      const ev = evs[i];
      const tr = document.createElement("tr");
      tr.className = "mark";
      tr.dataset.tsNs = nsStr(ev.ts_ns);
      tr.appendChild(td(fmtClock(ev.ts_ns / NS)));
      tr.appendChild(td(ev.decision || "NONE", "d-" + (ev.decision || "NONE")));
      if (ev.action === "SLICE") tr.appendChild(td("SLICE " + (ev.side || "") + " " + fmtUsd(ev.slice_usd, 0), "act"));
      else tr.appendChild(td(ev.vetoes && ev.vetoes.length ? ev.vetoes.join(", ") : "—", "vet"));
      rows.appendChild(tr);
    }
    tb.replaceChildren(rows);
  }

  function askAt(w, tsNs, side) {
    // the side's ask at the last sample at or before tsNs (binary search on the time column)
    let lo = 0, hi = w.ns.length - 1, k = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (w.ns[mid] <= tsNs) { k = mid; lo = mid + 1; } else hi = mid - 1; }
    if (k < 0) return null;
    return side === "UP" ? w.c.up_ask[k] : side === "DOWN" ? w.c.down_ask[k] : null;
  }

  function renderSlices() {
    const w = S.win;
    const sl = w ? w.slices : [];
    const tb = $("slices").querySelector("tbody");
    const frag = document.createDocumentFragment();
    let total = 0;
    const rows = sl.map((s, i) => {
      total += isNum(s.usd) ? s.usd : 0;
      const tr = document.createElement("tr");
      tr.className = "slice";
      tr.dataset.tsNs = nsStr(s.ts_ns);
      tr.dataset.side = s.side || "";
      tr.appendChild(td(String(i + 1)));
      tr.appendChild(td(fmtClock(s.ts_ns / NS)));
      tr.appendChild(td(s.side || "—", "s-" + (s.side || "")));
      tr.appendChild(td(fmtCents(askAt(w, s.ts_ns, s.side)), "r"));
      tr.appendChild(td(fmtUsd(s.usd, 0), "r"));
      tr.appendChild(td(fmtUsd(total, 0), "r"));
      return tr;
    });
    rows.reverse().forEach((r) => frag.appendChild(r));
    tb.replaceChildren(frag);
    setText("slices-n", sl.length + " · " + fmtUsd(total, 0));
  }

  function renderMarketKv(f) {
    const v = f.venues || {}, fu = v.futures || {}, sp = v.spot || {}, ba = f.basis || {}, lq = f.liquidations || {};
    setText("m-futures", fmtUsd(num(fu.last_price)));
    setText("m-spot", fmtUsd(num(sp.last_price)));
    setText("m-basis", isNum(ba.basis_bps) ? fmtSigned(ba.basis_bps, 2) + " bps" : "—");
    setText("m-mark", fmtUsd(num(ba.mark)) + " · " + (isNum(ba.funding_bps) ? fmtSigned(ba.funding_bps, 2) + " bps" : "—"));
    setText("m-cvd", fmtSigned(num(fu.cvd && fu.cvd.cvd), 2) + " · " + fmtSigned(num(sp.cvd && sp.cvd.cvd), 2) + " BTC");
    setText("m-liq", fmtCompactUsd(num(lq.long_notional)) + " · " + fmtCompactUsd(num(lq.short_notional)));
  }

  function renderQuality(q) {
    if (!q) return;
    const mode = q.mode || "—";
    setText("quality-mode", mode, "q-" + mode);
    const reasons = Array.isArray(q.reasons) ? q.reasons : [];
    const el = $("quality-reasons");
    setText(el, reasons.length ? reasons.join(" · ") : "no reasons");
    el.title = reasons.join("\n");
  }

  // /state and the stream's health event: actors' liveness and each stream's data age
  function renderHealth(doc) {
    if (!doc) return;
    renderQuality(doc.quality);
    const actors = doc.actors || {};
    const names = Object.keys(actors).sort();
    const tb = $("actors").querySelector("tbody");
    let alive = 0;
    names.forEach((n) => {
      const a = actors[n] || {};
      let tr = tb.querySelector('tr[data-actor="' + CSS.escape(n) + '"]');
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.actor = n;
        ["", "", "r", "r"].forEach((c) => tr.appendChild(td("", c)));
        tr.cells[0].textContent = n;
        const after = Array.from(tb.rows).find((r) => r.dataset.actor > n);
        tb.insertBefore(tr, after || null);
      }
      const ok = a.alive === true;
      if (ok) alive++;
      tr.dataset.alive = ok ? "true" : "false";
      setText(tr.cells[1], ok ? (a.running === false ? "alive · idle" : "alive") : a.running ? "stale" : "down", "alive-" + ok);
      setText(tr.cells[2], fmtAge(num(a.heartbeat_age_ms)));
      if (isNum(a.uptime_s)) setText(tr.cells[3], fmtDur(a.uptime_s));
    });
    setText("actors-n", alive + " / " + names.length + " alive");
    const ages = $("ages");
    let nStreams = 0, nStale = 0;
    names.forEach((n) => {
      const streams = (actors[n] || {}).streams;
      if (!streams || !Object.keys(streams).length) return;
      let t = ages.querySelector('table[data-actor="' + CSS.escape(n) + '"]');
      if (!t) {
        t = document.createElement("table");
        t.className = "tbl";
        t.dataset.actor = n;
        const th = document.createElement("thead"), hr = document.createElement("tr");
        const h1 = document.createElement("th"); h1.textContent = n;
        const h2 = document.createElement("th"); h2.textContent = "age"; h2.className = "r";
        hr.appendChild(h1); hr.appendChild(h2); th.appendChild(hr); t.appendChild(th);
        t.appendChild(document.createElement("tbody"));
        const after = Array.from(ages.children).find((o) => o.dataset.actor > n);
        ages.insertBefore(t, after || null);
      }
      const tbody = t.tBodies[0];
      Object.keys(streams).sort().forEach((k) => {
        const st = streams[k] || {};
        const key = n + "." + k;
        let tr = tbody.querySelector('tr[data-stream="' + CSS.escape(key) + '"]');
        if (!tr) {
          tr = document.createElement("tr");
          tr.dataset.stream = key;
          tr.appendChild(td(k)); tr.appendChild(td("", "r"));
          tbody.appendChild(tr);
        }
        const age = num(st.age_ms);
        tr.dataset.ageMs = age === null ? "" : String(Math.round(age));
        tr.dataset.fresh = st.fresh === false ? "false" : "true";
        nStreams++;
        if (st.fresh === false) nStale++;
        setText(tr.cells[1], age === null ? "never" : fmtAge(age), age === null ? "na" : st.fresh === false ? "stale" : "fresh");
      });
    });
    setText("ages-n", nStreams + " streams" + (nStale ? " · " + nStale + " stale" : " · all fresh"));
  }

  // ---------- time left: counts down locally every second ----------
  function tickClock() {
    const w = S.win;
    const now = localDataNs();
    if (w && isNum(w.endNs)) {
      const left = (w.endNs - now) / NS;
      const el = $("time-left");
      setText(el, fmtDur(Math.ceil(Math.max(0, left))), left <= 30 ? "t-end" : left <= 60 ? "t-warn" : "");
      const frac = Math.min(1, Math.max(0, (now - w.startNs) / (w.endNs - w.startNs)));
      $("window-progress").style.width = (frac * 100).toFixed(2) + "%";
      const d = S.lastEdge[w.series];
      document.title = fmtDur(Math.ceil(Math.max(0, left))) + " · " + (S.symbol || "") + " " + w.series + " · " + ((d && d.edge && d.edge.decision) || "—");
    } else {
      setText("time-left", "—", "");
    }
    const d = w && S.lastEdge[w.series];
    setText("last-update-age", d && isNum(d.ts_ns) ? fmtAge(Math.max(0, now - d.ts_ns) / 1e6) + " ago" : "—");
  }

  // ---------- flush: at most every FLUSH_MS, redraw what changed ----------
  function scheduleFlush() {
    if (S.flushTimer === null) S.flushTimer = setTimeout(flush, FLUSH_MS);
  }
  function flush() {
    S.flushTimer = null;
    const d = S.dirty;
    if (d.has("window")) renderWindowCharts();
    if (d.has("marks")) renderMarks();
    if (d.has("slices")) renderSlices();
    if (d.has("candles")) renderCandles();
    if (d.has("market")) renderMarketCharts();
    if (d.has("kpis") && S.win && S.lastEdge[S.win.series]) renderKpis(S.lastEdge[S.win.series]);
    if (d.has("tabs")) renderTabs();
    d.clear();
  }

  // ---------- loading ----------
  async function loadWindow() {
    const w = S.win;
    if (!w || w.loading) return;
    w.loading = true; w.needLoad = false; w.pending = [];
    const r = await getJSON("/history/window?series=" + encodeURIComponent(w.series));
    if (S.win !== w) return;
    w.loading = false;
    if (r.status === 200 && r.body && r.body.columns) {
      const h = r.body;
      if (isNum(w.startNs) && h.window_start_ns < w.startNs) {
        // the history still holds the previous window: keep the live samples, ask again shortly
        retryLoad(w, 1000);
      } else {
        fillWindowFromHistory(w, h);
        w.waiting = false;
        w.failures = 0;
      }
    } else if (r.status === 503) {
      // no sample yet: asked again on an edge doc of the series, not before the backoff (no timer:
      // a series without documents is "waiting" and is not asked, the browser logs every 503)
      w.waiting = !S.lastEdge[w.series];
      w.failures++;
      w.needLoad = true;
      w.nextLoadAt = Date.now() + Math.min(5000, 1000 * 2 ** (w.failures - 1));
    } else {
      w.failures++;
      retryLoad(w, Math.min(30000, 3000 * 2 ** (w.failures - 1)));
    }
    const pend = w.pending; w.pending = [];
    pend.forEach((doc) => appendEdge(w, doc));
    $("window-waiting").classList.toggle("hidden", !w.waiting);
    if (w.waiting) { setText("window-slug", "waiting for data"); setText("time-left", "—"); }
    S.windowLoaded = true;
    resetWindowView();
    updateStatus();
    ensureMarket();
    if (w.reloadAfter) {
      // a reload was asked while this load ran (a slice missed after its request): run it now,
      // unless a retry is already due
      w.reloadAfter = false;
      if (!w.needLoad) loadWindow();
    }
  }

  function retryLoad(w, ms) {
    w.needLoad = true;
    w.nextLoadAt = Date.now() + ms;
    clearTimeout(w.retryTimer);     // one retry due at a time
    w.retryTimer = setTimeout(() => { if (S.win === w && w.needLoad && !w.loading) loadWindow(); }, ms);
  }

  function showWaiting(w) {
    w.waiting = true;
    $("window-waiting").classList.remove("hidden");
    setText("window-slug", "waiting for data"); setText("time-left", "—");
    S.windowLoaded = true;
    updateStatus();
  }

  function scheduleWindowReload() {
    if (S.reloadTimer) return;
    S.reloadTimer = setTimeout(() => {
      S.reloadTimer = null;
      const w = S.win;
      if (!w) return;
      if (w.loading) w.reloadAfter = true;    // the load under way may predate the missed slice
      else if (!(w.needLoad && Date.now() < w.nextLoadAt)) loadWindow();   // else the due retry reads it
    }, 400);
  }

  // The minutes of market history the selected window needs: from its start to now (+1), at most
  // MAX_MARKET_MIN (the market ring's reach: a 1d window's market charts start at most 4 h back).
  // Before a window is known, 16 minutes.
  function marketMinutes() {
    const w = S.win;
    if (!w || !isNum(w.startNs)) return 16;
    return Math.min(MAX_MARKET_MIN, Math.max(1, Math.ceil((localDataNs() - w.startNs) / 60e9) + 1));
  }
  // Re-read the market history when the loaded one starts after what the window needs (checked
  // when a window's history or a market load completes, so at most one load is under way).
  function ensureMarket() {
    const w = S.win;
    if (!w || !isNum(w.startNs) || S.marketLoading) return;
    const need = Math.max(w.startNs, localDataNs() - MAX_MARKET_MIN * 60e9);
    if (S.marketFromNs === null || S.marketFromNs > need + 60e9) loadMarket();
  }

  async function loadMarket() {
    const minutes = marketMinutes();
    const seq = ++S.marketSeq;
    const fromNs = localDataNs() - minutes * 60e9;
    S.marketLoading = true;
    const r = await getJSON("/history/market?minutes=" + minutes);
    if (seq !== S.marketSeq) return;     // a newer request was made meanwhile: its answer counts
    S.marketLoading = false;
    const ok = r.status === 200 && r.body && r.body.columns;
    if (ok) S.marketFromNs = fromNs;
    if (ok) {
      const cols = r.body.columns, ts = cols.ts_ns || [];
      const m = newMarket();
      m.ns = ts.slice(); m.x = ts.map((t) => t / NS);
      MARKET_COLS.forEach((k) => { const src = cols[k] || []; m.c[k] = ts.map((_, i) => num(src[i])); });
      S.market = m;
      if (S.lastFeatures) appendMarket(S.lastFeatures);
    }
    S.marketLoaded = true;
    S.dirty.add("market"); scheduleFlush();
    updateStatus();
    if (ok) ensureMarket();     // the window became known while this (shorter) load ran
  }

  async function loadBars() {
    const r = await getJSON("/latest/bars");
    if (r.status !== 200 || !r.body || !r.body.venues) return;
    Object.entries(r.body.venues).forEach(([venue, tfs]) => {
      Object.values(tfs || {}).forEach((t) => {
        ((t && t.closed) || []).forEach(putBar);
        if (t && t.current) putBar(t.current);
      });
    });
    S.dirty.add("candles"); scheduleFlush();
  }

  async function loadState() {
    const r = await getJSON("/state");
    if (r.status === 200 && r.body) renderHealth(r.body);
  }

  async function loadSeriesFallback() {
    // the stream's hello names the followed series; without it, the edge block does. A system
    // that follows none (the Polymarket side off: hello's list empty, or the block disabled) is
    // asked again every 30 s only.
    if (S.series.length) return;
    if (S.helloSeries && !S.helloSeries.length) { setTimeout(loadSeriesFallback, 30000); return; }
    const r = await getJSON("/latest/edge");
    if (S.series.length) return;
    if (r.status === 200 && r.body && r.body.series) {
      if (r.body.symbol) { S.symbol = r.body.symbol; setText("symbol", S.symbol); }
      Object.values(r.body.series).forEach((d) => d && d.series && (S.lastEdge[d.series] = d));
      addSeries(Object.keys(r.body.series));
    }
    if (!S.series.length) {
      const off = S.helloSeries || (r.body && r.body.disabled) || r.status === 200 || r.status === 404;
      setTimeout(loadSeriesFallback, off ? 30000 : 3000);
    }
  }

  function reloadAll() {
    if (S.win) {
      S.win = newWindow(S.win.series, S.lastEdge[S.win.series]);
      resetWindowView();
      if (S.lastEdge[S.win.series]) loadWindow(); else showWaiting(S.win);
    }
    loadMarket(); loadBars(); loadState();
  }

  function updateStatus() {
    const st = S.streamOpen && S.windowLoaded && S.marketLoaded ? "live" : S.hadError ? "reconnecting" : "loading";
    if (document.body.dataset.status !== st) document.body.dataset.status = st;
    setText("status-text", st);
  }

  // ---------- stream ----------
  function openStream() {
    const es = new EventSource("/stream");
    S.es = es;
    es.addEventListener("open", () => {
      const again = S.hadError;
      S.streamOpen = true;
      if (again) { S.windowLoaded = false; S.marketLoaded = false; reloadAll(); }
      updateStatus();
    });
    es.addEventListener("error", () => {
      S.streamOpen = false;
      S.hadError = true;
      updateStatus();
      if (es.readyState === EventSource.CLOSED) {
        // refused (e.g. 503 over the client limit): EventSource gives up, so start a new one
        setTimeout(() => { if (S.es === es) openStream(); }, 3000);
      }
    });
    const on = (name, fn) => es.addEventListener(name, (m) => {
      let doc;
      try { doc = parseJSON(m.data); } catch (e) { return; }
      if (doc && typeof doc === "object") fn(doc);
    });
    on("hello", (h) => {
      if (h.symbol) { S.symbol = h.symbol; setText("symbol", h.symbol); }
      noteClock(h.ts_ns);
      if (isNum(h.tick_ms) && h.tick_ms > 0) S.tickMs = h.tick_ms;
      if (Array.isArray(h.series)) S.helloSeries = h.series.slice();
      addSeries(h.series);
    });
    on("edge", onEdge);
    on("features", onFeatures);
    on("bar", (b) => { putBar(b); if (b.tf === S.tf) { S.dirty.add("candles"); scheduleFlush(); } });
    on("health", (h) => { S.healthAt = Date.now(); renderHealth(h); });
  }

  function onEdge(d) {
    if (!d.series) return;
    noteClock(d.ts_ns);
    if (d.symbol && !S.symbol) { S.symbol = d.symbol; setText("symbol", d.symbol); }
    S.lastEdge[d.series] = d;
    if (!S.series.includes(d.series)) addSeries([d.series]);
    S.dirty.add("tabs");
    const w = S.win;
    if (w && d.series === w.series) {
      if (!isNum(w.startNs) || d.window_start_ns > w.startNs) {
        // first doc of this series, or a new window: start over and read its history
        const fresh = isNum(w.startNs);
        const nw = fresh ? newWindow(w.series, d) : w;
        if (!fresh) { nw.startNs = d.window_start_ns; nw.endNs = d.window_end_ns; nw.slug = d.window; }
        S.win = nw;
        nw.waiting = false;
        $("window-waiting").classList.add("hidden");
        resetWindowView();
        if (fresh || !nw.loading) { nw.needLoad = true; }
      }
      const cur = S.win;
      if (d.window_start_ns === cur.startNs) {
        if (cur.loading) cur.pending.push(d);
        else appendEdge(cur, d);
        S.dirty.add("kpis");
      }
      if (cur.needLoad && !cur.loading && Date.now() >= cur.nextLoadAt) loadWindow();
    }
    scheduleFlush();
  }

  function onFeatures(f) {
    S.lastFeatures = f;
    if (appendMarket(f)) S.dirty.add("market");
    const v = f.venues || {};
    ["futures", "spot"].forEach((venue) => {
      const bars = (v[venue] && v[venue].bars) || {};
      Object.values(bars).forEach((b) => b && putBar(Object.assign({ venue }, b)));
    });
    S.dirty.add("candles");
    renderMarketKv(f);
    if (Date.now() - S.healthAt > 3000 && f.quality) renderQuality(f.quality);
    scheduleFlush();
  }

  // ---------- start ----------
  function start() {
    if (typeof uPlot !== "function") {
      document.body.dataset.status = "loading";
      setText("status-text", "chart library missing");
      return;
    }
    makeCharts();
    document.querySelectorAll("#tf-select button").forEach((b) => b.addEventListener("click", () => setTf(b.dataset.tf)));
    openStream();
    setTimeout(loadSeriesFallback, 2500);
    loadMarket(); loadBars(); loadState();
    setInterval(tickClock, 250);
    tickClock();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
