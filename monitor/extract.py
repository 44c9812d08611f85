"""Article extraction: turn one fetched HTML page into an :class:`Article`.

Every later stage (dedupe, matching, digests) reads ``Article.text``, so this stage
promises clean paragraphs without navigation, share buttons or cookie notices, and it
never raises: bad input yields an empty text and a ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import trafilatura

MAX_HTML_BYTES = 10 * 1024 * 1024


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


def extract(html: bytes | str, url: str | None = None, *, selectors: str | None = None) -> Article:
    """Extract the main article of ``html``. Deterministic, no network, never raises."""
    if not html:
        return _empty("empty input")
    if len(html) > MAX_HTML_BYTES:
        return _empty("page too large")
    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    except Exception as exc:  # a broken page must not stop the pipeline
        return _empty(f"extraction failed: {exc.__class__.__name__}")
    if doc is None or not doc.text:
        return _empty("no article found")
    published = None
    if doc.date:
        try:
            published = datetime.fromisoformat(doc.date)
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
        except ValueError:
            published = None
    text = "\n\n".join(line.strip() for line in doc.text.splitlines() if line.strip())
    return Article(
        title=doc.title or "",
        text=text,
        published=published,
        authors=[a.strip() for a in (doc.author or "").split(";") if a.strip()],
        language=doc.language,
        canonical_url=doc.url,
        description=doc.description,
    )
