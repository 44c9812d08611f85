"""The quality loop on a real store: test-query, rematch, label, quality."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import Config, default_config_dir
from monitor.pipeline import Pipeline
from monitor.store import Store


@pytest.fixture
def filled(site_config: Config, store: Store) -> Store:
    asyncio.run(Pipeline(site_config, store).run_cycle(force=True))
    return store


def _db(config: Config) -> list[str]:
    return ["--db", str(config.database_path)]


def test_test_query_previews_without_writing(site_config: Config, filled: Store) -> None:
    hits_before = filled.scalar("SELECT COUNT(*) FROM hits")
    result = CliRunner().invoke(
        app, ["test-query", "SENT(Hague AND design*)", *_db(site_config), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("[") :])
    assert len(rows) == 1 and "Hague" in rows[0]["title"]
    assert "[" in rows[0]["evidence"]  # matched terms are marked
    assert filled.scalar("SELECT COUNT(*) FROM hits") == hits_before


def test_test_query_reports_parse_errors(site_config: Config, filled: Store) -> None:
    result = CliRunner().invoke(app, ["test-query", "(patent AND", *_db(site_config)])
    assert result.exit_code == 2
    assert "position" in result.output and "Traceback" not in result.output


def test_rematch_replaces_hits_of_changed_query(
    site_config: Config, filled: Store, tmp_path: Path
) -> None:
    before = {
        r["commitment_id"]: (r["id"], r["query_version"])
        for r in filled.query("SELECT id, commitment_id, query_version FROM hits")
    }
    assert "WIPO-HAGUE-CN" in before
    config_dir = tmp_path / "cfg"
    shutil.copytree(default_config_dir(), config_dir)
    path = config_dir / "commitments.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index('id = "WIPO-HAGUE-CN"')
    query_at = text.index("\nquery = ", start)
    line_end = text.index("\n", query_at + 1)
    text = text[:query_at] + '\nquery = \'"Hague System" OR "Hague Agreement"\'' + text[line_end:]
    path.write_text(text, encoding="utf-8")

    runner = CliRunner()
    args = ["--config", str(config_dir), *_db(site_config)]
    result = runner.invoke(app, ["rematch", "--commitment", "WIPO-HAGUE-CN", *args])
    assert result.exit_code == 0, result.output
    rows = filled.query("SELECT id, query_version FROM hits WHERE commitment_id = 'WIPO-HAGUE-CN'")
    assert len(rows) == 1  # replaced, not duplicated
    assert rows[0]["id"] == before["WIPO-HAGUE-CN"][0]
    assert rows[0]["query_version"] != before["WIPO-HAGUE-CN"][1]
    # A full rematch with unchanged queries changes nothing.
    total = filled.scalar("SELECT COUNT(*) FROM hits")
    assert runner.invoke(app, ["rematch", *args]).exit_code == 0
    assert filled.scalar("SELECT COUNT(*) FROM hits") == total


def test_labels_give_precision_and_recall(site_config: Config, filled: Store) -> None:
    runner = CliRunner()
    db = _db(site_config)
    hague = filled.scalar("SELECT id FROM hits WHERE commitment_id = 'WIPO-HAGUE-CN'")
    assert runner.invoke(app, ["label", str(hague), "relevant", *db]).exit_code == 0
    football = filled.scalar("SELECT id FROM articles WHERE url LIKE '%football%'")
    result = runner.invoke(
        app, ["label", "relevant", "--article", str(football), "--commitment", "WIPO-HAGUE-CN", *db]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["quality", *db, "--format", "json"])
    rows = {r["commitment_id"]: r for r in json.loads(result.output)}
    assert rows["WIPO-HAGUE-CN"]["precision"] == 1.0
    assert rows["WIPO-HAGUE-CN"]["missed"] == 1
    assert rows["WIPO-HAGUE-CN"]["recall"] == 0.5
    bad = runner.invoke(app, ["label", "999999", "relevant", *db])
    assert bad.exit_code == 1 and "no hit with id 999999" in bad.output


def test_quality_by_score_shows_what_a_digest_min_score_keeps(
    site_config: Config, filled: Store
) -> None:
    runner = CliRunner()
    db = _db(site_config)
    scored = filled.query("SELECT id, score FROM hits ORDER BY score DESC, id")
    assert len(scored) >= 2
    strongest, weakest = scored[0], scored[-1]
    assert strongest["score"] > weakest["score"], "the fixture site needs hits of two strengths"
    assert runner.invoke(app, ["label", str(strongest["id"]), "relevant", *db]).exit_code == 0
    assert runner.invoke(app, ["label", str(weakest["id"]), "irrelevant", *db]).exit_code == 0
    result = runner.invoke(app, ["quality", "--by-score", *db, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["min_score"]: r for r in json.loads(result.output)}
    everything = rows[1.0]
    assert everything["labelled_hits_kept"] == 2 and everything["precision"] == 0.5
    above_weak = min(t for t in rows if t > weakest["score"])
    if above_weak <= strongest["score"]:  # a threshold between the two keeps only the good one
        assert rows[above_weak]["labelled_hits_kept"] == 1
        assert rows[above_weak]["precision"] == 1.0 and rows[above_weak]["recall"] == 1.0
    assert all(r["recall"] in (1.0, 0.0) for r in rows.values())
    table = runner.invoke(app, ["quality", "--by-score", *db])
    assert "min_score" in table.output
