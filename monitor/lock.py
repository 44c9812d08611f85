"""One daemon per store: an OS file lock beside the database.

Two schedulers on one store would fetch every source and send every digest twice,
so ``monitor run`` takes ``<database>.lock`` (an ``flock``, released by the kernel
when the process dies, so a crash never leaves a stale lock) and writes who holds it
into ``<database>.lock.json``. A second daemon, and ``monitor status``, read that
file to say *who* is running: pid, host and start time.

The holder file is separate from the lock file on purpose: a process trying the
lock may truncate the lock file, which would wipe the holder's details.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from monitor.clock import now_iso
from monitor.errors import LockHeldError, StoreError


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store's lock (as written by the holder when it took it)."""

    pid: int | None
    host: str | None
    started_at: str | None
    command: str | None = None

    def describe(self) -> str:
        parts = [f"pid {self.pid}" if self.pid else "an unknown process"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.started_at:
            parts.append(f"since {self.started_at}")
        return " ".join(parts)


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def holder_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock.json")


def _read_holder(database: Path) -> LockHolder:
    try:
        data = json.loads(holder_path(database).read_text(encoding="utf-8"))
        return LockHolder(
            pid=data.get("pid"),
            host=data.get("host"),
            started_at=data.get("started_at"),
            command=data.get("command"),
        )
    except (OSError, ValueError, AttributeError):
        return LockHolder(None, None, None)


class StoreLock:
    """``with StoreLock(db):`` holds the store for this process or raises ``LockHeldError``."""

    def __init__(self, database: Path, *, command: str = "monitor run") -> None:
        self.database = Path(database)
        self.command = command
        self._lock = FileLock(str(lock_path(self.database)), timeout=0)
        self.holder: LockHolder | None = None

    def acquire(self) -> LockHolder:
        try:
            self.database.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
        except Timeout:
            held_by = _read_holder(self.database)
            raise LockHeldError(
                f"another ipr-monitor daemon holds the store {self.database}: "
                f"{held_by.describe()} (lock {lock_path(self.database)}); "
                "stop it first, or use a different --db"
            ) from None
        except OSError as exc:  # after Timeout, which is an OSError too
            raise StoreError(
                f"cannot create the lock {lock_path(self.database)}: {exc.strerror or exc}; "
                "the daemon needs write access to the store's directory"
            ) from None
        self.holder = LockHolder(os.getpid(), socket.gethostname(), now_iso(), self.command)
        tmp = holder_path(self.database).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self.holder)), encoding="utf-8")
        tmp.replace(holder_path(self.database))
        return self.holder

    def release(self) -> None:
        if self._lock.is_locked:
            holder_path(self.database).unlink(missing_ok=True)
            self._lock.release()
        self.holder = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def current_holder(database: Path) -> LockHolder | None:
    """Who holds the store's lock right now, or None when no daemon runs.

    Probes by trying the lock without waiting, so it is exact even after a crash
    (the kernel drops a dead process's lock); the probe is released at once.
    """
    if not lock_path(database).exists():
        return None
    probe = FileLock(str(lock_path(database)), timeout=0)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return _read_holder(database)
    probe.release()
    return None
