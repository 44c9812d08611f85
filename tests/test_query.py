"""The query parser: what it reads, how it reports mistakes, and that it never crashes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ConfigError, QuerySyntaxError
from monitor.match import compile_query
from monitor.query import And, Near, Not, Or, Sent, Term, fold, parse_query, word_tokens

ALIASES = {
    "IP": '("intellectual property" OR IPR OR IP OR 知识产权)',
    "BRI": '("Belt and Road" OR BRI OR 一带一路)',
}


def tree(query: str) -> object:
    return parse_query(query, ALIASES).root


def term(*tokens: str, prefix: bool = False, field: str | None = None) -> Term:
    return Term(tuple(tokens), prefix, field)


# ---------------------------------------------------------------------------- reading


def test_precedence_or_is_loosest_then_and_then_not_then_near() -> None:
    assert tree("a b OR c NOT d NEAR/2 e") == Or(
        (
            And((term("a"), term("b"))),
            And((term("c"), Not(Near(term("d"), term("e"), 2)))),
        )
    )


def test_explicit_and_equals_implicit_and() -> None:
    assert tree("china AND cooperation") == tree("china cooperation")


def test_parentheses_override_precedence() -> None:
    assert tree("(a OR b) c") == And((Or((term("a"), term("b"))), term("c")))


def test_operators_are_uppercase_only() -> None:
    assert tree("trade and secrets") == And((term("trade"), term("and"), term("secrets")))


def test_phrase_prefix_and_punctuated_word() -> None:
    assert tree('"Belt and Road"') == term("belt", "and", "road")
    assert tree("cooperat*") == term("cooperat", prefix=True)
    assert tree('"intellectual propert*"') == term("intellectual", "propert", prefix=True)
    assert tree("U.S.") == term("u", "s")  # a word with inner punctuation is a phrase


def test_folding_case_diacritics_and_width() -> None:
    assert tree("Coopération") == term("cooperation")
    assert tree("ＩＰ") == term("ip")
    assert fold("Straße") == "strasse"


def test_cjk_terms_become_character_sequences() -> None:
    assert tree("知识产权") == term("知", "识", "产", "权")
    assert word_tokens(fold("加强IP保护")) == ["加", "强", "ip", "保", "护"]


def test_field_scope_applies_to_a_whole_group_and_to_aliases() -> None:
    assert tree("title:(a OR b)") == Or((term("a", field="title"), term("b", field="title")))
    scoped = tree("title:@BRI")
    assert isinstance(scoped, Or)
    assert all(child.field == "title" for child in scoped.children)


def test_sent_and_near() -> None:
    assert tree("SENT(a b)") == Sent(And((term("a"), term("b"))))
    assert tree("a NEAR/5 b") == Near(term("a"), term("b"), 5)


def test_aliases_expand_and_are_recorded() -> None:
    parsed = parse_query("@IP AND @BRI", ALIASES)
    assert parsed.aliases_used == {"IP", "BRI"}
    assert isinstance(parsed.root, And)


def test_aliases_may_use_aliases() -> None:
    aliases = {**ALIASES, "BOTH": "@IP @BRI"}
    assert parse_query("@BOTH", aliases).aliases_used == {"BOTH", "IP", "BRI"}


def test_explain_parses_back_to_the_same_tree() -> None:
    query = compile_query('title:(@IP OR x) SENT(cooperat* NEAR/3 "belt and road") NOT y', ALIASES)
    assert compile_query(query.explain()).root == query.root


# ---------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [
        ("a AND", 5, "expected a term"),
        ("(a OR b", 7, "expected ')'"),
        ("a NEAR b", 2, "NEAR/n"),
        ("a NEAR/x b", 2, "NEAR/n"),
        ("a NEAR/5000 b", 2, "too far"),
        ("@FOO", 0, "unknown alias @FOO"),
        ("@", 0, "alias name"),
        ("foo:bar", 0, "unknown field 'foo'"),
        ("ab*c", 2, "may only end a word"),
        ("a*", 0, "at least 2 letters"),
        ('"x', 0, "unterminated phrase"),
        ('""', 0, "empty phrase"),
        ("", 0, "empty query"),
        ("a )", 2, "closes nothing"),
        ("()", 1, "parentheses are empty"),
        ("NOT", 3, "expected a term"),
        ("x NEAR/3 NOT y", 9, "NEAR needs terms"),
        ("(NOT x) NEAR/3 y", 0, "not only NOT terms"),
        ("&&", 0, "no letters or digits"),
        ("title:title:x", 6, "after title:"),
    ],
)
def test_errors_name_the_position_and_what_was_expected(
    query: str, position: int, expected: str
) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(query, ALIASES, commitment_id="PO-1.13")
    error = info.value
    assert error.commitment_id == "PO-1.13"
    assert error.position == position
    assert expected in str(error)
    assert isinstance(error, ConfigError)


def test_an_error_inside_an_alias_names_the_alias_and_points_into_it() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query("@BAD", {"BAD": "(a OR"}, commitment_id="X")
    assert "in alias @BAD" in str(info.value)
    assert info.value.query == "(a OR"
    assert info.value.position == 5


def test_an_alias_cycle_is_an_error() -> None:
    with pytest.raises(QuerySyntaxError, match="refers to itself"):
        compile_query("@A", {"A": "x OR @B", "B": "@A"})


def test_the_message_draws_a_caret_under_the_position() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query("china AND (ip", commitment_id="C")
    assert str(info.value).endswith("  china AND (ip\n               ^")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(QuerySyntaxError, match="nests deeper"):
        compile_query("(" * 500 + "a" + ")" * 500)
    with pytest.raises(QuerySyntaxError, match="nests deeper"):
        compile_query("NOT " * 500 + "a")


# ---------------------------------------------------------------------------- fuzzing

_PIECES = st.sampled_from(
    [
        "a", "b", "IP", "知识产权", "cooperat*", "*", "x*y", '"belt and road"', '"', "(", ")",
        "AND", "OR", "NOT", "NEAR/2", "NEAR/", "NEAR", "SENT(", "SENT", "title:", "text:",
        "foo:", "@IP", "@BRI", "@NOPE", "@", "&", "-", ":", "U.S.", "é", " ", "\n", "\t",
    ]
)  # fmt: skip


@settings(max_examples=250, deadline=None)
@given(st.lists(_PIECES, max_size=14).map(" ".join))
def test_fuzz_query_like_input_only_raises_query_syntax_error(query: str) -> None:
    try:
        compiled = compile_query(query, ALIASES, commitment_id="F")
    except QuerySyntaxError as error:
        assert error.position is not None
        assert 0 <= error.position <= len(error.query or "")
        return
    compiled.match("IP cooperation", "A sentence. 知识产权合作。 Another (one) U.S. here.")
    assert compile_query(compiled.explain()).root == compiled.root


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_any_text_only_raises_query_syntax_error(query: str) -> None:
    with contextlib.suppress(QuerySyntaxError):
        compile_query(query, ALIASES)
