"""The daemon: APScheduler drives time, SQLite decides what is due.

APScheduler 3's defaults lose work in a long-running service: a job more than one
second late is skipped (``misfire_grace_time=1``), a sleeping laptop wakes to a
backlog, and nothing it keeps in memory survives a crash. So, like Miniflux, the
scheduler here is a dumb ticker and every durable fact lives in the store:

* **Sources** are fetched by a *tick* (every ``tick`` seconds, 30 by default) that asks
  ``sources.next_fetch_at`` which are due. A source that was due while the daemon was
  down or asleep is fetched once, not once per missed interval; a fetch interrupted by
  a crash never advanced ``next_fetch_at``, so it is simply done again.
* **Digests** run on their cron in their time zone. ``schedule_state`` keeps, per
  ``digest:<group>``, the scheduled time last served (``last_period_end``); a digest is
  owed when a cron time after that has passed. However many times passed while the
  daemon was down, the group gets one digest, at start. The cron job and the tick both
  ask the same question, so neither a late cron job nor a suspend sends twice.
* **Maintenance** (WAL checkpoint, ``PRAGMA optimize``, fetch-log retention) is a daily
  cron job with the same durable bookkeeping under ``maintenance``.

Job settings are deliberate: ``misfire_grace_time=None`` (a late run is always still
useful because it only does what the store says is due), ``coalesce=True`` (a backlog
runs once) and ``max_instances=1``. Jobs run one at a time (one writer, one story in
the logs); each has a timeout. Every run that did something, and every late, failed,
timed-out or interrupted one, is a row in ``runs``, which ``monitor status`` shows.

One daemon per store (``monitor.lock``). SIGTERM/SIGINT let the current write finish
and stop within a few seconds; SIGHUP reloads the config, keeping the old one if the
new one does not validate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ADDED,
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_MODIFIED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor import clock
from monitor.config import Config, DigestConfig, load_config
from monitor.errors import ConfigError, MonitorError
from monitor.lock import StoreLock
from monitor.logs import set_level, setup_logging
from monitor.store import Store

log = logging.getLogger(__name__)

#: Seconds between ticks (each asks the store which sources are due).
TICK_SECONDS = 30.0
#: Longest a fetch cycle may take before it is cancelled (between two writes).
FETCH_TIMEOUT = 30 * 60.0
#: Longest a digest build + delivery, or a maintenance run, may take before it is
#: reported as over-long (they run in a thread, which cannot be cancelled safely).
DIGEST_TIMEOUT = 10 * 60.0
MAINTENANCE_TIMEOUT = 30 * 60.0
#: Seconds the daemon waits on SIGTERM for a digest or maintenance job to finish.
STOP_GRACE = 5.0
#: A job starting this many seconds after its scheduled time is logged as late.
LATE_AFTER = 60.0
#: How far back the schedule is searched for owed runs (bounds the cron walk).
LOOKBACK = timedelta(days=400)
#: Most fire times counted when reporting a coalesced backlog (bounds that walk too).
MAX_COUNTED_MISSES = 10_000

MAINTENANCE_JOB = "maintenance"
FETCH_JOB = "fetch"
DELIVER_JOB = "deliver"

T = TypeVar("T")


# -- schedule arithmetic (pure; used by the daemon and by ``monitor status``) ---------------


def digest_job(group: DigestConfig | str) -> str:
    """The job name of a digest group in ``runs`` and ``schedule_state``."""
    return f"digest:{group if isinstance(group, str) else group.name}"


def digest_timezone(config: Config, group: DigestConfig) -> str:
    """The group's zone when it set one, else ``general.timezone`` (as the digest does)."""
    return group.timezone if "timezone" in group.model_fields_set else config.general.timezone


def cron_trigger(line: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(line, timezone=ZoneInfo(timezone))


def next_fire_after(trigger: CronTrigger, moment: datetime) -> datetime | None:
    """The first scheduled time strictly after ``moment``."""
    return trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))


