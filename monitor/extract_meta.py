"""Metadata of a parsed page for :mod:`monitor.extract`: title, date, authors, language, URL.

Trafilatura's full ``extract_metadata`` also looks for categories, tags, licences and
deep-copies the tree to search for bylines, which costs more than the article body
itself. We call only the parts the pipeline uses, on the tree we already parsed.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import htmldate
import numpy
import py3langid
import py3langid.langid
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.json_metadata import normalize_authors
from trafilatura.metadata import examine_meta, extract_title
from trafilatura.settings import Document

TITLE_SEPARATORS = re.compile(r"\s+[–•·—|⁄*~‹«<›»>:-]\s+")
LANGUAGE_SAMPLE_CHARS = 400
MIN_LANGUAGE_SAMPLE_CHARS = 20
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class PageMeta:
    title: str
    title_variants: tuple[str, ...]  # every form of the title a page may repeat in its body
    authors: list[str]
    canonical_url: str | None
    description: str | None
    declared_language: str | None  # <html lang>, only a hint: CMS templates often lie


def read_meta(tree: HtmlElement, url: str | None) -> PageMeta:
    """Read head metadata (OpenGraph, meta names, JSON-LD) before the tree is pruned."""
    doc: Document = examine_meta(tree)
    ld_authors, ld_headline, ld_description = _json_ld_article(tree)
    title = _clean(doc.title) or _clean(ld_headline) or _clean(extract_title(tree)) or ""
    return PageMeta(
        title=title,
        title_variants=_title_variants(tree, title),
        authors=ld_authors or _split_authors(doc.author),
        canonical_url=_canonical_url(tree, url),
        description=_clean(doc.description) or _clean(ld_description),
        declared_language=_declared_language(tree),
    )


ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "blogposting",
    "report",
    "scholarlyarticle",
}


def _json_ld_article(tree: HtmlElement) -> tuple[list[str], str | None, str | None]:
    """Authors, headline and description of the page's schema.org Article in JSON-LD.

    Parsed with :mod:`json` directly: trafilatura's walker unescapes the whole script
    character by character in Python, and pages embed the full article body there.
    Persons are preferred to organisations ("BBC News") as authors.
    """
    article, authored = None, None
    by_id: dict[str, dict[str, Any]] = {}
    for script in tree.iterfind(".//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue
        for node in _ld_nodes(data):
            if isinstance(node.get("@id"), str):
                by_id.setdefault(node["@id"], node)
            kinds = node.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if article is None and any(str(kind).lower() in ARTICLE_TYPES for kind in kinds):
                article = node
            if authored is None and node.get("author"):
                authored = node
    if article is None and authored is None:
        return [], None, None
    source: dict[str, Any] = article if article is not None else authored or {}
    headline, description = source.get("headline"), source.get("description")
    author = (article if article and article.get("author") else authored or {}).get("author")
    return (
        _ld_names(author, by_id),
        headline if isinstance(headline, str) else None,
        description if isinstance(description, str) else None,
    )


def _ld_nodes(data: Any) -> Iterator[dict[str, Any]]:
    """Every object of a JSON-LD document, through lists and @graph."""
    if isinstance(data, list):
        for item in data:
            yield from _ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if graph is not None:
            yield from _ld_nodes(graph)


def _ld_names(author: Any, by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Names of JSON-LD authors, persons first, cleaned by trafilatura's name rules.

    WordPress (Yoast) and others give the author as a reference, {"@id": ...}, to a Person
    node elsewhere in the graph.
    """
    people: list[str] = []
    others: list[str] = []
    for item in author if isinstance(author, list) else [author]:
        if isinstance(item, dict) and "name" not in item and item.get("@id") in by_id:
            item = by_id[item["@id"]]
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str):
            continue
        kind = str(item.get("@type", "")).lower() if isinstance(item, dict) else ""
        (others if kind == "organization" else people).append(name)
    names = _split_authors("; ".join(people)) or _split_authors("; ".join(others))
    return names


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    return " ".join(value.split()) or None


