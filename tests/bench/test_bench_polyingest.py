"""`bench poly ingest` at a tiny size: every book update the firehose sends lands in feed_poly's
rings (counted by kind, exactly), and the bare loop reads every frame. No speed is asserted."""
from __future__ import annotations

from actors.bench.polyingest import bench_poly_ingest, polyingest_rows


def test_every_streamed_book_update_lands_in_the_rings_and_the_bare_loop_reads_every_frame():
    n = 2000
    r = bench_poly_ingest(n, windows="4h,1d", margin_s=30, bare_after=False)
    exp = r["expected"]
    # real sim traffic: book changes in pairs (UP and DOWN of one market), trades with their book
    assert exp["book_change"] > n and exp["trade"] > 0 and exp["book_snapshot"] > 0
    assert sum(r["by_event"].values()) >= n
    assert r["got"] == exp and r["missing"] == {} and r["extra"] == {} and r["overrun"] == 0
    assert r["feed"]["records"] == r["records"] == sum(exp.values())
    assert [b["by_event"] for b in r["bare_runs"]] == [r["by_event"]]
    assert [b["frames"] for b in r["bare_runs"]] == [n]
    rows = polyingest_rows(r)
    assert [row[0] for row in rows] == ["poly ingest feed_poly (frames/s)", "poly ingest feed_poly (book updates/s)",
                                        "poly ingest records in the rings", "poly ingest feed_poly RSS"]
    assert rows[2][1:3] == (f"{r['records']:,}", f"sent {r['records']:,}") and rows[2][5] == "PASS"
    assert all(len(row) == 6 for row in rows)
