"""The recorder against a real frame ring and real files: exactly once across a crash, and a
full disk is an alert that loses nothing once the disk is usable again."""
from __future__ import annotations

import os
from collections import Counter

import pytest

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


def test_crash_before_the_first_checkpoint_records_each_frame_once(segs, tmp_path):
    s = _settings(segs, tmp_path, record_buffer_size=10)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    _feed(tap, 0, 25)
    while r.poll(0.0):
        pass
    r.flush(0.0)
    written = recording.venue_files(tmp_path / "rec", "futures")
    assert written
    (r.dir / recording.CHECKPOINT).unlink()        # killed after its files, before any checkpoint
    r2 = VenueRecorder(s, tap.ring.path, "futures")  # reads the ring again from its oldest frame
    _feed(tap, 25, 3)
    while r2.poll(0.0):
        pass
    r2.flush(0.0)
    seqs = _seqs(tmp_path / "rec")
    assert sorted(seqs) == list(range(28)) and max(seqs.values()) == 1
    # the first recorder's files are kept, aside and out of the recording
    assert all(f.with_name(f.name + ".uncheckpointed").is_file() for f in written)


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


HOSTILE = ["..", ".", "../../escaped", "a" * 300, "a\x00b", "x/y", "", "checkpoint.json", ".hidden",
           "lone\ud800surrogate", "%2E%2E", "é" * 130]


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_hostile_stream_names_stay_in_the_venue_folder_and_recording_goes_on(segs, tmp_path):
    """A venue's stream name is its own text: "..", ".", NUL, over 255 bytes, "/", the checkpoint's
    name... each becomes one safe directory under the venue folder, counted by reason; every frame
    is recorded with its name as sent, and a restart resumes from the checkpoint."""
    s = _settings(segs, tmp_path, record_buffer_size=1000)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    ts0 = 1_795_000_000_000_000_000
    for i, name in enumerate(HOSTILE):
        tap("market", name, b'{"i":%d}' % i, ts0 + i)
    tap("market", "btcusdt@aggTrade", b'{"i":99}', ts0 + 99)
    while r.poll(0.0):
        pass
    assert r.flush(0.0) and r.report()["error"] is None
    rec = tmp_path / "rec"
    files = _tree(rec)
    # everything is <venue>/<one dir>/<period file>, or the checkpoint
    assert all(f == "futures/checkpoint.json" or (f.startswith("futures/") and f.count("/") == 2)
               for f in files), files
    assert len(files) == 1 + len(HOSTILE) + 1           # one directory per distinct name
    dirs = sorted({f.split("/")[1] for f in files if f.count("/") == 2})
    assert "%2E." in dirs and "%2E" in dirs and "%63heckpoint.json" in dirs and "a%00b" in dirs
    assert "x_y" in dirs and "_empty" in dirs and "%252E%252E" in dirs
    assert max(len(d.encode()) for d in dirs) <= recording.STREAM_DIR_MAX
    got = [(x["seq"], x["stream"], x["frame"]) for x in recording.iter_venue(rec, "futures")]
    want = [(i, n.encode(errors="backslashreplace").decode(), '{"i":%d}' % i) for i, n in enumerate(HOSTILE)]
    assert got == want + [(len(HOSTILE), "btcusdt@aggTrade", '{"i":99}')]
    assert r.report()["stream_names"] == {"dot": 4, "chars": 2, "control": 1, "too_long": 2,
                                          "empty": 1, "reserved": 1}
    # restarted: resumes from the checkpoint, the same names go to the same directories
    r2 = VenueRecorder(s, tap.ring.path, "futures")
    tap("market", "..", b'{"i":100}', ts0 + 100)
    while r2.poll(0.0):
        pass
    assert r2.flush(0.0)
    assert [x["seq"] for x in recording.iter_venue(rec, "futures")] == list(range(len(HOSTILE) + 2))
    assert _tree(rec) == files and r2.report()["recorded"] == len(HOSTILE) + 2


def test_a_venue_inventing_stream_names_shares_one_overflow_directory(segs, tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "MAX_STREAM_DIRS", 4)
    s = _settings(segs, tmp_path, record_buffer_size=1000)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    for i in range(10):
        tap("market", f"s{i}", b"{}", 1_795_000_000_000_000_000 + i)
    while r.poll(0.0):
        pass
    assert r.flush(0.0)
    dirs = sorted(p.name for p in r.dir.iterdir() if p.is_dir())
    assert dirs == ["_overflow", "s0", "s1", "s2", "s3"]
    assert r.report()["stream_names"] == {"too_many_streams": 6}
    assert [x["stream"] for x in recording.iter_venue(tmp_path / "rec", "futures")] == [f"s{i}" for i in range(10)]


