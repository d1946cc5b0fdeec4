"""Paths to the real venue captures in ../shared/fixtures (read in place, never copied into the repo).

A test that needs a capture asks `need(path)`. Locally a missing capture skips the test (with the
path); under CI (env CI=true) it fails the test loudly, so a run without the captures cannot pass
green while testing nothing.
"""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures"
BINANCE = FIXTURES / "binance"
POLYMARKET = FIXTURES / "polymarket"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def need(path: Path, module: bool = False) -> Path:
    """`path` if it exists; otherwise fail (under CI) or skip (locally) the calling test, naming
    the path. `module=True` is for a module-level call: the whole module is skipped (or, under CI,
    fails to collect)."""
    if not path.exists():
        if in_ci():
            pytest.fail(f"real venue capture missing under CI: {path} (../shared/fixtures must be "
                        "present next to the repo)", pytrace=False)
        pytest.skip(f"real venue capture not present: {path} (../shared/fixtures is outside the repo)",
                    allow_module_level=module)
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
        recs.extend(d.recs)
    return np.array(recs, dtype=DTYPES[kind])


def capture(path: Path) -> list[tuple[str, int | None, bytes]]:
    """(origin, recv_ns, json) for every message line of a capture: origin 'ws' or 'rest'.

    hftbacktest: `<recv_ns> <json>`; cryptofeed: `<recv_sec>: <json>`, REST lines
    `<url> -> <recv_sec>: <json>`, header `<wss url> <-> <sec>`; jsonl: `<json>`.
    """
    out = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        if line.startswith(b"{"):
            out.append(("ws", None, line))
        elif line.startswith(b"wss://"):
            continue
        elif line.startswith(b"http"):
            _, _, rest = line.partition(b" -> ")
            sec, _, body = rest.partition(b": ")
            out.append(("rest", int(Decimal(sec.decode()) * 10**9), body))
        else:
            head, _, body = line.partition(b" ")
            if head.endswith(b":"):
                out.append(("ws", int(Decimal(head[:-1].decode()) * 10**9), body))
            else:
                out.append(("ws", int(head), body))
    return out
