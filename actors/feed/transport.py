"""Which WebSocket client the feeds use: WS_TRANSPORT (settings.venues.ws_transport) to `connect`.

Both transports have one contract (actors.feed.wsclient.connect's): `connect(url, on_frames, *,
open_timeout, max_size, proxy, ssl_context)` returns a client with `opened`, `closed`, `send_text`,
`close`, `abort`, `frames_in`, `pings` and `proxy`, whose `on_frames(frames, ts_recv_ns)` gets
every frame complete in one read in one call. `websockets` (the default) is actors.feed.wsclient;
`picows` is actors.feed.picows_client, imported only when chosen (picows is an optional extra;
the settings refuse WS_TRANSPORT=picows at start when it is not installed).
"""
from __future__ import annotations

import importlib
from typing import Awaitable, Callable

MODULES = {"websockets": "actors.feed.wsclient", "picows": "actors.feed.picows_client"}

Connect = Callable[..., Awaitable]


def connector(name: str) -> Connect:
    """The `connect` of transport `name` (a key of MODULES)."""
    try:
        module = MODULES[name]
    except KeyError:
        raise ValueError(f"unknown WebSocket transport {name!r}; known: {', '.join(MODULES)}") from None
    return importlib.import_module(module).connect
