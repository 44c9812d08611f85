"""The matcher: what matches, the evidence it shows, scores, and presearch = naive."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from monitor.errors import QuerySyntaxError
from monitor.match import Evidence, Hit, compile_matcher, compile_query

ALIASES = {
    "IP": '("intellectual property" OR IPR OR IP OR 知识产权)',
    "BRI": '("Belt and Road" OR BRI OR 一带一路)',
}


@dataclass(frozen=True)
class Commitment:
    id: str
    query: str
    exclude: str | None = None
    min_score: float = 1.0


def hit(query: str, text: str, title: str = "") -> Hit | None:
    return compile_query(query, ALIASES).match(title, text)


def test_contract_types() -> None:
    matcher = compile_matcher([Commitment("A", "China AND @IP")], ALIASES)
    hits = matcher.match("", "China will protect intellectual property.")
    assert [h.commitment_id for h in hits] == ["A"]
    assert isinstance(hits[0].evidence[0], Evidence)
    assert hits[0].query_version == matcher.query_versions["A"]


def test_cjk_term_matches_inside_unspaced_text() -> None:
    found = hit("知识产权", "加强知识产权保护")
    assert found is not None
    assert found.evidence[0].spans == ((2, 6),)


def test_parse_error_names_commitment_and_position() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_matcher([Commitment("PO-1.13", "takedown AND (notice")], ALIASES)
    assert info.value.commitment_id == "PO-1.13"
    assert info.value.position == len("takedown AND (notice")
