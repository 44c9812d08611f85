"""The store is busy: another program holds a transaction on the SQLite file.

A reader (``sqlite3`` shell, Datasette, a backup) holding a long read transaction must
not matter at all: the store is in WAL mode. A writer holding the write lock longer than
the busy timeout must not crash the cycle or lose an item: every source says the store
was busy, nothing is marked seen, and the next cycle stores everything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.reliability.conftest import FAULTY, HEALTHY, Baseline, World
from tests.reliability.test_fault_matrix import assert_plain_words


@contextmanager
def other_connection(path: Path, begin: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        conn.execute(begin)
        conn.execute("SELECT COUNT(*) FROM articles").fetchone()
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_a_long_reader_does_not_block_the_cycle(world: World, baseline: Baseline) -> None:
    world.store_timeout = 0.05
    world.pipeline  # noqa: B018 -- opens and syncs the store before the reader arrives
    with other_connection(world.tmp_path / "monitor.db", "BEGIN"):
        reports = world.cycle()
    assert all(r.outcome == "ok" for r in reports.values()), reports
    assert world.articles(HEALTHY) == baseline.healthy
    assert world.articles([FAULTY]) == baseline.faulty


def test_a_writer_holding_the_lock_loses_nothing(world: World, baseline: Baseline) -> None:
    world.store_timeout = 0.05  # the busy timeout: the lock is held far longer than this
    world.pipeline  # noqa: B018
    for begin in ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"):
        with other_connection(world.tmp_path / "monitor.db", begin):
            reports = world.cycle()  # returns: the daemon keeps running
        for report in reports.values():
            assert report.outcome == "error", report
            assert report.error and "database is locked" in report.error, report.error
            assert_plain_words(report.error)
        assert world.articles([*HEALTHY, FAULTY]) == set()
        assert world.store.scalar("SELECT COUNT(*) FROM seen_items") == 0

    reports = world.cycle()  # the lock is gone: everything arrives, once
    assert all(r.outcome == "ok" for r in reports.values()), reports
    assert world.articles(HEALTHY) == baseline.healthy
    assert world.articles([FAULTY]) == baseline.faulty
    assert world.cycle()[FAULTY].new_articles == 0
