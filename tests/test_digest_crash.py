"""A kill between any two states loses nothing and sends nothing twice.

A child process builds or delivers with ``MONITOR_CRASH_AT`` set and dies there with
``os._exit`` (no cleanup, no rollback, like kill -9). Then this process delivers what
is left and we look in the mailboxes (a real aiosmtpd) or the outbox directory.
The one allowed repeat is the point where the server accepted the message but the
store had not yet recorded it: that recipient gets it again with the same Message-ID.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Config, SmtpConfig
from monitor.digest import CRASH_ENV, CRASH_EXIT_CODE, CRASH_POINTS, build_digest, deliver_pending
from monitor.digest_fixture import FIXTURE_GROUP, fixture_config
from monitor.smtpsink import SmtpSink
from monitor.store import Store

ROOT = Path(__file__).resolve().parent.parent
RECIPIENTS = ("ana@example.org", "ben@example.net")
CHILD = """
import sys
from datetime import datetime
from monitor.config import Config
from monitor.digest import build_digest, deliver_pending
from monitor.store import Store

config = Config.model_validate_json(sys.argv[1])
store = Store.open(config.database_path)
now = datetime.fromisoformat(sys.argv[3])
if sys.argv[2] == "build":
    build_digest(store, config, config.digests[0], now=now)
else:
    deliver_pending(store, config, now=now)
"""


def run_child(config: Config, step: str, now: datetime, crash_at: str) -> int:
    env = {**os.environ, CRASH_ENV: crash_at, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, config.model_dump_json(), step, now.isoformat()],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, CRASH_EXIT_CODE), done.stderr
    return done.returncode


def crash_then_recover(store: Store, config: Config, now: datetime, point: str) -> None:
    if point == "digest-built":
        assert run_child(config, "build", now, point) == CRASH_EXIT_CODE
        assert store.scalar("SELECT COUNT(*) FROM digests") == 0  # rolled back, not half-built
        build_digest(store, config, FIXTURE_GROUP, now=now)
    else:
        build_digest(store, config, FIXTURE_GROUP, now=now)
        assert run_child(config, "deliver", now, point) == CRASH_EXIT_CODE
        # Until its lease runs out the digest may still be another deliverer's: hands off.
        assert deliver_pending(store, config, now=now + timedelta(seconds=30)) == []
    later = now + timedelta(minutes=5)
    deliver_pending(store, config, now=later)
    assert deliver_pending(store, config, now=later + timedelta(days=1)) == []


def assert_no_hit_lost(store: Store) -> None:
    delivered = {
        r[0]
        for r in store.query(
            "SELECT hit_id FROM digest_items JOIN digests ON digests.id = digest_id"
            " WHERE digests.state = 'sent'"
        )
    }
    assert delivered == {1, 2, 3}
    assert {r[0] for r in store.query("SELECT state FROM digests")} == {"sent"}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_over_smtp(store: Store, tmp_path: Path, clock_now: datetime, point: str) -> None:
    with SmtpSink() as sink:
        smtp = SmtpConfig(host="127.0.0.1", port=sink.port, security="none", timeout=5)
        config = fixture_config(tmp_path, smtp=smtp)

        crash_then_recover(store, config, clock_now, point)

        [message_id] = [r[0] for r in store.query("SELECT message_id FROM digests")]
        copies = Counter((rcpt, m.message_id) for m in sink.messages for rcpt in m.rcpt_tos)
        expected = {(rcpt, message_id): 1 for rcpt in RECIPIENTS}
        if point == "message-handed-over":
            # accepted by the server, not yet recorded: resent, same Message-ID and bytes
            expected[(RECIPIENTS[0], message_id)] = 2
            first, again = sink.received_by(RECIPIENTS[0])
            assert first.data == again.data
        assert dict(copies) == expected
    assert_no_hit_lost(store)


# The build and claim/finalise points behave as over SMTP; these three surround the file write.
@pytest.mark.parametrize("point", ["recipient-claimed", "message-handed-over", "recipient-sent"])
def test_crash_into_outbox(store: Store, tmp_path: Path, clock_now: datetime, point: str) -> None:
    config = fixture_config(tmp_path)

    crash_then_recover(store, config, clock_now, point)

    files = sorted(p.name for p in config.outbox_path.iterdir())
    [digest_id] = [r[0] for r in store.query("SELECT id FROM digests")]
    assert files == [f"20261125T060000Z-trade-and-pharma-{digest_id}.eml"]  # no .part left
    states = store.query("SELECT state FROM digest_recipients")
    assert [r[0] for r in states] == ["sent", "sent"]
    assert_no_hit_lost(store)


KILL_LOOP = """
import sys, time
from monitor.config import Config
from monitor.digest import build_digest, deliver_pending
from monitor.digest_fixture import add_hit, add_story
from monitor.store import Store

