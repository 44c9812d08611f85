"""The fault matrix: one table row per way a source can break, run against the real
fixture host with two healthy demo sources (an Atom feed, an HTML listing) beside the broken one.

For every fault that is an error, the test asserts what a user relies on:

1. the cycle returns normally (the daemon keeps running);
2. the broken source's row in ``sources`` says what went wrong in plain words, and
   counts the failure;
3. the healthy sources stored exactly what a clean run stores;
4. when the fault ends, the next run of that source succeeds, resets its failure
   count and stores its articles.

Faults that are not errors (redirects that resolve, 304, duplicate or changing GUIDs,
items without links, ...) assert the right outcome instead. Faults on one article page
(rather than the feed) must leave the source healthy, record the page's error, and
fetch the page again next run.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.pipeline import SourceReport
from monitor.sitehost import SiteHost
from tests.reliability import faults
from tests.reliability.conftest import (
    FAULTY,
    FEED,
    HEALTHY,
    HOSTILE,
    OTHER_PAGE,
    PAGE,
    Baseline,
    World,
)

MiB = 1024 * 1024

# What "plain words" rules out: Python's and the libraries' vocabulary.
NOT_PLAIN = re.compile(
    r"Traceback|Error\(|Exception|httpx|httpcore|anyio|errno|\bNone\b|<class|object at 0x",
)


def assert_plain_words(text: str | None) -> None:
    assert text, "the error must be recorded"
    assert len(text) <= 200, text
    assert not NOT_PLAIN.search(text), text
    assert "\n" not in text, text


def feed_bytes(host: SiteHost, name: str = "feed.xml") -> bytes:
    return (HOSTILE / name).read_bytes().replace(b"{{SITE}}", host.base_url.encode())


def page_bytes(name: str = "rice-varieties.html") -> bytes:
    return (HOSTILE / "articles" / name).read_bytes()


@dataclass
class Fault:
    """One row of the matrix."""

    kind: str
    inject: Callable[[World], None]
    error: str  # regex over the plain-words error
    target: str = "feed"  # feed: the source fails; page: one article page fails
    heal: Callable[[World], None] = field(default=lambda world: world.host.clear())
    outcome: str = "error"
    fetch: dict[str, Any] = field(default_factory=dict)
    check: Callable[[World, SourceReport], None] | None = None
    repeat: bool = True  # run the broken source a second time (skipped where that costs a timeout)

    def __str__(self) -> str:
        return self.kind


# -- injections ----------------------------------------------------------------------------


def at_feed(**kwargs: Any) -> Callable[[World], None]:
    return lambda world: world.host.fault(FEED, **kwargs)


def at_page(**kwargs: Any) -> Callable[[World], None]:
    return lambda world: world.host.fault(PAGE, **kwargs)


def route_feed(make: Callable[[World], faults.Handler]) -> Callable[[World], None]:
    return lambda world: world.host.route(FEED, make(world))


def route_page(make: Callable[[World], faults.Handler]) -> Callable[[World], None]:
    return lambda world: world.host.route(PAGE, make(world))


def feed_file(name: str, **kwargs: Any) -> Callable[[World], None]:
    """Serve another fixture (from fixtures/hostile) at the feed's URL."""

    def inject(world: World) -> None:
        body = feed_bytes(world.host, name)
        world.host.fault(FEED, body=body, **kwargs)

    return inject


def redirects(*hops: tuple[str, int], final: str = FEED) -> Callable[[World], None]:
    """The source URL becomes the first hop; each hop redirects to the next."""

    def inject(world: World) -> None:
        paths = [path for path, _status in hops] + [final]
        for (path, status), target in zip(hops, paths[1:], strict=True):
            world.host.fault(path, status=status, headers={"Location": world.host.url(target)})
        world.rebuild(faulty_url=world.host.url(hops[0][0]))

    return inject


def via_origin(mode: str) -> Callable[[World], None]:
    """The source lives on a port we control; ``mode`` is what that port does now."""

    def inject(world: World) -> None:
        origin = faults.Origin(world.host.port)
        world.cleanups.append(origin.close)
        world.stash = origin  # type: ignore[attr-defined]
        if mode == "blackhole" and not origin.blackhole():
            pytest.skip("this kernel answers connects beyond the backlog; no connect timeout")
        elif mode == "refuse":
            origin.refuse()
        world.rebuild(faulty_url=f"{origin.base_url}/{FEED}")

    return inject


