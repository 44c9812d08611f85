"""The SQLite store: schema, migrations and the small set of writes the pipeline makes.

The schema is a public interface: users query it with ``sqlite3`` and Datasette, so
it is documented in README.md (tests fail when a table is not) and changed only by
appending a numbered step to ``MIGRATIONS``. ``PRAGMA user_version`` records the
step reached, so opening an older database upgrades it in place.

Timestamps are ISO-8601 UTC text (see ``monitor.clock``); JSON columns hold lists.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.clock import now_iso
from monitor.errors import StoreError

SCHEMA_V1 = """
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    next_fetch_at TEXT,
    last_fetch_at TEXT,
    last_success_at TEXT,
    last_error TEXT,
    last_error_at TEXT,
    failing_since TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    items_seen INTEGER NOT NULL DEFAULT 0,
    last_new_item_at TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE http_cache (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    status INTEGER,
    checked_at TEXT NOT NULL
);

CREATE TABLE fetches (
    id INTEGER PRIMARY KEY,
    source_id INTEGER REFERENCES sources(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms INTEGER,
    status INTEGER,
    outcome TEXT NOT NULL,
    error TEXT,
    bytes INTEGER,
    items INTEGER,
    new_articles INTEGER
);
CREATE INDEX fetches_source_started ON fetches(source_id, started_at);
CREATE INDEX fetches_started ON fetches(started_at);

CREATE TABLE seen_items (
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    item_key TEXT NOT NULL,
    url TEXT,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (source_id, item_key)
) WITHOUT ROWID;

CREATE TABLE stories (
    id INTEGER PRIMARY KEY,
    primary_article_id INTEGER REFERENCES articles(id) DEFERRABLE INITIALLY DEFERRED,
    title TEXT NOT NULL DEFAULT '',
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    article_count INTEGER NOT NULL DEFAULT 1,
    source_count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX stories_updated ON stories(updated_at);

CREATE TABLE articles (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    canonical_url TEXT NOT NULL,
    source_id INTEGER REFERENCES sources(id) ON DELETE SET NULL,
    story_id INTEGER REFERENCES stories(id) DEFERRABLE INITIALLY DEFERRED,
    title TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    description TEXT,
    authors TEXT NOT NULL DEFAULT '[]',
    language TEXT,
    published TEXT,
    fetched_at TEXT NOT NULL,
    content_hash TEXT,
    dedupe_method TEXT,
    similarity REAL,
    extraction_note TEXT
);
CREATE INDEX articles_canonical_url ON articles(canonical_url);
CREATE INDEX articles_content_hash ON articles(content_hash);
CREATE INDEX articles_story ON articles(story_id);
CREATE INDEX articles_source_fetched ON articles(source_id, fetched_at);
CREATE INDEX articles_published ON articles(published);

CREATE TABLE article_bands (
    band_key INTEGER NOT NULL,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    PRIMARY KEY (band_key, article_id)
) WITHOUT ROWID;
CREATE INDEX article_bands_article ON article_bands(article_id);

CREATE VIRTUAL TABLE articles_fts USING fts5(
    title, text, content='articles', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
END;
CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, text ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
    INSERT INTO articles_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;

CREATE TABLE commitments (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    article TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    keywords TEXT NOT NULL DEFAULT '[]',
    query TEXT NOT NULL,
    exclude TEXT,
    min_score REAL NOT NULL DEFAULT 1.0,
    query_version TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);

CREATE TABLE hits (
    id INTEGER PRIMARY KEY,
    story_id INTEGER NOT NULL REFERENCES stories(id),
    article_id INTEGER NOT NULL REFERENCES articles(id),
    commitment_id TEXT NOT NULL REFERENCES commitments(id),
    score REAL NOT NULL,
    evidence TEXT NOT NULL DEFAULT '[]',
    query_version TEXT NOT NULL,
    matched_at TEXT NOT NULL,
    UNIQUE (story_id, commitment_id)
);
CREATE INDEX hits_commitment_matched ON hits(commitment_id, matched_at);
CREATE INDEX hits_matched ON hits(matched_at);
CREATE INDEX hits_article ON hits(article_id);

CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    commitment_id TEXT NOT NULL REFERENCES commitments(id),
    judgement TEXT NOT NULL CHECK (judgement IN ('relevant', 'irrelevant')),
    labelled_at TEXT NOT NULL,
    UNIQUE (article_id, commitment_id)
);

CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    period_start TEXT,
    period_end TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'deferred', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT,
    sent_at TEXT
);
CREATE INDEX digests_group_created ON digests(group_name, created_at);
CREATE INDEX digests_state ON digests(state);

CREATE TABLE digest_items (
    digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
    hit_id INTEGER NOT NULL REFERENCES hits(id),
    PRIMARY KEY (digest_id, hit_id)
) WITHOUT ROWID;
CREATE INDEX digest_items_hit ON digest_items(hit_id);

CREATE TABLE digest_recipients (
    digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'deferred', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TEXT,
    PRIMARY KEY (digest_id, recipient)
) WITHOUT ROWID;

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'running',
    detail TEXT
);
CREATE INDEX runs_job_started ON runs(job, started_at);

