"""``monitor digest``: preview without sending, send into the outbox, say what happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.digest_fixture import FIXTURE_DIR, fixture_clock, load_fixture
from monitor.store import Store


@pytest.fixture(autouse=True)
def at_fixture_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CLI at the fixture's moment: its hits are from one fixed day, and a first digest
    looks back only a week, so on the real clock they would age out of every digest."""
    data = json.loads((FIXTURE_DIR / "store.json").read_text("utf-8"))
    offset = (fixture_clock(data) - datetime.now(UTC)).total_seconds()
    monkeypatch.setenv("MONITOR_CLOCK_OFFSET", str(offset))


def fixture_db(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.db"
    store = Store.open(path)
    load_fixture(store)
    store.close()
    return path


def digests(path: Path) -> list[tuple[str, str]]:
    store = Store.open(path)
    try:
        return [tuple(r) for r in store.query("SELECT group_name, state FROM digests")]
    finally:
        store.close()


def test_preview_writes_files_and_sends_nothing(tmp_path: Path) -> None:
    db = fixture_db(tmp_path)
    html, text = tmp_path / "p.html", tmp_path / "p.txt"

    result = CliRunner().invoke(
        app, ["digest", "--db", str(db), "--preview", str(html), "--preview-text", str(text)]
    )

    assert result.exit_code == 0, result.output
    assert "preview of daily" in result.output
    assert "burden of proof" in text.read_text() and "<html" in html.read_text()
    assert digests(db) == [] and not (tmp_path / "outbox").exists()


def test_send_goes_to_the_outbox_once_then_reports_nothing_new(tmp_path: Path) -> None:
    db = fixture_db(tmp_path)
    runner = CliRunner()

    first = runner.invoke(app, ["digest", "--db", str(db)])
    second = runner.invoke(app, ["digest", "--db", str(db)])

    assert first.exit_code == 0, first.output
    assert "digest daily #1: sent, 1 recipient(s) into" in first.output
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert second.exit_code == 0 and "daily: nothing new" in second.output
    assert digests(db) == [("daily", "sent")]


def test_unknown_group_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["digest", "--db", str(fixture_db(tmp_path)), "--group", "x"])
    assert result.exit_code != 0 and "no digest group named 'x'" in result.output
