"""`run.py export`: a recording as hive-partitioned Parquet with typed columns, on real captures.

The recording (tests/support/recordings.py) is built from real venue messages: Binance futures
bookTicker and trade and spot trade streams with their own receive times (hftbacktest captures,
2024-08-08), Chainlink BTC/USD updates (RTDS, 2026-02), and a Polymarket up/down window: the
captured CLOB burst (a `book`, 49 `price_change` batches, the resent `book`; 2026-09-29) and a
captured `last_trade_price`, recorded under `book_5m` / `trade_5m` as feed_poly records them, with
the window's Gamma answers (the captured 5m `/markets` object re-pointed at the burst's market, once
open and once closed).
"""
from __future__ import annotations

import json
import re

import pytest

from ipc import names, recording
from tests.support.fixtures import BINANCE, POLYMARKET, need
from tests.support.recordings import (DOWN, MARKET, MS, SLUG, UP, WINDOW_S, build_recording, capture_log,
                                      gamma_answer, iso_utc, write_venue)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pads = pytest.importorskip("pyarrow.dataset")

from actors.tools import export as ex  # noqa: E402  (after the pyarrow skip)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    counts = build_recording(tmp / "rec")
    summary = ex.export(tmp / "rec", tmp / "out", progress=False)
    return tmp, counts, summary


def table(out, rel):
    return pads.dataset(out / rel, format="parquet", partitioning="hive").to_table()


# --- layout and types ---------------------------------------------------------------------------

def test_layout_is_hive_partitioned_by_kind_venue_and_utc_date(exported):
    tmp, counts, summary = exported
    out = tmp / "out"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert files == [
        "frames/venue=chainlink/date=2026-02-23/part-0.parquet",
        "frames/venue=futures/date=2024-08-08/part-0.parquet",
        "frames/venue=poly/date=2026-09-29/part-0.parquet",
        "frames/venue=spot/date=2024-08-08/part-0.parquet",
        "records/kind=chainlink/venue=chainlink/date=2026-02-23/part-0.parquet",
        "records/kind=poly_book/venue=poly/date=2026-09-29/part-0.parquet",
        "records/kind=poly_trade/venue=poly/date=2026-09-29/part-0.parquet",
        "records/kind=poly_window/venue=poly/date=2026-09-29/part-0.parquet",
        "records/kind=quote/venue=futures/date=2024-08-08/part-0.parquet",
        "records/kind=trade/venue=futures/date=2024-08-08/part-0.parquet",
        "records/kind=trade/venue=spot/date=2024-08-08/part-0.parquet",
    ]
    assert {v: s["frames"] for v, s in summary["venues"].items()} == counts
    assert summary["bytes_read"] == summary["recording_bytes"] > 0


def test_timestamps_are_utc_ns_and_frames_are_text(exported):
    tmp, _, _ = exported
    fr = pq.read_table(tmp / "out/frames/venue=futures/date=2024-08-08/part-0.parquet")
    assert fr.schema.field("ts_recv_ns").type == pa.timestamp("ns", tz="UTC")
    assert fr.schema.field("frame").type == pa.string()
    first = fr.slice(0, 1).to_pylist()[0]
    assert first["seq"] == 0 and first["stream"] == "btcusdt@bookTicker"
    assert pa.scalar(1723161255088169167, pa.int64()).cast(pa.timestamp("ns", tz="UTC")) == \
        fr.column("ts_recv_ns")[0]
    assert first["frame"].startswith('{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020')
    bad = fr.filter(pa.compute.equal(fr.column("stream"), "_malformed")).to_pylist()
    assert [(b["frame"], b["frame_b64"]) for b in bad] == [(None, "//4gbm90IHV0Zi04")]
    tr = pq.read_table(tmp / "out/records/kind=trade/venue=futures/date=2024-08-08/part-0.parquet")
    for c in ("ts_event_ns", "ts_recv_ns"):
        assert tr.schema.field(c).type == pa.timestamp("ns", tz="UTC")
    assert tr.schema.field("flags").type == pa.uint32() and tr.schema.field("side").type == pa.int8()
    row = tr.slice(0, 1).to_pylist()[0]
    assert (row["trade_id"], row["price"], row["qty"], row["side"]) == (5266583935, 61800.3, 0.006, 1)
    assert tr.column("ts_event_ns")[0].value == 1723161256322 * MS
    assert tr.num_rows == 2000


