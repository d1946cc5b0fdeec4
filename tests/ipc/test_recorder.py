"""The recorder against a real frame ring and real files: exactly once across a crash, and a
full disk is an alert that loses nothing once the disk is usable again."""
from __future__ import annotations

import os
from collections import Counter

from ipc import recording
from actors.recorder import VenueRecorder
from config.settings import Settings
from ipc.framering import FrameTap


def _settings(segs, tmp_path, **kw):
    return Settings(shm_dir=segs.dir, shm_prefix=segs.prefix, record_enabled=True,
                    record_dir=str(tmp_path / "rec"), record_ring_bytes=1 << 20, **kw)


def _feed(tap, n0, n):
    for i in range(n0, n0 + n):
        tap("market", "btcusdt@aggTrade" if i % 2 else "btcusdt@bookTicker",
            b'{"i":%d}' % i, 1_795_000_000_000_000_000 + i * 1_000_000)


def _seqs(root, venue="futures"):
    return Counter(r["seq"] for r in recording.iter_venue(root, venue))


def test_crash_after_a_flush_before_its_checkpoint_records_each_frame_once(segs, tmp_path):
    s = _settings(segs, tmp_path, record_buffer_size=10)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    path = tap.ring.path
    r = VenueRecorder(s, path, "futures")
    _feed(tap, 0, 25)
    while r.poll(0.0):
        pass
    r.flush(0.0)
    assert r.report()["recorded"] == 25
    # a recorder killed between appending members and writing the checkpoint: files ahead of it
    ck = recording.load_checkpoint(r.dir)
    _feed(tap, 25, 7)
    r.poll(0.0)
    r.flush(0.0)
    recording.save_checkpoint(r.dir, ck)          # as if the new checkpoint never got written
    r2 = VenueRecorder(s, path, "futures")        # the restarted recorder
    _feed(tap, 32, 3)
    while r2.poll(0.0):
        pass
    r2.flush(0.0)
    seqs = _seqs(tmp_path / "rec")
    assert sorted(seqs) == list(range(35)) and max(seqs.values()) == 1
    assert r2.report()["recorded"] == 35 and r2.report()["lost"] == 0
    frames = [rec["frame"] for rec in recording.iter_venue(tmp_path / "rec", "futures")]
    assert frames == ['{"i":%d}' % i for i in range(35)]


def test_full_disk_is_an_alert_and_nothing_is_lost(segs, tmp_path):
    s = _settings(segs, tmp_path, record_buffer_size=5)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    _feed(tap, 0, 6)
    r.poll(0.0)
    assert r.report()["recorded"] == 6
    # the next file written is on a device that is always full (ENOSPC from the kernel)
    f = r.dir / "btcusdt@aggTrade" / recording.period_name(1_795_000_000_000_000_000, s.record.record_rotate_sec)
    f.rename(f.with_suffix(".keep"))
    os.symlink("/dev/full", f)
    _feed(tap, 6, 6)
    r.poll(0.0)
    rep = r.report()
    assert rep["error"] is not None and "No space left on device" in rep["error"]
    assert rep["recorded"] == 6 and rep["write_errors"] == 1
    _feed(tap, 12, 4)                             # the feed keeps appending meanwhile
    assert r.poll(0.5) == 0                       # before the retry time: nothing attempted
    f.unlink()                                    # space again
    f.with_suffix(".keep").rename(f)
    while r.poll(10.0):
        pass
    if r.n_pending:
        r.flush(10.0)
    rep = r.report()
    assert rep["error"] is None and rep["recorded"] == 16 and rep["lost"] == 0
    seqs = _seqs(tmp_path / "rec")
    assert sorted(seqs) == list(range(16)) and max(seqs.values()) == 1


def test_alert_reaches_state(segs, tmp_path):
    """The recorder's heartbeat carries the disk error; /state lists it under `alerts`."""
    import falcon.testing

    from actors.api import ShmView, create_app
    from actors.recorder import Recorder
    s = _settings(segs, tmp_path, record_buffer_size=1)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    rec = Recorder(s)
    rec.scan()
    (tmp_path / "rec" / "futures" / "btcusdt@aggTrade").mkdir(parents=True)
    os.symlink("/dev/full", tmp_path / "rec" / "futures" / "btcusdt@aggTrade" /
               recording.period_name(1_795_000_000_001_000_000, s.record.record_rotate_sec))
    _feed(tap, 1, 1)
    for v in rec.venues.values():
        v.poll(0.0)
    rec.beat()
    client = falcon.testing.TestClient(create_app(ShmView(s), s))
    body = client.simulate_get("/state").json
    assert body["alerts"] and body["alerts"][0]["actor"] == "recorder"
    assert "futures: cannot write" in body["alerts"][0]["alert"]
    assert body["actors"]["recorder"]["counters"]["disk_ok"] == 0


def test_a_new_ring_incarnation_is_a_new_run(segs, tmp_path):
    """A full stop and start makes a new ring: counts start again, old files stay, runs are told apart."""
    from ipc.shm import unlink_prefix
    s = _settings(segs, tmp_path, record_buffer_size=1)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    _feed(tap, 0, 4)
    while r.poll(0.0):
        pass
    tap.ring.close()
    unlink_prefix(segs.dir, segs.prefix)
    tap2 = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r2 = VenueRecorder(s, tap2.ring.path, "futures")
    _feed(tap2, 100, 3)
    while r2.poll(0.0):
        pass
    assert r2.report()["recorded"] == 3 == r2.report()["ring_frames"]
    recs = list(recording.iter_venue(tmp_path / "rec", "futures"))
    assert [(rec["seq"], rec["frame"]) for rec in recs] == \
        [(i, '{"i":%d}' % i) for i in range(4)] + [(i, '{"i":%d}' % (100 + i)) for i in range(3)]
    assert len({rec["run"] for rec in recs}) == 2
