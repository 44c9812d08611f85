"""Article extraction: turn one fetched HTML page into an :class:`Article`.

Every later stage (dedupe, matching, evidence sentences in digests) reads
``Article.text``, so this stage promises the article's paragraphs without the page's
chrome, and it never raises: bad input gives an empty text and a ``reason``.

How, and why this way (``bench/extract.py`` measures each choice against trafilatura's
default call on the shared benchmark):

1. Parse once, with a C-level element class lookup (trafilatura's passes touch every
   element many times; lxml.html's Python lookup was a tenth of their time).
2. Read the metadata from the full tree: head tags and JSON-LD through trafilatura's
   helpers, the date through htmldate, the language of the extracted text by py3langid.
3. Drop elements that are never article text (scripts, navigation, footers, form
   controls) so every later pass runs on a smaller tree.
4. Trafilatura's main extractor, fast and in recall mode, picks the article region.
   A readability-style vote of long paragraphs (:func:`dense_paragraphs`) is a second
   opinion: it puts back article chunks the fast pass cut off, and when the two
   disagree badly trafilatura's full cascade (readability and jusText) is tried.
5. Lines are cleaned (:mod:`monitor.extract_clean`): headline repeats, share, follow,
   cookie and newsletter lines, credits and datelines, link teasers and link lists.
6. Optionally, a caller-owned :class:`SiteBoilerplate` drops lines a site repeats on
   every page (:mod:`monitor.extract_memory`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from dataclasses import dataclass
from datetime import datetime

import trafilatura
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.settings import Extractor
from trafilatura.utils import decode_file, load_html

from monitor.extract_clean import (
    add_missing_paragraphs,
    body_lines,
    clean_lines,
    coverage,
    dense_paragraphs,
    link_texts,
    render,
)
from monitor.extract_memory import SiteBoilerplate, site_of
from monitor.extract_meta import PageMeta, detect_language, find_published, read_meta

MAX_HTML_BYTES = 5 * 1024 * 1024
SNIFF_CHARS = 65536  # markup must show up this early (pages may open with a long comment)
MAX_DATE_SEARCH_CHARS = 1024 * 1024  # larger pages get their date from markup or URL only
MAX_DESCRIPTION_CHARS = 300
MIN_TEXT_CHARS = 250  # below this the fast pass probably missed the article
MIN_COVERAGE = 0.8  # share of the voted paragraphs a text must hold to count as the article
MAX_PAGE_LINK_SHARE = 0.7
MAX_BLOAT = 4.0  # a fast pass this much longer than the voted paragraphs took in chrome
# Never article text; removing them first makes every later pass cheaper.
NON_CONTENT_TAGS = (
    "script",
    "style",
    "noscript",
    "svg",
    "nav",
    "footer",
    "aside",
    "iframe",
    "button",
    "select",
    "input",
    "textarea",
    "template",
    "head",
    "img",
    "picture",
    "source",
    "video",
    "audio",
    "canvas",
    "object",
    "embed",
    "map",
    "figcaption",
)


HIDDEN_CLASSES = ("sr-only", "visually-hidden", "screen-reader")
POPUP_CLASSES = ("tooltip", "popover", "rollover", "hovercard")
HIDDEN_CLASS = re.compile("|".join(HIDDEN_CLASSES))
POPUP_CLASS = re.compile("|".join(POPUP_CLASSES))
UNSEEN_CLASS = re.compile("|".join(HIDDEN_CLASSES + POPUP_CLASSES))


@dataclass(frozen=True)
class Article:
    """What the pipeline keeps of a page."""

    title: str
    text: str  # paragraphs separated by blank lines ("\n\n")
    published: datetime | None  # timezone-aware when known
    authors: list[str]
    language: str | None  # ISO 639-1, e.g. "en", "zh"
    canonical_url: str | None
    description: str | None
    reason: str | None = None  # why text is empty ("not HTML", "no article found", ...)


def _empty(reason: str) -> Article:
    return Article(
        title="",
        text="",
        published=None,
        authors=[],
        language=None,
        canonical_url=None,
        description=None,
        reason=reason,
    )


def extract(
    html: bytes | str,
    url: str | None = None,
    *,
    selectors: str | None = None,
    boilerplate: SiteBoilerplate | None = None,
) -> Article:
    """Extract the main article of one page.

    ``selectors`` is a CSS selector for the article body that a user gave for this source;
    when it matches, only the matched elements are read. ``boilerplate``, when given, is the
    caller's memory of lines repeated across a site's pages: those lines are dropped and
    this page's lines are remembered. The output depends only on the arguments (and on the
    memory's state when one is passed), no network, and it never raises: a page that
    cannot be read gives an Article with empty ``text`` and the ``reason``.
    """
    problem = _input_problem(html)
    if problem:
        return _empty(problem)
    try:
        article = _extract(html, url, selectors)
        if boilerplate is not None and article.text:
            article = _forget_site_chrome(article, url, boilerplate)
        return article
    except Exception as exc:  # one odd page must never stop the pipeline
        return _empty(f"extraction failed: {exc.__class__.__name__}: {exc}"[:200])


def _forget_site_chrome(article: Article, url: str | None, memory: SiteBoilerplate) -> Article:
    """Drop lines this site repeated on other pages, then remember this page's lines."""
    page = article.canonical_url or url
    site = site_of(page)
    if site is None or page is None:
        return article
    blocks = [block.split("\n") for block in article.text.split("\n\n")]
    kept = [[line for line in block if not memory.repeated(site, page, line)] for block in blocks]
    memory.learn(site, page, (line for block in blocks for line in block))
    text = "\n\n".join("\n".join(block) for block in kept if block)
    reason = None if text else "no article found: only lines this site repeats on every page"
    return dataclasses.replace(article, text=text, reason=reason)


