"""Fetcher against real loopback servers (monitor.sitehost) that misbehave on purpose."""

from __future__ import annotations

import asyncio
import functools
import gzip
import random
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from monitor.config import FetchConfig
from monitor.errors import (
    BlockedAddressError,
    FetchError,
    PermanentFetchError,
    RobotsDisallowedError,
    TransientFetchError,
)
from monitor.fetch import (
    Fetcher,
    Response,
    RobotsCache,
    _BodyTooLarge,
    _Decoder,
    next_attempt_delay,
    parse_retry_after,
)
from monitor.sitehost import SiteHost

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PAGE = "feeds/articles/one.html"
MiB = 1024 * 1024


def settings(**changes: Any) -> FetchConfig:
    """Test settings: loopback allowed, no politeness delay, short timeouts."""
    base: dict[str, Any] = {
        "allow_private_networks": True,
        "min_delay": 0,
        "connect_timeout": 2,
        "read_timeout": 2,
        "total_timeout": 5,
    }
    base.update(changes)
    return FetchConfig(**base)


def fetch(url: str, config: FetchConfig | None = None, **kwargs: Any) -> Response:
    async def run() -> Response:
        async with Fetcher(config or settings()) as fetcher:
            return await fetcher.get(url, **kwargs)

    return asyncio.run(run())


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros in about 64 KiB of gzip."""
    return gzip.compress(b"\0" * (64 * MiB), compresslevel=6)


@pytest.fixture
def host() -> Iterator[SiteHost]:
    with SiteHost(FIXTURES) as site:
        yield site


class InFlight:
    """A route handler that answers slowly and records how many requests overlap."""

    def __init__(self, delay: float, *, also: InFlight | None = None) -> None:
        self.delay = delay
        self.also = also
        self.current = 0
        self.peak = 0
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            self.arrivals.append(time.monotonic())
        if self.also:
            self.also.enter()

    def leave(self) -> None:
        with self._lock:
            self.current -= 1
        if self.also:
            self.also.leave()

    def __call__(self, request: BaseHTTPRequestHandler) -> bool:
        self.enter()
        try:
            time.sleep(self.delay)
            request.send_response(200)
            request.send_header("Content-Type", "text/plain; charset=utf-8")
            request.send_header("Content-Length", "2")
            request.end_headers()
            request.wfile.write(b"ok")
        finally:
            self.leave()
        return True


# -- the ordinary case -------------------------------------------------------------------


def test_get_sends_user_agent_and_returns_text(host: SiteHost) -> None:
    config = settings(user_agent="ipr-monitor-test/9 (+https://example.org/contact)")
    response = fetch(host.url(PAGE), config)
    assert response.status == 200
    assert not response.not_modified
    assert "examination guidelines" in response.text
    assert response.content.startswith(b"<!--")
    assert response.etag and response.last_modified
    assert response.final_url == response.url == host.url(PAGE)
    agents = {headers.get("User-Agent") for _m, _p, headers in host.requests}
    assert agents == {"ipr-monitor-test/9 (+https://example.org/contact)"}
    assert [p for _m, p, _h in host.requests] == ["/robots.txt", "/" + PAGE]


def test_conditional_get_returns_304_without_body(host: SiteHost) -> None:
    first = fetch(host.url(PAGE))
    by_etag = fetch(host.url(PAGE), etag=first.etag)
    assert by_etag.not_modified and by_etag.status == 304
    assert by_etag.content == b"" and by_etag.text == ""
    by_date = fetch(host.url(PAGE), last_modified=first.last_modified)
    assert by_date.not_modified
    sent = [h for _m, p, h in host.requests if p == "/" + PAGE]
    assert sent[1].get("If-None-Match") == first.etag
    assert sent[2].get("If-Modified-Since") == first.last_modified
    changed = fetch(host.url(PAGE), etag='"stale"')
    assert changed.status == 200 and changed.content


def test_conditional_get_through_a_permanent_redirect(host: SiteHost) -> None:
    host.fault("old-feed", status=301, headers={"Location": "/" + PAGE})
    first = fetch(host.url("old-feed"))
    again = fetch(host.url("old-feed"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.final_url == host.url(PAGE)


def test_a_304_without_validators_keeps_the_ones_sent(host: SiteHost) -> None:
    host.fault(PAGE, status=304, body=b"")
    response = fetch(host.url(PAGE), etag='"v1"', last_modified="Tue, 24 Nov 2026 10:00:00 GMT")
    assert response.not_modified
    assert (response.etag, response.last_modified) == ('"v1"', "Tue, 24 Nov 2026 10:00:00 GMT")


def test_gzip_and_deflate_bodies_are_decoded(host: SiteHost) -> None:
    plain = fetch(host.url(PAGE)).content
    host.fault(PAGE, gzip_body=True)
    assert fetch(host.url(PAGE)).content == plain
    for compressor in (zlib.compress, lambda b: zlib.compress(b)[2:-4]):  # zlib and raw deflate
        host.fault(PAGE, body=compressor(plain), headers={"Content-Encoding": "deflate"})
        assert fetch(host.url(PAGE)).content == plain


# -- robots.txt ---------------------------------------------------------------------------


def test_robots_disallow_is_refused_without_touching_the_page(host: SiteHost) -> None:
    host.robots_txt = "User-agent: *\nDisallow: /feeds/articles/\n"
    with pytest.raises(RobotsDisallowedError, match=r"^disallowed by robots.txt$"):
        fetch(host.url(PAGE))
    assert host.counts["/" + PAGE] == 0
    # A source the user owns can turn robots off; then the page is fetched.
    assert fetch(host.url(PAGE), respect_robots=False).status == 200
    assert fetch(host.url(PAGE), settings(respect_robots=False)).status == 200


def test_robots_rules_for_our_product_token(host: SiteHost) -> None:
    host.robots_txt = "User-agent: ipr-monitor\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    with pytest.raises(RobotsDisallowedError):
        fetch(host.url(PAGE))
    other = settings(user_agent="someone-else/1.0 (+https://example.org)")
    assert fetch(host.url(PAGE), other).status == 200


def test_robots_is_fetched_once_per_host_and_expires(host: SiteHost) -> None:
    async def run(config: FetchConfig, pause: float) -> None:
        async with Fetcher(config) as fetcher:
            await asyncio.gather(*(fetcher.get(host.url(PAGE)) for _ in range(5)))
            await asyncio.sleep(pause)
            await fetcher.get(host.url(PAGE))

    asyncio.run(run(settings(), 0))
    assert host.counts["/robots.txt"] == 1
    asyncio.run(run(settings(robots_ttl=1.5), 1.6))  # 1.5 s: room for a slow, loaded box
    assert host.counts["/robots.txt"] == 3  # one more fetcher, then one expiry


def test_robots_cache_outlives_one_fetcher(host: SiteHost) -> None:
    """The daemon's cycles share one cache, so robots.txt is asked once per robots_ttl."""
    cache = RobotsCache()
    host.robots_txt = "User-agent: *\nCrawl-delay: 0.2\nDisallow: /private\n"

    async def cycle() -> None:
        async with Fetcher(settings(), robots_cache=cache) as fetcher:
            await fetcher.get(host.url(PAGE))
            await fetcher.get(host.url(PAGE))
            with pytest.raises(RobotsDisallowedError):
                await fetcher.get(host.url("private/page"))

    tracker = InFlight(0)
    host.route("/" + PAGE, tracker)
    asyncio.run(cycle())
    asyncio.run(cycle())
    # Once for the first cycle; the second cycle asks again only because a URL was
    # disallowed (a "no" is re-checked once per run, a "yes" is kept for robots_ttl).
    assert host.counts["/robots.txt"] == 2
    # The cached Crawl-delay still spaces the second cycle's requests.
    assert tracker.arrivals[3] - tracker.arrivals[2] >= 0.17


