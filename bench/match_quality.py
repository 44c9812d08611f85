"""How well do the commitment queries find the articles they should, and only those?

    python bench/match_quality.py --articles fixtures/match_quality/articles \
        --labels fixtures/match_quality/labels.json [--config config/] [--split all|tune|holdout]

Reads labelled articles (JSON files ``{url, title, text}`` and ``labels.json`` mapping each file
name to the commitment ids it is about), runs the real matcher from ``monitor.match`` over them,
and prints precision, recall and F1 per commitment and overall, beside a keyword baseline that
flags an article when any of the commitment's ``keywords`` occurs in it (case-insensitive
substring). Overall figures are micro-averaged over (article, commitment) pairs.

A third of the files is held out from query tuning by a stable rule (``is_holdout``: the first
byte of the SHA-1 of the file name, mod 3, is 0). Figures are printed for all files, the tuning
files and the held-out files; ``--split`` picks which set the last line summarises.

The last line of output is one JSON object: ``articles``, ``precision``, ``recall``, ``f1``,
``per_commitment`` ({id: {tp, fp, fn, precision, recall, f1}}), ``baseline`` (the same keys for
the keyword baseline), ``split`` and ``splits`` (P/R/F1 of matcher and baseline per split), and
``by_min_score``: P/R/F1 when only hits scoring at least 1.0, 1.5, ... are kept, which is what a
recipient group's ``min_score`` does to its digest (the trade-off a user picks from).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.config import load_config  # noqa: E402
from monitor.match import compile_matcher  # noqa: E402
from monitor.quality import SCORE_THRESHOLDS  # noqa: E402  (the same as monitor quality --by-score)

SPLITS = ("all", "tune", "holdout")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")


def is_holdout(file_name: str) -> bool:
    """Stable split: about a third of the files, chosen by a hash of the name, never tuned on."""
    return hashlib.sha1(file_name.encode("utf-8")).digest()[0] % 3 == 0


def in_split(file_name: str, split: str) -> bool:
    if split == "all":
        return True
    return is_holdout(file_name) == (split == "holdout")


def keyword_terms(keywords: Iterable[str]) -> list[str]:
    """Lower-cased search terms from keyword strings such as '"great losses" 重大损失' or 'a/b'.

    Alternatives separated by '/' become separate terms; quotes and parenthesised asides are
    dropped; Chinese runs are split from the Latin text beside them, since either may appear alone.
    """
    terms: list[str] = []
    for keyword in keywords:
        for part in keyword.split("/"):
            part = re.sub(r"\([^)]*\)", " ", part).replace('"', " ").replace("“", " ")
            part = part.replace("”", " ")
            pieces = _CJK_RUN.findall(part)
            latin = _CJK_RUN.sub(" ", part)
            pieces.append(latin)
            for piece in pieces:
                piece = " ".join(piece.split()).strip(" ,;:").lower()
                if piece and piece not in terms:
                    terms.append(piece)
    return terms


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: bool, expected: bool) -> None:
        if predicted and expected:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif expected:
            self.fn += 1

    def scores(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


@dataclass
class Tally:
    overall: Counts = field(default_factory=Counts)
    per_commitment: dict[str, Counts] = field(default_factory=dict)

    def add(self, ids: Iterable[str], predicted: set[str], expected: set[str]) -> None:
        for commitment_id in ids:
            is_predicted = commitment_id in predicted
            is_expected = commitment_id in expected
            self.overall.add(is_predicted, is_expected)
            self.per_commitment.setdefault(commitment_id, Counts()).add(is_predicted, is_expected)

    def summary(self, articles: int) -> dict[str, Any]:
        return {
            "articles": articles,
            **self.overall.scores(),
            "per_commitment": {
                cid: {"tp": c.tp, "fp": c.fp, "fn": c.fn, **c.scores()}
                for cid, c in self.per_commitment.items()
            },
        }


def load_articles(directory: Path, labels: Mapping[str, list[str]]) -> dict[str, dict[str, str]]:
    articles: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        articles[path.name] = {"title": data.get("title") or "", "text": data.get("text") or ""}
    missing = sorted(set(labels) - set(articles))
    unlabelled = sorted(set(articles) - set(labels))
    if missing or unlabelled:
        raise SystemExit(
            f"labels and articles disagree: labelled but absent {missing}, unlabelled {unlabelled}"
        )
    return articles


def evaluate(
    articles: Mapping[str, Mapping[str, str]],
    labels: Mapping[str, list[str]],
    config_dir: Path | None,
) -> tuple[dict[str, Tally], dict[str, Tally], dict[str, dict[str, Any]]]:
    """Tallies of matcher and baseline for every split, and what each predicted per file."""
    config = load_config(config_dir)
    ids = [c.id for c in config.commitments]
    unknown = sorted({cid for v in labels.values() for cid in v} - set(ids))
    if unknown:
        raise SystemExit(f"labels name unknown commitments: {unknown}")
    matcher = compile_matcher(config.commitments, config.aliases)
    terms = {c.id: keyword_terms(c.keywords) for c in config.commitments}

    matched = {s: Tally() for s in SPLITS}
    baseline = {s: Tally() for s in SPLITS}
    predictions: dict[str, dict[str, Any]] = {}
    for name, article in articles.items():
        scores = {
            hit.commitment_id: hit.score for hit in matcher.match(article["title"], article["text"])
        }
        predicted = set(scores)
        haystack = f"{article['title']}\n{article['text']}".lower()
        keyword_hits = {cid for cid, ts in terms.items() if any(t in haystack for t in ts)}
        expected = set(labels[name])
        predictions[name] = {
            "matcher": predicted,
            "baseline": keyword_hits,
            "expected": expected,
            "scores": scores,
        }
        for split in SPLITS:
            if in_split(name, split):
                matched[split].add(ids, predicted, expected)
                baseline[split].add(ids, keyword_hits, expected)
    return matched, baseline, predictions


def by_min_score(
    predictions: Mapping[str, Mapping[str, Any]], split: str
) -> dict[str, dict[str, float]]:
    """Overall P/R/F1 of the split's files keeping only hits scoring at least each threshold."""
    result = {}
    for threshold in SCORE_THRESHOLDS:
        counts = Counts()
        for name, p in predictions.items():
            if not in_split(name, split):
                continue
            kept = {cid for cid, score in p["scores"].items() if score >= threshold}
            for cid in kept | p["expected"]:
                counts.add(cid in kept, cid in p["expected"])
        result[f"{threshold:.1f}"] = {"hits": counts.tp + counts.fp, **counts.scores()}
    return result


