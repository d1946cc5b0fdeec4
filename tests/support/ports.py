"""Free TCP ports on 127.0.0.1, so every test stack binds its own and tests never collide."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS reports free right now (bound and released; taken by the caller at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
