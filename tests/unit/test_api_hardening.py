"""API hardening: JSON errors whatever the client accepts, body limits on every route, content
type, no stack trace on an unexpected fault, and an OpenAPI document that covers every route."""
from __future__ import annotations

import re

import logging

import falcon
import pytest

from actors.api import MAX_BODY_BYTES, ShmView, create_app
from tests.support.api import FakeCompute, client, post

XML = {"Accept": "application/xml"}


def _is_json_error(r, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    assert isinstance(r.json["title"], str)
    assert "Traceback" not in r.text


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404), ("GET", "/latest", 404), ("GET", "/latest/book/", 404),
    ("GET", "/control/anchor/reset", 405), ("POST", "/health", 405), ("DELETE", "/metrics", 405),
    ("PUT", "/openapi.json", 405)])
def test_unknown_routes_and_methods_are_json_even_for_xml_clients(env, method, path, status):
    r = client(*env).simulate_request(method, path, headers=XML)
    _is_json_error(r, status)
    if status == 405:
        assert "allow" in r.headers


@pytest.mark.parametrize("query", ["", "venue=", "venue=moon", "venue=futures&venue=spot", "venue=FUTURES"])
def test_bad_book_queries_are_400(env, query):
    _is_json_error(client(*env).simulate_get("/latest/book", query_string=query, headers=XML), 400)


def test_declared_oversize_body_is_413_on_any_route_before_auth(env):
    big = b"x" * (MAX_BODY_BYTES + 1)
    c = client(*env)
    _is_json_error(c.simulate_get("/health", body=big), 413)
    _is_json_error(c.simulate_post("/control/anchor/reset", body=big), 413)     # no token at all
    _is_json_error(post(c, b'{"anchor_ns": 1}' + b" " * MAX_BODY_BYTES), 413)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "multipart/form-data"])
def test_body_of_another_content_type_is_415(env, ctype):
    _is_json_error(post(client(*env), b'{"anchor_ns": 1}', content_type=ctype), 415)


def test_json_content_type_with_parameters_and_empty_bodies_pass(env):
    fake = FakeCompute(env[0])
    try:
        c = client(*env)
        r = post(c, b'{"anchor_ns": 5}', content_type="application/json; charset=utf-8")
        assert r.status_code == 200 and r.json["anchor_ns"] == 5
        r = post(c, b'{"anchor_ns": 7.0}')              # an integral number is an integer
        assert r.status_code == 200 and r.json["anchor_ns"] == 7 and type(fake.requests[-1]["anchor_ns"]) is int
        assert post(c, b"", content_type="text/plain").status_code == 200   # no body: type moot
        assert post(c, b'{"anchor_ns": null}').status_code == 200
    finally:
        fake.close()


def test_auth_is_checked_before_the_body(env):
    c = client(*env)
    r = post(c, b"{", token="wrong")
    _is_json_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


class ExplodingView(ShmView):
    def doc(self, name):
        raise RuntimeError("secret internals /etc/passwd")

    def raw(self, name):
        raise KeyError("secret key")


def test_unexpected_fault_is_a_json_500_without_trace_and_is_logged(env, caplog):
    from config.settings import load_settings
    from falcon import testing
    s = load_settings(shm_prefix=env[1], zmq_control_url=env[0])
    c = testing.TestClient(create_app(ExplodingView(s), s))
    with caplog.at_level(logging.ERROR, logger="api"):
        for path in ("/state", "/latest/features", "/metrics"):
            r = c.simulate_get(path, headers=XML)
            _is_json_error(r, 500)
            assert "secret" not in r.text and "RuntimeError" not in r.text and "KeyError" not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert len(logged) == 3 and "secret internals" in str(logged[0].exc_info[1])


# --- the OpenAPI document --------------------------------------------------------------------
def _routes(app: falcon.App) -> dict[str, set[str]]:
    """uri template -> the methods its resource implements (falcon's own 405/OPTIONS responders
    are not bound methods of the resource)."""
    out: dict[str, set[str]] = {}

    def walk(nodes):
        for n in nodes:
            if n.method_map:
                # a field converter ({name:path}) is not part of the OpenAPI path
                out[re.sub(r"\{(\w+):\w+\}", r"{\1}", n.uri_template)] = {m.lower() for m, f in n.method_map.items()
                                       if getattr(f, "__self__", None) is n.resource}
            walk(n.children)

    walk(app._router._roots)
    return out


def test_openapi_describes_every_route_and_method(env):
    c = client(*env)
    r = c.simulate_get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json
    assert doc["openapi"].startswith("3.1")
    routes = _routes(c.app)
    assert routes and {p: set(ops) for p, ops in doc["paths"].items()} == routes
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer $API_TOKEN"}
    control = doc["paths"]["/control/anchor/reset"]["post"]
    assert control["security"] == [{"bearer": []}]
    assert {"200", "400", "401", "403", "413", "415", "503"} <= set(control["responses"])
    for path, ops in doc["paths"].items():
        for op in ops.values():
            ok = "308" if path == "/" else "200"       # / only redirects to the dashboard
            assert ok in op["responses"] and "500" in op["responses"], path
    book_params = doc["paths"]["/latest/book"]["get"]["parameters"]
    assert book_params == [{"name": "venue", "in": "query", "required": True,
                            "schema": {"enum": ["futures", "spot"]}}]


def test_openapi_schemas_are_valid_json_schema():
    import jsonschema_rs
    from actors.obs.openapi import build_openapi
    doc = build_openapi(MAX_BODY_BYTES)
    for name, schema in doc["components"]["schemas"].items():
        # each schema compiles (2020-12, OpenAPI 3.1's dialect) with the components as its root
        jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})
    ok = {"$ref": "#/components/schemas/AnchorResetRequest", "components": doc["components"]}
    v = jsonschema_rs.Draft202012Validator(ok)
    assert v.is_valid({}) and v.is_valid({"anchor_ns": 5}) and v.is_valid({"anchor_ns": None})
    assert not v.is_valid({"anchor_ns": -1}) and not v.is_valid({"x": 1}) and not v.is_valid({"anchor_ns": "1"})