def test_data_is_fsynced_before_the_checkpoint_that_claims_it(segs, tmp_path, monkeypatch):
    """Power loss: a checkpoint must never claim bytes the disk may not have. Every data file a flush
    appended to is fsynced, and every directory that got a new entry, before the checkpoint is
    renamed into place; the venue directory after the rename (the rename itself is durable)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(b)))
        real_replace(a, b)

    s = _settings(segs, tmp_path, record_buffer_size=1000)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _feed(tap, 0, 4)
    r.poll(0.0)
    assert r.flush(0.0)
    vdir = str(r.dir)
    period = recording.period_name(1_795_000_000_000_000_000, s.record.record_rotate_sec)
    trade, quote = f"{vdir}/btcusdt@aggTrade/{period}", f"{vdir}/btcusdt@bookTicker/{period}"
    ck = f"{vdir}/{recording.CHECKPOINT}"
    i_ck = events.index(("replace", ck))
    before, after = events[:i_ck], events[i_ck + 1:]
    # new files in new directories: the files, their directories and the venue directory, in that order
    assert sorted(before[:2]) == [("fsync", trade), ("fsync", quote)]
    assert sorted(before[2:5]) == [("fsync", vdir), ("fsync", f"{vdir}/btcusdt@aggTrade"),
                                   ("fsync", f"{vdir}/btcusdt@bookTicker")]
    assert before[5:] == [("fsync", f"{vdir}/.{recording.CHECKPOINT}.tmp")]
    assert after == [("fsync", vdir)]
    events.clear()                                # appending to existing files: no directory changed
    _feed(tap, 4, 2)
    r.poll(0.0)
    assert r.flush(0.0)
    assert sorted(events[:2]) == [("fsync", trade), ("fsync", quote)]
    assert events[2:] == [("fsync", f"{vdir}/.{recording.CHECKPOINT}.tmp"), ("replace", ck), ("fsync", vdir)]


def _member(seqs, run="1-1"):
    import gzip
    return gzip.compress(b"".join(recording.encode_line(i, 1_795_000_000_000_000_000 + i, "c", "s", b"{}", "", run)
                                  for i in seqs), mtime=0)


def test_reading_reports_damage_with_file_and_offset_and_goes_on(tmp_path, caplog):
    """A bad CRC, junk between members, a truncated tail and a line that is not JSON: each is
    reported (file, offset, bytes skipped, reason) and logged; every whole member is still read,
    in this file and the next."""
    d = tmp_path / "rec" / "futures" / "s"
    d.mkdir(parents=True)
    m1, m2, m3, m4, m5 = (_member(range(i, i + 3)) for i in (0, 3, 6, 9, 12))
    bad_crc = m2[:-8] + bytes([m2[-8] ^ 0xFF]) + m2[-7:]
    junk = b"JUNK" * 10
    f1 = d / ("20261118T100000Z" + recording.SUFFIX)
    f1.write_bytes(m1 + bad_crc + m3 + junk + m4 + m5[:len(m5) // 2])
    import gzip
    m6 = gzip.compress(recording.encode_line(15, 1, "c", "s", b"{}", "", "1-1") + b"not json\n", mtime=0)
    f2 = d / ("20261118T110000Z" + recording.SUFFIX)
    f2.write_bytes(_member([16, 17]) + m6 + _member([18]))
    damage = []
    caplog.set_level("WARNING", logger="recording")
    seqs = [r["seq"] for r in recording.iter_venue(tmp_path / "rec", "futures", damage)]
    assert seqs == [0, 1, 2, 6, 7, 8, 9, 10, 11, 16, 17, 15, 18]
    o2, o_junk = len(m1), len(m1) + len(m2) + len(m3)
    o5 = o_junk + len(junk) + len(m4)
    assert damage == [recording.Damage(str(f1), o2, len(m2), "bad member"),
                      recording.Damage(str(f1), o_junk, len(junk), "bad member"),
                      recording.Damage(str(f1), o5, len(m5) // 2, "truncated tail"),
                      recording.Damage(str(f2), len(_member([16, 17])), len(m6), "bad line (1 lines)")]
    assert sum("recording damaged" in m for m in caplog.messages) == 4
    assert f"{f1} at byte {o2}: bad member" in caplog.text
    assert recording.whole_members(f1.read_bytes()) == len(m1)


def test_checkpoint_lists_only_the_open_period_and_resume_keeps_finished_files(segs, tmp_path):
    """60 periods of 2 streams: the checkpoint's file map holds the 2 files of the open period, not
    120. A recorder killed after writing into a new period, before its checkpoint, restarts: the
    finished files stay as they are, the new period's files are rewritten once."""
    s = _settings(segs, tmp_path, record_buffer_size=1000, record_rotate_sec=1)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    ts0 = 1_795_000_000_000_000_000
    for p in range(60):                          # 2 frames a period, a flush a period
        for k in range(2):
            tap("market", ("btcusdt@aggTrade", "btcusdt@bookTicker")[k], b'{"i":%d}' % (2 * p + k),
                ts0 + p * 1_000_000_000 + k)
        r.poll(0.0)
        assert r.flush(0.0)
    ck = recording.load_checkpoint(r.dir)
    assert len(recording.venue_files(tmp_path / "rec", "futures")) == 120
    assert ck["open_period_sec"] == ts0 // 10 ** 9 + 59
    assert sorted(ck["files"]) == [f"btcusdt@aggTrade/{recording.period_name(ts0 + 59 * 10 ** 9, 1)}",
                                   f"btcusdt@bookTicker/{recording.period_name(ts0 + 59 * 10 ** 9, 1)}"]
    finished = {f: f.read_bytes() for f in recording.venue_files(tmp_path / "rec", "futures")}
    # killed after appending period 60 (new files) and more of period 59, before the checkpoint
    tap("market", "btcusdt@aggTrade", b'{"i":120}', ts0 + 59 * 10 ** 9 + 5)
    tap("market", "btcusdt@aggTrade", b'{"i":121}', ts0 + 60 * 10 ** 9)
    tap("market", "btcusdt@trade", b'{"i":122}', ts0 + 60 * 10 ** 9 + 1)
    r.poll(0.0)
    r.flush(0.0)
    recording.save_checkpoint(r.dir, ck)
    r2 = VenueRecorder(s, tap.ring.path, "futures")
    assert {f: f.read_bytes() for f in recording.venue_files(tmp_path / "rec", "futures")} == finished
    tap("market", "btcusdt@aggTrade", b'{"i":123}', ts0 + 60 * 10 ** 9 + 2)
    while r2.poll(0.0):
        pass
    assert r2.flush(0.0)
    seqs = _seqs(tmp_path / "rec")
    assert sorted(seqs) == list(range(124)) and max(seqs.values()) == 1
    assert len(recording.load_checkpoint(r2.dir)["files"]) == 2 == r2.report()["checkpoint_files"]
    assert r2.report()["recorded"] == 124 and r2.report()["lost"] == 0


