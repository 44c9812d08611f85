"""Operations over a real store filled by a real cycle: maintenance, status, export,
backup, the Datasette canned queries, and the CLI commands over them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor import clock, ops
from monitor.cli import app
from monitor.config import Config
from monitor.demo import demo_config, demo_site_dir
from monitor.errors import MonitorError
from monitor.lock import StoreLock
from monitor.pipeline import Pipeline
from monitor.scheduler import finish_run, start_run
from monitor.serve import INSTALL_HINT, METADATA_FILE, build_datasette
from monitor.sitehost import SiteHost
from monitor.store import Store


@pytest.fixture(scope="module")
def filled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store after one full cycle over the fixture site, built once for the module."""
    path = tmp_path_factory.mktemp("template") / "monitor.db"
    with SiteHost(demo_site_dir()) as site:
        store = Store.open(path)
        asyncio.run(Pipeline(demo_config(site, 2525, path), store).run_cycle(force=True))
        assert store.scalar("SELECT COUNT(*) FROM hits") > 0
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
    return path


@pytest.fixture
def filled(site_config: Config, filled_template: Path) -> Iterator[Store]:
    """A private copy of the filled store at ``site_config.database_path``."""
    shutil.copy(filled_template, site_config.database_path)
    store = Store.open(site_config.database_path)
    yield store
    store.close()


def test_maintenance_prunes_old_logs_only_and_keeps_each_jobs_last_run(
    site_config: Config, filled: Store
) -> None:
    old = clock.iso(clock.now() - timedelta(days=200))
    with filled.transaction() as conn:
        conn.execute("UPDATE fetches SET started_at = ? WHERE id % 2 = 0", (old,))
        for job in ("fetch", "fetch", "maintenance"):
            run = start_run(filled, job)
            finish_run(filled, run, "ok", None)
        conn.execute("UPDATE runs SET started_at = ?", (old,))
    fetches = filled.scalar("SELECT COUNT(*) FROM fetches")
    old_fetches = filled.scalar("SELECT COUNT(*) FROM fetches WHERE started_at = ?", (old,))
    articles = filled.scalar("SELECT COUNT(*) FROM articles")

    result = ops.maintenance(filled, site_config)

    assert result.fetches_deleted == old_fetches > 0
    assert filled.scalar("SELECT COUNT(*) FROM fetches") == fetches - old_fetches
    assert result.runs_deleted == 1  # the older of the two fetch runs
    assert {row[0] for row in filled.query("SELECT job FROM runs")} == {"fetch", "maintenance"}
    assert filled.scalar("SELECT COUNT(*) FROM articles") == articles
    assert "pruned" in result.describe()


def test_status_reports_the_daemon_sources_and_digests(site_config: Config, filled: Store) -> None:
    result = ops.status(site_config)
    assert result.running is False and result.pid is None
    assert result.database_bytes > 0
    assert {s["health"] for s in result.sources} == {"ok"}
    assert [d["group"] for d in result.digests] == ["demo"]
    assert result.digests[0]["next_run"].endswith("07:00:00+00:00")

    with StoreLock(site_config.database_path):
        running = ops.status(site_config)
    assert running.running is True
    assert running.pid == os.getpid()
    assert running.uptime_seconds is not None and running.uptime_seconds >= 0
    text = ops.format_status(running)
    assert f"daemon: running, pid {running.pid}" in text
    assert "IP Policy Daily: ok" in text
    assert json.loads(ops.status_json(running))["sources"]


def test_status_names_failing_sources_and_failed_jobs(site_config: Config, filled: Store) -> None:
    with filled.transaction() as conn:
        conn.execute(
            "UPDATE sources SET consecutive_failures = 3, last_error = 'HTTP 503'"
            " WHERE name = 'Trade Wire'"
        )
        run = start_run(filled, "digest:demo")
        finish_run(filled, run, "timeout", "exceeded its 600 s timeout")
    text = ops.format_status(ops.status(site_config))
    assert "Trade Wire: failing (3x)" in text and "error: HTTP 503" in text
    assert "digest:demo: timeout exceeded its 600 s timeout" in text


def test_export_hits_and_articles_by_date_range(filled: Store) -> None:
    hits = filled.scalar("SELECT COUNT(*) FROM hits")
    out = io.StringIO()
    assert ops.export(filled, "hits", out, fmt="csv") == hits
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == hits
    assert {"commitment_id", "story", "article_url", "evidence"} <= set(rows[0])

    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    empty = io.StringIO()
    assert ops.export(filled, "hits", empty, fmt="csv", since=tomorrow) == 0
    assert empty.getvalue().startswith("hit_id,")  # a header even when empty

    out = io.StringIO()
    articles = ops.export(filled, "articles", out, fmt="json", until=tomorrow)
    parsed = json.loads(out.getvalue())
    assert len(parsed) == articles == filled.scalar("SELECT COUNT(*) FROM articles")
    assert json.loads(_export_json(filled, since=tomorrow)) == []
    with pytest.raises(MonitorError, match="not a date"):
        ops.export(filled, "hits", io.StringIO(), since="last tuesday")


def _export_json(store: Store, **bounds: str) -> str:
    out = io.StringIO()
    ops.export(store, "articles", out, fmt="json", **bounds)  # type: ignore[arg-type]
    return out.getvalue()


