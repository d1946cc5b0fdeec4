"""Shared-memory segments: real allocation and the space check, one writer per segment, safe
seqlock repair, no symlink followed, the CPU guard, and a heartbeat that never stops.

The full-filesystem tests run a child in a private mount namespace (`unshare -rm`) with a small
tmpfs of its own: a real ENOSPC, nothing mounted on the shared machine.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from config.settings import Settings
from ipc import names, shm
from ipc.ring import HEADER_BYTES, RingReader, RingWriter
from ipc.schema import TRADE
from ipc.state import REGISTRY_SLOT_BYTES, Heartbeat, Registry, StateBlock
from tests.support.wait import wait_for

from . import ring_procs, state_procs

ROOT = Path(__file__).resolve().parents[2]
PROC_TIMEOUT = 30


# --------------------------------------------------------------------------------------------
# 1. Allocation and the space check

def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0


def run_on_small_tmpfs(tmp_path: Path, size: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` (argv[1]: the tmpfs) in a child with a tmpfs of `size` mounted at tmp_path/shm."""
    if not _unshare_ok():
        pytest.skip("unshare -rm (a private mount namespace) is not permitted here")
    d = tmp_path / "shm"
    d.mkdir()
    script = f'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$1" -c "$2" "$0"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, str(d), sys.executable,
                           textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_full_shm_is_a_clear_error_at_creation_not_a_sigbus(tmp_path):
    # 32768 trades = 2.25 MB of records on a 1 MB tmpfs. Sparse creation succeeded and the first
    # write past 1 MB killed the writer with SIGBUS (exit -7, no traceback).
    p = run_on_small_tmpfs(tmp_path, "1m", """
        import os, sys
        import numpy as np
        from ipc import shm
        from ipc.ring import RingWriter
        from ipc.schema import TRADE
        from config.settings import Settings
        d = sys.argv[1]
        try:
            w = RingWriter(d, "tdc.BTCUSDT.futures.trade", TRADE, 32768)
        except shm.ShmSpaceError as e:
            print("ERR", e)
        else:
            w.append_many(np.zeros(32768, dtype=TRADE))
            print("WROTE")
        print("LEFT", sorted(os.listdir(d)))
        print("CHECK", shm.check_space(Settings(shm_dir=d)))
    """)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    d = tmp_path / "shm"
    lines = p.stdout.splitlines()
    assert lines[0] == (
        f"ERR cannot allocate shared-memory segment tdc.BTCUSDT.futures.trade in {d}: it needs "
        f"2363392 bytes (2.3 MB), 1.0 MB free (No space left on device); enlarge {d} "
        f"(Docker: --shm-size) or lower RING_CAPACITY / RECORD_RING_BYTES")
    assert lines[1] == "LEFT []"              # neither the segment nor its temporary is left
    need = sum(shm.pages(b) for _, b in shm.stack_segments(Settings()).values())
    assert lines[2].startswith(f"CHECK not enough shared memory in SHM_DIR={d}: the stack needs "
                               f"{need / shm.MB:.1f} MB (rings ")
    assert ", 1.0 MB free; enlarge" in lines[2]


def test_a_new_segment_is_allocated_not_sparse(segs):
    w = RingWriter(segs.dir, segs.name(), TRADE, 4096)
    size = HEADER_BYTES + 4096 * TRADE.itemsize
    assert os.stat(w.path).st_blocks * 512 >= size     # sparse: 8 blocks (the header page)
    b = StateBlock(segs.dir, segs.prefix, "alloc", size=1 << 16, writer=True)
    assert os.stat(b.path).st_blocks * 512 >= 1 << 16


