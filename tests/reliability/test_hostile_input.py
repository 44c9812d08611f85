"""Hostile input: feeds and pages written to attack the reader, not to inform it.

XML entity tricks (XXE, billion laughs) in feeds and sitemaps, markup injected through
titles, links and snippets into the HTML digest, javascript:/data: links, redirects to
private addresses, a feed with an enormous number of items, and secrets in the config.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest

from monitor.config import DigestConfig, SmtpConfig, load_config
from monitor.digest import build_digest, deliver_pending, render_preview
from monitor.discover import MAX_FEED_ITEMS
from monitor.errors import ConfigError
from monitor.smtpsink import SmtpSink
from tests.reliability.conftest import FAULTY, FEED, HEALTHY, HOSTILE, Baseline, World
from tests.reliability.test_fault_matrix import assert_plain_words, feed_bytes

SAFE_SCHEMES = ("http://", "https://", "mailto:", "#")
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "background", "poster", "srcset")


def dump(world: World) -> str:
    """Everything in the store, as SQL text."""
    return "\n".join(world.store.conn.iterdump())


def serve_at_feed(world: World, name: str) -> None:
    world.host.fault(FEED, body=feed_bytes(world.host, name))


# -- XML entities ------------------------------------------------------------------------------


def test_xxe_in_a_feed_resolves_nothing(world: World, baseline: Baseline) -> None:
    serve_at_feed(world, "xxe.xml")
    reports = world.cycle()
    assert reports[FAULTY].outcome in ("ok", "error")
    stored = dump(world)
    assert "root:" not in stored and "/bin/" not in stored
    assert "SECRET-FROM" not in stored
    assert world.host.counts["/hostile/xxe-secret.txt"] == 0
    assert world.host.counts["/hostile/xxe-param.dtd"] == 0
    assert world.articles(HEALTHY) == baseline.healthy


def test_billion_laughs_in_a_feed_is_not_expanded(world: World, baseline: Baseline) -> None:
    serve_at_feed(world, "billion-laughs.xml")
    started = time.monotonic()
    reports = world.cycle()
    assert time.monotonic() - started < 15
    assert reports[FAULTY].outcome in ("ok", "error")
    assert "lollollol" not in dump(world)
    assert world.articles(HEALTHY) == baseline.healthy


def test_entities_in_a_sitemap_are_neither_resolved_nor_expanded(world: World) -> None:
    """Sitemaps go through lxml (not feedparser): resolve_entities off, no network."""
    world.rebuild(faulty_kind="sitemap", faulty_url=world.host.url("hostile/xxe-sitemap.xml"))
    started = time.monotonic()
    report = world.cycle()[FAULTY]
    assert time.monotonic() - started < 15
    assert report.outcome == "ok" and report.new_articles == 1, report
    stored = dump(world)
    assert "lollollol" not in stored and "SECRET-FROM" not in stored and "root:" not in stored
    assert world.host.counts["/hostile/xxe-secret.txt"] == 0
    assert {key[1] for key in world.articles([FAULTY])} == {
        "{site}/hostile/articles/rice-varieties.html"
    }


def test_the_xml_parsers_protections() -> None:
    """feedparser parses with expat; expat >= 2.4.1 caps entity amplification (billion
    laughs) and feedparser never loads external entities (shown end to end above)."""
    import pyexpat

    assert pyexpat.version_info >= (2, 4, 1), pyexpat.EXPAT_VERSION


# -- markup injection into the digest ------------------------------------------------------------


def _assert_inert(html: str) -> None:
    assert "<script" not in html.lower()
    document = lxml.html.document_fromstring(html)
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        assert element.tag not in ("script", "iframe", "object", "embed", "img"), element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name, value)
            if name.lower() in URL_ATTRIBUTES:
                assert value.strip().lower().startswith(SAFE_SCHEMES), (element.tag, name, value)
            assert "javascript:" not in value.lower() and "data:text" not in value.lower()


def test_injection_through_titles_links_snippets_and_errors_stays_text(world: World) -> None:
    serve_at_feed(world, "injection.xml")
    first = world.cycle()[FAULTY]
    assert first.outcome == "ok" and first.new_articles == 3, first
    # A hostile server also controls some error text: an encoding name it sends back.
    world.host.clear()
    world.host.fault(FEED, headers={"Content-Encoding": "<script>alert(13)</script>"})
    failed = world.cycle([FAULTY])[FAULTY]
    assert failed.outcome == "error" and failed.error and "alert(13)" in failed.error

    rows = world.store.query(
        "SELECT a.url, a.canonical_url, a.title FROM articles a"
        " JOIN sources s ON s.id = a.source_id WHERE s.name = ?",
        (FAULTY,),
    )
    for row in rows:  # javascript:/data: links were dropped, not stored as the article's URL
        assert urlsplit(row["url"]).scheme in ("http", "urn"), row["url"]
        assert urlsplit(row["canonical_url"]).scheme in ("http", "urn"), row["canonical_url"]
    faulty_hits = world.store.scalar(
        "SELECT COUNT(*) FROM hits h JOIN articles a ON a.id = h.article_id"
        " JOIN sources s ON s.id = a.source_id WHERE s.name = ?",
        (FAULTY,),
    )
    assert faulty_hits >= 3  # every probe is on-topic, so every probe reaches the digest

    group = DigestConfig(name="hostile", recipients=["analyst@example.org"])
    html, text = render_preview(world.store, world.pipeline.config, group)
    assert "China deepens intellectual property cooperation" in html  # the probes are there
    assert "alert(13)" in html  # and so is the failing source's error, as text
    _assert_inert(html)
    assert "javascript:" not in text and "data:text" not in text


# -- private addresses ---------------------------------------------------------------------------

PRIVATE_TARGETS = [
    "http://10.0.0.1/feed.xml",
    "http://10.255.255.254:8080/feed.xml",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hostile/feed.xml",
    "http://127.0.0.2:{port}/hostile/feed.xml",
    "http://0.0.0.0:{port}/hostile/feed.xml",
    "http://100.64.0.1/feed.xml",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_redirect_to_a_private_address_is_refused(
    world: World, baseline: Baseline, target: str
) -> None:
    """Only the test host (127.0.0.1) is allowed; the guard refuses every other
    non-public address before connecting, at every hop."""
    world.fetch.update(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    world.host.fault("hostile/moved", status=302, headers={"Location": target.format(port=1)})
    world.rebuild(faulty_url=world.host.url("hostile/moved"))
    started = time.monotonic()
    reports = world.cycle()
    broken = reports[FAULTY]
    assert broken.outcome == "error"
    assert broken.error and broken.error.startswith("refused to connect to non-public address")
    assert_plain_words(broken.error)
    assert time.monotonic() - started < 10  # refused at once, never a connect attempt
    assert world.host.counts["/hostile/moved"] == 1
    assert world.articles(HEALTHY) == baseline.healthy


def test_loopback_sources_are_refused_before_any_request(world: World) -> None:
    """Without allow_private_networks, a source on 127.0.0.1 (the fixture host) is refused
    before a single byte is sent."""
    world.fetch.update(allow_private_networks=False, allowed_networks=[])
    reports = world.cycle()
    for report in reports.values():
        assert report.outcome == "error"
        assert report.error and "refused to connect to non-public address 127.0.0.1" in (
            report.error
        )
    assert world.host.requests == []


def test_feed_items_linking_to_private_addresses_are_not_fetched(world: World) -> None:
    body = feed_bytes(world.host).replace(
        world.host.url("hostile/articles/rice-varieties.html").encode(),
        b"http://169.254.169.254/latest/meta-data/iam",
    )
    world.host.fault(FEED, body=body)
    world.fetch.update(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    report = world.cycle([FAULTY])[FAULTY]
    assert report.outcome == "ok" and report.failed_pages == 1 and report.new_articles == 1
    errors = world.page_errors()
    assert errors and errors[0].startswith("refused to connect to non-public address 169.254")


# -- an enormous feed ----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1_000, pytest.param(30_000, marks=pytest.mark.slow)])
def test_a_feed_with_an_enormous_number_of_items(
    world: World, baseline: Baseline, count: int
) -> None:
    """A feed is read up to MAX_FEED_ITEMS items, only max_new_articles pages are fetched per
    run, the items left over are fetched by the next runs (the feed is not taken as seen),
    and the other sources are undisturbed."""
    page = world.host.url("hostile/articles/oolong-gi.html")
    items = "".join(
        f"<item><title>Item {n}</title><link>{page}?n={n}</link>"
        f"<guid isPermaLink='false'>many-{n}</guid>"
        f"<description>Short item {n}.</description></item>"
        for n in range(count)
    )
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>{items}'
    body += "</channel></rss>"
    world.host.fault(FEED, body=body.encode())
    world.faulty_options = {"max_new_articles": 5}
    world.fetch.update(max_body_mb=8.0, total_timeout=20.0)
    first = world.cycle()
    assert first[FAULTY].outcome == "ok"
    assert first[FAULTY].items == min(count, MAX_FEED_ITEMS)  # newest first; the rest is archive
    assert first[FAULTY].new_articles == 5
    assert world.articles(HEALTHY) == baseline.healthy
    second = world.cycle([FAULTY])[FAULTY]
    assert second.outcome == "ok" and second.new_articles == 5  # not a 304: more to do
    assert len(world.articles([FAULTY])) == 10
    pages = [p for _m, p, _h in world.host.requests if "oolong-gi.html" in p]
    assert len(pages) == 10


# -- secrets -------------------------------------------------------------------------------------

SECRET = "pw-Xq7-never-log-me"


def test_secrets_never_reach_logs_or_the_store(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SMTP password comes from the environment; a login that fails says so without it."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", SECRET)
    serve_at_feed(world, "injection.xml")  # on-topic items, so a digest is built
    world.host.fault("ipnews/feed.xml", status=500)  # and some errors are logged
    with SmtpSink() as sink:
        config = world.pipeline.config.with_overrides(
            smtp=SmtpConfig(host="127.0.0.1", port=sink.port, security="none", username="bot"),
        )
        world.pipeline.config = config
        world.cycle()
        group = DigestConfig(name="ops", recipients=["analyst@example.org"])
        assert build_digest(world.store, config, group) is not None
        results = deliver_pending(world.store, config)
    assert results and results[0].state != "sent"  # this server offers no login
    assert repr(config).count(SECRET) == 0
    assert SECRET not in dump(world)
    assert SECRET not in caplog.text
    assert all(SECRET not in str(record.args) for record in caplog.records)


def test_a_password_written_into_a_config_file_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text(
        f'[smtp]\nhost = "mail.example.org"\nusername = "bot"\npassword = "{SECRET}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "smtp.password" in str(caught.value) and SECRET not in str(caught.value)


def test_credentials_in_a_source_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(
        f'[[source]]\nname = "Private"\nurl = "https://reader:{SECRET}@feeds.example.org/rss"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert "source[0] (Private).url" in message and SECRET not in message


def test_hostile_fixtures_say_what_they_expect() -> None:
    for path in sorted(HOSTILE.rglob("*")):
        if path.is_file():
            head = path.read_bytes()[:1200].decode("utf-8", "replace")
            assert "Description:" in head and "Expect" in head, path.name


def test_hostile_links_on_a_listing_page(world: World) -> None:
    world.fetch.update(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    world.rebuild(
        faulty_kind="html",
        faulty_url=world.host.url("hostile/listing.html"),
        faulty_options={"selectors": {"item": "ul.news li", "link": "a"}},
    )
    report = world.cycle([FAULTY])[FAULTY]
    assert report.outcome == "ok" and report.items == 3, report
    assert report.new_articles == 2 and report.failed_pages == 1
    assert {key[1] for key in world.articles([FAULTY])} == {
        "{site}/hostile/articles/rice-varieties.html",
        "{site}/hostile/articles/oolong-gi.html",
    }
    errors = world.page_errors()
    assert len(errors) == 1 and errors[0].startswith("refused to connect to non-public address")
    stored = dump(world)
    assert "javascript:" not in stored and "vbscript:" not in stored and "data:text" not in stored
