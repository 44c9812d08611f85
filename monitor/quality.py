"""The quality loop: try a query on stored stories, re-match after edits, label, measure.

Analysts tune queries by looking at what they catch. These functions work on the
stories already in the store (one primary article per story), so a query can be
previewed before it is saved, re-run after it changed, and judged with labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor.clock import now_iso
from monitor.errors import MonitorError
from monitor.match import Hit, Matcher, Query
from monitor.store import Store

Progress = Callable[[int], None]


@dataclass(frozen=True)
class StoryText:
    """The text a story is matched on: its primary article."""

    story_id: int
    article_id: int
    title: str
    text: str
    url: str


def story_count(store: Store) -> int:
    return int(store.scalar("SELECT COUNT(*) FROM stories WHERE primary_article_id IS NOT NULL"))


def iter_stories(store: Store, *, batch: int = 500) -> Iterator[StoryText]:
    """Every story's primary article, in id order, read in batches to keep memory flat."""
    last = 0
    while True:
        rows = store.query(
            """SELECT st.id AS story_id, a.id AS article_id, a.title, a.text, a.url
               FROM stories st JOIN articles a ON a.id = st.primary_article_id
               WHERE st.id > ? ORDER BY st.id LIMIT ?""",
            (last, batch),
        )
        if not rows:
            return
        for row in rows:
            yield StoryText(
                row["story_id"], row["article_id"], row["title"], row["text"], row["url"]
            )
        last = rows[-1]["story_id"]


def test_query(
    store: Store, query: Query, *, limit: int = 50, progress: Progress | None = None
) -> list[tuple[StoryText, Hit]]:
    """Stories the query matches, best first; nothing is written."""
    found = []
    for story in iter_stories(store):
        hit = query.match(story.title, story.text)
        if hit is not None:
            found.append((story, hit))
        if progress:
            progress(1)
    found.sort(key=lambda pair: -pair[1].score)
    return found[:limit]


def evidence_json(hit: Hit) -> list[dict[str, Any]]:
    """A hit's evidence as stored in ``hits.evidence``."""
    return [
        {"text": e.text, "spans": [list(span) for span in e.spans], "field": e.field}
        for e in hit.evidence
    ]


@dataclass
class RematchReport:
    stories: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    kept_sent: int = 0


def rematch(
    store: Store,
    matcher: Matcher,
    *,
    commitment_id: str | None = None,
    progress: Progress | None = None,
) -> RematchReport:
    """Re-run matching over stored stories after queries changed.

    A story's hit is updated in place (same id, new score, evidence and query version),
    so it is never duplicated. A hit the new query no longer makes is removed, unless a
    digest already carried it: that one stays, as the record of what was sent.
    """
    if commitment_id is not None and commitment_id not in matcher.query_versions:
        raise MonitorError(f"unknown commitment {commitment_id!r}")
    report = RematchReport()
    for story in iter_stories(store):
        report.stories += 1
        if commitment_id is None:
            hits = {hit.commitment_id: hit for hit in matcher.match(story.title, story.text)}
        else:
            one = matcher.match_one(commitment_id, story.title, story.text)
            hits = {one.commitment_id: one} if one else {}
        with store.transaction():
            existing = {
                row["commitment_id"]: row["id"]
                for row in store.query(
                    "SELECT id, commitment_id FROM hits WHERE story_id = ?", (story.story_id,)
                )
                if commitment_id in (None, row["commitment_id"])
            }
            for cid, hit in hits.items():
                store.save_hit(
                    story_id=story.story_id,
                    article_id=story.article_id,
                    commitment_id=cid,
                    score=hit.score,
                    evidence=evidence_json(hit),
                    query_version=hit.query_version,
                )
                if cid in existing:
                    report.updated += 1
                else:
                    report.added += 1
            for cid, hit_id in existing.items():
                if cid in hits:
                    continue
                if store.scalar("SELECT 1 FROM digest_items WHERE hit_id = ?", (hit_id,)):
                    report.kept_sent += 1
                else:
                    store.conn.execute("DELETE FROM hits WHERE id = ?", (hit_id,))
                    report.removed += 1
        if progress:
            progress(1)
    return report


