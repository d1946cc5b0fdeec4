"""The control channel (ipc/control.py) on real zmq sockets over 127.0.0.1: the credential, strict
argument types, and junk of every shape answered and counted, never raised; then compute's own
control socket, which a two-frame request used to kill (issue 15 item 2)."""
from __future__ import annotations

import threading

import orjson
import pytest
import zmq

from ipc import control
from ipc.control import ControlServer, check_request
from tests.support.ports import free_port

TOKEN = "s3cret-control-token-0123"


class Rig:
    """A ControlServer served from a thread; the handler records what reached it."""

    def __init__(self, token=TOKEN, handler=None):
        self.url = f"tcp://127.0.0.1:{free_port()}"
        self.ctx = zmq.Context()
        self.seen: list[dict] = []
        self.server = ControlServer(self.ctx, self.url, token, handler or self.handle)
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def handle(self, req):
        self.seen.append(req)
        return {"ok": True, "echo": req}

    def loop(self):
        while not self.stop.is_set():
            self.server.serve(20)

    def raw(self, kind, frames, timeout_ms=2000):
        """Send `frames` from a fresh socket of type `kind`; the reply frames, or None."""
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.url)
        try:
            s.send_multipart(frames)
            return s.recv_multipart() if s.poll(timeout_ms) else None
        finally:
            s.close(0)

    def close(self):
        self.stop.set()
        self.th.join(5)
        assert not self.th.is_alive()
        self.server.close()
        self.ctx.term()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def ask(rig, doc, token=TOKEN, timeout_ms=2000):
    return control.request(rig.url, token, doc, timeout_ms)


def test_the_token_is_required_and_checked(rig):
    assert ask(rig, {"cmd": "anchor_reset"}, token="wrong-token-xxxxxxxx") == {
        "ok": False, "reason": "auth", "error": "bad or missing token"}
    assert rig.raw(zmq.REQ, [b'{"cmd":"anchor_reset"}']) == [
        b'{"ok":false,"reason":"auth","error":"bad or missing token"}']
    assert rig.raw(zmq.REQ, [b'{"cmd":"anchor_reset","token":12}'])[0].startswith(b'{"ok":false,"reason":"auth"')
    assert rig.seen == []
    assert ask(rig, {"cmd": "anchor_reset", "anchor_ns": 5}) == {
        "ok": True, "echo": {"cmd": "anchor_reset", "anchor_ns": 5}}
    assert rig.seen == [{"cmd": "anchor_reset", "anchor_ns": 5}]     # the token never reaches it
    assert rig.server.refused == {"auth": 3} and rig.server.served == 1


def test_without_an_api_token_every_request_is_refused():
    for token in (None, ""):
        r = Rig(token=token)
        try:
            assert ask(r, {"cmd": "anchor_reset"}, token="") == {
                "ok": False, "reason": "disabled", "error": "control disabled: API_TOKEN unset"}
            assert ask(r, {"cmd": "anchor_reset"})["reason"] == "disabled"
            assert r.seen == [] and r.server.refused == {"disabled": 2}
        finally:
            r.close()


@pytest.mark.parametrize("args,error", [
    ({"anchor_ns": True}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": False}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": 1.7e18}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": "1"}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": -1}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": 2 ** 63}, "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"),
    ({"anchor_ns": 1, "force": 1}, "unknown fields ['force'] for anchor_reset"),
])
def test_argument_types_are_strict(args, error):
    body = orjson.dumps({"token": TOKEN, "cmd": "anchor_reset", **args})
    with pytest.raises(control.Refused) as e:
        check_request(body, TOKEN)
    assert (e.value.reason, e.value.error) == ("bad_args", error)


def test_valid_arguments_pass():
    assert check_request(orjson.dumps({"token": TOKEN, "cmd": "anchor_reset", "anchor_ns": None}), TOKEN) == {
        "cmd": "anchor_reset", "anchor_ns": None}
    assert check_request(orjson.dumps({"cmd": "anchor_reset", "token": TOKEN, "anchor_ns": 2 ** 63 - 1}), TOKEN) == {
        "cmd": "anchor_reset", "anchor_ns": 2 ** 63 - 1}