def test_a_clock_stepped_back_writes_into_the_open_period(segs, tmp_path):
    """A frame stamped in a finished period (the clock went back) goes into the open period's file:
    finished files are never written again, and a stream's files stay in seq order."""
    s = _settings(segs, tmp_path, record_buffer_size=1000, record_rotate_sec=60)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    r = VenueRecorder(s, tap.ring.path, "futures")
    ts0 = 1_795_000_020_000_000_000             # 20 s into a minute
    tap("market", "s", b"0", ts0)
    tap("market", "s", b"1", ts0 + 60 * 10 ** 9)
    tap("market", "s", b"2", ts0 + 1)           # the clock stepped back a minute
    r.poll(0.0)
    assert r.flush(0.0)
    names_ = [(f.name, [x["seq"] for x in recording.iter_file(f)])
              for f in recording.venue_files(tmp_path / "rec", "futures")]
    assert names_ == [(recording.period_name(ts0, 60), [0]), (recording.period_name(ts0 + 60 * 10 ** 9, 60), [1, 2])]
    assert [x["ts_recv_ns"] for x in recording.iter_venue(tmp_path / "rec", "futures")] == \
        [ts0, ts0 + 60 * 10 ** 9, ts0 + 1]      # the receive times as they were


def test_a_replaced_frame_ring_is_remapped_and_what_it_lost_is_counted_and_alerted(segs, tmp_path):
    """RECORD_RING_BYTES changed and the feed restarted: a new segment under the ring's name. The
    recorder drains the old one, then records the new one as a new run. A new ring that lapped
    before the recorder got to it shows every frame out of reach as `lost`, and an alert."""
    from actors.recorder import Recorder
    s = _settings(segs, tmp_path, record_buffer_size=1000)
    rec = Recorder(s)
    tap = FrameTap(segs.dir, segs.prefix, "BTCUSDT", "futures", 1 << 16)
    rec.scan()
    (v,) = rec.venues.values()

    def drain():
        for _ in range(10):
            rec.scan()
            while v.poll(0.0):
                pass
            if v.n_pending:
                v.flush(0.0)

    _feed(tap, 0, 5)
    drain()
    _feed(tap, 5, 3)                             # still in the old ring when the feed is replaced
    tap.ring.close()
    tap2 = FrameTap(segs.dir, segs.prefix, "BTCUSDT", "futures", 1 << 17)
    _feed(tap2, 100, 4)
    drain()
    rep = v.report()
    assert (rep["ring_bytes"], rep["ring_replaced"], rep["ring_frames"], rep["recorded"], rep["lost"]) == \
        (1 << 17, 1, 4, 4, 0)
    recs = list(recording.iter_venue(tmp_path / "rec", "futures"))
    assert [(x["seq"], x["frame"]) for x in recs] == \
        [(i, '{"i":%d}' % i) for i in range(8)] + [(i, '{"i":%d}' % (100 + i)) for i in range(4)]
    # replaced again, and the new ring laps before the recorder's next scan
    tap2.ring.close()
    tap3 = FrameTap(segs.dir, segs.prefix, "BTCUSDT", "futures", 1 << 16)
    for i in range(1000):
        tap3("market", "s", b"x" * 100, 1_795_000_000_000_000_000 + i)
    drain()
    _feed(tap3, 200, 2)
    drain()
    rep = v.report()
    assert (rep["ring_bytes"], rep["ring_replaced"], rep["ring_frames"], rep["recorded"], rep["lost"]) == \
        (1 << 16, 2, 1002, 2, 1000)
    assert recording.load_checkpoint(v.dir)["lost"] == 1000
    rec.beat()
    hb = rec.registry.read("recorder")
    assert hb["counters"]["frames_lost"] == 1000 and hb["counters"]["ring_replaced"] == 2
    assert hb["counters"]["disk_ok"] == 1
    assert hb["alert"] == "futures: 1000 frames lost (the frame ring lapped the recorder)"
    tap3.ring.close()


