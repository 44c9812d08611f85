"""Fetching: polite, bounded and robust HTTP GETs for the pipeline.

One :class:`Fetcher` serves a whole run (one connection pool per host, shared
cookies), and every request goes through the same gates, in this order:

1. the URL must be a well-formed http or https URL;
2. robots.txt of its origin must allow it, unless the source turns robots off (for
   sites the user owns); answers are kept in a :class:`RobotsCache` for
   ``robots_ttl``, which the daemon shares between cycles;
3. the host must not have asked us to wait: a 429/503 with Retry-After pauses every
   request to that host for the rest of the run, not just the one URL;
4. a per-host slot (``per_host`` in flight, ``min_delay`` between two starts, or the
   site's ``Crawl-delay`` if longer), then a global slot (``concurrency``); the host
   slot is taken first so a request waiting for a busy host never holds a global
   slot that another host could use;
5. the connection goes only to addresses that are allowed: the check runs on the
   resolved address inside the connection pool, at every connection and so at every
   redirect hop, which also defeats DNS rebinding (no gap between check and connect);
6. redirects are followed by hand, hop by hop, each hop through gates 1-5, up to
   ``max_redirects``, with loops detected; conditional-GET validators go with every
   hop, so a feed that moved with a 301 can still answer 304;
7. the body is streamed and decompressed by us with a bounded output per step, so a
   gzip bomb is stopped after ``max_body_mb`` of output, not after it filled memory;
8. the text is decoded by BOM, header, in-document declaration, then detection
   (:mod:`monitor.fetch_charset`).

Failures are :mod:`monitor.errors` types whose ``reason`` is plain words for the
``monitor sources`` table: "timed out after 20 s", "HTTP 403", "disallowed by robots.txt".
Proxies from the environment are not used: a proxy would connect on our behalf and
bypass the private-network check.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import random
import socket
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from protego import Protego

from monitor.config import FetchConfig
from monitor.errors import (
    BlockedAddressError,
    FetchError,
    PermanentFetchError,
    RobotsDisallowedError,
    TransientFetchError,
)
from monitor.fetch_charset import decode_body

__all__ = ["Fetcher", "Response", "RobotsCache", "next_attempt_delay", "parse_retry_after"]

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# Never wait longer than this for one host's Crawl-delay: a typo there should slow us, not stop us.
MAX_CRAWL_DELAY = 60.0
# A Retry-After of years would silence a source for good; a week is the most we obey.
MAX_RETRY_AFTER = 7 * 86400.0
DEFAULT_429_PAUSE = 60.0  # a 429 without Retry-After still pauses its host this long
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB
ROBOTS_RETRY_S = 300.0  # how long an unreachable robots.txt is remembered before trying again


@dataclass(frozen=True)
class Response:
    """A fetched page, after redirects; ``content`` is decompressed, ``text`` decoded."""

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    text: str
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed_ms: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (seconds or HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return min(max(0.0, moment.timestamp() - current), MAX_RETRY_AFTER)


def next_attempt_delay(
    consecutive_failures: int,
    interval_s: float,
    *,
    retry_after: float | None,
    max_backoff: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds until a source should be fetched again.

    No failures: its interval. After ``n`` failures: ``interval * 2**(n-1)`` capped at
    ``max_backoff``, with "equal jitter" (a uniform draw in the upper half), so sources
    that failed together (one outage) do not all retry in the same second. A server's
    Retry-After is a floor: we never come back sooner than it asked (up to a week),
    even when that is longer than ``max_backoff``.
    """
    if consecutive_failures <= 0:
        delay = interval_s
    else:
        rng = rng or random.Random()
        exponent = min(consecutive_failures - 1, 40)
        ceiling = min(max_backoff, interval_s * (2**exponent))
        delay = rng.uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


