"""End-to-end benchmark: a generated news site through the whole pipeline, over loopback.

Usage::

    .venv/bin/python bench/pipeline.py                    # 20,000 articles
    .venv/bin/python bench/pipeline.py --articles 2000    # a quick run
    .venv/bin/python bench/pipeline.py --data DIR         # texts (*.json, *.jsonl) from DIR

What runs: ``Pipeline.run_cycle`` (the real one) against a site of N article pages
served by ``monitor.sitehost.SiteHost`` on 127.0.0.1, in a child process so that its
CPU and memory are not the pipeline's. The site has one RSS feed per 200 articles
(sources of one "site" each); every page is fetched over HTTP, extracted, deduped,
matched against the 43 shipped commitments and stored in a fresh SQLite store, one
transaction per article, exactly as ``monitor once`` does.

The articles: pages about 15-25 KB (header with navigation, sidebar of related links,
footer, an inline script, then the article), whose text is 8-30 sentences drawn at
random from ``../shared/data/dedup-dev/articles.jsonl`` (general prose), one article in
four with every other sentence from the labelled texts of ``fixtures/match_quality``
(IP-policy prose, much of it matching commitments), one word in eight swapped for
another so that sentences are not shared verbatim by hundreds of articles; most pages are
distinct stories; 10 % are syndicated copies of an earlier article on another feed (same text,
another title and chrome) that dedupe must fold into the original's story. Without the
dev files the texts are synthetic. ``--data DIR`` replaces the sentence pool with the
texts of DIR's ``*.json`` (``{"title", "text"}``) and ``*.jsonl`` files.

Stage times are wall-clock sums of perf_counter around the stage functions in this
process (the pipeline is one thread: extract, dedupe, match and store run on the event
loop one at a time, so their sums add up): ``extract`` (``monitor.extract.extract``),
``dedupe`` (``Deduper.assign``), ``match`` (``Matcher.match``), ``store`` (the rest
of ``Pipeline._store_article``: inserts, FTS, hits, commit), and ``fetch`` (the
remainder of the wall time: the HTTP client, the event loop and waiting for the
server). ``discover`` (feed parsing) runs in a worker thread beside the loop, so its
time overlaps the others and is shown apart, not in the sum.

Cores: the pipeline is one process with one thread, so it can use at most one core;
the cores it actually used are its user+system CPU seconds / wall seconds (on an idle
machine close to 1; on a shared one, the share of a core it was given). So
``articles_per_s_per_core`` = articles / wall seconds / cores used = articles per CPU
second of the pipeline process. The raw ``articles_per_s_wall`` is printed beside it.
The site server's process is not counted (it stands in for the internet).

Config: ``fetch.per_host`` raised to 16 (all feeds share 127.0.0.1, and the default 2
would measure the politeness limit, not the pipeline), ``min_delay = 0``,
``max_new_articles`` = N.

The last line printed is one JSON object with ``articles, articles_per_s_per_core,
peak_rss_mb, stage_share, db_bytes_per_1000`` (and a few more keys).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
PER_FEED = 200
STAGES = ("fetch", "discover", "extract", "dedupe", "match", "store")


# -- the site (built and served in a child process) -------------------------------------------


def _sentences(text: str) -> list[str]:
    found = re.split(r"(?<=[.!?。])\s+", re.sub(r"\s+", " ", text))
    return [s.strip() for s in found if 40 <= len(s.strip()) <= 400]


def sentence_pools(data: Path | None) -> tuple[list[str], list[str]]:
    """(IP-policy sentences, general sentences) to draw article texts from."""
    policy: list[str] = []
    general: list[str] = []
    if data is not None:
        for path in sorted(data.glob("*.json")):
            general.extend(_sentences(json.loads(path.read_text(encoding="utf-8"))["text"]))
        for path in sorted(data.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    general.extend(_sentences(json.loads(line)["text"]))
        return general, general
    for path in sorted((ROOT / "fixtures" / "match_quality" / "articles").glob("*.json")):
        policy.extend(_sentences(json.loads(path.read_text(encoding="utf-8"))["text"]))
    dev = SHARED / "dedup-dev" / "articles.jsonl"
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines():
            if line.strip():
                general.extend(_sentences(json.loads(line)["text"]))
    if not general:  # synthetic prose, when the dev set is absent
        rng = random.Random(3)
        words = ["the", "a", "of", "market", "city", "council", "report", "said", "year", "new"]
        general = [
            " ".join(rng.choice(words) for _ in range(rng.randint(12, 30))).capitalize() + "."
            for _ in range(5000)
        ]
    # the dev set holds clusters of copies: keep each sentence once
    return list(dict.fromkeys(policy or general)), list(dict.fromkeys(general))


def vary(sentence: str, rng: random.Random, vocabulary: list[str]) -> str:
    """One word in eight swapped for another: a pool of a few thousand sentences drawn
    20,000 times would otherwise make every article share whole sentences with a hundred
    others, which real news does not (and which dedupe would have to look at)."""
    words = sentence.split()
    for index in range(len(words)):
        if rng.random() < 0.125:
            words[index] = rng.choice(vocabulary)
    return " ".join(words)


CHROME_LINKS = [
    "Home",
    "World",
    "Business",
    "Markets",
    "Technology",
    "Law",
    "Patents",
    "Trademarks",
    "Copyright",
    "Trade",
    "Opinion",
    "Events",
    "Podcasts",
    "Newsletters",
    "About us",
    "Contact",
    "Careers",
    "Advertise",
]


def page_html(site: int, path: str, title: str, paragraphs: list[str], published: datetime) -> str:
    nav = " ".join(f'<li><a href="/s{site}/{w.lower()}/">{w}</a></li>' for w in CHROME_LINKS * 2)
    related = "".join(
        f'<li><a href="/s{site}/related/{i}.html">Related story number {i} on this site</a></li>'
        for i in range(12)
    )
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    script = "var analytics = {" + ", ".join(f'"k{i}": {i}' for i in range(150)) + "};"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Site {site}</title>
<meta property="og:title" content="{html.escape(title)}">
<meta property="article:published_time" content="{published.isoformat()}">
<link rel="canonical" href="{{{{SITE}}}}/{path}">
<style>body {{ font-family: sans-serif }} .nav li {{ display: inline }}</style>
<script>{script}</script></head>
<body><header><div class="logo">Site {site} News</div><ul class="nav">{nav}</ul>
<div class="cookie">We use cookies to improve your experience. Accept all cookies?</div></header>
<main><article><h1>{html.escape(title)}</h1>
<div class="byline">By Staff Reporter · {published:%d %B %Y}</div>
<div class="share">Share on Facebook · Share on X · Share on LinkedIn · Email</div>
<div class="article-body">
{body}
</div>
<div class="tags">Tags: policy, trade, intellectual property</div></article>
<aside class="sidebar"><h3>Most read</h3><ul>{related}</ul><div class="ad">Advertisement</div>
</aside></main>
<footer><ul class="nav">{nav}</ul><p>© 2025 Site {site} News. All rights reserved.</p></footer>
</body></html>
"""