config = Config.model_validate_json(sys.argv[1])
store = Store.open(config.database_path)
start = int(sys.argv[2])
print("ready", flush=True)
for n in range(start, start + 40):
    with store.transaction() as conn:
        add_story(conn, {"id": n, "title": f"Story {n}", "first_seen_at": "2026-11-25T05:00:00",
                         "articles": [{"id": n, "source_id": 1, "url": f"https://k.example/{n}",
                                       "title": "t", "published": None}]})
        add_hit(conn, {"id": n, "story_id": n, "article_id": n, "commitment_id": "PO-1.5",
                       "score": 2.0, "matched_at": "2026-11-25T05:00:00+00:00", "evidence": []})
    build_digest(store, config, config.digests[0])
    deliver_pending(store, config)
    print(n, flush=True)  # one line a round: the parent kills after a chosen round
"""


@pytest.mark.slow
def test_random_kills_lose_nothing_and_duplicate_only_unacknowledged_sends(
    store: Store, tmp_path: Path, clock_now: datetime
) -> None:
    """kill -9 at random moments while digests are built and sent, then recover."""
    import random
    import signal
    import time

    rng = random.Random(11)
    with SmtpSink() as sink:
        smtp = SmtpConfig(host="127.0.0.1", port=sink.port, security="none", timeout=5)
        config = fixture_config(tmp_path, smtp=smtp)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        kills = 0
        for round_ in range(12):
            first_id = str(10_000 + 100 * round_)
            child = subprocess.Popen(
                [sys.executable, "-c", KILL_LOOP, config.model_dump_json(), first_id],
                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            # Kill inside the loop on any machine: after a random number of finished rounds
            # (the loop takes 0.3 s on a fast machine, seconds on a crowded one), then a
            # random moment of the next round.
            for _ in range(rng.randrange(40)):
                if not child.stdout.readline():
                    break
            time.sleep(rng.random() * 0.01)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
            child.wait(timeout=60)
        assert kills >= 8
        # a hit whose build was killed goes into the next digest; leases have run out by then
        build_digest(store, config, FIXTURE_GROUP, now=clock_now + timedelta(days=1))
        deliver_pending(store, config, now=clock_now + timedelta(days=1))

        states = {r[0] for r in store.query("SELECT state FROM digests")}
        assert states == {"sent"}
        copies = Counter((rcpt, m.message_id) for m in sink.messages for rcpt in m.rcpt_tos)
        expected = {(rcpt, mid) for (mid,) in store.query("SELECT message_id FROM digests")
                    for rcpt in RECIPIENTS}  # fmt: skip
        assert set(copies) == expected  # every digest reached every recipient
        repeated = [key for key, count in copies.items() if count > 1]
        assert len(repeated) <= kills  # at most the one in flight per kill
        for rcpt, mid in repeated:
            bodies = {m.data for m in sink.received_by(rcpt) if m.message_id == mid}
            assert len(bodies) == 1  # a repeat is the very same message
    mailed = {r[0] for r in store.query("SELECT hit_id FROM digest_items")}
    made = {r[0] for r in store.query("SELECT id FROM hits WHERE id >= 10000")}
    assert made <= mailed
