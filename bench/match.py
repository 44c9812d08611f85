"""How fast the matcher is: ms per article at 10 to 10,000 commitments, against a naive loop.

    .venv/bin/python bench/match.py [--data ARTICLES] [--commitments commitments.toml]

Articles are the real texts of ``--data``: JSONL with ``title`` and ``text``, a directory of
such JSON files, or an extraction set's directory (``ground-truth.json``). Default: the shared
dedup-dev set, general news where few articles match; fixtures/match_feed is a feed of IP
news. Commitments are the real ones from ``--commitments`` followed by variants generated from
them: each variant keeps a real query's structure (operators, SENT, NEAR,
fields, @aliases) and swaps most of its words and phrases for other terms of
the same kind (word, phrase, prefix, Chinese term) drawn from all the real queries, so
the variants are as specific as real queries but are not copies. "As specific" is
measured on the articles themselves (``--variants frequency``, the default): a term is
swapped only for one found in about as many of them (the same power-of-two bucket of
document frequency), so a rare name ("Longteng") is not replaced by a common word
("amount") that would make its variant match every article. ``--variants kind`` is the
earlier generator (any term of the same kind), kept to compare with older figures: how
many hits it makes depends on which common words the real queries happen to contain.

For every size it measures, in the same run and on the same articles:

* presearch: ``Matcher.match`` (one Aho-Corasick pass, then only candidate queries);
* naive: ``Matcher.match_without_presearch`` (every compiled query evaluated on every
  article, each finding its own terms in the article's token index);
* perfect: the least any presearch could do with this evaluator: the Aho-Corasick pass,
  then only the commitments that do hit the article, evaluated and built into hits (an
  oracle: it is told which they are). Both loops pay for the hits, so naive / perfect
  bounds the speedup a better presearch could reach; on IP news, where an article hits
  about one commitment in a hundred, that bound is low, and only a cheaper evaluator or
  hit builder raises it.

It checks that both return the same hits. Timings are CPU time of this process (other
work on shared cores inflates it less than wall time), the best of ``--repeat`` runs
(``--naive-repeat`` for the slow naive loop), the two loops' passes alternated so that
both go through the same bursts of load on a shared machine. It also times analysing an
article alone (folding and tokens; lines and sentences are found later, only where a
query needs them), the floor both share. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.errors import QuerySyntaxError  # noqa: E402
from monitor.match import Matcher, compile_matcher, compile_query, lookup_term  # noqa: E402
from monitor.match_text import Document  # noqa: E402
from monitor.query import Term, parse_query  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dedup-dev" / "articles.jsonl"
DEFAULT_COMMITMENTS = ROOT / "config" / "commitments.toml"
SIZES = (10, 100, 1000, 10000)

# The pieces of a query's text, so words can be swapped while everything else stays.
_PIECES = re.compile(
    r'"[^"]*"\*?|@[\w-]+|\(|\)|SENT(?=\s*\()|NEAR/\d+|\b(?:AND|OR|NOT)\b|(?:title|text):'
    r'|[^\s()"]+|\s+'
)
_KEEP = re.compile(r"^(?:@|\(|\)|SENT|NEAR/|AND$|OR$|NOT$|title:|text:|\s)")


@dataclass(frozen=True)
class BenchCommitment:
    id: str
    query: str
    exclude: str | None = None
    min_score: float = 1.0


def load_articles(path: Path, limit: int | None) -> list[tuple[str, str]]:
    """(title, text) of a JSONL file; of a directory of article JSON files (the layout of
    fixtures/match_quality/articles and fixtures/match_feed/articles: IP news); or of an
    extraction set's ``ground-truth.json`` (``{id: {articleBody, url}}``, the layout of
    ../shared/data/extraction-dev: real news pages, untitled)."""
    truth = path / "ground-truth.json"
    if path.is_dir() and truth.exists():
        pages = json.loads(truth.read_text(encoding="utf-8"))
        rows = [{"title": "", "text": pages[key].get("articleBody")} for key in sorted(pages)]
    elif path.is_dir():
        rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.json"))]
    else:
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    articles = [(row.get("title") or "", row.get("text") or "") for row in rows]
    return articles[:limit] if limit else articles


def load_commitments(path: Path) -> tuple[list[BenchCommitment], dict[str, str]]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    commitments = [
        BenchCommitment(c["id"], c["query"], c.get("exclude"), float(c.get("min_score", 1.0)))
        for c in data.get("commitment", [])
    ]
    return commitments, dict(data.get("aliases", {}))


def term_pools(commitments: Sequence[BenchCommitment]) -> dict[str, list[str]]:
    """The terms the real queries use, by kind: words, phrases, prefixes, Chinese terms.

    A variant draws each new term from the pool of the kind it replaces, so it is as
    specific as the real queries are: a generator that ORed in "work" or "year" would
    measure a matcher drowning in hits rather than one finding commitments.
    """
    pools: dict[str, set[str]] = {"word": set(), "phrase": set(), "prefix": set(), "cjk": set()}
    for commitment in commitments:
        for piece in _PIECES.findall(commitment.query):
            if not _KEEP.match(piece):
                pools[_kind(piece)].add(piece)
    return {kind: sorted(terms) for kind, terms in pools.items()}


def _kind(piece: str) -> str:
    if piece.startswith('"'):
        return "phrase"
    if piece.endswith("*"):
        return "prefix"
    return "word" if piece.isascii() else "cjk"


def document_frequencies(
    pools: dict[str, list[str]], articles: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """In how many of ``articles`` each pooled term occurs (as the matcher finds terms)."""
    documents = [Document(title, text) for title, text in articles]
    found: dict[str, int] = {}
    for terms in pools.values():
        for piece in terms:
            try:
                root = parse_query(piece).root
            except QuerySyntaxError:
                continue
            if isinstance(root, Term):
                found[piece] = sum(
                    1 for doc in documents if lookup_term(doc, root.tokens, root.prefix)
                )
    return found


def replacement_pools(
    pools: dict[str, list[str]], frequencies: dict[str, int] | None
) -> dict[str, list[str]]:
    """For each pooled term, the terms it may be swapped for.

    Without ``frequencies``: every term of its kind. With them: the terms of its kind in
    the same power-of-two bucket of document frequency; a term of unknown frequency is
    not swapped.
    """
    if frequencies is None:
        return {term: terms for terms in pools.values() for term in terms}
    buckets: dict[tuple[str, int], list[str]] = {}
    for kind, terms in pools.items():
        for term in terms:
            if term in frequencies:
                buckets.setdefault((kind, frequencies[term].bit_length()), []).append(term)
    return {
        term: buckets[(kind, frequencies[term].bit_length())]
        for kind, terms in pools.items()
        for term in terms
        if term in frequencies
    }


def vary(query: str, rng: random.Random, replacements: dict[str, list[str]]) -> str:
    """The same query shape with most terms swapped (see ``replacement_pools``)."""
    out = []
    for piece in _PIECES.findall(query):
        pool = None if _KEEP.match(piece) else replacements.get(piece)
        out.append(rng.choice(pool) if pool and rng.random() < 0.75 else piece)
    return "".join(out)


def generate(
    real: list[BenchCommitment],
    aliases: dict[str, str],
    size: int,
    seed: int = 7,
    articles: Sequence[tuple[str, str]] | None = None,
) -> list[BenchCommitment]:
    """The real commitments, then varied copies of them, ``size`` in all.

    With ``articles``, terms are swapped only for terms about as frequent in them (the
    default of the bench); without, for any term of the same kind (the earlier generator).
    """
    rng = random.Random(seed)
    pools = term_pools(real)
    frequencies = document_frequencies(pools, articles) if articles is not None else None
    replacements = replacement_pools(pools, frequencies)
    out = list(real[:size])
    number = 0
    while len(out) < size:
        base = real[number % len(real)]
        number += 1
        query = vary(base.query, rng, replacements)
        try:
            compile_query(query, aliases)
        except QuerySyntaxError:
            continue
        out.append(BenchCommitment(f"{base.id}~{number}", query, base.exclude, base.min_score))
    return out


def best_ms_per_article(
    runs: Sequence[tuple[Callable[[str, str], object], int]], articles: list[tuple[str, str]]
) -> list[float]:
    """CPU ms per article of each run, the best of its repeats, the runs' passes alternated.

    A shared machine is busy in bursts; alternating the passes of the runs compared
    (presearch, naive) puts them through the same bursts, so their ratio holds better
    than their absolute times.
    """
    best = [float("inf")] * len(runs)
    for round_number in range(max(repeat for _, repeat in runs)):
        for number, (run, repeat) in enumerate(runs):
            if round_number < repeat:
                start = time.process_time()
                for title, text in articles:
                    run(title, text)
                best[number] = min(best[number], time.process_time() - start)
    return [seconds * 1000 / len(articles) for seconds in best]


def check_same(matcher: Matcher, articles: list[tuple[str, str]]) -> tuple[int, float]:
    """Presearch and naive give identical hits; returns (hits, mean candidates/article)."""
    hits = 0
    candidates = 0
    for title, text in articles:
        fast = matcher.match(title, text)
        slow = matcher.match_without_presearch(title, text)
        if fast != slow:
            raise SystemExit(f"presearch and naive disagree on {title!r}: {fast} vs {slow}")
        hits += len(fast)
        candidates += len(matcher.candidates(title, text))
    return hits, candidates / len(articles)


def perfect_presearch(
    matcher: Matcher, articles: list[tuple[str, str]]
) -> Callable[[str, str], object]:
    """``Matcher.match`` with a presearch that knows the answer: only the commitments that
    hit each article are evaluated. Reaches into the matcher's internals on purpose (as
    bench/match_instructions.py does): it measures a part, and breaks loudly if it changes."""
    from monitor.match import _PresearchCtx

    number_of = {c.id: n for n, c in enumerate(matcher._commitments)}
    hitting = {
        (title, text): [number_of[h.commitment_id] for h in matcher.match(title, text)]
        for title, text in articles
    }
    commitments = matcher._commitments
    automaton, widths, evaluate = matcher._automaton, matcher._widths, matcher._evaluate

    def run(title: str, text: str) -> object:
        ctx = _PresearchCtx(Document(title, text), automaton, widths)
        return [evaluate(commitments[n], ctx) for n in hitting[(title, text)]]

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="articles JSONL, or a directory of .json"
    )
    parser.add_argument("--commitments", type=Path, default=DEFAULT_COMMITMENTS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--articles", type=int, default=None, help="use only the first N")
    parser.add_argument("--repeat", type=int, default=5, help="best of N presearch timings")
    parser.add_argument("--naive-repeat", type=int, default=2, help="best of N naive timings")
    parser.add_argument(
        "--variants",
        choices=["frequency", "kind"],
        default="frequency",
        help="swap terms for terms about as frequent in the articles (default), or of the same "
        "kind only (the earlier generator)",
    )
    args = parser.parse_args(argv)

    articles = load_articles(args.data, args.articles)
    real, aliases = load_commitments(args.commitments)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{len(articles)} articles from {args.data}; {len(real)} real commitments")
    print(
        f"{'commitments':>11} {'compile s':>9} {'cand/art':>8} {'hits':>6} "
        f"{'presearch ms':>12} {'naive ms':>9} {'speedup':>7} {'perfect ms':>10} {'bound':>6}"
    )
    # The floor under both columns: reading an article (sentences, folding, tokens).
    # Timed first, while no big matcher is in memory.
    (analysis,) = best_ms_per_article([(Document, args.repeat)], articles)
    print(f"analysing an article alone, shared by both: {analysis:.3f} ms")
    fast: dict[str, float] = {}
    naive: dict[str, float] = {}
    perfect: dict[str, float] = {}
    for size in sizes:
        commitments = generate(
            real, aliases, size, articles=articles if args.variants == "frequency" else None
        )
        start = time.process_time()
        matcher = compile_matcher(commitments, aliases)
        compile_s = time.process_time() - start
        # Compiling made ~100 objects per query. The collector's one-time passes over them
        # belong to start-up, not to whichever articles happen to trigger them.
        gc.collect()
        hits, candidates = check_same(matcher, articles)
        key = str(size)
        fast[key], naive[key], perfect[key] = best_ms_per_article(
            [
                (matcher.match, args.repeat),
                (matcher.match_without_presearch, args.naive_repeat),
                (perfect_presearch(matcher, articles), args.repeat),
            ],
            articles,
        )
        print(
            f"{size:>11} {compile_s:>9.2f} {candidates:>8.1f} {hits:>6} "
            f"{fast[key]:>12.3f} {naive[key]:>9.3f} {naive[key] / fast[key]:>6.1f}x "
            f"{perfect[key]:>10.3f} {naive[key] / perfect[key]:>5.1f}x"
        )
    result = {
        "ms_per_article": {k: round(v, 4) for k, v in fast.items()},
        "naive_ms_per_article": {k: round(v, 4) for k, v in naive.items()},
        "speedup_1000": round(naive["1000"] / fast["1000"], 2) if "1000" in fast else None,
        "perfect_presearch_ms_per_article": {k: round(v, 4) for k, v in perfect.items()},
        "speedup_bound_1000": (
            round(naive["1000"] / perfect["1000"], 2) if "1000" in perfect else None
        ),
        "analysis_ms_per_article": round(analysis, 4),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
