"""Golden digests: the fixture store rendered at a fixed clock must match tests/golden/ exactly.

A template change shows up here as a diff to read. When it is deliberate, regenerate:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_digest_golden.py

and review ``git diff tests/golden`` before committing.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from monitor.digest import build_digest, compose_message, render_preview
from monitor.digest_fixture import FIXTURE_GROUP, fixture_clock, fixture_config, load_fixture
from monitor.store import Store

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8", newline="")
        return
    assert path.exists(), f"{path} is missing; create it with UPDATE_GOLDEN=1"
    expected = path.read_bytes().decode("utf-8")
    assert actual == expected, (
        f"{name} differs from the golden file; if deliberate, UPDATE_GOLDEN=1"
    )


def test_fixture_digest_matches_golden_text_and_html(store: Store, tmp_path: Path) -> None:
    now = fixture_clock(load_fixture(store))
    html, text = render_preview(store, fixture_config(tmp_path), FIXTURE_GROUP, now=now)
    check_golden("digest-trade-and-pharma.txt", text)
    check_golden("digest-trade-and-pharma.html", html)
    # the plain part reads in an 80-column terminal: only a long URL may overflow
    assert all(len(line) <= 78 or "://" in line for line in text.splitlines())


def test_fixture_digest_matches_golden_eml(store: Store, tmp_path: Path) -> None:
    """The whole message, headers and MIME structure, with its random Message-ID pinned."""
    now = fixture_clock(load_fixture(store))
    config = fixture_config(tmp_path)
    digest_id = build_digest(store, config, FIXTURE_GROUP, now=now)
    row = dict(store.query("SELECT * FROM digests WHERE id = ?", (digest_id,))[0])
    row["message_id"] = "<digest.trade-and-pharma.golden@ipr.example>"
    message = compose_message(row, list(FIXTURE_GROUP.recipients), config)
    check_golden("digest-trade-and-pharma.eml", message.as_string())


def test_empty_digest_matches_golden_text(store: Store, tmp_path: Path) -> None:
    now = fixture_clock(load_fixture(store))
    group = FIXTURE_GROUP.model_copy(update={"tags": ["nothing"], "send_when_empty": True})
    _, text = render_preview(store, fixture_config(tmp_path), group, now=now)
    check_golden("digest-empty.txt", text)


def test_updated_story_digest_matches_golden_text(store: Store, tmp_path: Path) -> None:
    """The next morning: story 1 gained a source (WIPO news) after it was mailed."""
    now = fixture_clock(load_fixture(store))
    config = fixture_config(tmp_path)
    build_digest(store, config, FIXTURE_GROUP, now=now)
    later = now + timedelta(days=1)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO articles (url, canonical_url, source_id, story_id, title, fetched_at)"
            " VALUES ('https://wipo.example/n/1', 'https://wipo.example/n/1', 4, 1, 'WIPO', ?)",
            (later.isoformat(),),
        )
        conn.execute("UPDATE stories SET updated_at = ? WHERE id = 1", (later.isoformat(),))
    _, text = render_preview(store, config, FIXTURE_GROUP, now=later)
    check_golden("digest-updated.txt", text)