CREATE TABLE schedule_state (
    job TEXT PRIMARY KEY,
    last_run_at TEXT,
    last_period_end TEXT,
    last_outcome TEXT
);

CREATE VIEW latest_hits AS
SELECT hits.id AS hit_id, hits.matched_at, hits.commitment_id, commitments.title AS commitment,
       hits.score, stories.id AS story_id, stories.title AS story_title,
       articles.url AS primary_url, sources.name AS primary_source,
       stories.source_count, json_extract(hits.evidence, '$[0].text') AS evidence
FROM hits
JOIN commitments ON commitments.id = hits.commitment_id
JOIN stories ON stories.id = hits.story_id
LEFT JOIN articles ON articles.id = stories.primary_article_id
LEFT JOIN sources ON sources.id = articles.source_id
ORDER BY hits.matched_at DESC;

CREATE VIEW story_sources AS
SELECT stories.id AS story_id, stories.title, stories.first_seen_at, stories.source_count,
       group_concat(DISTINCT sources.name) AS sources
FROM stories
JOIN articles ON articles.story_id = stories.id
LEFT JOIN sources ON sources.id = articles.source_id
GROUP BY stories.id;

CREATE VIEW source_health AS
SELECT name, kind, url, enabled, last_success_at, last_error, last_error_at, failing_since,
       consecutive_failures, items_seen, last_new_item_at, next_fetch_at