def test_a_site_that_lifts_its_disallow_is_heard_next_cycle(host: SiteHost) -> None:
    cache = RobotsCache()
    host.robots_txt = "User-agent: *\nDisallow: /feeds/\n"

    async def cycle() -> Response:
        async with Fetcher(settings(), robots_cache=cache) as fetcher:
            return await fetcher.get(host.url(PAGE))

    with pytest.raises(RobotsDisallowedError):
        asyncio.run(cycle())
    host.robots_txt = "User-agent: *\nAllow: /\n"
    assert asyncio.run(cycle()).status == 200
    assert asyncio.run(cycle()).status == 200
    assert host.counts["/robots.txt"] == 2  # the "yes" is cached again


def test_an_unreachable_host_is_tried_again_next_cycle(host: SiteHost) -> None:
    cache = RobotsCache()
    host.fault("robots.txt", reset=True, body=b"x" * 100, status=200)

    async def cycle() -> Response:
        async with Fetcher(settings(), robots_cache=cache) as fetcher:
            return await fetcher.get(host.url(PAGE))

    with pytest.raises(TransientFetchError, match="connection reset"):
        asyncio.run(cycle())
    host.clear("robots.txt")
    assert asyncio.run(cycle()).status == 200


def test_missing_robots_allows_and_unreachable_robots_defers(host: SiteHost) -> None:
    host.fault("robots.txt", status=404)
    assert fetch(host.url(PAGE)).status == 200
    host.fault("robots.txt", status=503)
    with pytest.raises(TransientFetchError, match=r"robots.txt unavailable \(HTTP 503\)"):
        fetch(host.url(PAGE))
    assert host.counts["/" + PAGE] == 1