# -- the private-network guard -----------------------------------------------------------


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_is_public(address: IPAddress) -> bool:
    """True for addresses on the public internet (not loopback/private/link-local/reserved)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass
class _AddressPolicy:
    allow_private: bool
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows(self, address: IPAddress) -> bool:
        if self.allow_private or address_is_public(address):
            return True
        return any(address in network for network in self.allowed_networks)

    def check(self, host: str, addresses: list[str]) -> None:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.allows(address):
                shown = host if host == text else f"{host} ({text})"
                raise BlockedAddressError(
                    f"refused to connect to non-public address {shown}"
                    " (set fetch.allow_private_networks to allow)",
                )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address, then connect to a checked address (no TOCTOU gap)."""

    def __init__(self, policy: _AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        self._policy.check(host, addresses)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """All addresses of a host (IP literals resolve to themselves), in resolver order."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"host name not found: {host}") from exc
    except UnicodeError as exc:
        raise PermanentFetchError(f"invalid host name {host!r}") from exc
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class _PerHostTransport(httpx.AsyncBaseTransport):
    """One small connection pool per host, each behind the private-network guard.

    httpcore's pool scans all its connections for every queued request, so with one
    pool for hundreds of hosts that scan dominated the client's CPU (measured at ~6 ms
    per request with 64 connections, capping a 2-core machine near 70 requests/s).
    With a pool per host each scan sees at most ``per_host`` connections, and the
    per-host limit also holds at the connection level. Pools of hosts not used lately
    are closed once there are more than ``max_pools``, so a few hundred sources do not
    keep a few hundred idle sockets open.
    """

    def __init__(self, settings: FetchConfig, policy: _AddressPolicy) -> None:
        self._settings = settings
        self._backend = _GuardedBackend(policy)
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._pools: OrderedDict[tuple[bytes, bytes, int | None], _Pool] = OrderedDict()
        self.max_pools = max(64, settings.concurrency * 2)

    def _new_pool(self) -> httpx.AsyncHTTPTransport:
        per_host = self._settings.per_host
        transport = httpx.AsyncHTTPTransport(verify=self._ssl_context, retries=0, trust_env=False)
        # httpx has no public hook for the network backend, so the pool it built is
        # replaced by one around our guarded backend (same SSL context, same options).
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=per_host + 1,  # +1: robots.txt may overlap a page request
            max_keepalive_connections=per_host + 1,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=self._backend,
        )
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(key)
        if pool is None:
            await self._evict()
            pool = self._pools[key] = _Pool(self._new_pool())
        self._pools.move_to_end(key)
        pool.active += 1
        try:
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.active -= 1
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, pool),
            extensions=response.extensions,
        )

    async def _evict(self) -> None:
        for key in list(self._pools):
            if len(self._pools) < self.max_pools:
                return
            if self._pools[key].active == 0:
                await self._pools.pop(key).transport.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()


@dataclass
class _Pool:
    transport: httpx.AsyncHTTPTransport
    active: int = 0


class _CountedStream(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed (the pool may then be evicted)."""

    def __init__(self, inner: Any, pool: _Pool) -> None:
        self._inner = inner
        self._pool = pool
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._closed:
                self._closed = True
                self._pool.active -= 1


