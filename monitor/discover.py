"""Discovery: which articles a source lists, from a fetched feed, listing page or sitemap.

One entry point, :func:`discover`, turns a :class:`~monitor.fetch.Response` into
:class:`Item` s. It never fetches anything itself (feedparser is fed bytes, never a
URL, so it cannot wander off the network rules in :mod:`monitor.fetch`); the one
case that needs more fetching, a sitemap index, is :func:`discover_all`.

Every item has a ``key`` that stays the same from one run to the next, so the store
can tell new items from seen ones: the feed's GUID, else the link, else title+date.
GUIDs that a broken feed repeats for different articles are not trusted (those items
fall back to their link); GUIDs that change on every fetch for the same article are
caught one step later, by the pipeline's "URL already stored" check.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import feedparser
import lxml.html
from bs4 import BeautifulSoup, Tag
from lxml import etree
from soupsieve import SelectorSyntaxError

from monitor.config import SourceConfig
from monitor.errors import FetchError, PermanentFetchError, TransientFetchError
from monitor.fetch import Response

__all__ = [
    "FoundSource",
    "Item",
    "discover",
    "discover_all",
    "feed_links",
    "find_source",
    "parse_date",
]

MAX_SITEMAP_CHILDREN = 10  # newest child sitemaps of an index fetched per run
SITEMAP_MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's limit, uncompressed
MAX_FEED_ITEMS = 1000  # items read from one feed document (newest first)
TRIM_ABOVE_BYTES = 64 * 1024  # below this a feed cannot hold MAX_FEED_ITEMS items


@dataclass(frozen=True)
class Item:
    """One article a source lists. ``url`` is absolute; None for link-less feed items."""

    key: str
    url: str | None
    title: str | None
    published: datetime | None
    summary: str | None


def discover(source: SourceConfig, response: Response) -> list[Item]:
    """The items listed in a fetched feed, HTML listing page or sitemap, in source order.

    Raises ``PermanentFetchError`` ("malformed feed: ...", "not a sitemap: ...") when
    the body yields nothing usable; an empty but valid feed is simply ``[]``.
    """
    if source.kind == "html":
        return _from_html(source, response)
    if source.kind == "sitemap":
        urls, children = _parse_sitemap(response, source.lastmod_days)
        if children is not None:
            raise PermanentFetchError(
                "this is a sitemap index; discover_all() follows its child sitemaps"
            )
        return urls
    return _from_feed(response)


async def discover_all(
    source: SourceConfig,
    response: Response,
    fetch: Callable[[str], Awaitable[Response]],
) -> list[Item]:
    """Like :func:`discover`, but follows a sitemap index one level down with ``fetch``.

    Only child sitemaps modified within ``lastmod_days`` (or undated) are fetched, newest
    first, at most ``MAX_SITEMAP_CHILDREN``. A child that is gone for good (404, not a
    sitemap) is skipped: stale index entries are common. A child that fails for now
    (timeout, 5xx) fails the whole run with that error, so the source is retried and no
    article is lost behind an index that will answer 304 next time.
    Parsing runs in worker threads: a sitemap can hold 50,000 URLs.
    """
    if source.kind != "sitemap":
        return await asyncio.to_thread(discover, source, response)
    items, children = await asyncio.to_thread(_parse_sitemap, response, source.lastmod_days)
    if children is None:
        return items
    found: list[Item] = []
    seen: set[str] = set()
    errors: list[str] = []
    for child in children[:MAX_SITEMAP_CHILDREN]:
        try:
            child_response = await fetch(child)
            child_items, grandchildren = await asyncio.to_thread(
                _parse_sitemap, child_response, source.lastmod_days
            )
        except TransientFetchError as exc:
            raise TransientFetchError(
                f"child sitemap {child}: {exc.reason}", retry_after=exc.retry_after
            ) from exc
        except PermanentFetchError as exc:
            errors.append(f"{child}: {exc.reason}")
            continue
        if grandchildren is not None:
            continue  # an index inside an index: not allowed by the protocol, skip
        for item in child_items:
            if item.key not in seen:
                seen.add(item.key)
                found.append(item)
    if not found and errors and len(errors) == min(len(children), MAX_SITEMAP_CHILDREN):
        raise PermanentFetchError(f"no child sitemap could be read ({errors[0]})")
    return _newest_first(found)


# -- dates ---------------------------------------------------------------------------------


def parse_date(text: str | None) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601, RFC 822 or common human forms; else None."""
    if not text:
        return None
    text = text.strip()
    if not text:
        return None
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        try:
            from dateutil import parser as date_parser

            moment = date_parser.parse(text)
        except (ValueError, OverflowError, TypeError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


# -- feeds -----------------------------------------------------------------------------------

_XML_DECL_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""")


def _trim_feed(document: bytes) -> bytes:
    """At most ``MAX_FEED_ITEMS`` items: feedparser needs ~1 ms per item, and a runaway
    or hostile feed of 20,000 items would hold a worker for half a minute.

    Feeds list newest first, so the first items are the ones a run can use (the per-run
    article cap is far smaller anyway). Only large documents are pre-parsed, with lxml
    (C, entities off); a document lxml cannot parse strictly is left to feedparser whole.
    """
    if len(document) < TRIM_ABOVE_BYTES:
        return document
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError:
        return document
    items = list(root.iter("{*}item", "{*}entry", "item", "entry"))
    if len(items) <= MAX_FEED_ITEMS:
        return document
    for extra in items[MAX_FEED_ITEMS:]:
        parent = extra.getparent()
        if parent is not None:
            parent.remove(extra)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _utf8_document(response: Response) -> bytes:
    """The body re-encoded as UTF-8 with a declaration that says so.

    fetch.py already decided the charset (header, BOM, declaration, detection); feeding
    feedparser those decoded characters keeps one decision instead of two that disagree.
    """
    text = response.text.lstrip("\ufeff")
    text = _XML_DECL_ENCODING.sub(r"\1\2utf-8\2", text, count=1)
    return text.encode("utf-8")


_BENIGN_FEED_PROBLEMS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def _looks_like_html(text: str) -> bool:
    head = text[:4096].lower()
    return bool(re.search(r"<!doctype html|<html[\s>]", head)) and not re.search(
        r"<(rss|feed|rdf:rdf)[\s>]", head
    )


def _has_content(entry: Any) -> bool:
    """feedparser turns stray tags of broken XML into empty entries; those are not items."""
    return any(entry.get(name) for name in ("id", "link", "title", "summary", "content"))


def _from_feed(response: Response) -> list[Item]:
    parsed = feedparser.parse(
        _trim_feed(_utf8_document(response)),
        # No content-location: feedparser would then "resolve" GUIDs like "1234" into
        # URLs of the feed's address, and keys would change when a feed moves.
        response_headers={"content-type": "application/xml; charset=utf-8"},
        # Off: we keep text only (html_to_text), and sanitising was most of feedparser's time.
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = [e for e in parsed.get("entries") or [] if _has_content(e)]
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(problem, _BENIGN_FEED_PROBLEMS):
        problem = None
    if not entries and (problem is not None or not parsed.get("version")):
        # Broken XML with entries is still used (feedparser recovers what it can);
        # broken XML without any is an error to report, not an empty feed to trust.
        if _looks_like_html(response.text):
            raise PermanentFetchError("not a feed: the URL returns an HTML page")
        detail = str(problem) if problem else "no RSS or Atom elements found"
        raise PermanentFetchError(f"malformed feed: {detail}")
    guid_counts: dict[str, set[str | None]] = {}
    for entry in entries:
        guid = (entry.get("id") or "").strip()
        if guid:
            guid_counts.setdefault(guid, set()).add(_entry_link(entry, response.final_url))
    items: list[Item] = []
    keys: set[str] = set()
    for entry in entries:
        url = _entry_link(entry, response.final_url)
        title = html_to_text(entry.get("title"))
        published = _struct_to_datetime(
            entry.get("published_parsed") or entry.get("updated_parsed")
        )
        summary = _entry_summary(entry)
        guid = (entry.get("id") or "").strip()
        trusted_guid = guid and len(guid_counts.get(guid, ())) <= 1
        key = _item_key(guid if trusted_guid else None, url, title, published, summary)
        if key in keys:
            continue  # the same item twice in one feed
        keys.add(key)
        items.append(Item(key=key, url=url, title=title, published=published, summary=summary))
    return items


def _entry_link(entry: Any, base: str) -> str | None:
    candidates: list[str] = []
    for link in entry.get("links") or []:
        href = link.get("href")
        if href and link.get("rel", "alternate") == "alternate":
            candidates.append(href)
    if entry.get("link"):
        candidates.insert(0, entry["link"])
    guid = entry.get("id") or ""
    if entry.get("guidislink") and guid:
        candidates.append(guid)
    for href in candidates:
        absolute = _absolute(href, base)
        if absolute:
            return absolute
    return None


def _entry_summary(entry: Any) -> str | None:
    for value in (entry.get("summary"), *(c.get("value") for c in entry.get("content") or [])):
        text = html_to_text(value)
        if text:
            return text
    return None


def html_to_text(value: str | None) -> str | None:
    """Plain text of an HTML fragment (feed summaries, titles), spaces between elements.

    lxml rather than BeautifulSoup: a feed of thousands of items spent most of its
    parse time building soups. Scripts and styles are dropped, not read as text.
    """
    if not value:
        return None
    if "<" not in value and "&" not in value:
        return _clean(value)
    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except (etree.ParserError, ValueError):
        return _clean(value)
    for bad in root.xpath(".//script|.//style"):
        bad.drop_tree()
    return _clean(" ".join(root.itertext()))


def _item_key(
    guid: str | None,
    url: str | None,
    title: str | None,
    published: datetime | None,
    summary: str | None,
) -> str:
    if guid:
        return f"guid:{guid}"
    if url:
        return f"link:{url}"
    stamp = published.isoformat() if published else ""
    basis = f"{title or ''}|{stamp}"
    if not title and not stamp:
        basis = "summary|" + hashlib.sha1((summary or "").encode()).hexdigest()
    return f"title:{basis}"


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text or None


def _absolute(href: str | None, base: str) -> str | None:
    """An absolute http(s) URL without fragment, or None for javascript:, mailto: etc."""
    if not href:
        return None
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    url, _fragment = urldefrag(urljoin(base, href))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


# -- HTML listing pages ----------------------------------------------------------------------


def _from_html(source: SourceConfig, response: Response) -> list[Item]:
    """Links picked by CSS selectors; title/date are looked up inside each ``item`` block
    when one is set, else inside the link's parent element, else the link text is the title.
    """
    selectors = source.selectors
    if selectors is None:  # config validation requires them; keep mypy and misuse honest
        raise PermanentFetchError("an html source needs selectors")
    soup = BeautifulSoup(response.text, "lxml")
    base = response.final_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(base, str(base_tag["href"]))
    pairs: list[tuple[Tag, Tag]] = []  # (link, scope for title/date)
    try:
        if selectors.item:
            for block in soup.select(selectors.item):
                anchor = block.select_one(selectors.link)
                if anchor is None and block.name == "a":
                    anchor = block
                if anchor is not None:
                    pairs.append((anchor, block))
        else:
            for anchor in soup.select(selectors.link):
                scope = anchor.parent if isinstance(anchor.parent, Tag) else anchor
                pairs.append((anchor, scope))
        items: list[Item] = []
        seen: set[str] = set()
        for anchor, scope in pairs:
            url = _absolute(_href(anchor), base)
            if url is None or url in seen:
                continue
            seen.add(url)
            title = _select_text(scope, selectors.title) or _clean(anchor.get_text(" ", strip=True))
            published = _select_date(scope, selectors.date)
            items.append(
                Item(key=f"link:{url}", url=url, title=title, published=published, summary=None)
            )
    except (ValueError, SelectorSyntaxError) as exc:  # a config problem, said plainly
        raise PermanentFetchError(f"bad CSS selector in source {source.name!r}: {exc}") from exc
    return items


def _href(tag: Tag) -> str | None:
    if tag.name != "a" or not tag.has_attr("href"):
        inner = tag.find("a", href=True)
        if not isinstance(inner, Tag):
            return None
        tag = inner
    value = tag.get("href")
    return value if isinstance(value, str) else None


def _select_text(block: Tag, selector: str | None) -> str | None:
    if not selector:
        return None
    found = block.select_one(selector)
    return _clean(found.get_text(" ", strip=True)) if found else None


def _select_date(block: Tag, selector: str | None) -> datetime | None:
    if not selector:
        return None
    found = block.select_one(selector)
    if found is None:
        return None
    for attribute in ("datetime", "content", "data-date"):
        value = found.get(attribute)
        if isinstance(value, str) and parse_date(value):
            return parse_date(value)
    return parse_date(found.get_text(" ", strip=True))


# -- sitemaps --------------------------------------------------------------------------------


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _sitemap_document(response: Response) -> bytes:
    """The sitemap's XML; ``sitemap.xml.gz`` files arrive gzipped as a file, not as an
    HTTP Content-Encoding, so they are inflated here, with the protocol's 50 MiB cap."""
    if not response.content.startswith(b"\x1f\x8b"):
        return _utf8_document(response)
    from monitor.fetch import inflate_bounded

    try:
        return inflate_bounded(response.content, SITEMAP_MAX_BYTES)
    except ValueError as exc:
        raise PermanentFetchError(f"not a sitemap: {exc}") from exc


def _parse_sitemap(response: Response, lastmod_days: float) -> tuple[list[Item], list[str] | None]:
    """``(items, None)`` for a urlset, ``([], child URLs newest first)`` for an index."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = etree.fromstring(_sitemap_document(response), parser)
    except etree.XMLSyntaxError as exc:
        raise PermanentFetchError(f"not a sitemap: {exc}") from exc
    if root is None:
        raise PermanentFetchError("not a sitemap: the body is not XML")
    kind = _local(root.tag)
    cutoff = datetime.now(UTC) - timedelta(days=lastmod_days)
    if kind == "sitemapindex":
        dated: list[tuple[datetime | None, str]] = []
        for node in root:
            if _local(node.tag) != "sitemap":
                continue
            fields = {_local(child.tag): (child.text or "").strip() for child in node}
            url = _absolute(fields.get("loc"), response.final_url)
            modified = parse_date(fields.get("lastmod"))
            if url and (modified is None or modified >= cutoff):
                dated.append((modified, url))
        dated.sort(key=lambda pair: pair[0] or datetime.max.replace(tzinfo=UTC), reverse=True)
        return [], [url for _modified, url in dated]
    if kind != "urlset":
        raise PermanentFetchError(f"not a sitemap: root element is <{kind or '?'}>")
    items: list[Item] = []
    seen: set[str] = set()
    for node in root:
        if _local(node.tag) != "url":
            continue
        loc = lastmod = title = news_date = None
        for child in node:
            name = _local(child.tag)
            if name == "loc":
                loc = (child.text or "").strip()
            elif name == "lastmod":
                lastmod = (child.text or "").strip()
            elif name == "news":  # Google News sitemap: <news:news><news:title>...
                for part in child:
                    if _local(part.tag) == "title":
                        title = _clean(part.text)
                    elif _local(part.tag) == "publication_date":
                        news_date = (part.text or "").strip()
        url = _absolute(loc, response.final_url)
        if url is None or url in seen:
            continue
        published = parse_date(news_date) or parse_date(lastmod)
        if published is not None and published < cutoff:
            continue
        seen.add(url)
        items.append(
            Item(key=f"link:{url}", url=url, title=title, published=published, summary=None)
        )
    return _newest_first(items), None


def _newest_first(items: list[Item]) -> list[Item]:
    """Sitemaps list URLs in any order; the per-run cap should take the newest first.

    Undated URLs go last, in document order (the sort is stable)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda item: item.published or oldest, reverse=True)