def test_stack_segments_sum_exactly():
    s = Settings(shm_prefix="sp", ring_capacity=1024, polymarket_enabled=False,
                 context_enabled=False, depth_enabled=False)
    segs = shm.stack_segments(s)
    rings = {n: b for n, (w, b) in segs.items() if w == "rings"}
    # futures: aggTrade, bookTicker, markPrice, forceOrder, klines of CONTEXT_TFS (one ring);
    # spot: aggTrade, bookTicker (spot klines only for Binance-settled series: Polymarket off)
    assert rings == {
        "sp.BTCUSDT.futures.trade": 4096 + 1024 * 72, "sp.BTCUSDT.futures.quote": 4096 + 1024 * 64,
        "sp.BTCUSDT.futures.mark": 4096 + 1024 * 64, "sp.BTCUSDT.futures.liquidation": 4096 + 1024 * 72,
        "sp.BTCUSDT.futures.kline": 4096 + 1024 * 112,
        "sp.BTCUSDT.spot.trade": 4096 + 1024 * 72, "sp.BTCUSDT.spot.quote": 4096 + 1024 * 64}
    blocks = sorted(n for n, (w, _) in segs.items() if w == "state blocks")
    assert blocks == sorted(f"sp.state.{b}" for b in ("features", "bars", "quality", "edge", "anchor",
                                                      "polymarket", "chainlink", "context", "indicators"))
    assert segs["sp.registry"] == ("registry", 64 + REGISTRY_SLOT_BYTES * len(names.HEARTBEAT_NAMES))
    assert segs["sp.prometheus"] == ("api metrics", 3 * 8 * 65536)
    assert segs["sp.BTCUSDT.history.market"] == ("history rings", 4096 + 16384 * 104)
    assert len(segs) == 7 + 9 + 2 + 1
    rec = shm.stack_segments(s.replace(record_enabled=True, record_ring_bytes=1 << 20))
    frames = {n: b for n, (w, b) in rec.items() if w == "frame rings"}
    assert frames == {"sp.BTCUSDT.futures.frames": 4096 + (1 << 20), "sp.BTCUSDT.spot.frames": 4096 + (1 << 20)}


def test_check_space_counts_what_the_prefix_already_holds(segs):
    s = Settings(shm_dir=segs.dir, shm_prefix=segs.prefix, ring_capacity=1024)
    assert shm.check_space(s) is None                  # ~11 MB on this machine's /dev/shm
    missing = Settings(shm_dir=str(Path(segs.dir) / "nope"), shm_prefix=segs.prefix)
    assert shm.check_space(missing) == f"SHM_DIR={segs.dir}/nope does not exist (or is not a directory)"


# --------------------------------------------------------------------------------------------
# 2. One writer per segment

def test_second_ring_writer_in_another_process_is_refused(segs, procs):
    name = segs.name()
    q = procs.queue()
    p = procs.start(ring_procs.hold_writer, segs.dir, name, 64, q)
    assert q.get(timeout=PROC_TIMEOUT) == p.pid
    with pytest.raises(shm.SegmentBusy) as e:
        RingWriter(segs.dir, name, TRADE, 64)
    assert str(e.value) == (f"shared-memory segment {segs.path(name)} already has a writer (pid {p.pid}): "
                            f"one writer per segment — is another stack running with the same SHM_PREFIX?")
    with pytest.raises(shm.SegmentBusy):
        RingWriter(segs.dir, name, TRADE, 128)        # nor replaced with another layout under it
    assert RingReader(segs.dir, name, TRADE, from_oldest=True).read()["trade_id"].tolist() == [0, 1, 2]
    os.kill(p.pid, signal.SIGKILL)
    p.join(PROC_TIMEOUT)
    w = RingWriter(segs.dir, name, TRADE, 64)          # the kernel dropped the dead writer's lock
    assert w.created is False and w.count == 3


def test_second_frame_ring_writer_in_another_process_is_refused(segs, procs):
    from ipc.framering import FrameRingWriter
    name = segs.name()
    q = procs.queue()
    p = procs.start(ring_procs.hold_frame_writer, segs.dir, name, 1 << 16, q)
    assert q.get(timeout=PROC_TIMEOUT) == p.pid
    with pytest.raises(shm.SegmentBusy) as e:
        FrameRingWriter(segs.dir, name, 1 << 16)
    assert str(e.value) == (f"shared-memory segment {segs.path(name)} already has a writer (pid {p.pid}): "
                            f"one writer per segment — is another stack running with the same SHM_PREFIX?")
    os.kill(p.pid, signal.SIGKILL)
    p.join(PROC_TIMEOUT)
    w = FrameRingWriter(segs.dir, name, 1 << 16)       # the kernel dropped the dead writer's lock
    assert w.created is False and w.frames == 1
    w.close()


def test_state_block_writer_in_another_process_is_refused(segs, procs):
    q = procs.queue()
    p = procs.start(state_procs.hold_block, segs.dir, segs.prefix, q)
    assert q.get(timeout=PROC_TIMEOUT) == p.pid
    path = segs.path(f"{segs.prefix}.state.one")
    with pytest.raises(shm.SegmentBusy) as e:
        StateBlock(segs.dir, segs.prefix, "one", writer=True)
    assert str(e.value) == (f"shared-memory segment {path} already has a writer (pid {p.pid}): "
                            f"one writer per segment — is another stack running with the same SHM_PREFIX?")
    assert StateBlock(segs.dir, segs.prefix, "one").read() == {"v": 1}    # readers are not writers
    os.kill(p.pid, signal.SIGKILL)
    p.join(PROC_TIMEOUT)
    assert StateBlock(segs.dir, segs.prefix, "one", writer=True).read() == {"v": 1}