def test_records_count_and_quote_values(exported):
    tmp, _, summary = exported
    fut = summary["venues"]["futures"]
    assert fut["records"] == {"quote": 3000, "trade": 2000}
    assert fut["lines"] == {"_malformed": 1, "quote": 3000, "trade": 2000}
    assert (fut["unparsed"], fut["not_utf8"], fut["damaged"]) == (0, 1, [])
    q = table(tmp / "out", "records/kind=quote")
    assert q.num_rows == 3000 and set(q.column("venue").to_pylist()) == {"futures"}
    r = q.slice(0, 1).to_pylist()[0]
    assert (r["update_id"], r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]) == \
        (5123107839020, 61800.2, 2.507, 61800.3, 2.51)


def test_one_kind_reads_as_one_table_across_venues(exported):
    tmp, _, _ = exported
    t = table(tmp / "out", "records/kind=trade")
    assert t.num_rows == 3000
    by = {v: n for v, n in zip(*[c.to_pylist() for c in t.group_by("venue").aggregate([("trade_id", "count")])
                                 .select(["venue", "trade_id_count"]).columns])}
    assert by == {"futures": 2000, "spot": 1000}


def test_chainlink_prices_are_typed_records(exported):
    tmp, _, summary = exported
    c = pq.read_table(tmp / "out/records/kind=chainlink/venue=chainlink/date=2026-02-23/part-0.parquet")
    rows = c.to_pylist()
    assert summary["venues"]["chainlink"]["records"] == {"chainlink": 5}
    assert rows[0]["price"] == 64790.08246810615
    assert rows[0]["ts_event_ns"].value == 1771820699000 * MS
    assert rows[0]["ts_sent_ns"].value == 1771820699964 * MS
    assert c.schema.field("ts_sent_ns").type == pa.timestamp("ns", tz="UTC")


# --- Polymarket ---------------------------------------------------------------------------------

def test_poly_books_are_the_feed_sessions_records_levels_as_lists(exported):
    tmp, _, summary = exported
    poly = summary["venues"]["poly"]
    assert poly["series"] == ["5m"] and poly["asset"] == "btc"
    assert poly["lines"] == {"_control": 1, "clob": 52, "gamma": 2}
    b = table(tmp / "out", "records/kind=poly_book")
    assert b.schema.field("bid_px").type == pa.list_(pa.float64())
    assert b.schema.field("window_start_ns").type == pa.timestamp("ns", tz="UTC")
    rows = b.to_pylist()
    # the UP snapshot, 49 updates of it (no DOWN snapshot in the capture: DOWN's changes wait), the resent book
    assert len(rows) == 51 and {r["token"] for r in rows} == {0} and {r["series"] for r in rows} == {"5m"}
    assert poly["session"]["books"] == 2 and poly["session"]["changes"] == 98
    assert all(len(r["bid_px"]) == len(r["bid_sz"]) == r["n_bids"] and len(r["ask_px"]) == r["n_asks"] for r in rows)
    last = rows[-1]
    # the resent book: 23 levels a side, the top MAX_LEVELS (20) kept, only real levels
    assert (last["n_bids"], last["n_asks"], len(last["bid_px"]), len(last["ask_sz"])) == (20, 20, 20, 20)
    assert (last["bid_px"][0], last["bid_sz"][0]) == (0.29, 2005.0)
    assert list(zip(last["ask_px"][:3], last["ask_sz"][:3])) == [(0.301, 45.83), (0.387, 60.0), (0.388, 300.0)]
    assert (last["best_bid"], last["best_ask"]) == (0.29, 0.301)
    assert last["window_start_ns"].value == WINDOW_S * 10**9
    assert rows[0]["flags"] == 2 and last["flags"] == 2      # FLAG_SNAPSHOT
    t = table(tmp / "out", "records/kind=poly_trade").to_pylist()
    assert [(r["token"], r["side"], r["price"], r["size"], r["series"]) for r in t] == [(0, -1, 0.585, 2.46, "5m")]


