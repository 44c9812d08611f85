"""Turn trafilatura's body tree into clean paragraphs, dropping what readers see as chrome.

Trafilatura finds the article region well, but inside it keeps lines that are not the
article: the headline again (pages repeat it in the body, some three times), "READ MORE:"
teasers and related-link lists, share and follow prompts, newsletter and cookie notices,
and reporting credits. Each rule here removes one such kind, judged on the line's text and
on how much of it is link text, never on the site it comes from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml.etree import _Element

MAX_BOILERPLATE_CHARS = 220
# Chinese, Japanese and Korean characters: each carries about as much as a short English word
# with its space, so length limits set on English text weigh each as CJK_WEIGHT characters.
CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
CJK_WEIGHT = 3
LINK_DENSE = 0.6  # share of a short line that, as link text, makes it a teaser
MIN_TEASER_CHARS = 12
MAX_LINKS = 1000
# Headings and list items that repeat a link are usually a table of contents or product
# names, not teasers: only paragraphs are judged by their links.
TEASER_KINDS = {"p", "quote"}

# Whole lines that are chrome in any article. Anchored and short-line only, and shaped so
# that a sentence of a story starting with the same word survives: "Share prices fell",
# "Copyright owners may...", "Also on Monday, ...", "By continuing the talks, ..." (tests
# pin these).
BOILERPLATE_LINE = re.compile(
    r"""^(?:
        (?:read|see|watch|view|show|load|click|tap)\s+(?:more|also|here|next|full|all|the\ full)\b
      | (?:related|more|also|recommended|trending|popular|most\ read)
            (?:\s+(?:articles?|stories|posts?|links?|content|news|reading|coverage
                   |on\ \S+|in\ [\w ]+))?\s*[:.…]*$
      | also\ on\ \S+\.\w+ | (?:more\ (?:on|from)\ [^.!?]{0,60}$)
      | (?:related:|related\ \w+:|read\ next|up\ next|don'?t\ miss|must\ read)
      | you\ (?:may|might)\ (?:also\ )?(?:like|enjoy|be\ interested)
      | (?:share|tweet|e-?mail|print|pin|save)
            (?:\s+(?:this|on|via|with|to|the|article|story|post|page|it|link|a\ friend|friends
                    |facebook|twitter|linkedin|whatsapp|e-?mail))*\s*[:!.…]?$
      | follow\ (?:us|me|@) | (?:like|join)\ us\b
      | (?:follow|like|join)\ \w+\ on\ (?:twitter|facebook|instagram|linkedin|youtube)
      | sign\ up\b | subscribe\b | get\ (?:the|our)\ (?:\w+\ )?newsletter
      | (?:click|tap)\ here\b
      | copyright\s*(?:©|\(c\)|\d{4}) | © | \(c\)\s*\d{4}
      | (?:advertisement|sponsored(?:\ content)?|ad\ feedback)\s*$ | skip\ (?:to|ad)\b
      | (?:comments?|\d+\ comments?|leave\ a\ (?:comment|reply)|add\ a\ comment|show\ comments?)\s*$
      | (?:by\ continuing\ to\ (?:use|browse|visit)|we\ use\ cookies
         |this\ (?:web)?site\ uses\ cookies|accept(?:\ all)?\ cookies
         |(?:the\ )?cookie\ (?:policy|settings|notice|preferences))
      | (?:close|accept|ok|got\ it|dismiss)\s*$
      | (?:whatsapp|facebook|twitter|linkedin|reddit|telegram|pinterest|e-?mail|messenger)
            (?:\s+(?:chat|share|it))?\s*$
      | (?:tags?|filed\ under|categories|topics)\s*:
      | (?:image|photo|picture|video)\s*(?:credit|source|courtesy)?\s*:
      | this\ (?:article|story)\ (?:has\ been\ sent|was\ (?:originally\ )?published)
      | an\ error\ has\ occurred
      | order\ reprints | print\ article
      | (?:分享到|分享至|分享\s*[:：]|扫一扫|责任编辑|编辑\s*[:：]|来源\s*[:：]|【?\s*打印\s*】?\s*$
         |打印本页|关闭窗口|上一篇|下一篇|相关(?:阅读|新闻|文章|链接|推荐)\s*[:：]?\s*$|版权所有
         |【\s*(?:打印|关闭|字体|纠错))
    )""",
    re.IGNORECASE | re.VERBOSE,
)
MAX_DATELINE_CHARS = 64
# Credits (at the start of a line, in their "X by Name; Y by Name" shape) and datelines
# (short lines that are a date, or "Updated: <date>").
CREDIT = re.compile(
    r"""(?:
        (?:additional\ )?(?:reporting|writing|compiled|editing)\ by\ [^;.]*(?:;|$)
      | (?:write\ to|reach\ the\ reporters?|contributing:|associated\ press\ writers?)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
DATELINE = re.compile(
    r"""(?:
        (?:first\ |last\ )?(?:updated|published|posted|modified)\b\s*(?:on|at)?\s*:?\s*
            (?:\w+\.?,?\s+){0,2}\d
      | (?:(?:mon|tue|wed|thu|fri|sat|sun)\w*\.?,?\s+)?(?:\d{1,2}\s+)?
            (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?
            \s+\d{4}\b(?!\s+\w+\s+\w+\s+\w+\s+\w+)
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Promotions anywhere in a short line. Searched only when a cue word is present: an
# unanchored search of this pattern costs tens of microseconds per line.
PROMOTION = re.compile(
    r"""(?:
        delivered\ (?:straight\ )?to\ your\ inbox | sign\ up\ for\ (?:our|the)\ [\w\ ]*newsletter
      | subscribe\ to\ (?:our|the)\ [\w\ ]*(?:newsletter|channel)
      | follow\ (?:us|\w+)\ on\ (?:twitter|facebook|instagram)
      | for\ your\ personal,?\ non-commercial\ use | all\ rights\ reserved
      | share\ (?:it|this)\ with\ a\ friend | like\ this\ story\?
      | contributed\ (?:to\ )?(?:this\ )?report(?:ing)?\b[^.]*\.?$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
PROMOTION_CUES = (
    "inbox",
    "newsletter",
    "subscribe",
    "follow",
    "non-commercial",
    "reserved",
    "friend",
    "story?",
    "contributed",
)
INLINE_TAGS = {"hi", "ref", "del", "graphic", "span", "b", "i", "em", "strong", "a"}
RULE_LINE = re.compile(r"^[\W_]*$")  # "___", "* * *": separators, no words
WORD = re.compile(r"\w+")


@dataclass
class Line:
    """One line of the article as the reader will see it, and where it came from."""

    text: str
    kind: str  # trafilatura's element: p, head, item, quote, row, ...
    block: int  # lines of one block are joined by "\n", blocks by "\n\n"

    @functools.cached_property
    def words(self) -> str:
        """The text as :func:`normalized` words, computed once: several rules compare them."""
        return normalized(self.text)


def body_lines(body: _Element) -> list[Line]:
    """Lines of trafilatura's body, split at its <lb/>, list items and table rows."""
    lines: list[Line] = []
    block = 0

    def loose(text: str | None) -> None:
        nonlocal block
        text = " ".join((text or "").split())
        if text:  # text between blocks, outside any element: a paragraph of its own
            lines.append(Line(text, "p", block))
            block += 1

    loose(body.text)
    for element in body:
        kind = str(element.tag)
        if kind in ("list", "table"):
            rows = element.iter("item") if kind == "list" else element.iter("row")
            for row in rows:
                lines.extend(_split(row, "item" if kind == "list" else "row", block))
        else:
            lines.extend(_split(element, kind, block))
        block += 1
        loose(element.tail)
    return lines


# Read on their own by body_lines (list.iter("item"), table.iter("row")), so skipped when
# met nested inside an item or a row.
ITERATED_APART = {"item": {"list"}, "row": {"table"}}


def _split(element: _Element, kind: str, block: int) -> Iterator[Line]:
    """Text of one element cut at <lb/>; nested lists are read as their own items."""
    parts: list[str] = []
    skipped = ITERATED_APART.get(kind, set())

    def walk(node: _Element) -> Iterator[Line]:
        nonlocal parts
        if node.text:
            parts.append(node.text)
        for child in node:
            if child.tag == "lb":
                yield from flush()
            elif child.tag in skipped:
                pass
            elif child.tag in INLINE_TAGS:
                yield from walk(child)
            else:  # a block inside a block: keep its words apart from the neighbours'
                parts.append(" ")
                yield from walk(child)
                parts.append(" ")
            if child.tail:
                parts.append(child.tail)

    def flush() -> Iterator[Line]:
        nonlocal parts
        text = " ".join("".join(parts).split())
        if text:
            yield Line(text, kind, block)
        parts = []

    yield from walk(element)
    yield from flush()


def link_texts(tree: _Element) -> list[str]:
    """Normalized texts of the page's links long enough to be headlines of other pages."""
    raw = {text for a in tree.iter("a") if len(text := "".join(a.itertext())) >= MIN_TEASER_CHARS}
    found = {normalized(text) for text in raw}
    longest = sorted((t for t in found if len(t) >= MIN_TEASER_CHARS), key=len, reverse=True)
    return longest[:MAX_LINKS]  # bounds the work on link farms; teasers are the long ones


def is_teaser(line: Line, links: list[str]) -> bool:
    """A short line that is mostly the text of a link: "READ MORE: <headline>" and the like.

    Long paragraphs that happen to be wrapped in a link (deal pages do this) are kept.
    """
    if len(line.text) > MAX_BOILERPLATE_CHARS:
        return False
    words = line.words
    if not words:
        return False
    for link in links:
        if len(link) < LINK_DENSE * len(words):
            break  # sorted by length: no shorter link can cover enough
        if link in words:
            return True
    return False


def normalized(text: str) -> str:
    return " ".join(WORD.findall(text.casefold()))


def is_title_line(line: Line, titles: Iterable[str]) -> bool:
    """The headline repeated in the body, whole or as the part before a site name."""
    text = line.words
    if not text:
        return False
    for title in titles:
        if text == title:
            return True
        if line.kind == "head" and len(text) > 20 and (title.startswith(text) or text in title):
            return True
    return False


def text_weight(text: str) -> int:
    """The length of ``text`` in English-character terms (see ``CJK_WEIGHT``): an 80-character
    Chinese paragraph is a paragraph, not a short line of chrome."""
    return len(text) + (CJK_WEIGHT - 1) * len(CJK_CHAR.findall(text))


def is_boilerplate(line: Line) -> bool:
    """Chrome by its wording, or for having no words at all."""
    text = line.text
    if RULE_LINE.match(text):
        return True
    if len(text) > MAX_BOILERPLATE_CHARS or text_weight(text) > MAX_BOILERPLATE_CHARS:
        return False  # (the weight is never less than the length: most lines stop at len)
    stripped = text.lstrip("-–—•*|>[( ")
    if BOILERPLATE_LINE.match(stripped) or CREDIT.match(stripped):
        return True
    if len(text) <= MAX_DATELINE_CHARS and DATELINE.match(stripped):
        return True
    lowered = text.lower()
    return any(cue in lowered for cue in PROMOTION_CUES) and bool(PROMOTION.search(text))


def clean_lines(lines: list[Line], titles: Iterable[str], links: list[str]) -> list[Line]:
    """Drop title repeats, boilerplate lines and link teasers, keeping the order of the rest.

    A paragraph is a teaser when it is mostly a link's text; a list item only when every
    item of its list is, since then the list is a list of other stories ("Related").
    """
    normalized_titles = {normalized(t) for t in titles if normalized(t)}
    teaser = {
        id(line): is_teaser(line, links)
        for line in lines
        if line.kind in TEASER_KINDS or line.kind == "item"
    }
    items_by_list: dict[int, list[Line]] = {}
    for line in lines:
        if line.kind == "item":
            items_by_list.setdefault(line.block, []).append(line)
    link_lists = {
        block for block, items in items_by_list.items() if all(teaser[id(i)] for i in items)
    }
    return [
        line
        for line in lines
        if not is_title_line(line, normalized_titles)
        and not is_boilerplate(line)
        and not (line.kind in TEASER_KINDS and teaser[id(line)])
        and not (line.kind == "item" and line.block in link_lists)
    ]


def render(lines: list[Line]) -> str:
    """Paragraphs separated by blank lines; lines of a list or table stay together."""
    blocks: list[list[str]] = []
    previous = None
    for line in lines:
        if line.block != previous or line.kind not in ("item", "row"):
            blocks.append([])
        blocks[-1].append(line.text)
        previous = line.block
    return "\n\n".join("\n".join(block) for block in blocks)


MIN_DENSE_PARAGRAPH_CHARS = 120
MAX_PARAGRAPH_LINK_SHARE = 0.3
ANCESTOR_WEIGHTS = (1.0, 0.5, 0.25)  # parent, grandparent, great-grandparent
SIBLING_CHUNK_LEVELS = 3


def dense_paragraphs(tree: _Element) -> list[str]:
    """A cheap second opinion on where the article is, readability-style.

    Long ``<p>`` with little link text vote for their parent (and, less, for the two
    ancestors above it, so an article split over sibling blocks still wins as a whole);
    the paragraphs under the winner are what any extraction should contain.
    """
    paragraphs: list[tuple[_Element, str]] = []
    votes: dict[_Element, float] = {}
    for paragraph in tree.iter("p"):
        text = " ".join("".join(paragraph.itertext()).split())
        too_short = len(text) < MIN_DENSE_PARAGRAPH_CHARS and (
            text_weight(text) < MIN_DENSE_PARAGRAPH_CHARS
        )
        if too_short or BOILERPLATE_LINE.match(text):
            continue
        linked = sum(len("".join(a.itertext())) for a in paragraph.iter("a"))
        if linked > MAX_PARAGRAPH_LINK_SHARE * len(text):
            continue
        paragraphs.append((paragraph, text))
        ancestor = paragraph.getparent()
        for weight in ANCESTOR_WEIGHTS:
            if ancestor is None:
                break
            votes[ancestor] = votes.get(ancestor, 0.0) + weight * len(text)
            ancestor = ancestor.getparent()
    if not votes:
        return []
    winner = max(votes, key=votes.__getitem__)
    # An article cut into chunks (between ads, around embeds) repeats its container's
    # markup: blocks with the winner's tag and class near it are the same article.
    scope = winner
    for _ in range(SIBLING_CHUNK_LEVELS):
        if scope.getparent() is None:
            break
        scope = scope.getparent()
    signature = (winner.tag, winner.get("class"))

    def in_article(paragraph: _Element) -> bool:
        ancestors = list(paragraph.iterancestors())
        if winner in ancestors:
            return True
        parent = paragraph.getparent()
        return (
            signature[1] is not None
            and parent is not None
            and (parent.tag, parent.get("class")) == signature
            and scope in ancestors
        )

    return [text for paragraph, text in paragraphs if in_article(paragraph)]


def coverage(text: str, paragraphs: list[str]) -> float:
    """Share of the paragraphs' characters whose opening words appear in ``text``."""
    total = sum(len(p) for p in paragraphs)
    if not total:
        return 1.0
    if len(paragraphs) > MAX_SAMPLED_PARAGRAPHS:  # an estimate: keep it linear on huge pages
        step = len(paragraphs) / MAX_SAMPLED_PARAGRAPHS
        paragraphs = [paragraphs[int(i * step)] for i in range(MAX_SAMPLED_PARAGRAPHS)]
        total = sum(len(p) for p in paragraphs)
    haystack = normalized(text)
    found = sum(len(p) for p in paragraphs if normalized(p[:80]) in haystack)
    return found / total


MIN_MISSING_PARAGRAPHS = 2
MAX_COMPARISONS = 200_000  # paragraphs x lines; past it (huge pages) nothing is put back
MAX_SAMPLED_PARAGRAPHS = 200
MIN_MISSING_SHARE = 0.3


def add_missing_paragraphs(lines: list[Line], expected: list[str]) -> list[Line]:
    """Append voted paragraphs that follow the last one the extractor kept.

    Some pages split one article over sibling blocks (between ads, or after a fold) and
    trafilatura's fast pass keeps only the first. When its lines hold the start of the
    voted paragraphs but a good share of them after that is missing, they are put back
    after the line holding the last paragraph found. Paragraphs it left out in the middle
    were left out on purpose (captions, embeds) and stay out.
    """
    if not expected or not lines or len(expected) * len(lines) > MAX_COMPARISONS:
        return lines
    line_texts = [line.words for line in lines]
    last_found, last_line = -1, -1
    for index, paragraph in enumerate(expected):
        key = normalized(paragraph[:80])
        for line_index, text in enumerate(line_texts):
            if key and key in text:
                last_found, last_line = index, line_index
                break
    tail = expected[last_found + 1 :]
    if (
        last_found < 0
        or len(tail) < MIN_MISSING_PARAGRAPHS
        or sum(len(p) for p in tail) < MIN_MISSING_SHARE * sum(len(p) for p in expected)
    ):
        return lines
    next_block = max(line.block for line in lines) + 1
    added = [Line(text, "p", next_block + offset) for offset, text in enumerate(tail)]
    return lines[: last_line + 1] + added + lines[last_line + 1 :]
