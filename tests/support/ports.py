"""Free TCP ports on 127.0.0.1, so every test stack binds its own and tests never collide.

`free_port` is ipc.bus.free_tcp_port (one implementation: what the backtest's private bus uses)."""
from __future__ import annotations

from ipc.bus import free_tcp_port as free_port

__all__ = ["free_port"]
