"""gunicorn's own refusals (before the app) answer JSON like the app's errors."""
from __future__ import annotations

import json
import socket

import actors.obs.gunicorn_conf  # noqa: F401  (installs the writer, as gunicorn's -c does)
from gunicorn import util


def test_refusal_is_json():
    a, b = socket.socketpair()
    try:
        util.write_error(a, 431, "Request Header Fields Too Large", "Error parsing headers: 'x'")
        a.close()
        raw = b.recv(65536)
    finally:
        b.close()
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert "Content-Type: application/json" in lines and "Connection: close" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"title": "request header fields too large",
                                "description": "Error parsing headers: 'x'"}