def _input_problem(html: bytes | str) -> str | None:
    """Why the input cannot be an HTML page, checked cheaply before parsing."""
    if not isinstance(html, bytes | str):
        return f"not HTML: got {type(html).__name__}"
    if not html or not html.strip():
        return "empty input"
    if len(html) > MAX_HTML_BYTES:
        return f"page too large: {len(html) / 1e6:.1f} MB (limit {MAX_HTML_BYTES / 1e6:.0f} MB)"
    head = html[:SNIFF_CHARS]
    if isinstance(head, bytes):
        if b"\x00" in head:
            return "not HTML: binary content"
        head = head.decode("latin-1")
    if "<" not in head or not any(
        tag in head.lower() for tag in ("<html", "<body", "<p", "<div", "<!doctype", "<head")
    ):
        return "not HTML: no markup found"
    return None


def _html_parser() -> etree.HTMLParser:
    """libxml2's HTML parser, giving every element lxml.html's class by a C-level lookup.

    lxml.html's own parser picks element classes in a Python callback, once per element
    each time Python touches it; trafilatura's passes touch every element many times.
    """
    parser = etree.HTMLParser(
        collect_ids=False,
        default_doctype=False,
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
    )
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup(element=HtmlElement))
    return parser


_PARSERS = threading.local()  # an lxml parser must not be shared between threads


def _thread_parser() -> etree.HTMLParser:
    parser = getattr(_PARSERS, "html", None)
    if parser is None:
        parser = _PARSERS.html = _html_parser()
    return parser


def _parse(html: bytes | str) -> HtmlElement | None:
    """Parse a page. Bytes that are not UTF-8 are decoded by trafilatura's charset guess."""
    if isinstance(html, str):
        data = html.encode("utf-8", "surrogatepass")
    else:
        try:
            html.decode("utf-8")
            data = html
        except UnicodeDecodeError:
            data = decode_file(html).encode("utf-8", "surrogatepass")
    try:
        tree = etree.fromstring(data, _thread_parser())
    except (etree.ParserError, ValueError):
        tree = None
    if tree is None or not len(tree):
        # trafilatura's loader repairs what trips libxml2 (odd doctypes, <html/>)
        tree = load_html(html)
    return tree


def _extract(html: bytes | str, url: str | None, selectors: str | None) -> Article:
    tree = _parse(html)
    if tree is None:
        return _empty("not HTML: the parser found no document")
    meta = read_meta(tree, url)
    published = find_published(tree, url, search_text=len(html) <= MAX_DATE_SEARCH_CHARS)
    etree.strip_elements(tree, *NON_CONTENT_TAGS, with_tail=False)
    for element in _unseen(tree):
        element.drop_tree()  # keeps the tail, which belongs to the parent

    if selectors:
        selected = _select(tree, selectors)
        if selected is not None:
            tree = selected
    links = link_texts(tree)
    expected = dense_paragraphs(tree)
    if not expected and _mostly_links(tree):
        return _no_article(meta, published, "no article found: the page is mostly links")
    text = _body_text(tree, meta.title_variants, links, expected, fast=True)
    if _doubtful(text, expected):
        # The fast pass disagrees with the paragraph vote: on some layouts (an article
        # split over sibling blocks, a menu taken for the body) only trafilatura's full
        # cascade, with its readability and jusText comparisons, finds the article.
        # trafilatura works on its own copy of the tree, so the pruned tree serves again.
        second = _body_text(tree, meta.title_variants, links, expected, fast=False)
        if _better(second, text, expected):
            text = second
    return Article(
        title=meta.title,
        text=text,
        published=published,
        authors=meta.authors,
        language=detect_language(text, meta.declared_language),
        canonical_url=meta.canonical_url,
        description=meta.description or _lead(text),
        reason=None if text else "no article found",
    )