# -- decompression with a bounded output --------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class _Decoder:
    """Undo Content-Encoding (gzip, deflate, identity) without ever inflating past ``limit``."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._fed = False
        self._stages: list[Any] = []
        for name in reversed(encodings):  # the last encoding applied is undone first
            if name in ("", "identity"):
                continue
            if name in ("gzip", "x-gzip"):
                self._stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif name == "deflate":
                self._stages.append("deflate")  # zlib-wrapped or raw: decided on first bytes
            else:
                raise PermanentFetchError(f"unsupported content encoding {name!r}")

    def _stage(self, index: int, data: bytes) -> Any:
        stage = self._stages[index]
        if stage == "deflate":
            stage = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
            self._stages[index] = stage
        return stage

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._fed = True
        chunks = [data]
        for index in range(len(self._stages)):
            out: list[bytes] = []
            for chunk in chunks:
                if not chunk:
                    continue
                stage = self._stage(index, chunk)
                pending = chunk
                while pending:
                    room = self.limit - self.total + 1
                    piece = stage.decompress(pending, max(room, 1))
                    out.append(piece)
                    if index == len(self._stages) - 1:
                        self.total += len(piece)
                        if self.total > self.limit:
                            raise _BodyTooLarge
                    pending = stage.unconsumed_tail
            chunks = out
        joined = b"".join(chunks)
        if not self._stages:
            self.total += len(joined)
            if self.total > self.limit:
                raise _BodyTooLarge
        return joined

    def flush(self) -> bytes:
        if not self._stages:
            return b""
        tail = b""
        for index, stage in enumerate(self._stages):
            if isinstance(stage, str):
                continue
            data = (stage.decompress(tail) if tail else b"") + stage.flush()
            if self._fed and not stage.eof:
                # zlib's flush() returns what it has without complaint; a cut stream
                # would otherwise pass for a whole (shorter) page.
                raise zlib.error("the compressed stream ends early")
            tail = data
            if index == len(self._stages) - 1:
                self.total += len(data)
                if self.total > self.limit:
                    raise _BodyTooLarge
        return tail


def inflate_bounded(data: bytes, limit: int) -> bytes:
    """Gunzip ``data`` (a .gz file, not a Content-Encoding) to at most ``limit`` bytes.

    Raises ValueError("... larger than N MiB" / "corrupt gzip") instead of inflating a bomb.
    """
    decoder = _Decoder(["gzip"], limit)
    try:
        return decoder.feed(data) + decoder.flush()
    except _BodyTooLarge:
        raise ValueError(f"gzip file larger than {_mib(limit)} uncompressed") from None
    except zlib.error as exc:
        raise ValueError(f"corrupt gzip file ({exc})") from None


# -- per-host politeness ------------------------------------------------------------------


@dataclass
class _HostState:
    slots: asyncio.Semaphore
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_start: float = float("-inf")
    delay: float = 0.0
    resume_at: float = float("-inf")  # a 429/503 Retry-After pauses the whole host until then
    pause_reason: str = ""


@dataclass
class _RobotsEntry:
    parser: Protego | None  # None: allow everything (no robots.txt, or 4xx)
    expires: float
    error: str | None = None  # robots.txt could not be read: retry the source later
    crawl_delay: float = 0.0


class RobotsCache:
    """robots.txt answers per origin and user agent, kept until ``robots_ttl`` runs out.

    A Fetcher lives for one cycle; the daemon keeps one RobotsCache for its lifetime and
    hands it to each cycle's Fetcher, or every cycle would ask every host again.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _RobotsEntry] = {}

    def get(self, origin: str, agent: str) -> _RobotsEntry | None:
        entry = self._entries.get((origin, agent))
        return entry if entry is not None and entry.expires > time.monotonic() else None

    def put(self, origin: str, agent: str, entry: _RobotsEntry) -> None:
        self._entries[(origin, agent)] = entry

    def __len__(self) -> int:
        return len(self._entries)


