"""The context actor in-process for tests: its class on its own thread and event loop (with a
clock the test sets), read back from shared memory; and a stand-in for the bus's XSUB that
collects the actor's `context.<SYMBOL>` messages."""
from __future__ import annotations

import asyncio
import threading

import orjson
import zmq

from actors.context import Context
from ipc import names
from ipc.state import Registry, StateBlock

SHM_DIR = "/dev/shm"
SYMBOL = "BTCUSDT"


class Sub:
    """Stands in for the bus's XSUB: binds where the actor's publisher connects and keeps reading
    on its own thread (like the bus proxy), so the subscription reaches the publisher at once."""

    def __init__(self):
        self.got: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self):
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        self.port = sock.bind_to_random_port("tcp://127.0.0.1")
        sock.setsockopt(zmq.SUBSCRIBE, names.context_topic(SYMBOL).encode())
        self._ready.set()
        try:
            while not self._stop.is_set():
                if sock.poll(20):
                    topic, payload = sock.recv_multipart()
                    assert topic == names.context_topic(SYMBOL).encode()
                    with self._lock:
                        self.got.append(orjson.loads(payload))
        finally:
            sock.close(0)
            ctx.term()

    def messages(self) -> list[dict]:
        with self._lock:
            return list(self.got)

    def close(self):
        self._stop.set()
        self._thread.join(5)


class Actor:
    """The actor on its own thread and event loop; `stop()` ends it and re-raises its failure."""

    def __init__(self, s, clock):
        self.s = s
        self.ctx = Context(s, clock_ns=clock.now_ns)
        self.exc: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            asyncio.run(self.ctx.run())
        except BaseException as exc:       # reported by stop()
            self.exc = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        if self.thread.is_alive():
            self.ctx.stop()
            self.thread.join(15)
            assert not self.thread.is_alive(), "the actor did not stop"
        if self.exc is not None:
            raise self.exc

    # --- what the test reads from shared memory ------------------------------------------------
    def state(self) -> dict:
        return StateBlock(SHM_DIR, self.s.ipc.shm_prefix, names.CONTEXT_BLOCK).read() or {}

    def tf(self, tf: str) -> dict:
        return self.state().get("tfs", {}).get(tf, {})

    def bootstrapped(self) -> bool:
        st = self.state()
        return (st.get("start_ns") == self.ctx.hb.start_ns      # this run's, not a predecessor's
                and all(v["bootstrapped"] for v in st["tfs"].values()))

    def heartbeat(self) -> dict:
        return Registry(SHM_DIR, self.s.ipc.shm_prefix).read("context") or {}
