"""Source health: is each source fetched, failing, or quietly silent?

A failing source is easy to see (it has an error). A *silent* one is the dangerous
case: it answers 200 every time but has stopped producing items (a feed moved, a
listing page was redesigned and the selectors match nothing). We call a source
silent when its last new item is older than ``factor`` times its usual gap between
new items, learnt from its own history (``seen_items.first_seen_at``). Sources with
too little history (fewer than ``MIN_GAPS`` gaps) are never called silent: we do
not know their rhythm yet.

Used by ``monitor sources`` and by the digest's coverage line.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor import clock
from monitor.store import Store

__all__ = ["SILENCE_FACTOR", "SourceHealth", "describe_duration", "source_health"]

SILENCE_FACTOR = 3.0  # silent after 3 x the usual gap without a new item
MIN_GAPS = 3  # gaps needed before we trust a source's rhythm
RECENT_ARRIVALS = 30  # the rhythm is learnt from the last 30 arrival times


@dataclass(frozen=True)
class SourceHealth:
    """One source's health, in the words ``monitor sources`` prints."""

    name: str
    kind: str
    enabled: bool
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    items_seen: int
    last_new_item_at: str | None
    next_fetch_at: str | None
    usual_gap: timedelta | None
    quiet_for: timedelta | None  # since the last new item
    silent: bool

    @property
    def status(self) -> str:
        """One word first: ok, failing, silent, new, disabled; then the why."""
        if not self.enabled:
            return "disabled"
        if self.consecutive_failures:
            runs = "run" if self.consecutive_failures == 1 else "runs"
            return f"failing ({self.consecutive_failures} {runs}): {self.last_error}"
        if self.silent and self.usual_gap is not None and self.quiet_for is not None:
            quiet, usual = describe_duration(self.quiet_for), describe_duration(self.usual_gap)
            return f"silent: no new item for {quiet}, usually every {usual}"
        if not self.last_success_at:
            return "new: not fetched yet"
        return "ok"

    def row(self) -> dict[str, Any]:
        """A flat dict for tables, JSON and CSV."""
        return {
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "status": self.status,
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "consecutive_failures": self.consecutive_failures,
            "items_seen": self.items_seen,
            "last_new_item_at": self.last_new_item_at,
            "usual_gap": describe_duration(self.usual_gap) if self.usual_gap else None,
            "silent": self.silent,
            "next_fetch_at": self.next_fetch_at,
        }


def describe_duration(value: timedelta) -> str:
    """ "45 min", "6 h", "3 d": the precision a person wants for a gap."""
    seconds = max(0.0, value.total_seconds())
    if seconds < 2 * 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def usual_gap(arrivals: list[datetime]) -> timedelta | None:
    """Median gap between distinct arrival times (a batch seen in one run counts once)."""
    moments = sorted(set(arrivals))[-RECENT_ARRIVALS:]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    if len(gaps) < MIN_GAPS:
        return None
    return timedelta(seconds=statistics.median(g.total_seconds() for g in gaps))


def source_health(
    store: Store,
    *,
    at: datetime | None = None,
    factor: float = SILENCE_FACTOR,
    intervals: dict[str, float] | None = None,
) -> list[SourceHealth]:
    """Every source's health, by name. ``intervals`` (seconds, by source name) floor the
    usual gap: a source fetched every 6 h cannot show new items more often than that."""
    moment = at or clock.now()
    intervals = intervals or {}
    rows = store.query(
        """SELECT id, name, kind, enabled, last_success_at, last_error, last_error_at,
                  consecutive_failures, items_seen, last_new_item_at, next_fetch_at
           FROM sources ORDER BY name COLLATE NOCASE"""
    )
    arrivals: dict[int, list[datetime]] = {}
    for seen in store.query(
        "SELECT source_id, first_seen_at FROM seen_items ORDER BY source_id, first_seen_at"
    ):
        stamp = clock.parse_iso(seen["first_seen_at"])
        if stamp is not None:
            # One run's items arrive within seconds of each other: count them as one arrival.
            arrivals.setdefault(seen["source_id"], []).append(stamp.replace(second=0))
    result: list[SourceHealth] = []
    for row in rows:
        gap = usual_gap(arrivals.get(row["id"], []))
        floor = intervals.get(row["name"])
        if gap is not None and floor:
            gap = max(gap, timedelta(seconds=floor))
        last_new = clock.parse_iso(row["last_new_item_at"])
        if last_new is None and row["id"] in arrivals:
            last_new = max(arrivals[row["id"]])
        silent = bool(
            row["enabled"]
            and gap is not None
            and last_new is not None
            and moment - last_new > gap * factor
        )
        result.append(
            SourceHealth(
                name=row["name"],
                kind=row["kind"],
                enabled=bool(row["enabled"]),
                last_success_at=row["last_success_at"],
                last_error=row["last_error"],
                last_error_at=row["last_error_at"],
                consecutive_failures=row["consecutive_failures"],
                items_seen=row["items_seen"],
                last_new_item_at=clock.iso(last_new),
                next_fetch_at=row["next_fetch_at"],
                usual_gap=gap,
                quiet_for=(moment - last_new) if last_new else None,
                silent=silent,
            )
        )
    return result
