"""Benchmark ipr-monitor's article extraction against trafilatura's default call.

Usage::

    .venv/bin/python bench/extract.py --data ../shared/data/extraction-dev

DIR holds ``html/<id>.html.gz`` (gzip, UTF-8) and ``ground-truth.json``
(``{id: {"articleBody": ..., "url": ...}}``), the layout of the public
article-extraction benchmark. Quality uses that benchmark's own metric (see
``score_page``). Both extractors run in the same process, interleaved page by page
and alternating which goes first, because the machine is shared and noisy: only the
ratio of the two times means something. For the same reason each page is timed
``--repeat`` times per extractor (alternating the order) and its fastest run is kept, as
:mod:`timeit` does: a burst of load from another process then inflates neither side.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.extract import extract

TOKEN_RE = re.compile(r"\w+")
SHINGLE_SIZE = 4


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """4-token shingles as a multiset; a text of 1-3 tokens gives one shorter shingle."""
    tokens = TOKEN_RE.findall(text or "")
    if not tokens:
        return Counter()
    count = max(1, len(tokens) - SHINGLE_SIZE + 1)
    return Counter(tuple(tokens[i : i + SHINGLE_SIZE]) for i in range(count))


@dataclass(frozen=True)
class PageScore:
    precision: float | None  # None: empty prediction, left out of the precision mean
    recall: float


def score_page(predicted: str, truth: str) -> PageScore:
    """The benchmark's per-page precision and recall over shingle multisets."""
    pred, true = shingles(predicted), shingles(truth)
    if not pred and not true:
        return PageScore(1.0, 1.0)
    if not pred:
        return PageScore(None, 0.0)
    tp = sum((pred & true).values())
    fp = sum(pred.values()) - tp
    fn = sum(true.values()) - tp
    recall = tp / (tp + fn) if tp + fn else 1.0
    return PageScore(tp / (tp + fp), recall)


@dataclass(frozen=True)
class Summary:
    precision: float
    recall: float
    f1: float
    median_ms: float
    p95_ms: float


def summarize(scores: list[PageScore], times_ms: list[float]) -> Summary:
    """Means over pages, then F1 of the means (the benchmark's convention)."""
    precisions = [s.precision for s in scores if s.precision is not None]
    precision = statistics.fmean(precisions) if precisions else 0.0
    recall = statistics.fmean(s.recall for s in scores) if scores else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ordered = sorted(times_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else 0.0
    median = statistics.median(ordered) if ordered else 0.0
    return Summary(precision, recall, f1, median, p95)


def ours(html: bytes, url: str | None) -> str:
    return extract(html, url).text


def baseline(html: bytes, url: str | None) -> str:
    return trafilatura.extract(html, url=url) or ""


def timed(function: Callable[[bytes, str | None], str], html: bytes, url: str | None):
    start = time.perf_counter()
    text = function(html, url)
    return text, (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages by F1")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="time each page N times per extractor and keep the fastest (default 3)",
    )
    args = parser.parse_args(argv)

    truth = json.loads((args.data / "ground-truth.json").read_text(encoding="utf-8"))
    ids = sorted(truth)[: args.limit]
    runners = {"ipr-monitor": ours, "trafilatura": baseline}
    scores: dict[str, list[PageScore]] = {name: [] for name in runners}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for index, page_id in enumerate(ids):
        html = gzip.decompress((args.data / "html" / f"{page_id}.html.gz").read_bytes())
        url = truth[page_id].get("url")
        fastest: dict[str, float] = {}
        texts: dict[str, str] = {}
        for repeat in range(args.repeat):
            order = list(runners) if (index + repeat) % 2 == 0 else list(reversed(runners))
            for name in order:
                texts[name], ms = timed(runners[name], html, url)
                fastest[name] = min(ms, fastest.get(name, ms))
        for name in runners:
            scores[name].append(score_page(texts[name], truth[page_id]["articleBody"]))
            times[name].append(fastest[name])

    summaries = {name: summarize(scores[name], times[name]) for name in runners}
    print(f"{len(ids)} pages from {args.data}; time per page: fastest of {args.repeat} runs")
    print(
        f"{'extractor':<12} {'precision':>9} {'recall':>7} {'F1':>6} {'median ms':>9} {'p95 ms':>7}"
    )
    for name, s in summaries.items():
        print(
            f"{name:<12} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} "
            f"{s.median_ms:9.1f} {s.p95_ms:7.1f}"
        )
    if args.worst:

        def page_f1(s: PageScore) -> float:
            p = s.precision or 0.0
            return 2 * p * s.recall / (p + s.recall) if p + s.recall else 0.0

        ranked = sorted(zip(ids, scores["ipr-monitor"], strict=True), key=lambda x: page_f1(x[1]))
        for page_id, s in ranked[: args.worst]:
            print(f"  {page_id[:12]} P={s.precision} R={s.recall:.3f} {truth[page_id].get('url')}")
    us, base = summaries["ipr-monitor"], summaries["trafilatura"]
    ratio = us.median_ms / base.median_ms if base.median_ms else float("inf")
    print(f"time ratio (ours / trafilatura default, medians): {ratio:.2f}")
    print(
        json.dumps(
            {
                "pages": len(ids),
                "precision": round(us.precision, 4),
                "recall": round(us.recall, 4),
                "f1": round(us.f1, 4),
                "median_ms": round(us.median_ms, 2),
                "p95_ms": round(us.p95_ms, 2),
                "baseline_f1": round(base.f1, 4),
                "baseline_median_ms": round(base.median_ms, 2),
                "time_ratio": round(ratio, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
