"""The digest's coverage line names failing and silent sources in plain words."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from monitor import clock
from monitor.config import Config
from monitor.digest import render_preview
from monitor.pipeline import Pipeline
from monitor.sitehost import SiteHost
from monitor.store import Store


def _age_arrivals(store: Store, name: str, days: list[int]) -> None:
    """Give a source a history: one new item a day, the last one ``days[-1]`` days ago."""
    source_id = store.scalar("SELECT id FROM sources WHERE name = ?", (name,))
    now = clock.now()
    for n, ago in enumerate(days):
        store.conn.execute(
            "INSERT INTO seen_items (source_id, item_key, url, first_seen_at) VALUES (?, ?, ?, ?)",
            (source_id, f"old-{n}", None, clock.iso(now - timedelta(days=ago))),
        )
    store.conn.execute(
        "UPDATE sources SET last_new_item_at = ? WHERE id = ?",
        (clock.iso(now - timedelta(days=min(days))), source_id),
    )


def test_coverage_names_failing_and_silent_sources(
    site_config: Config, store: Store, site: SiteHost
) -> None:
    site.fault("/tradewire/atom.xml", status=403, times=5)
    asyncio.run(Pipeline(site_config, store).run_cycle(force=True))
    # The ministry published daily for a week, then nothing for 10 days.
    store.conn.execute("DELETE FROM seen_items")
    _age_arrivals(store, "Ministry of Commerce (listing)", [17, 16, 15, 14, 13, 12, 11, 10])
    html, text = render_preview(store, site_config, site_config.digests[0])
    flat = " ".join(text.split())
    assert "2 of 3 sources fetched" in flat
    assert "1 failing: Trade Wire (HTTP 403" in flat
    assert "1 silent: Ministry of Commerce (listing) (no new item for 10 d)" in flat
    assert "coverage-warn" in html


def test_a_regular_source_is_not_silent(site_config: Config, store: Store) -> None:
    asyncio.run(Pipeline(site_config, store).run_cycle(force=True))
    store.conn.execute("DELETE FROM seen_items")
    _age_arrivals(store, "IP Policy Daily", [5, 4, 3, 2, 1, 0])
    _, text = render_preview(store, site_config, site_config.digests[0])
    assert "silent" not in text
