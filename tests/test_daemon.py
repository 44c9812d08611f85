"""The real daemon, as a subprocess, against the fixture site and a real SMTP server.

These tests start ``python -m monitor run`` the way systemd or Docker would, send it
real signals, and then look only at what users can see: the store and the mail the
SMTP server received. The tick is one second so cycles happen quickly; the 2-hour
"suspend" is ``MONITOR_CLOCK_OFFSET=7200`` on a restart, so nothing waits for hours.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.sitehost import SiteHost
from monitor.smtpsink import SmtpSink

REPO = Path(__file__).resolve().parent.parent
RECIPIENT = "analyst@example.org"
#: Generous bounds: the daemon imports trafilatura and compiles 43 queries on start.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def write_config(
    directory: Path,
    site: SiteHost,
    smtp_port: int,
    *,
    digest_schedule: str = "0 * * * *",
    extra_sources: str = "",
) -> Path:
    """A config directory pointing at the fixture site and SMTP server (store inside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "monitor.toml").write_text(
        f"""
[general]
database = "monitor.db"
log_level = "INFO"

[fetch]
allow_private_networks = true
min_delay = 0
respect_robots = false

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "ipr-monitor <monitor@example.org>"
timeout = 10
""",
        encoding="utf-8",
    )
    sources = (site.root / "sources.toml").read_text(encoding="utf-8")
    (directory / "sources.toml").write_text(
        sources.replace("{site}", site.base_url) + extra_sources, encoding="utf-8"
    )
    shutil.copy(REPO / "config" / "commitments.toml", directory / "commitments.toml")
    (directory / "digests.toml").write_text(
        f"""
[[digest]]
name = "hourly"
recipients = ["{RECIPIENT}"]
schedule = "{digest_schedule}"
timezone = "Europe/Paris"
send_when_empty = true
""",
        encoding="utf-8",
    )
    return directory


class DaemonProcess:
    """``monitor run`` in a subprocess, with its stderr kept for assertions."""

    def __init__(self, config_dir: Path, *, offset: float = 0, extra: tuple[str, ...] = ()) -> None:
        self.config_dir = config_dir
        env = {**os.environ, "MONITOR_CLOCK_OFFSET": str(offset), "PYTHONUNBUFFERED": "1"}
        env.pop("MONITOR_DB", None)
        env.pop("MONITOR_CONFIG", None)
        self.log_path = config_dir / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "run",
                "--config",
                str(config_dir),
                "--tick",
                "1",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config_dir,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, and the exit code; fails the test if it does not stop in time."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the daemon did not stop within {timeout} s of SIGTERM:\n{self.log}")
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Started daemons are killed at the end even when a test fails half-way."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for(
    condition: Callable[[], Any], what: str, daemon: DaemonProcess, timeout: float = START_TIMEOUT
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(
                f"the daemon exited ({daemon.process.returncode}) waiting for {what}:\n{daemon.log}"
            )
        try:
            result = condition()
        except sqlite3.OperationalError:  # store not created yet
            result = None
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{daemon.log}")


def source_fetches(db: Path) -> dict[str, int]:
    """How many times each source's own URL (feed/listing) was fetched."""
    rows = query(
        db,
        "SELECT s.name, COUNT(f.id) AS n FROM sources s"
        " LEFT JOIN fetches f ON f.source_id = s.id AND f.url = s.url GROUP BY s.name",
    )
    return {row["name"]: row["n"] for row in rows}


def all_fetched(db: Path) -> bool:
    rows = query(db, "SELECT last_success_at FROM sources WHERE enabled")
    return bool(rows) and all(row[0] for row in rows)