# -- feed autodiscovery ----------------------------------------------------------------------

FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
)
# Tried in order, first beside the page, then at the site root, when a page advertises no feed.
COMMON_FEED_PATHS = (
    "feed",
    "rss",
    "feed.xml",
    "rss.xml",
    "atom.xml",
    "index.xml",
    "feeds/posts/default",
    "?feed=rss2",
)


def feed_links(response: Response) -> list[str]:
    """Feed URLs a page advertises with ``<link rel="alternate" type="...rss/atom...">``."""
    soup = BeautifulSoup(response.text, "lxml")
    found: list[str] = []
    for link in soup.find_all("link", href=True):
        if not isinstance(link, Tag):
            continue
        rel: Any = link.get("rel") or []
        rels = {str(r).lower() for r in (rel if isinstance(rel, list) else [rel])}
        kind = str(link.get("type") or "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES:
            url = _absolute(str(link["href"]), response.final_url)
            if url and url not in found:
                found.append(url)
    return found


@dataclass(frozen=True)
class FoundSource:
    """What ``monitor add-source`` found behind a URL."""

    url: str
    kind: str  # "feed" or "sitemap"
    title: str | None
    items: int
    how: str  # "the URL itself", "<link rel=alternate>", "common path"


def _as_source(response: Response, how: str) -> FoundSource | None:
    """The response as a usable feed or sitemap, or None."""
    head = response.text[:4096].lower()
    if re.search(r"<(urlset|sitemapindex)[\s>]", head):
        try:
            items, children = _parse_sitemap(response, 3650)
        except PermanentFetchError:
            return None
        count = len(items) if children is None else len(children)
        return FoundSource(response.final_url, "sitemap", None, count, how)
    if _looks_like_html(response.text):
        return None
    try:
        items = _from_feed(response)
    except PermanentFetchError:
        return None
    parsed = feedparser.parse(_utf8_document(response), resolve_relative_uris=False)
    title = _clean(parsed.get("feed", {}).get("title"))
    return FoundSource(response.final_url, "feed", title, len(items), how)


async def find_source(url: str, fetch: Callable[[str], Awaitable[Response]]) -> FoundSource:
    """Find the feed (or sitemap) behind a site URL, the way a person would.

    The URL itself if it is a feed or sitemap; else a feed the page advertises with
    ``<link rel="alternate">``; else a feed at a common path beside the page or at the
    site root. Raises ``PermanentFetchError`` saying what to do when there is none.
    """
    page = await fetch(url)
    found = _as_source(page, "the URL itself")
    if found:
        return found
    tried: set[str] = {page.final_url}
    candidates = [(link, "<link rel=alternate>") for link in feed_links(page)]
    bases = [page.final_url, urljoin(page.final_url, "/")]
    for base in dict.fromkeys(bases):
        candidates += [(urljoin(base, path), "common path") for path in COMMON_FEED_PATHS]
    for candidate, how in candidates:
        if candidate in tried:
            continue
        tried.add(candidate)
        try:
            found = _as_source(await fetch(candidate), how)
        except FetchError:
            continue
        if found:
            return found
    raise PermanentFetchError(
        f'no feed or sitemap found at {url}; add it with kind = "html" and CSS selectors'
    )
