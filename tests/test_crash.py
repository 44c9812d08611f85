"""Crash safety of the whole daemon: SIGKILL at random moments, restart; nothing lost or doubled.

The harness runs the real ``monitor run`` as a subprocess against a fixture world
(``tests/crashsite.py``: four sites publishing pages in waves, syndicated copies
among them, two digest groups with four recipients in all, both sending even an
empty digest so every run has mail to deliver) and a real SMTP server
that pauses before acknowledging each message. Each run is killed with SIGKILL after
a seeded random delay measured from one of three moments, so kills land everywhere:

* ``start``: the process start (imports, migrations, the first tick);
* ``ingest``: the daemon's first request to the site (feeds, pages, extraction, storing);
* ``delivery``: the first message the SMTP server receives in this run.

Every restart runs one hour later on the daemon's clock (``MONITOR_CLOCK_OFFSET``), so
each start owes every source a fetch and every group a digest, and a digest a dead
daemon left ``sending`` has outlived its lease. After all kills a final run is left to
finish and stopped with SIGTERM; then, looking only at the store and the mailboxes:

1. ``PRAGMA integrity_check`` is ok and ``foreign_key_check`` finds nothing;
2. every page the sites published is stored exactly once, has a story, and every
   syndicated copy shares its original's story; every feed item is marked seen;
3. every hit of a group's commitments is in a ``sent`` digest of that group, and in
   more than one only when its story gained a source after the earlier digest (the
   "updated" items the digest shows on purpose); no digest is left unsent;
4. every message the SMTP server received belongs to a stored digest and carries that
   digest's Message-ID, so a resend after a crash is the same message (a recipient
   may hold two copies with one Message-ID, which mail clients show once); every
   recipient of every sent digest received it.

The default suite kills 5 times (16 pages in 2 waves); ``pytest -m slow`` kills 100
times (38 pages in 6 waves). ``-s`` shows where each kill landed.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from crashsite import RECIPIENTS, CrashWorld, SlowSmtpSink

from monitor.sitehost import SiteHost

HOUR = 3600
#: Seconds to wait for an anchor moment (first request, first message) before killing anyway;
#: a daemon start takes 10-15 s on a machine shared with a dozen busy processes.
ANCHOR_TIMEOUT = 45.0
#: Seconds the final, unkilled run may take to fetch everything and deliver every digest.
FINAL_TIMEOUT = 180.0
#: Delay ranges after each anchor (seconds): a start takes 2 s on an idle machine, 15 s on
#: a crowded one, so ``start`` kills land in imports, migrations and the first tick.
DELAYS = {"start": (0.0, 4.0), "ingest": (0.0, 0.8), "delivery": (0.0, 1.2)}


@dataclass
class Kill:
    run: int
    anchor: str
    delay: float
    requests: int = 0  # site requests made by this run before the kill
    messages: int = 0  # messages the SMTP server received in this run before the kill
    exited: int | None = None  # set when the daemon had already exited

    @property
    def phase(self) -> str:
        """Where the kill landed. A run delivers the digests it owes while it fetches, so
        a kill anchored on ingest often finds messages sent too: it counts for the phase
        it was aimed at once that phase had begun, and a start-anchored kill for the
        furthest phase it reached."""
        if self.exited is not None:
            return "exited"
        if self.anchor == "ingest" and self.requests:
            return "ingest"
        if self.messages:
            return "delivery"
        if self.requests:
            return "ingest"
        return "startup"


@dataclass
class CrashReport:
    kills: list[Kill] = field(default_factory=list)
    duplicates_same_id: int = 0

    def phases(self) -> Counter[str]:
        return Counter(k.phase for k in self.kills)


def start_daemon(config_dir: Path, run: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = {
        **os.environ,
        "MONITOR_CLOCK_OFFSET": str(run * HOUR),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MONITOR_DB", None)
    env.pop("MONITOR_CONFIG", None)
    log = config_dir / f"daemon-{run:03d}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config_dir), "--tick", "1"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config_dir,
        )
    return process, log


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def site_requested(site: SiteHost, before: int) -> Callable[[], bool]:
    return lambda: len(site.requests) > before


def smtp_received(smtp: SlowSmtpSink, before: int) -> Callable[[], bool]:
    return lambda: len(smtp.messages) > before


def query(
    db: Path, sql: str, params: tuple[object, ...] | dict[str, object] = ()
) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def run_crash_loop(
    tmp_path: Path, *, kills: int, seed: int, originals: int, copies: int, waves: int
) -> CrashReport:
    rng = random.Random(seed)
    world = CrashWorld(
        tmp_path / "site", seed=seed, originals=originals, copies=copies, waves=waves
    )
    report = CrashReport()
    with SiteHost(world.root) as site, SlowSmtpSink(delay=0.15) as smtp:
        config_dir = world.write_config(tmp_path / "config", site.base_url, smtp.port)
        db = config_dir / "monitor.db"
        # as many kills from each anchor (ingest and delivery get the spare), in seeded order
        anchors = [("ingest", "delivery", "start")[n % 3] for n in range(kills)]
        rng.shuffle(anchors)
        for run in range(kills):
            world.publish(run * world.waves // kills)
            anchor = anchors[run]
            low, high = DELAYS[anchor]
            kill = Kill(run, anchor, rng.uniform(low, high))
            if anchor == "delivery" and not _baselined(db):
                kill.anchor = "ingest"  # a first start owes no digest: nothing to deliver
            requests_before, messages_before = len(site.requests), len(smtp.messages)
            began = time.monotonic()
            process, log = start_daemon(config_dir, run)
            try:
                if kill.anchor == "ingest":
                    wait_until(site_requested(site, requests_before), process, ANCHOR_TIMEOUT)
                elif kill.anchor == "delivery":
                    wait_until(smtp_received(smtp, messages_before), process, ANCHOR_TIMEOUT)
                time.sleep(kill.delay)
                kill.exited = process.poll()
                process.send_signal(signal.SIGKILL)
                process.wait(10)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            kill.requests = len(site.requests) - requests_before
            kill.messages = len(smtp.messages) - messages_before
            assert kill.exited is None, (
                f"run {run}: the daemon exited on its own:\n{log.read_text()}"
            )
            report.kills.append(kill)
            print(
                f"run {run}: killed {kill.anchor}+{kill.delay:.2f}s after "
                f"{time.monotonic() - began:.1f}s, in {kill.phase}"
            )

        world.publish(world.waves)
        began = time.monotonic()
        process, log = start_daemon(config_dir, kills + 1)
        try:
            finished = wait_until(lambda: _settled(db, process.pid), process, FINAL_TIMEOUT)
            assert finished, f"the final run did not settle:\n{log.read_text()}"
            print(f"final run settled in {time.monotonic() - began:.1f}s")
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log.read_text()
            print(f"final run stopped in {time.monotonic() - began:.1f}s")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        check_invariants(db, world, site.base_url, smtp, report)
    return report


def _baselined(db: Path) -> bool:
    try:
        return bool(query(db, "SELECT 1 FROM schedule_state WHERE job LIKE 'digest:%'"))
    except sqlite3.OperationalError:  # no store yet
        return False


def _settled(db: Path, pid: int) -> bool:
    """This daemon (not a killed one) fetched, then served both groups, and all mail is out."""
    try:
        since = "(SELECT started_at FROM runs WHERE job = 'daemon' AND detail LIKE :pid)"
        done = query(
            db,
            f"SELECT COUNT(DISTINCT job) FROM runs WHERE outcome = 'ok' AND started_at >= {since}"
            " AND (job = 'fetch' OR job LIKE 'digest:%')",
            {"pid": f"pid {pid} %"},
        )[0][0]
        if done != 1 + len(RECIPIENTS):
            return False
        if query(db, "SELECT 1 FROM digests WHERE state != 'sent' LIMIT 1"):
            return False
        return not query(
            db, "SELECT 1 FROM runs WHERE outcome = 'running' AND job != 'daemon' LIMIT 1"
        )
    except sqlite3.OperationalError:
        return False


def check_invariants(
    db: Path, world: CrashWorld, base_url: str, smtp: SlowSmtpSink, report: CrashReport
) -> None:
    kills = "; ".join(f"run {k.run}: {k.anchor}+{k.delay:.2f}s→{k.phase}" for k in report.kills)
    context = f"(seeded kills: {kills})"

    # 1. the file
    assert query(db, "PRAGMA integrity_check")[0][0] == "ok"
    assert query(db, "PRAGMA foreign_key_check") == [], context

    # 2. articles: every published page exactly once, with a story; copies folded
    rows = query(db, "SELECT id, url, story_id FROM articles")
    urls = Counter(r["url"] for r in rows)
    expected = world.published_urls(base_url)
    assert set(urls) == expected, (
        f"missing {expected - set(urls)}, extra {set(urls) - expected} {context}"
    )
    assert max(urls.values()) == 1
    story_of = {r["url"]: r["story_id"] for r in rows}
    assert all(story_of.values()), f"articles without a story {context}"
    for page in world.pages:
        if page.copy_of:
            assert story_of[f"{base_url}/{page.path}"] == story_of[f"{base_url}/{page.copy_of}"], (
                f"{page.path} not folded into {page.copy_of} {context}"
            )
    counts = query(
        db,
        "SELECT s.id, s.article_count, COUNT(a.id) AS n FROM stories s"
        " LEFT JOIN articles a ON a.story_id = s.id GROUP BY s.id",
    )
    assert all(r["article_count"] == r["n"] for r in counts), f"story counts drifted {context}"
    seen = query(db, "SELECT COUNT(*) FROM seen_items")[0][0]
    assert seen == len(world.pages), f"{seen} items marked seen of {len(world.pages)} {context}"

    # 3. hits: each in a sent digest of every group that wants it; again only as an update
    assert query(db, "SELECT COUNT(*) FROM hits")[0][0] > 0, "the world should produce hits"
    assert query(db, "SELECT id, state FROM digests WHERE state != 'sent'") == [], context
    digests = {r["id"]: r for r in query(db, "SELECT * FROM digests")}
    tags_of = {
        r["id"]: set(json.loads(r["tags"])) for r in query(db, "SELECT id, tags FROM commitments")
    }
    for group in RECIPIENTS:
        wanted = [
            r
            for r in query(db, "SELECT id, story_id, commitment_id FROM hits")
            if group == "everything" or "international" in tags_of[r["commitment_id"]]
        ]
        listed: dict[int, list[int]] = defaultdict(list)
        for r in query(
            db,
            "SELECT di.hit_id, di.digest_id FROM digest_items di"
            " JOIN digests d ON d.id = di.digest_id WHERE d.group_name = ? ORDER BY d.id",
            (group,),
        ):
            listed[r["hit_id"]].append(r["digest_id"])
        for hit in wanted:
            in_digests = listed.get(hit["id"], [])
            assert in_digests, f"{group}: hit {hit['id']} in no digest {context}"
            for earlier, later in itertools.pairwise(in_digests):
                gained = query(
                    db,
                    "SELECT 1 FROM articles WHERE story_id = ? AND fetched_at > ?"
                    " AND fetched_at <= ?",
                    (hit["story_id"], digests[earlier]["created_at"], digests[later]["created_at"]),
                )
                assert gained, (
                    f"{group}: hit {hit['id']} mailed again in digest {later} though its story "
                    f"gained no source since digest {earlier} {context}"
                )

    # 4. mail: one Message-ID per digest, every recipient reached
    received: dict[int, set[str]] = defaultdict(set)
    copies: Counter[tuple[int, str]] = Counter()
    for message in smtp.messages:
        group, digest_id = str(message.message["X-IPR-Monitor-Digest"]).split()
        number = int(digest_id)
        assert number in digests, f"received digest {number}, which the store does not hold"
        assert digests[number]["group_name"] == group
        received[number].add(message.message_id)
        for recipient in message.rcpt_tos:
            copies[(number, recipient)] += 1
    for number, row in digests.items():
        assert received[number] == {row["message_id"]}, (
            f"digest {number} arrived under Message-IDs {received[number]} {context}"
        )
        for recipient in RECIPIENTS[row["group_name"]]:
            assert copies[(number, recipient)] >= 1, f"{recipient} never got digest {number}"
    report.duplicates_same_id = sum(n - 1 for n in copies.values())


def _summary(report: CrashReport) -> str:
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(report.phases().items()))
    return (
        f"{len(report.kills)} kills ({phases}); "
        f"{report.duplicates_same_id} resends under the same Message-ID"
    )


def test_sigkill_during_ingest_and_delivery_loses_and_doubles_nothing(tmp_path: Path) -> None:
    report = run_crash_loop(tmp_path, kills=5, seed=2026, originals=12, copies=4, waves=2)
    print(_summary(report))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_hundred_sigkills_lose_and_double_nothing(tmp_path: Path) -> None:
    report = run_crash_loop(tmp_path, kills=100, seed=9, originals=30, copies=8, waves=6)
    print(_summary(report))
    phases = report.phases()
    assert phases["ingest"] >= 10 and phases["delivery"] >= 10, phases
