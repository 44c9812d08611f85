"""The store: schema, WAL, FTS, migrations recorded and idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store import SCHEMA_VERSION, NewArticle, Store, table_names


def _article(url: str, **kw: object) -> NewArticle:
    base = dict(
        url=url,
        canonical_url=url,
        source_id=None,
        title="Patent linkage rules published",
        text="China published rules on patent linkage for generic drugs.",
        description=None,
        authors=["A. Writer"],
        language="en",
        published="2025-04-14T08:30:00+00:00",
        content_hash="h1",
    )
    base.update(kw)
    return NewArticle(**base)  # type: ignore[arg-type]


def test_open_creates_wal_schema_and_version(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "sub" / "m.db")
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert store.scalar("PRAGMA foreign_keys") == 1
    # fewer, larger checkpoints (see WAL_AUTOCHECKPOINT_PAGES), and a WAL cut back after one
    assert store.scalar("PRAGMA wal_autocheckpoint") == 4000
    assert store.scalar("PRAGMA journal_size_limit") == 64 * 1024 * 1024
    names = set(table_names(store))
    for table in (
        "sources",
        "fetches",
        "articles",
        "stories",
        "commitments",
        "hits",
        "digests",
        "digest_items",
        "articles_fts",
        "latest_hits",
    ):
        assert table in names
    store.close()
    again = Store.open(tmp_path / "sub" / "m.db")
    assert again.scalar("PRAGMA user_version") == SCHEMA_VERSION


def test_fts_follows_inserts_updates_and_deletes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    article_id = store.insert_article(_article("https://example.org/a"))
    match = "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
    assert [r[0] for r in store.query(match, ("generic",))] == [article_id]
    store.conn.execute(
        "UPDATE articles SET text = 'trademark squatting' WHERE id = ?", (article_id,)
    )
    assert store.query(match, ("generic",)) == []
    assert [r[0] for r in store.query(match, ("squatting",))] == [article_id]
    store.conn.execute("DELETE FROM articles WHERE id = ?", (article_id,))
    assert store.query(match, ("squatting",)) == []


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this ipr-monitor"):
        Store.open(path)


def test_transaction_rolls_back_everything(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_article(_article("https://example.org/x"))
        raise RuntimeError("crash in the middle")
    assert store.scalar("SELECT COUNT(*) FROM articles") == 0


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(path)


def test_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    from monitor.store import MIGRATIONS, connect

    path = tmp_path / "old.db"
    conn = connect(path)
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO sources (name, kind, url, created_at) VALUES ('a', 'feed', 'https://a/', 'x')"
    )
    conn.close()
    store = Store.open(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert store.scalar("SELECT name FROM sources") == "a"  # data kept
    indexes = {r["name"] for r in store.query("PRAGMA index_list(stories)")}
    assert "stories_primary_article" in indexes


def _database_at_version(path: Path, version: int) -> sqlite3.Connection:
    """A store as version ``version`` of the schema left it, for a migration to upgrade."""
    from monitor.store import MIGRATIONS, connect

    conn = connect(path)
    for step in MIGRATIONS[:version]:
        step(conn)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def test_version_2_database_gets_the_band_keys_of_today(tmp_path: Path) -> None:
    """Migration 3 replaces the old band keys by today's, for the articles that had them."""
    from monitor.dedupe import fingerprint

    path = tmp_path / "v2.db"
    conn = _database_at_version(path, 2)
    text = (
        "The patent office published draft rules on linkage for generic drugs on Monday.\n"
        "Comments are open for thirty days, and the rules take effect next year."
    )
    rows = [(1, "new", 1), (2, "near", 1), (3, "hash", 1), (4, None, None)]
    conn.execute("INSERT INTO stories (id, first_seen_at, updated_at) VALUES (1, 't', 't')")
    for article_id, method, story in rows:
        conn.execute(
            "INSERT INTO articles (id, url, canonical_url, text, fetched_at, story_id,"
            " dedupe_method) VALUES (?, ?, ?, ?, 't', ?, ?)",
            (article_id, f"https://a/{article_id}", f"https://a/{article_id}", text, story, method),
        )
    conn.executemany(
        "INSERT INTO article_bands (band_key, article_id) VALUES (?, ?)",
        [(key, article_id) for article_id in (1, 2) for key in range(38)],
    )
    conn.commit()
    conn.close()

    store = Store.open(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    keys = sorted(fingerprint(text).keys)
    assert len(keys) >= 9
    for article_id in (1, 2):
        stored = store.query(
            "SELECT band_key FROM article_bands WHERE article_id = ? ORDER BY band_key",
            (article_id,),
        )
        assert [row[0] for row in stored] == keys
    # An exact copy never had keys (its original's are enough), an unassigned article
    # gets them when it is assigned.
    assert store.scalar("SELECT count(*) FROM article_bands WHERE article_id IN (3, 4)") == 0


def test_version_3_database_files_its_band_keys_under_their_article_s_day(tmp_path: Path) -> None:
    """Migration 4 keeps every band key and files it under its article's first-seen week
    and day."""
    path = tmp_path / "v3.db"
    conn = _database_at_version(path, 3)
    conn.execute("INSERT INTO stories (id, first_seen_at, updated_at) VALUES (1, 't', 't')")
    seen = {1: "2026-03-01T23:59:59+00:00", 2: "2026-03-02T00:00:00+00:00", 3: "garbled"}
    for article_id, fetched_at in seen.items():
        conn.execute(
            "INSERT INTO articles (id, url, canonical_url, fetched_at, story_id)"
            " VALUES (?, ?, ?, ?, 1)",
            (article_id, f"https://a/{article_id}", f"https://a/{article_id}", fetched_at),
        )
    bands = [(key, article_id) for article_id in seen for key in (-5, 7, article_id * 100)]
    conn.executemany("INSERT INTO article_bands (band_key, article_id) VALUES (?, ?)", bands)
    conn.commit()
    conn.close()

    store = Store.open(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    key = [
        row[0]
        for row in store.query(
            "SELECT name FROM pragma_table_info('article_bands') WHERE pk > 0 ORDER BY pk"
        )
    ]
    assert key == ["week", "band_key", "article_id"]
    rows = store.query("SELECT week, day, band_key, article_id FROM article_bands")
    assert sorted((r["band_key"], r["article_id"]) for r in rows) == sorted(bands)
    assert all(r["week"] == r["day"] // 7 for r in rows)
    day = {r["article_id"]: r["day"] for r in rows}
    march_1 = 20513  # 2026-03-01 is day 20513 since 1970-01-01
    assert (day[1], day[2]) == (march_1, march_1 + 1)
    assert day[3] == store.scalar(
        "SELECT CAST(strftime('%s', 'now') AS INTEGER) / 86400"
    )  # unreadable: today
    indexes = {r["name"] for r in store.query("PRAGMA index_list(article_bands)")}
    assert "article_bands_article" in indexes
    with store.transaction() as tx:  # the cascade from articles still holds
        tx.execute("DELETE FROM articles WHERE id = 1")
    assert store.scalar("SELECT count(*) FROM article_bands WHERE article_id = 1") == 0


def test_version_4_database_files_its_band_keys_by_week(tmp_path: Path) -> None:
    """Migration 5 regroups the day-keyed band rows of version 4 by week, days kept."""
    path = tmp_path / "v4.db"
    conn = _database_at_version(path, 4)
    conn.execute("INSERT INTO stories (id, first_seen_at, updated_at) VALUES (1, 't', 't')")
    conn.execute(
        "INSERT INTO articles (id, url, canonical_url, fetched_at, story_id)"
        " VALUES (1, 'https://a/1', 'https://a/1', 't', 1)"
    )
    bands = [(20513, -5, 1), (20514, 7, 1), (20520, 9, 1)]
    conn.executemany(
        "INSERT INTO article_bands (day, band_key, article_id) VALUES (?, ?, ?)", bands
    )
    conn.commit()
    conn.close()

    store = Store.open(path)
    rows = store.query("SELECT week, day, band_key, article_id FROM article_bands ORDER BY day")
    assert [tuple(row) for row in rows] == [(day // 7, day, key, a) for day, key, a in bands]
    assert [row[0] for row in rows] == [2930, 2930, 2931]
