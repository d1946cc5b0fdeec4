"""Paths to the real venue captures in ../shared/fixtures (never copied into the repo)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
BINANCE = FIXTURES / "binance"
POLYMARKET = FIXTURES / "polymarket"


def need(path: Path) -> Path:
    """Skip the calling test (with the reason) when a capture is not present."""
    if not path.exists():
        pytest.skip(f"real venue capture not present: {path} (../shared/fixtures is outside the repo)")
    return path


def load_hftbacktest(path: Path, kind: str) -> np.ndarray:
    """Parse a `<recv_ns> <frame>` capture into records of `kind` with the project's parser."""
    from actors.venues.binance.parse import parse_frame
    from ipc.schema import DTYPES
    recs = []
    for line in need(path).read_bytes().splitlines():
        ts, frame = line.split(b" ", 1)
        d = parse_frame(frame, int(ts))
        assert d.kind == kind, (d.kind, line[:120])
        recs.append(d.rec)
    return np.array(recs, dtype=DTYPES[kind])