def _title_variants(tree: HtmlElement, title: str) -> tuple[str, ...]:
    """The headline as og:title, <title> (with and without the site name) and <h1>."""
    variants = {title}
    head_title = tree.findtext(".//head/title")
    if head_title:
        head_title = " ".join(head_title.split())
        variants.add(head_title)
        variants.update(part for part in TITLE_SEPARATORS.split(head_title) if len(part) > 15)
    for h1 in list(tree.iter("h1"))[:2]:  # logo, then headline; later ones are sections
        text = " ".join(h1.text_content().split())
        if text:
            variants.add(text)
    for name in ("og:title", "twitter:title"):
        for node in tree.xpath(".//meta[@property=$name or @name=$name]/@content", name=name):
            variants.add(" ".join(str(node).split()))
    return tuple(v for v in variants if v)


def _split_authors(value: str | None) -> list[str]:
    """Separate names, without "By", roles, e-mail addresses or profile URLs."""
    if not value:
        return []
    normalized = normalize_authors(None, value) or ""
    return list(dict.fromkeys(name for name in normalized.split("; ") if name))


def _canonical_url(tree: HtmlElement, url: str | None) -> str | None:
    """``<link rel=canonical>``, else og:url, resolved against the fetched URL."""
    for href in (
        *tree.xpath(".//link[@rel='canonical']/@href"),
        *tree.xpath(".//meta[@property='og:url']/@content"),
    ):
        href = str(href).strip()
        if href:
            absolute = urljoin(url, href) if url else href
            if absolute.startswith(("http://", "https://")):
                return absolute
    return None


def _declared_language(tree: HtmlElement) -> str | None:
    for value in (
        tree.get("lang"),
        tree.get("{http://www.w3.org/XML/1998/namespace}lang"),
        *tree.xpath(".//meta[@http-equiv='content-language' or @property='og:locale']/@content"),
    ):
        if value:
            code = re.split(r"[-_]", str(value).strip().lower())[0]
            if len(code) == 2 and code.isalpha():
                return code
    return None


def find_published(
    tree: HtmlElement, url: str | None, *, search_text: bool = True
) -> datetime | None:
    """Publication date from JSON-LD, meta tags or the URL, else from visible text.

    htmldate prefers the original date over "updated". A date given without a time zone
    is taken as UTC so that every value compares. ``search_text=False`` skips the search of
    visible text, whose regular expressions run over the whole page (seconds on a huge one).
    """
    found = None
    # Markup and URL first: cheap and exact. Only then the slower search of visible text,
    # on a copy without link targets: a date in the URL of a linked story is that story's.
    for extensive in (False, True) if search_text else (False,):
        searched = tree
        if extensive:
            searched = copy.deepcopy(tree)
            etree.strip_attributes(searched, "href")
        try:
            found = htmldate.find_date(
                searched,
                url=url,
                original_date=True,
                outputformat=DATE_FORMAT,
                extensive_search=extensive,
            )
        except Exception:  # htmldate is defensive, but a corrupt tree must not cost the article
            found = None
        if found:
            break
    if not found:
        return None
    try:
        published = datetime.strptime(found, DATE_FORMAT)
    except ValueError:
        try:
            published = datetime.fromisoformat(found)
        except ValueError:
            return None
    return published if published.tzinfo else published.replace(tzinfo=UTC)


def detect_language(text: str, declared: str | None) -> str | None:
    """ISO 639-1 code of the text, by py3langid; the page's declared language if too short."""
    sample = text[:LANGUAGE_SAMPLE_CHARS]
    if len(sample.strip()) < MIN_LANGUAGE_SAMPLE_CHARS:
        return declared
    return _classify(sample)


def _classify(sample: str) -> str:
    """py3langid's naive Bayes, scored over the features present only.

    ``py3langid.classify`` multiplies a dense 7,480-feature vector by the whole model,
    a BLAS call that on a busy two-core machine costs more than the rest of the page's
    language work; the features a short sample hits are a few hundred rows.
    """
    model = _langid_model()
    try:
        state, hits = 0, []
        for byte in sample.encode("utf8", errors="surrogatepass"):
            state = model.tk_nextmove[(state << 8) + byte]
            hits.extend(model.tk_output.get(state, ()))
        if not hits:
            return str(py3langid.classify(sample)[0])
        features, counts = numpy.unique(numpy.asarray(hits, dtype=numpy.intp), return_counts=True)
        scores = counts @ model.nb_ptc[features] + model.nb_pc
        return str(model.nb_classes[int(numpy.argmax(scores))])
    except AttributeError:  # a py3langid release with other internals: use its own call
        return str(py3langid.classify(sample)[0])


@functools.cache
def _langid_model() -> Any:
    py3langid.langid.load_model()
    return py3langid.langid.IDENTIFIER
