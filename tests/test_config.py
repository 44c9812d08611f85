"""Configuration: the shipped files load, and every mistake names its file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import default_config_dir, load_config, parse_duration
from monitor.errors import ConfigError


def test_shipped_config_loads() -> None:
    config = load_config()
    assert len(config.commitments) == 43
    assert len(config.sources) >= 10
    assert config.digests and config.digests[0].name == "daily"
    assert config.fetch.per_host == 2


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(default_config_dir(), target)
    return target


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


@pytest.mark.parametrize(
    ("filename", "addition", "expected"),
    [
        (
            "sources.toml",
            '[[source]]\nname = "Bad"\nkind = "feed"\nurl = "ftp://example.org/feed"\n',
            "is not an http(s) URL",
        ),
        (
            "sources.toml",
            '[[source]]\nname = "Bad"\nkind = "rss"\nurl = "https://example.org/feed"\n',
            "source[",
        ),
        (
            "sources.toml",
            '[[source]]\nname = "Listing"\nkind = "html"\nurl = "https://example.org/"\n',
            "needs selectors",
        ),
        (
            "sources.toml",
            '[[source]]\nname = "Typo"\nurl = "https://example.org/f"\nintervall = "1h"\n',
            "unknown key",
        ),
        (
            "digests.toml",
            '[[digest]]\nname = "x"\nrecipients = ["not-an-address"]\n',
            "is not an email address",
        ),
        (
            "digests.toml",
            '[[digest]]\nname = "y"\nrecipients = ["a@b.org"]\nschedule = "every day"\n',
            "is not a cron line",
        ),
        (
            "digests.toml",
            '[[digest]]\nname = "z"\nrecipients = ["a@b.org"]\ntimezone = "Mars/Olympus"\n',
            "unknown time zone",
        ),
        (
            "digests.toml",
            '[[digest]]\nname = "w"\nrecipients = ["a@b.org"]\ncommitments = ["NOPE-1"]\n',
            "unknown commitment 'NOPE-1'",
        ),
    ],
)
def test_bad_config_names_file_and_key(
    config_dir: Path, filename: str, addition: str, expected: str
) -> None:
    _append(config_dir / filename, addition)
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    message = str(caught.value)
    assert filename in message
    assert expected in message


def test_broken_toml_is_reported_with_line(config_dir: Path) -> None:
    _append(config_dir / "monitor.toml", "[general\nfoo = 1")
    with pytest.raises(ConfigError, match=r"monitor\.toml: not valid TOML.*line"):
        load_config(config_dir)


def test_bad_value_names_section_key(config_dir: Path) -> None:
    text = (config_dir / "monitor.toml").read_text().replace("per_host = 2", "per_host = 0")
    (config_dir / "monitor.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"monitor\.toml: fetch\.per_host: .*greater than"):
        load_config(config_dir)


def test_dedupe_window_reaches_the_stage(config_dir: Path, tmp_path: Path) -> None:
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    assert load_config(config_dir).dedupe.window_days == 14
    text = (config_dir / "monitor.toml").read_text().replace("window_days = 14", "window_days = 3")
    (config_dir / "monitor.toml").write_text(text)
    config = load_config(config_dir)
    store = Store.open(tmp_path / "store.db")
    try:
        assert Pipeline(config, store).deduper.window_days == 3
    finally:
        store.close()
    (config_dir / "monitor.toml").write_text(text.replace("window_days = 3", "window_days = -1"))
    with pytest.raises(ConfigError, match=r"monitor\.toml: dedupe\.window_days"):
        load_config(config_dir)


def test_bad_query_names_commitment(config_dir: Path) -> None:
    _append(
        config_dir / "commitments.toml",
        '[[commitment]]\nid = "X-1"\nactor = "A"\ntitle = "T"\nquery = \'(patent AND\'\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    assert "commitments.toml" in str(caught.value)
    assert "X-1" in str(caught.value)


def test_missing_directory() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/config/dir")


def test_cli_reports_config_error_without_traceback(config_dir: Path) -> None:
    _append(config_dir / "sources.toml", '[[source]]\nname = "B"\nurl = "nope"\n')
    result = CliRunner().invoke(app, ["check-config", "--config", str(config_dir)])
    assert result.exit_code == 2
    output = result.output
    assert "sources.toml" in output and "url" in output
    assert "Traceback" not in output


def test_secret_comes_from_environment_only(config_dir: Path, monkeypatch) -> None:
    _append(config_dir / "monitor.toml", "")
    text = (config_dir / "monitor.toml").read_text()
    (config_dir / "monitor.toml").write_text(
        text.replace("\n[smtp]\n", '\n[smtp]\npassword = "x"\n', 1)
    )
    with pytest.raises(ConfigError, match=r"smtp\.password: unknown key"):
        load_config(config_dir)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", "s3cret-value")
    config = load_config(default_config_dir())
    assert config.smtp.password == "s3cret-value"
    assert "s3cret-value" not in repr(config)


@pytest.mark.parametrize(
    ("raw", "seconds"), [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0)]
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


def test_database_override_wins(config_dir: Path, tmp_path: Path, monkeypatch) -> None:
    assert load_config(config_dir).database_path == config_dir.resolve() / "monitor.db"
    monkeypatch.setenv("MONITOR_DB", str(tmp_path / "env.db"))
    assert load_config(config_dir).database_path == (tmp_path / "env.db").resolve()
    assert (
        load_config(config_dir, database=str(tmp_path / "flag.db")).database_path
        == (tmp_path / "flag.db").resolve()
    )
