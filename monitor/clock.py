"""One notion of "now" for the whole program, stored as ISO-8601 UTC text.

Everything durable compares timestamps as text, so they are always written in the
same shape (``2026-11-25T07:00:00+00:00``). ``MONITOR_CLOCK_OFFSET`` (seconds) shifts
the clock; tests use it to simulate a laptop sleep without waiting.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def now() -> datetime:
    """The current time, timezone-aware UTC, shifted by ``MONITOR_CLOCK_OFFSET`` if set."""
    current = datetime.now(UTC)
    offset = os.environ.get("MONITOR_CLOCK_OFFSET")
    if offset:
        current += timedelta(seconds=float(offset))
    return current


def iso(moment: datetime | None) -> str | None:
    """The store's text form of a moment (UTC, seconds precision); None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    """``iso(now())``, for the common case."""
    return iso(now())  # type: ignore[return-value]


def parse_iso(text: str | None) -> datetime | None:
    """Read a stored timestamp back; naive values are taken as UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
