"""Deduplication: one story per piece of news, however many sites republish it.

Three layers, cheapest first:

1. **URL**: ``canonical_url`` folds scheme/host case, default ports, fragments, trailing
   slashes and tracking parameters (courlan), and prefers a page's declared
   ``rel=canonical``/``og:url`` when it is on the same registrable domain.
2. **Exact content**: ``content_hash`` of the text with case, whitespace and punctuation
   folded, looked up through the ``articles_content_hash`` index.
3. **Near-duplicates**: MinHash over word 5-gram shingles of the article's *body* (site
   chrome stripped by line shape, see ``monitor.dedupe_text``), banded for LSH: one
   signature of the whole body, one of its lead, and one key of its first words exactly,
   because republishers trim endings and edit but keep the lead. The nine band keys live
   in ``article_bands`` (indexed), so nothing is rebuilt on restart and memory does not
   grow with the store. They are filed under the week their article was first seen, and
   a lookup searches only the last ``window_days`` days (``[dedupe] window_days``,
   default 14): copies of a story appear within hours or days, and a near copy of a
   months-old story is news again. So an article's keys land in the small region of
   this week, and a lookup's work does not grow with the store.
   Candidates are confirmed on the bodies: ``threshold`` (``[dedupe] threshold``, default
   0.5) is the share of the shorter body's shingles found in the longer one, so a copy
   abridged to its first 60% scores ~1; and the overlap must start at both leads or
   cover half the longer body, so an unrelated article quoting a few sentences does not
   join.

The URL and exact-content layers have no window: the same page, or the same text, joins
its story at any age.

A duplicate joins its original's story; the story's primary article is the first seen
unless an official source (``[dedupe] official_domains``) carries the story. Stories are
never merged: an article that matches two stories joins the closer one.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
from courlan import extract_domain, normalize_url

from monitor.clock import now_iso
from monitor.dedupe_text import (
    SHINGLE,
    band_keys,
    body_shingles,
    body_tokens,
    minhash,
    shingle_sequence,
    similarity,
    words,
)
from monitor.store import ARTICLE_DAY_SQL, BAND_WEEK_DAYS, Store, size_page_cache

__all__ = ["Assignment", "Deduper", "canonical_url", "content_hash", "normalize_text"]

# -- layer 1: URLs -----------------------------------------------------------------------

_EXTRA_TRACKERS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|mc_cid|mc_eid|_hsenc|_hsmi"
    r"|igshid|mkt_tok|oly_anon_id|oly_enc_id|vero_id|wt\.mc_id|ref_src|cmpid|s_cid)$",
    re.IGNORECASE,
)


def _normalize(url: str) -> str:
    normalized = normalize_url(url.strip(), trailing_slash=False)
    parts = urlsplit(normalized)
    if parts.query:
        kept = [
            pair
            for pair in parts.query.split("&")
            if pair and not _EXTRA_TRACKERS.match(pair.split("=", 1)[0])
        ]
        query = "&".join(kept)
    else:
        query = ""
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    rebuilt = f"{parts.scheme}://{parts.netloc}{path}"
    return f"{rebuilt}?{query}" if query else rebuilt


def _site(url: str) -> str:
    """The registrable domain (``news.bbc.co.uk`` -> ``bbc.co.uk``), from the public suffix
    list; for hosts it does not know (IPs, test TLDs) the host without ``www.``/``m.``."""
    domain = extract_domain(url)
    if domain:
        return domain
    host = (urlsplit(url).hostname or "").lower()
    return re.sub(r"^(?:www\d*|m|amp|mobile)\.", "", host)


def canonical_url(url: str, declared: str | None = None) -> str:
    """The URL that identifies this page, for comparing copies of the same page.

    ``declared`` (the page's ``rel=canonical`` or ``og:url``) wins when it is an absolute
    http(s) URL on the same site: pages often declare a foreign canonical by mistake
    (a template's default, a syndication partner), and trusting it would merge unrelated
    pages.
    """
    try:
        own = _normalize(url)
    except ValueError:
        return url.strip()
    if declared:
        try:
            candidate = _normalize(declared)
        except ValueError:
            return own
        parts = urlsplit(candidate)
        if parts.scheme in ("http", "https") and parts.netloc and _site(candidate) == _site(own):
            return candidate
    return own


# -- layer 2: exact content --------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Text with case, whitespace and punctuation folded away."""
    return " ".join(words(text))


def content_hash(text: str) -> str:
    """SHA-256 (hex) of ``normalize_text(text)``."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


# -- layer 3: near-duplicates ------------------------------------------------------------

#: Every band key is one row in ``article_bands``, and each row is a random B-tree page
#: dirtied by the article's commit and written back at the next checkpoint: at a million
#: stored articles that write-back (its fsync) is the stage's largest cost, so there are
#: few keys, chosen for what republishing does to a text.
#:
#: Whole-body signature: BODY_BANDS bands of BODY_ROWS MinHash values. A pair at Jaccard
#: 0.8 (an edited or wrapped copy) shares a band with probability 0.98, at 0.6 0.83;
#: unrelated articles, which share at most a few stock phrases, practically never.
BODY_BANDS, BODY_ROWS = 4, 2
#: Lead signature over the body's first LEAD_WORDS words: republishers trim endings and
#: add chrome, but keep the lead, so a copy abridged to a fifth still shares it.
LEAD_WORDS = 60
LEAD_BANDS, LEAD_ROWS = 4, 2
_LEAD_SALT = 1 << 20
#: One key of the body's first OPENING_WORDS words, exactly: a copy abridged or edited
#: past its first sentence still starts with them.
OPENING_WORDS = 8
_OPENING_SALT = 1 << 21
#: Rows in ``article_bands`` for an article of OPENING_WORDS words or more.
KEYS_PER_ARTICLE = BODY_BANDS + LEAD_BANDS + 1
#: Candidates checked on their text, best-sharing first.
MAX_CANDIDATES = 12
#: A text this short (in words, or in body shingles) is as likely a paywall notice, a
#: cookie wall or an error page as a story, and those are identical across unrelated
#: articles; such a match must also have the same title.
SHORT_WORDS = 25
SHORT_SHINGLES = 20
#: Days back (before the article's own first-seen day) that near-duplicate lookups search.
WINDOW_DAYS = 14
#: Assignments between two re-sizings of the page cache (cheap: one MAX(id) lookup).
RESIZE_CACHE_EVERY = 10_000
#: Body shingles kept in memory for recently assigned articles (about 6 KB each).
RECENT_SHINGLES = 2048


@dataclass(frozen=True)
class Fingerprint:
    """What the near-duplicate layer knows about one text."""

    shingles: np.ndarray  # body shingle hashes in text order
    keys: list[int]  # LSH band keys (body bands, then lead bands)


def fingerprint(text: str) -> Fingerprint:
    """Body shingles and band keys of a text; no keys for an empty body."""
    tokens = body_tokens(text)
    shingles = shingle_sequence(tokens)
    if shingles.size == 0:
        return Fingerprint(shingles, [])
    body = minhash(shingles, BODY_BANDS * BODY_ROWS)
    lead_shingles = shingles[: max(1, LEAD_WORDS - SHINGLE + 1)]
    lead = minhash(lead_shingles, LEAD_BANDS * LEAD_ROWS, offset=BODY_BANDS * BODY_ROWS)
    keys = band_keys(body, BODY_ROWS, 0) + band_keys(lead, LEAD_ROWS, _LEAD_SALT)
    if tokens.size >= OPENING_WORDS:
        keys += band_keys(tokens[:OPENING_WORDS], OPENING_WORDS, _OPENING_SALT)
    return Fingerprint(shingles, keys)


# -- the stage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    article_id: int
    story_id: int
    method: str
    similarity: float | None


@dataclass(frozen=True)
class Assignment:
    """Where an article landed. ``is_new_story`` tells the pipeline to run matching."""

    story_id: int
    is_new_story: bool
    duplicate_of: int | None
    method: str  # "new" | "url" | "hash" | "near"
    similarity: float | None
    primary_changed: bool


def _same_title(a: str | None, b: str | None) -> bool:
    return bool(a and b) and normalize_text(a or "") == normalize_text(b or "")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class Deduper:
    """Assigns stored articles to stories. State lives only in the store."""

    def __init__(
        self,
        store: Store,
        *,
        official_domains: Sequence[str] = (),
        threshold: float = 0.5,
        window_days: int = WINDOW_DAYS,
    ) -> None:
        if window_days < 0:
            raise ValueError(f"window_days must be >= 0, not {window_days}")
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.official_domains = tuple(d.lower().lstrip(".") for d in official_domains)
        self.threshold = threshold
        self.window_days = window_days
        # Band-key lookups need a page cache that grows with the store (see
        # size_page_cache); a long-running daemon re-sizes it as articles accumulate.
        self._assigned_since_sizing = 0
        # Body shingles of recently assigned articles: copies of a story arrive within
        # hours, so their candidates are mostly here and need no re-parsing. Bounded.
        # Keyed by id *and* content hash: a rolled-back article's id can be reused.
        self._recent: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()

    def _remember(self, key: tuple[int, str], shingles: np.ndarray) -> None:
        self._recent[key] = shingles
        if len(self._recent) > RECENT_SHINGLES:
            self._recent.popitem(last=False)

    def _shingles_of(self, other: sqlite3.Row) -> np.ndarray:
        key = (other["id"], other["content_hash"] or "")
        shingles = self._recent.get(key)
        if shingles is None:
            text = self.conn.execute(
                "SELECT text FROM articles WHERE id = ?", (other["id"],)
            ).fetchone()[0]
            shingles = body_shingles(text or "")
            self._remember(key, shingles)
        return shingles

    def is_official(self, url: str) -> bool:
        """Whether the URL's host is an official domain or a subdomain of one."""
        host = _host(url)
        return any(host == d or host.endswith("." + d) for d in self.official_domains)

    def assign(self, article_id: int) -> Assignment:
        """Find the article's story (url, then hash, then near), record it, index the bands.

        Runs in the caller's transaction when one is open, else in its own, so the
        article's story, the story's counts and the band keys land together. Assigning
        an article that already has a story returns that story and changes nothing.
        """
        self._assigned_since_sizing += 1
        if self._assigned_since_sizing >= RESIZE_CACHE_EVERY:
            self._assigned_since_sizing = 0
            size_page_cache(self.conn)
        if self.conn.in_transaction:
            return self._assign(article_id)
        with self.store.transaction():
            return self._assign(article_id)

    def _assign(self, article_id: int) -> Assignment:
        row = self.conn.execute(
            "SELECT id, url, canonical_url, source_id, title, text, content_hash, story_id,"
            f" dedupe_method, similarity, {ARTICLE_DAY_SQL.format(column='fetched_at')} AS day"
            " FROM articles WHERE id = ?",
            (article_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no article with id {article_id}")
        if row["story_id"] is not None:
            return Assignment(
                row["story_id"],
                False,
                None,
                row["dedupe_method"] or "new",
                row["similarity"],
                False,
            )
        text = row["text"] or ""
        digest = row["content_hash"] or content_hash(text)

        match = self._same_url(row) or self._same_hash(row, digest)
        sketch = None if match is not None and match.method == "hash" else fingerprint(text)
        if match is None and sketch is not None and sketch.keys:
            match = self._near(row, sketch)
        if sketch is not None and sketch.keys:
            self._remember((article_id, digest), sketch.shingles)
            day = row["day"]
            week = day // BAND_WEEK_DAYS
            self.conn.executemany(
                "INSERT OR IGNORE INTO article_bands (week, band_key, article_id, day)"
                " VALUES (?, ?, ?, ?)",
                [(week, key, article_id, day) for key in sketch.keys],
            )
        return self._record(row, digest, match)

    def _same_url(self, row: sqlite3.Row) -> _Match | None:
        hit = self.conn.execute(
            "SELECT id, story_id FROM articles WHERE canonical_url = ? AND id != ?"
            " AND story_id IS NOT NULL ORDER BY id LIMIT 1",
            (row["canonical_url"], row["id"]),
        ).fetchone()
        return None if hit is None else _Match(hit[0], hit[1], "url", None)

    def _same_hash(self, row: sqlite3.Row, digest: str) -> _Match | None:
        text = row["text"] or ""
        if not text.strip():
            return None  # every empty page has the same hash; that is not a story
        hits = self.conn.execute(
            "SELECT id, story_id, title FROM articles WHERE content_hash = ? AND id != ?"
            " AND story_id IS NOT NULL ORDER BY id LIMIT 20",
            (digest, row["id"]),
        ).fetchall()
        short = bool(hits) and len(text.split(maxsplit=SHORT_WORDS)) <= SHORT_WORDS - 1
        for hit in hits:
            if not short or _same_title(hit["title"], row["title"]):
                return _Match(hit["id"], hit["story_id"], "hash", 1.0)
        return None

    def _near(self, row: sqlite3.Row, sketch: Fingerprint) -> _Match | None:
        """LSH candidates from ``article_bands`` of the window's days, confirmed on their
        bodies."""
        # One statement: a seek per (week, key) pair, all rows of the window's days
        # counted, so a key shared by very many articles (a stock opening) cannot hide the
        # original found through the others; the window bounds how many rows that can be.
        # The weeks are integers computed here, so they are written into the SQL (one
        # statement text a week, which the statement cache keeps).
        day = int(row["day"])
        first = day - self.window_days
        weeks = ",".join(
            str(w) for w in range(day // BAND_WEEK_DAYS, first // BAND_WEEK_DAYS - 1, -1)
        )
        candidates = self.conn.execute(
            "SELECT article_id, count(*) AS shared FROM article_bands"
            f" WHERE week IN ({weeks}) AND band_key IN ({','.join('?' * len(sketch.keys))})"
            " AND day BETWEEN ? AND ? AND article_id != ? GROUP BY article_id"
            " ORDER BY shared DESC, article_id DESC LIMIT ?",
            (*sketch.keys, first, day, row["id"], MAX_CANDIDATES),
        ).fetchall()
        if not candidates:
            return None
        ids = [candidate[0] for candidate in candidates]
        rows = {
            other["id"]: other
            for other in self.conn.execute(
                "SELECT id, story_id, title, content_hash FROM articles"
                f" WHERE id IN ({','.join('?' * len(ids))}) AND story_id IS NOT NULL",
                ids,
            )
        }
        best: _Match | None = None
        checked_stories: set[int] = set()
        for candidate_id in ids:
            other = rows.get(candidate_id)
            if other is None or other["story_id"] in checked_stories:
                continue
            shingles = self._shingles_of(other)
            if min(shingles.size, sketch.shingles.size) < SHORT_SHINGLES and not _same_title(
                other["title"], row["title"]
            ):
                continue
            score = similarity(sketch.shingles, shingles)
            if score.is_duplicate(self.threshold):
                checked_stories.add(other["story_id"])
                value = round(score.containment, 4)
                if best is None or value > (best.similarity or 0.0):
                    best = _Match(candidate_id, other["story_id"], "near", value)
        return best

    def _record(self, row: sqlite3.Row, digest: str, match: _Match | None) -> Assignment:
        article_id = row["id"]
        stamp = now_iso()
        if match is None:
            cursor = self.conn.execute(
                "INSERT INTO stories (primary_article_id, title, first_seen_at, updated_at,"
                " article_count, source_count) VALUES (?, ?, ?, ?, 1, 1)",
                (article_id, row["title"] or "", stamp, stamp),
            )
            story_id = int(cursor.lastrowid or 0)
            self._set_article(row, story_id, digest, "new", None)
            return Assignment(story_id, True, None, "new", None, False)

        story_id = match.story_id
        self._set_article(row, story_id, digest, match.method, match.similarity)
        primary_changed = False
        if self.is_official(row["url"]):
            primary_url = self.conn.execute(
                "SELECT a.url FROM stories s JOIN articles a ON a.id = s.primary_article_id"
                " WHERE s.id = ?",
                (story_id,),
            ).fetchone()
            if primary_url is None or not self.is_official(primary_url[0]):
                self.conn.execute(
                    "UPDATE stories SET primary_article_id = ?, title = ? WHERE id = ?",
                    (article_id, row["title"] or "", story_id),
                )
                primary_changed = True
        # Recounted rather than incremented: stories are small, and a recount cannot drift.
        self.conn.execute(
            "UPDATE stories SET updated_at = ?,"
            " article_count = (SELECT count(*) FROM articles WHERE story_id = ?),"
            " source_count = (SELECT count(DISTINCT coalesce(source_id, -id)) FROM articles"
            "                 WHERE story_id = ?) WHERE id = ?",
            (stamp, story_id, story_id, story_id),
        )
        return Assignment(
            story_id, False, match.article_id, match.method, match.similarity, primary_changed
        )

    def _set_article(
        self,
        row: sqlite3.Row,
        story_id: int,
        digest: str,
        method: str,
        similarity: float | None,
    ) -> None:
        # content_hash only when it was not stored already: setting an indexed column,
        # even to its value, rewrites its entry in articles_content_hash, a random page
        # for the next checkpoint to write back.
        if row["content_hash"] == digest:
            self.conn.execute(
                "UPDATE articles SET story_id = ?, dedupe_method = ?, similarity = ? WHERE id = ?",
                (story_id, method, similarity, row["id"]),
            )
        else:
            self.conn.execute(
                "UPDATE articles SET story_id = ?, content_hash = ?, dedupe_method = ?,"
                " similarity = ? WHERE id = ?",
                (story_id, digest, method, similarity, row["id"]),
            )
