"""The daemon itself keeps running: its ticks go through a source that stalls mid-body and
then serves a feed that crashes the parser, each tick recorded in the job log, and the
tick after the faults end stores everything.

(A store locked by another program past the busy timeout makes a tick raise before the
cycle starts, when it writes the job log; APScheduler logs that and the next tick runs. The
cycle itself under a locked store is tested in test_store_locked.py.)"""

from __future__ import annotations

import asyncio

import pytest

from monitor.match import Matcher
from monitor.scheduler import Daemon
from tests.reliability import faults
from tests.reliability.conftest import FAULTY, FEED, HEALTHY, Baseline, World
from tests.reliability.test_fault_matrix import feed_bytes


def test_the_daemon_ticks_through_faults_and_recovers(
    world: World, baseline: Baseline, matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.pipeline.compile_matcher", lambda *args, **kwargs: matcher)
    daemon = Daemon(world.config(), tick_seconds=1)
    store = daemon.store
    try:

        async def ticks() -> None:
            daemon.prepare()
            # 1. the faulty source's feed stalls mid-body: the tick ends, the others stored
            world.host.route(
                FEED,
                faults.stall_mid_body(
                    feed_bytes(world.host), sent=200, stall=3.0, content_type="application/xml"
                ),
            )
            await daemon.tick()
            # 2. now its feed crashes the parser
            world.host.clear()
            world.host.fault(FEED, body=feed_bytes(world.host, "parser-crash.xml"))
            store.conn.execute("UPDATE sources SET next_fetch_at = NULL WHERE name = ?", (FAULTY,))
            await daemon.tick()
            # 3. every fault is over
            world.host.clear()
            store.conn.execute("UPDATE sources SET next_fetch_at = NULL WHERE name = ?", (FAULTY,))
            await daemon.tick()

        asyncio.run(ticks())
        fetch_runs = store.query("SELECT outcome, detail FROM runs WHERE job = 'fetch' ORDER BY id")
        assert [r["outcome"] for r in fetch_runs] == ["ok", "ok", "ok"], fetch_runs
        assert all("failing: Seed and Soil" in (r["detail"] or "") for r in fetch_runs[:2])
        assert "failing" not in (fetch_runs[2]["detail"] or "")
        row = store.query("SELECT * FROM sources WHERE name = ?", (FAULTY,))[0]
        assert row["consecutive_failures"] == 0 and row["last_error"] == (
            "malformed feed: the parser could not read it"
        )
        world._store = store  # look through the daemon's own connection
        assert world.articles(HEALTHY) == baseline.healthy
        assert world.articles([FAULTY]) == baseline.faulty
    finally:
        store.close()
        world._store = None
