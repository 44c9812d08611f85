"""Load a digest fixture (``fixtures/digest/*.json``) into a store, and a config to go with it.

Tests, golden files and the crash-test child process all need the same small, known store
without running the fetch/match pipeline; the fixture's ``expect`` lines say what a digest
built from it must show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.clock import parse_iso
from monitor.config import (
    Config,
    DedupeConfig,
    DigestConfig,
    FetchConfig,
    GeneralConfig,
    MaintenanceConfig,
    SmtpConfig,
)
from monitor.store import Store

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "digest"


def load_fixture(store: Store, path: str | Path | None = None) -> dict[str, Any]:
    """Insert the fixture's sources, commitments, stories, articles and hits; return it."""
    data: dict[str, Any] = json.loads(Path(path or FIXTURE_DIR / "store.json").read_text("utf-8"))
    stamp = data["clock"]
    with store.transaction() as conn:
        for s in data["sources"]:
            conn.execute(
                """INSERT INTO sources (id, name, kind, url, enabled, last_success_at, last_error,
                       last_error_at, failing_since, consecutive_failures, created_at)
                   VALUES (?, ?, 'feed', ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    s["id"], s["name"], s["url"], int(s.get("enabled", True)),
                    s.get("last_success_at"), s.get("last_error"), s.get("failing_since"),
                    s.get("failing_since"), s.get("consecutive_failures", 0), stamp,
                ),
            )  # fmt: skip
        for c in data["commitments"]:
            conn.execute(
                """INSERT INTO commitments (id, actor, title, source, article, tags, query,
                       query_version, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'v1', ?)""",
                (
                    c["id"], c["actor"], c["title"], c["source"], c["article"],
                    json.dumps(c["tags"]), c.get("query", c["id"]), stamp,
                ),
            )  # fmt: skip
        for story in data["stories"]:
            add_story(conn, story)
        for hit in data["hits"]:
            add_hit(conn, hit)
    return data


def add_story(conn: Any, story: dict[str, Any]) -> None:
    """A story and its articles; the first article is the primary one."""
    articles = story["articles"]
    sources = {a["source_id"] for a in articles}
    conn.execute(
        """INSERT INTO stories (id, primary_article_id, title, first_seen_at, updated_at,
               article_count, source_count) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            story["id"], articles[0]["id"], story["title"], story["first_seen_at"],
            story["first_seen_at"], len(articles), len(sources),
        ),
    )  # fmt: skip
    for a in articles:
        conn.execute(
            """INSERT INTO articles (id, url, canonical_url, source_id, story_id, title, text,
                   published, fetched_at) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)""",
            (
                a["id"], a["url"], a["url"], a["source_id"], story["id"], a["title"],
                a.get("published"), story["first_seen_at"],
            ),
        )  # fmt: skip


def add_hit(conn: Any, hit: dict[str, Any]) -> None:
    conn.execute(
        """INSERT INTO hits (id, story_id, article_id, commitment_id, score, evidence,
               query_version, matched_at) VALUES (?, ?, ?, ?, ?, ?, 'v1', ?)""",
        (
            hit.get("id"), hit["story_id"], hit["article_id"], hit["commitment_id"],
            hit["score"], json.dumps(hit["evidence"]), hit["matched_at"],
        ),
    )  # fmt: skip


FIXTURE_GROUP = DigestConfig(
    name="trade-and-pharma",
    recipients=["ana@example.org", "ben@example.net"],
    tags=["trade-secrets", "pharma"],
    timezone="Europe/Berlin",
    min_score=1.0,
)


def fixture_config(
    directory: Path,
    *,
    smtp: SmtpConfig | None = None,
    digests: list[DigestConfig] | None = None,
) -> Config:
    """A complete Config for the fixture store in ``directory`` (database + outbox inside it)."""
    return Config(
        directory=directory,
        general=GeneralConfig(database=str(directory / "monitor.db")),
        fetch=FetchConfig(),
        smtp=smtp or SmtpConfig(sender="IPR monitor <monitor@ipr.example>"),
        dedupe=DedupeConfig(),
        maintenance=MaintenanceConfig(),
        sources=[],
        aliases={},
        commitments=[],
        digests=digests if digests is not None else [FIXTURE_GROUP],
    )


def fixture_clock(data: dict[str, Any]) -> Any:
    return parse_iso(data["clock"])