def label(
    store: Store,
    judgement: str,
    *,
    hit_id: int | None = None,
    article_id: int | None = None,
    commitment_id: str | None = None,
) -> dict[str, Any]:
    """Record whether a hit (or an article the matcher missed) is relevant to a commitment."""
    if judgement not in {"relevant", "irrelevant"}:
        raise MonitorError("a label is 'relevant' or 'irrelevant'")
    if hit_id is not None:
        rows = store.query("SELECT article_id, commitment_id FROM hits WHERE id = ?", (hit_id,))
        if not rows:
            raise MonitorError(f"no hit with id {hit_id}; `monitor hits` lists them")
        article_id, commitment_id = rows[0]["article_id"], rows[0]["commitment_id"]
    if article_id is None or commitment_id is None:
        raise MonitorError("label a hit id, or an article id together with a commitment id")
    if not store.scalar("SELECT 1 FROM articles WHERE id = ?", (article_id,)):
        raise MonitorError(f"no article with id {article_id}")
    if not store.scalar("SELECT 1 FROM commitments WHERE id = ?", (commitment_id,)):
        raise MonitorError(f"no commitment with id {commitment_id!r}")
    store.conn.execute(
        """INSERT INTO labels (article_id, commitment_id, judgement, labelled_at)
           VALUES (?, ?, ?, ?)
           ON CONFLICT(article_id, commitment_id) DO UPDATE SET
             judgement = excluded.judgement, labelled_at = excluded.labelled_at""",
        (article_id, commitment_id, judgement, now_iso()),
    )
    return {"article_id": article_id, "commitment_id": commitment_id, "judgement": judgement}


def quality(store: Store) -> list[dict[str, Any]]:
    """Per commitment, from the labels: precision of its hits, and recall where misses were
    labelled.

    A label applies to a story's hit when it names any copy of that story, so labelling
    one copy is enough. Recall counts relevant labels on stories the commitment missed.
    """
    rows = store.query(
        """WITH judged AS (
             SELECT l.commitment_id, l.judgement, a.story_id,
                    EXISTS (SELECT 1 FROM hits h WHERE h.story_id = a.story_id
                            AND h.commitment_id = l.commitment_id) AS hit
             FROM labels l JOIN articles a ON a.id = l.article_id
             GROUP BY l.commitment_id, a.story_id)
           SELECT commitment_id,
                  SUM(hit AND judgement = 'relevant') AS true_positives,
                  SUM(hit AND judgement = 'irrelevant') AS false_positives,
                  SUM(NOT hit AND judgement = 'relevant') AS missed
           FROM judged GROUP BY commitment_id ORDER BY commitment_id"""
    )
    out = []
    for row in rows:
        tp, fp, fn = row["true_positives"], row["false_positives"], row["missed"]
        out.append(
            {
                "commitment_id": row["commitment_id"],
                "labelled_hits": tp + fp,
                "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                "missed": fn,
                "recall": round(tp / (tp + fn), 3) if fn else None,
            }
        )
    return out


# The digest thresholds shown by ``quality_by_score``: 1.0 is any match; a title that says
# it, a sentence in the lead and further sentences add to it (docs/query-language.md).
SCORE_THRESHOLDS = (1.0, 1.5, 2.0, 2.5, 3.0)


def quality_by_score(store: Store) -> list[dict[str, Any]]:
    """What a recipient group's ``min_score`` would have done to your labelled hits.

    For each threshold: the labelled hits it keeps, their precision, and the share of the
    stories you labelled relevant that it keeps (missed stories count against it too), all
    commitments together. It answers "which min_score for my digest?" from your own
    judgements rather than from the project's labelled sets.
    """
    rows = store.query(
        """SELECT l.commitment_id, a.story_id, MAX(l.judgement = 'relevant') AS relevant,
                  (SELECT MAX(h.score) FROM hits h WHERE h.story_id = a.story_id
                   AND h.commitment_id = l.commitment_id) AS score
           FROM labels l JOIN articles a ON a.id = l.article_id
           GROUP BY l.commitment_id, a.story_id"""
    )
    relevant_total = sum(1 for row in rows if row["relevant"])
    out = []
    for threshold in SCORE_THRESHOLDS:
        kept = [row for row in rows if row["score"] is not None and row["score"] >= threshold]
        true_positives = sum(1 for row in kept if row["relevant"])
        out.append(
            {
                "min_score": threshold,
                "labelled_hits_kept": len(kept),
                "precision": round(true_positives / len(kept), 3) if kept else None,
                "relevant_kept": true_positives,
                "recall": round(true_positives / relevant_total, 3) if relevant_total else None,
            }
        )
    return out


def hit_as_row(story: StoryText, hit: Hit) -> dict[str, Any]:
    """A test-query result for printing: where, how strong, and the first evidence."""
    first = hit.evidence[0] if hit.evidence else None
    return {
        "story_id": story.story_id,
        "score": round(hit.score, 2),
        "title": story.title,
        "url": story.url,
        "evidence": marked(first.text, first.spans) if first else "",
        "evidence_json": json.dumps(evidence_json(hit), ensure_ascii=False),
    }


def marked(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """``text`` with each span wrapped in [brackets], for terminals and CSV."""
    out, cursor = [], 0
    for start, end in sorted(spans):
        if start < cursor:
            continue
        out.append(text[cursor:start])
        out.append(f"[{text[start:end]}]")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