def test_backup_is_a_consistent_copy_taken_while_another_connection_writes(
    site_config: Config, filled: Store, tmp_path: Path
) -> None:
    (tmp_path / "backups").mkdir()  # an existing directory gets a dated file
    writer = Store.open(site_config.database_path)
    writer.conn.execute("BEGIN IMMEDIATE")
    writer.conn.execute("DELETE FROM hits")  # uncommitted: must not be in the copy
    try:
        copy = ops.backup(site_config.database_path, tmp_path / "backups")
    finally:
        writer.conn.execute("ROLLBACK")
        writer.close()
    assert copy.parent == tmp_path / "backups" and copy.suffix == ".db"
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0] == filled.scalar(
            "SELECT COUNT(*) FROM hits"
        )
    finally:
        conn.close()
    with pytest.raises(MonitorError, match="--force"):
        ops.backup(site_config.database_path, copy)
    assert ops.backup(site_config.database_path, copy, overwrite=True) == copy


def canned_queries() -> dict[str, dict[str, str]]:
    return json.loads(METADATA_FILE.read_text(encoding="utf-8"))["queries"]


@pytest.mark.parametrize("name", sorted(canned_queries()))
def test_every_canned_query_runs_on_a_filled_store(filled: Store, name: str) -> None:
    with filled.transaction() as conn:
        conn.execute("UPDATE sources SET consecutive_failures = 2 WHERE name = 'Trade Wire'")
    sql = canned_queries()[name]["sql"]
    params = {p: "" for p in re.findall(r":(\w+)", sql)}
    if "q" in params:
        params["q"] = "patent"
    rows = filled.query(sql, params)
    assert rows, f"{name} returned nothing on the fixture store"
    if name == "silent_sources":  # the others brought news minutes ago
        assert [(row["name"], row["why"]) for row in rows] == [("Trade Wire", "failing")]


def test_serve_without_datasette_says_how_to_install_it(
    filled: Store, site_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasette", None)
    monkeypatch.setitem(sys.modules, "datasette.app", None)
    with pytest.raises(MonitorError, match=re.escape(INSTALL_HINT)):
        build_datasette(site_config.database_path)
    result = CliRunner().invoke(app, ["serve", "--db", str(site_config.database_path)])
    assert result.exit_code == 1
    assert INSTALL_HINT in result.output


def test_datasette_serves_canned_queries_and_search_read_only(
    filled: Store, site_config: Config
) -> None:
    pytest.importorskip("datasette")
    datasette = build_datasette(site_config.database_path)
    name = site_config.database_path.stem

    async def fetch() -> tuple[list[dict], list[dict], int, int]:
        latest = await datasette.client.get(f"/{name}/latest_hits_per_commitment.json?_shape=array")
        search = await datasette.client.get(f"/{name}/articles.json?_search=patent&_shape=array")
        write = await datasette.client.get(
            f"/{name}.json?sql=" + "UPDATE+sources+SET+enabled+%3D+0"
        )
        silent = await datasette.client.get(f"/{name}/silent_sources.json?days=0")
        return latest.json(), search.json(), write.status_code, silent.status_code

    latest, search, write_status, silent_status = asyncio.run(fetch())
    assert {row["commitment_id"] for row in latest} == {
        row[0] for row in filled.query("SELECT DISTINCT commitment_id FROM hits")
    }
    assert search and all("id" in row for row in search)
    assert write_status >= 400
    assert silent_status == 200
    assert filled.scalar("SELECT COUNT(*) FROM sources WHERE enabled = 0") == 0


def test_cli_export_backup_and_status(filled: Store, site_config: Config, tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(site_config.database_path)
    exported = runner.invoke(app, ["export", "hits", "--db", db, "--format", "json"])
    assert exported.exit_code == 0, exported.output
    assert len(json.loads(exported.stdout)) == filled.scalar("SELECT COUNT(*) FROM hits")
    target = tmp_path / "copy.db"
    backed_up = runner.invoke(app, ["backup", str(target), "--db", db])
    assert backed_up.exit_code == 0, backed_up.output
    assert target.exists() and str(target) in backed_up.stdout
    status = runner.invoke(app, ["status", "--db", db])
    assert status.exit_code == 0, status.output
    assert "daemon: not running (never started on this store)" in status.stdout


# -- deploy files ---------------------------------------------------------------------------------

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_deploy_files_only_use_commands_and_settings_that_exist() -> None:
    """The unit, Dockerfile, compose file and deploy README call real CLI commands."""
    commands = {
        command.name or (command.callback.__name__ if command.callback else "")
        for command in app.registered_commands
    }
    everything: set[str] = set()
    for name in ("ipr-monitor.service", "Dockerfile", "docker-compose.yml", "README.md"):
        text = (DEPLOY / name).read_text(encoding="utf-8")
        invocations = r"(?:^\s*|/bin/|exec (?:monitor )?|`)monitor (?:--?\S+ )*([a-z][a-z-]+)\b"
        used = set(re.findall(invocations, text, re.MULTILINE))
        used |= set(re.findall(r'\["(run|serve|status)"', text))
        unknown = used - commands
        assert not unknown, f"{name} uses unknown commands {unknown}"
        everything |= used
    assert {"run", "check-config", "status", "export", "backup", "serve"} <= everything
    unit = (DEPLOY / "ipr-monitor.service").read_text(encoding="utf-8")
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "Restart=on-failure" in unit
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# syntax=")
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert 'VOLUME ["/data"]' in dockerfile


def test_the_compose_file_is_valid_yaml_with_the_daemon_and_web_services() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    monitor = compose["services"]["monitor"]
    assert monitor["command"][0] == "run" and "ipr-data:/data" in monitor["volumes"]
    assert compose["services"]["web"]["command"][0] == "serve"