def feed_xml(site: int, items: list[tuple[str, str, str, datetime]]) -> str:
    entries = "\n".join(
        f"<item><title>{html.escape(title)}</title><link>{{{{SITE}}}}/{path}</link>"
        f'<guid isPermaLink="false">{guid}</guid><pubDate>{format_datetime(when)}</pubDate>'
        "</item>"
        for path, guid, title, when in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>Site {site}</title><link>{{{{SITE}}}}/s{site}/</link>"
        f"<description>Site {site} news</description>\n{entries}\n</channel></rss>\n"
    )


def build_site(
    root: Path, count: int, data: Path | None, seed: int, per_feed: int = PER_FEED
) -> dict[str, int]:
    """Write ``count`` pages and their feeds under ``root``; return what was built."""
    rng = random.Random(seed)
    policy, general = sentence_pools(data)
    vocabulary = sorted({w for sentence in general for w in sentence.split()})
    feeds = max(1, -(-count // per_feed))
    items: dict[int, list[tuple[str, str, str, datetime]]] = defaultdict(list)
    texts: list[list[str]] = []
    base = datetime(2025, 1, 1, tzinfo=UTC)
    copies = 0
    for number in range(count):
        site = number % feeds
        when = base + timedelta(minutes=7 * number)
        if number > 50 and rng.random() < 0.10:
            paragraphs = texts[rng.randrange(max(0, number - 2000), number)]
            copies += 1
        else:
            length = rng.randint(8, 30)
            sentences = rng.sample(general, min(len(general), length))
            if rng.random() < 0.25:  # an IP-policy article: half its sentences on policy
                sentences[::2] = rng.sample(policy, len(sentences[::2]))
            sentences = [vary(sentence, rng, vocabulary) for sentence in sentences]
            paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
        texts.append(paragraphs)
        title = f"{paragraphs[0][:90].rsplit(' ', 1)[0]} ({number})"
        path = f"s{site}/news/{number}.html"
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page_html(site, path, title, paragraphs, when), encoding="utf-8")
        items[site].append((path, f"s{site}-{number}", title, when))
    for site, entries in items.items():
        (root / f"s{site}" / "feed.xml").write_text(feed_xml(site, entries[::-1]), encoding="utf-8")
    return {"feeds": feeds, "pages": count, "copies": copies}


def serve_site(
    root: Path, count: int, data: Path | None, seed: int, per_feed: int, conn: Any
) -> None:
    """Child process: build the site, serve it, report (port, built) and wait to be told to stop."""
    from monitor.sitehost import SiteHost

    built = build_site(root, count, data, seed, per_feed)
    with SiteHost(root) as host:
        conn.send((host.port, built))
        conn.recv()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(usage.ru_utime + usage.ru_stime)


# -- the pipeline, timed -----------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Timers:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    def count(self, owner: Any, name: str, counter: dict[str, int]) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = inner(*args, **kwargs)
            counter["n"] += 1
            return result

        setattr(owner, name, counted)

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)
        total = self.total

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                total[stage] += time.perf_counter() - started

        setattr(owner, name, timed)


