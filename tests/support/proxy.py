"""A real HTTP CONNECT proxy on 127.0.0.1 for the proxy tests: records each request head, then
tunnels (every CONNECT target is dialled on 127.0.0.1, whatever host it names, so a test can
ask for `localhost` and a certificate for that name) or gives a canned answer; and a self-signed
certificate made by the openssl command line for TLS through the tunnel."""
from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


class ConnectProxy:
    """`answer`: None tunnels; bytes are sent instead of a tunnel, then the proxy closes the
    connection (or, with `hold`, keeps it open without a word more)."""

    def __init__(self, answer: bytes | None = None, hold: bool = False, ssl: ssl.SSLContext | None = None):
        self.answer, self.hold, self.ssl = answer, hold, ssl
        self.heads: list[list[str]] = []        # each request's lines, without the final blank
        self.tunnelled = 0                      # bytes piped client -> target
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "ConnectProxy":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    def url(self, userinfo: str = "") -> str:
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    @property
    def request_lines(self) -> list[str]:
        return [h[0] for h in self.heads]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head.decode("latin-1").split("\r\n")[:-2])
            if self.answer is not None:
                writer.write(self.answer)
                await writer.drain()
                if self.hold:
                    await reader.read()          # until the client gives up
                return
            port = int(self.heads[-1][0].split(" ")[1].rsplit(":", 1)[1])
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            writer.write(OK)
            await asyncio.gather(self._pipe(reader, up_w, True), self._pipe(up_r, writer, False))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(asyncio.current_task())

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
        try:
            while data := await src.read(65536):
                if up:
                    self.tunnelled += len(data)
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()


def self_signed(tmp: Path, name: str = "localhost") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only this certificate) for DNS name `name`
    (and, for an https:// proxy on 127.0.0.1, IP 127.0.0.1 when `name` is "127.0.0.1")."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={'IP' if name[0].isdigit() else 'DNS'}:{name}"], check=True, capture_output=True, timeout=30)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