def latest_fire_between(trigger: CronTrigger, after: datetime, until: datetime) -> datetime | None:
    """The last scheduled time in ``(after, until]``, or None when none fell in it."""
    after = max(after, until - LOOKBACK)
    latest = None
    fire = next_fire_after(trigger, after)
    while fire is not None and fire <= until:
        latest = fire
        fire = next_fire_after(trigger, fire)
    return latest


def fires_from(trigger: Any, first: datetime, until: datetime) -> int:
    """How many fire times of ``trigger`` lie in ``[first, until)``, ``first`` counted.

    ``first`` is a time the job was due; the walk is capped at ``MAX_COUNTED_MISSES``.
    """
    count = 0
    fire: datetime | None = first
    while fire is not None and fire < until and count < MAX_COUNTED_MISSES:
        count += 1
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return count


def schedule_row(store: Store, job: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM schedule_state WHERE job = ?", (job,))
    return dict(rows[0]) if rows else None


def save_schedule(
    store: Store, job: str, *, last_run_at: str | None, last_period_end: str | None, outcome: str
) -> None:
    store.conn.execute(
        """INSERT INTO schedule_state (job, last_run_at, last_period_end, last_outcome)
           VALUES (?, ?, ?, ?)
           ON CONFLICT(job) DO UPDATE SET last_run_at = COALESCE(excluded.last_run_at,
             schedule_state.last_run_at), last_period_end = excluded.last_period_end,
             last_outcome = excluded.last_outcome""",
        (job, last_run_at, last_period_end, outcome),
    )


def owed_run(store: Store, job: str, trigger: CronTrigger, now: datetime) -> datetime | None:
    """The scheduled time a cron job still owes a run for, or None.

    A job never seen before owes nothing: its state starts at ``now`` (see ``baseline``),
    so installing the daemon at 09:00 does not send the 07:00 digest.
    """
    row = schedule_row(store, job)
    served = clock.parse_iso(row["last_period_end"]) if row else None
    if served is None:
        return None
    return latest_fire_between(trigger, served, now)


def baseline(store: Store, job: str, now: datetime) -> bool:
    """Start a cron job's durable state at ``now`` unless it has one; True if it was new."""
    if schedule_row(store, job) is not None:
        return False
    with store.transaction():
        save_schedule(store, job, last_run_at=None, last_period_end=clock.iso(now), outcome="new")
    return True


# -- the jobs' work (synchronous; each gets its own connection) ------------------------------


def run_digest_if_owed(store: Store, config: Config, group: DigestConfig, now: datetime) -> str:
    """Build and deliver the group's digest if a scheduled time has passed since the last one.

    Idempotent: a digest row created at or after the owed time means it was built and
    the daemon died before recording it, so it is not built again.
    """
    from monitor.digest import build_digest, deliver_pending

    job = digest_job(group)
    owed = owed_run(store, job, cron_trigger(group.schedule, digest_timezone(config, group)), now)
    if owed is None:
        return "not due"
    built = store.scalar(
        "SELECT id FROM digests WHERE group_name = ? AND created_at >= ? ORDER BY id DESC",
        (group.name, clock.iso(owed)),
    )
    if built is None:
        built = build_digest(store, config, group, now=now)
    outcome = "built" if built else "nothing new"
    with store.transaction():
        save_schedule(
            store, job, last_run_at=clock.iso(now), last_period_end=clock.iso(owed), outcome=outcome
        )
    delivered = deliver_pending(store, config, now=now)
    states = ", ".join(f"{r.group_name} #{r.digest_id} {r.state}" for r in delivered)
    return f"for {clock.iso(owed)}: {outcome}" + (f"; delivered {states}" if states else "")


def deliverable(store: Store, now: datetime) -> bool:
    """Whether a digest waits for (re)delivery: pending, deferred and due, or abandoned.

    Mirrors ``deliver_pending``: a ``sending`` digest is due once its lease
    (``next_attempt_at``) ran out, i.e. its deliverer died mid-send.
    """
    return bool(
        store.scalar(
            "SELECT 1 FROM digests WHERE state = 'pending'"
            " OR (state IN ('deferred', 'sending')"
            "     AND (next_attempt_at IS NULL OR next_attempt_at <= ?))"
            " LIMIT 1",
            (clock.iso(now),),
        )
    )


def run_maintenance_if_owed(store: Store, config: Config, now: datetime) -> str:
    from monitor.ops import maintenance

    trigger = cron_trigger(config.maintenance.schedule, config.general.timezone)
    owed = owed_run(store, MAINTENANCE_JOB, trigger, now)
    if owed is None:
        return "not due"
    result = maintenance(store, config, now=now)
    with store.transaction():
        save_schedule(
            store,
            MAINTENANCE_JOB,
            last_run_at=clock.iso(now),
            last_period_end=clock.iso(owed),
            outcome="ok",
        )
    return result.describe()


# -- the job log ------------------------------------------------------------------------------


def start_run(store: Store, job: str, detail: str | None = None) -> int:
    cursor = store.conn.execute(
        "INSERT INTO runs (job, started_at, outcome, detail) VALUES (?, ?, 'running', ?)",
        (job, clock.now_iso(), detail),
    )
    return int(cursor.lastrowid or 0)


def finish_run(store: Store, run_id: int, outcome: str, detail: str | None) -> None:
    store.conn.execute(
        "UPDATE runs SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?",
        (clock.now_iso(), outcome, detail, run_id),
    )


def record_event(store: Store, job: str, outcome: str, detail: str) -> None:
    """A run row for something that happened instantly (late start, reload, skip)."""
    stamp = clock.now_iso()
    store.conn.execute(
        "INSERT INTO runs (job, started_at, finished_at, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        (job, stamp, stamp, outcome, detail),
    )


def close_interrupted_runs(store: Store) -> int:
    """Mark runs a dead daemon left 'running' as 'interrupted' (we hold the lock now)."""
    cursor = store.conn.execute(
        "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, ?),"
        " detail = COALESCE(detail || '; ', '') || 'the daemon stopped during this run'"
        " WHERE outcome = 'running'",
        (clock.now_iso(),),
    )
    return cursor.rowcount


# -- the daemon ---------------------------------------------------------------------------------


@dataclass
class _Current:
    job: str
    task: asyncio.Task[Any]
    cancellable: bool


class Daemon:
    """One running ipr-monitor service over one store (which it must hold the lock of)."""

    def __init__(
        self,
        config: Config,
        *,
        config_dir: Path | None = None,
        tick_seconds: float = TICK_SECONDS,
        fetch_timeout: float = FETCH_TIMEOUT,
        digest_timeout: float = DIGEST_TIMEOUT,
        maintenance_timeout: float = MAINTENANCE_TIMEOUT,
        log_level_override: str | None = None,
    ) -> None:
        from monitor.pipeline import Pipeline

        self.config = config
        self.log_level_override = log_level_override
        self.config_dir = config_dir
        self.tick_seconds = tick_seconds
        self.timeouts = {
            FETCH_JOB: fetch_timeout,
            "digest": digest_timeout,
            DELIVER_JOB: digest_timeout,
            MAINTENANCE_JOB: maintenance_timeout,
        }
        self.store = Store.open(config.database_path)
        self.pipeline = Pipeline(config, self.store)
        self.scheduler: AsyncIOScheduler | None = None
        self._busy: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._current: _Current | None = None
        self._ticking = False
        self._daemon_run: int | None = None
        # job -> the time it is next due, as APScheduler set it after the job's last run (or
        # when it was added or moved): a coalesced run reports only its latest due time.
        self._due: dict[str, datetime] = {}
        self._baseline_schedules()

    # -- lifecycle --------------------------------------------------------------------------

    def _baseline_schedules(self) -> None:
        now = clock.now()
        for group in self.config.digests:
            if baseline(self.store, digest_job(group), now):
                log.info("digest %s: first run of its schedule; starting from now", group.name)
        baseline(self.store, MAINTENANCE_JOB, now)

    def prepare(self) -> None:
        """Create the loop-bound primitives (``serve`` does; tests driving ``tick`` call it)."""
        self._busy = asyncio.Lock()
        self._stop = asyncio.Event()

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT (or ``request_stop``)."""
        loop = asyncio.get_running_loop()
        self.prepare()
        with self.store.transaction():
            interrupted = close_interrupted_runs(self.store)
            self._daemon_run = start_run(
                self.store, "daemon", f"pid {os.getpid()} on {socket.gethostname()}"
            )
        if interrupted:
            log.warning(
                "%d run(s) were interrupted by the last stop; their work is redone", interrupted
            )
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(
            self._on_event,
            EVENT_JOB_SUBMITTED
            | EVENT_JOB_MISSED
            | EVENT_JOB_ERROR
            | EVENT_JOB_MAX_INSTANCES
            | EVENT_JOB_ADDED
            | EVENT_JOB_MODIFIED,
        )
        self._schedule_jobs()
        self.scheduler.start()
        log.info(
            "daemon started: store %s, %d sources, %d digest groups, tick %.0f s",
            self.config.database_path,
            sum(s.enabled for s in self.config.sources),
            len(self.config.digests),
            self.tick_seconds,
        )
        assert self._stop is not None
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()

    def request_stop(self, signum: int | None = None) -> None:
        if self._stop is None or self._stop.is_set():
            return
        name = signal.Signals(signum).name if signum else "request"
        log.info("stopping (%s): letting the current write finish", name)
        self._stop.set()

    async def _shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        current = self._current
        if current is not None and not current.task.done():
            if current.cancellable:
                current.task.cancel()
            done, _ = await asyncio.wait({current.task}, timeout=STOP_GRACE)
            if not done:
                log.warning(
                    "%s still running after %.0f s; stopping anyway (its state is resumable)",
                    current.job,
                    STOP_GRACE,
                )
        if self._daemon_run is not None:
            with self.store.transaction():
                finish_run(self.store, self._daemon_run, "stopped", None)
        log.info("daemon stopped")

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule_jobs(self) -> None:
        assert self.scheduler is not None
        for job in self.scheduler.get_jobs():
            if job.id != "tick":
                job.remove()
        if self.scheduler.get_job("tick") is None:
            self.scheduler.add_job(
                self.tick,
                IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
                id="tick",
                name="tick",
                next_run_time=datetime.now(UTC),
                # Overlapping ticks return at once (see ``tick``); 2 keeps APScheduler from
                # logging a "skipped" warning every second of a long fetch.
                max_instances=2,
            )
        for group in self.config.digests:
            zone = digest_timezone(self.config, group)
            self.scheduler.add_job(
                self._digest_job,
                cron_trigger(group.schedule, zone),
                args=[group.name],
                id=digest_job(group),
                name=digest_job(group),
            )
        self.scheduler.add_job(
            self._maintenance_job,
            cron_trigger(self.config.maintenance.schedule, self.config.general.timezone),
            id=MAINTENANCE_JOB,
            name=MAINTENANCE_JOB,
        )

    def _on_event(self, event: JobEvent) -> None:
        """Make late, missed and refused job runs visible (log + ``runs``)."""
        if event.code in (EVENT_JOB_ADDED, EVENT_JOB_MODIFIED):
            self._remember_due(event.job_id)
        elif event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent):
            self._report_lateness(event)
            self._remember_due(event.job_id)
        elif event.code == EVENT_JOB_MISSED:
            log.warning("%s: run missed", event.job_id)
            self._record(event.job_id, "missed", "run time missed")
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            # also a JobSubmissionEvent: it must not be read as a (late) run
            self._remember_due(event.job_id)
            log.warning("%s: previous run still going; this one skipped", event.job_id)
            if event.job_id != "tick":
                self._record(event.job_id, "skipped", "previous run still going")
        elif isinstance(event, JobExecutionEvent) and event.exception is not None:
            log.error("%s failed: %s", event.job_id, event.exception)

    def _report_lateness(self, event: JobSubmissionEvent) -> None:
        """Record a run that started late, counting the due times it was coalesced from.

        With ``coalesce=True`` APScheduler reports only the latest due time of a backlog (a
        machine asleep through three hourly digests reports one run, minutes late). The job
        was first due at the time remembered after its previous run.
        """
        scheduled = min(event.scheduled_run_times)
        missed = len(event.scheduled_run_times) - 1
        first_due = self._due.get(event.job_id)  # never the tick's (see _remember_due)
        if first_due is not None and first_due < scheduled and self.scheduler is not None:
            job = self.scheduler.get_job(event.job_id)
            if job is not None:
                missed += fires_from(job.trigger, first_due, scheduled)
                scheduled = first_due
        late = (datetime.now(UTC) - scheduled).total_seconds()
        if late > max(LATE_AFTER, self.tick_seconds * 2) or missed:
            detail = f"started {late:.0f} s late; {missed} missed run(s) coalesced into one"
            log.warning("%s %s", event.job_id, detail)
            self._record(event.job_id, "late", detail)

    def _remember_due(self, job_id: str) -> None:
        """Keep the job's next due time, as APScheduler has just set it (not the tick's:
        ticks only ask the store what is due, so a backlog of them is nothing missed)."""
        if job_id == "tick":
            return
        job = self.scheduler.get_job(job_id) if self.scheduler is not None else None
        due = getattr(job, "next_run_time", None)
        if due is None:
            self._due.pop(job_id, None)
        else:
            self._due[job_id] = due

    def _record(self, job: str, outcome: str, detail: str) -> None:
        try:
            with self.store.transaction():
                record_event(self.store, job, outcome, detail)
        except Exception:  # the job log must never take the daemon down
            log.exception("could not record %s in runs", job)

    # -- jobs ---------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Fetch what is due, then serve owed digests, deliveries and maintenance.

        A tick that finds the previous one still busy (a long fetch) returns at once:
        the next tick asks the store again, so nothing is lost by skipping.
        """
        if self._ticking:
            return
        self._ticking = True
        try:
            await self._tick()
        finally:
            self._ticking = False

    async def _tick(self) -> None:
        now = clock.now()
        if self.store.due_source_names(clock.iso(now) or ""):
            await self._job(FETCH_JOB, self._fetch, cancellable=True)
        for group in self.config.digests:
            await self._digest_job(group.name)
        if deliverable(self.store, clock.now()):
            await self._job(DELIVER_JOB, self._threaded(self._deliver))
        await self._maintenance_job()

    async def _fetch(self) -> str:
        report = await self.pipeline.run_cycle()
        failed = [s.name for s in report.failed]
        detail = (
            f"{len(report.sources)} sources, {report.articles_stored} new articles, "
            f"{report.duplicates_merged} duplicates, {sum(report.hits.values())} hits"
        )
        if failed:
            detail += f"; failing: {', '.join(failed)}"
        return detail

    def _deliver(self, store: Store) -> str:
        from monitor.digest import deliver_pending

        results = deliver_pending(store, self.config)
        return "; ".join(f"{r.group_name} #{r.digest_id} {r.state}" for r in results) or "nothing"

    async def _digest_job(self, name: str) -> None:
        group = next((g for g in self.config.digests if g.name == name), None)
        if group is None:
            return
        trigger = cron_trigger(group.schedule, digest_timezone(self.config, group))
        if owed_run(self.store, digest_job(group), trigger, clock.now()) is None:
            return
        config = self.config
        await self._job(
            digest_job(group),
            self._threaded(lambda store: run_digest_if_owed(store, config, group, clock.now())),
            timeout_key="digest",
        )

    async def _maintenance_job(self) -> None:
        trigger = cron_trigger(self.config.maintenance.schedule, self.config.general.timezone)
        if owed_run(self.store, MAINTENANCE_JOB, trigger, clock.now()) is None:
            return
        config = self.config
        await self._job(
            MAINTENANCE_JOB,
            self._threaded(lambda store: run_maintenance_if_owed(store, config, clock.now())),
        )

    def _threaded(self, work: Callable[[Store], str]) -> Callable[[], Awaitable[str]]:
        """Run blocking work (SMTP, VACUUM-ish pragmas) in a daemon thread on its own connection.

        A daemon thread, so a hung SMTP server cannot keep the process alive after
        SIGTERM; every step it takes is durable, so abandoning it loses nothing.
        """
        path = self.config.database_path

        async def run() -> str:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[str] = loop.create_future()

            def settle(result: str | None, error: BaseException | None) -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result or "")

            def target() -> None:
                outcome: tuple[str | None, BaseException | None]
                try:
                    store = Store.open(path)
                    try:
                        outcome = (work(store), None)
                    finally:
                        store.close()
                except BaseException as exc:
                    outcome = (None, exc)
                try:
                    loop.call_soon_threadsafe(settle, *outcome)
                except RuntimeError:  # the loop closed: the daemon stopped without us
                    log.warning("a background job finished after the daemon stopped")

            threading.Thread(target=target, name="monitor-job", daemon=True).start()
            return await asyncio.shield(future)

        return run

    async def _job(
        self,
        job: str,
        work: Callable[[], Awaitable[str]],
        *,
        cancellable: bool = False,
        timeout_key: str | None = None,
    ) -> None:
        """Run one job exclusively, with a timeout, and log it to ``runs`` and the log."""
        assert self._busy is not None and self._stop is not None
        async with self._busy:
            if self._stop.is_set():
                return
            timeout = self.timeouts[timeout_key or job]
            task = asyncio.current_task()
            assert task is not None
            self._current = _Current(job, task, cancellable)
            with self.store.transaction():
                run_id = start_run(self.store, job)
            started = time.monotonic()
            outcome, detail = "ok", ""
            try:
                detail = await asyncio.wait_for(work(), timeout)
            except TimeoutError:
                outcome = "timeout"
                detail = f"exceeded its {timeout:.0f} s timeout" + (
                    "; cancelled" if cancellable else "; left to finish in the background"
                )
                log.error("%s %s", job, detail)
            except asyncio.CancelledError:
                outcome, detail = "interrupted", "stopped by a signal; redone on the next start"
                raise
            except MonitorError as exc:
                outcome, detail = "error", str(exc)
                log.error("%s failed: %s", job, exc)
            except Exception as exc:
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
                log.exception("%s failed", job)
            finally:
                self._current = None
                elapsed = time.monotonic() - started
                if outcome == "ok":
                    log.info("%s done in %.1f s: %s", job, elapsed, detail)
                with self.store.transaction():
                    finish_run(self.store, run_id, outcome, detail)

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config (SIGHUP). A bad config is reported and the old one kept."""
        from monitor.pipeline import Pipeline

        assert self._busy is not None
        log.info("SIGHUP: reloading the configuration")
        async with self._busy:
            try:
                config = load_config(self.config_dir, database=self.config.database_override)
                if config.database_path != self.config.database_path:
                    raise ConfigError(
                        f"the store moved from {self.config.database_path} to "
                        f"{config.database_path}; that needs a restart",
                        key="general.database",
                    )
                pipeline = Pipeline(config, self.store)
            except MonitorError as exc:
                log.error("config reload failed, keeping the running config: %s", exc)
                self._record("reload", "error", f"kept the running config: {exc}")
                return False
            self.config, self.pipeline = config, pipeline
            self._baseline_schedules()
            self._schedule_jobs()
            if self.log_level_override is None:
                set_level(config.general.log_level)
            detail = (
                f"{sum(s.enabled for s in config.sources)} sources, "
                f"{len(config.digests)} digest groups"
            )
            log.info("config reloaded: %s", detail)
            self._record("reload", "ok", detail)
            return True


def run_daemon(
    config: Config,
    *,
    config_dir: Path | None = None,
    log_format: str = "text",
    log_level: str | None = None,
    tick_seconds: float = TICK_SECONDS,
) -> None:
    """``monitor run``: take the store's lock and serve until SIGTERM/SIGINT.

    Raises ``LockHeldError`` (naming the holder) when another daemon runs on this store.
    """
    try:
        setup_logging(log_level or config.general.log_level, log_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with StoreLock(config.database_path):
        daemon = Daemon(
            config, config_dir=config_dir, tick_seconds=tick_seconds, log_level_override=log_level
        )
        try:
            asyncio.run(daemon.serve())
        finally:
            daemon.store.close()
