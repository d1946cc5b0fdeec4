"""The dashboard's page and static files, and the security headers on every API response.

Invariants:
- the set of static files is read once, when the app is created (`StaticFiles.load`): a request
  can name only a file that was there then; any other name (a `..`, a NUL, an absolute path, a
  directory) is a JSON 404, by lookup in that table, never by touching the file system;
- each file is served with its Content-Type (by extension, CONTENT_TYPES; unknown:
  application/octet-stream), a strong ETag (sha256 of its bytes) and `Cache-Control: no-cache`
  (revalidate every time: a new build is seen at once); a matching If-None-Match is a 304;
- `GET /` is a 308 to `/dashboard`, which serves `dashboard.html` (404 when the page is absent);
- `SecurityHeaders` sets SECURITY_HEADERS on every response the app makes, errors and redirects
  included: the page may load only its own scripts, styles and images, connect only back here,
  and never be framed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

STATIC_DIR = Path(__file__).resolve().parent / "static"
DASHBOARD_FILE = "dashboard.html"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_TEXT = "; charset=utf-8"
CONTENT_TYPES = {
    ".html": "text/html" + _TEXT, ".css": "text/css" + _TEXT, ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT, ".json": "application/json", ".map": "application/json",
    ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2",
    ".txt": "text/plain" + _TEXT, ".md": "text/plain" + _TEXT, "": "text/plain" + _TEXT,   # LICENSE
}
OCTET = "application/octet-stream"


class SecurityHeaders:
    """falcon middleware (ASGI): the headers above on every response."""

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        resp.set_headers(SECURITY_HEADERS)


class StaticFile:
    __slots__ = ("data", "content_type", "etag")

    def __init__(self, data: bytes, content_type: str):
        self.data, self.content_type = data, content_type
        self.etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def load_static(root: Path) -> dict[str, StaticFile]:
    """Every regular file under `root` by its relative POSIX path (symlinks and dotfiles left out)."""
    out: dict[str, StaticFile] = {}
    if not root.is_dir():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_symlink() or not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        out[rel.as_posix()] = StaticFile(p.read_bytes(), CONTENT_TYPES.get(p.suffix.lower(), OCTET))
    return out


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def serve(req, resp, f: StaticFile) -> None:
    resp.set_header("ETag", f.etag)
    resp.set_header("Cache-Control", "no-cache")
    if _etag_matches(req.get_header("If-None-Match"), f.etag):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = f.content_type
    resp.data = f.data


class StaticResource:
    def __init__(self, files: dict[str, StaticFile]):
        self.files = files

    async def on_get(self, req, resp, name: str):
        f = self.files.get(name)
        if f is None:
            raise falcon.HTTPNotFound(title="not found", description="no such static file")
        serve(req, resp, f)


class DashboardResource:
    def __init__(self, files: dict[str, StaticFile]):
        self.page = files.get(DASHBOARD_FILE)

    async def on_get(self, req, resp):
        if self.page is None:
            raise falcon.HTTPNotFound(title="no dashboard", description="the dashboard page is not installed")
        serve(req, resp, self.page)


class RootResource:
    async def on_get(self, req, resp):
        raise falcon.HTTPPermanentRedirect("/dashboard")


def add_page_routes(app, static_dir: Path | None = None) -> dict[str, StaticFile]:
    """`/`, `/dashboard`, `/static/{name}` on `app`; the files are read now, once."""
    files = load_static(STATIC_DIR if static_dir is None else Path(static_dir))
    app.add_route("/", RootResource())
    app.add_route("/dashboard", DashboardResource(files))
    app.add_route("/static/{name:path}", StaticResource(files))
    return files
