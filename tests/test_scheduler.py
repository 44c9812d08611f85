"""The scheduler in-process: schedule arithmetic, the durable "what is owed" rule, job
settings, timeouts, the store lock and log formats.

The daemon's ticks are driven directly here, against the real fixture site and SMTP
server, with ``MONITOR_CLOCK_OFFSET`` moved between ticks: the clock jumps two hours
while the process keeps running, as after a laptop sleep.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent

from monitor import clock
from monitor.config import Config, DigestConfig, MaintenanceConfig
from monitor.digest import build_digest
from monitor.errors import LockHeldError
from monitor.lock import StoreLock, current_holder
from monitor.logs import setup_logging
from monitor.scheduler import (
    FETCH_JOB,
    Daemon,
    baseline,
    cron_trigger,
    digest_job,
    latest_fire_between,
    owed_run,
    run_digest_if_owed,
)
from monitor.sitehost import SiteHost
from monitor.smtpsink import SmtpSink
from monitor.store import Store

RECIPIENT = "ops@example.org"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def hourly_config(site_config: Config) -> Config:
    """The fixture config with an hourly digest that is sent even when nothing is new,
    so every digest the scheduler builds is a mail the test can count."""
    group = DigestConfig(
        name="ops",
        recipients=[RECIPIENT],
        schedule="0 * * * *",
        timezone="Europe/Paris",
        send_when_empty=True,
    )
    return site_config.with_overrides(digests=[group])


@pytest.fixture
def daemon(hourly_config: Config) -> Iterator[Daemon]:
    handle = Daemon(hourly_config, tick_seconds=1)
    yield handle
    handle.store.close()


def source_fetches(store: Store) -> dict[str, int]:
    rows = store.query(
        "SELECT s.name, COUNT(f.id) FROM sources s"
        " LEFT JOIN fetches f ON f.source_id = s.id AND f.url = s.url GROUP BY s.name"
    )
    return {row[0]: row[1] for row in rows}


# -- schedule arithmetic ----------------------------------------------------------------------


def test_latest_fire_between_returns_only_the_last_scheduled_time() -> None:
    hourly = cron_trigger("0 * * * *", "Europe/Paris")
    assert latest_fire_between(hourly, at("2026-11-25T10:00:00"), at("2026-11-25T12:30:00")) == (
        at("2026-11-25T12:00:00")
    )
    assert latest_fire_between(hourly, at("2026-11-25T12:00:00"), at("2026-11-25T12:59:59")) is None
    # 07:00 in Paris is 06:00 UTC in winter, 05:00 UTC in summer.
    daily = cron_trigger("0 7 * * *", "Europe/Paris")
    winter = latest_fire_between(daily, at("2026-11-24T07:00:00"), at("2026-11-25T12:00:00"))
    summer = latest_fire_between(daily, at("2026-07-01T07:00:00"), at("2026-07-02T12:00:00"))
    assert winter == at("2026-11-25T06:00:00")
    assert summer == at("2026-07-02T05:00:00")


def test_a_new_job_owes_nothing_until_its_next_time_then_one_run_however_long_the_gap(
    store: Store,
) -> None:
    hourly = cron_trigger("0 * * * *", "UTC")
    start = at("2026-11-25T09:30:00")
    assert owed_run(store, "digest:x", hourly, start) is None
    assert baseline(store, "digest:x", start) is True
    assert baseline(store, "digest:x", start + timedelta(hours=5)) is False
    assert owed_run(store, "digest:x", hourly, at("2026-11-25T09:59:59")) is None
    # Down from 09:30 to 12:10: three scheduled times passed, one run is owed, for 12:00.
    assert owed_run(store, "digest:x", hourly, at("2026-11-25T12:10:00")) == at(
        "2026-11-25T12:00:00"
    )


# -- digests through suspends and crashes --------------------------------------------------------


def test_a_two_hour_suspend_runs_each_source_once_and_sends_one_digest(
    daemon: Daemon, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        daemon.prepare()
        await daemon.tick()
        assert set(source_fetches(daemon.store).values()) == {1}
        assert smtp.messages == []  # the schedule starts now; nothing owed yet

        monkeypatch.setenv("MONITOR_CLOCK_OFFSET", "7200")  # the laptop wakes up
        for _ in range(3):
            await daemon.tick()
        fetched = source_fetches(daemon.store)
        assert fetched["IP Policy Daily"] == 2 and fetched["Trade Wire"] == 2
        assert fetched["Ministry of Commerce (listing)"] == 1  # 6 h interval
        assert len(smtp.messages) == 1

        monkeypatch.setenv("MONITOR_CLOCK_OFFSET", str(7200 + 3600))  # one more hour
        await daemon.tick()
        assert len(smtp.messages) == 2

    asyncio.run(scenario())
    assert {m.message_id for m in smtp.messages} == {
        row[0] for row in daemon.store.query("SELECT message_id FROM digests")
    }


def test_a_digest_built_before_a_crash_is_not_built_again(
    hourly_config: Config, store: Store, smtp: SmtpSink
) -> None:
    group = hourly_config.digests[0]
    start = clock.now()
    baseline(store, digest_job(group), start)
    later = start + timedelta(hours=2)
    build_digest(store, hourly_config, group, now=later)  # ...and the daemon died here
    detail = run_digest_if_owed(store, hourly_config, group, later + timedelta(seconds=5))
    assert "built" in detail
    assert store.scalar("SELECT COUNT(*) FROM digests") == 1
    assert len(smtp.messages) == 1
    assert run_digest_if_owed(store, hourly_config, group, later + timedelta(seconds=9)) == (
        "not due"
    )


def test_a_digest_deferred_while_smtp_is_down_is_delivered_by_a_later_tick(
    daemon: Daemon, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        daemon.prepare()
        await daemon.tick()
        smtp.stop()
        monkeypatch.setenv("MONITOR_CLOCK_OFFSET", "3600")
        await daemon.tick()
        assert daemon.store.scalar("SELECT state FROM digests") == "deferred"
        smtp.start()
        await daemon.tick()  # the retry is not due yet: no hammering a server that was down
        assert smtp.messages == []
        monkeypatch.setenv("MONITOR_CLOCK_OFFSET", str(3600 + 120))  # past the 60 s backoff
        await daemon.tick()
        assert daemon.store.scalar("SELECT state FROM digests WHERE id = 1") == "sent"

    asyncio.run(scenario())
    first = daemon.store.scalar("SELECT message_id FROM digests WHERE id = 1")
    # (If the two minutes crossed an hour, the next hourly digest came too: only count ours.)
    assert [m.message_id for m in smtp.messages].count(first) == 1
    delivered = daemon.store.query("SELECT job, outcome FROM runs WHERE detail LIKE '%#1 sent%'")
    assert [tuple(row) for row in delivered] in ([("deliver", "ok")], [("digest:ops", "ok")])


# -- the APScheduler side ------------------------------------------------------------------------


@pytest.fixture
def far_maintenance_daemon(hourly_config: Config) -> Iterator[Daemon]:
    """The daemon with its maintenance cron twelve hours from now.

    APScheduler coalesces a late job to its latest due fire time: with the default 03:30,
    a job made two hours late between 03:30 and 05:30 reported the 03:30 run instead.
    """
    zone = ZoneInfo(hourly_config.general.timezone)
    hour = (datetime.now(zone) + timedelta(hours=12)).hour
    config = hourly_config.with_overrides(
        maintenance=MaintenanceConfig(schedule=f"30 {hour} * * *")
    )
    handle = Daemon(config, tick_seconds=1)
    yield handle
    handle.store.close()


async def _serve(daemon: Daemon) -> asyncio.Task[None]:
    """Start the daemon and return its task once its scheduler runs."""
    serving = asyncio.create_task(daemon.serve())
    while daemon.scheduler is None or not daemon.scheduler.running:
        await asyncio.sleep(0.01)
    return serving


async def _stop_after_a_late_run(daemon: Daemon, serving: asyncio.Task[None]) -> None:
    """Wait up to 5 s for a ``late`` row in ``runs``, then stop the daemon."""
    for _ in range(100):
        if daemon.store.scalar("SELECT 1 FROM runs WHERE outcome = 'late'"):
            break
        await asyncio.sleep(0.05)
    daemon.request_stop()
    await asyncio.wait_for(serving, 10)


def _seconds_late(detail: str) -> int:
    return int(detail.split("started ", 1)[1].split(" s late")[0])


def test_jobs_never_drop_a_late_run_and_never_pile_up(far_maintenance_daemon: Daemon) -> None:
    daemon = far_maintenance_daemon

    async def scenario() -> dict[str, object]:
        serving = await _serve(daemon)
        assert daemon.scheduler is not None
        jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
        # A job two hours late (the machine slept through it) still runs, and says so.
        daemon.scheduler.modify_job(
            "maintenance", next_run_time=datetime.now(UTC) - timedelta(hours=2)
        )
        await _stop_after_a_late_run(daemon, serving)
        return jobs

    jobs = asyncio.run(scenario())
    assert set(jobs) == {"tick", "digest:ops", "maintenance"}
    for job in jobs.values():
        assert job.misfire_grace_time is None  # type: ignore[attr-defined]
        assert job.coalesce is True  # type: ignore[attr-defined]
    assert jobs["digest:ops"].max_instances == 1  # type: ignore[attr-defined]
    assert str(jobs["digest:ops"].trigger.timezone) == "Europe/Paris"  # type: ignore[attr-defined]
    outcome = daemon.store.scalar("SELECT outcome FROM runs WHERE job = 'daemon'")
    assert outcome == "stopped"
    late = daemon.store.query("SELECT job, detail FROM runs WHERE outcome = 'late'")
    assert [row["job"] for row in late] == ["maintenance"]
    assert 7200 <= _seconds_late(late[0]["detail"]) < 7260


def test_a_coalesced_backlog_is_reported_from_its_first_due_time(hourly_config: Config) -> None:
    """A machine asleep through three hourly runs: APScheduler coalesces them into one run
    and reports only the latest due time; the record says how late and how many were missed."""
    minute = (datetime.now(UTC) + timedelta(minutes=30)).minute  # never due during the test
    config = hourly_config.with_overrides(
        maintenance=MaintenanceConfig(schedule=f"{minute} * * * *")
    )
    daemon = Daemon(config, tick_seconds=1)

    async def scenario() -> None:
        serving = await _serve(daemon)
        assert daemon.scheduler is not None
        trigger = daemon.scheduler.get_job("maintenance").trigger
        now = datetime.now(UTC)
        latest = trigger.get_next_fire_time(None, now - timedelta(hours=1))
        assert latest is not None and latest <= now
        daemon.scheduler.modify_job("maintenance", next_run_time=latest - timedelta(hours=3))
        await _stop_after_a_late_run(daemon, serving)

    try:
        asyncio.run(scenario())
        late = daemon.store.query("SELECT job, detail FROM runs WHERE outcome = 'late'")
    finally:
        daemon.store.close()
    assert [row["job"] for row in late] == ["maintenance"]
    detail = late[0]["detail"]
    assert "3 missed run(s)" in detail
    assert 3 * 3600 <= _seconds_late(detail) < 4 * 3600


def test_a_run_skipped_because_the_last_one_still_runs_is_recorded_as_skipped(
    daemon: Daemon,
) -> None:
    """APScheduler reports it as a JobSubmissionEvent: it must not be read as a run."""
    event = JobSubmissionEvent(
        EVENT_JOB_MAX_INSTANCES, "maintenance", "default", [datetime.now(UTC) - timedelta(hours=1)]
    )
    daemon._on_event(event)
    rows = daemon.store.query("SELECT job, outcome FROM runs WHERE job = 'maintenance'")
    assert [(row["job"], row["outcome"]) for row in rows] == [("maintenance", "skipped")]


def test_a_fetch_over_its_timeout_is_cancelled_logged_and_redone(
    daemon: Daemon, site: SiteHost
) -> None:
    site.fault("/ipnews/feed.xml", delay=1.5, times=1)
    daemon.timeouts[FETCH_JOB] = 0.3

    async def scenario() -> None:
        daemon.prepare()
        await daemon.tick()

    asyncio.run(scenario())
    run = daemon.store.query("SELECT outcome, detail FROM runs WHERE job = 'fetch'")[0]
    assert run["outcome"] == "timeout"
    assert "timeout" in run["detail"]
    # The slow source never got a next_fetch_at, so the next tick fetches it again.
    assert "IP Policy Daily" in daemon.store.due_source_names(clock.now_iso())
    time.sleep(1.5)  # let the server's delayed reply finish before the site stops


# -- lock and logs -------------------------------------------------------------------------------


def test_the_store_lock_admits_one_holder_and_names_it(tmp_path: pytest.TempPathFactory) -> None:
    database = tmp_path / "monitor.db"  # type: ignore[operator]
    assert current_holder(database) is None
    with StoreLock(database) as held:
        assert held.holder is not None
        with pytest.raises(LockHeldError, match=f"pid {held.holder.pid} on "):
            StoreLock(database).acquire()
        holder = current_holder(database)
        assert holder is not None and holder.pid == held.holder.pid
    assert current_holder(database) is None
    with StoreLock(database):  # released means takeable again
        pass


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_are_one_object_per_line_with_extra_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    logging.getLogger("monitor.test").info("fetched %d", 3, extra={"source": "Trade Wire"})
    logging.getLogger("monitor.test").debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("monitor.test").exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "fetched 3" and lines[0]["source"] == "Trade Wire"
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "monitor.test"
    assert "ValueError: boom" in lines[1]["exc"]


def test_logging_rejects_unknown_formats_and_levels(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="text, json"):
        setup_logging("INFO", "xml")
    with pytest.raises(ValueError, match="DEBUG"):
        setup_logging("LOUD", "text")
