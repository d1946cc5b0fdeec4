"""Process bodies for the state tests (importable under the spawn start method)."""
from __future__ import annotations

import orjson


def seqlock_writer(shm_dir: str, prefix: str, n: int) -> None:
    from ipc.state import StateBlock
    b = StateBlock(shm_dir, prefix, "torture", size=1 << 16, writer=True)
    for i in range(1, n + 1):
        # variable length, self-checking payload: every element equals i
        b.write_bytes(orjson.dumps({"i": i, "xs": [i] * (1 + i % 300)}))


def heartbeat_then_exit(shm_dir: str, prefix: str) -> None:
    from ipc.state import Heartbeat, Registry
    Heartbeat(Registry(shm_dir, prefix), "feed_futures").beat({"written": 7})
