"""SpikeDetector (actors/decide/spikes.py) on hand-computed windows."""
from __future__ import annotations

import math

import pytest

from actors.decide.spikes import SpikeDetector

SEC = 1_000_000_000


def feed(d, start_s, mids, step_s=1):
    for i, m in enumerate(mids):
        d.update((start_s + i * step_s) * SEC, m)


def test_warming_up_and_empty():
    d = SpikeDetector(window_sec=60, z_threshold=3.0, min_samples=4)
    r = d.snapshot()
    assert r["state"] is None and r["reason"] == "no sample yet"
    feed(d, 0, [0.50, 0.52, 0.48, 0.50])          # the newest is not baseline: n = 3
    r = d.snapshot(5 * SEC)
    assert r["n"] == 3 and r["state"] is None and r["z"] is None
    assert r["reason"] == "warming up: 3 of 4 samples"
    assert r["mid"] == 0.50 and r["age_ms"] == 2000.0


def test_spike_dip_normal_hand_computed():
    # baseline 0.50 0.52 0.48 0.50: mean 0.5, std = sqrt((0 + 4e-4 + 4e-4 + 0)/4) = sqrt(2e-4)
    std = math.sqrt(2e-4)
    for mid, state in [(0.55, "spike"), (0.45, "dip"), (0.52, "normal"), (0.5, "normal")]:
        d = SpikeDetector(window_sec=60, z_threshold=3.0, min_samples=4)
        feed(d, 0, [0.50, 0.52, 0.48, 0.50, mid])
        r = d.snapshot()
        assert r["n"] == 4
        assert abs(r["mean"] - 0.5) < 1e-15
        assert abs(r["std"] - std) < 1e-15
        assert r["high"] == 0.52 and r["low"] == 0.48
        assert abs(r["z"] - (mid - 0.5) / std) < 1e-12
        assert r["state"] == state
        assert "reason" not in r
    # 0.55: z = 0.05/0.0141421356 = 3.5355339 > 3
    assert abs((0.55 - 0.5) / std - 3.5355339059327378) < 1e-12


def test_window_eviction():
    d = SpikeDetector(window_sec=10, z_threshold=2.0, min_samples=2)
    d.update(0, 0.90)                               # falls out of the window below
    d.update(5 * SEC, 0.40)
    d.update(8 * SEC, 0.42)
    d.update(11 * SEC, 0.60)                        # window [1 s, 11 s]: baseline 0.40, 0.42
    r = d.snapshot()
    assert r["n"] == 2 and abs(r["mean"] - 0.41) < 1e-15
    assert abs(r["std"] - 0.01) < 1e-15
    assert abs(r["z"] - 19.0) < 1e-9 and r["state"] == "spike"
    d.update(15 * SEC, 0.41)                        # window [5, 15]: 0.40 0.42 0.60 | 0.41
    r = d.snapshot()
    m = (0.40 + 0.42 + 0.60) / 3
    s = math.sqrt(((0.40 - m) ** 2 + (0.42 - m) ** 2 + (0.60 - m) ** 2) / 3)
    assert r["n"] == 3 and abs(r["mean"] - m) < 1e-15 and abs(r["std"] - s) < 1e-15
    assert r["state"] == "normal"
    d.update(15 * SEC + 10 * SEC, 0.41)             # edge: ts = t − W kept ([15, 25])
    assert d.snapshot()["n"] == 1


def test_flat_baseline_and_floor():
    d = SpikeDetector(window_sec=60, z_threshold=3.0, min_samples=3)
    feed(d, 0, [0.5, 0.5, 0.5, 0.51])
    r = d.snapshot()
    assert r["std"] == 0.0 and r["z"] is None and r["state"] == "spike"
    assert r["reason"] == "flat baseline"
    d2 = SpikeDetector(window_sec=60, z_threshold=3.0, min_samples=3, min_std=0.005)
    feed(d2, 0, [0.5, 0.5, 0.5, 0.51])
    r = d2.snapshot()
    assert abs(r["z"] - 2.0) < 1e-9 and r["state"] == "normal"
    feed(d2, 10, [0.48])
    r = d2.snapshot()
    m = (0.5 * 3 + 0.51) / 4
    s = max(math.sqrt((3 * (0.5 - m) ** 2 + (0.51 - m) ** 2) / 4), 0.005)
    assert abs(r["z"] - (0.48 - m) / s) < 1e-12 and r["state"] == "dip"


def test_late_reset_and_bad_input():
    d = SpikeDetector(window_sec=60, z_threshold=3.0, min_samples=2)
    feed(d, 10, [0.5, 0.6])
    d.update(5 * SEC, 0.9)
    d.update(20 * SEC, None)
    d.update(20 * SEC, float("nan"))
    r = d.snapshot()
    assert r["late"] == 1 and r["mid"] == 0.6 and r["n"] == 1
    d.reset()
    assert d.snapshot()["reason"] == "no sample yet"
    with pytest.raises(ValueError):
        SpikeDetector(window_sec=0)
    with pytest.raises(ValueError):
        SpikeDetector(min_samples=1)