def test_writers_in_one_process_share_the_lock_until_the_last_closes(segs, procs):
    # a new writer object in the same process takes the segment over as a restart would (what
    # in-process restart tests do); the lock goes when the last of them closes
    name = segs.name()
    w1 = RingWriter(segs.dir, name, TRADE, 64)
    w2 = RingWriter(segs.dir, name, TRADE, 64)
    assert w2.created is False
    q = procs.queue()
    w1.close()
    p = procs.start(ring_procs.try_writer, segs.dir, name, 64, q)
    assert q.get(timeout=PROC_TIMEOUT).startswith(f"SegmentBusy shared-memory segment {segs.path(name)} "
                                                  f"already has a writer (pid {os.getpid()})")
    p.join(PROC_TIMEOUT)
    w2.close()
    p = procs.start(ring_procs.try_writer, segs.dir, name, 64, q)
    assert q.get(timeout=PROC_TIMEOUT) == "ok"
    p.join(PROC_TIMEOUT)


# --------------------------------------------------------------------------------------------
# 3. Seqlock repair after a writer killed mid-write

def seq(reader: StateBlock) -> int:
    """The block's seqlock counter (opening the block once it exists), -1 before it does."""
    if reader._region is None:
        reader.read_bytes()
    return reader._region.seq if reader._region is not None else -1


def test_repair_after_writer_killed_mid_write_never_serves_the_half_written_payload(segs, procs):
    n = 4 << 20                                        # a 4 MB copy: a kill most likely lands in it
    reader = StateBlock(segs.dir, segs.prefix, "torn")
    caught = False
    for _attempt in range(10):
        seq0 = seq(reader)
        p = procs.start(state_procs.big_payload_writer, segs.dir, segs.prefix, 8 << 20, n)
        # counted on the seqlock itself: a reader may never catch an even seq between 4 MB
        # copies on a busy machine, so "a payload read" is no condition to wait on
        wait_for(lambda: seq(reader) >= seq0 + 6, PROC_TIMEOUT, "three writes")
        os.kill(p.pid, signal.SIGKILL)
        p.join(PROC_TIMEOUT)
        if reader._region.seq & 1:
            caught = True
            break
    assert caught, "no SIGKILL landed mid-write in 10 tries"
    assert reader._region.read(retries=50) is None     # odd: busy, never a torn read
    w = StateBlock(segs.dir, segs.prefix, "torn", size=8 << 20, writer=True)
    assert w.repaired is True
    assert reader._region.seq % 2 == 0
    assert reader.read_bytes() is None                 # "no data", not the half-copied payload
    assert reader.read() is None
    w.write({"v": 2})
    assert reader.read() == {"v": 2}


# --------------------------------------------------------------------------------------------
# 4. No symlink followed

