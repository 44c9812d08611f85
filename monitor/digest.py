"""Digests: one readable mail per group from the hits it has not seen yet.

``build_digest`` is the stage's entry point. In one transaction it chooses the
group's hits that are in no earlier digest of the group, renders them (plain text
and HTML with inlined CSS, from ``templates/``), and writes the ``digests`` row with
a Message-ID fixed at that moment, its ``digest_items`` and ``digest_recipients``.
A hit counts as mailed once it is in a digest of the group that did not end
``failed``; so a failed build, a down daemon or a digest every recipient refused
leaves its hits for the next digest. Stories that gained a source since they were
mailed come back once, marked as updated.

Delivery (``deliver_pending``, ``DeliveryResult``) lives in ``monitor.deliver`` and is
re-exported here, because the pipeline, CLI and scheduler call the digest stage.

Everything from the web is text: titles, source names and snippets are escaped by
Jinja's autoescape, links pass ``safe_url`` (http/https only, quotes percent-encoded),
and every attribute in the template is double-quoted.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import textwrap
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2

from monitor import clock
from monitor.config import Config, DigestConfig
from monitor.deliver import (
    CRASH_ENV,
    CRASH_EXIT_CODE,
    CRASH_POINTS,
    DeliveryResult,
    compose_message,
    crash_point,
    deliver_pending,
    domain_of,
    outbox_file,
    recipients_of,
)
from monitor.fetch_health import describe_duration, source_health
from monitor.store import Store

__all__ = [
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "CRASH_POINTS",
    "DeliveryResult",
    "build_digest",
    "collect",
    "compose_message",
    "deliver_pending",
    "outbox_file",
    "recipients_of",
    "render",
    "render_preview",
    "safe_url",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
#: A group's digests cover hits matched from this long before its first digest on: a new
#: group does not get years of history, and every later hit reaches it however long the
#: daemon was down.
FIRST_DIGEST_LOOKBACK = timedelta(days=7)
#: Stories per commitment shown in full; the rest are listed one line each.
DETAIL_LIMIT = 8
#: Longest evidence excerpt shown, in characters.
EVIDENCE_MAX = 420


# -- what a digest contains ----------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A piece of an evidence sentence; ``matched`` pieces are the query's terms."""

    text: str
    matched: bool


@dataclass(frozen=True)
class StoryItem:
    """One story under one commitment: what the reader needs to decide whether to click."""

    hit_id: int
    story_id: int
    headline: str
    url: str | None
    source: str
    other_sources: tuple[str, ...]
    date: str
    evidence: tuple[Segment, ...]
    score: float
    #: Set when the story was mailed before and these sources joined it since.
    new_sources: tuple[str, ...] = ()
    #: Other commitments of this digest the same story is listed under.
    also_under: tuple[str, ...] = ()

    @property
    def updated(self) -> bool:
        return bool(self.new_sources)

    @property
    def update_note(self) -> str:
        return f"Updated: now also reported by {', '.join(self.new_sources)}"

    @property
    def also_reported(self) -> str:
        count = len(self.other_sources)
        if not count:
            return ""
        noun = "source" if count == 1 else "sources"
        return f"also reported by {count} {noun}: {', '.join(self.other_sources)}"


@dataclass(frozen=True)
class CommitmentSection:
    id: str
    title: str
    actor: str
    source: str
    article: str
    items: tuple[StoryItem, ...]

    @property
    def reference(self) -> str:
        return ", ".join(part for part in (self.source, self.article) if part)

    @property
    def detailed(self) -> tuple[StoryItem, ...]:
        """The best stories, shown with evidence and sources."""
        return self.items[:DETAIL_LIMIT]

    @property
    def more(self) -> tuple[StoryItem, ...]:
        """The rest, one line each: every hit is shown, and the mail stays small enough
        that clients do not clip it (Gmail cuts HTML after about 100 kB)."""
        return self.items[DETAIL_LIMIT:]


@dataclass(frozen=True)
class FailingSource:
    name: str
    reason: str


