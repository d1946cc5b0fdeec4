"""HTTP helpers shared by the venues' pure REST code (no I/O)."""
from __future__ import annotations

from collections.abc import Mapping


def header(headers: Mapping[str, str] | object, name: str) -> str | None:
    """Case-insensitive header lookup on any mapping (httpx.Headers, dict, list of pairs)."""
    items = headers.items() if hasattr(headers, "items") else headers
    name = name.lower()
    for k, v in items:
        if k.lower() == name:
            return v
    return None
