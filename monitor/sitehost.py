"""A real HTTP server on 127.0.0.1 that serves a directory of fixture sites.

The demo and the integration tests point ipr-monitor at it, so every request goes
through real sockets, real headers and real compression. Faults are injected per
path with :meth:`SiteHost.fault`, the way a flaky site would misbehave:

    host.fault("/a/feed.xml", status=503, headers={"Retry-After": "120"})
    host.fault("/b/page.html", delay=2.0)          # slow first byte
    host.fault("/b/page.html", reset=True)         # connection reset mid-body
    host.fault("/c/big.html", truncate=100)        # Content-Length lies, body stops early
    host.fault("/d/huge", body=b"x" * 65536, repeat=512, chunked=True)  # 32 MiB, no length

Layout: ``root/<site>/<path>``; a request for ``/<site>/<path>`` serves that file.
All sites share one host, so they share ``/robots.txt``: ``root/robots.txt`` when it
exists, else the ``robots_txt`` string (default: allow all).
ETag and Last-Modified are sent and conditional requests get 304. In text files,
``{{SITE}}`` is replaced by the host's base URL, so fixture feeds carry absolute links
to whatever port the host got.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import mimetypes
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Fault:
    """How to misbehave for one path. Unset fields mean "behave normally"."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    reset: bool = False
    truncate: int | None = None
    gzip_body: bool = False
    times: int | None = None  # apply this many times, then behave normally
    repeat: int = 1  # send ``body`` this many times (streamed: huge bodies cost no memory)
    chunked: bool = False  # Transfer-Encoding: chunked, so no Content-Length announces the size


_TEXT_SUFFIXES = {".html", ".htm", ".xml", ".rss", ".atom", ".txt", ".opml"}

Handler = Callable[[BaseHTTPRequestHandler], bool]


class SiteHost:
    """Serve ``root`` on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, root: str | Path, *, robots_txt: str = "User-agent: *\nAllow: /\n") -> None:
        self.root = Path(root).resolve()
        self.robots_txt = robots_txt
        self.faults: dict[str, Fault] = {}
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> SiteHost:
        host = self

        class _Handler(_SiteRequestHandler):
            site_host = host

        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        # A short poll interval makes stop() quick; tests start and stop many hosts.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SiteHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the host first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- faults ----------------------------------------------------------------------

    def fault(self, path: str, **kwargs: object) -> None:
        """Misbehave on ``path`` (see :class:`Fault`); replaces any earlier fault there."""
        with self._lock:
            self.faults["/" + path.lstrip("/")] = Fault(**kwargs)  # type: ignore[arg-type]

    def clear(self, path: str | None = None) -> None:
        """End one fault, or all of them."""
        with self._lock:
            if path is None:
                self.faults.clear()
                self.handlers.clear()
            else:
                self.faults.pop("/" + path.lstrip("/"), None)
                self.handlers.pop("/" + path.lstrip("/"), None)

    def route(self, path: str, handler: Handler) -> None:
        """Answer ``path`` with a custom function (returns True when it handled it)."""
        with self._lock:
            self.handlers["/" + path.lstrip("/")] = handler

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[path]
            return fault


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (after a timeout, a size cap or a reset we caused) are normal here."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _SiteRequestHandler(BaseHTTPRequestHandler):
    site_host: SiteHost
    protocol_version = "HTTP/1.1"
    server_version = "sitehost/1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        host = self.site_host
        path = urlsplit(self.path).path
        with host._lock:
            host.requests.append((self.command, self.path, dict(self.headers.items())))
            host.counts[path] += 1
            handler = host.handlers.get(path)
        if handler is not None and handler(self):
            return
        fault = host._take_fault(path)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status is not None:
            body = fault.body if fault.body is not None else f"status {fault.status}\n".encode()
            self._send(fault.status, body, fault.headers, head=head, fault=fault)
            return
        if path == "/robots.txt" and self._file(path) is None:
            body = fault.body if fault and fault.body is not None else host.robots_txt.encode()
            self._send(200, body, {"Content-Type": "text/plain"}, head=head, fault=fault)
            return
        target = self._file(path)
        if target is None:
            self._send(404, b"not found\n", {"Content-Type": "text/plain"}, head=head)
            return
        body = fault.body if fault and fault.body is not None else self._read(target)
        stat = target.stat()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag or (
            self.headers.get("If-Modified-Since") == last_modified
            and "If-None-Match" not in self.headers
        ):
            self._send(304, b"", {"ETag": etag, "Last-Modified": last_modified}, head=True)
            return
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("xml"):
            ctype += "; charset=utf-8"
        if target.suffix in {".rss", ".atom"} or target.name.endswith((".rss.xml", "feed.xml")):
            ctype = "application/xml; charset=utf-8"
        headers = {"Content-Type": ctype, "ETag": etag, "Last-Modified": last_modified}
        if fault:
            headers.update(fault.headers)
        self._send(200, body, headers, head=head, fault=fault)

    def _read(self, target: Path) -> bytes:
        """File bytes, with ``{{SITE}}`` replaced by this host's base URL in text files."""
        body = target.read_bytes()
        if target.suffix in _TEXT_SUFFIXES:
            body = body.replace(b"{{SITE}}", self.site_host.base_url.encode())
        return body

    def _file(self, path: str) -> Path | None:
        root = self.site_host.root
        target = (root / path.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if root not in target.parents or not target.is_file():
            return None
        return target

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        head: bool,
        fault: Fault | None = None,
    ) -> None:
        if fault and fault.gzip_body:
            body = gzip.compress(body)
            headers = {**headers, "Content-Encoding": "gzip"}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        repeat = fault.repeat if fault else 1
        chunked = bool(fault and fault.chunked)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif status != 304:
            self.send_header("Content-Length", str(len(body) * repeat))
        self.end_headers()
        if head or status == 304:
            return
        if chunked or repeat != 1:
            self._stream(body, repeat, chunked)
            return
        if fault and (fault.reset or fault.truncate is not None):
            cut = fault.truncate if fault.truncate is not None else len(body) // 2
            self.wfile.write(body[:cut])
            self.wfile.flush()
            if fault.reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            self.close_connection = True
            self.connection.close()
            return
        self.wfile.write(body)

    def _stream(self, body: bytes, repeat: int, chunked: bool) -> None:
        """Write ``body`` ``repeat`` times; stop quietly when the client hangs up (it may)."""
        try:
            for _ in range(repeat):
                if chunked:
                    self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
                else:
                    self.wfile.write(body)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