FROM sources;
"""


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement script inside the caller's transaction.

    ``executescript`` would COMMIT first, which breaks the all-or-nothing migration.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        conn.execute(statement)


def _migrate_1(conn: sqlite3.Connection) -> None:
    run_script(conn, SCHEMA_V1)


Migration = Callable[[sqlite3.Connection], None]


#: Append only. Step N upgrades a database at user_version N-1 to N.
def _migrate_2(conn: sqlite3.Connection) -> None:
    # Without it, deleting an article scans every story (the foreign key from
    # stories.primary_article_id) and bulk loads turn quadratic.
    conn.execute("CREATE INDEX stories_primary_article ON stories(primary_article_id)")


def _migrate_3(conn: sqlite3.Connection) -> None:
    # Band keys changed (monitor.dedupe: 9 per article where there were 38, since each is
    # a random page for the commit to write back), so the stored ones would match
    # nothing: recompute them from the stored texts, for the articles that had them
    # (assigned, and not as an exact copy). Batches keep memory flat; sorted keys keep
    # the inserts local.
    from monitor.dedupe import fingerprint  # monitor.dedupe imports this module

    conn.execute("DELETE FROM article_bands")
    articles = conn.execute(
        "SELECT id, text FROM articles"
        " WHERE story_id IS NOT NULL AND coalesce(dedupe_method, '') != 'hash' ORDER BY id"
    )
    while batch := articles.fetchmany(BAND_MIGRATION_BATCH):
        rows = sorted(
            {(key, article_id) for article_id, text in batch for key in fingerprint(text).keys}
        )
        conn.executemany(
            "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)", rows
        )


BAND_MIGRATION_BATCH = 20_000

#: The day (UTC, days since 1970-01-01) an article was first seen, from its fetched_at;
#: a stamp SQLite cannot read counts as today. The same expression files a band key and
#: chooses the days a lookup searches (monitor.dedupe). (strftime('%s'), not unixepoch(),
#: which needs SQLite 3.38; Ubuntu 22.04 ships 3.37.)
ARTICLE_DAY_SQL = (
    "coalesce(CAST(strftime('%s', {column}) AS INTEGER) / 86400,"
    " CAST(strftime('%s', 'now') AS INTEGER) / 86400)"
)


def _migrate_4(conn: sqlite3.Connection) -> None:
    # Band keys lead with the day their article was first seen. Every key is a random
    # value, so keyed by it alone each new article's rows landed on random pages across
    # the whole index, which the next checkpoint wrote back one by one (the stage's
    # largest cost at a million articles); filed under their day they land together in
    # the small, hot region of today, and a lookup searches only the days of the
    # dedupe window. Same keys, same articles: only the layout changes.
    day = ARTICLE_DAY_SQL.format(column="articles.fetched_at")
    run_script(
        conn,
        f"""
        CREATE TABLE article_bands_by_day (
            day INTEGER NOT NULL,
            band_key INTEGER NOT NULL,
            article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            PRIMARY KEY (day, band_key, article_id)
        ) WITHOUT ROWID;
        INSERT INTO article_bands_by_day (day, band_key, article_id)
            SELECT {day}, article_bands.band_key, article_bands.article_id
            FROM article_bands JOIN articles ON articles.id = article_bands.article_id
            ORDER BY 1, 2, 3;
        DROP TABLE article_bands;
        ALTER TABLE article_bands_by_day RENAME TO article_bands;
        CREATE INDEX article_bands_article ON article_bands(article_id);
        """,
    )


#: Band keys are grouped by week (day // BAND_WEEK_DAYS) of their article's first-seen day.
BAND_WEEK_DAYS = 7


def _migrate_5(conn: sqlite3.Connection) -> None:
    # Band keys lead with the week their article was first seen, and keep its day. A
    # lookup seeks each key in each day of the window (15 x 9 seeks for 14 days, ~0.15 ms
    # at 1M articles); by week it is 3 x 9, and the rows' days keep the window exact.
    # This week's region stays small (~400 pages at 1,000 articles a day), so new keys
    # still land together. Same keys, same articles: only the layout changes.
    run_script(
        conn,
        f"""
        CREATE TABLE article_bands_by_week (
            week INTEGER NOT NULL,
            band_key INTEGER NOT NULL,
            article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            day INTEGER NOT NULL,
            PRIMARY KEY (week, band_key, article_id)
        ) WITHOUT ROWID;
        INSERT INTO article_bands_by_week (week, band_key, article_id, day)
            SELECT day / {BAND_WEEK_DAYS}, band_key, article_id, day FROM article_bands
            ORDER BY 1, 2, 3;
        DROP TABLE article_bands;
        ALTER TABLE article_bands_by_week RENAME TO article_bands;
        CREATE INDEX article_bands_article ON article_bands(article_id);
        """,
    )


MIGRATIONS: list[Migration] = [_migrate_1, _migrate_2, _migrate_3, _migrate_4, _migrate_5]
SCHEMA_VERSION = len(MIGRATIONS)


MIN_PAGE_CACHE_KIB = 8 * 1024
MAX_PAGE_CACHE_KIB = 64 * 1024
PAGE_CACHE_BYTES = 64  # per stored article; see size_page_cache()
#: WAL pages after which a commit checkpoints them into the database file (SQLite's
#: default is 1000). A checkpoint writes each page once however often it changed, and
#: what an article's commit changes is mostly the same hot pages (this week's band keys,
#: the newest rows and index entries), so checkpointing a fourth as often writes back far
#: fewer pages per article: 0.05-0.1 ms of the dedupe stage's ~1 ms at 10k-1M stored. The
#: WAL file grows to ~16 MB; readers find pages in it through the shared-memory index.
WAL_AUTOCHECKPOINT_PAGES = 4000
#: After a checkpoint, a WAL file larger than this (after a migration or a bulk load) is
#: truncated back to it.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def connect(path: str | Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection with the pragmas every user of the store needs."""
    conn = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA cache_size = -{MIN_PAGE_CACHE_KIB}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    return conn


