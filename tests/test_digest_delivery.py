"""Delivery against a misbehaving real SMTP server: every digest arrives exactly once.

The server (aiosmtpd on 127.0.0.1) refuses with 421/451/550, drops the connection
after DATA, or is down; then it recovers and we check each mailbox holds each digest
once, and that no hit is dropped from a later digest.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Config, SmtpConfig
from monitor.deliver import RETRY_BASE
from monitor.digest import build_digest, deliver_pending
from monitor.digest_fixture import (
    FIXTURE_GROUP,
    add_hit,
    add_story,
    fixture_config,
)
from monitor.smtpsink import ACCEPT_THEN_DROP, DROP, SmtpSink
from monitor.store import Store

RECIPIENTS = ("ana@example.org", "ben@example.net")


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, sink: SmtpSink) -> Config:
    smtp = SmtpConfig(
        host="127.0.0.1", port=sink.port, security="none", sender="m <monitor@ipr.example>",
        timeout=5,
    )  # fmt: skip
    return fixture_config(tmp_path, smtp=smtp)


def mailbox_counts(sink: SmtpSink) -> Counter[tuple[str, str]]:
    """(recipient, Message-ID) -> copies received."""
    counts: Counter[tuple[str, str]] = Counter()
    for received in sink.messages:
        for recipient in received.rcpt_tos:
            counts[(recipient, received.message_id)] += 1
    return counts


def message_ids(store: Store) -> list[str]:
    return [r[0] for r in store.query("SELECT message_id FROM digests ORDER BY id")]


def assert_exactly_once(store: Store, sink: SmtpSink) -> None:
    expected = {(rcpt, mid): 1 for mid in message_ids(store) for rcpt in RECIPIENTS}
    assert dict(mailbox_counts(sink)) == expected


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("connect", "421 4.3.2 Too busy, try later"),
        ("mail", "421 4.3.2 Service shutting down"),
        ("rcpt", "451 4.3.0 Mailbox temporarily unavailable"),
        ("rcpt", "421 4.7.0 Too many connections"),
        ("data", "451 4.3.0 Queue full, try later"),
        ("data", DROP),
    ],
)
def test_transient_refusal_defers_then_arrives_once(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime, stage: str, reply: str
) -> None:
    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    sink.fail(stage, reply)

    first = deliver_pending(store, config, now=clock_now)

    assert [r.state for r in first] == ["deferred"]
    assert first[0].error and ("4" in first[0].error or "connection" in first[0].error)
    row = store.query("SELECT state, attempts, next_attempt_at FROM digests")[0]
    assert (row["state"], row["attempts"]) == ("deferred", 1)
    assert row["next_attempt_at"] == (clock_now + timedelta(seconds=RETRY_BASE)).isoformat()
    assert deliver_pending(store, config, now=clock_now + timedelta(seconds=10)) == []  # not due

    second = deliver_pending(store, config, now=clock_now + timedelta(minutes=2))

    assert [r.state for r in second] == ["sent"]
    assert_exactly_once(store, sink)
    assert deliver_pending(store, config, now=clock_now + timedelta(days=1)) == []
    assert_exactly_once(store, sink)


def test_550_fails_that_recipient_only_and_is_reported(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    digest_id = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    sink.fail("rcpt", "550 5.1.1 No such user")  # the first recipient, ana@

    [result] = deliver_pending(store, config, now=clock_now)

    assert result.state == "sent" and result.recipients_sent == 1
    assert result.error == "ana@example.org: 550 5.1.1 No such user"
    rows = store.query(
        "SELECT recipient, state, attempts, last_error FROM digest_recipients"
        " WHERE digest_id = ? ORDER BY recipient",
        (digest_id,),
    )
    assert [tuple(r) for r in rows] == [
        ("ana@example.org", "failed", 1, "550 5.1.1 No such user"),
        ("ben@example.net", "sent", 1, None),
    ]
    assert deliver_pending(store, config, now=clock_now + timedelta(hours=1)) == []
    assert [m.rcpt_tos for m in sink.messages] == [("ben@example.net",)]


def test_digest_refused_for_everyone_leaves_its_hits_for_the_next_digest(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    first = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    sink.fail("data", "554 5.6.0 Message rejected", times=2)

    [result] = deliver_pending(store, config, now=clock_now)

    assert result.state == "failed" and result.recipients_sent == 0
    assert "554" in (result.error or "")
    second = build_digest(store, config, FIXTURE_GROUP, now=clock_now + timedelta(hours=1))
    assert second is not None
    hits = lambda digest: {  # noqa: E731
        r[0] for r in store.query("SELECT hit_id FROM digest_items WHERE digest_id = ?", (digest,))
    }
    assert hits(first) == {1, 2, 3}
    assert hits(second) == {1, 2, 3, 6}  # 6 matched after the first digest
    deliver_pending(store, config, now=clock_now + timedelta(hours=1))
    assert {m.message_id for m in sink.messages} == {message_ids(store)[1]}


def test_server_down_then_back_delivers_every_digest_once(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    sink.stop()

    [down] = deliver_pending(store, config, now=clock_now)
    assert down.state == "deferred" and "cannot reach" in (down.error or "")

    # The next morning's digest is built while the server is still down.
    with store.transaction() as conn:
        add_hit(conn, {"story_id": 4, "article_id": 41, "commitment_id": "PO-1.5",
                       "score": 5.0, "matched_at": clock_now.isoformat(),
                       "evidence": [{"field": "text", "text": "x", "spans": []}]})  # fmt: skip
    tomorrow = clock_now + timedelta(days=1)
    assert build_digest(store, config, FIXTURE_GROUP, now=tomorrow) is not None
    assert [r.state for r in deliver_pending(store, config, now=tomorrow)] == [
        "deferred",
        "deferred",
    ]
    attempts = [r[0] for r in store.query("SELECT attempts FROM digests ORDER BY id")]
    assert attempts == [2, 1]

    sink.start()
    results = deliver_pending(store, config, now=tomorrow + timedelta(hours=1))

    assert [r.state for r in results] == ["sent", "sent"]
    assert_exactly_once(store, sink)


def test_accepted_but_unacknowledged_is_resent_with_the_same_message_id(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    """SMTP's one ambiguity: the server kept it but we never heard "250". We resend,
    with the same Message-ID and the same bytes, so the reader's client shows it once."""
    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    sink.fail("data", ACCEPT_THEN_DROP)

    deliver_pending(store, config, now=clock_now)
    deliver_pending(store, config, now=clock_now + timedelta(minutes=5))

    copies = sink.received_by("ana@example.org")
    assert len(copies) == 2
    assert copies[0].message_id == copies[1].message_id
    assert copies[0].data == copies[1].data
    assert len(sink.received_by("ben@example.net")) == 1


