"""The API app (actors.api.create_app) over real shared memory, for in-process tests: a client
built from settings, a POST helper for the control route, and a real REP socket that answers
control requests like compute (recording them)."""
from __future__ import annotations

import threading

import orjson
import zmq
from falcon import testing

from actors.api import ShmView, create_app
from config.settings import load_settings

TOKEN = "s3cret-token"


class FakeCompute:
    """A real REP socket answering like compute.handle_control, recording requests."""

    def __init__(self, url: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(url)
        self.requests = []
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def loop(self):
        while not self.stop.is_set():
            if self.sock.poll(50):
                req = orjson.loads(self.sock.recv())
                self.requests.append(req)
                self.sock.send(orjson.dumps({"ok": True, "anchor_ns": req["anchor_ns"] or 123}))

    def close(self):
        self.stop.set()
        self.th.join(5)
        self.sock.close(0)
        self.ctx.term()


def client(url, prefix, token=TOKEN):
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, api_token=token)
    return testing.TestClient(create_app(ShmView(s), s))


def post(c, body=b"", token=TOKEN, content_type="application/json", **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    return c.simulate_post("/control/anchor/reset", body=body, headers=headers, **kw)
