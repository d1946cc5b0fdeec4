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


def big_payload_writer(shm_dir: str, prefix: str, size: int, n: int) -> None:
    """Alternate two payloads of `n` bytes (all 'a', all 'b') forever: most of the time is spent
    copying one, so a SIGKILL most likely lands mid-write (seq odd)."""
    from ipc.state import StateBlock
    b = StateBlock(shm_dir, prefix, "torn", size=size, writer=True)
    payloads = (b'"' + b"a" * (n - 2) + b'"', b'"' + b"b" * (n - 2) + b'"')
    i = 0
    while True:
        b.write_bytes(payloads[i & 1])
        i += 1


def hold_block(shm_dir: str, prefix: str, q) -> None:
    """Process body: be the writer of block "one", write {"v": 1}, report, hold it until killed."""
    import os
    import time
    from ipc.state import StateBlock
    b = StateBlock(shm_dir, prefix, "one", writer=True)
    b.write({"v": 1})
    q.put(os.getpid())
    while True:
        time.sleep(1)