def test_flaky_server_many_rounds_loses_nothing_and_duplicates_nothing(
    store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    rng = random.Random(7)
    faults = [
        ("connect", "421 4.3.2 Too busy"),
        ("mail", "421 4.3.2 Shutting down"),
        ("rcpt", "451 4.3.0 Later"),
        ("data", "452 4.3.1 Insufficient storage"),
        ("data", DROP),
        None,
        None,
    ]
    moment = clock_now
    for day in range(6):
        with store.transaction() as conn:
            add_story(
                conn,
                {
                    "id": 100 + day,
                    "title": f"Story of day {day}",
                    "first_seen_at": moment.isoformat(),
                    "articles": [
                        {
                            "id": 1000 + day,
                            "source_id": 1 + day % 2,
                            "url": f"https://ipwatchdog.example/{day}",
                            "title": f"Story of day {day}",
                            "published": None,
                        }
                    ],
                },
            )
            add_hit(conn, {"story_id": 100 + day, "article_id": 1000 + day,
                           "commitment_id": "PO-1.10" if day % 2 else "PO-1.5",
                           "score": 2.0 + day, "matched_at": moment.isoformat(),
                           "evidence": []})  # fmt: skip
        build_digest(store, config, FIXTURE_GROUP, now=moment)
        for _ in range(4):
            fault = rng.choice(faults)
            if fault:
                sink.fail(*fault)
            down = rng.random() < 0.2
            if down:
                sink.stop()
            deliver_pending(store, config, now=moment)
            if down:
                sink.start()
            sink.clear_faults()
            moment += timedelta(hours=2)
    deliver_pending(store, config, now=moment + timedelta(days=1))

    assert {r[0] for r in store.query("SELECT state FROM digests")} == {"sent"}
    assert_exactly_once(store, sink)
    undelivered = store.scalar(
        "SELECT COUNT(*) FROM hits WHERE score >= 1 AND commitment_id IN ('PO-1.5', 'PO-1.10')"
        " AND id NOT IN (SELECT hit_id FROM digest_items)"
    )
    assert undelivered == 0


def test_two_deliverers_at_once_send_each_digest_once(
    tmp_path: Path, store: Store, config: Config, sink: SmtpSink, clock_now: datetime
) -> None:
    """The daemon's digest job and its delivery job may overlap; claims must not."""
    for day in range(8):
        with store.transaction() as conn:
            add_story(
                conn,
                {
                    "id": 300 + day,
                    "title": f"Story {day}",
                    "first_seen_at": clock_now.isoformat(),
                    "articles": [
                        {
                            "id": 3000 + day,
                            "source_id": 1,
                            "url": f"https://ipwatchdog.example/c/{day}",
                            "title": "t",
                            "published": None,
                        }
                    ],
                },
            )
            add_hit(conn, {"story_id": 300 + day, "article_id": 3000 + day,
                           "commitment_id": "PO-1.5", "score": 3.0,
                           "matched_at": clock_now.isoformat(), "evidence": []})  # fmt: skip
        build_digest(store, config, FIXTURE_GROUP, now=clock_now + timedelta(minutes=day))
    later = clock_now + timedelta(hours=1)
    start = threading.Barrier(3)
    results: list[list[str]] = []

    def deliverer() -> None:
        own = Store.open(tmp_path / "monitor.db")
        try:
            start.wait()
            results.append([r.state for r in deliver_pending(own, config, now=later)])
        finally:
            own.close()

    threads = [threading.Thread(target=deliverer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(len(r) for r in results) == 8
    assert_exactly_once(store, sink)


def test_a_digest_that_breaks_delivery_does_not_hold_up_the_others(
    store: Store,
    config: Config,
    sink: SmtpSink,
    clock_now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monitor.deliver as deliver

    first = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    other = FIXTURE_GROUP.model_copy(update={"name": "everything", "tags": []})
    second = build_digest(store, config, other, now=clock_now)
    real = deliver.compose_message

    def broken(row, recipients, config):  # type: ignore[no-untyped-def]
        if row["id"] == first:
            raise ValueError("template bug")
        return real(row, recipients, config)

    monkeypatch.setattr(deliver, "compose_message", broken)
    results = deliver_pending(store, config, now=clock_now)

    assert [(r.digest_id, r.state) for r in results] == [(first, "deferred"), (second, "sent")]
    assert "delivery crashed: ValueError: template bug" in (results[0].error or "")
    monkeypatch.setattr(deliver, "compose_message", real)
    later = deliver_pending(store, config, now=clock_now + timedelta(minutes=2))
    assert [(r.digest_id, r.state) for r in later] == [(first, "sent")]


def test_a_stalled_deliverer_whose_lease_ran_out_stops_before_sending_again(
    tmp_path: Path,
    store: Store,
    config: Config,
    sink: SmtpSink,
    clock_now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hangs on a slow server past its lease; B takes the digest over and sends it.
    When A wakes up it must notice (the claim token moved on) and not send to ben again."""
    import smtplib

    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    real_sendmail = smtplib.SMTP.sendmail
    took_over: list[list[str]] = []

    def stalling_sendmail(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_sendmail(self, *args, **kwargs)
        if not took_over:  # A's first send "takes an hour": B runs meanwhile
            took_over.append([])
            other = Store.open(tmp_path / "monitor.db")
            try:
                late = clock_now + timedelta(hours=1)
                took_over[0] = [r.state for r in deliver_pending(other, config, now=late)]
            finally:
                other.close()
        return result

    monkeypatch.setattr(smtplib.SMTP, "sendmail", stalling_sendmail)
    results_of_a = deliver_pending(store, config, now=clock_now)

    assert took_over == [["sent"]] and results_of_a == []
    assert store.scalar("SELECT state FROM digests") == "sent"
    # ana got A's copy and B's resend (A was mid-send: unavoidable, same Message-ID);
    # ben got B's copy only, because A checked its claim before sending to him
    assert len(sink.received_by("ana@example.org")) == 2
    assert len(sink.received_by("ben@example.net")) == 1