def test_planted_symlink_at_the_temporary_is_refused(segs, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    name = segs.name()
    tmp = Path(segs.dir) / f".{name}.{os.getpid()}.tmp"
    os.symlink(victim, tmp)
    try:
        with pytest.raises(shm.ShmError, match=r"refusing to create shared-memory segment through .*: "
                                               r"it already exists and is not our own leftover"):
            RingWriter(segs.dir, name, TRADE, 64)
    finally:
        os.unlink(tmp)
    assert victim.read_bytes() == b"precious"          # followed: truncated to a ring's size
    assert not segs.path(name).exists()


def test_planted_symlink_at_the_segment_is_refused(segs, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    name = segs.name()
    os.symlink(victim, segs.path(name))
    with pytest.raises(shm.ShmError, match="it is a symlink"):
        RingWriter(segs.dir, name, TRADE, 64)
    with pytest.raises(shm.ShmError, match="it is a symlink"):
        shm.open_existing(segs.path(name))          # what every reader opens with
    assert victim.read_bytes() == b"precious"


def test_own_leftover_temporary_is_replaced(segs):
    name = segs.name()
    tmp = Path(segs.dir) / f".{name}.{os.getpid()}.tmp"
    tmp.write_bytes(b"left by a dead process of the same pid")
    w = RingWriter(segs.dir, name, TRADE, 64)
    assert w.created and not tmp.exists()


# --------------------------------------------------------------------------------------------
# 5. The CPU guard

def test_weakly_ordered_cpu_is_refused(segs, monkeypatch):
    msg = ("refusing to run on CPU 'aarch64': the shared-memory rings and state blocks rely on x86-64 "
           "(TSO) memory ordering, which Python cannot fence; on a weakly ordered CPU (ARM, POWER, "
           "RISC-V) a reader could take a torn record for data. Run on x86-64.")
    assert shm.platform_error("x86_64") is None and shm.platform_error("AMD64") is None
    assert shm.platform_error("aarch64") == msg
    monkeypatch.setattr(shm.platform, "machine", lambda: "aarch64")
    assert shm.check_space(Settings(shm_dir=segs.dir, shm_prefix=segs.prefix)) == msg
    with pytest.raises(shm.ShmError) as e:
        RingWriter(segs.dir, segs.name(), TRADE, 64)
    assert str(e.value) == msg
    with pytest.raises(shm.ShmError):
        RingReader(segs.dir, segs.name(), TRADE)
    assert segs.leftovers() == []


# --------------------------------------------------------------------------------------------
# 6. A heartbeat that outgrows its slot

def test_heartbeat_outgrowing_its_slot_is_trimmed_counted_and_logged_once(segs, caplog):
    reg = Registry(segs.dir, segs.prefix)
    hb = Heartbeat(reg, "feed_futures")
    streams = {f"s{i}": {"age_ms": list(range(100))} for i in range(60)}     # ~18 KB
    assert len(orjson.dumps(streams)) > REGISTRY_SLOT_BYTES
    with caplog.at_level(logging.WARNING, logger="ipc.state"):
        for _ in range(3):
            hb.beat({"written": 7}, streams=streams, connections={"market": 1},
                    starts={"total": 2, "recent": 1, "window_sec": 300, "crash_loop": False, "backoff_sec": 0.0})
    doc = reg.read("feed_futures")
    assert doc["counters"] == {"written": 7} and doc["connections"] == {"market": 1}
    assert doc["truncated"] == ["streams"] and "streams" not in doc
    assert doc["starts"]["total"] == 2
    assert hb.truncated == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "ipc.state"]
    assert warnings == ["heartbeat of feed_futures outgrew its 16368-byte registry slot: "
                        "dropped streams (logged once)"]
    hb.beat({"written": 8})                            # back to normal: whole again
    assert reg.read("feed_futures")["counters"] == {"written": 8}
    assert "truncated" not in reg.read("feed_futures")


def test_heartbeat_with_huge_counters_or_junk_still_beats(segs):
    reg = Registry(segs.dir, segs.prefix)
    hb = Heartbeat(reg, "compute")
    hb.beat({f"c{i}": i for i in range(3000)}, note="x" * 100)
    doc = reg.read("compute")
    assert doc["truncated"] == ["note", "counters"] and doc["pid"] == os.getpid()
    hb.beat({"ok": 1}, bad=object())                   # not serialisable: core + the error
    doc = reg.read("compute")
    assert doc["actor"] == "compute" and doc["heartbeat_error"].startswith("Type is not JSON serializable")
    assert "counters" not in doc and "bad" not in doc


def test_run_py_refuses_a_stack_that_does_not_fit_and_starts_nothing(tmp_path):
    # the whole stack (~184 MB) on a 16 MB tmpfs: run.py exits 4 with the figures, before supervisord
    p = run_on_small_tmpfs(tmp_path, "16m", """
        import os, subprocess, sys
        d = sys.argv[1]
        env = {**os.environ, "SHM_DIR": d, "SHM_PREFIX": "nospace", "LOG_DIR": os.path.join(d, "..", "logs")}
        r = subprocess.run([sys.executable, "run.py", "--sim"], env=env, capture_output=True, text=True,
                           timeout=60)
        print("RC", r.returncode)
        print("ERR", r.stderr.strip().splitlines()[-1])
        print("LEFT", sorted(n for n in os.listdir(d) if not n.startswith(".")))
    """)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    d = tmp_path / "shm"
    rc, err, left = p.stdout.splitlines()
    assert rc == "RC 4" and left == "LEFT []"
    need = sum(shm.pages(b) for _, b in shm.stack_segments(Settings()).values())
    assert err.startswith(f"ERR not enough shared memory in SHM_DIR={d}: the stack needs {need / shm.MB:.1f} MB"), err
    assert "16.0 MB free; enlarge" in err, err