def test_junk_of_every_shape_is_answered_counted_and_survived(rig):
    rep = lambda frames: orjson.loads(rig.raw(zmq.REQ, frames)[-1])["reason"]      # noqa: E731
    assert rep([b'{"cmd":"anchor_reset"}', b"second frame"]) == "frames"   # killed compute (EFSM)
    assert rep([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", b"j"]) == "frames"
    assert rep([b""]) == "empty"
    assert rep([b"\xff\xfe\x00binary"]) == "not_json"
    assert rep([b"[1, 2]"]) == "not_object"
    assert rep([b'{"cmd":"anchor_reset","pad":"' + b"x" * 5000 + b'"}']) == "too_large"
    assert rep([orjson.dumps({"token": TOKEN, "cmd": "launch"})]) == "unknown_cmd"
    assert rep([orjson.dumps({"token": TOKEN, "cmd": ["x"]})]) == "unknown_cmd"
    assert rep([orjson.dumps({"token": TOKEN, "cmd": "anchor_reset", "anchor_ns": True})]) == "bad_args"
    # a DEALER: no empty delimiter, two body frames; then only an empty delimiter
    d = rig.raw(zmq.DEALER, [b'{"cmd":"x"}', b"more"])
    assert orjson.loads(d[-1])["reason"] == "frames"
    assert orjson.loads(rig.raw(zmq.DEALER, [b""])[-1])["reason"] == "empty"
    # over the transport limit: libzmq drops that peer, nothing is buffered or answered
    assert rig.raw(zmq.REQ, [b"x" * (control.TRANSPORT_MAX_BYTES + 1)], timeout_ms=300) is None
    # a raw TCP peer speaking no ZMTP at all
    import socket
    host, port = rig.url.removeprefix("tcp://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as c:
        c.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
    refused = dict(rig.server.refused)
    # libzmq may read the raw peer's bytes as ZMTP/1.0 frames (its backward compatibility: a first
    # byte other than 0xFF is a length) and hand them on as a request of the wrong shape, refused
    # as one more `frames`, or not yet when this is checked
    assert refused.pop("frames") in (3, 4)
    assert refused == {"empty": 2, "not_json": 1, "not_object": 1, "too_large": 1, "unknown_cmd": 2, "bad_args": 1}
    assert rig.seen == [] and rig.th.is_alive()
    assert ask(rig, {"cmd": "anchor_reset"}) == {"ok": True, "echo": {"cmd": "anchor_reset"}}


def test_a_handler_that_raises_is_answered_and_counted():
    def boom(req):
        raise ValueError("no")
    r = Rig(handler=boom)
    try:
        assert ask(r, {"cmd": "anchor_reset"}) == {"ok": False, "reason": "handler_error", "error": "ValueError: no"}
        assert r.th.is_alive() and r.server.refused == {"handler_error": 1}
    finally:
        r.close()


def test_a_request_read_after_its_deadline_is_refused_not_carried_out(rig):
    """Compute busy (warming up) past the API's 2 s: the API answered 503 already, so the queued
    request must not reset the anchor later behind the caller's back (nor twice when retried)."""
    import time
    # the client stamps its deadline: now + timeout (read here by a bare ROUTER)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        t0 = time.time_ns()
        th = threading.Thread(target=control.request, args=(f"tcp://127.0.0.1:{port}", TOKEN,
                                                            {"cmd": "anchor_reset"}, 1500))
        th.start()
        assert router.poll(5000)
        body = orjson.loads(router.recv_multipart()[-1])
        t1 = time.time_ns()
        th.join(5)
    finally:
        router.close(0)
        ctx.term()
    assert t0 + 1500 * 10 ** 6 <= body["expires_ns"] <= t1 + 1500 * 10 ** 6
    # a request read after its deadline: answered, counted, never carried out
    late = orjson.dumps({**body, "expires_ns": time.time_ns() - 1})
    rep = orjson.loads(rig.raw(zmq.REQ, [late])[-1])
    assert (rep["ok"], rep["reason"]) == (False, "expired") and rep["error"].startswith("request expired ")
    assert rig.seen == [] and rig.server.refused == {"expired": 1} and rig.server.served == 0
    with pytest.raises(control.Refused) as e:
        check_request(orjson.dumps({"token": TOKEN, "cmd": "anchor_reset", "expires_ns": True}), TOKEN, 2)
    assert e.value.reason == "bad_args"
    # in time: carried out, the deadline not passed to the handler
    assert ask(rig, {"cmd": "anchor_reset"}) == {"ok": True, "echo": {"cmd": "anchor_reset"}}


def test_a_reply_json_cannot_carry_is_answered_as_a_handler_error():
    import numpy as np
    r = Rig(handler=lambda req: {"ok": True, "anchor_ns": np.int64(5)})
    try:
        rep = ask(r, {"cmd": "anchor_reset"})
        assert (rep["ok"], rep["reason"]) == (False, "handler_error") and "not encodable" in rep["error"]
        assert r.th.is_alive() and r.server.refused == {"handler_error": 1}
    finally:
        r.close()


def test_request_times_out_with_none_when_nobody_answers():
    import time
    url = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert control.request(url, TOKEN, {"cmd": "anchor_reset"}, 200) is None
    assert time.monotonic() - t0 < 1.0


# --- compute's control socket ------------------------------------------------------------------
@pytest.fixture
def compute(segs, tmp_path):
    from actors.compute import Compute
    from config.settings import load_settings
    from ipc.bus import Publisher
    from ipc.shm import unlink_prefix
    s = load_settings(decision_log_dir=str(tmp_path / "decisions"), shm_prefix=segs.prefix.replace("tdctest-", "c"),
                      zmq_control_url=f"tcp://127.0.0.1:{free_port()}", zmq_xsub_url="tcp://127.0.0.1:1",
                      polymarket_enabled=False, api_token=TOKEN)
    c = Compute(s, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    yield c
    c.control.close(0)
    unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def _exchange(c, send):
    """Run `send` (a client) in a thread while compute serves its control socket."""
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", send()))
    th.start()
    while th.is_alive():
        c._serve_control(20)
    th.join()
    return out["r"]


def test_compute_survives_a_two_frame_request_and_needs_the_token(compute):
    c = compute
    url = c.s.ipc.zmq_control_url
    ctx = zmq.Context.instance()

    def two_frames():
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)
        s.send_multipart([b'{"cmd":"anchor_reset"}', b"x"])
        try:
            return orjson.loads(s.recv()) if s.poll(2000) else None
        finally:
            s.close(0)
    assert _exchange(c, two_frames) == {"ok": False, "reason": "frames", "error": "a request is one frame, got 2"}
    anchor0 = c.primary.cvd.anchor_ns
    assert _exchange(c, lambda: control.request(url, "not-the-token-xxxxx", {"cmd": "anchor_reset",
                                                                             "anchor_ns": 7}, 2000))["ok"] is False
    assert _exchange(c, lambda: control.request(url, TOKEN, {"cmd": "anchor_reset", "anchor_ns": True}, 2000))[
        "reason"] == "bad_args"
    assert c.primary.cvd.anchor_ns == anchor0 and not c.primary.cvd.explicit
    assert _exchange(c, lambda: control.request(url, TOKEN, {"cmd": "anchor_reset", "anchor_ns": 123}, 2000)) == {
        "ok": True, "anchor_ns": 123}
    assert c.primary.cvd.anchor_ns == 123 and c.primary.cvd.explicit
    assert c.counters()["control_requests"] == 1 and c.counters()["control_refused"] == 3
    assert c.control.report() == {"frames": 1, "auth": 1, "bad_args": 1}