def test_poly_window_metadata_rows(exported):
    tmp, _, _ = exported
    w = table(tmp / "out", "records/kind=poly_window").to_pylist()
    assert [r["event"] for r in w] == ["new", "current", "resolved"]
    for r in w:
        assert (r["series"], r["asset"], r["slug"], r["condition_id"], r["up_token"], r["down_token"]) == \
            ("5m", "btc", SLUG, MARKET, UP, DOWN)
        assert (r["window_start_ns"].value, r["window_end_ns"].value) == (WINDOW_S * 10**9, (WINDOW_S + 300) * 10**9)
        assert r["price_to_beat"] is None and r["tick_size"] == 0.01
    assert w[0]["ts_recv_ns"].value == (WINDOW_S + 20) * 10**9 and w[0]["closed"] is False
    assert json.loads(w[0]["rule"])["source"] == "chainlink"
    res = w[2]
    assert (res["winner"], res["resolved_by"], res["closed"]) == ("UP", "gamma", True)
    assert res["ts_recv_ns"].value == (WINDOW_S + 330) * 10**9


def test_frames_name_the_series_of_polymarket_streams(exported):
    tmp, _, _ = exported
    f = pq.read_table(tmp / "out/frames/venue=poly/date=2026-09-29/part-0.parquet").to_pydict()
    pairs = sorted(set(zip(f["stream"], f["series"], f["conn"])), key=str)
    assert pairs == [("_control", None, "market"), ("book_5m", "5m", "market"), ("gamma", None, "rest"),
                     ("trade_5m", "5m", "market")]
    assert f["meta"][0] == f"gamma 200 /markets?slug={SLUG}"


def test_series_of_a_stream_comes_from_the_names():
    assert ex.series_of(names.POLY, names.poly_book_ring("15m").stream) == "15m"
    assert ex.series_of(names.POLY, names.poly_trade_ring("1h").stream) == "1h"
    assert ex.series_of(names.POLY, "_rest") is None
    assert ex.series_of(names.FUTURES, "btcusdt@aggTrade") is None


# --- partitions, destinations, the CLI ------------------------------------------------------------

