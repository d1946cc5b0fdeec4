"""POST /control/anchor/reset: token, body validation, size limit, compute's reply or its silence."""
from __future__ import annotations

import pytest

from tests.support.api import TOKEN, FakeCompute, client, post


def test_disabled_without_a_token(env):
    c = client(*env, token=None)
    r = post(c, token="anything")
    assert r.status_code == 403 and r.json["title"] == "control disabled"


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN, "Bearer", TOKEN])
def test_bad_credentials(env, header):
    c = client(*env)
    headers = {"Authorization": header} if header else {}
    r = c.simulate_post("/control/anchor/reset", headers=headers)
    assert r.status_code == 401 and r.json["title"] == "bad token"


@pytest.mark.parametrize("body,why", [(b"{", "bad JSON"), (b"[1]", "bad body"), (b'{"x":1}', "bad body"),
                                      (b'{"anchor_ns":"now"}', "bad anchor_ns"),
                                      (b'{"anchor_ns":-5}', "bad anchor_ns"), (b'{"anchor_ns":1.5}', "bad anchor_ns")])
def test_bad_bodies_are_400(env, body, why):
    r = post(client(*env), body)
    assert r.status_code == 400 and r.json["title"] == why


def test_body_size_limit(env):
    r = post(client(*env), b'{"anchor_ns": 1' + b" " * 5000 + b"}")
    assert r.status_code == 413


def test_compute_silent_is_503(env):
    r = post(client(*env))          # nothing listens on the control URL
    assert r.status_code == 503 and r.json["title"] == "compute did not answer"


def test_reset_reaches_compute(env):
    fake = FakeCompute(env[0])
    try:
        c = client(*env)
        r = post(c, b'{"anchor_ns": 1700000000000000000}')
        assert r.status_code == 200 and r.json == {"ok": True, "anchor_ns": 1700000000000000000}
        r = post(c)
        assert r.status_code == 200 and r.json["anchor_ns"] == 123
        assert fake.requests == [{"cmd": "anchor_reset", "anchor_ns": 1700000000000000000},
                                 {"cmd": "anchor_reset", "anchor_ns": None}]
    finally:
        fake.close()


def test_unknown_route_and_method_are_json_4xx(env):
    c = client(*env)
    assert c.simulate_get("/nope").status_code == 404
    r = c.simulate_get("/control/anchor/reset")
    assert r.status_code == 405
    r = c.simulate_get("/latest/book", params={"venue": "moon"})
    assert r.status_code == 400 and "venue" in r.json["description"]
    assert c.simulate_get("/latest/book").status_code == 400


def test_a_compute_with_another_token_is_502_not_the_clients_fault(env):
    fake = FakeCompute(env[0], token="another-token-0123456789")
    try:
        r = post(client(*env))
        assert r.status_code == 502 and r.json == {"title": "compute refused",
                                                   "description": "auth: bad or missing token"}
        assert fake.requests == []
    finally:
        fake.close()


def test_a_compute_handler_failure_is_502(env):
    fake = FakeCompute(env[0])
    fake.server.handler = lambda req: 1 / 0
    try:
        r = post(client(*env))
        assert r.status_code == 502 and r.json == {"title": "compute refused",
                                                   "description": "handler_error: ZeroDivisionError: division by zero"}
    finally:
        fake.close()