def test_crawl_delay_spaces_requests_to_one_host(host: SiteHost) -> None:
    host.robots_txt = "User-agent: *\nCrawl-delay: 0.3\nAllow: /\n"
    tracker = InFlight(0)
    host.route("/paced", tracker)

    async def run() -> None:
        async with Fetcher(settings()) as fetcher:
            await asyncio.gather(*(fetcher.get(host.url("paced")) for _ in range(3)))

    asyncio.run(run())
    gaps = [b - a for a, b in zip(tracker.arrivals, tracker.arrivals[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.25


def test_min_delay_spaces_requests_to_one_host(host: SiteHost) -> None:
    tracker = InFlight(0)
    host.route("/paced", tracker)

    async def run() -> None:
        async with Fetcher(settings(min_delay=0.2, respect_robots=False)) as fetcher:
            await asyncio.gather(*(fetcher.get(host.url("paced")) for _ in range(3)))

    asyncio.run(run())
    gaps = [b - a for a, b in zip(tracker.arrivals, tracker.arrivals[1:], strict=False)]
    assert min(gaps) >= 0.17


# -- limits -------------------------------------------------------------------------------


def test_per_host_limit_is_never_exceeded(host: SiteHost) -> None:
    tracker = InFlight(0.5)  # long enough that the requests overlap even on a loaded box
    host.route("/slow", tracker)

    async def run() -> None:
        async with Fetcher(settings(per_host=2, concurrency=16)) as fetcher:
            await asyncio.gather(*(fetcher.get(host.url("slow")) for _ in range(6)))

    asyncio.run(run())
    assert tracker.peak == 2


def test_global_concurrency_limit_across_hosts() -> None:
    everywhere = InFlight(0)  # counts overlaps over all three hosts
    trackers = [InFlight(0.5, also=everywhere) for _ in range(3)]
    hosts = [SiteHost(FIXTURES).start() for _ in range(3)]
    try:
        for site, tracker in zip(hosts, trackers, strict=True):
            site.route("/slow", tracker)

        async def run() -> None:
            config = settings(per_host=2, concurrency=3, respect_robots=False)
            async with Fetcher(config) as fetcher:
                await asyncio.gather(
                    *(fetcher.get(site.url("slow")) for site in hosts for _ in range(3))
                )

        asyncio.run(run())
    finally:
        for site in hosts:
            site.stop()
    assert everywhere.peak == 3
    assert all(t.peak <= 2 for t in trackers)


# -- status codes and Retry-After -----------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 451])
def test_client_errors_are_permanent(host: SiteHost, status: int) -> None:
    host.fault(PAGE, status=status)
    with pytest.raises(PermanentFetchError) as caught:
        fetch(host.url(PAGE))
    assert caught.value.reason == f"HTTP {status}"
    assert caught.value.status == status
    assert caught.value.url == host.url(PAGE)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 429])
def test_server_errors_are_transient(host: SiteHost, status: int) -> None:
    host.fault(PAGE, status=status)
    with pytest.raises(TransientFetchError) as caught:
        fetch(host.url(PAGE))
    assert caught.value.reason == f"HTTP {status}"
    assert caught.value.retry_after is None


def test_retry_after_seconds_and_http_date(host: SiteHost) -> None:
    host.fault(PAGE, status=429, headers={"Retry-After": "120"})
    with pytest.raises(TransientFetchError) as caught:
        fetch(host.url(PAGE))
    assert caught.value.retry_after == 120
    assert caught.value.reason == "HTTP 429, asked to wait 2 min"

    when = time.time() + 3600
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
    host.fault(PAGE, status=503, headers={"Retry-After": stamp})
    with pytest.raises(TransientFetchError) as caught:
        fetch(host.url(PAGE))
    assert caught.value.retry_after is not None
    assert 3500 < caught.value.retry_after <= 3600


def test_retry_after_pauses_the_whole_host_for_this_run(host: SiteHost) -> None:
    """After a 429, other pages of that site are not sent until Retry-After has passed."""
    host.fault(PAGE, status=429, headers={"Retry-After": "60"})

    async def run() -> tuple[FetchError, FetchError, Response]:
        async with Fetcher(settings()) as fetcher:
            first = await _error(fetcher.get(host.url(PAGE)))
            second = await _error(fetcher.get(host.url("feeds/rss2.xml")))
            with SiteHost(FIXTURES) as other:  # another site is not affected
                third = await fetcher.get(other.url("feeds/rss2.xml"))
            return first, second, third

    first, second, third = asyncio.run(run())
    assert first.reason == "HTTP 429, asked to wait 60 s"
    assert isinstance(second, TransientFetchError)
    assert second.reason.startswith("not sent: the site asked us to wait (HTTP 429)")
    assert second.retry_after is not None and 50 < second.retry_after <= 60
    assert host.counts["/feeds/rss2.xml"] == 0
    assert third.status == 200


async def _error(pending: Any) -> FetchError:
    try:
        await pending
    except FetchError as exc:
        return exc
    raise AssertionError("expected a FetchError")


def test_parse_retry_after() -> None:
    assert parse_retry_after("0") == 0
    assert parse_retry_after(" 30 ") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999999") == 7 * 86400  # a week at most


def test_next_attempt_delay() -> None:
    rng = random.Random(7)
    assert next_attempt_delay(0, 900, retry_after=None, max_backoff=86400) == 900
    for failures in range(1, 12):
        ceiling = min(86400, 900 * 2 ** (failures - 1))
        delay = next_attempt_delay(failures, 900, retry_after=None, max_backoff=86400, rng=rng)
        assert ceiling / 2 <= delay <= ceiling
    draws = {
        next_attempt_delay(3, 900, retry_after=None, max_backoff=86400, rng=rng) for _ in range(20)
    }
    assert len(draws) > 10  # jitter: sources failing together do not retry together
    # Retry-After is a floor, even above max_backoff; the backoff still grows beyond it.
    assert next_attempt_delay(1, 60, retry_after=600, max_backoff=300, rng=rng) == 600
    assert next_attempt_delay(0, 60, retry_after=600, max_backoff=300) == 600
    assert next_attempt_delay(8, 60, retry_after=5, max_backoff=3600, rng=rng) >= 1800


# -- broken connections and bodies -------------------------------------------------------------


def test_connection_reset(host: SiteHost) -> None:
    host.fault(PAGE, reset=True)
    with pytest.raises(TransientFetchError, match=r"^connection reset by the server$"):
        fetch(host.url(PAGE))


def test_truncated_body(host: SiteHost) -> None:
    host.fault(PAGE, truncate=40)
    with pytest.raises(TransientFetchError, match="closed before the whole body arrived"):
        fetch(host.url(PAGE))


def test_read_timeout_in_plain_words(host: SiteHost) -> None:
    host.fault(PAGE, delay=1.0)
    with pytest.raises(TransientFetchError, match=r"^timed out after 0.3 s waiting for data$"):
        fetch(host.url(PAGE), settings(read_timeout=0.3))


def test_total_timeout_on_a_trickling_body(host: SiteHost) -> None:
    def trickle(request: BaseHTTPRequestHandler) -> bool:
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        for _ in range(20):  # one byte every 0.1 s: never a read timeout, never done
            request.wfile.write(b"x")
            request.wfile.flush()
            time.sleep(0.1)
        return True

    host.route("/trickle", trickle)
    with pytest.raises(TransientFetchError, match=r"^took longer than 0.5 s in total$"):
        fetch(host.url("trickle"), settings(read_timeout=1, total_timeout=0.5))


def test_connection_refused() -> None:
    with SiteHost(FIXTURES) as site:
        url = site.url(PAGE)
    with pytest.raises(TransientFetchError, match=r"^connection refused$"):
        fetch(url, settings(respect_robots=False))


def test_gzip_bomb_stops_at_the_cap(host: SiteHost) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < MiB / 4
    host.fault(PAGE, body=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(PermanentFetchError, match=r"^body larger than 1 MiB"):
        fetch(host.url(PAGE), settings(max_body_mb=1))


def test_decoder_output_is_bounded_step_by_step() -> None:
    """The bomb is stopped while inflating, never materialised: no step returns > limit."""
    bomb = gzip_bomb()
    decoder = _Decoder(["gzip"], limit=MiB)
    produced = 0
    with pytest.raises(_BodyTooLarge):
        for start in range(0, len(bomb), 65536):
            piece = decoder.feed(bomb[start : start + 65536])
            assert len(piece) <= MiB + 1
            produced += len(piece)
    assert produced <= MiB + 1


@pytest.mark.parametrize("chunked", [False, True])
def test_huge_body_is_cut_off(host: SiteHost, chunked: bool) -> None:
    host.fault(PAGE, body=b"x" * 65536, repeat=512, chunked=chunked)  # 32 MiB
    with pytest.raises(PermanentFetchError, match=r"^body larger than 2 MiB"):
        fetch(host.url(PAGE), settings(max_body_mb=2))


# -- redirects, schemes and the private-network guard -----------------------------------------


def test_redirects_are_followed_hop_by_hop(host: SiteHost) -> None:
    host.fault("a", status=301, headers={"Location": "/b"})
    host.fault("b", status=302, headers={"Location": host.url(PAGE)})
    response = fetch(host.url("a"))
    assert response.url == host.url("a")
    assert response.final_url == host.url(PAGE)
    assert "examination guidelines" in response.text


def test_redirect_loop(host: SiteHost) -> None:
    host.fault("a", status=302, headers={"Location": "/b"})
    host.fault("b", status=302, headers={"Location": "/a"})
    with pytest.raises(PermanentFetchError, match=r"^redirect loop$"):
        fetch(host.url("a"))
    assert host.counts["/a"] == 1 and host.counts["/b"] == 1


def test_redirect_limit(host: SiteHost) -> None:
    for hop in range(7):
        host.fault(f"r{hop}", status=307, headers={"Location": f"/r{hop + 1}"})
    with pytest.raises(PermanentFetchError, match=r"^too many redirects \(more than 5\)$"):
        fetch(host.url("r0"))
    assert host.counts["/r5"] == 1 and host.counts["/r6"] == 0
    host.fault("r3", status=302, headers={"Location": host.url(PAGE)})
    assert fetch(host.url("r0")).final_url == host.url(PAGE)


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "file:///etc/passwd", "gopher://x/"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(PermanentFetchError, match=r"^unsupported URL scheme"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://example.com:99999/",
        "http://xn--invalid-.com/",
        "http://a..b/",
        "http://",
    ],
)
def test_malformed_urls_are_permanent_errors(url: str) -> None:
    """A bad URL in a feed is that item's problem, never an exception for the whole run."""
    with pytest.raises(
        PermanentFetchError, match=r"^(invalid URL|invalid host name|URL has no host)"
    ):
        fetch(url)


def test_redirect_to_a_malformed_location(host: SiteHost) -> None:
    host.fault("a", status=302, headers={"Location": "http://[::1"})
    with pytest.raises(PermanentFetchError, match=r"^invalid URL"):
        fetch(host.url("a"))


def test_unreachable_host_is_said_plainly(host: SiteHost) -> None:
    with SiteHost(FIXTURES) as gone:
        url = gone.url(PAGE)
    with pytest.raises(TransientFetchError, match=r"^connection refused$"):
        fetch(url)  # robots.txt is the first request; its failure is the host's


def test_cookies_set_by_a_redirect_are_sent_back(host: SiteHost) -> None:
    """Consent walls redirect to themselves with a cookie; without a jar that is a loop."""

    def consent(request: BaseHTTPRequestHandler) -> bool:
        if "seen=1" in (request.headers.get("Cookie") or ""):
            request.send_response(200)
            request.send_header("Content-Length", "7")
            request.end_headers()
            request.wfile.write(b"welcome")
        else:
            request.send_response(302)
            request.send_header("Location", "/consent-check")
            request.send_header("Set-Cookie", "seen=1; Path=/")
            request.send_header("Content-Length", "0")
            request.end_headers()
        return True

    host.route("/consent", consent)
    host.route("/consent-check", consent)
    assert fetch(host.url("consent")).text == "welcome"


def test_redirect_to_itself_with_a_cookie_is_not_a_loop(host: SiteHost) -> None:
    def check(request: BaseHTTPRequestHandler) -> bool:
        cookie = request.headers.get("Cookie") or ""
        request.send_response(200 if "ok=1" in cookie else 302)
        if "ok=1" not in cookie:
            request.send_header("Location", "/same")
            request.send_header("Set-Cookie", "ok=1; Path=/")
        request.send_header("Content-Length", "0")
        request.end_headers()
        return True

    host.route("/same", check)
    response = fetch(host.url("same"))
    assert response.status == 200 and host.counts["/same"] == 2


def test_redirect_to_another_scheme_is_refused(host: SiteHost) -> None:
    host.fault("a", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(PermanentFetchError, match=r"^unsupported URL scheme 'file'"):
        fetch(host.url("a"))


def test_private_addresses_refused_by_default(host: SiteHost) -> None:
    with pytest.raises(BlockedAddressError, match=r"non-public address 127.0.0.1"):
        fetch(host.url(PAGE), FetchConfig(connect_timeout=2))
    assert host.requests == []  # not even robots.txt went out


def test_private_address_by_host_name_is_refused(host: SiteHost) -> None:
    """The check runs on the resolved address, so a friendly name does not get through."""
    with pytest.raises(BlockedAddressError, match=r"localhost \("):
        fetch(f"http://localhost:{host.port}/{PAGE}", FetchConfig(connect_timeout=2))


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
        "http://127.0.0.2:9/",
        "http://0.0.0.0:9/",
        "http://100.64.0.1/",
    ],
)
def test_redirect_to_a_blocked_address_is_refused(host: SiteHost, target: str) -> None:
    """127.0.0.1 is allowed for the test server only; every other non-public address is not."""
    host.fault("a", status=302, headers={"Location": target})
    config = settings(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    with pytest.raises(BlockedAddressError):
        fetch(host.url("a"), config)
    assert host.counts["/a"] == 1


# -- charsets ----------------------------------------------------------------------------------


def test_charset_from_meta_when_header_has_none(host: SiteHost) -> None:
    path = "feeds/charset-gb2312.html"
    host.fault(path, headers={"Content-Type": "text/html"})
    assert "知识产权保护" in fetch(host.url(path)).text


def test_mislabelled_utf8_is_read_as_utf8(host: SiteHost) -> None:
    path = "feeds/charset-mislabelled.html"
    host.fault(path, headers={"Content-Type": "text/html; charset=iso-8859-1"})
    text = fetch(host.url(path)).text
    assert "Café" in text and "知识产权" in text


def test_charset_detected_when_declared_nowhere(host: SiteHost) -> None:
    path = "feeds/charset-shiftjis.html"
    host.fault(path, headers={"Content-Type": "text/html"})
    assert "知的財産" in fetch(host.url(path)).text


def test_header_charset_is_used_when_it_holds(host: SiteHost) -> None:
    body = "<p>Zoë's café</p>".encode("cp1252")
    host.fault(PAGE, body=body, headers={"Content-Type": "text/html; charset=windows-1252"})
    assert fetch(host.url(PAGE)).text == "<p>Zoë's café</p>"


def test_bom_beats_a_wrong_header(host: SiteHost) -> None:
    body = "\ufeff<p>商标</p>".encode("utf-16-le")
    host.fault(PAGE, body=body, headers={"Content-Type": "text/html; charset=iso-8859-1"})
    assert fetch(host.url(PAGE)).text == "<p>商标</p>"


# -- isolation ---------------------------------------------------------------------------------


def test_one_broken_site_never_stops_or_slows_the_others(host: SiteHost) -> None:
    """Healthy sources all finish before the slow site's delay has even elapsed."""
    slow_delay = 3.0
    healthy_paths = [
        "feeds/rss2.xml",
        "feeds/atom.xml",
        "feeds/rss1.xml",
        "feeds/sitemap.xml",
        PAGE,
        "feeds/listing.html",
    ]
    with SiteHost(FIXTURES) as broken:
        broken.fault("slow1", delay=slow_delay, status=200)
        broken.fault("slow2", delay=slow_delay, status=200)
        broken.fault("reset", reset=True, body=b"x" * 1000, status=200)
        broken.fault("down", status=503, headers={"Retry-After": "60"})
        broken.fault(
            "bomb", body=gzip.compress(b"\0" * (8 * MiB)), headers={"Content-Encoding": "gzip"}
        )
        broken.fault("loop", status=302, headers={"Location": "/loop"})
        broken_urls = [broken.url(p) for p in ("slow1", "slow2", "reset", "down", "bomb", "loop")]
        finished: dict[str, float] = {}

        async def one(fetcher: Fetcher, url: str, start: float) -> Response | FetchError:
            try:
                return await fetcher.get(url)
            except FetchError as exc:
                return exc
            finally:
                finished[url] = time.monotonic() - start

        async def run() -> list[Response | FetchError]:
            config = settings(
                concurrency=4, per_host=2, read_timeout=10, total_timeout=20, max_body_mb=1
            )
            async with Fetcher(config) as fetcher:
                start = time.monotonic()
                urls = broken_urls + [host.url(p) for p in healthy_paths]
                return await asyncio.gather(*(one(fetcher, u, start) for u in urls))

        results = asyncio.run(run())
    broken_results, healthy_results = results[: len(broken_urls)], results[len(broken_urls) :]
    assert all(isinstance(r, Response) and r.status == 200 for r in healthy_results)
    assert all(isinstance(r, FetchError) for r in broken_results[2:])
    healthy_done = max(finished[host.url(p)] for p in healthy_paths)
    assert healthy_done < slow_delay
    assert min(finished[u] for u in broken_urls[:2]) >= slow_delay


# -- source health -------------------------------------------------------------------------------


def test_source_health_flags_silent_and_failing_sources(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.clock import iso
    from monitor.config import SourceConfig
    from monitor.fetch_health import source_health
    from monitor.store import Store

    store = Store.open(tmp_path / "health.db")
    store.sync_sources(
        [
            SourceConfig(name=name, url=f"https://{name}.example.org/feed")
            for name in ("daily", "quiet", "broken", "young")
        ]
    )
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    at = datetime(2026, 11, 25, 8, tzinfo=UTC)

    def arrivals(name: str, days: list[int]) -> None:
        source_id = store.source_id(name)
        for number, day in enumerate(days):
            for batch in range(3):  # one run's items arrive together: one arrival
                store.conn.execute(
                    "INSERT INTO seen_items (source_id, item_key, url, first_seen_at)"
                    " VALUES (?, ?, NULL, ?)",
                    (
                        source_id,
                        f"{number}-{batch}",
                        iso(start + timedelta(days=day, seconds=batch)),
                    ),
                )
        store.update_source(source_id, last_new_item_at=iso(start + timedelta(days=days[-1])))

    arrivals("daily", list(range(0, 24)))  # every day up to yesterday
    arrivals("quiet", [0, 1, 2, 3, 4, 5])  # daily, then nothing for 19 days
    arrivals("young", [20, 23])  # too little history to judge
    broken = store.source_id("broken")
    store.update_source(broken, consecutive_failures=3, last_error="HTTP 403")
    for name in ("daily", "quiet", "young"):
        store.update_source(store.source_id(name), last_success_at=iso(at))
    health = {h.name: h for h in source_health(store, at=at)}
    store.close()

    assert not health["daily"].silent and health["daily"].status == "ok"
    assert health["quiet"].silent
    assert health["quiet"].status == "silent: no new item for 19 d, usually every 24 h"
    assert not health["young"].silent and health["young"].usual_gap is None
    assert health["broken"].status == "failing (3 runs): HTTP 403"
    assert health["quiet"].row()["usual_gap"] == "24 h"
    # A source fetched weekly cannot be expected to show items daily.
    with_floor = source_health(
        Store.open(tmp_path / "health.db"), at=at, intervals={"quiet": 7 * 86400}
    )
    assert not {h.name: h for h in with_floor}["quiet"].silent
