"""Operations on a store, as library functions: status, maintenance, export, backup.

The CLI commands ``monitor status|export|backup`` and the daemon's maintenance job
are thin wrappers over these, so everything an operator does can be scripted from
Python too. None of them needs the daemon to be stopped: SQLite's WAL lets them read
(and ``backup`` copy) while it writes.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from monitor import clock
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.lock import LockHolder, current_holder
from monitor.store import SCHEMA_VERSION, Store

ExportKind = Literal["hits", "articles"]
ExportFormat = Literal["csv", "json"]


# -- maintenance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenanceResult:
    fetches_deleted: int
    runs_deleted: int
    wal_pages: int

    def describe(self) -> str:
        return (
            f"pruned {self.fetches_deleted} fetch-log rows and {self.runs_deleted} job-log rows; "
            f"checkpointed {self.wal_pages} WAL pages; optimized"
        )


def maintenance(store: Store, config: Config, *, now: datetime | None = None) -> MaintenanceResult:
    """Prune the fetch and job logs past ``maintenance.keep_fetch_log_days``, checkpoint, optimize.

    Articles, stories, hits and digests are never pruned: they are the product.
    The job log keeps at least each job's latest row, so ``monitor status`` never
    forgets when something last ran.
    """
    moment = now or clock.now()
    cutoff = clock.iso(moment - timedelta(days=config.maintenance.keep_fetch_log_days))
    with store.transaction() as conn:
        fetches = conn.execute("DELETE FROM fetches WHERE started_at < ?", (cutoff,)).rowcount
        runs = conn.execute(
            "DELETE FROM runs WHERE started_at < ? AND outcome != 'running'"
            " AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY job)",
            (cutoff,),
        ).rowcount
    row = store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    store.conn.execute("PRAGMA optimize")
    return MaintenanceResult(fetches, runs, int(row[2]) if row and row[2] > 0 else 0)


# -- status -------------------------------------------------------------------------------------


@dataclass
class Status:
    """Everything ``monitor status`` shows; ``asdict`` of it is the JSON form."""

    running: bool
    pid: int | None
    host: str | None
    started_at: str | None
    uptime_seconds: float | None
    database: str
    database_bytes: int
    schema_version: int
    last_daemon: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    digests: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _health(row: sqlite3.Row) -> str:
    if not row["enabled"]:
        return "disabled"
    if row["consecutive_failures"]:
        return f"failing ({row['consecutive_failures']}x)"
    if row["last_success_at"] is None:
        return "never fetched"
    return "ok"


def status(config: Config, *, now: datetime | None = None) -> Status:
    """The daemon's state (from the lock), each source's health, next runs, last digests."""
    from monitor.scheduler import (
        MAINTENANCE_JOB,
        cron_trigger,
        digest_job,
        digest_timezone,
        next_fire_after,
        schedule_row,
    )

    moment = now or clock.now()
    path = config.database_path
    holder: LockHolder | None = current_holder(path)
    if not path.exists():
        raise MonitorError(f"no store at {path} yet; run 'monitor once' or 'monitor run' first")
    store = Store.open(path)
    try:
        started = clock.parse_iso(holder.started_at) if holder else None
        result = Status(
            running=holder is not None,
            pid=holder.pid if holder else None,
            host=holder.host if holder else None,
            started_at=holder.started_at if holder else None,
            uptime_seconds=(moment - started).total_seconds() if started else None,
            database=str(path),
            database_bytes=store.size_bytes(),
            schema_version=SCHEMA_VERSION,
        )
        last = store.query(
            "SELECT started_at, finished_at, outcome FROM runs WHERE job = 'daemon'"
            " ORDER BY id DESC LIMIT 1"
        )
        result.last_daemon = dict(last[0]) if last else None
        for row in store.query("SELECT * FROM sources ORDER BY enabled DESC, name"):
            result.sources.append(
                {
                    "name": row["name"],
                    "health": _health(row),
                    "last_success_at": row["last_success_at"],
                    "next_fetch_at": row["next_fetch_at"] if row["enabled"] else None,
                    "last_error": row["last_error"] if row["consecutive_failures"] else None,
                }
            )
        for group in config.digests:
            zone = digest_timezone(config, group)
            state = schedule_row(store, digest_job(group))
            last = store.query(
                "SELECT id, created_at, state, sent_at, subject FROM digests"
                " WHERE group_name = ? ORDER BY id DESC LIMIT 1",
                (group.name,),
            )
            served = clock.parse_iso(state["last_period_end"]) if state else None
            upcoming = next_fire_after(cron_trigger(group.schedule, zone), served or moment)
            result.digests.append(
                {
                    "group": group.name,
                    "schedule": f"{group.schedule} ({zone})",
                    "next_run": clock.iso(upcoming),
                    "last_checked": state["last_run_at"] if state else None,
                    "last_digest": last[0]["created_at"] if last else None,
                    "last_state": last[0]["state"] if last else None,
                    "last_sent_at": last[0]["sent_at"] if last else None,
                }
            )
        maintenance_state = schedule_row(store, MAINTENANCE_JOB)
        trigger = cron_trigger(config.maintenance.schedule, config.general.timezone)
        served = (
            clock.parse_iso(maintenance_state["last_period_end"]) if maintenance_state else None
        )
        result.jobs.append(
            {
                "job": MAINTENANCE_JOB,
                "last_run_at": maintenance_state["last_run_at"] if maintenance_state else None,
                "next_run": clock.iso(next_fire_after(trigger, served or moment)),
            }
        )
        for row in store.query(
            """SELECT job, started_at, finished_at, outcome, detail FROM runs
               WHERE id IN (SELECT MAX(id) FROM runs WHERE job NOT IN ('daemon', ?) GROUP BY job)
               ORDER BY job""",
            (MAINTENANCE_JOB,),
        ):
            result.jobs.append(
                {
                    "job": row["job"],
                    "last_run_at": row["started_at"],
                    "outcome": row["outcome"],
                    "detail": row["detail"],
                }
            )
        since = clock.iso(moment - timedelta(days=7))
        for row in store.query(
            """SELECT job, started_at, outcome, detail FROM runs
               WHERE outcome NOT IN ('ok', 'running', 'stopped') AND started_at >= ?
               ORDER BY id DESC LIMIT 10""",
            (since,),
        ):
            result.problems.append(dict(row))
        return result
    finally:
        store.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds % 60}s"


def _size(count: int) -> str:
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{count} B"


def format_status(result: Status) -> str:
    """``Status`` as the plain text ``monitor status`` prints."""
    lines = []
    if result.running:
        uptime = _duration(result.uptime_seconds or 0)
        lines.append(
            f"daemon: running, pid {result.pid} on {result.host}, since {result.started_at}"
            f" (up {uptime})"
        )
    elif result.last_daemon is None:
        lines.append("daemon: not running (never started on this store)")
    elif result.last_daemon["outcome"] == "running":
        lines.append(
            f"daemon: not running; the one started {result.last_daemon['started_at']} died"
            " without stopping (crash or kill); 'monitor run' resumes its work"
        )
    else:
        lines.append(
            f"daemon: not running; last stopped {result.last_daemon['finished_at']}"
            f" ({result.last_daemon['outcome']})"
        )
    lines.append(
        f"store: {result.database}, {_size(result.database_bytes)}, schema v{result.schema_version}"
    )
    lines.append("")
    lines.append("sources:")
    for source in result.sources:
        line = (
            f"  {source['name']}: {source['health']}"
            f"; last success {source['last_success_at'] or '-'}"
            f"; next fetch {source['next_fetch_at'] or 'now'}"
        )
        if source["last_error"]:
            line += f"; error: {source['last_error']}"
        lines.append(line)
    lines.append("")
    lines.append("digests:")
    for digest in result.digests:
        last = (
            f"{digest['last_digest']} ({digest['last_state']})" if digest["last_digest"] else "none"
        )
        lines.append(
            f"  {digest['group']}: {digest['schedule']}; next {digest['next_run']}"
            f"; last digest {last}"
        )
    lines.append("")
    lines.append("jobs:")
    for job in result.jobs:
        line = f"  {job['job']}: last run {job['last_run_at'] or '-'}"
        if job.get("outcome"):
            line += f" ({job['outcome']})"
        if job.get("next_run"):
            line += f"; next {job['next_run']}"
        if job.get("detail"):
            line += f"; {job['detail']}"
        lines.append(line)
    if result.problems:
        lines.append("")
        lines.append("problems in the last 7 days:")
        for problem in result.problems:
            lines.append(
                f"  {problem['started_at']} {problem['job']}: {problem['outcome']}"
                f" {problem['detail'] or ''}".rstrip()
            )
    return "\n".join(lines)


def status_json(result: Status) -> str:
    return json.dumps(asdict(result), indent=2, ensure_ascii=False)


# -- export -------------------------------------------------------------------------------------

_EXPORT_SQL: dict[str, str] = {
    "hits": """
        SELECT h.id AS hit_id, h.matched_at, h.commitment_id, c.title AS commitment, h.score,
               h.story_id, st.title AS story, st.source_count, a.url AS article_url,
               s.name AS article_source, a.published,
               json_extract(h.evidence, '$[0].text') AS evidence, h.query_version
        FROM hits h
        JOIN commitments c ON c.id = h.commitment_id
        JOIN stories st ON st.id = h.story_id
        JOIN articles a ON a.id = h.article_id
        LEFT JOIN sources s ON s.id = a.source_id
        WHERE (:since IS NULL OR h.matched_at >= :since)
          AND (:until IS NULL OR h.matched_at < :until)
        ORDER BY h.matched_at, h.id""",
    "articles": """
        SELECT a.id AS article_id, a.fetched_at, a.published, s.name AS source, a.url,
               a.canonical_url, a.title, a.language, a.story_id, a.dedupe_method, a.text
        FROM articles a LEFT JOIN sources s ON s.id = a.source_id
        WHERE (:since IS NULL OR a.fetched_at >= :since)
          AND (:until IS NULL OR a.fetched_at < :until)
        ORDER BY a.fetched_at, a.id""",
}


def _bound(value: str | None, name: str) -> str | None:
    """A date or datetime argument as stored text (dates mean midnight UTC)."""
    if not value:
        return None
    try:
        return clock.iso(clock.parse_iso(value))
    except ValueError:
        raise MonitorError(
            f"--{name} {value!r} is not a date; write 2026-11-01 or 2026-11-01T08:00"
        ) from None


def export_rows(
    store: Store, kind: ExportKind, *, since: str | None = None, until: str | None = None
) -> Iterator[dict[str, Any]]:
    """Hits (by ``matched_at``) or articles (by ``fetched_at``) in ``[since, until)``."""
    if kind not in _EXPORT_SQL:
        raise MonitorError(f"export what? 'hits' or 'articles', not {kind!r}")
    params = {"since": _bound(since, "since"), "until": _bound(until, "until")}
    for row in store.conn.execute(_EXPORT_SQL[kind], params):
        yield dict(row)


def export(
    store: Store,
    kind: ExportKind,
    out: TextIO,
    *,
    fmt: ExportFormat = "csv",
    since: str | None = None,
    until: str | None = None,
) -> int:
    """Write hits or articles as CSV (header row) or a JSON array; returns the row count.

    Rows are streamed, so exporting years of articles does not load them into memory.
    """
    if fmt not in ("csv", "json"):
        raise MonitorError(f"--format must be csv or json, not {fmt!r}")
    rows = export_rows(store, kind, since=since, until=until)
    count = 0
    if fmt == "csv":
        columns = _columns(store, kind)
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
        return count
    out.write("[")
    for row in rows:
        out.write(("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _columns(store: Store, kind: ExportKind) -> list[str]:
    cursor = store.conn.execute(
        f"SELECT * FROM ({_EXPORT_SQL[kind]}) LIMIT 0", {"since": None, "until": None}
    )
    return [column[0] for column in cursor.description]


# -- backup -------------------------------------------------------------------------------------


def backup(database: Path, destination: Path, *, overwrite: bool = False) -> Path:
    """Copy the store with SQLite's online backup API; safe while the daemon writes.

    Copying the file with ``cp`` while a WAL is open can produce a torn copy; the
    backup API copies a consistent snapshot. ``destination`` may be a directory (a
    timestamped file is made in it). Returns the path written.
    """
    if not database.exists():
        raise MonitorError(f"no store at {database}")
    destination = destination.expanduser()
    if destination.is_dir():
        stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
        destination = destination / f"{database.stem}-{stamp}.db"
    if destination.exists() and not overwrite:
        raise MonitorError(f"{destination} exists; pass --force to overwrite it")
    if destination.resolve() == database.resolve():
        raise MonitorError("the backup must not overwrite the store itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(str(partial))
    try:
        source.backup(target, pages=1024)
        target.execute("PRAGMA journal_mode = DELETE")
        check = target.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise MonitorError(f"the backup failed its integrity check: {check}")
    finally:
        target.close()
        source.close()
    partial.replace(destination)
    return destination