def test_export_lists_damage_and_exports_the_rest(tmp_path, capsys):
    """`run.py export` lists each damaged span (file, offset, bytes) in its JSON summary and exports
    every whole member."""
    pytest.importorskip("pyarrow")
    import json
    from actors.tools import export
    d = tmp_path / "rec" / "futures" / "s"
    d.mkdir(parents=True)
    m1, m2 = _member([0, 1]), _member([2])
    f = d / ("20261118T100000Z" + recording.SUFFIX)
    f.write_bytes(m1 + b"\x1f\x8b\x08garbage" + m2)
    assert export.main([str(tmp_path / "rec"), str(tmp_path / "out")]) == 0
    s = json.loads(capsys.readouterr().out)["venues"]["futures"]
    assert (s["frames"], s["unparsed"], s["records"]) == (3, 0, {})
    assert s["damaged"] == [{"path": str(f), "offset": len(m1), "length": 10, "reason": "bad member"}]


def test_an_unreadable_checkpoint_is_an_alert_not_a_crash_loop(segs, tmp_path):
    from actors.recorder import Recorder
    s = _settings(segs, tmp_path, record_buffer_size=1)
    tap = FrameTap.from_settings(s, "BTCUSDT", "futures")
    (tmp_path / "rec" / "futures").mkdir(parents=True)
    rec = Recorder(s)
    for doc in (b"{not json", b'{"run": "x", "cursor": true}', b"[]"):
        (tmp_path / "rec" / "futures" / recording.CHECKPOINT).write_bytes(doc)
        rec.scan()
        assert rec.venues == {}
        rec.beat()
        hb = rec.registry.read("recorder")
        assert hb["counters"]["disk_ok"] == 0
        assert hb["alert"].startswith(f"cannot record futures into {tmp_path / 'rec'}: checkpoint ")
        assert "is unreadable" in hb["alert"]
    tap.ring.close()
