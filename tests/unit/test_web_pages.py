"""The dashboard's page and static routes and the security headers (actors/web/pages.py), on the
real app (create_app over real shared memory) and on a page directory of the test's own.

Checked: exact bytes, content types, ETag / 304, `Cache-Control: no-cache`; traversal and unknown
names 404 (JSON); `/` a 308 to /dashboard; the security headers on JSON, error, redirect and
static responses; files are read once at app creation."""
from __future__ import annotations

import falcon
import falcon.asgi
import pytest
from falcon import testing

from actors import api
from actors.web import pages
from config.settings import load_settings
from ipc import names
from ipc.state import StateBlock

HTML = b"<!doctype html><html><head><script src=\"/static/dashboard.js\"></script></head><body></body></html>\n"
JS = b"\"use strict\";\nconsole.log(1);\n"
CSS = b"body { margin: 0 }\n"
UPLOT = b"/*! uPlot */var uPlot=1;"
LICENSE = b"The MIT License (MIT)\n"


@pytest.fixture
def site(tmp_path):
    (tmp_path / "dashboard.html").write_bytes(HTML)
    (tmp_path / "dashboard.js").write_bytes(JS)
    (tmp_path / "dashboard.css").write_bytes(CSS)
    (tmp_path / "vendor" / "uplot").mkdir(parents=True)
    (tmp_path / "vendor" / "uplot" / "uPlot.iife.min.js").write_bytes(UPLOT)
    (tmp_path / "vendor" / "uplot" / "LICENSE").write_bytes(LICENSE)
    (tmp_path / ".hidden").write_bytes(b"secret")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    (tmp_path.parent / "outside.txt").write_bytes(b"outside")
    (tmp_path / "link.txt").symlink_to(tmp_path.parent / "outside.txt")
    app = falcon.asgi.App(middleware=[pages.SecurityHeaders()])
    pages.add_page_routes(app, tmp_path)
    return testing.TestClient(app), tmp_path


def assert_security_headers(r) -> None:
    for k, v in pages.SECURITY_HEADERS.items():
        assert r.headers[k] == v, k


@pytest.mark.parametrize("path,body,ctype", [
    ("/dashboard", HTML, "text/html; charset=utf-8"),
    ("/static/dashboard.html", HTML, "text/html; charset=utf-8"),
    ("/static/dashboard.js", JS, "text/javascript; charset=utf-8"),
    ("/static/dashboard.css", CSS, "text/css; charset=utf-8"),
    ("/static/vendor/uplot/uPlot.iife.min.js", UPLOT, "text/javascript; charset=utf-8"),
    ("/static/vendor/uplot/LICENSE", LICENSE, "text/plain; charset=utf-8"),
    ("/static/blob.bin", b"\x00\x01", "application/octet-stream")])
def test_files_exact_bytes_types_and_etag(site, path, body, ctype):
    c, _ = site
    r = c.simulate_get(path)
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, body, ctype)
    assert r.headers["cache-control"] == "no-cache"
    assert_security_headers(r)
    import hashlib
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert r.headers["etag"] == etag
    r304 = c.simulate_get(path, headers={"If-None-Match": etag})
    assert (r304.status_code, r304.content, r304.headers["etag"]) == (304, b"", etag)
    assert_security_headers(r304)
    assert c.simulate_get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert c.simulate_get(path, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("path", [
    "/static/..%2fapi.py", "/static/../api.py", "/static/%2e%2e/%2e%2e/actors/api.py", "/static/%00",
    "/static/dashboard.js%00", "/static/", "/static/vendor", "/static/vendor/uplot", "/static/.hidden",
    "/static/link.txt", "/static//etc/passwd", "/static/nope.js", "/static/DASHBOARD.JS"])
def test_anything_else_is_a_json_404(site, path):
    c, _ = site
    r = c.simulate_get(path)
    assert r.status_code == 404, path
    assert r.headers["content-type"] == "application/json"
    assert_security_headers(r)
    assert b"outside" not in r.content and b"secret" not in r.content


def test_files_are_read_once_at_creation(site):
    c, root = site
    (root / "dashboard.js").write_bytes(b"changed")
    (root / "late.js").write_bytes(b"late")
    assert c.simulate_get("/static/dashboard.js").content == JS
    assert c.simulate_get("/static/late.js").status_code == 404


def test_root_redirects_to_the_dashboard(site):
    c, _ = site
    r = c.simulate_get("/")
    assert (r.status_code, r.headers["location"]) == (308, "/dashboard")
    assert_security_headers(r)


def test_no_page_installed_is_a_404(tmp_path):
    app = falcon.asgi.App(middleware=[pages.SecurityHeaders()])
    assert pages.add_page_routes(app, tmp_path / "missing") == {}
    r = testing.TestClient(app).simulate_get("/dashboard")
    assert r.status_code == 404 and r.json == {"title": "no dashboard",
                                               "description": "the dashboard page is not installed"}


def test_security_headers_on_the_api_json_error_and_static_responses(env):
    url, prefix = env
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, api_token="s3cret-token-0123456789")
    StateBlock(s.ipc.shm_dir, prefix, names.FEATURES_BLOCK, writer=True).write({"ts_ns": 1, "venues": {}})
    c = testing.TestClient(api.create_app(api.ShmView(s), s))
    responses = {
        "json": c.simulate_get("/latest/features"),
        "503": c.simulate_get("/latest/bars"),
        "404": c.simulate_get("/nope"),
        "405": c.simulate_put("/health"),
        "401": c.simulate_post("/control/anchor/reset"),
        "308": c.simulate_get("/"),
        "static 404": c.simulate_get("/static/..%2fapi.py"),
        "openapi": c.simulate_get("/openapi.json"),
    }
    assert {k: r.status_code for k, r in responses.items()} == {
        "json": 200, "503": 503, "404": 404, "405": 405, "401": 401, "308": 308, "static 404": 404, "openapi": 200}
    for r in responses.values():
        assert_security_headers(r)
    # whatever page the repository ships is served from the package, with its headers
    files = pages.load_static(pages.STATIC_DIR)
    for name, f in files.items():
        r = c.simulate_get(f"/static/{name}")
        assert (r.status_code, r.content, r.headers["content-type"]) == (200, f.data, f.content_type), name
        assert_security_headers(r)
