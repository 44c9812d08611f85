"""Discovery against real fixture feeds served on 127.0.0.1 (fixtures/feeds/*)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import FetchConfig, Selectors, SourceConfig
from monitor.discover import (
    MAX_FEED_ITEMS,
    FoundSource,
    Item,
    discover,
    discover_all,
    feed_links,
    find_source,
    html_to_text,
    parse_date,
)
from monitor.errors import PermanentFetchError, TransientFetchError
from monitor.fetch import Fetcher, Response
from monitor.sitehost import SiteHost

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SETTINGS = FetchConfig(
    allow_private_networks=True,
    min_delay=0,
    connect_timeout=2,
    read_timeout=2,
    total_timeout=5,
)


@pytest.fixture(scope="module")
def host() -> Iterator[SiteHost]:
    with SiteHost(FIXTURES) as site:
        yield site


def fetch(host: SiteHost, path: str) -> Response:
    async def run() -> Response:
        async with Fetcher(SETTINGS) as fetcher:
            return await fetcher.get(host.url(path))

    return asyncio.run(run())


def source(host: SiteHost, path: str, **options: object) -> SourceConfig:
    return SourceConfig(name="test", url=host.url(path), **options)  # type: ignore[arg-type]


def days_since(year: int) -> float:
    """A lastmod window reaching back to 1 January of ``year``, whatever today is."""
    return (datetime.now(UTC) - datetime(year, 1, 1, tzinfo=UTC)).days + 1


def test_rss2_keys_links_and_linkless_items(host: SiteHost) -> None:
    items = discover(source(host, "feeds/rss2.xml"), fetch(host, "feeds/rss2.xml"))
    site = host.base_url
    assert [i.key for i in items] == [
        "guid:tag:ipnews,2026:1",
        "guid:tag:ipnews,2026:2",
        f"link:{site}/feeds/articles/three.html",
        f"link:{site}/feeds/articles/four.html",
        "title:Notice without a link|2026-11-20T08:00:00+00:00",
    ]
    assert items[0].url == f"{site}/feeds/articles/one.html"
    assert items[0].published == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert items[0].summary == "The guidelines take effect in January."
    assert items[1].published == datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    linkless = items[4]
    assert linkless.url is None
    assert linkless.summary == "Office closed on Monday for maintenance of the filing system."


def test_rss1_and_rss091_and_atom(host: SiteHost) -> None:
    site = host.base_url
    rdf = discover(source(host, "feeds/rss1.xml"), fetch(host, "feeds/rss1.xml"))
    assert [i.url for i in rdf] == [
        f"{site}/feeds/articles/rdf-a.html",
        f"{site}/feeds/articles/rdf-b.html",
    ]
    assert rdf[0].published == datetime(2026, 11, 19, 12, tzinfo=UTC)

    old = discover(source(host, "feeds/rss091.xml"), fetch(host, "feeds/rss091.xml"))
    assert [(i.key, i.title) for i in old] == [
        (f"link:{site}/feeds/articles/old.html", "Café law reform")
    ]

    atom = discover(source(host, "feeds/atom.xml"), fetch(host, "feeds/atom.xml"))
    assert [(i.key, i.url) for i in atom] == [
        (
            "guid:urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
            f"{site}/feeds/articles/atom-1.html",
        ),
        ("guid:urn:uuid:2", f"{site}/feeds/articles/atom-2.html"),
    ]
    assert atom[0].title == "EU–China GI agreement: 100 more names"
    assert atom[1].published == datetime(2026, 11, 22, 8, tzinfo=UTC)


def test_keys_are_stable_across_fetches_and_ports(host: SiteHost) -> None:
    """A GUID like "1234" must not be turned into a URL of wherever the feed is served."""
    first = discover(source(host, "feeds/rss2.xml"), fetch(host, "feeds/rss2.xml"))
    with SiteHost(FIXTURES) as other:
        again = discover(source(other, "feeds/rss2.xml"), fetch(other, "feeds/rss2.xml"))
    assert [i.key for i in first][:2] == [i.key for i in again][:2]


def test_empty_feed_is_not_an_error(host: SiteHost) -> None:
    assert discover(source(host, "feeds/empty.xml"), fetch(host, "feeds/empty.xml")) == []


def test_malformed_feed_raises_plainly(host: SiteHost) -> None:
    with pytest.raises(PermanentFetchError, match=r"^malformed feed"):
        discover(source(host, "feeds/malformed.xml"), fetch(host, "feeds/malformed.xml"))


def test_html_page_where_a_feed_was_expected(host: SiteHost) -> None:
    with pytest.raises(PermanentFetchError, match="not a feed"):
        discover(source(host, "feeds/homepage.html"), fetch(host, "feeds/homepage.html"))


def test_html_listing_with_selectors(host: SiteHost) -> None:
    config = source(
        host,
        "feeds/listing.html",
        kind="html",
        selectors=Selectors(link="a.headline", item="li.story", title="h3", date="time"),
    )
    items = discover(config, fetch(host, "feeds/listing.html"))
    site = host.base_url
    assert [i.url for i in items] == [
        f"{site}/feeds/articles/h1.html",
        f"{site}/news/h2.html",
        "https://example.org/h3.html",
    ]
    assert [i.title for i in items] == [
        "Patent law amended",
        "Copyright office report",
        "Elsewhere story",
    ]
    assert items[0].published == datetime(2026, 11, 20, 7, tzinfo=UTC)
    assert items[1].published == datetime(2026, 11, 21, tzinfo=UTC)
    assert all(i.key == f"link:{i.url}" for i in items)


def test_html_listing_without_item_scope(host: SiteHost) -> None:
    config = source(host, "feeds/listing.html", kind="html", selectors=Selectors(link="a.headline"))
    items = discover(config, fetch(host, "feeds/listing.html"))
    assert len(items) == 3
    assert items[2].title == "Elsewhere story"


def test_bad_selector_names_the_source(host: SiteHost) -> None:
    config = source(host, "feeds/listing.html", kind="html", selectors=Selectors(link="a[[["))
    with pytest.raises(PermanentFetchError, match="bad CSS selector in source 'test'"):
        discover(config, fetch(host, "feeds/listing.html"))


def test_sitemap_lastmod_window(host: SiteHost) -> None:
    config = source(host, "feeds/sitemap.xml", kind="sitemap", lastmod_days=days_since(2025))
    items = discover(config, fetch(host, "feeds/sitemap.xml"))
    site = host.base_url
    assert [i.url for i in items] == [
        f"{site}/feeds/articles/s4.html",
        f"{site}/feeds/articles/s1.html",
        f"{site}/feeds/articles/s3.html",
    ]
    wide = source(host, "feeds/sitemap.xml", kind="sitemap", lastmod_days=days_since(2019))
    assert len(discover(wide, fetch(host, "feeds/sitemap.xml"))) == 4


def test_gzipped_sitemap_file(host: SiteHost) -> None:
    """sitemap.xml.gz is a gzip *file* (no Content-Encoding); it is inflated, with a cap."""
    plain = fetch(host, "feeds/sitemap.xml").content
    host.fault("feeds/sitemap.xml.gz", status=200, body=gzip.compress(plain))
    config = source(host, "feeds/sitemap.xml.gz", kind="sitemap", lastmod_days=days_since(2025))
    items = discover(config, fetch(host, "feeds/sitemap.xml.gz"))
    assert len(items) == 3
    host.fault("feeds/bomb.xml.gz", status=200, body=gzip.compress(b"<" * (60 * 1024 * 1024)))
    with pytest.raises(PermanentFetchError, match="larger than 50 MiB"):
        discover(config, fetch(host, "feeds/bomb.xml.gz"))


def test_google_news_sitemap(host: SiteHost) -> None:
    config = source(host, "feeds/news-sitemap.xml", kind="sitemap", lastmod_days=days_since(2025))
    items = discover(config, fetch(host, "feeds/news-sitemap.xml"))
    assert [(i.url, i.title, i.published) for i in items] == [
        (
            f"{host.base_url}/feeds/articles/n1.html",
            "Trade secrets rule issued",
            datetime(2026, 11, 23, 8, tzinfo=UTC),
        )
    ]


def test_sitemap_index_followed_by_discover_all(host: SiteHost) -> None:
    config = source(host, "feeds/sitemap-index.xml", kind="sitemap", lastmod_days=days_since(2025))
    index = fetch(host, "feeds/sitemap-index.xml")
    with pytest.raises(PermanentFetchError, match="discover_all"):
        discover(config, index)
    before = host.counts["/feeds/old-sitemap.xml"]

    async def run() -> list[Item]:
        async with Fetcher(SETTINGS) as fetcher:
            return await discover_all(config, index, fetcher.get)

    items = asyncio.run(run())
    names = [i.url.rsplit("/", 1)[1] for i in items if i.url]
    assert names == ["n1.html", "s4.html", "s1.html", "s3.html"]  # newest first
    assert host.counts["/feeds/old-sitemap.xml"] == before
    assert host.counts["/feeds/gone.xml"] >= 1


def test_a_child_sitemap_failing_for_now_fails_the_run(host: SiteHost) -> None:
    """Else the index would answer 304 next time and that child's articles be lost."""
    config = source(host, "feeds/sitemap-index.xml", kind="sitemap", lastmod_days=days_since(2025))
    index = fetch(host, "feeds/sitemap-index.xml")
    host.fault("feeds/news-sitemap.xml", status=503)

    async def run() -> list[Item]:
        async with Fetcher(SETTINGS) as fetcher:
            return await discover_all(config, index, fetcher.get)

    with pytest.raises(TransientFetchError, match=r"news-sitemap.xml: HTTP 503$"):
        asyncio.run(run())
    host.clear("feeds/news-sitemap.xml")