@dataclass(frozen=True)
class Coverage:
    """How much of the world the digest saw: a digest is only as good as its sources."""

    total: int
    fetched: int
    never_fetched: int
    failing: tuple[FailingSource, ...]
    #: Fetched fine, but no new item for several times their usual gap: a feed that
    #: moved or died quietly looks healthy otherwise, and its news would just stop.
    silent: tuple[FailingSource, ...] = ()

    @property
    def line(self) -> str:
        if self.total == 0:
            return "No sources are configured."
        parts = [f"{self.fetched} of {self.total} sources fetched"]
        if self.never_fetched:
            parts.append(f"{self.never_fetched} not fetched yet")
        if self.failing:
            names = ", ".join(f"{f.name} ({f.reason})" for f in self.failing)
            parts.append(f"{len(self.failing)} failing: {names}")
        if self.silent:
            names = ", ".join(f"{f.name} ({f.reason})" for f in self.silent)
            parts.append(f"{len(self.silent)} silent: {names}")
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class DigestContent:
    """Everything the templates show; built from the store, rendered twice."""

    group: str
    subject: str
    summary: str
    generated: str
    period: str
    sections: tuple[CommitmentSection, ...]
    coverage: Coverage
    hit_ids: tuple[int, ...] = field(default=())


# -- selecting hits ------------------------------------------------------------------------

#: The group's hits in none of its (not failed) digests. The mailed set is computed once:
#: a per-hit lookup of digests.state would read each digest's large bodies once per hit.
_CANDIDATES_SQL = """
WITH mailed AS (
    SELECT DISTINCT di.hit_id
    FROM digests d JOIN digest_items di ON di.digest_id = d.id
    WHERE d.group_name = :group AND d.state != 'failed'
)
SELECT h.id AS hit_id, h.story_id, h.commitment_id, h.score, h.evidence,
       s.title AS story_title, s.first_seen_at,
       pa.url AS primary_url, pa.canonical_url AS primary_canonical, pa.title AS primary_title,
       pa.published AS primary_published,
       ps.name AS primary_source
FROM hits h
JOIN stories s ON s.id = h.story_id
LEFT JOIN articles pa ON pa.id = COALESCE(s.primary_article_id, h.article_id)
LEFT JOIN sources ps ON ps.id = pa.source_id
WHERE h.score >= :min_score
  AND h.matched_at <= :now
  AND h.matched_at > :not_before
  AND h.id NOT IN (SELECT hit_id FROM mailed)
ORDER BY h.id
"""

#: Hits already in a (not failed) digest of the group, with when they were last mailed.
_MAILED_SQL = """
WITH mailed AS (
    SELECT di.hit_id, MAX(d.created_at) AS last_mailed
    FROM digest_items di JOIN digests d ON d.id = di.digest_id
    WHERE d.group_name = :group AND d.state != 'failed'
    GROUP BY di.hit_id
)
SELECT h.id AS hit_id, h.story_id, h.commitment_id, h.score, h.evidence, mailed.last_mailed,
       s.title AS story_title, s.first_seen_at,
       pa.url AS primary_url, pa.canonical_url AS primary_canonical, pa.title AS primary_title,
       pa.published AS primary_published,
       ps.name AS primary_source
FROM mailed
JOIN hits h ON h.id = mailed.hit_id
JOIN stories s ON s.id = h.story_id
LEFT JOIN articles pa ON pa.id = COALESCE(s.primary_article_id, h.article_id)
LEFT JOIN sources ps ON ps.id = pa.source_id
WHERE h.score >= :min_score AND s.updated_at > mailed.last_mailed
ORDER BY h.id
"""


def _group_commitments(store: Store, group: DigestConfig) -> dict[str, sqlite3.Row]:
    """The group's commitments: listed by id OR carrying a listed tag; none listed = all."""
    # inactive = removed from config: its hits stay in the store but are no longer mailed
    rows = store.query(
        "SELECT id, actor, title, source, article, tags FROM commitments WHERE active"
    )
    wanted_ids = set(group.commitments)
    wanted_tags = set(group.tags)
    chosen: dict[str, sqlite3.Row] = {}
    for row in rows:
        tags = set(json.loads(row["tags"] or "[]"))
        if (not wanted_ids and not wanted_tags) or row["id"] in wanted_ids or tags & wanted_tags:
            chosen[row["id"]] = row
    return chosen


def _zone(config: Config, group: DigestConfig) -> ZoneInfo:
    """The group's time zone when it set one, else the general one."""
    name = group.timezone if "timezone" in group.model_fields_set else config.general.timezone
    return ZoneInfo(name)


def _day(moment: datetime, *, year: bool = True) -> str:
    return f"{moment.day} {moment:%b %Y}" if year else f"{moment.day} {moment:%b}"


