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
