"""A bus tap for tests: an ipc.bus Subscriber on a thread keeping every message (and its seq/boot
verdict) from the moment it is created, so nothing queues up and drops while a test is busy."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson

from ipc.bus import Subscriber
from tests.support.wait import wait_for


@dataclass
class BusEvent:
    t: float                 # time.monotonic() when received
    topic: str
    seq: int
    boot: int
    lost: int                # messages missing just before this one (by seq)
    restarted: bool          # the publisher's boot changed
    gap: bool                # a feed's gap message
    msg: dict | None = None  # the message itself


class BusTap:
    """A Subscriber (ipc.bus) on a thread; every message's verdict is kept. A seq that does not
    move forward under the same boot is a silent anomaly: kept in `regressions`."""

    def __init__(self, url: str, prefixes: tuple[str, ...]):
        self.sub = Subscriber(url, prefixes)
        self.events: list[BusEvent] = []
        self.regressions: list[tuple] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.t = threading.Thread(target=self._run, name="bus-tap", daemon=True)
        self.t.start()

    def _run(self) -> None:
        sock = self.sub.sock
        while not self._stop.is_set():
            if not sock.poll(100):
                continue
            t, payload = sock.recv_multipart()
            topic, msg = t.decode(), orjson.loads(payload)
            prev = self.sub.tracks.get(topic)
            pb, ps = (prev.boot, prev.seq) if prev is not None and prev.received else (None, None)
            ev = self.sub.observe(topic, msg)
            if pb is not None and msg.get("boot") == pb and msg.get("seq") <= ps:
                self.regressions.append((topic, ps, msg.get("seq")))
            with self._lock:
                self.events.append(BusEvent(time.monotonic(), topic, msg.get("seq"), msg.get("boot"),
                                            ev.lost, ev.restarted, bool(msg.get("gap")), msg))

    def since(self, t0: float, topic: str | None = None) -> list[BusEvent]:
        with self._lock:
            evs = list(self.events)
        return [e for e in evs if e.t >= t0 and (topic is None or e.topic == topic)]

    def messages(self, topic: str) -> list[dict]:
        """Every message received on `topic`, in order."""
        return [e.msg for e in self.since(0.0, topic)]

    def anomalies(self) -> list[BusEvent]:
        """Every message that came after a loss or from a restarted publisher."""
        return [e for e in self.since(0.0) if e.lost or e.restarted]

    def last_boot(self, topic: str) -> int | None:
        tr = self.sub.tracks.get(topic)
        return tr.boot if tr is not None and tr.received else None

    def first_of_new_boot(self, topic: str, t0: float, old_boot: int, timeout: float) -> BusEvent:
        """The first message on `topic` after t0 from a publisher other than `old_boot`."""
        def find():
            return next((e for e in self.since(t0, topic) if e.boot != old_boot), None)
        return wait_for(find, timeout, f"a message on {topic} from the restarted publisher")

    def close(self) -> None:
        self._stop.set()
        self.t.join(5)
        self.sub.close()