def origin_recovers(world: World) -> None:
    world.stash.forward()  # type: ignore[attr-defined]


def url_fixed(world: World) -> None:
    """The fault cannot end by itself (a name that never resolves, a certificate nobody
    trusts): the user fixes the source's URL, and the same source recovers."""
    world.rebuild(faulty_url=world.host.url(FEED))


def dns_failure(world: World) -> None:
    world.rebuild(faulty_url=f"http://seed-and-soil.invalid:{world.host.port}/{FEED}")


def tls_failure(world: World) -> None:
    made = faults.self_signed_cert(world.tmp_path)
    if made is None:
        pytest.skip("the openssl CLI is needed to make a throwaway certificate")
    server = faults.TlsServer(*made, body=feed_bytes(world.host))
    world.cleanups.append(server.close)
    world.rebuild(faulty_url=f"{server.base_url}/{FEED}")


def own_host(world: World) -> SiteHost:
    """A second fixture host for the faulty source, for faults that rightly affect a whole
    host (robots.txt; a 429/503 Retry-After pauses the host) but must spare the others."""
    other = SiteHost(world.host.root)
    other.start()
    world.cleanups.append(other.stop)
    world.bases.append(other.base_url)
    world.stash = other  # type: ignore[attr-defined]
    world.rebuild(faulty_url=other.url(FEED))
    return other


def on_own_host(**kwargs: Any) -> Callable[[World], None]:
    return lambda world: own_host(world).fault(FEED, **kwargs)


def robots_on_own_host(status: int | None, robots: str = "") -> Callable[[World], None]:
    def inject(world: World) -> None:
        other = own_host(world)
        if status is not None:
            other.fault("/robots.txt", status=status)
        else:
            other.robots_txt = robots

    return inject


def own_host_clear(world: World) -> None:
    world.stash.clear()  # type: ignore[attr-defined]


def robots_recover(world: World) -> None:
    other: SiteHost = world.stash  # type: ignore[attr-defined]
    other.clear()
    other.robots_txt = "User-agent: *\nAllow: /\n"


def http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


# -- checks for faults that are not errors -----------------------------------------------------


