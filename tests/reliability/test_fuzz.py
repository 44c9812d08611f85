"""Property tests: whatever the web or a user types, no exception escapes.

- ``extract()`` promises never to raise: any bytes or text give an Article, with a
  ``reason`` when the text is empty.
- Reading a listing (feed, HTML page, sitemap) raises only ``FetchError``, whose reason
  is recorded on the source: the pipeline never lets a parser's surprise out.
- The query parser raises ``QuerySyntaxError`` (with a position inside the query) and
  nothing else; a query that parses also matches any text without raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import SourceConfig, load_config
from monitor.errors import FetchError, QuerySyntaxError
from monitor.extract import Article, extract
from monitor.fetch import Response
from monitor.fetch_charset import decode_body
from monitor.match import Matcher, compile_query
from monitor.pipeline import Pipeline
from monitor.store import Store

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TAGS = [
    "html", "head", "body", "title", "meta", "article", "main", "div", "p", "span", "a",
    "h1", "h2", "ul", "li", "table", "tr", "td", "script", "style", "nav", "footer",
    "aside", "svg", "template", "iframe", "noscript", "br", "img", "pre", "code",
    "blockquote", "figure", "figcaption", "time", "form", "input", "button", "math",
]  # fmt: skip
ATTRIBUTES = ["class", "id", "href", "src", "content", "property", "name", "datetime", "lang"]

words = st.text(min_size=0, max_size=40)
attribute = st.tuples(st.sampled_from(ATTRIBUTES), st.text(max_size=30)).map(
    lambda pair: f' {pair[0]}="{pair[1]}"'
)


def element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, attrs, inner, closed: (
            f"<{tag}{''.join(attrs)}>{''.join(inner)}" + (f"</{tag}>" if closed else "")
        ),
        st.sampled_from(TAGS),
        st.lists(attribute, max_size=3),
        st.lists(children, max_size=4),
        st.booleans(),
    )


html_documents = st.recursive(words, element, max_leaves=40).map(
    lambda body: f"<!DOCTYPE html><html><body>{body}</body></html>"
)
junk = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000),
    st.builds(lambda a, b: f"<html>{a}<p>{b}", st.text(max_size=500), st.text(max_size=500)),
    st.builds(
        lambda enc, raw: f'<meta charset="{enc}"><p>'.encode() + raw,
        st.sampled_from(["utf-8", "gb2312", "shift_jis", "utf-16", "bogus", ""]),
        st.binary(max_size=500),
    ),
)


def _check(article: Article) -> None:
    assert isinstance(article, Article)
    assert isinstance(article.text, str) and isinstance(article.title, str)
    assert article.text or article.reason


@FUZZ
@given(html_documents, st.sampled_from([None, "https://example.org/a/b.html"]))
def test_extract_never_raises_on_html_shaped_input(html: str, url: str | None) -> None:
    _check(extract(html, url))
    _check(extract(html.encode("utf-8", "surrogatepass"), url))


@FUZZ
@given(junk)
def test_extract_never_raises_on_junk(data: bytes | str) -> None:
    _check(extract(data, "https://example.org/"))


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 5000 + "deep" + "</div>" * 5000,
        "<p>" + "x" * 2_000_000 + "</p>",
        "<html><body>" + "<p>a</p>" * 10_000,
        "\x00" * 1000,
        "<html><body><p>" + "\u202e\u200b\ufeff" * 1000,
    ],
    ids=["5000 nested divs", "2 MB paragraph", "10000 paragraphs", "NUL bytes", "bidi controls"],
)
def test_extract_survives_pathological_pages(html: str) -> None:
    _check(extract(html, "https://example.org/"))


# -- the query parser ----------------------------------------------------------------------------

QUERY_TOKENS = [
    "AND", "OR", "NOT", "NEAR/3", "NEAR/", "NEAR/0", "NEAR/99999", "SENT(", "(", ")", '"',
    "*", "@IP", "@BRI", "@", "@nope", "title:", "text:", "foo:", "patent", "cooperat*", "a*",
    "知识产权", "一带一路", "Belt", "and", "Road", "'", ":", "/", "\\", "-", "&", "|", " ",
]  # fmt: skip
ALIASES = {
    "IP": '("intellectual property" OR IPR OR 知识产权)',
    "BRI": '("Belt and Road" OR BRI OR 一带一路)',
    "LOOP": "@LOOP",
}
query_text = st.one_of(
    st.lists(st.sampled_from(QUERY_TOKENS), max_size=25).map(" ".join),
    st.lists(st.sampled_from(QUERY_TOKENS), max_size=25).map("".join),
    st.text(max_size=200),
)
documents = st.text(max_size=400) | st.sampled_from(
    [
        "China will deepen intellectual property cooperation with Belt and Road countries.",
        "知识产权 合作 一带一路 国家。 Patent cooperation grows.",
    ]
)


@settings(max_examples=300, deadline=None)
@given(query_text, documents)
def test_query_parser_raises_only_its_own_error(query: str, document: str) -> None:
    try:
        compiled = compile_query(query, ALIASES, commitment_id="FUZZ")
    except QuerySyntaxError as exc:
        assert exc.position is None or 0 <= exc.position <= len(query) + 1
        assert "FUZZ" in str(exc)
        return
    compiled.match(document[:40], document)


@pytest.mark.parametrize(
    "query",
    [
        "(" * 10_000 + "patent" + ")" * 10_000,
        "SENT(" * 500 + "a" + ")" * 500,
        "NOT " * 10_000 + "patent",
        " OR ".join(["patent"] * 200),
        "patent NEAR/1 " * 2_000 + "law",
        '"' + "word " * 5_000 + '"',
        "@LOOP",
    ],
    ids=[
        "10000 parens",
        "500 SENTs",
        "10000 NOTs",
        "200 ORs",
        "2000 NEARs",
        "5000-word phrase",
        "alias loop",
    ],
)
def test_query_parser_refuses_or_handles_pathological_queries(query: str) -> None:
    try:
        compiled = compile_query(query, ALIASES, commitment_id="FUZZ")
    except QuerySyntaxError:
        return
    compiled.match("Patent law", "patent " * 200 + "law")


# -- reading listings ----------------------------------------------------------------------------

LISTING_TOKENS = [
    "<rss version='2.0'>", "<channel>", "<item>", "</item>", "<title>", "</title>", "<link>",
    "</link>", "<guid>", "</guid>", "<pubDate>", "</pubDate>", "<description>",
    "<feed xmlns='http://www.w3.org/2005/Atom'>", "<entry>", "</entry>", "<link href='", "'/>",
    "<urlset>", "<url>", "<loc>", "</loc>", "<lastmod>", "<sitemapindex>", "<sitemap>", "<li>",
    "<a href='", "'>", "</a>", "<span>", "</span>", "http://a.example/b", "javascript:x",
    "//evil.example", "&amp;", "&#0;", "&#xD800;", "&#x110000;", "\x00", "Mon, 99 Foo 2025",
    "2025-13-45T99:99", "<![CDATA[", "]]>", "<!DOCTYPE x [<!ENTITY a 'b'>]>", "&a;", "text",
    " ", "\n", "é", "知识产权",
]  # fmt: skip
SOURCES = [
    SourceConfig(name="feed", url="http://a.example/feed"),
    SourceConfig(
        name="listing",
        kind="html",
        url="http://a.example/news",
        selectors={"link": "a", "item": "li", "title": "a", "date": "span"},  # type: ignore[arg-type]
    ),
    SourceConfig(name="sitemap", kind="sitemap", url="http://a.example/sitemap.xml"),
]
listings = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from(LISTING_TOKENS), max_size=60).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, matcher: Matcher) -> Iterator[Pipeline]:
    database: Path = tmp_path_factory.mktemp("fuzz") / "monitor.db"
    config = load_config(None, database=str(database)).with_overrides(sources=SOURCES)
    store = Store.open(database)
    yield Pipeline(config, store, matcher=matcher)
    store.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(listings, st.sampled_from(SOURCES))
def test_reading_a_listing_raises_only_fetch_errors(
    pipeline: Pipeline, body: bytes, source: SourceConfig
) -> None:
    text, _codec = decode_body(body, None)
    response = Response(
        url=source.url,
        final_url=source.url,
        status=200,
        headers={},
        content=body,
        text=text,
        etag=None,
        last_modified=None,
        not_modified=False,
        elapsed_ms=1,
    )
    try:
        items = asyncio.run(pipeline._discover(source, response))
    except FetchError as exc:
        assert exc.reason and "\ud800" not in exc.reason
        return
    for item in items:
        assert item.url is None or item.url.startswith(("http://", "https://"))
        for value in (item.key, item.url, item.title, item.summary):
            if value is not None:
                value.encode("utf-8")  # storable: SQLite refuses lone surrogates
