"""Read-only questions users ask the store, as plain functions returning rows.

The CLI prints these; Python users and tests call them directly. Each returns a
list of dicts with stable keys, so ``--format json|csv`` needs no extra code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from monitor.store import Store

Row = dict[str, Any]


def _rows(store: Store, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
    return [dict(row) for row in store.query(sql, params)]


def sources(store: Store) -> list[Row]:
    """Every source with its fetch state and health."""
    return _rows(
        store,
        """SELECT name, kind, enabled, last_success_at, last_error, last_error_at,
                  consecutive_failures, items_seen, last_new_item_at, next_fetch_at, url
           FROM sources ORDER BY name""",
    )


def commitments(store: Store) -> list[Row]:
    """Active commitments with their hit counts (one per story)."""
    return _rows(
        store,
        """SELECT c.id, c.actor, c.title, COUNT(h.id) AS hits, MAX(h.matched_at) AS last_hit_at
           FROM commitments c LEFT JOIN hits h ON h.commitment_id = c.id
           WHERE c.active GROUP BY c.id ORDER BY c.id""",
    )


def hits(
    store: Store,
    *,
    commitment: str | None = None,
    since: str | None = None,
    source: str | None = None,
    limit: int = 50,
) -> list[Row]:
    """Hits, newest first, one per story and commitment, with the first evidence sentence."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if commitment:
        where.append("h.commitment_id = :commitment")
        params["commitment"] = commitment
    if since:
        where.append("h.matched_at >= :since")
        params["since"] = since
    if source:
        where.append(
            "EXISTS (SELECT 1 FROM articles a2 JOIN sources s2 ON s2.id = a2.source_id"
            " WHERE a2.story_id = h.story_id AND s2.name = :source)"
        )
        params["source"] = source
    return _rows(
        store,
        f"""SELECT h.id, h.matched_at, h.commitment_id, h.score, st.title AS story,
                   st.source_count AS sources, a.url,
                   json_extract(h.evidence, '$[0].text') AS evidence
            FROM hits h
            JOIN stories st ON st.id = h.story_id
            JOIN articles a ON a.id = st.primary_article_id
            WHERE {" AND ".join(where)}
            ORDER BY h.matched_at DESC, h.id DESC LIMIT :limit""",
        params,
    )


_FTS_BAREWORD = re.compile(r"^[\w*]+$")


def fts_query(text: str) -> str:
    """Quote each plain word for FTS5, so user input like ``U.S.-China`` cannot break the syntax.

    Words joined by AND/OR/NOT and quoted phrases pass through; everything else is quoted.
    """
    tokens = re.findall(r'"[^"]*"|\S+', text)
    out = []
    for token in tokens:
        plain_word = _FTS_BAREWORD.match(token) and not token.startswith("*")
        if token in {"AND", "OR", "NOT"} or token.startswith('"') or plain_word:
            out.append(token)
        else:
            out.append('"' + token.replace('"', '""') + '"')
    return " ".join(out)


#: Search ranks at most this many matches, the newest (highest article ids). Ranking is
#: per match (bm25 reads each one's sizes and positions): every match of a word found in
#: a third of a million articles takes seconds, the newest 500 take milliseconds, and in
#: news the newest matches are the ones wanted.
SEARCH_WINDOW = 500


def search(store: Store, query: str, *, limit: int = 20) -> list[Row]:
    """Full-text search over article titles and texts (FTS5), best match first.

    Among the newest ``SEARCH_WINDOW`` matching articles; all of them when fewer match.
    """
    return _rows(
        store,
        """SELECT a.id, a.title, a.url, a.published, s.name AS source,
                  snippet(articles_fts, 1, '[', ']', ' … ', 12) AS snippet
           FROM articles_fts
           JOIN articles a ON a.id = articles_fts.rowid
           LEFT JOIN sources s ON s.id = a.source_id
           WHERE articles_fts MATCH :query
             AND articles_fts.rowid >= (
                 SELECT COALESCE(MIN(rowid), 0) FROM (
                     SELECT rowid FROM articles_fts WHERE articles_fts MATCH :query
                     ORDER BY rowid DESC LIMIT :window))
           ORDER BY rank LIMIT :limit""",
        {"query": fts_query(query), "window": SEARCH_WINDOW, "limit": limit},
    )


def stories(store: Store, *, limit: int = 30) -> list[Row]:
    """Recent stories with how many sources carried them."""
    return _rows(
        store,
        """SELECT st.id, st.title, st.first_seen_at, st.updated_at, st.source_count,
                  st.article_count, a.url AS primary_url
           FROM stories st LEFT JOIN articles a ON a.id = st.primary_article_id
           ORDER BY st.updated_at DESC, st.id DESC LIMIT ?""",
        (limit,),
    )


def evidence_of(store: Store, hit_id: int) -> list[dict[str, Any]]:
    """The evidence sentences of one hit."""
    raw = store.scalar("SELECT evidence FROM hits WHERE id = ?", (hit_id,))
    return json.loads(raw) if raw else []
