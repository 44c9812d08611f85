"""Deduplication: one story per piece of news, however many sites republish it.

Three layers, cheapest first:

1. **URL**: ``canonical_url`` folds scheme/host case, default ports, fragments, trailing
   slashes and tracking parameters (courlan), and prefers a page's declared
   ``rel=canonical``/``og:url`` when it is plausible.
2. **Exact content**: ``content_hash`` of the text with case, whitespace and punctuation
   folded, looked up through the ``articles_content_hash`` index.
3. **Near-duplicates**: MinHash over word shingles, banded for LSH; band keys live in
   ``article_bands`` (indexed), so nothing is rebuilt on restart and memory does not grow
   with the store. Candidates are confirmed on the bodies themselves.

A duplicate joins its original's story; the story's primary article is the first seen
unless an official source (``[dedupe] official_domains``) carries the story.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
from courlan import normalize_url

from monitor.clock import now_iso
from monitor.store import Store

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


def _registrable_tail(host: str) -> str:
    labels = host.lower().split(":")[0].split(".")
    return ".".join(labels[-2:])


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
        cparts, oparts = urlsplit(candidate), urlsplit(own)
        if (
            cparts.scheme in ("http", "https")
            and cparts.netloc
            and _registrable_tail(cparts.netloc) == _registrable_tail(oparts.netloc)
        ):
            return candidate
    return own


# -- layer 2: exact content --------------------------------------------------------------

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Case- and accent-folded word tokens: what "the same text" means here."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalize_text(text: str) -> str:
    """Text with case, whitespace and punctuation folded away."""
    return " ".join(words(text))


def content_hash(text: str) -> str:
    """SHA-256 (hex) of ``normalize_text(text)``."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


# -- layer 3: near-duplicates ------------------------------------------------------------

SHINGLE = 5
NUM_PERM = 128
BANDS = 32
ROWS = NUM_PERM // BANDS
_MERSENNE = np.uint64((1 << 61) - 1)
_rng = np.random.RandomState(1)
_PERM_A = _rng.randint(1, (1 << 61) - 1, size=NUM_PERM, dtype=np.uint64)
_PERM_B = _rng.randint(0, (1 << 61) - 1, size=NUM_PERM, dtype=np.uint64)
_BAND_MIX = _rng.randint(1, (1 << 63) - 1, size=(ROWS,), dtype=np.uint64) | np.uint64(1)
_BAND_SALT = _rng.randint(1, (1 << 63) - 1, size=(BANDS,), dtype=np.uint64)
_SHINGLE_MIX = np.array([pow(1_000_003, k, 1 << 64) for k in range(SHINGLE)], dtype=np.uint64)