def test_not_a_sitemap(host: SiteHost) -> None:
    config = source(host, "feeds/rss2.xml", kind="sitemap")
    with pytest.raises(PermanentFetchError, match="not a sitemap"):
        discover(config, fetch(host, "feeds/rss2.xml"))


def test_feed_links_from_alternate(host: SiteHost) -> None:
    site = host.base_url
    assert feed_links(fetch(host, "feeds/homepage.html")) == [
        f"{site}/feeds/rss2.xml",
        f"{site}/feeds/atom.xml",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T10:00:00+02:00", datetime(2026, 11, 20, 8, tzinfo=UTC)),
        ("Fri, 20 Nov 2026 09:00:00 GMT", datetime(2026, 11, 20, 9, tzinfo=UTC)),
        ("21 November 2026", datetime(2026, 11, 21, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


def find(host: SiteHost, path: str) -> FoundSource:
    async def run() -> FoundSource:
        async with Fetcher(SETTINGS) as fetcher:
            return await find_source(host.url(path), fetcher.get)

    return asyncio.run(run())


def test_find_source_from_link_alternate(host: SiteHost) -> None:
    found = find(host, "feeds/homepage.html")
    assert (found.url, found.kind, found.how) == (
        host.url("feeds/rss2.xml"),
        "feed",
        "<link rel=alternate>",
    )
    assert found.title == "IP News (fixture)" and found.items == 5


def test_find_source_by_common_path(host: SiteHost) -> None:
    found = find(host, "feeds/nofeed/")
    assert (found.url, found.title, found.how) == (
        host.url("feeds/nofeed/feed.xml"),
        "Hidden feed",
        "common path",
    )


def test_find_source_when_the_url_is_the_feed_or_a_sitemap(host: SiteHost) -> None:
    assert find(host, "feeds/atom.xml").how == "the URL itself"
    sitemap = find(host, "feeds/sitemap-index.xml")
    assert (sitemap.kind, sitemap.items) == ("sitemap", 4)


def test_find_source_gives_advice_when_there_is_none(host: SiteHost) -> None:
    with pytest.raises(PermanentFetchError, match='kind = "html" and CSS selectors'):
        find(host, "feeds/articles/one.html")
    probes = [p for _m, p, _h in host.requests if p.startswith(("/feed", "/rss", "/atom"))]
    assert "/feeds/articles/feed.xml" in probes and "/feed.xml" in probes


def test_a_runaway_feed_is_read_up_to_the_item_limit() -> None:
    """20,000 items would hold feedparser for half a minute; the newest 1,000 are read."""
    entries = "".join(
        f"<item><title>Story {n}</title><link>https://news.example.org/{n}</link></item>"
        for n in range(MAX_FEED_ITEMS + 500)
    )
    document = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>{entries}'
    document += "</channel></rss>"
    response = Response(
        url="https://news.example.org/feed",
        final_url="https://news.example.org/feed",
        status=200,
        headers={"content-type": "application/rss+xml"},
        content=document.encode(),
        text=document,
        etag=None,
        last_modified=None,
        not_modified=False,
        elapsed_ms=0,
    )
    items = discover(SourceConfig(name="big", url="https://news.example.org/feed"), response)
    assert len(items) == MAX_FEED_ITEMS
    assert items[0].url == "https://news.example.org/0"
    assert items[-1].url == f"https://news.example.org/{MAX_FEED_ITEMS - 1}"


def test_feed_titles_and_summaries_are_plain_text() -> None:
    assert html_to_text("<p>One <b>two</b></p><p>three</p><script>x()</script>") == "One two three"
    assert html_to_text("AT&amp;T &lt;patents&gt;") == "AT&T <patents>"
    assert html_to_text("   ") is None


def test_pipeline_follows_a_sitemap_index_and_shares_robots_between_cycles(
    host: SiteHost, tmp_path: Path
) -> None:
    from monitor.config import load_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    (tmp_path / "monitor.toml").write_text(
        "[fetch]\nallow_private_networks = true\nmin_delay = 0\nconnect_timeout = 2\n"
        "read_timeout = 2\ntotal_timeout = 5\n",
        encoding="utf-8",
    )
    (tmp_path / "sources.toml").write_text(
        f'[[source]]\nname = "Index"\nkind = "sitemap"\n'
        f'url = "{host.url("feeds/sitemap-index.xml")}"\nlastmod_days = {days_since(2025)}\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path)
    store = Store.open(tmp_path / "monitor.db")
    try:
        pipeline = Pipeline(config, store)
        robots_before = host.counts["/robots.txt"]
        report = asyncio.run(pipeline.run_cycle(force=True))
        asyncio.run(pipeline.run_cycle(force=True))
        pages = {row["url"].rsplit("/", 1)[1] for row in store.query("SELECT url FROM fetches")}
    finally:
        store.close()
    assert report.sources[0].outcome == "ok" and report.sources[0].items == 4
    assert {"n1.html", "s1.html", "s3.html", "s4.html"} <= pages  # tried (404 here)
    assert host.counts["/robots.txt"] == robots_before + 1  # one ask for two cycles


def test_pipeline_sees_new_articles_behind_a_reused_guid(host: SiteHost, tmp_path: Path) -> None:
    """Some feeds reuse GUIDs ("1" is whatever is newest); the link tells the items apart."""
    from monitor.config import load_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    (tmp_path / "monitor.toml").write_text(
        "[fetch]\nallow_private_networks = true\nmin_delay = 0\n", encoding="utf-8"
    )
    (tmp_path / "sources.toml").write_text(
        f'[[source]]\nname = "Reuse"\nurl = "{host.url("feeds/reuse.xml")}"\n', encoding="utf-8"
    )

    def serve_feed(link: str) -> None:
        body = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>R</title>'
            f"<item><title>Newest</title><link>{host.url(link)}</link><guid>1</guid></item>"
            "</channel></rss>"
        )
        host.fault(
            "feeds/reuse.xml",
            status=200,
            body=body.encode(),
            headers={"Content-Type": "application/rss+xml"},
        )

    store = Store.open(tmp_path / "monitor.db")
    try:
        pipeline = Pipeline(load_config(tmp_path), store)
        serve_feed("feeds/articles/one.html")
        first = asyncio.run(pipeline.run_cycle(force=True)).sources[0]
        serve_feed("feeds/nofeed/index.html")
        second = asyncio.run(pipeline.run_cycle(force=True)).sources[0]
        third = asyncio.run(pipeline.run_cycle(force=True)).sources[0]
    finally:
        store.close()
    assert (first.new_articles, second.new_articles, third.new_articles) == (1, 1, 0)
    assert host.counts["/feeds/nofeed/index.html"] == 1
