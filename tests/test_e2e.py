"""One full cycle over real sockets: fixture site -> store -> digest -> SMTP server."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import Config
from monitor.digest import build_digest, deliver_pending
from monitor.pipeline import Pipeline
from monitor.sitehost import SiteHost
from monitor.smtpsink import SmtpSink
from monitor.store import Store

SEED_LIKE = "/ipnews/2025/china-ipr-cooperation.html"
SYNDICATED = "/tradewire/world/china-ip-cooperation-plan.html"


def test_one_cycle_stores_merges_matches_and_mails(
    site_config: Config, store: Store, smtp: SmtpSink, site: SiteHost
) -> None:
    report = asyncio.run(Pipeline(site_config, store).run_cycle(force=True))

    assert [s.outcome for s in report.sources] == ["ok", "ok", "ok"]
    assert store.scalar("SELECT COUNT(*) FROM articles") == 6
    # The seed-like story is stored once per copy, both copies in one story.
    rows = store.query(
        "SELECT url, canonical_url, story_id, text FROM articles WHERE url LIKE ? OR url LIKE ?",
        (f"%{SEED_LIKE}", f"%{SYNDICATED}%"),
    )
    assert len(rows) == 2
    assert rows[0]["story_id"] == rows[1]["story_id"]
    syndicated = next(r for r in rows if SYNDICATED in r["url"])
    assert "utm_source" in syndicated["url"]
    assert "utm_" not in syndicated["canonical_url"] and "fbclid" not in syndicated["canonical_url"]
    story = store.query("SELECT * FROM stories WHERE id = ?", (rows[0]["story_id"],))[0]
    assert story["source_count"] == 2
    assert store.scalar("SELECT COUNT(*) FROM stories") == 5
    # The chrome of the seed-like page did not reach the store.
    original = next(r for r in rows if r["url"].endswith(SEED_LIKE))
    text = original["text"]
    assert "cookie" not in text.lower() and "Share this post" not in text
    assert text.count("China sets out plan to deepen international cooperation") <= 1
    assert "Belt and Road" in text

    # Matching ran once per story: one hit per (story, commitment).
    hit_rows = store.query("SELECT commitment_id, story_id, evidence FROM hits")
    hit_ids = {r["commitment_id"] for r in hit_rows}
    assert {"CN-INTL-BRI", "CN-INTL-GOVERNANCE"} & hit_ids
    assert "WIPO-HAGUE-CN" in hit_ids
    assert len({(r["story_id"], r["commitment_id"]) for r in hit_rows}) == len(hit_rows)
    football = store.scalar("SELECT story_id FROM articles WHERE url LIKE '%football-final%'")
    assert store.scalar("SELECT COUNT(*) FROM hits WHERE story_id = ?", (football,)) == 0
    bri = next(r for r in hit_rows if r["commitment_id"] in {"CN-INTL-BRI", "CN-INTL-GOVERNANCE"})
    evidence = json.loads(bri["evidence"])
    assert evidence and evidence[0]["text"] and evidence[0]["spans"]

    # Source state is durable: every source succeeded and is scheduled again.
    for row in store.query("SELECT * FROM sources WHERE enabled"):
        assert row["last_success_at"] and row["next_fetch_at"] and row["consecutive_failures"] == 0

    # The digest goes out over SMTP exactly once, and names the merged story once.
    group = site_config.digests[0]
    assert build_digest(store, site_config, group) is not None
    results = deliver_pending(store, site_config)
    assert [r.state for r in results] == ["sent"]
    assert len(smtp.messages) == 1
    message = smtp.messages[0].message
    assert message["Subject"].startswith("IPR monitor:")
    assert message["To"] == "analyst@example.org"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Belt and Road" in plain and "Belt and Road" in html
    assert "also reported by 1 source" in plain
    assert build_digest(store, site_config, group) is None  # nothing new: nothing sent
    assert deliver_pending(store, site_config) == []
    assert len(smtp.messages) == 1


def test_second_cycle_is_conditional_and_adds_nothing(
    site_config: Config, store: Store, site: SiteHost
) -> None:
    pipeline = Pipeline(site_config, store)
    asyncio.run(pipeline.run_cycle(force=True))
    before = store.scalar("SELECT COUNT(*) FROM articles")
    page_requests = site.counts["/ipnews/2025/bad-faith-trademarks.html"]
    report = asyncio.run(pipeline.run_cycle(force=True))
    assert store.scalar("SELECT COUNT(*) FROM articles") == before
    assert [s.outcome for s in report.sources] == ["not_modified"] * 3
    assert site.counts["/ipnews/2025/bad-faith-trademarks.html"] == page_requests
    conditional = [h for (_, path, h) in site.requests if path.endswith("feed.xml")][-1]
    assert "If-None-Match" in conditional or "if-none-match" in {k.lower() for k in conditional}


def test_failing_source_is_recorded_and_others_continue(
    site_config: Config, store: Store, site: SiteHost
) -> None:
    site.fault("/tradewire/atom.xml", status=500)
    report = asyncio.run(Pipeline(site_config, store).run_cycle(force=True))
    by_name = {s.name: s for s in report.sources}
    assert by_name["Trade Wire"].outcome == "error"
    assert "500" in (by_name["Trade Wire"].error or "")
    assert by_name["IP Policy Daily"].new_articles == 3
    row = store.query("SELECT * FROM sources WHERE name = 'Trade Wire'")[0]
    assert row["consecutive_failures"] == 1 and "500" in row["last_error"]
    assert row["next_fetch_at"] > row["last_fetch_at"]
    # The fault ends: the source recovers and its articles arrive.
    site.clear()
    report = asyncio.run(Pipeline(site_config, store).run_cycle(["Trade Wire"], force=True))
    assert report.sources[0].outcome == "ok"
    row = store.query("SELECT * FROM sources WHERE name = 'Trade Wire'")[0]
    assert row["consecutive_failures"] == 0 and row["last_success_at"]


def test_failed_article_page_is_retried_next_cycle(
    site_config: Config, store: Store, site: SiteHost
) -> None:
    site.fault("/tradewire/world/hague-designs.html", status=503, times=10)
    pipeline = Pipeline(site_config, store)
    asyncio.run(pipeline.run_cycle(["Trade Wire"], force=True))
    assert store.scalar("SELECT COUNT(*) FROM articles WHERE url LIKE '%hague-designs%'") == 0
    site.clear()
    # The feed itself is unchanged (304), yet the missed page must still be fetched.
    store.conn.execute("DELETE FROM http_cache")
    asyncio.run(pipeline.run_cycle(["Trade Wire"], force=True))
    assert store.scalar("SELECT COUNT(*) FROM articles WHERE url LIKE '%hague-designs%'") == 1


def test_cli_queries_the_store(site_config: Config, store: Store, tmp_path) -> None:
    asyncio.run(Pipeline(site_config, store).run_cycle(force=True))
    runner = CliRunner()
    db = ["--db", str(site_config.database_path)]
    result = runner.invoke(app, ["hits", *db, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert any(r["commitment_id"] == "WIPO-HAGUE-CN" for r in rows)
    result = runner.invoke(app, ["hits", *db, "--commitment", "WIPO-HAGUE-CN", "--format", "csv"])
    assert result.exit_code == 0 and result.output.count("\n") == 2
    result = runner.invoke(app, ["search", "Marrakesh", *db, "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["title"].startswith("China marks three years")
    result = runner.invoke(app, ["search", "U.S.-China (trade", *db, "--format", "json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["commitments", *db, "--format", "json"])
    counts = {r["id"]: r["hits"] for r in json.loads(result.output)}
    assert len(counts) == 43 and counts["WIPO-HAGUE-CN"] == 1
    result = runner.invoke(app, ["sources", *db, "--format", "json"])
    assert result.exit_code == 0
    preview = tmp_path / "p.html"
    result = runner.invoke(app, ["digest", *db, "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    assert "Hague" in preview.read_text()


def test_source_article_selector_reaches_extraction(
    site_config: Config, store: Store, site: SiteHost
) -> None:
    """A user-given body selector decides what text is kept for that source's pages."""
    wire = next(s for s in site_config.sources if s.name == "Trade Wire")
    narrowed = wire.model_copy(update={"article_selector": "div.newsletter"})
    config = site_config.with_overrides(sources=[narrowed])
    asyncio.run(Pipeline(config, store).run_cycle(force=True))
    text = dict(store.query("SELECT url, text FROM articles"))
    copy = next(v for k, v in text.items() if SYNDICATED in k)
    assert "Trade Wire morning briefing" in copy and "Belt and Road" not in copy
    # A page the selector does not fit falls back to automatic extraction.
    hague = next(v for k, v in text.items() if "hague-designs" in k)
    assert "Hague Agreement" in hague
