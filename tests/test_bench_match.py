"""bench/match.py's commitment generator: variants as specific as the real queries."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import match as bench  # type: ignore[import-not-found]  # noqa: E402

from monitor.match import compile_query  # noqa: E402

ARTICLES = [
    ("Customs seize fakes", "China customs seized fakes at the port. Trade rose."),
    ("Trade figures", "China trade rose in May, the customs office said."),
    ("Weather", "Rain in the north; trade fairs postponed."),
]
REAL = [
    bench.BenchCommitment("A", 'SENT(customs AND seiz*) AND Longteng AND "port authority"'),
    bench.BenchCommitment("B", 'trade AND (rain OR Zhuhai) AND "customs office"'),
]


def test_frequencies_count_articles_holding_each_term() -> None:
    pools = bench.term_pools(REAL)
    frequencies = bench.document_frequencies(pools, ARTICLES)
    assert frequencies["trade"] == 3
    assert frequencies["customs"] == 2
    assert frequencies["seiz*"] == 1
    assert frequencies["Longteng"] == 0 and frequencies["Zhuhai"] == 0
    assert frequencies['"customs office"'] == 1 and frequencies['"port authority"'] == 0


def test_a_term_is_swapped_only_for_one_of_its_kind_about_as_frequent() -> None:
    pools = bench.term_pools(REAL)
    frequencies = bench.document_frequencies(pools, ARTICLES)
    replacements = bench.replacement_pools(pools, frequencies)
    # A word no article holds is never swapped for one most articles hold.
    assert set(replacements["Longteng"]) == {"Longteng", "Zhuhai"}
    assert "trade" not in replacements["Longteng"]
    assert set(replacements["trade"]) == {"trade", "customs"}  # 3 and 2 articles: one bucket
    assert replacements["rain"] == ["rain"]  # the only word in one article
    # Without frequencies (the earlier generator) any word of the kind will do.
    assert "trade" in bench.replacement_pools(pools, None)["Longteng"]


def test_variants_keep_the_shape_and_compile() -> None:
    variants = bench.generate(REAL, {}, 12, articles=ARTICLES)
    assert [c.id for c in variants[:2]] == ["A", "B"] and len(variants) == 12
    for variant in variants:
        compile_query(variant.query)
        assert variant.query.count("AND") == next(
            r for r in REAL if variant.id.startswith(r.id)
        ).query.count("AND")


def test_vary_swaps_from_the_replacement_pool() -> None:
    replacements = {"Longteng": ["Zhuhai"], "trade": ["trade"]}
    varied = {
        bench.vary("Longteng AND trade", random.Random(seed), replacements) for seed in range(20)
    }
    assert varied <= {"Longteng AND trade", "Zhuhai AND trade"} and "Zhuhai AND trade" in varied


def test_articles_load_from_jsonl_or_a_directory_of_json_files(tmp_path: Path) -> None:
    rows = [{"title": "A", "text": "one"}, {"title": "B", "text": "two", "url": "u"}]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    folder = tmp_path / "articles"
    folder.mkdir()
    for number, row in enumerate(rows):
        (folder / f"{number}.json").write_text(json.dumps(row))
    expected = [("A", "one"), ("B", "two")]
    assert bench.load_articles(tmp_path / "set.jsonl", None) == expected
    assert bench.load_articles(folder, None) == expected


def test_articles_load_from_an_extraction_sets_ground_truth(tmp_path: Path) -> None:
    truth = {"b": {"articleBody": "second", "url": "u2"}, "a": {"articleBody": "first"}}
    (tmp_path / "ground-truth.json").write_text(json.dumps(truth))
    assert bench.load_articles(tmp_path, None) == [("", "first"), ("", "second")]


def test_instruction_stages_run_the_presearch_up_to_each_stage() -> None:
    import match_instructions  # type: ignore[import-not-found]

    from monitor.match import compile_matcher

    commitments = [bench.BenchCommitment("C", "customs AND seiz*")]
    matcher = compile_matcher(commitments, {})
    title, text = ARTICLES[0]
    assert match_instructions.stage_runner(matcher, "read")(title, text) is not None
    assert len(match_instructions.stage_runner(matcher, "select")(title, text)) == 1
    assert len(match_instructions.stage_runner(matcher, "evaluate")(title, text)) == 1
    assert match_instructions.stage_runner(matcher, "select")("Weather", "Rain.") == []
    hits = match_instructions.stage_runner(matcher, "presearch")(title, text)
    assert [hit.commitment_id for hit in hits] == ["C"]


def test_the_perfect_presearch_evaluates_only_the_commitments_that_hit() -> None:
    real = [
        bench.BenchCommitment("seized", "SENT(customs AND seiz*)"),
        bench.BenchCommitment("trade", "title:trade"),
        bench.BenchCommitment("never", "Longteng"),
    ]
    matcher = bench.compile_matcher(real, {})
    perfect = bench.perfect_presearch(matcher, ARTICLES)
    for title, text in ARTICLES:
        built = [h for h in perfect(title, text) if h is not None]  # type: ignore[attr-defined]
        assert built == matcher.match(title, text)
    assert perfect(*ARTICLES[0]) and not perfect(*ARTICLES[2])  # type: ignore[truthy-function]