def test_a_date_boundary_splits_partitions_and_a_date_coming_back_is_a_new_part(tmp_path):
    """UTC days of receive time; a day met again (a clock step, a new run) gets the next part."""
    frames = [f for _, f in capture_log(BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log", 6)]
    midnight = 1723161600 * 10**9                       # 2024-08-09T00:00:00Z
    ts = [midnight - 2, midnight - 1, midnight, midnight + 1]
    write_venue(tmp_path / "rec", names.FUTURES, [(t, "market", "btcusdt@trade", f, "") for t, f in zip(ts, frames)])
    # a second run whose clock stepped back to the 8th: written into the open period (the 9th's)
    write_venue(tmp_path / "rec", names.FUTURES, [(midnight - 10, "market", "btcusdt@trade", frames[4], "")],
                run="4243-1790000000000000001", period_file=recording.period_name(midnight + 3600 * 10**9, 3600))
    s = ex.export(tmp_path / "rec", tmp_path / "out", progress=False, batch_rows=1)
    out = tmp_path / "out"
    got = {str(p.relative_to(out / "records/kind=trade/venue=futures")): pq.read_table(p).num_rows
           for p in out.rglob("records/**/*.parquet")}
    assert got == {"date=2024-08-08/part-0.parquet": 2, "date=2024-08-09/part-0.parquet": 2,
                   "date=2024-08-08/part-1.parquet": 1}
    assert pq.ParquetFile(out / "records/kind=trade/venue=futures/date=2024-08-08/part-0.parquet").num_row_groups == 2
    assert s["venues"]["futures"]["records"] == {"trade": 5}
    t = table(out, "records/kind=trade")
    assert sorted(map(str, set(t.column("date").to_pylist()))) == ["2024-08-08", "2024-08-09"]


def _files(fs, base):
    from pyarrow.fs import FileSelector, FileType
    return sorted(i.path[len(base) + 1:] for i in fs.get_file_info(FileSelector(base, recursive=True))
                  if i.type == FileType.File)


def test_a_file_uri_and_an_fsspec_memory_filesystem_get_the_same_layout(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    write_venue(tmp_path / "rec", names.CHAINLINK,
                [(json.loads(line)["timestamp"] * MS, "rtds", "btc/usd", line, "") for line in
                 need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl").read_bytes().splitlines()])
    local = ex.export(tmp_path / "rec", tmp_path / "a", progress=False)
    uri = ex.export(tmp_path / "rec", (tmp_path / "b").as_uri(), progress=False)
    mem = ex.export(tmp_path / "rec", "memory://tdc-test-export/x", progress=False)
    try:
        want = ["frames/venue=chainlink/date=2026-02-23/part-0.parquet",
                "records/kind=chainlink/venue=chainlink/date=2026-02-23/part-0.parquet"]
        from pyarrow.fs import LocalFileSystem
        assert _files(LocalFileSystem(), str(tmp_path / "a")) == want
        assert _files(LocalFileSystem(), str(tmp_path / "b")) == want
        m = fsspec.filesystem("memory")
        assert sorted(p.split("/x/", 1)[1] for p in m.find("/tdc-test-export/x")) == want
        with m.open("/tdc-test-export/x/" + want[1], "rb") as f:
            assert pq.read_table(f).column("price").to_pylist() == \
                pq.read_table(tmp_path / "a" / want[1]).column("price").to_pylist()
        assert local["venues"] == uri["venues"] == mem["venues"]
        assert mem["out"] == "memory://tdc-test-export/x"
    finally:
        fsspec.filesystem("memory").rm("/tdc-test-export", recursive=True)


def test_an_earlier_export_is_refused_unless_overwrite(tmp_path, capsys):
    write_venue(tmp_path / "rec", names.SPOT, [(ts, "combined", "btcusdt@trade", f, "") for ts, f in
                                               capture_log(BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log", 3)])
    assert ex.main([str(tmp_path / "rec"), str(tmp_path / "out"), "--no-progress"]) == 0
    stale = tmp_path / "out/records/kind=trade/venue=spot/date=2024-08-08/part-7.parquet"
    stale.write_bytes(b"left over")
    capsys.readouterr()
    assert ex.main([str(tmp_path / "rec"), str(tmp_path / "out")]) == 2
    assert "already holds frames and records/ (an earlier export): pass --overwrite" in capsys.readouterr().err
    assert ex.main([str(tmp_path / "rec"), str(tmp_path / "out"), "--overwrite"]) == 0
    assert not stale.exists()
    s = json.loads(capsys.readouterr().out)
    assert s["venues"]["spot"]["records"] == {"trade": 3} and s["venues"]["spot"]["frames"] == 3


def test_cli_refuses_stray_arguments_and_documents_every_option(tmp_path, capsys):
    write_venue(tmp_path / "rec", names.SPOT, [(1, "combined", "x", b"{}", "")])
    for argv in ([str(tmp_path / "rec"), str(tmp_path / "o"), "extra"], [str(tmp_path / "rec")],
                 [str(tmp_path / "rec"), str(tmp_path / "o"), "--bogus"],
                 [str(tmp_path / "rec"), str(tmp_path / "o"), "--batch-rows", "0"],
                 [str(tmp_path / "nothing"), str(tmp_path / "o")]):
        with pytest.raises(SystemExit) as e:
            ex.main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: extra" in err and "unrecognized arguments: --bogus" in err
    assert "not a recording (no <venue>/ directories)" in err
    with pytest.raises(SystemExit) as e:
        ex.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--venue", "--overwrite", "--no-frames", "--batch-rows", "--batch-mb", "--compression",
                "--progress", "--no-progress", "docs/export.md", "s3://bucket/prefix"):
        assert opt in text
    assert not (tmp_path / "o").exists()


def test_venue_choice_no_frames_and_the_progress_bar_on_stderr(tmp_path, capsys):
    counts = build_recording(tmp_path / "rec")
    assert counts[names.SPOT] == 1000
    rc = ex.main([str(tmp_path / "rec"), str(tmp_path / "out"), "--venue", "spot", "--venue", "chainlink",
                  "--no-frames", "--progress"])
    cap = capsys.readouterr()
    assert rc == 0
    s = json.loads(cap.out)
    assert sorted(s["venues"]) == ["chainlink", "spot"]
    assert s["bytes_read"] == s["recording_bytes"] == sum(
        f.stat().st_size for v in ("spot", "chainlink") for f in recording.venue_files(tmp_path / "rec", v))
    assert not (tmp_path / "out/frames").exists()
    # rich drew the bar on stderr, complete: done/total bytes equal
    assert re.search(r"^  export \S+ ([\d.]+)/\1 kB .* venue=chainlink$", cap.err.strip("\n"), re.M), cap.err
    with pytest.raises(ValueError, match="no venue nowhere in the recording"):
        ex.export(tmp_path / "rec", tmp_path / "o2", venues=["nowhere"])


def test_unparsed_frames_are_counted_and_kept_as_frames(tmp_path):
    good = capture_log(BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log", 2)
    lines = [(good[0][0], "market", "btcusdt@trade", good[0][1], ""),
             (good[0][0] + 1, "market", "btcusdt@trade", b'{"stream":"btcusdt@trade","data":{"e":"trade"', ""),
             (good[1][0], "market", "btcusdt@trade", good[1][1], "")]
    write_venue(tmp_path / "rec", names.FUTURES, lines)
    s = ex.export(tmp_path / "rec", tmp_path / "out", progress=False)["venues"]["futures"]
    assert (s["frames"], s["unparsed"], s["records"], s["lines"]) == (3, 1, {"trade": 2}, {"trade": 2})
    f = pq.read_table(tmp_path / "out/frames/venue=futures/date=2024-08-08/part-0.parquet")
    assert f.column("frame")[1].as_py() == '{"stream":"btcusdt@trade","data":{"e":"trade"'


def test_spot_klines_and_depth_levels_are_typed_records(tmp_path):
    """A closed 1m kline (the candles hourly windows settle on) and a real depth20 frame: its levels
    as lists of the 20 real levels, best first, no padding."""
    kline = need(BINANCE / "spot_kline_1m_closed.json").read_bytes().strip()
    depth = json.dumps(json.loads(need(BINANCE / "spot_depth20_100ms.json").read_bytes())).encode()
    t0 = 1617566640068 * MS
    diff = need(BINANCE / "spot_btcusdt_depth100ms_stream_2025-12-07.jsonl").read_bytes().splitlines()[0]
    write_venue(tmp_path / "rec", names.SPOT, [(t0, "combined", "btcusdt@kline_1m", kline, ""),
                                               (t0 + 1, "combined", "btcusdt@depth20@100ms", depth, ""),
                                               (t0 + 2, "combined", "btcusdt@depth@100ms", diff, "")])
    s = ex.export(tmp_path / "rec", tmp_path / "out", progress=False)["venues"]["spot"]
    assert s["records"] == {"depth": 2, "kline": 1} and s["unparsed"] == 0
    k = table(tmp_path / "out", "records/kind=kline").to_pylist()[0]
    assert (k["open_time_ns"].value, k["tf_sec"], k["open"], k["close"], k["closed"]) == \
        (1617566580 * 10**9, 60, 57994.6, 57999.99, 1)
    d, u = table(tmp_path / "out", "records/kind=depth").to_pylist()
    raw = json.loads(depth)["data"]
    assert (d["n_bids"], d["n_asks"], len(d["bid_px"]), len(d["ask_qty"])) == (20, 20, 20, 20)
    assert d["bid_px"] == [float(p) for p, _ in raw["bids"]] and d["ask_qty"] == [float(q) for _, q in raw["asks"]]
    assert d["bid_px"][0] == 102571.17 and d["update_id"] == 80089389252
    # a diff of 3 bids and 2 asks: 3 and 2 entries (a size 0 deletes), not 20 padded with 0.0
    assert (u["n_bids"], u["n_asks"], u["first_update_id"], u["update_id"]) == (3, 2, 82626886844, 82626886850)
    assert list(zip(u["bid_px"], u["bid_qty"])) == [(89218.34, 0.0311), (80325.0, 0.00266), (71400.63, 0.14033)]
    assert list(zip(u["ask_px"], u["ask_qty"])) == [(89309.47, 0.0), (89309.63, 0.034)]


def test_window_length_of_a_series_from_its_recorded_windows():
    """The series' own grid unless the recording's windows were shortened; an ET-grid window across
    a DST change (an hour off) is still the series' own."""
    from actors.tools.export_poly import window_sec
    assert window_sec("15m", 900) == 900
    assert window_sec("15m", 30) == 30            # POLYMARKET_WINDOW_SEC=30 (the sim)
    assert window_sec("5m", 60) == 60
    assert window_sec("1d", 86400 - 3600) == 86400 and window_sec("1d", 86400 + 3600) == 86400
    assert window_sec("4h", 14400 + 3600) == 14400
    assert window_sec("1h", 3600 + 3600) == 7200  # a UTC grid has no DST: a 2 h "hourly" is shortened-like


def test_the_recorded_gamma_answers_give_asset_series_and_shortened_lengths(tmp_path):
    """A sim recording's 30 s windows of the 5m series (POLYMARKET_WINDOW_SEC=30): rolled on a 30 s
    grid, not the 5m one (else no window is ever current and no book is written)."""
    from actors.tools.export_poly import followed, window_secs
    m = json.loads(gamma_answer(False))
    m[0]["endDate"] = iso_utc(WINDOW_S + 30)
    write_venue(tmp_path / "rec", names.POLY, [
        ((WINDOW_S + 1) * 10**9, "rest", "gamma", b"[]", f"gamma 200 /markets?slug={SLUG}"),   # not listed yet
        ((WINDOW_S + 2) * 10**9, "rest", "gamma", json.dumps(m).encode(), f"gamma 200 /markets?slug={SLUG}"),
        ((WINDOW_S + 3) * 10**9, "market", "book_5m", b"PONG", "")])
    assert followed(tmp_path / "rec") == ("5m",)
    assert window_secs(tmp_path / "rec", ("5m",)) == ("btc", {"5m": 30})
    s = ex.export(tmp_path / "rec", tmp_path / "out", progress=False)["venues"]["poly"]
    assert s["lines"] == {"clob": 1, "gamma": 1, "gamma_not_found": 1}
    w = table(tmp_path / "out", "records/kind=poly_window").to_pylist()
    assert [(r["event"], r["window_end_ns"].value) for r in w] == [("new", (WINDOW_S + 30) * 10**9),
                                                                   ("current", (WINDOW_S + 30) * 10**9)]
