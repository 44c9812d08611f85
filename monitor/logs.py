"""Logging for the daemon: readable lines for people, JSON lines for log shippers.

``setup_logging("INFO", "text")`` prints ``2026-11-25 07:00:01 INFO monitor.scheduler:
...``; ``"json"`` prints one object per line (``ts``, ``level``, ``logger``,
``message``, plus ``exc`` and any ``extra={...}`` fields), which journald, Docker and
Loki ingest without a parsing rule. Everything goes to stderr, as systemd and Docker
expect.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stderr handler in the chosen format.

    Raises ValueError for an unknown format or level (the CLI reports it plainly).
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    level = level.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT, "%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    _quiet_chatty_loggers()


def _quiet_chatty_loggers() -> None:
    # APScheduler logs every job start, and httpx every request, at INFO; the job log
    # and the fetches table say the same once per cycle. DEBUG shows them again.
    root_level = logging.getLogger().level
    for chatty in ("apscheduler", "httpx"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root_level))


def set_level(level: str) -> None:
    """Change the level at runtime (SIGHUP with a new general.log_level)."""
    logging.getLogger().setLevel(level.upper())
    _quiet_chatty_loggers()