def write_config(directory: Path, port: int, feeds: int, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "monitor.toml").write_text(
        f"""
[general]
database = "bench.db"
log_level = "WARNING"

[fetch]
allow_private_networks = true
respect_robots = false
min_delay = 0
concurrency = 16
per_host = 16
max_new_articles = {count}
""",
        encoding="utf-8",
    )
    (directory / "sources.toml").write_text(
        "".join(
            f'[[source]]\nname = "Site {site}"\nkind = "feed"\n'
            f'url = "http://127.0.0.1:{port}/s{site}/feed.xml"\n\n'
            for site in range(feeds)
        ),
        encoding="utf-8",
    )
    shutil.copy(ROOT / "config" / "commitments.toml", directory / "commitments.toml")
    return directory


def run(
    count: int, data: Path | None, seed: int, workdir: Path, per_feed: int = PER_FEED
) -> dict[str, Any]:
    import monitor.pipeline as pipeline_module
    from monitor.config import load_config
    from monitor.dedupe import Deduper
    from monitor.match import Matcher
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    parent_end, child_end = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=serve_site,
        args=(workdir / "site", count, data, seed, per_feed, child_end),
        daemon=True,
    )
    started = time.perf_counter()
    child.start()
    port, built = parent_end.recv()
    print(
        f"site: {built['pages']:,} pages ({built['copies']:,} syndicated copies) in "
        f"{built['feeds']} feeds, built in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    config = load_config(write_config(workdir / "config", port, built["feeds"], count))
    store = Store.open(config.database_path)
    pipeline = Pipeline(config, store)

    timers = Timers()
    timers.wrap(pipeline_module, "extract", "extract")
    timers.wrap(pipeline_module, "discover", "discover")
    timers.wrap(Deduper, "assign", "dedupe")
    timers.wrap(Matcher, "match", "match")
    timers.wrap(Pipeline, "_store_article", "store+")

    cpu_before = os.times()
    wall_started = time.perf_counter()
    samples: list[tuple[float, float, int]] = []  # (seconds, RSS MB, articles stored)
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        while not stop_sampling.wait(1.0):
            samples.append((time.perf_counter() - wall_started, rss_mb(), stored["n"]))

    stored = {"n": 0}
    timers.count(Pipeline, "_store_article", stored)
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    report = asyncio.run(pipeline.run_cycle(force=True))
    wall = time.perf_counter() - wall_started
    stop_sampling.set()
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)

    parent_end.send("stop")
    server_cpu = parent_end.recv()
    child.join(10)

    t = timers.total
    stages = {
        "extract": t["extract"],
        "discover": t["discover"],
        "dedupe": t["dedupe"],
        "match": t["match"],
        "store": t["store+"] - t["dedupe"] - t["match"],
    }
    # discover runs in a worker thread, overlapping the loop: not part of the remainder
    stages["fetch"] = max(0.0, wall - sum(v for k, v in stages.items() if k != "discover"))
    articles = int(store.scalar("SELECT COUNT(*) FROM articles"))
    stories = int(store.scalar("SELECT COUNT(*) FROM stories"))
    hits = int(store.scalar("SELECT COUNT(*) FROM hits"))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_bytes = store.size_bytes()
    store.close()
    failed = [s.name for s in report.failed]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{articles:,} articles stored ({report.articles_stored:,} this cycle), "
        f"{stories:,} stories, "
        f"{report.duplicates_merged:,} duplicates merged, {hits:,} hits; "
        f"{sum(s.failed_pages for s in report.sources)} failed pages; failed sources: {failed}",
        file=sys.stderr,
    )
    print(f"wall {wall:.1f} s, pipeline CPU {cpu:.1f} s, site server CPU {server_cpu:.1f} s")
    if samples:
        peak = max(samples, key=lambda s: s[1])
        print(
            f"RSS: peak {peak[1]:.0f} MB at {peak[0]:.0f} s ({peak[2]:,} articles stored); "
            + ", ".join(
                f"{samples[int(len(samples) * q)][1]:.0f} MB at {q:.0%}" for q in (0.1, 0.5, 0.9)
            )
        )
    for stage in STAGES:
        print(f"  {stage:9} {stages[stage]:8.1f} s  {stages[stage] / wall:6.1%}")
    return {
        "articles": articles,
        "articles_per_s_per_core": round(articles / wall / (cpu / wall), 1),
        "articles_per_s_wall": round(articles / wall, 1),
        "cores_used": round(cpu / wall, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "stage_share": {stage: round(stages[stage] / wall, 3) for stage in STAGES},
        "db_bytes_per_1000": round(db_bytes / max(articles, 1) * 1000),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "stories": stories,
        "hits": hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000, help="pages on the site")
    parser.add_argument("--data", type=Path, help="directory of *.json / *.jsonl texts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-feed", type=int, default=PER_FEED, help="articles per feed")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: temporary)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.articles, args.data, args.seed, args.keep, args.per_feed)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as workdir:
            result = run(args.articles, args.data, args.seed, Path(workdir), args.per_feed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