def shingle_hashes(tokens: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of the word ``SHINGLE``-grams (the whole text if shorter)."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    word_hashes = np.fromiter(
        (zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64, count=len(tokens)
    )
    if len(tokens) < SHINGLE:
        return np.array([int((word_hashes * _SHINGLE_MIX[: len(tokens)]).sum())], np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(word_hashes, SHINGLE)
    with np.errstate(over="ignore"):
        return np.unique((windows * _SHINGLE_MIX).sum(axis=1))


def minhash(shingles: np.ndarray) -> np.ndarray:
    """``NUM_PERM`` minimum values of universal hashes over the shingle set."""
    if shingles.size == 0:
        return np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    h = (shingles & np.uint64(0xFFFFFFFF))[:, None]
    with np.errstate(over="ignore"):
        values = (h * _PERM_A + _PERM_B) % _MERSENNE
    return values.min(axis=0)


def band_keys(signature: np.ndarray) -> list[int]:
    """One signed 64-bit key per band: a hash of (band index, the band's values)."""
    with np.errstate(over="ignore"):
        mixed = (signature.reshape(BANDS, ROWS) * _BAND_MIX).sum(axis=1) ^ _BAND_SALT
        mixed = mixed * np.uint64(0x9E3779B97F4A7C15)
    return [int(k) for k in mixed.view(np.int64)]


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller shingle set found in the other: robust to abridging."""
    if a.size == 0 or b.size == 0:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / min(a.size, b.size)


# -- the stage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """Where an article landed. ``is_new_story`` tells the pipeline to run matching."""

    story_id: int
    is_new_story: bool
    duplicate_of: int | None
    method: str  # "new" | "url" | "hash" | "near"
    similarity: float | None
    primary_changed: bool


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class Deduper:
    """Assigns stored articles to stories. State lives only in the store."""

    def __init__(
        self, store: Store, *, official_domains: Sequence[str] = (), threshold: float = 0.5
    ) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.official_domains = tuple(d.lower().lstrip(".") for d in official_domains)
        self.threshold = threshold

    def is_official(self, url: str) -> bool:
        """Whether the URL's host is an official domain or a subdomain of one."""
        host = _host(url)
        return any(host == d or host.endswith("." + d) for d in self.official_domains)

    def assign(self, article_id: int) -> Assignment:
        """Find the article's story (url, then hash, then near), record it, index the bands."""
        if self.conn.in_transaction:
            return self._assign(article_id)
        with self.store.transaction():
            return self._assign(article_id)

    def _assign(self, article_id: int) -> Assignment:
        row = self.conn.execute(
            "SELECT id, url, canonical_url, source_id, title, text, content_hash"
            " FROM articles WHERE id = ?",
            (article_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no article {article_id}")
        text = row["text"] or ""
        tokens = words(text)
        digest = row["content_hash"] or hashlib.sha256(" ".join(tokens).encode()).hexdigest()

        match: tuple[int, int, str, float | None] | None = None  # (article, story, method, sim)
        hit = self.conn.execute(
            "SELECT id, story_id FROM articles WHERE canonical_url = ? AND id != ?"
            " AND story_id IS NOT NULL ORDER BY id LIMIT 1",
            (row["canonical_url"], article_id),
        ).fetchone()
        if hit is not None:
            match = (hit[0], hit[1], "url", None)
        if match is None and tokens:
            hit = self.conn.execute(
                "SELECT id, story_id FROM articles WHERE content_hash = ? AND id != ?"
                " AND story_id IS NOT NULL ORDER BY id LIMIT 1",
                (digest, article_id),
            ).fetchone()
            if hit is not None:
                match = (hit[0], hit[1], "hash", 1.0)

        shingles = shingle_hashes(tokens)
        keys = band_keys(minhash(shingles)) if tokens else []
        if match is None and keys:
            match = self._near(article_id, shingles, keys)

        if keys:
            self.conn.executemany(
                "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)",
                [(k, article_id) for k in keys],
            )
        return self._record(row, digest, match)

    def _near(
        self, article_id: int, shingles: np.ndarray, keys: list[int]
    ) -> tuple[int, int, str, float | None] | None:
        marks = ",".join("?" * len(keys))
        candidates = self.conn.execute(
            f"SELECT article_id, count(*) AS n FROM article_bands WHERE band_key IN ({marks})"
            " AND article_id != ? GROUP BY article_id ORDER BY n DESC, article_id LIMIT 20",
            (*keys, article_id),
        ).fetchall()
        best: tuple[int, int, str, float | None] | None = None
        for candidate_id, _ in candidates:
            other = self.conn.execute(
                "SELECT story_id, text FROM articles WHERE id = ?", (candidate_id,)
            ).fetchone()
            if other is None or other["story_id"] is None:
                continue
            score = containment(shingles, shingle_hashes(words(other["text"] or "")))
            if score >= self.threshold and (best is None or score > (best[3] or 0.0)):
                best = (candidate_id, other["story_id"], "near", round(score, 4))
        return best

    def _record(
        self,
        row: sqlite3.Row,
        digest: str,
        match: tuple[int, int, str, float | None] | None,
    ) -> Assignment:
        article_id = row["id"]
        stamp = now_iso()
        if match is None:
            cursor = self.conn.execute(
                "INSERT INTO stories (primary_article_id, title, first_seen_at, updated_at,"
                " article_count, source_count) VALUES (?, ?, ?, ?, 1, 1)",
                (article_id, row["title"] or "", stamp, stamp),
            )
            story_id = int(cursor.lastrowid or 0)
            self._set_article(article_id, story_id, digest, "new", None)
            return Assignment(story_id, True, None, "new", None, False)

        duplicate_of, story_id, method, similarity = match
        self._set_article(article_id, story_id, digest, method, similarity)
        primary_changed = False
        if self.is_official(row["url"]):
            primary = self.conn.execute(
                "SELECT a.url FROM stories s JOIN articles a ON a.id = s.primary_article_id"
                " WHERE s.id = ?",
                (story_id,),
            ).fetchone()
            if primary is None or not self.is_official(primary[0]):
                self.conn.execute(
                    "UPDATE stories SET primary_article_id = ?, title = ? WHERE id = ?",
                    (article_id, row["title"] or "", story_id),
                )
                primary_changed = True
        self.conn.execute(
            "UPDATE stories SET updated_at = ?,"
            " article_count = (SELECT count(*) FROM articles WHERE story_id = ?),"
            " source_count = (SELECT count(DISTINCT coalesce(source_id, -id)) FROM articles"
            "                 WHERE story_id = ?) WHERE id = ?",
            (stamp, story_id, story_id, story_id),
        )
        return Assignment(story_id, False, duplicate_of, method, similarity, primary_changed)

    def _set_article(
        self, article_id: int, story_id: int, digest: str, method: str, similarity: float | None
    ) -> None:
        self.conn.execute(
            "UPDATE articles SET story_id = ?, content_hash = ?, dedupe_method = ?,"
            " similarity = ? WHERE id = ?",
            (story_id, digest, method, similarity, article_id),
        )