def _clean(text: str | None) -> str:
    """Web text as one tidy line: control characters dropped, whitespace collapsed."""
    if not text:
        return ""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return " ".join(text.split())


def safe_url(url: str | None) -> str | None:
    """The URL if it is http(s) with a host, percent-encoding characters that break markup."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(url, safe=":/?#[]@!$&()*+,;=%~-._")


def _segments(evidence: Any) -> tuple[Segment, ...]:
    """The first evidence sentence cut into plain and matched pieces, trimmed to EVIDENCE_MAX."""
    if not isinstance(evidence, list) or not evidence or not isinstance(evidence[0], dict):
        return ()
    text = str(evidence[0].get("text") or "")
    spans: list[tuple[int, int]] = []
    for span in evidence[0].get("spans") or []:
        try:
            start, end = int(span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            continue
        start, end = max(0, start), min(len(text), end)
        if start < end:
            spans.append((start, end))
    spans.sort()
    window_start, window_end = 0, len(text)
    if len(text) > EVIDENCE_MAX:
        anchor = spans[0][0] if spans else 0
        window_start = max(0, min(anchor - EVIDENCE_MAX // 4, len(text) - EVIDENCE_MAX))
        window_end = window_start + EVIDENCE_MAX
    pieces: list[Segment] = []
    cursor = window_start
    for start, end in spans:
        start, end = max(start, cursor), min(end, window_end)
        if start >= end:
            continue
        if start > cursor:
            pieces.append(Segment(text[cursor:start], False))
        pieces.append(Segment(text[start:end], True))
        cursor = end
    if cursor < window_end:
        pieces.append(Segment(text[cursor:window_end], False))
    cleaned = [Segment(re.sub(r"\s+", " ", _clean_keep_edges(p.text)), p.matched) for p in pieces]
    cleaned = [p for p in cleaned if p.text]
    if cleaned and window_start > 0:
        cleaned[0] = Segment("…" + cleaned[0].text.lstrip(), cleaned[0].matched)
    if cleaned and window_end < len(text):
        cleaned[-1] = Segment(cleaned[-1].text.rstrip() + "…", cleaned[-1].matched)
    if cleaned:
        cleaned[0] = Segment(cleaned[0].text.lstrip(), cleaned[0].matched)
        cleaned[-1] = Segment(cleaned[-1].text.rstrip(), cleaned[-1].matched)
    return tuple(cleaned)


def _clean_keep_edges(text: str) -> str:
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)


def _story_date(published: str | None, first_seen: str | None, zone: ZoneInfo) -> str:
    for raw in (published, first_seen):
        if not raw:
            continue
        try:
            moment = clock.parse_iso(raw)
        except ValueError:
            continue
        if moment is not None:
            return _day(moment.astimezone(zone))
    return ""


def _other_sources(store: Store, story_id: int, primary: str | None) -> tuple[str, ...]:
    rows = store.query(
        "SELECT DISTINCT src.name FROM articles a JOIN sources src ON src.id = a.source_id"
        " WHERE a.story_id = ? ORDER BY src.name COLLATE NOCASE",
        (story_id,),
    )
    return tuple(_clean(row[0]) for row in rows if row[0] != primary)


def _coverage(store: Store, moment: datetime, zone: ZoneInfo) -> Coverage:
    rows = store.query(
        "SELECT name, last_success_at, last_error, failing_since, consecutive_failures"
        " FROM sources WHERE enabled ORDER BY name COLLATE NOCASE"
    )
    failing: list[FailingSource] = []
    fetched = never = 0
    for row in rows:
        if row["consecutive_failures"]:
            reason = _clean(row["last_error"]) or "failing"
            since = clock.parse_iso(row["failing_since"])
            if since is not None:
                reason += f" since {_since(since.astimezone(zone), moment.astimezone(zone))}"
            failing.append(FailingSource(_clean(row["name"]), reason))
        elif row["last_success_at"]:
            fetched += 1
        else:
            never += 1
    silent = tuple(
        FailingSource(_clean(health.name), f"no new item for {describe_duration(health.quiet_for)}")
        for health in source_health(store, at=moment)
        if health.silent and not health.consecutive_failures and health.quiet_for is not None
    )
    return Coverage(len(rows), fetched, never, tuple(failing), silent)


def _since(then: datetime, now: datetime) -> str:
    """'07:10' today, 'Monday' within the week, else '3 Nov'."""
    days = (now.date() - then.date()).days
    if days <= 0:
        return f"{then:%H:%M}"
    if days < 7:
        return f"{then:%A}"
    return _day(then, year=then.year != now.year)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _story_item(
    store: Store, row: sqlite3.Row, zone: ZoneInfo, new_sources: tuple[str, ...] = ()
) -> StoryItem:
    try:
        evidence = json.loads(row["evidence"] or "[]")
    except ValueError:
        evidence = []
    return StoryItem(
        hit_id=row["hit_id"],
        story_id=row["story_id"],
        headline=_clean(row["story_title"]) or _clean(row["primary_title"]) or "(untitled)",
        # the canonical URL has tracking parameters removed; the fetched one is the fallback
        url=safe_url(row["primary_canonical"]) or safe_url(row["primary_url"]),
        source=_clean(row["primary_source"]),
        other_sources=_other_sources(store, row["story_id"], row["primary_source"]),
        date=_story_date(row["primary_published"], row["first_seen_at"], zone),
        evidence=_segments(evidence),
        score=float(row["score"]),
        new_sources=new_sources,
    )


def _new_sources(store: Store, story_id: int, since: str, until: str) -> tuple[str, ...]:
    """Sources whose first article in the story was fetched in (since, until]."""
    rows = store.query(
        """SELECT src.name FROM articles a JOIN sources src ON src.id = a.source_id
           WHERE a.story_id = :story AND a.fetched_at > :since AND a.fetched_at <= :until
             AND a.source_id NOT IN (
                 SELECT b.source_id FROM articles b
                 WHERE b.story_id = :story AND b.fetched_at <= :since AND b.source_id IS NOT NULL)
           GROUP BY src.id ORDER BY src.name COLLATE NOCASE""",
        {"story": story_id, "since": since, "until": until},
    )
    return tuple(_clean(row[0]) for row in rows)


def collect(store: Store, config: Config, group: DigestConfig, moment: datetime) -> DigestContent:
    """Read what the group's next digest would contain at ``moment`` (no writes).

    New items: the group's hits in no earlier (not failed) digest of the group.
    Updated items: hits already mailed whose story gained a source since, shown once
    per new source (the new digest lists them again, which moves the baseline).
    """
    zone = _zone(config, group)
    commitments = _group_commitments(store, group)
    started = clock.parse_iso(
        store.scalar("SELECT MIN(created_at) FROM digests WHERE group_name = ?", (group.name,))
    )
    params = {
        "min_score": group.min_score,
        "now": clock.iso(moment),
        "group": group.name,
        # A group added to a store with years of hits starts with recent ones, not all.
        "not_before": clock.iso(min(started or moment, moment) - FIRST_DIGEST_LOOKBACK),
    }
    by_commitment: dict[str, list[StoryItem]] = {}
    hit_ids: list[int] = []
    new_count = updated_count = 0
    for row in store.query(_CANDIDATES_SQL, params):
        if row["commitment_id"] in commitments:
            by_commitment.setdefault(row["commitment_id"], []).append(_story_item(store, row, zone))
            hit_ids.append(row["hit_id"])
            new_count += 1
    for row in store.query(_MAILED_SQL, params):
        if row["commitment_id"] not in commitments:
            continue
        added = _new_sources(store, row["story_id"], row["last_mailed"], clock.iso(moment) or "")
        if added:
            by_commitment.setdefault(row["commitment_id"], []).append(
                _story_item(store, row, zone, added)
            )
            hit_ids.append(row["hit_id"])
            updated_count += 1
    listed_under: dict[int, list[str]] = {}
    for commitment_id, items in by_commitment.items():
        for item in items:
            listed_under.setdefault(item.story_id, []).append(commitment_id)
    sections = []
    for commitment_id, items in by_commitment.items():
        info = commitments[commitment_id]
        items[:] = [
            replace(
                item, also_under=tuple(c for c in listed_under[item.story_id] if c != commitment_id)
            )
            for item in items
        ]
        items.sort(key=lambda i: (i.updated, -i.score, i.headline.lower(), i.story_id))
        sections.append(
            CommitmentSection(
                id=commitment_id,
                title=_clean(info["title"]),
                actor=_clean(info["actor"]),
                source=_clean(info["source"]),
                article=_clean(info["article"]),
                items=tuple(items),
            )
        )
    sections.sort(key=lambda s: (-max(i.score for i in s.items), s.id))
    local = moment.astimezone(zone)
    previous = store.scalar(
        "SELECT MAX(period_end) FROM digests WHERE group_name = ? AND period_end <= ?",
        (group.name, clock.iso(moment)),
    )
    counts = []
    if new_count:
        counts.append(_plural(new_count, "new item"))
    if updated_count:
        counts.append(_plural(updated_count, "update"))
    if counts:
        summary = f"{' and '.join(counts)} on {_plural(len(sections), 'commitment')}"
    else:
        summary = "nothing new"
    since = clock.parse_iso(previous)
    period = (
        f"since {_day(since.astimezone(zone), year=False)}, {since.astimezone(zone):%H:%M}"
        if since
        else "since monitoring began"
    )
    return DigestContent(
        group=group.name,
        subject=f"IPR monitor: {summary}, {_day(local, year=False)}",
        summary=summary[0].upper() + summary[1:],
        generated=f"{_day(local)}, {local:%H:%M} {local.tzname()}",
        period=period,
        sections=tuple(sections),
        coverage=_coverage(store, moment, zone),
        hit_ids=tuple(hit_ids),
    )


# -- rendering ---------------------------------------------------------------------------


def _wrap(text: str, width: int = 76, indent: str = "") -> str:
    """Wrap for the plain-text part; never splits words, URLs or hyphenated group names."""
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return ("\n" + indent).join(lines)


@cache
def _environment(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["score"] = lambda value: f"{value:.1f}"
    env.filters["wrap"] = _wrap
    env.filters["text_part"] = lambda part: f"*{part.text}*" if part.matched else part.text
    return env


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


def render(content: DigestContent, config: Config) -> tuple[str, str]:
    """(html, text) of a digest. HTML is autoescaped and its CSS inlined for mail clients."""
    context = {"digest": content, "sender": config.smtp.sender}
    html = _environment(True).get_template("digest.html.j2").render(context)
    text = _environment(False).get_template("digest.txt.j2").render(context)
    return _inliner().inline(html), text


def render_preview(
    store: Store, config: Config, group: DigestConfig, *, now: datetime | None = None
) -> tuple[str, str]:
    """(html, text) of the group's next digest as it would be built now; nothing is written."""
    content = collect(store, config, group, now or clock.now())
    return render(content, config)


