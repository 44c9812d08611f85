"""Latency of ``monitor search`` and ``monitor hits`` on a large store.

Usage::

    .venv/bin/python bench/store_latency.py                      # 1,000,000 articles, temp store
    .venv/bin/python bench/store_latency.py --articles 100000 --db /tmp/lat-100k.db
    .venv/bin/python bench/store_latency.py --db /tmp/lat-100k.db  # reuse: no generation

The store is generated directly (batched ``executemany`` through the real schema and
its FTS triggers), not through the pipeline: articles with realistic lengths (median
about 1,500 characters of text, log-normal, from a vocabulary drawn from the dev texts
in ``fixtures/`` and ``../shared/data``, with the commitments' key phrases sprinkled in),
one story per article except 10 % syndicated copies that join an earlier story, and
hits for the 43 commitments on 3 % of stories, skewed (Zipf) so a few commitments have
many hits, as in real news. Then it times ``monitor.reports.search`` and
``monitor.reports.hits(commitment=...)`` (the functions the CLI commands call) over a
fixed query set, after one warm-up pass, and prints p50/p95 in ms.

Goals: search p95 < 50 ms, one commitment's hits p95 < 10 ms. Search ranks only the
newest ``monitor.reports.SEARCH_WINDOW`` matches (bm25 over all 300,000 matches of
"china" took 4.5 s here). The slowest query left is a phrase of very common tokens that
the random text almost never has adjacent (``U.S.-China``: every position list of "u",
"s" and "china" is read, about 200 ms); in real news such a phrase is common and the
newest matches are found early. The last line printed is
one JSON object with ``articles, search_p50_ms, search_p95_ms, hits_p50_ms, hits_p95_ms``.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import reports  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PHRASES = [
    "belt and road",
    "intellectual property",
    "trade secrets",
    "patent linkage",
    "geographical indications",
    "bad-faith trademark",
    "punitive damages",
    "WIPO",
    "Madrid system",
    "Hague agreement",
    "Marrakesh treaty",
    "patent term extension",
    "counterfeit goods",
    "border enforcement",
    "online infringement",
    "pharmaceutical data",
    "CNIPA",
    "Phase One agreement",
    "copyright",
    "RCEP",
]
SEARCHES = [
    "china",
    "patent",
    "intellectual property",
    "trade secrets",
    '"belt and road"',
    "WIPO treaty",
    "counterfeit border enforcement",
    "bad-faith trademark",
    "patent linkage pharmaceutical",
    "geographical indications EU",
    "Marrakesh",
    "punitive damages court",
    "U.S.-China",
    "Madrid OR Hague",
    "copyright NOT music",
    "CNIPA examiner",
    "online infringement platform",
    "RCEP",
    "market",
    "government policy",
]


def vocabulary() -> tuple[list[str], np.ndarray]:
    """Words of the dev texts with their frequencies (a realistic Zipf-like spread)."""
    counts: Counter[str] = Counter()
    files = glob.glob(str(ROOT / "fixtures" / "match_quality" / "articles" / "*.json"))
    for name in files:
        counts.update(re.findall(r"[\w'-]+", json.loads(Path(name).read_text())["text"]))
    dev = SHARED / "dedup-dev" / "articles.jsonl"
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines():
            if line.strip():
                counts.update(re.findall(r"[\w'-]+", json.loads(line)["text"]))
    words = [w for w, _ in counts.most_common(40_000)]
    weights = np.array([counts[w] for w in words], dtype=np.float64)
    return words, weights / weights.sum()


def generate(path: Path, count: int, *, seed: int = 1, batch: int = 20_000) -> None:
    """Write ``count`` synthetic articles (+ stories, hits) into a new store at ``path``."""
    config = load_config(ROOT / "config")
    store = Store.open(path)
    store.sync_commitments(config.commitments, {})
    commitment_ids = [c.id for c in config.commitments]
    conn = store.conn
    conn.execute("PRAGMA foreign_keys = OFF")  # consistent by construction
    conn.execute("PRAGMA synchronous = OFF")
    rng = np.random.default_rng(seed)
    words, weights = vocabulary()
    word_array = np.array(words, dtype=object)
    sources = [f"Source {i}" for i in range(40)]
    with store.transaction():
        conn.executemany(
            "INSERT INTO sources (id, name, kind, url, created_at) VALUES (?, ?, 'feed', ?, ?)",
            [
                (i + 1, name, f"https://s{i}.example/feed.xml", "2020-01-01T00:00:00+00:00")
                for i, name in enumerate(sources)
            ],
        )
    zipf = 1.0 / np.arange(1, len(commitment_ids) + 1) ** 1.1
    zipf /= zipf.sum()
    start_epoch = 1_600_000_000
    started = time.perf_counter()
    for first in range(1, count + 1, batch):
        ids = np.arange(first, min(first + batch, count + 1))
        n = len(ids)
        lengths = np.clip(rng.lognormal(math.log(240), 0.55, n).astype(int), 40, 3000)
        flat = word_array[rng.choice(len(words), size=int(lengths.sum()), p=weights)]
        phrase_at = rng.random(n) < 0.35
        stamps = [
            time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start_epoch + int(i) * 60))
            for i in ids
        ]
        copy = (rng.random(n) < 0.10) & (ids > 1000)
        story = np.where(copy, ids - rng.integers(1, 1000, n), ids)
        article_rows = []
        offset = 0
        for k in range(n):
            body = flat[offset : offset + lengths[k]]
            offset += lengths[k]
            text = " ".join(body)
            if phrase_at[k]:
                phrase = PHRASES[int(rng.integers(len(PHRASES)))]
                text = f"{text[: len(text) // 2]} {phrase} {text[len(text) // 2 :]}"
            article_id = int(ids[k])
            title = " ".join(body[:9]).capitalize()
            article_rows.append(
                (
                    article_id,
                    f"https://s{article_id % 40}.example/news/{article_id}.html",
                    f"https://s{article_id % 40}.example/news/{article_id}.html",
                    article_id % 40 + 1,
                    int(story[k]),
                    title,
                    text,
                    stamps[k],
                    stamps[k],
                    f"{article_id:032x}",
                    "new" if not copy[k] else "lsh",
                )
            )
        own = ids[~copy]
        with store.transaction():
            conn.executemany(
                "INSERT INTO stories (id, primary_article_id, title, first_seen_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (int(i), int(i), article_rows[int(i) - first][5], stamp, stamp)
                    for i in own
                    for stamp in (stamps[int(i) - first],)
                ],
            )
            conn.executemany(
                "INSERT INTO articles (id, url, canonical_url, source_id, story_id, title, text,"
                " published, fetched_at, content_hash, dedupe_method)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                article_rows,
            )
            hit_rows = []
            for i in own[rng.random(len(own)) < 0.03]:
                chosen = set(rng.choice(len(commitment_ids), size=int(rng.integers(1, 3)), p=zipf))
                row = article_rows[int(i) - first]
                for c in chosen:
                    evidence = [{"text": row[6][:200], "spans": [[0, 10]], "field": "text"}]
                    hit_rows.append(
                        (int(i), int(i), commitment_ids[c], 2.0, json.dumps(evidence), row[8])
                    )
            conn.executemany(
                "INSERT INTO hits (story_id, article_id, commitment_id, score, evidence,"
                " query_version, matched_at) VALUES (?, ?, ?, ?, ?, 'bench', ?)",
                hit_rows,
            )
        done = int(ids[-1])
        if done % 100_000 < batch or done == count:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,} articles ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    conn.execute("PRAGMA optimize")
    store.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure(store: Store, repeats: int) -> dict[str, object]:
    commitment_ids = [r[0] for r in store.query("SELECT id FROM commitments ORDER BY id")]
    for query in SEARCHES:  # warm-up: page cache and statement cache
        reports.search(store, query)
    for commitment in commitment_ids:
        reports.hits(store, commitment=commitment)
    search_ms: dict[str, list[float]] = {q: [] for q in SEARCHES}
    hits_ms: list[float] = []
    for _ in range(repeats):
        for query in SEARCHES:
            t0 = time.perf_counter()
            reports.search(store, query)
            search_ms[query].append((time.perf_counter() - t0) * 1000)
        for commitment in commitment_ids:
            t0 = time.perf_counter()
            reports.hits(store, commitment=commitment)
            hits_ms.append((time.perf_counter() - t0) * 1000)
    all_search = [v for values in search_ms.values() for v in values]
    print("search, median ms per query (slowest first):")
    for query, values in sorted(search_ms.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {statistics.median(values):8.1f}  {query}")
    return {
        "search_p50_ms": round(percentile(all_search, 0.50), 2),
        "search_p95_ms": round(percentile(all_search, 0.95), 2),
        "hits_p50_ms": round(percentile(hits_ms, 0.50), 2),
        "hits_p95_ms": round(percentile(hits_ms, 0.95), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1_000_000, help="store size to generate")
    parser.add_argument("--db", type=Path, help="store to reuse (generated there if missing)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the queries")
    args = parser.parse_args()
    workdir = None
    if args.db is None:
        workdir = tempfile.TemporaryDirectory(prefix="store-latency-")
        args.db = Path(workdir.name) / "store.db"
    if not args.db.exists():
        print(f"generating {args.articles:,} articles into {args.db}", file=sys.stderr)
        t0 = time.perf_counter()
        partial = args.db.with_name(args.db.name + ".partial")
        partial.unlink(missing_ok=True)
        generate(partial, args.articles)
        partial.rename(args.db)
        print(f"generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    store = Store.open(args.db)
    articles = store.scalar("SELECT MAX(id) FROM articles")
    hits = store.scalar("SELECT COUNT(*) FROM hits")
    print(
        f"store {args.db}: {articles:,} articles, {hits:,} hits, {args.db.stat().st_size:,} bytes"
    )
    result = {"articles": articles, **measure(store, args.repeats)}
    store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
