"""Digest content and headers, as a real SMTP server (aiosmtpd on 127.0.0.1) receives them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import lxml.html
import pytest

from monitor.config import Config, SmtpConfig
from monitor.digest import (
    DETAIL_LIMIT,
    build_digest,
    deliver_pending,
    recipients_of,
    render_preview,
)
from monitor.digest_fixture import (
    FIXTURE_GROUP,
    add_hit,
    add_story,
    fixture_config,
)
from monitor.smtpsink import SmtpSink
from monitor.store import Store

SENDER = "IPR monitor <monitor@ipr.example>"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def smtp_config(tmp_path: Path, sink: SmtpSink) -> Config:
    smtp = SmtpConfig(host="127.0.0.1", port=sink.port, security="none", sender=SENDER)
    return fixture_config(tmp_path, smtp=smtp)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_received_digest_has_content_and_headers(
    tmp_path: Path, store: Store, clock_now: datetime, sink: SmtpSink
) -> None:
    config = smtp_config(tmp_path, sink)
    digest_id = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    assert digest_id is not None

    results = deliver_pending(store, config, now=clock_now)

    assert [(r.digest_id, r.state, r.recipients_sent, r.error) for r in results] == [
        (digest_id, "sent", 2, None)
    ]
    assert sorted(m.rcpt_tos for m in sink.messages) == [
        ("ana@example.org",),
        ("ben@example.net",),
    ]
    message = sink.messages[0].message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "IPR monitor: 3 new items on 2 commitments, 25 Nov"
    assert message["From"] == SENDER
    assert recipients_of(message) == ["ana@example.org", "ben@example.net"]
    assert parsedate_to_datetime(message["Date"]) == clock_now
    stored_id = store.scalar("SELECT message_id FROM digests WHERE id = ?", (digest_id,))
    assert message["Message-ID"] == stored_id
    assert stored_id.startswith("<digest.trade-and-pharma.") and stored_id.endswith("@ipr.example>")
    assert "<trade-and-pharma.digest.ipr.example>" in message["List-Id"]
    assert message["List-Unsubscribe"].strip().startswith("<mailto:monitor@ipr.example?")
    assert {m.message_id for m in sink.messages} == {stored_id}

    text, html = parts(message)
    text = " ".join(text.split())  # the plain part is wrapped at 76 columns
    assert "2 of 5 sources fetched" in text
    assert "CNIPA news (HTTP 403 since Monday)" in text
    assert "also reported by 2 sources: Managing IP, Reuters Legal" in text
    assert "*burden of proof*" in text
    assert "burden of proof</b>" in html  # bold survives clients that drop styles
    assert 'href="https://ipwatchdog.example/2026/11/24/spc-trade-secrets/"' in html
    assert "<style" not in html and 'style="' in html  # CSS inlined for mail clients
    # left out: below min_score, a commitment outside the group, matched after the clock
    assert "Patent quality" not in text and "Late story" not in text
    # the story whose link is ftp:// is shown, but not as a link
    assert "practitioner" in html and "ftp://" not in html


def test_hits_go_out_once_and_new_ones_in_the_next_digest(
    tmp_path: Path, store: Store, clock_now: datetime, sink: SmtpSink
) -> None:
    config = smtp_config(tmp_path, sink)
    first = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    deliver_pending(store, config, now=clock_now)
    assert build_digest(store, config, FIXTURE_GROUP, now=clock_now) is None

    later = clock_now.replace(hour=23)
    second = build_digest(store, config, FIXTURE_GROUP, now=later)  # hit 6 matched 06:30
    assert second is not None and second != first
    deliver_pending(store, config, now=later)
    latest = sink.messages[-1].message
    assert latest["Subject"] == "IPR monitor: 1 new item on 1 commitment, 26 Nov"
    text, _ = parts(latest)
    assert "Late story" in text and "top court" not in text
    items = store.query("SELECT digest_id, hit_id FROM digest_items ORDER BY hit_id")
    assert [tuple(r) for r in items] == [(first, 1), (first, 2), (first, 3), (second, 6)]


def test_empty_digest_is_skipped_unless_the_group_wants_it(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    nothing = FIXTURE_GROUP.model_copy(update={"tags": ["no-such-tag"]})
    assert build_digest(store, config, nothing, now=clock_now) is None
    assert store.scalar("SELECT COUNT(*) FROM digests") == 0

    wanted = nothing.model_copy(update={"send_when_empty": True})
    digest_id = build_digest(store, config, wanted, now=clock_now)
    subject = store.scalar("SELECT subject FROM digests WHERE id = ?", (digest_id,))
    assert subject == "IPR monitor: nothing new, 25 Nov"


def test_without_smtp_host_digests_become_eml_files(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    digest_id = build_digest(store, config, FIXTURE_GROUP, now=clock_now)

    results = deliver_pending(store, config, now=clock_now)
    assert deliver_pending(store, config, now=clock_now) == []

    assert [(r.state, r.recipients_sent) for r in results] == [("sent", 2)]
    files = sorted(config.outbox_path.glob("*.eml"))
    assert [f.name for f in files] == [f"20261125T060000Z-trade-and-pharma-{digest_id}.eml"]
    states = store.query("SELECT state FROM digest_recipients WHERE digest_id = ?", (digest_id,))
    assert {r["state"] for r in states} == {"sent"}


def test_preview_writes_nothing(tmp_path: Path, store: Store, clock_now: datetime) -> None:
    config = fixture_config(tmp_path)
    html, text = render_preview(store, config, FIXTURE_GROUP, now=clock_now)
    assert "3 new items on 2 commitments" in text and "<html" in html
    assert store.scalar("SELECT COUNT(*) FROM digests") == 0
    assert not config.outbox_path.exists()


def test_story_gaining_a_source_is_shown_once_as_updated(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    later = clock_now + timedelta(hours=5)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO articles (id, url, canonical_url, source_id, story_id, title, text,"
            " fetched_at) VALUES (14, 'https://wipo.example/n/1', 'https://wipo.example/n/1',"
            " 4, 1, 'WIPO notes SPC ruling', '', ?)",
            (later.isoformat(),),
        )
        conn.execute("UPDATE stories SET updated_at = ? WHERE id = 1", (later.isoformat(),))

    html, text = render_preview(store, config, FIXTURE_GROUP, now=later)
    flat = " ".join(text.split())
    assert "1 new item and 1 update on 1 commitment" in flat  # hit 6 is new, story 1 updated
    assert "Updated: now also reported by WIPO news" in flat
    assert "Updated: now also reported by WIPO news" in html

    build_digest(store, config, FIXTURE_GROUP, now=later)
    _, again = render_preview(store, config, FIXTURE_GROUP, now=later + timedelta(hours=1))
    assert "Updated" not in again and "nothing new" in again.lower()


HOSTILE_TITLE = '</a><script>alert("t")</script><img src=x onerror=alert(1)> "q" & \'s\''
EVIDENCE = [{"field": "text", "spans": [[0, 8]], "text": "<script>alert(3)</script> trade secret"}]
HOSTILE_LINKS = [
    'https://evil.example/x"onmouseover="alert(1)"><script>alert(2)</script>',
    "javascript:alert(document.cookie)",
    "  JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/no-scheme",
]


def test_web_content_is_escaped_and_only_http_links_survive(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    with store.transaction() as conn:
        conn.execute("UPDATE sources SET name = '<b onclick=\"x()\">Evil</b> Source' WHERE id = 2")
        for n, link in enumerate(HOSTILE_LINKS):
            add_story(
                conn,
                {
                    "id": 200 + n,
                    "title": f"{HOSTILE_TITLE} #{n}",
                    "first_seen_at": "2026-11-24T09:00:00+00:00",
                    "articles": [
                        {
                            "id": 2000 + n,
                            "source_id": 2,
                            "url": link,
                            "title": "t",
                            "published": None,
                        }
                    ],
                },
            )
            add_hit(conn, {"story_id": 200 + n, "article_id": 2000 + n,
                           "commitment_id": "PO-1.5", "score": 9.0 - n,
                           "matched_at": "2026-11-24T09:00:00+00:00",
                           "evidence": EVIDENCE})  # fmt: skip

    html, text = render_preview(store, config, FIXTURE_GROUP, now=clock_now)

    tree = lxml.html.fromstring(html)
    assert tree.xpath("//script") == [] and tree.xpath("//img") == []
    handlers = [a for el in tree.iter() for a in el.attrib if a.lower().startswith("on")]
    assert handlers == []
    hrefs = [a.get("href") for a in tree.xpath("//a")]
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert "https://evil.example/x%22onmouseover=%22alert(1)%22%3E%3Cscript%3Ealert(2)" in hrefs[0]
    headings = [" ".join(el.text_content().split()) for el in tree.xpath("//*[@class]")]
    assert f"{HOSTILE_TITLE} #0" in headings  # shown as text, exactly
    assert '<b onclick="x()">Evil</b> Source' in tree.text_content()
    assert [m.text_content() for m in tree.xpath("//b")][:1] == ["<script>"]
    for bad in ("javascript:", "JaVaScRiPt:", "data:text"):
        assert bad not in html and bad not in text
    assert f"{HOSTILE_TITLE} #3" in " ".join(text.split())


def test_links_use_the_canonical_url_and_repeats_name_their_other_commitments(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    with store.transaction() as conn:
        conn.execute("UPDATE articles SET url = url || '?utm_source=rss&fbclid=x' WHERE id = 21")
        add_hit(conn, {"story_id": 2, "article_id": 21, "commitment_id": "PO-1.5", "score": 1.2,
                       "matched_at": "2026-11-24T15:05:00+00:00", "evidence": []})  # fmt: skip

    html, text = render_preview(store, config, FIXTURE_GROUP, now=clock_now)

    assert "utm_source" not in html and "utm_source" not in text
    assert 'href="https://managingip.example/cnipa-supplemental-data"' in html
    flat = " ".join(text.split())
    assert "also listed under PO-1.10" in flat and "also listed under PO-1.5" in flat


def test_a_new_group_starts_with_a_week_of_hits_then_misses_none(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    with store.transaction() as conn:
        conn.execute("UPDATE hits SET matched_at = '2026-10-01T00:00:00+00:00' WHERE id = 3")
    first = build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    items = store.query("SELECT hit_id FROM digest_items WHERE digest_id = ?", (first,))
    assert sorted(r[0] for r in items) == [1, 2]  # hit 3 is older than a week
    # the daemon is down for a month: the hit matched the day after still arrives
    with store.transaction() as conn:
        add_hit(conn, {"id": 50, "story_id": 4, "article_id": 41, "commitment_id": "PO-1.5",
                       "score": 2.0, "matched_at": (clock_now + timedelta(days=1)).isoformat(),
                       "evidence": []})  # fmt: skip
    second = build_digest(store, config, FIXTURE_GROUP, now=clock_now + timedelta(days=30))
    items = store.query("SELECT hit_id FROM digest_items WHERE digest_id = ?", (second,))
    assert sorted(r[0] for r in items) == [6, 50]  # and the old hit 3 stays out for good


def test_a_long_section_lists_every_story_but_details_only_the_best(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    with store.transaction() as conn:
        for n in range(DETAIL_LIMIT + 3):
            add_story(
                conn,
                {
                    "id": 500 + n,
                    "title": f"Filler story number {n}",
                    "first_seen_at": "2026-11-24T09:00:00+00:00",
                    "articles": [
                        {
                            "id": 5000 + n,
                            "source_id": 1,
                            "title": "t",
                            "url": f"https://ipwatchdog.example/f/{n}",
                            "published": None,
                        }
                    ],
                },
            )
            add_hit(conn, {"story_id": 500 + n, "article_id": 5000 + n,
                           "commitment_id": "PO-1.10", "score": 2.0 - n / 100,
                           "matched_at": "2026-11-24T09:00:00+00:00",
                           "evidence": [{"field": "text", "text": f"evidence {n}",
                                         "spans": []}]})  # fmt: skip

    html, text = render_preview(store, config, FIXTURE_GROUP, now=clock_now)

    for n in range(DETAIL_LIMIT + 3):  # every story is there, as a link
        assert f"Filler story number {n}" in text
        assert f'href="https://ipwatchdog.example/f/{n}"' in html
    # PO-1.10 has hit 2 (2.5) first, so fillers 0..6 are detailed and 7..10 listed
    assert "evidence 6" in text and "evidence 7" not in text
    assert "4 more:" in text and "4 more:" in html


def test_an_unwritable_outbox_defers_and_recovers(
    tmp_path: Path, store: Store, clock_now: datetime
) -> None:
    config = fixture_config(tmp_path)
    build_digest(store, config, FIXTURE_GROUP, now=clock_now)
    config.outbox_path.write_text("a file where the outbox directory should be")

    [blocked] = deliver_pending(store, config, now=clock_now)
    assert blocked.state == "deferred" and "cannot write" in (blocked.error or "")

    config.outbox_path.unlink()
    [written] = deliver_pending(store, config, now=clock_now + timedelta(minutes=2))
    assert written.state == "sent" and len(list(config.outbox_path.glob("*.eml"))) == 1