# -- building ----------------------------------------------------------------------------


def _new_message_id(group: DigestConfig, moment: datetime, config: Config) -> str:
    stamp = moment.astimezone(ZoneInfo("UTC")).strftime("%Y%m%d%H%M%S")
    return f"<digest.{group.name}.{stamp}.{secrets.token_hex(6)}@{domain_of(config.smtp.sender)}>"


def build_digest(
    store: Store, config: Config, group: DigestConfig, *, now: datetime | None = None
) -> int | None:
    """Write the group's next digest (row, items, recipients) in one transaction.

    Returns its id, or None when nothing is new and the group does not send empty digests.
    The Message-ID is fixed here, so every later (re)send of this digest carries it.
    """
    moment = now or clock.now()
    with store.transaction() as conn:
        content = collect(store, config, group, moment)
        if not content.hit_ids and not group.send_when_empty:
            return None
        html, text = render(content, config)
        previous = store.scalar(
            "SELECT MAX(period_end) FROM digests WHERE group_name = ?", (group.name,)
        )
        cursor = conn.execute(
            """INSERT INTO digests (group_name, message_id, created_at, period_start, period_end,
                                    subject, body_text, body_html, state)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')""",
            (
                group.name,
                _new_message_id(group, moment, config),
                clock.iso(moment),
                previous,
                clock.iso(moment),
                content.subject,
                text,
                html,
            ),
        )
        digest_id = int(cursor.lastrowid or 0)
        conn.executemany(
            "INSERT INTO digest_items (digest_id, hit_id) VALUES (?, ?)",
            [(digest_id, hit_id) for hit_id in content.hit_ids],
        )
        conn.executemany(
            "INSERT INTO digest_recipients (digest_id, recipient, state) VALUES (?, ?, 'pending')",
            [(digest_id, address) for address in dict.fromkeys(group.recipients)],
        )
        crash_point("digest-built")
    return digest_id