def size_page_cache(conn: sqlite3.Connection) -> int:
    """Give the connection a page cache in proportion to the store; returns it in KiB.

    A near-duplicate lookup is one B-tree seek per band key; with SQLite's default 2 MiB
    the band index's interior pages fall out of memory past a few hundred thousand
    articles (a lookup at 1M articles: 1.9 ms with 2 MiB, 0.36 ms with 64 MiB). A small
    store needs little, and the cache fills to its cap and stays in RSS, so it grows with
    the store: about 64 bytes per article, between 8 and 64 MiB.
    """
    try:
        articles = conn.execute("SELECT COALESCE(MAX(id), 0) FROM articles").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        articles = 0
    kib = max(MIN_PAGE_CACHE_KIB, min(MAX_PAGE_CACHE_KIB, articles * PAGE_CACHE_BYTES // 1024))
    conn.execute(f"PRAGMA cache_size = -{kib}")
    return kib


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to ``SCHEMA_VERSION``, one recorded step at a time."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this ipr-monitor "
            f"understands ({SCHEMA_VERSION}); upgrade ipr-monitor"
        )
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


@dataclass(frozen=True)
class NewArticle:
    """What the pipeline hands the store for one fetched page."""

    url: str
    canonical_url: str
    source_id: int | None
    title: str
    text: str
    description: str | None
    authors: Sequence[str]
    language: str | None
    published: str | None
    content_hash: str | None
    extraction_note: str | None = None


class Store:
    """The ipr-monitor database. ``Store.open(path)`` creates or upgrades it."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(cls, path: str | Path, *, timeout: float = 30.0) -> Store:
        """Open (creating parent directories), switch to WAL, and migrate."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(target, timeout=timeout)
            conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn)
            size_page_cache(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {target}: {exc}") from exc
        return cls(conn, target)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: all of it lands, or none of it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- sources -----------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[Any]) -> None:
        """Make the sources table agree with config; sources gone from config are disabled."""
        stamp = now_iso()
        names = []
        with self.transaction() as conn:
            for source in sources:
                names.append(source.name)
                conn.execute(
                    """INSERT INTO sources (name, kind, url, enabled, created_at)
                       VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT(name) DO UPDATE SET
                         kind = excluded.kind, url = excluded.url, enabled = excluded.enabled""",
                    (source.name, source.kind, source.url, int(source.enabled), stamp),
                )
            placeholders = ",".join("?" * len(names))
            conn.execute(
                f"UPDATE sources SET enabled = 0 WHERE name NOT IN ({placeholders})", names
            )

    def source_id(self, name: str) -> int | None:
        return self.scalar("SELECT id FROM sources WHERE name = ?", (name,))

    def source_row(self, name: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM sources WHERE name = ?", (name,))
        return rows[0] if rows else None

    def due_source_names(self, at: str) -> list[str]:
        """Enabled sources whose next_fetch_at has passed (or was never set)."""
        rows = self.query(
            "SELECT name FROM sources"
            " WHERE enabled AND (next_fetch_at IS NULL OR next_fetch_at <= ?)"
            " ORDER BY COALESCE(next_fetch_at, ''), id",
            (at,),
        )
        return [row["name"] for row in rows]

    def update_source(self, source_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{key} = ?" for key in fields)
        self.conn.execute(
            f"UPDATE sources SET {assignments} WHERE id = ?", (*fields.values(), source_id)
        )

    def record_fetch(
        self,
        *,
        source_id: int | None,
        url: str,
        started_at: str,
        duration_ms: int | None,
        outcome: str,
        status: int | None = None,
        error: str | None = None,
        size: int | None = None,
        items: int | None = None,
        new_articles: int | None = None,
    ) -> None:
        self.conn.execute(
            """INSERT INTO fetches (source_id, url, started_at, duration_ms, status, outcome,
                                    error, bytes, items, new_articles)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                source_id,
                url,
                started_at,
                duration_ms,
                status,
                outcome,
                error,
                size,
                items,
                new_articles,
            ),
        )

    # -- conditional GET ---------------------------------------------------------------

    def http_validators(self, url: str) -> tuple[str | None, str | None]:
        rows = self.query("SELECT etag, last_modified FROM http_cache WHERE url = ?", (url,))
        return (rows[0]["etag"], rows[0]["last_modified"]) if rows else (None, None)

    def save_http_validators(
        self, url: str, etag: str | None, last_modified: str | None, status: int | None
    ) -> None:
        self.conn.execute(
            """INSERT INTO http_cache (url, etag, last_modified, status, checked_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(url) DO UPDATE SET etag = excluded.etag,
                 last_modified = excluded.last_modified, status = excluded.status,
                 checked_at = excluded.checked_at""",
            (url, etag, last_modified, status, now_iso()),
        )

    # -- feed items and articles -------------------------------------------------------

    def unseen_item_keys(self, source_id: int, keys: Sequence[str]) -> set[str]:
        """Which of these item keys this source has not produced before."""
        if not keys:
            return set()
        seen: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            seen.update(
                row[0]
                for row in self.conn.execute(
                    "SELECT item_key FROM seen_items"
                    f" WHERE source_id = ? AND item_key IN ({marks})",
                    (source_id, *chunk),
                )
            )
        return set(keys) - seen

    def mark_item_seen(self, source_id: int, key: str, url: str | None) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO seen_items (source_id, item_key, url, first_seen_at)"
            " VALUES (?, ?, ?, ?)",
            (source_id, key, url, now_iso()),
        )

    def article_id_for_url(self, url: str) -> int | None:
        return self.scalar("SELECT id FROM articles WHERE url = ?", (url,))

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        """Which of these URLs are stored already (as fetched URL or canonical URL)."""
        known: set[str] = set()
        for start in range(0, len(urls), 400):
            chunk = list(urls[start : start + 400])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT url, canonical_url FROM articles WHERE url IN ({marks})"
                f" OR canonical_url IN ({marks})",
                (*chunk, *chunk),
            ):
                known.update((row[0], row[1]))
        return known & set(urls)

    def insert_article(self, article: NewArticle, *, fetched_at: str | None = None) -> int:
        """Store one article (no story yet: dedupe assigns it). Returns its id."""
        cursor = self.conn.execute(
            """INSERT INTO articles (url, canonical_url, source_id, title, text, description,
                                     authors, language, published, fetched_at, content_hash,
                                     extraction_note)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                article.url,
                article.canonical_url,
                article.source_id,
                article.title,
                article.text,
                article.description,
                json.dumps(list(article.authors), ensure_ascii=False),
                article.language,
                article.published,
                fetched_at or now_iso(),
                article.content_hash,
                article.extraction_note,
            ),
        )
        return int(cursor.lastrowid or 0)

    # -- commitments and hits ----------------------------------------------------------

    def sync_commitments(self, commitments: Iterable[Any], versions: dict[str, str]) -> None:
        """Mirror config's commitments into the store (so SQL users can join on them)."""
        stamp = now_iso()
        ids = []
        with self.transaction() as conn:
            for c in commitments:
                ids.append(c.id)
                conn.execute(
                    """INSERT INTO commitments (id, actor, title, description, source, article,
                         tags, keywords, query, exclude, min_score, query_version, active,
                         updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                       ON CONFLICT(id) DO UPDATE SET actor = excluded.actor,
                         title = excluded.title, description = excluded.description,
                         source = excluded.source, article = excluded.article,
                         tags = excluded.tags, keywords = excluded.keywords,
                         query = excluded.query, exclude = excluded.exclude,
                         min_score = excluded.min_score, query_version = excluded.query_version,
                         active = 1,
                         updated_at = CASE WHEN commitments.query_version = excluded.query_version
                                      THEN commitments.updated_at ELSE excluded.updated_at END""",
                    (
                        c.id,
                        c.actor,
                        c.title,
                        c.description,
                        c.source,
                        c.article,
                        json.dumps(list(c.tags), ensure_ascii=False),
                        json.dumps(list(c.keywords), ensure_ascii=False),
                        c.query,
                        c.exclude,
                        c.min_score,
                        versions.get(c.id, ""),
                        stamp,
                    ),
                )
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE commitments SET active = 0 WHERE id NOT IN ({marks})", ids)

    def save_hit(
        self,
        *,
        story_id: int,
        article_id: int,
        commitment_id: str,
        score: float,
        evidence: list[dict[str, Any]],
        query_version: str,
    ) -> int:
        """Insert a hit, or update the story's existing hit for that commitment in place.

        Updating in place keeps the hit's id, so digests that already listed it still do.
        """
        self.conn.execute(
            """INSERT INTO hits (story_id, article_id, commitment_id, score, evidence,
                                 query_version, matched_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(story_id, commitment_id) DO UPDATE SET
                 article_id = excluded.article_id, score = excluded.score,
                 evidence = excluded.evidence, query_version = excluded.query_version""",
            (
                story_id,
                article_id,
                commitment_id,
                score,
                json.dumps(evidence, ensure_ascii=False),
                query_version,
                now_iso(),
            ),
        )
        return int(
            self.scalar(
                "SELECT id FROM hits WHERE story_id = ? AND commitment_id = ?",
                (story_id, commitment_id),
            )
        )

    def size_bytes(self) -> int:
        if self.path is None:
            return 0
        return sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )


def table_names(store: Store) -> list[str]:
    """User-facing tables and views (FTS shadow tables left out)."""
    rows = store.query(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'articles_fts_%' ORDER BY name"
    )
    return [row[0] for row in rows]
