"""feed_spot follows the Binance candles the followed hourly/daily series settle on: the kline
streams of their candle intervals, written to names.SPOT_RINGS["kline"] (sim process, real sockets)."""
from __future__ import annotations

import numpy as np

from actors.venues.binance import spot as binance_spot
from config.settings import Settings
from ipc import names
from ipc.schema import FLAG_GAP
from tests.support.stack import Stack
from tests.support.wait import wait_for


def test_the_plan_has_the_candle_of_each_binance_settled_series():
    def klines(**kw):
        [p] = binance_spot.plan(Settings(**kw))
        return [s for s in p.streams if "@kline_" in s]
    assert klines() == []                                            # 15m settles on Chainlink
    assert klines(polymarket_windows="5m,1h") == ["btcusdt@kline_1h"]
    assert klines(polymarket_windows="5m,1h", polymarket_window_sec="5m:20,1h:60") == ["btcusdt@kline_1m"]
    assert klines(polymarket_windows="1h,1d") == ["btcusdt@kline_1m", "btcusdt@kline_1h"]
    assert klines(polymarket_windows="1h", symbol="ETHUSDT") == ["ethusdt@kline_1h"]
    assert klines(polymarket_windows="1h", polymarket_enabled=False) == []


def test_feed_spot_writes_the_settlement_klines(tmp_path):
    st = Stack(tmp_path).start(actors=("sim", "bus", "feed_spot"), POLYMARKET_WINDOWS="5m,1h",
                               POLYMARKET_WINDOW_SEC="5m:20,1h:60", SIM_TRADE_RATE="50")
    try:
        wait_for(lambda: st.stream("kline", "feed_spot").get("written", 0) >= 3, 30,
                 "spot klines written\n" + st.logs())
        r = st.reader(names.SPOT, "kline", from_oldest=True)
        recs = r.read()
        recs = recs[(recs["flags"] & FLAG_GAP) == 0]
        assert len(recs) >= 3 and set(recs["tf_sec"].tolist()) == {60}
        assert (recs["open_time_ns"] % (60 * 1_000_000_000) == 0).all()
        assert (np.diff(recs["open_time_ns"]) >= 0).all()
        hb = st.hb("feed_spot")
        assert hb["counters"]["parse_errors"] == 0 and hb["counters"]["unknown"] == 0
    finally:
        st.stop()