def host_key(url: str) -> str:
    """What "one host" means for politeness: scheme, host name and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Fetcher:
    """One polite HTTP client for a run; use as ``async with Fetcher(settings) as f``."""

    def __init__(
        self,
        settings: FetchConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        robots_cache: RobotsCache | None = None,
    ) -> None:
        self.settings = settings
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks)
        self._policy = _AddressPolicy(settings.allow_private_networks, networks)
        self._custom_transport = transport is not None
        # We drive the transport ourselves instead of an httpx.AsyncClient: redirects are
        # ours already, and the client's per-request work (copying the cookie jar, event
        # hooks, re-chunking) was a fifth of our CPU per request on a loaded machine.
        self._transport = transport or _PerHostTransport(settings, self._policy)
        self._timeouts = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.total_timeout,
        ).as_dict()
        self._headers = {
            "User-Agent": settings.user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9,"
            " text/xml;q=0.9, text/html;q=0.8, */*;q=0.5",
        }
        # Cookies are kept for the run: some sites answer a first visit with a redirect
        # that sets a cookie and expects it back (without it, a redirect loop).
        self._cookies = httpx.Cookies()
        self._global = asyncio.Semaphore(settings.concurrency)
        self._hosts: dict[str, _HostState] = {}
        self._robots = robots_cache if robots_cache is not None else RobotsCache()
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._robots_failures: dict[str, _RobotsEntry] = {}  # this run only
        self._robots_asked: set[str] = set()  # origins whose robots.txt this run fetched
        self._limit = int(settings.max_body_mb * 1024 * 1024)
        self.robots_agent = settings.user_agent.split("/", 1)[0].strip() or "*"

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- public ---------------------------------------------------------------------

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        respect_robots: bool | None = None,
    ) -> Response:
        """GET ``url`` through every gate; raises FetchError subclasses with plain reasons.

        ``etag``/``last_modified`` are the validators stored for ``url``; when the server
        says 304 the result has ``not_modified=True`` and no body.
        """
        obey_robots = self.settings.respect_robots if respect_robots is None else respect_robots
        started = time.monotonic()
        try:
            return await self._get(url, etag, last_modified, obey_robots, started)
        except FetchError as exc:
            if exc.url is None:
                exc.url = url
            raise

    # -- internals --------------------------------------------------------------------

    async def _get(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        obey_robots: bool,
        started: float,
        *,
        limit: int | None = None,
    ) -> Response:
        current = url
        visited = {url}
        for _hop in range(self.settings.max_redirects + 1):
            self._check_scheme(current)
            if obey_robots:
                await self._check_robots(current)
            # Validators go with every hop: a feed that moved for good (301) keeps its
            # validators under the old URL, and only the last hop can answer 304.
            headers: dict[str, str] = {}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            status, response_headers, content = await self._request(current, headers, limit)
            if status in REDIRECT_STATUSES:
                location = response_headers.get("location")
                if not location:
                    raise PermanentFetchError(f"HTTP {status} redirect without a Location")
                try:
                    target = urljoin(current, location.strip())
                except ValueError as exc:
                    raise PermanentFetchError(f"invalid URL ({exc})", status=status) from None
                # Back to a URL already seen is a loop, unless this hop set a cookie:
                # "set a cookie and come back" to the same URL is a common consent check.
                if target in visited and "set-cookie" not in response_headers:
                    raise PermanentFetchError("redirect loop", status=status)
                visited.add(target)
                current = target
                continue
            response = self._finish(url, current, status, response_headers, content, started)
            if response.not_modified:
                # Servers may leave the validators out of a 304; the ones we sent still hold,
                # and storing None would make every later request unconditional.
                response = replace(
                    response,
                    etag=response.etag or etag,
                    last_modified=response.last_modified or last_modified,
                )
            return response
        raise PermanentFetchError(
            f"too many redirects (more than {self.settings.max_redirects})", status=status
        )

    def _finish(
        self,
        url: str,
        final_url: str,
        status: int,
        headers: httpx.Headers,
        content: bytes,
        started: float,
    ) -> Response:
        elapsed = int((time.monotonic() - started) * 1000)
        if status == 304:
            return Response(
                url=url,
                final_url=final_url,
                status=304,
                headers=headers,
                content=b"",
                text="",
                etag=headers.get("etag"),
                last_modified=headers.get("last-modified"),
                not_modified=True,
                elapsed_ms=elapsed,
            )
        if status in (429, 503) or status >= 500 or status == 408:
            retry_after = parse_retry_after(headers.get("retry-after"))
            reason = f"HTTP {status}"
            if retry_after is not None and status in (429, 503):
                reason += f", asked to wait {_seconds(retry_after)}"
            raise TransientFetchError(
                reason,
                status=status,
                retry_after=retry_after if status in (429, 503) else None,
            )
        if status >= 400:
            raise PermanentFetchError(f"HTTP {status}", status=status)
        if not 200 <= status < 300:
            raise PermanentFetchError(f"unexpected HTTP {status}", status=status)
        text, _codec = decode_body(content, headers.get("content-type"))
        return Response(
            url=url,
            final_url=final_url,
            status=status,
            headers=headers,
            content=content,
            text=text,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            not_modified=False,
            elapsed_ms=elapsed,
        )

    def _check_scheme(self, url: str) -> None:
        """Refuse what is not a well-formed http(s) URL, before any network work."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port out of range
        except ValueError as exc:
            raise PermanentFetchError(f"invalid URL ({exc})") from None
        # httpx's stricter rules (IDNA...) are applied when the request is built, in _send.
        if parts.scheme.lower() not in ("http", "https"):
            raise PermanentFetchError(f"unsupported URL scheme {parts.scheme or '(none)'!r}")
        if not parts.hostname:
            raise PermanentFetchError("URL has no host name")

    async def _check_robots(self, url: str) -> None:
        entry = await self._robots_for(url)
        if entry.error is not None:
            raise TransientFetchError(entry.error)
        if not self._robots_allow(entry, url) and host_key(url) not in self._robots_asked:
            # A "yes" is kept for robots_ttl; a "no" from an earlier run is asked again once
            # per run (one request), so a site owner who lets us in is heard next cycle.
            entry = await self._robots_for(url, refresh=True)
        if not self._robots_allow(entry, url):
            raise RobotsDisallowedError("disallowed by robots.txt")

    def _robots_allow(self, entry: _RobotsEntry, url: str) -> bool:
        return entry.parser is None or bool(entry.parser.can_fetch(url, self.robots_agent))

    async def _robots_for(self, url: str, *, refresh: bool = False) -> _RobotsEntry:
        key = host_key(url)
        lock = self._robots_locks.setdefault(key, asyncio.Lock())
        async with lock:  # one robots.txt fetch per host, however many requests wait on it
            entry = self._robots.get(key, self.robots_agent) or self._robots_failures.get(key)
            if refresh and key in self._robots_asked:
                refresh = False  # another request refreshed it while we waited for the lock
            if entry is None or entry.expires <= time.monotonic() or refresh:
                self._robots_asked.add(key)
                entry = await self._fetch_robots(url)
                if entry.error is None:
                    self._robots.put(key, self.robots_agent, entry)
                else:
                    # A host that could not be reached is tried again next cycle (the source
                    # backs off on its own); within this run its other URLs fail fast.
                    self._robots_failures[key] = entry
            if entry.crawl_delay:
                self._host(key).delay = entry.crawl_delay
            return entry

    async def _fetch_robots(self, url: str) -> _RobotsEntry:
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        started = time.monotonic()
        try:
            response = await self._get(
                robots_url, None, None, False, started, limit=ROBOTS_MAX_BYTES
            )
        except TransientFetchError as exc:
            # RFC 9309: an unreachable robots.txt means "assume disallowed", for a while.
            # Without an HTTP status the host itself is unreachable: say that plainly.
            error = exc.reason if exc.status is None else f"robots.txt unavailable ({exc.reason})"
            return _RobotsEntry(None, time.monotonic() + ROBOTS_RETRY_S, error=error)
        except BlockedAddressError:
            raise
        except PermanentFetchError:
            # 4xx (and oversize, odd redirects): RFC 9309 says the crawler may access anything.
            return _RobotsEntry(None, time.monotonic() + self.settings.robots_ttl)
        parser = Protego.parse(response.text)
        crawl_delay = min(float(parser.crawl_delay(self.robots_agent) or 0), MAX_CRAWL_DELAY)
        # The answer's age counts from when it arrived, not from when we asked.
        expires = time.monotonic() + self.settings.robots_ttl
        return _RobotsEntry(parser, expires, crawl_delay=crawl_delay)

    def _host(self, key: str) -> _HostState:
        state = self._hosts.get(key)
        if state is None:
            state = _HostState(asyncio.Semaphore(self.settings.per_host))
            state.delay = self.settings.min_delay
            self._hosts[key] = state
        return state

    async def _request(
        self, url: str, headers: dict[str, str], limit: int | None
    ) -> tuple[int, httpx.Headers, bytes]:
        """One hop: take the host's and the global slot, send, stream the body."""
        host = self._host(host_key(url))
        async with host.slots:
            async with host.gate:
                self._check_paused(host)
                wait = (
                    host.last_start + max(host.delay, self.settings.min_delay) - (time.monotonic())
                )
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._global.acquire()
                host.last_start = time.monotonic()
            try:
                status, response_headers, content = await self._send(
                    url, headers, limit or self._limit
                )
            finally:
                self._global.release()
        if status in (429, 503):
            pause = parse_retry_after(response_headers.get("retry-after"))
            if pause is None and status == 429:
                pause = DEFAULT_429_PAUSE
            if pause:
                # "Too many requests" speaks for the whole host, not just this URL: the
                # other pages queued for it in this run wait instead of piling on.
                host.resume_at = max(host.resume_at, time.monotonic() + pause)
                host.pause_reason = f"HTTP {status}"
        return status, response_headers, content

    def _check_paused(self, host: _HostState) -> None:
        remaining = host.resume_at - time.monotonic()
        if remaining > 0:
            raise TransientFetchError(
                f"not sent: the site asked us to wait ({host.pause_reason}),"
                f" {_seconds(remaining)} left",
                retry_after=remaining,
            )

    async def _send(
        self, url: str, headers: dict[str, str], limit: int
    ) -> tuple[int, httpx.Headers, bytes]:
        settings = self.settings
        if self._custom_transport:
            # Our guarded pool is bypassed; check the resolved address here instead.
            parts = urlsplit(url)
            try:
                addresses = await _resolve(parts.hostname or "", parts.port or 80)
            except httpcore.ConnectError as exc:
                raise TransientFetchError(str(exc)) from exc
            self._policy.check(parts.hostname or "", addresses)
        try:
            async with asyncio.timeout(settings.total_timeout):
                request = httpx.Request(
                    "GET",
                    url,
                    headers={**self._headers, **headers},
                    extensions={"timeout": self._timeouts},
                )
                if self._cookies.jar:
                    self._cookies.set_cookie_header(request)
                response = await self._transport.handle_async_request(request)
                response.request = request
                try:
                    status = response.status_code
                    if "set-cookie" in response.headers:
                        self._cookies.extract_cookies(response)
                    if status in REDIRECT_STATUSES or status == 304 or status >= 400:
                        return status, response.headers, b""
                    length = response.headers.get("content-length", "")
                    encodings = [
                        e.strip().lower()
                        for e in response.headers.get("content-encoding", "").split(",")
                        if e.strip()
                    ]
                    if length.isdigit() and not encodings and int(length) > limit:
                        raise _BodyTooLarge
                    decoder = _Decoder(encodings, limit)
                    parts_out: list[bytes] = []
                    async for chunk in response.stream:  # type: ignore[union-attr]
                        parts_out.append(decoder.feed(chunk))
                    parts_out.append(decoder.flush())
                    return status, response.headers, b"".join(parts_out)
                finally:
                    await response.aclose()
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            # Host names that are not valid IDNA surface only when the request is built.
            raise PermanentFetchError(f"invalid URL ({exc})") from None
        except _BodyTooLarge:
            raise PermanentFetchError(
                f"body larger than {_mib(limit)} (after decompression)"
            ) from None
        except TimeoutError:
            raise TransientFetchError(
                f"took longer than {_seconds(settings.total_timeout)} in total"
            ) from None
        except zlib.error as exc:
            raise TransientFetchError(f"corrupt compressed body ({exc})") from None
        except httpx.ConnectTimeout:
            raise TransientFetchError(
                f"timed out connecting after {_seconds(settings.connect_timeout)}"
            ) from None
        except httpx.TimeoutException:
            raise TransientFetchError(
                f"timed out after {_seconds(settings.read_timeout)} waiting for data"
            ) from None
        except httpx.RemoteProtocolError as exc:
            message = str(exc)
            if "complete message body" in message or "incomplete" in message.lower():
                reason = "connection closed before the whole body arrived"
            elif "without sending" in message or "disconnected" in message:
                reason = "server closed the connection without answering"
            else:
                reason = f"HTTP protocol error: {message}"
            raise TransientFetchError(reason) from None
        except httpx.ConnectError as exc:
            raise TransientFetchError(_connect_reason(exc)) from None
        except httpx.ReadError as exc:
            raise TransientFetchError(_read_reason(exc)) from None
        except httpx.TransportError as exc:
            raise TransientFetchError(f"network error: {exc or type(exc).__name__}") from None


def _connect_reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):  # say why, without _ssl.c:1006
            return f"TLS problem: the certificate is not trusted ({cause.verify_message})"
        cause = cause.__cause__ or cause.__context__
    message = str(exc)
    lowered = message.lower()
    if "host name not found" in lowered:
        return message
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host name not found"
    if "refused" in lowered:
        return "connection refused"
    if "certificate" in lowered or "ssl" in lowered:
        return f"TLS problem: {message}"
    return f"could not connect: {message or type(exc).__name__}"


def _read_reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:  # httpx -> httpcore -> anyio -> OSError: the OSError says what
        if isinstance(cause, ConnectionResetError) or "reset" in str(cause).lower():
            return "connection reset by the server"
        cause = cause.__cause__ or cause.__context__
    return f"connection broke while reading: {exc or type(exc).__name__}"


def _seconds(value: float) -> str:
    """A duration for people: "20 s", "15 min", "3 h", "7 d"."""
    if value < 120:
        return f"{value:g} s"
    if value < 2 * 3600:
        return f"{value / 60:.0f} min"
    if value < 2 * 86400:
        return f"{value / 3600:.0f} h"
    return f"{value / 86400:.0f} d"


def _mib(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MiB"
