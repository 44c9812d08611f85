"""Faults the fixture host cannot inject by itself, as ``SiteHost.route()`` handlers and
small loopback servers: a body that stalls halfway, a body of any size streamed from a
generator, a gzip stream cut short, a feed whose GUIDs change on every fetch, a port
that refuses or never completes a connection, and a TLS server with a certificate
nobody trusts.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Handler = Callable[[BaseHTTPRequestHandler], bool]


def _hang_up(request: BaseHTTPRequestHandler) -> None:
    request.close_connection = True
    with contextlib.suppress(OSError):
        request.wfile.flush()


def stall_mid_body(body: bytes, *, sent: int, stall: float, content_type: str) -> Handler:
    """Announce the whole body, send ``sent`` bytes of it, then go silent for ``stall`` s."""

    def handler(request: BaseHTTPRequestHandler) -> bool:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        try:
            request.wfile.write(body[:sent])
            request.wfile.flush()
            time.sleep(stall)
            request.wfile.write(body[sent:])
        except OSError:
            pass
        _hang_up(request)
        return True

    return handler


def no_answer(stall: float) -> Handler:
    """Read the request, then say nothing at all for ``stall`` seconds."""

    def handler(request: BaseHTTPRequestHandler) -> bool:
        time.sleep(stall)
        request.close_connection = True
        return True

    return handler


def trickle(body: bytes, *, every: float) -> Handler:
    """Send one byte every ``every`` seconds: never idle long enough for a read timeout."""

    def handler(request: BaseHTTPRequestHandler) -> bool:
        request.send_response(200)
        request.send_header("Content-Type", "application/xml; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        try:
            for index in range(len(body)):
                request.wfile.write(body[index : index + 1])
                request.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        _hang_up(request)
        return True

    return handler


def lazy_body(
    total: int,
    *,
    chunk: bytes = b"<p>" + b"x" * 65533,
    announce_length: bool,
    content_type: str = "text/html; charset=utf-8",
) -> Handler:
    """``total`` bytes made on the fly by a generator (no memory cost), with or without a
    Content-Length; stops quietly when the client hangs up, as it should."""

    def pieces() -> Iterator[bytes]:
        left = total
        while left > 0:
            piece = chunk[:left]
            left -= len(piece)
            yield piece

    def handler(request: BaseHTTPRequestHandler) -> bool:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        if announce_length:
            request.send_header("Content-Length", str(total))
        else:
            request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        try:
            for piece in pieces():
                if announce_length:
                    request.wfile.write(piece)
                else:
                    request.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            if not announce_length:
                request.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        _hang_up(request)
        return True

    handler.sent_total = total  # type: ignore[attr-defined]
    return handler


def raw_body(body: bytes, *, headers: dict[str, str], status: int = 200) -> Handler:
    """Exactly these bytes and headers (Content-Length is the length of ``body``)."""

    def handler(request: BaseHTTPRequestHandler) -> bool:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
        return True

    return handler


def truncated_gzip(body: bytes, *, keep: float = 0.5, content_type: str) -> Handler:
    """A gzip stream cut after ``keep`` of its bytes, with a Content-Length that matches
    the cut: the transfer is complete, the compressed stream is not."""
    packed = gzip.compress(body)
    cut = packed[: int(len(packed) * keep)]
    return raw_body(cut, headers={"Content-Type": content_type, "Content-Encoding": "gzip"})


def gzip_bomb_handler(*, mib: int = 64) -> Handler:
    """``mib`` MiB of zeros in a gzip body of about ``mib`` KiB."""
    packed = _bomb(mib)
    return raw_body(
        packed,
        headers={"Content-Type": "application/xml; charset=utf-8", "Content-Encoding": "gzip"},
    )


_BOMBS: dict[int, bytes] = {}


def _bomb(mib: int) -> bytes:
    if mib not in _BOMBS:
        _BOMBS[mib] = gzip.compress(b"\0" * (mib * 1024 * 1024), compresslevel=6)
    return _BOMBS[mib]


def changing_guids(feed: Path, base_url: str) -> Handler:
    """Serve ``feed`` with every ``{{GUID}}`` replaced by a new random GUID on each fetch."""

    def handler(request: BaseHTTPRequestHandler) -> bool:
        text = feed.read_text(encoding="utf-8").replace("{{SITE}}", base_url)
        while "{{GUID}}" in text:
            text = text.replace("{{GUID}}", f"urn:uuid:{uuid.uuid4()}", 1)
        body = text.encode("utf-8")
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
        return True

    return handler


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Origin:
    """A port on 127.0.0.1 in front of the fixture host, whose behaviour can be switched:

    - ``refuse()``: nothing listens, connections are refused;
    - ``blackhole()``: a listener with a full backlog that never accepts, so a connect
      gets no answer and times out;
    - ``forward()``: bytes are piped both ways to the fixture host (the fault has ended).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _bind(self, backlog: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(backlog)
        return listener

    def _reset(self) -> None:
        self._stop.set()
        for sock in [*self._fillers, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()
        self._fillers.clear()
        self._sockets.clear()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        self._stop = threading.Event()

    def refuse(self) -> None:
        self._reset()

    def blackhole(self) -> bool:
        """Fill the accept queue so further SYNs are dropped; False if this kernel answers
        anyway (then a connect timeout cannot be produced on loopback)."""
        self._reset()
        self._listener = self._bind(0)
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            self._fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", self.port))
            except (TimeoutError, OSError):
                return True  # the queue is full: this connect was not answered
        return False

    def forward(self) -> None:
        self._reset()
        listener = self._bind(64)
        listener.settimeout(0.1)
        self._listener = listener
        stop = self._stop
        threading.Thread(target=self._accept_loop, args=(listener, stop), daemon=True).start()

    def close(self) -> None:
        self._reset()

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        source.settimeout(None)
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate and key for 127.0.0.1 made with the openssl CLI (None if
    openssl is missing)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsServer:
    """HTTPS on 127.0.0.1 with a self-signed certificate: every fetch must fail the handshake."""

    def __init__(self, cert: Path, key: Path, body: bytes) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        payload = body

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                return None  # failed handshakes are the point

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