def _lead(text: str) -> str | None:
    """The first paragraph, cut at a word near ``MAX_DESCRIPTION_CHARS``: a description for
    pages that declare none."""
    first = text.split("\n\n", 1)[0].strip()
    if len(first) <= MAX_DESCRIPTION_CHARS:
        return first or None
    cut = first[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    return (cut if len(cut) > MAX_DESCRIPTION_CHARS // 2 else first[:MAX_DESCRIPTION_CHARS]) + "…"


def _unseen(tree: HtmlElement) -> list[HtmlElement]:
    """Elements a reader never sees: hidden ones, screen-reader-only labels ("opens in a new
    window"), and the card that pops up over a name on hover. The card sits inside its
    trigger, which has a similar class and the visible name: only a match nested in another
    match, and not the trigger's link, is the card. (A Python pass: the same test as one
    XPath costs twice as much in libxml2's string functions.)"""
    found: list[HtmlElement] = []
    for element in tree.iter(etree.Element):
        get = element.get
        style = get("style")
        classes = get("class")
        if (
            get("hidden") is not None
            or get("aria-hidden") == "true"
            or (style and "none" in style and "display:none" in style.replace(" ", ""))
            or (classes and _is_unseen_class(element, classes))
        ):
            found.append(element)
    # a match inside another one goes with it
    dropped = set(found)
    return [e for e in found if not any(a in dropped for a in e.iterancestors())]


def _is_unseen_class(element: HtmlElement, classes: str) -> bool:
    found = UNSEEN_CLASS.search(classes)
    if found is None:
        return False
    if found[0] in HIDDEN_CLASSES or HIDDEN_CLASS.search(classes):
        return True
    return element.tag != "a" and any(
        POPUP_CLASS.search(parent.get("class") or "") for parent in element.iterancestors()
    )


def _no_article(meta: PageMeta, published: datetime | None, reason: str) -> Article:
    return Article(
        title=meta.title,
        text="",
        published=published,
        authors=meta.authors,
        language=meta.declared_language,
        canonical_url=meta.canonical_url,
        description=meta.description,
        reason=reason,
    )


def _mostly_links(tree: HtmlElement) -> bool:
    """A page whose text is mostly link text is an index or a link farm, not an article;
    trafilatura's recall mode would return its links as the "article"."""
    total = len(tree.text_content())
    linked = sum(len(a.text_content()) for a in tree.iter("a"))
    return total > 0 and linked > MAX_PAGE_LINK_SHARE * total


def _doubtful(text: str, expected: list[str]) -> bool:
    """Whether the fast pass probably missed the article, or holds it amid a menu or more."""
    if len(text) < MIN_TEXT_CHARS:
        return True
    expected_chars = sum(len(p) for p in expected)
    return (
        expected_chars >= MIN_TEXT_CHARS
        and len(text) > MAX_BLOAT * expected_chars
        and coverage(text, expected) >= MIN_COVERAGE
    )


def _better(candidate: str, current: str, expected: list[str]) -> bool:
    """Whether the full cascade's text beats the fast pass's: it finds some article where
    the fast pass found next to nothing, or the voted paragraphs in less text."""
    if not current:
        return bool(candidate)
    if len(current) < MIN_TEXT_CHARS:
        return coverage(candidate, expected) > coverage(current, expected)
    return coverage(candidate, expected) >= MIN_COVERAGE and len(candidate) < len(current)


def _body_text(
    tree: HtmlElement,
    titles: tuple[str, ...],
    links: list[str],
    expected: list[str],
    *,
    fast: bool,
) -> str:
    """Trafilatura's article region, completed from the paragraph vote, as clean paragraphs."""
    document = trafilatura.bare_extraction(tree, options=_trafilatura_options(fast))
    body = getattr(document, "body", None)
    if body is None:
        return ""
    lines = add_missing_paragraphs(body_lines(body), expected)
    return render(clean_lines(lines, titles, links))


@functools.cache
def _trafilatura_options(fast: bool) -> Extractor:
    """Built once: trafilatura otherwise re-reads its settings on every call.

    The fast pass runs in recall mode: our line cleaning removes the extra chrome it lets
    through, and that mode skips a whole-page text dump trafilatura makes to decide whether
    to retry. The fallback is trafilatura's full default cascade.
    """
    return Extractor(
        output_format="python",
        fast=fast,
        recall=fast,
        comments=False,
        tables=True,
        with_metadata=False,
    )


def _select(tree: HtmlElement, selectors: str) -> HtmlElement | None:
    """A new document holding only the elements the user's CSS selector picks."""
    from lxml.cssselect import CSSSelector  # only sources configured with selectors need it

    try:
        matches = CSSSelector(selectors)(tree)
    except Exception:  # an invalid selector in config: fall back to the automatic body
        return None
    if not matches:
        return None
    page = etree.Element("html")
    body = etree.SubElement(page, "body")
    for element in matches:
        body.append(element)
    return load_html(etree.tostring(page, encoding="unicode"))