def test_daemon_runs_stops_refuses_a_second_and_catches_up_once_after_a_suspend(
    tmp_path: Path, site: SiteHost, smtp: SmtpSink, daemons: list[DaemonProcess]
) -> None:
    config_dir = write_config(tmp_path / "config", site, smtp.port)
    db = config_dir / "monitor.db"

    first = DaemonProcess(config_dir)
    daemons.append(first)
    wait_for(lambda: all_fetched(db), "every source fetched", first)
    wait_for(
        lambda: query(db, "SELECT 1 FROM runs WHERE job = 'fetch' AND outcome = 'ok'"),
        "the fetch run recorded",
        first,
    )
    assert query(db, "SELECT COUNT(*) FROM hits")[0][0] > 0
    # A fresh install starts its digest schedule now: no digest for the hour already begun.
    assert smtp.messages == []

    second = DaemonProcess(config_dir)
    daemons.append(second)
    assert second.process.wait(START_TIMEOUT) == 1
    assert f"pid {first.pid}" in second.log
    assert "another ipr-monitor daemon holds the store" in second.log

    status = subprocess.run(
        [sys.executable, "-m", "monitor", "status", "--config", str(config_dir), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=True,
    )
    reported = json.loads(status.stdout)
    assert reported["running"] is True and reported["pid"] == first.pid
    assert {s["health"] for s in reported["sources"]} == {"ok"}

    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < STOP_TIMEOUT
    assert query(db, "SELECT outcome FROM runs WHERE job = 'daemon'")[0][0] == "stopped"
    before = source_fetches(db)
    assert set(before.values()) == {1}
    stopped = subprocess.run(
        [sys.executable, "-m", "monitor", "status", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=True,
    )
    assert "daemon: not running; last stopped" in stopped.stdout

    # Two hours pass with the daemon down (a suspended laptop): two hourly digest
    # times and two feed intervals go by. On start each due source is fetched once
    # and the digest is sent once, not once per missed hour.
    after_suspend = DaemonProcess(config_dir, offset=7200)
    daemons.append(after_suspend)
    wait_for(lambda: smtp.messages, "the owed digest", after_suspend)
    wait_for(
        lambda: query(db, "SELECT COUNT(*) FROM runs WHERE job = 'fetch'")[0][0] >= 2,
        "the catch-up fetch",
        after_suspend,
    )
    time.sleep(2)  # two more ticks: nothing else is due
    assert after_suspend.stop() == 0

    fetched = source_fetches(db)
    assert fetched["IP Policy Daily"] == 2  # interval 1h: due again
    assert fetched["Trade Wire"] == 2
    assert fetched["Ministry of Commerce (listing)"] == 1  # interval 6h: not yet
    assert len(smtp.messages) == 1
    assert smtp.messages[0].rcpt_tos == (RECIPIENT,)
    digests = query(db, "SELECT state, period_end FROM digests")
    assert [row["state"] for row in digests] == ["sent"]
    state = query(db, "SELECT * FROM schedule_state WHERE job = 'digest:hourly'")[0]
    assert state["last_outcome"] == "built"
    assert state["last_period_end"].endswith(":00:00+00:00")  # the cron time, not "now"


def test_sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one(
    tmp_path: Path, site: SiteHost, smtp: SmtpSink, daemons: list[DaemonProcess]
) -> None:
    config_dir = write_config(tmp_path / "config", site, smtp.port)
    db = config_dir / "monitor.db"
    daemon = DaemonProcess(config_dir, extra=("--log-format", "json"))
    daemons.append(daemon)
    wait_for(lambda: all_fetched(db), "every source fetched", daemon)

    extra = f"""
[[source]]
name = "Trade Wire again"
kind = "feed"
url = "{site.base_url}/tradewire/atom.xml?copy=1"
interval = "1h"
"""
    write_config(config_dir, site, smtp.port, extra_sources=extra)
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: query(
            db,
            "SELECT 1 FROM sources WHERE name = 'Trade Wire again' AND last_success_at IS NOT NULL",
        ),
        "the new source fetched after SIGHUP",
        daemon,
    )
    assert query(db, "SELECT outcome FROM runs WHERE job = 'reload'")[0][0] == "ok"

    (config_dir / "monitor.toml").write_text("[general]\nlog_levle = 'DEBUG'\n", encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: query(db, "SELECT 1 FROM runs WHERE job = 'reload' AND outcome = 'error'"),
        "the failed reload recorded",
        daemon,
    )
    detail = query(db, "SELECT detail FROM runs WHERE job = 'reload' AND outcome = 'error'")[0][0]
    assert "log_levle" in detail and "kept the running config" in detail
    time.sleep(1.5)
    assert daemon.process.poll() is None, "a bad config must not stop the daemon"
    enabled = {row[0] for row in query(db, "SELECT name FROM sources WHERE enabled")}
    assert "Trade Wire again" in enabled
    assert daemon.stop() == 0

    lines = [json.loads(line) for line in daemon.log.splitlines() if line.startswith("{")]
    assert any("config reload failed" in line["message"] for line in lines)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.mark.slow
def test_a_killed_daemon_leaves_no_half_run_and_the_next_start_redoes_it(
    tmp_path: Path, site: SiteHost, smtp: SmtpSink, daemons: list[DaemonProcess]
) -> None:
    config_dir = write_config(tmp_path / "config", site, smtp.port)
    db = config_dir / "monitor.db"
    site.fault("/ministry/news/index.html", delay=30.0)  # the fetch cycle hangs here
    first = DaemonProcess(config_dir)
    daemons.append(first)
    wait_for(
        lambda: query(db, "SELECT 1 FROM runs WHERE job = 'fetch' AND outcome = 'running'"),
        "a fetch cycle under way",
        first,
    )
    time.sleep(2)
    first.kill()  # SIGKILL: no chance to clean up
    assert query(db, "SELECT next_fetch_at FROM sources WHERE name LIKE 'Ministry%'")[0][0] is None

    site.clear()
    second = DaemonProcess(config_dir)
    daemons.append(second)
    wait_for(lambda: all_fetched(db), "every source fetched after the restart", second)
    assert second.stop() == 0
    outcomes = [
        row[0] for row in query(db, "SELECT outcome FROM runs WHERE job = 'fetch' ORDER BY id")
    ]
    assert outcomes[0] == "interrupted"
    assert "ok" in outcomes[1:]


@pytest.mark.slow
def test_sigterm_during_a_slow_fetch_stops_within_seconds(
    tmp_path: Path, site: SiteHost, smtp: SmtpSink, daemons: list[DaemonProcess]
) -> None:
    config_dir = write_config(tmp_path / "config", site, smtp.port)
    db = config_dir / "monitor.db"
    site.fault("/ministry/news/index.html", delay=60.0)
    daemon = DaemonProcess(config_dir)
    daemons.append(daemon)
    wait_for(
        lambda: query(db, "SELECT 1 FROM runs WHERE job = 'fetch' AND outcome = 'running'"),
        "a fetch cycle under way",
        daemon,
    )
    time.sleep(1)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < STOP_TIMEOUT
    fetch = query(db, "SELECT outcome, detail FROM runs WHERE job = 'fetch'")[0]
    assert fetch["outcome"] == "interrupted"
    site.clear()
