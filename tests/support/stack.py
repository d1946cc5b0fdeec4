"""A real stack of chosen actors (by default sim + bus + both Binance feeds) as separate
`python run.py <actor>` processes on free ports and their own shm prefix, for the feed, rotation,
fault and Polymarket tests; stopped with SIGTERM, every segment of the prefix unlinked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipc import names
from ipc.ring import RingReader
from ipc.schema import FLAG_GAP
from ipc.shm import unlink_prefix
from ipc.state import Registry
from tests.support.ports import free_port
from tests.support.rings import open_reader
from tests.support.system import ROOT
from tests.support.wait import wait_for


@dataclass
class Stack:
    tmp: Path
    env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)

    def start(self, actors=("sim", "bus", "feed_futures", "feed_spot"), **overrides) -> "Stack":
        sim, spot, poly = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("FUTURES_", "SPOT_", "ZMQ_", "SIM_", "FEED_", "SHM_", "POLYMARKET_"))}
        self.env.update(
            SHM_PREFIX="f" + uuid.uuid4().hex[:8], SIM_PORT=str(sim), SIM_SPOT_PORT=str(spot),
            SIM_POLY_PORT=str(poly), POLYMARKET_GAMMA_URL=f"http://127.0.0.1:{poly}/gamma",
            POLYMARKET_CLOB_URL=f"http://127.0.0.1:{poly}/clob",
            POLYMARKET_WS_URL=f"ws://127.0.0.1:{poly}/ws/market",
            POLYMARKET_RTDS_URL=f"ws://127.0.0.1:{poly}/rtds",
            FUTURES_WS=f"ws://127.0.0.1:{sim}", FUTURES_REST=f"http://127.0.0.1:{sim}",
            SPOT_WS=f"ws://127.0.0.1:{spot}", SPOT_REST=f"http://127.0.0.1:{spot}",
            ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}",
            FEED_STALE_SEC="2", FEED_BACKOFF_MAX_SEC="1", DECISION_LOG_DIR=str(self.tmp / "decisions"), CONTEXT_TFS="1m", LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1")
        self.env.update(overrides)
        for a in actors:
            self.procs[a] = subprocess.Popen([sys.executable, "run.py", a], cwd=ROOT, env=self.env,
                                             stdout=open(self.tmp / f"{a}.log", "ab"),
                                             stderr=subprocess.STDOUT)
        self.registry = wait_for(lambda: self._registry(), 20, "the registry")
        return self

    def _registry(self):
        p = Path("/dev/shm") / f"{self.env['SHM_PREFIX']}.registry"
        return Registry("/dev/shm", self.env["SHM_PREFIX"]) if p.exists() else None

    @property
    def futures_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SIM_PORT']}"

    @property
    def poly_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SIM_POLY_PORT']}"

    @property
    def spot_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SIM_SPOT_PORT']}"

    def hb(self, actor: str) -> dict:
        return self.registry.read(actor) or {}

    def feed(self, actor: str = "feed_futures") -> dict:
        return self.hb(actor).get("feed") or {}

    def stream(self, kind: str, actor: str = "feed_futures") -> dict:
        return self.feed(actor).get("streams", {}).get(kind, {})

    def conn(self, name: str, actor: str = "feed_futures") -> dict:
        return self.feed(actor).get("connections", {}).get(name, {})

    def reader(self, venue: str, kind: str, from_oldest: bool = False) -> RingReader:
        return open_reader(names.venue_ring(venue, kind), self.env["SHM_PREFIX"], from_oldest=from_oldest)

    def settled(self, actor: str, kind: str, reader: RingReader) -> dict:
        """The feed's counters once its heartbeat has caught up with the ring (a consistent view)."""
        return wait_for(lambda: (lambda st: st if st.get("ring_count") == reader.published else None)(
            self.stream(kind, actor)), 10, f"{actor} {kind} heartbeat to match the ring")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                         for p in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        unlink_prefix("/dev/shm", self.env["SHM_PREFIX"])


def trade_accounting(recs: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(data records, gap records, ids skipped between consecutive data records)."""
    gaps = int(((recs["flags"] & FLAG_GAP) != 0).sum())
    data = recs[(recs["flags"] & FLAG_GAP) == 0]
    ids = data["trade_id"]
    assert (np.diff(ids) > 0).all(), "trade ids must strictly increase: a duplicate or reorder got in"
    skipped = int((np.diff(ids) - 1).sum()) if len(ids) > 1 else 0
    return data, gaps, skipped