def _row(label: str, counts: Counts, base: Counts) -> str:
    m, b = counts.scores(), base.scores()
    return (
        f"{label:<24} {counts.tp:>3} {counts.fp:>3} {counts.fn:>3}  "
        f"{m['precision']:>5.2f} {m['recall']:>5.2f} {m['f1']:>5.2f}   "
        f"{base.tp:>3} {base.fp:>3} {base.fn:>3}  "
        f"{b['precision']:>5.2f} {b['recall']:>5.2f} {b['f1']:>5.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=Path, required=True, help="directory of article JSON")
    parser.add_argument("--labels", type=Path, required=True, help="labels.json {file: [ids]}")
    parser.add_argument("--config", type=Path, default=ROOT / "config", help="config directory")
    parser.add_argument("--split", choices=SPLITS, default="all", help="set the JSON line reports")
    parser.add_argument("--errors", action="store_true", help="list every wrong prediction")
    args = parser.parse_args(argv)

    labels: dict[str, list[str]] = json.loads(args.labels.read_text(encoding="utf-8"))
    articles = load_articles(args.articles, labels)
    matched, baseline, predictions = evaluate(articles, labels, args.config)
    sizes = {s: sum(in_split(n, s) for n in articles) for s in SPLITS}

    header = f"{'':<24} {'matcher':^33}   {'keyword baseline':^33}"
    columns = f"{'commitment':<24} {'tp':>3} {'fp':>3} {'fn':>3}  {'P':>5} {'R':>5} {'F1':>5}"
    print(header)
    print(f"{columns}   {columns[25:]}")
    split = args.split
    for cid, counts in matched[split].per_commitment.items():
        print(_row(cid, counts, baseline[split].per_commitment[cid]))
    print()
    for s in SPLITS:
        print(_row(f"{s} ({sizes[s]} articles)", matched[s].overall, baseline[s].overall))

    thresholds = by_min_score(predictions, split)
    print()
    print(f"{'digest min_score':<24} {'hits':>5} {'P':>5} {'R':>5} {'F1':>5}   ({split} files)")
    for threshold, figures in thresholds.items():
        print(
            f"{'>= ' + threshold:<24} {figures['hits']:>5} {figures['precision']:>5.2f} "
            f"{figures['recall']:>5.2f} {figures['f1']:>5.2f}"
        )

    if args.errors:
        print()
        for name, p in sorted(predictions.items()):
            if not in_split(name, split):
                continue
            fp = sorted(p["matcher"] - p["expected"])
            fn = sorted(p["expected"] - p["matcher"])
            if fp or fn:
                print(f"{name}: false positives {fp}, missed {fn}")

    result = matched[split].summary(sizes[split])
    result["baseline"] = baseline[split].summary(sizes[split])
    result["split"] = split
    result["splits"] = {
        s: {
            "articles": sizes[s],
            **matched[s].overall.scores(),
            "baseline": baseline[s].overall.scores(),
        }
        for s in SPLITS
    }
    result["by_min_score"] = thresholds
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