def stores_like_clean_run(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 2
    assert world.articles([FAULTY]) == world.baseline.faulty  # type: ignore[attr-defined]


def second_run_is_304(world: World, report: SourceReport) -> None:
    stores_like_clean_run(world, report)
    again = world.cycle([FAULTY])[FAULTY]
    assert again.outcome == "not_modified" and again.new_articles == 0
    assert world.row()["consecutive_failures"] == 0
    assert world.articles([FAULTY]) == world.baseline.faulty  # type: ignore[attr-defined]
    sent = [h for _m, p, h in world.host.requests if p == "/" + FEED]
    assert "If-None-Match" in sent[-1]


def empty_feed(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.items == 0 and report.new_articles == 0
    assert world.articles([FAULTY]) == set()
    assert world.row()["last_error"] is None


def linkless_items_kept(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 3
    rows = world.store.query(
        "SELECT a.url, a.title, a.text FROM articles a JOIN sources s ON s.id = a.source_id"
        " WHERE s.name = ? ORDER BY a.title",
        (FAULTY,),
    )
    assert [r["title"] for r in rows] == [
        "Brief: breeders' association elects a new chair",
        "Brief: oolong objections period opens",
        "Brief: seed law consultation closes",
    ]
    assert all(r["url"].startswith("urn:ipr-monitor:item:") for r in rows)
    assert [r["text"] for r in rows] == [  # the summary is the text
        "The association of plant breeders elected its first chair from the private sector.",
        "Objections to the mountain oolong geographical indication may be filed for two months.",
        "The consultation on the draft seed law closed with 2,300 comments from breeders"
        " and farmers.",
    ]
    assert world.cycle([FAULTY])[FAULTY].new_articles == 0  # seen: not stored twice
    assert len(world.articles([FAULTY])) == 3


def no_duplicates_after_two_runs(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 2
    assert world.articles([FAULTY]) == world.baseline.faulty  # type: ignore[attr-defined]
    again = world.cycle([FAULTY])[FAULTY]
    assert again.outcome in ("ok", "not_modified") and again.new_articles == 0
    assert (
        world.store.scalar(
            "SELECT COUNT(*) FROM articles a JOIN sources s ON s.id = a.source_id WHERE s.name = ?",
            (FAULTY,),
        )
        == 2
    )
    pages = [p for _m, p, _h in world.host.requests if p.startswith("/hostile/articles/")]
    assert len(pages) == 2  # stored URLs are not fetched again


def titles_decoded(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 2
    titles = {key[2] for key in world.articles([FAULTY])}
    assert titles == {
        "Café owners fined for selling fake \u201cmountain oolong\u201d",
        "São Paulo seed fair bans unlicensed varieties",
    }


def invalid_bytes_tolerated(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.items == 2 and report.new_articles == 2
    assert {key[1] for key in world.articles([FAULTY])} == {
        key[1]
        for key in world.baseline.faulty  # type: ignore[attr-defined]
    }


def empty_article_noted(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 2
    note = world.store.scalar(
        "SELECT extraction_note FROM articles WHERE url LIKE ?", (f"%{PAGE}",)
    )
    text = world.store.scalar("SELECT text FROM articles WHERE url LIKE ?", (f"%{PAGE}",))
    assert text == "" and note == "no article found"


def huge_line_bounded(world: World, report: SourceReport) -> None:
    assert report.outcome == "ok" and report.new_articles == 2
    assert world.elapsed < 20, world.elapsed  # type: ignore[attr-defined]
    note = world.store.scalar(
        "SELECT extraction_note FROM articles WHERE url LIKE ?", (f"%{PAGE}",)
    )
    assert note and note.startswith("page too large"), note


def ten_mb_line(world: World) -> None:
    line = b"<!DOCTYPE html><html><body><p>" + b"seed " * (2 * MiB) + b"</p></body></html>"
    world.host.route(PAGE, faults.raw_body(line, headers={"Content-Type": "text/html"}))


# -- the table ---------------------------------------------------------------------------------

SOURCE_FAULTS = [
    # connection level
    Fault(
        "connect timeout",
        via_origin("blackhole"),
        r"timed out connecting after 1 s",
        repeat=False,
        heal=origin_recovers,
    ),
    Fault("connection refused", via_origin("refuse"), r"connection refused", heal=origin_recovers),
    Fault("DNS failure", dns_failure, r"host name not found", heal=url_fixed),
    Fault(
        "TLS failure",
        tls_failure,
        r"^TLS problem: the certificate is not trusted \(self-signed certificate\)$",
        heal=url_fixed,
    ),
    Fault(
        "no answer after connect",
        route_feed(lambda w: faults.no_answer(3.0)),
        r"^timed out after 1 s waiting for data$",
        repeat=False,
    ),
    Fault(
        "read timeout mid-body",
        route_feed(
            lambda w: faults.stall_mid_body(
                feed_bytes(w.host), sent=300, stall=3.0, content_type="application/xml"
            )
        ),
        r"^timed out after 1 s waiting for data$",
        repeat=False,
    ),
    Fault(
        "trickling body (total timeout)",
        route_feed(lambda w: faults.trickle(feed_bytes(w.host)[:40], every=0.3)),
        r"^took longer than 1.5 s in total$",
        repeat=False,
        fetch={"total_timeout": 1.5},
    ),
    Fault(
        "reset mid-body",
        at_feed(reset=True),
        r"^(connection reset by the server|connection closed before the whole body arrived)$",
    ),
    Fault(
        "truncated body (Content-Length lies)",
        at_feed(truncate=200),
        r"^connection closed before the whole body arrived$",
    ),
    # HTTP status
    Fault("HTTP 403", at_feed(status=403), r"^HTTP 403$"),
    Fault("HTTP 404", at_feed(status=404), r"^HTTP 404$"),
    Fault("HTTP 410", at_feed(status=410), r"^HTTP 410$"),
    Fault(
        "HTTP 429 Retry-After seconds",
        on_own_host(status=429, headers={"Retry-After": "7200"}),
        r"^HTTP 429, asked to wait 2 h$",
        heal=own_host_clear,
    ),
    Fault(
        "HTTP 429 Retry-After HTTP-date",
        lambda w: own_host(w).fault(FEED, status=429, headers={"Retry-After": http_date(3 * 3600)}),
        r"^HTTP 429, asked to wait (3 h|180 min|179 min)$",
        heal=own_host_clear,
    ),
    Fault("HTTP 500", at_feed(status=500), r"^HTTP 500$"),
    Fault("HTTP 502", at_feed(status=502), r"^HTTP 502$"),
    Fault(
        "HTTP 503 Retry-After",
        on_own_host(status=503, headers={"Retry-After": "120"}),
        r"^HTTP 503, asked to wait 2 min$",
        heal=own_host_clear,
    ),
    # redirects
    Fault(
        "redirect loop",
        redirects(("hostile/loop-a", 301), ("hostile/loop-b", 302), final="hostile/loop-a"),
        r"^redirect loop$",
        heal=lambda w: (w.host.clear(), w.rebuild(faulty_url=w.host.url(FEED))),
    ),
    Fault(
        "too many redirects",
        redirects(*((f"hostile/hop-{n}", 302) for n in range(7))),
        r"^too many redirects \(more than 5\)$",
        heal=lambda w: (w.host.clear(), w.rebuild(faulty_url=w.host.url(FEED))),
    ),
    Fault(
        "redirect without Location",
        at_feed(status=302),
        r"^HTTP 302 redirect without a Location$",
    ),
    Fault(
        "redirect to a file: URL",
        at_feed(status=302, headers={"Location": "file:///etc/passwd"}),
        r"^unsupported URL scheme 'file'$",
    ),
    # bodies
    Fault(
        "truncated gzip",
        route_feed(
            lambda w: faults.truncated_gzip(feed_bytes(w.host), content_type="application/xml")
        ),
        r"^corrupt compressed body",
    ),
    Fault(
        "gzip bomb",
        route_feed(lambda w: faults.gzip_bomb_handler(mib=64)),
        r"^body larger than 1 MiB",
    ),
    Fault(
        "50 MB body with Content-Length",
        route_feed(lambda w: faults.lazy_body(50 * 1000 * 1000, announce_length=True)),
        r"^body larger than 1 MiB",
    ),
    Fault(
        "50 MB body, chunked",
        route_feed(lambda w: faults.lazy_body(50 * 1000 * 1000, announce_length=False)),
        r"^body larger than 1 MiB",
    ),
    Fault(
        "unsupported Content-Encoding",
        route_feed(
            lambda w: faults.raw_body(
                feed_bytes(w.host), headers={"Content-Type": "text/xml", "Content-Encoding": "br"}
            )
        ),
        r"^unsupported content encoding 'br'$",
    ),
    Fault("malformed XML", feed_file("malformed.xml"), r"^malformed feed: "),
    Fault(
        "HTML page instead of the feed",
        feed_file("not-a-feed.html", headers={"Content-Type": "text/html"}),
        r"^not a feed: the URL returns an HTML page$",
    ),
    Fault("empty 200 body", at_feed(body=b""), r"^malformed feed: "),
    Fault("bytes the feed parser chokes on", feed_file("parser-crash.xml"), r"^malformed feed: "),
    # robots.txt
    Fault(
        "robots.txt 5xx",
        robots_on_own_host(503),
        r"^robots.txt unavailable \(HTTP 503\)$",
        heal=robots_recover,
    ),
    Fault(
        "robots.txt disallows the feed",
        robots_on_own_host(None, "User-agent: *\nDisallow: /hostile/\n"),
        r"^disallowed by robots.txt$",
        outcome="disallowed",
        heal=robots_recover,
    ),
]

PAGE_FAULTS = [
    Fault("article page HTTP 500", at_page(status=500), r"^HTTP 500$", target="page"),
    Fault("article page HTTP 404", at_page(status=404), r"^HTTP 404$", target="page"),
    Fault(
        "article page reset mid-body",
        at_page(reset=True),
        r"^(connection reset by the server|connection closed before the whole body arrived)$",
        target="page",
    ),
    Fault(
        "article page read timeout mid-body",
        route_page(
            lambda w: faults.stall_mid_body(
                page_bytes(), sent=500, stall=3.0, content_type="text/html; charset=utf-8"
            )
        ),
        r"^timed out after 1 s waiting for data$",
        target="page",
    ),
    Fault(
        "article page truncated gzip",
        route_page(lambda w: faults.truncated_gzip(page_bytes(), content_type="text/html")),
        r"^corrupt compressed body",
        target="page",
    ),
    Fault(
        "article page redirects to 10.0.0.1",
        at_page(status=302, headers={"Location": "http://10.0.0.1/internal"}),
        r"^refused to connect to non-public address 10.0.0.1",
        target="page",
        fetch={"allow_private_networks": False, "allowed_networks": ["127.0.0.1/32"]},
    ),
]

NOT_ERRORS = [
    Fault(
        "301/302/307/308 chain",
        redirects(
            ("hostile/r301", 301),
            ("hostile/r302", 302),
            ("hostile/r307", 307),
            ("hostile/r308", 308),
        ),
        "",
        check=stores_like_clean_run,
    ),
    Fault("304 Not Modified", lambda w: None, "", check=second_run_is_304),
    Fault(
        "slow first byte within the timeout",
        at_feed(delay=0.5),
        "",
        check=stores_like_clean_run,
    ),
    Fault(
        "wrong Content-Type (text/html)",
        at_feed(headers={"Content-Type": "text/html; charset=utf-8"}),
        "",
        check=stores_like_clean_run,
    ),
    Fault(
        "wrong Content-Type (octet-stream)",
        at_feed(headers={"Content-Type": "application/octet-stream"}),
        "",
        check=stores_like_clean_run,
    ),
    Fault(
        "wrong charset",
        feed_file("wrong-charset.xml", headers={"Content-Type": "application/xml; charset=utf-8"}),
        "",
        check=titles_decoded,
    ),
    Fault("invalid UTF-8", feed_file("invalid-utf8.xml"), "", check=invalid_bytes_tolerated),
    Fault("RSS with no items", feed_file("no-items.xml"), "", check=empty_feed),
    Fault("items without links", feed_file("no-links.xml"), "", check=linkless_items_kept),
    Fault("duplicate GUIDs", feed_file("dup-guids.xml"), "", check=no_duplicates_after_two_runs),
    Fault(
        "GUIDs change on every fetch",
        lambda w: w.host.route(
            FEED, faults.changing_guids(HOSTILE / "changing-guids.xml", w.host.base_url)
        ),
        "",
        check=no_duplicates_after_two_runs,
    ),
    Fault(
        "gzip-compressed feed",
        at_feed(gzip_body=True),
        "",
        check=stores_like_clean_run,
    ),
    Fault(
        "HTML with no article",
        lambda w: w.host.fault(PAGE, body=(HOSTILE / "no-article.html").read_bytes()),
        "",
        check=empty_article_noted,
    ),
    Fault(
        "10 MB single-line page",
        ten_mb_line,
        "",
        check=huge_line_bounded,
        fetch={"max_body_mb": 12.0, "total_timeout": 20.0},
    ),
]


# -- the tests -----------------------------------------------------------------------------------


def _healthy_unchanged(world: World, baseline: Baseline, reports: dict[str, SourceReport]) -> None:
    for name in HEALTHY:
        assert reports[name].outcome == "ok", (name, reports[name])
        assert reports[name].new_articles == baseline.reports[name][1]
        assert world.row(name)["consecutive_failures"] == 0
    assert world.articles(HEALTHY) == baseline.healthy


def _prepare(world: World, fault: Fault, baseline: Baseline) -> None:
    world.fetch.update(fault.fetch)
    world.baseline = baseline  # type: ignore[attr-defined]
    fault.inject(world)


@pytest.mark.parametrize("fault", SOURCE_FAULTS, ids=str)
def test_source_fault_is_recorded_isolated_and_recovers(
    world: World, baseline: Baseline, fault: Fault
) -> None:
    _prepare(world, fault, baseline)
    started = datetime.now(UTC)
    reports = world.cycle()  # 1. returns normally

    broken = reports[FAULTY]
    assert broken.outcome == fault.outcome, broken
    assert broken.error and re.search(fault.error, broken.error), broken.error
    assert_plain_words(broken.error)
    row = world.row()  # 2. recorded on the source, counted, backed off
    assert row["last_error"] == broken.error
    assert row["consecutive_failures"] == 1 and row["failing_since"]
    assert row["next_fetch_at"] > started.isoformat()
    assert world.articles([FAULTY]) == set()
    _healthy_unchanged(world, baseline, reports)  # 3. the others are unaffected

    if fault.repeat:  # still broken: counted again, not reset
        again = world.cycle([FAULTY])[FAULTY]
        assert again.outcome == fault.outcome and world.row()["consecutive_failures"] == 2

    fault.heal(world)  # 4. the fault ends
    recovered = world.cycle([FAULTY])[FAULTY]
    assert recovered.outcome == "ok", recovered
    row = world.row()
    assert row["consecutive_failures"] == 0 and row["failing_since"] is None
    assert row["last_success_at"]
    assert world.articles([FAULTY]) == baseline.faulty
    assert world.articles(HEALTHY) == baseline.healthy


def test_retry_after_is_obeyed_as_a_floor(world: World, baseline: Baseline) -> None:
    """Retry-After (seconds or HTTP date) pushes the next attempt out at least that far."""
    other = own_host(world)
    for value, floor in (("7200", 7200), (http_date(3 * 3600), 3 * 3600 - 60)):
        other.fault(FEED, status=429, headers={"Retry-After": value})
        before = datetime.now(UTC)
        world.cycle([FAULTY])
        due = datetime.fromisoformat(world.row()["next_fetch_at"])
        assert due >= before + timedelta(seconds=floor - 1), (value, due - before)


@pytest.mark.parametrize("fault", PAGE_FAULTS, ids=str)
def test_page_fault_keeps_the_source_healthy_and_the_page_is_retried(
    world: World, baseline: Baseline, fault: Fault
) -> None:
    _prepare(world, fault, baseline)
    reports = world.cycle()

    report = reports[FAULTY]
    assert report.outcome == "ok" and report.failed_pages == 1 and report.new_articles == 1
    errors = world.page_errors()
    assert len(errors) == 1 and re.search(fault.error, errors[0]), errors
    assert_plain_words(errors[0])
    assert world.row()["consecutive_failures"] == 0
    stored = {key[1] for key in world.articles([FAULTY])}
    assert stored == {"{site}/" + OTHER_PAGE}
    _healthy_unchanged(world, baseline, reports)

    fault.heal(world)
    world.rebuild(fetch={})
    if errors[0].startswith(("HTTP 4", "refused to connect")):
        # Gone for good, as far as we can tell: the feed keeps its 304 (no refetch every
        # run for a dead link), and the item is tried again when the feed changes.
        again = world.cycle([FAULTY])[FAULTY]
        assert again.outcome == "not_modified" and again.new_articles == 0
        world.host.fault(FEED, body=feed_bytes(world.host) + b"<!-- changed -->\n")
    again = world.cycle([FAULTY])[FAULTY]  # the failed item was not marked seen
    assert again.outcome == "ok" and again.new_articles == 1
    assert world.articles([FAULTY]) == baseline.faulty


@pytest.mark.parametrize("fault", NOT_ERRORS, ids=str)
def test_fault_that_is_not_an_error(world: World, baseline: Baseline, fault: Fault) -> None:
    _prepare(world, fault, baseline)
    started = time.monotonic()
    reports = world.cycle()
    world.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    assert fault.check is not None
    fault.check(world, reports[FAULTY])
    assert world.row()["last_error"] is None and world.row()["consecutive_failures"] == 0
    _healthy_unchanged(world, baseline, reports)


def test_matrix_covers_the_issue() -> None:
    """Issue 9 asks for at least 30 kinds of fault."""
    kinds = [f.kind for f in SOURCE_FAULTS + PAGE_FAULTS + NOT_ERRORS]
    assert len(set(kinds)) == len(kinds)
    assert len(kinds) + 1 >= 30  # + the locked store (test_store_locked.py)


def test_a_bug_costs_one_source_its_run_not_the_cycle(
    world: World, baseline: Baseline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: an exception nobody planned for (here extract() breaking
    its promise never to raise, on one source's pages only) is logged and reported on that
    source, and the others are stored as in a clean run."""
    import monitor.pipeline

    real_extract = monitor.pipeline.extract

    def broken(html: bytes | str, url: str | None = None, **kwargs: Any) -> Any:
        if url and "/hostile/" in url:
            raise RuntimeError("simulated bug")
        return real_extract(html, url, **kwargs)

    monkeypatch.setattr(monitor.pipeline, "extract", broken)
    reports = world.cycle()
    assert reports[FAULTY].outcome == "error"
    assert reports[FAULTY].error == "internal error (RuntimeError); see the log"
    _healthy_unchanged(world, baseline, reports)
    assert world.articles([FAULTY]) == set()

    monkeypatch.setattr(monitor.pipeline, "extract", real_extract)  # the bug is fixed
    assert world.cycle([FAULTY])[FAULTY].outcome == "ok"
    assert world.articles([FAULTY]) == baseline.faulty
