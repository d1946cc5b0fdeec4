"""Fan-out of one venue's frames to its WebSocket connections (the sim's only data-path I/O).

Publishing: each frame is encoded once per stream (the raw payload, and the combined envelope
only if some connection wants it), run through the venue's fault state (stalled: not sent;
corrupted: replaced), and queued for every connection subscribed to that stream; a batch is then
written to each transport in one `writelines` without awaiting drain (what
`websockets.broadcast` does frame by frame), so one slow client cannot stall the others.
A client whose unsent backlog exceeds `max_send_buffer` bytes is dropped (TCP abort), as the
venue disconnects consumers that cannot keep up; the memory a slow client can pin is bounded.

Invariants:
- a frame goes to every connection subscribed to its stream, in publish order, or to none (a
  stall or a corruption applies to the stream's frame, not per connection);
- per-stream counters (`stats`) count frames handed to the transports: frames, last id (aggTrade
  `a`, bookTicker `u`, depth `u`/`lastUpdateId`, otherwise `E`), stalled (not sent), malformed;
- `last_book` is the last bookTicker the venue emitted (sent, stalled or not subscribed): the
  depth frames are built on it, so depth and bookTicker agree at equal update ids.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from websockets.protocol import State

from actors.sim.binance import codec as binance
from actors.sim.faults import CORRUPT, STALLED, FaultState, corrupt
from actors.sim.market import AggTrade, BookTicker

log = logging.getLogger("sim")

OnSent = Callable[[str, int, int], None]


class Hub:
    """Who receives which stream of one venue, and the publishing of frames to them."""

    def __init__(self, venue: str, *, agg_streams: tuple[str, ...], agg_enc,
                 book_streams: tuple[str, ...], book_enc, faults: FaultState,
                 max_send_buffer: int):
        self.venue = venue
        self._agg = (agg_streams, agg_enc)
        self._book = (book_streams, book_enc)
        self.faults = faults
        self.max_send_buffer = max_send_buffer
        self.conns: set = set()
        self._raw: dict[str, set] = {}
        self._comb: dict[str, set] = {}
        self.stats: dict[str, list] = {}     # stream -> [frames, last_id, stalled, malformed]
        self.frames_sent = 0
        self.dropped_slow = 0
        self.connections_total = 0
        self.last_book: BookTicker | None = None
        self._closing: set[asyncio.Task] = set()

    # --- subscriptions ---------------------------------------------------------------------
    def attach(self, conn) -> None:
        self.conns.add(conn)
        self.connections_total += 1
        self.sync(conn)

    def detach(self, conn) -> None:
        self.conns.discard(conn)
        for d in (self._raw, self._comb):
            for s in d.values():
                s.discard(conn)

    def sync(self, conn) -> None:
        """Re-index `conn` after its subscriptions or combined flag changed."""
        for d in (self._raw, self._comb):
            for s in d.values():
                s.discard(conn)
        sess = conn.session
        if sess is None or conn not in self.conns:
            return
        target = self._comb if sess.combined else self._raw
        for stream in sess.delivered_streams():
            target.setdefault(stream, set()).add(conn)

    def receivers(self, stream: str) -> bool:
        return bool(self._raw.get(stream)) or bool(self._comb.get(stream))

    def active_streams(self) -> set[str]:
        """Streams with at least one receiver."""
        return {s for d in (self._raw, self._comb) for s, c in d.items() if c}

    # --- publishing ------------------------------------------------------------------------
    def publish(self, items: list, on_sent: OnSent | None, now_s: float) -> None:
        """Publish market events (AggTrade, BookTicker) and/or (stream, key, payload) tuples."""
        raw_d, comb_d = self._raw, self._comb
        agg_streams, agg_enc = self._agg
        book_streams, book_enc = self._book
        faults, stats = self.faults, self.stats
        out: dict = {}
        sent: list[tuple[str, int]] = []
        for ev in items:
            t = type(ev)
            if t is AggTrade:
                streams, key, enc, payload = agg_streams, ev.a, agg_enc, None
            elif t is BookTicker:
                self.last_book = ev
                streams, key, enc, payload = book_streams, ev.u, book_enc, None
            else:
                stream, key, payload = ev
                streams, enc = (stream,), None
            for stream in streams:
                raw = raw_d.get(stream)
                comb = comb_d.get(stream)
                if not raw and not comb:
                    continue
                if payload is None:
                    payload = enc(ev)
                st = stats.get(stream)
                if st is None:
                    st = stats[stream] = [0, None, 0, 0]
                raw_b = comb_b = None
                if faults.active:
                    v = faults.verdict(stream, now_s)
                    if v == STALLED:
                        st[2] += 1
                        continue
                    if v == CORRUPT:
                        r, c = corrupt(faults.next_corruption(), stream, payload)
                        raw_b, comb_b = r.encode(), c.encode()
                        st[3] += 1
                if raw:
                    data = raw_b or payload.encode()
                    for conn in raw:
                        q = out.get(conn)
                        if q is None:
                            out[conn] = [data]
                        else:
                            q.append(data)
                if comb:
                    data = comb_b or binance.combined(stream, payload).encode()
                    for conn in comb:
                        q = out.get(conn)
                        if q is None:
                            out[conn] = [data]
                        else:
                            q.append(data)
                st[0] += 1
                st[1] = key
                sent.append((stream, key))
        if not out:
            return
        for conn, frames in out.items():
            proto = conn.protocol
            if proto.state is not State.OPEN or conn.send_in_progress is not None:
                continue
            try:
                for data in frames:
                    proto.send_text(data)
                conn.transport.writelines(proto.data_to_send())
            except Exception as exc:   # a transport closing under us: its handler cleans up
                log.debug("sim: write to %s failed: %r", conn.remote_address, exc)
        if on_sent is not None:
            ts = time.time_ns()
            for stream, key in sent:
                on_sent(stream, key, ts)
        self.frames_sent += len(sent)
        self._drop_slow()

    def _drop_slow(self) -> None:
        limit = self.max_send_buffer
        for conn in list(self.conns):
            tr = conn.transport
            if tr is not None and tr.get_write_buffer_size() > limit:
                log.warning("sim: dropping slow consumer %s (%d bytes unsent)",
                            conn.remote_address, tr.get_write_buffer_size())
                self.dropped_slow += 1
                self.detach(conn)
                tr.abort()

    # --- faults ----------------------------------------------------------------------------
    def drop_all(self) -> int:
        """Abort every connection (no close frame). Returns how many."""
        conns = list(self.conns)
        for conn in conns:
            self.detach(conn)
            if conn.transport is not None:
                conn.transport.abort()
        return len(conns)

    def disconnect_all(self) -> int:
        """Close every connection with 1001, as at the venue's 24 h limit. Returns how many."""
        conns = list(self.conns)
        for conn in conns:
            self.detach(conn)
            task = asyncio.get_running_loop().create_task(conn.close(1001, ""))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(conns)

    def send_direct(self, conn, text: str) -> bool:
        """Write one frame to one connection now, in order with the streams (a connection event
        such as spot's serverShutdown). False if the connection is not open."""
        proto = conn.protocol
        if proto.state is not State.OPEN or conn.transport is None:
            return False
        try:
            proto.send_text(text.encode())
            conn.transport.writelines(proto.data_to_send())
        except Exception as exc:   # a transport closing under us: its handler cleans up
            log.debug("sim: write to %s failed: %r", conn.remote_address, exc)
            return False
        return True

    def shutdown_all(self, text: str, seconds: float) -> int:
        """Send `text` (the serverShutdown event) to every connection now and close them with
        1001 `seconds` later; they keep their streams meanwhile. Returns how many."""
        conns = [c for c in self.conns if self.send_direct(c, text)]
        loop = asyncio.get_running_loop()

        def close_them():
            for conn in conns:
                self.detach(conn)
                task = loop.create_task(conn.close(1001, ""))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        loop.call_later(seconds, close_them)
        return len(conns)

    def describe(self) -> dict:
        return {s: {"frames": v[0], "last_id": v[1], "stalled": v[2], "malformed": v[3]}
                for s, v in sorted(self.stats.items())}
