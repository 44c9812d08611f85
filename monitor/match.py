"""Match articles against commitments: one compiled matcher, a presearch, evidence.

``compile_matcher`` parses every commitment's query (the language is in
``monitor.query`` and ``docs/query-language.md``) and compiles all of them into one
:class:`Matcher`, the way Lucene's Monitor (Luwak) and Elasticsearch's percolator do:

1. Every distinct term of every query becomes one key of a single Aho-Corasick automaton
   over the article's token stream. One pass over an article finds every term that
   occurs, and where.
2. Each query gets *required clauses*: sets of terms of which at least one must occur for
   the query to match (``a AND b`` needs {a} and {b}; ``a OR b`` needs {a, b}; a NOT
   needs nothing). The query is indexed under its most selective clause, and an article's
   candidates are the queries indexed under a term it holds whose every clause is met,
   and whose whole boolean shape is met by the terms present (sentences, distances and
   fields aside; ``_Presence``). A query with no clause (``NOT x``) is evaluated on
   every article.
3. Only candidates are evaluated, on the term positions the pass found: each node
   returns the positions that satisfy it, or None, and an AND stops at its first child
   that fails. ``SENT(...)`` first intersects the lines, then the sentences, holding each
   of its clauses as bitmasks.

The article is tokenized once, up front; everything else is lazy (see ``Document``): lines
are found when a candidate needs them, and a line is split into sentences only when a
query asks about one of its sentences. Most articles have no candidate at all, and most
candidates are settled without a sentence split.

A hit carries a score, the evidence sentences with the matched terms marked, and the
version of the query it was matched with, so a stored hit can be traced to the query
text that produced it. ``Matcher.match_without_presearch`` evaluates every query on its
own, looking terms up in the article; it is the reference the presearch is tested
against and the baseline ``bench/match.py`` measures.
"""

from __future__ import annotations

import gc
import hashlib
import json
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs

from monitor.match_text import Document, split_sentences
from monitor.query import (
    And,
    Near,
    Node,
    Not,
    Or,
    ParsedQuery,
    Sent,
    Term,
    is_cjk,
    iter_terms,
    parse_query,
)

__all__ = [
    "Evidence",
    "Hit",
    "Matcher",
    "Query",
    "compile_matcher",
    "compile_query",
    "split_sentences",
]

MAX_EVIDENCE = 5
MAX_CLAUSES = 6  # required-term clauses checked per candidate: the most selective ones
MAX_DFA_KEYS = 20_000  # distinct terms up to which the Aho-Corasick automaton is a DFA

# Words common in any news text, English and Chinese: poor anchors for the presearch.
# A general prior written down once, not statistics of any test set.
_NEWS_WORDS_TEXT = """
    a about after against all also an and any are as at be been before being between both
    but by can could day did do does during each end even first for from had has have he
    her his how if in into is it its last late made make many may more most much must new
    no not now of off on one only or other our out over part people said same say says she
    should since so some such than that the their them then there these they this those
    through time to two under up us very was way we were what when where which while who
    will with would year years you
    according added already around back based called came city come country countries
    court data deal early end former found get give given go going good government group
    health help high home house including information issue just know law least less
    life like likely long look lot major market meeting million billion month months
    national next number office official officials old open order percent place plan
    play point police political president public put rate report reported right rules
    run safety saying second see set several show side small state states support take
    term told top trade use used want week well world work
    中国 我国 国家 发展 工作 政府 部门 相关 进行 表示 记者 企业 市场 问题 今年
"""
_NEWS_WORDS = frozenset(_NEWS_WORDS_TEXT.split())

# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Evidence:
    """One sentence that supports a hit, with the matched terms' offsets for highlighting."""

    text: str
    spans: tuple[tuple[int, int], ...]
    field: str = "text"


@dataclass(frozen=True)
class Hit:
    """A commitment an article matched: how strongly, why, and with which query version."""

    commitment_id: str
    score: float
    evidence: tuple[Evidence, ...]
    query_version: str


# ---------------------------------------------------------------------------- term lookup

_Leaf = tuple[tuple[str, ...], bool]  # (tokens, prefix)
_Positions = list[tuple[int, int]]  # (first token, one past the last), token indices


class _Ctx:
    """Where each term occurs in one document; subclasses differ in how they find out."""

    __slots__ = (
        "_clause_sentences",
        "_clause_units",
        "_clauses_units",
        "_evidence",
        "_units",
        "doc",
        "known",
        "within",
    )

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        # A range known to lie inside one sentence (set while scoring a hit's sentences):
        # SENT over any part of it is its contents, with no sentence lookups.
        self.within: tuple[int, int] | None = None
        # term id -> its starts, once worked out (a presearch context shares them)
        self.known: dict[int, list[int]] = {}
        self._units: dict[int, int] = {}
        self._clause_units: dict[frozenset[int], int] = {}
        self._clauses_units: dict[tuple[frozenset[int], ...], int] = {}
        self._clause_sentences: dict[tuple[frozenset[int], int], int] = {}
        # (sentence, its marks) -> its Evidence: an article that matches many commitments
        # cites the same sentence with the same terms in most of its hits (7 in 10 here)
        self._evidence: dict[tuple[int, tuple[tuple[int, int], ...]], Evidence] = {}

    def starts(self, leaf_id: int) -> list[int]:
        """Sorted token indices where the term starts."""
        raise NotImplementedError

    def evidence(self, sentence: int, marks: tuple[tuple[int, int], ...]) -> Evidence:
        """The sentence with its marked terms (sorted), made once per article for the same
        marks."""
        key = (sentence, marks)
        found = self._evidence.get(key)
        if found is None:
            found = self._evidence[key] = _evidence(self.doc, sentence, marks)
        return found

    def present(self, clause: frozenset[int]) -> Iterable[int]:
        """The terms of ``clause`` that may occur (all of them, unless known otherwise)."""
        return clause

    def terms_in(self, clause: frozenset[int]) -> Iterable[int]:
        """``present``, not kept: for a clause whose result its caller keeps."""
        return clause

    def unit_mask(self, leaf_id: int) -> int:
        """The units (title, lines) holding the term, as a bitmask (bit i = unit i)."""
        mask = self._units.get(leaf_id)
        if mask is None:
            mask = 0
            unit_of = self.doc.unit_of
            for start in self.starts(leaf_id):
                mask |= 1 << unit_of(start)
            self._units[leaf_id] = mask
        return mask

    def clause_units(self, clause: frozenset[int]) -> int:
        """The units holding any term of ``clause`` (many queries share alias clauses)."""
        mask = self._clause_units.get(clause)
        if mask is None:
            mask = 0
            units = self._units
            for leaf_id in self.terms_in(clause):
                found = units.get(leaf_id)
                mask |= self.unit_mask(leaf_id) if found is None else found
            self._clause_units[clause] = mask
        return mask

    def clauses_units(self, clauses: tuple[frozenset[int], ...]) -> int:
        """The units holding a term of every one of ``clauses``: where a query (or a SENT)
        with these required clauses can be met. A hit asks it once for all its sentences."""
        mask = self._clauses_units.get(clauses)
        if mask is None:
            mask = -1
            for clause in clauses:
                mask &= self.clause_units(clause)
                if not mask:
                    break
            self._clauses_units[clauses] = mask
        return mask

    def clause_sentences(self, clause: frozenset[int], unit: int) -> int:
        """The sentences of ``unit`` holding any term of ``clause`` (bit i = its sentence i)."""
        key = (clause, unit)
        mask = self._clause_sentences.get(key)
        if mask is None:
            mask = 0
            doc = self.doc
            first, end = doc.unit_range(unit)
            for leaf_id in self.present(clause):
                starts = self.starts(leaf_id)
                for start in starts[bisect_left(starts, first) : bisect_left(starts, end)]:
                    mask |= 1 << doc.local_sentence(unit, start)
            self._clause_sentences[key] = mask
        return mask


class _PresearchCtx(_Ctx):
    """Term positions from one Aho-Corasick pass over the document's token stream."""

    __slots__ = ("_present", "pending", "raw", "widths")

    def __init__(self, doc: Document, automaton: Any, widths: list[int]) -> None:
        super().__init__(doc)
        self.widths = widths
        # clause -> its terms present: aliases (@CHINA, @IP) recur in most candidates
        self._present: dict[frozenset[int], tuple[int, ...]] = {}
        raw: dict[int, list[int]] = defaultdict(list)
        if automaton is not None:
            # ``joined`` is " t0 t1 ... ": a key whose last character is at e (inside its
            # last token, or the space after it) has as many spaces before e as tokens up
            # to and including its last one. One running count over the matches, which
            # come in order of their ends, converts them all to token indices.
            joined = doc.joined
            count = joined.count
            spaces = 0
            previous = 0
            for leaf_id, start, end in automaton.find_matches_as_indexes(joined, overlapping=True):
                if joined[start - 1] != 32:
                    continue  # inside a token ("ip " in "relationship ")
                last = end - 1
                if last >= previous:
                    spaces += count(b" ", previous, last)
                else:  # never seen, but the order is the library's to choose
                    spaces -= count(b" ", last, previous)
                previous = last
                raw[leaf_id].append(spaces - widths[leaf_id])
            for found in raw.values():
                if len(found) > 1 and found[-1] < found[-2]:
                    found.sort()
        self.raw = raw
        # Words are final; phrases keep only their occurrences inside one sentence, which
        # may need a line split into sentences: left until a query asks for them.
        known = self.known
        pending: dict[int, list[int]] = {}
        self.pending = pending
        for leaf_id, found in raw.items():
            if widths[leaf_id] == 1:
                known[leaf_id] = found
            else:
                pending[leaf_id] = found

    def present(self, clause: frozenset[int]) -> Iterable[int]:
        found = self._present.get(clause)
        if found is None:
            found = self._present[clause] = tuple(self.raw.keys() & clause)
        return found

    def terms_in(self, clause: frozenset[int]) -> Iterable[int]:
        return self.raw.keys() & clause

    def starts(self, leaf_id: int) -> list[int]:
        known = self.known.get(leaf_id)
        if known is None:
            found = self.pending.pop(leaf_id, None)
            known = self.known[leaf_id] = (
                [] if found is None else self.doc.within_one_sentence(found, self.widths[leaf_id])
            )
        return known


class _LookupCtx(_Ctx):
    """Term positions looked up in the document's token index, term by term, no sharing.

    This is how a query is evaluated on its own (``Query.match``, ``match_one``) and the
    naive baseline: every query finds its own terms.
    """

    __slots__ = ("leaves",)

    def __init__(self, doc: Document, leaves: Sequence[_Leaf]) -> None:
        super().__init__(doc)
        self.leaves = leaves

    def starts(self, leaf_id: int) -> list[int]:
        tokens, prefix = self.leaves[leaf_id]
        return lookup_term(self.doc, tokens, prefix)


def lookup_term(doc: Document, tokens: tuple[str, ...], prefix: bool) -> list[int]:
    """Start positions of a term in ``doc``, from its token index (no automaton)."""
    index = doc.index
    head = tokens[0]
    if len(tokens) == 1 and prefix:
        vocab = doc.vocab
        lo = bisect_left(vocab, head)
        found: list[int] = []
        for word in vocab[lo:]:
            if not word.startswith(head):
                break
            found.extend(index[word])
        found.sort()
        return found
    starts = index.get(head)
    if not starts:
        return []
    if len(tokens) == 1:
        return starts
    words = doc.tokens
    size = len(words)
    last = len(tokens) - 1
    out = []
    for start in starts:
        if start + last >= size:
            break
        for offset in range(1, last + 1):
            word = words[start + offset]
            want = tokens[offset]
            if not (word == want or (prefix and offset == last and word.startswith(want))):
                break
        else:
            out.append(start)
    return doc.within_one_sentence(out, len(tokens))


# ---------------------------------------------------------------------------- evaluation

# Every node compiles to two closures over a document context and a token range
# [lo, hi) (the whole document, or one sentence for SENT and for evidence):
#   test: is this part of the query satisfied?  Cheap, and all most candidates need.
#   find: the positions of the terms that satisfy it (empty for a satisfied NOT), or None.
#         Only run for hits, to mark and pick evidence.
_Test = Callable[[_Ctx, int, int], bool]
_Find = Callable[[_Ctx, int, int], "_Positions | None"]


@dataclass(frozen=True)
class _Eval:
    test: _Test
    find: _Find


class _Presence:
    """A query's boolean shape over the terms present, tested on a bitmask of term ids.

    ``any_of``: met if one bit of ``single`` is set, all bits of one of ``some`` or one of
    ``others`` is met. Otherwise: met if every bit of ``every`` is set, some bit of each of
    ``some`` and every one of ``others`` is met. (A lone term is ``single`` = its bit.)
    ``some`` holds the simplest ``others`` (an AND of terms in an OR, an OR of terms in an
    AND) as plain masks, so most of a shape is tested without a call per part.
    """

    __slots__ = ("any_of", "every", "others", "single", "some")

    def __init__(
        self, single: int, every: int, others: tuple[_Presence, ...], *, any_of: bool = False
    ) -> None:
        self.single = single
        self.every = every
        self.any_of = any_of or bool(single)
        plain = [o for o in others if o.any_of != self.any_of and o.is_mask]
        self.some: tuple[int, ...] = tuple(o.every if self.any_of else o.single for o in plain)
        self.others: tuple[_Presence, ...] = tuple(o for o in others if o not in plain)

    @property
    def is_mask(self) -> bool:
        """Whether the shape is one mask: all bits of ``every``, or any bit of ``single``."""
        return not self.others and not self.some

    def met(self, present: int) -> bool:
        if self.any_of:
            if present & self.single:
                return True
            for mask in self.some:
                if present & mask == mask:
                    return True
            for other in self.others:  # noqa: SIM110 (a loop: any() adds a generator)
                if other.met(present):
                    return True
            return False
        if present & self.every != self.every:
            return False
        for mask in self.some:
            if not present & mask:
                return False
        for other in self.others:  # noqa: SIM110
            if not other.met(present):
                return False
        return True


class _Compiler:
    """Turns query trees into evaluator closures over term ids shared by all queries."""

    def __init__(self) -> None:
        self.leaf_ids: dict[_Leaf, int] = {}
        self.leaves: list[_Leaf] = []
        self._required: dict[int, tuple[Node, tuple[frozenset[int], ...]]] = {}
        self._compiled: dict[int, tuple[Node, _Eval]] = {}
        self._costs: dict[frozenset[int], float] = {}

    def leaf(self, term: Term) -> int:
        leaf_id = self.leaf_ids.get(term.key)
        if leaf_id is None:
            leaf_id = self.leaf_ids[term.key] = len(self.leaves)
            self.leaves.append(term.key)
        return leaf_id

    # --- what must occur for a node to match

    def required(self, node: Node) -> tuple[frozenset[int], ...]:
        """Clauses of term ids: ``node`` can match only if each clause has a term present.

        A conjunction of disjunctions that is necessary, not sufficient (it ignores
        fields, sentences, distances and NOT), and holds in any scope: the whole article
        or one sentence. ``()`` means nothing is required (a NOT can match an empty text).
        """
        memo = self._required.get(id(node))
        if memo is not None and memo[0] is node:
            return memo[1]
        result = self._required_of(node)
        self._required[id(node)] = (node, result)
        return result

    def _required_of(self, node: Node) -> tuple[frozenset[int], ...]:
        if isinstance(node, Term):
            return (frozenset((self.leaf(node),)),)
        if isinstance(node, Not):
            return ()
        if isinstance(node, Sent):
            return self.required(node.child)
        if isinstance(node, Or):
            # Whichever child matches meets all its clauses, so a union of one clause from
            # every child is necessary. Several such unions filter far better than one:
            # (SENT(a b) AND c) OR d needs {a,d}, {b,d} and {c,d}, not just {a,d}.
            clauses: list[frozenset[int]] = [frozenset()]
            for child in node.children:
                options = self.required(child)
                if not options:
                    return ()
                unions = {done | option for done in clauses for option in options[:3]}
                clauses = sorted(unions, key=self.cost)[:MAX_CLAUSES]
            return tuple(clauses)
        children = node.children if isinstance(node, And) else (node.left, node.right)
        every = {clause for child in children for clause in self.required(child)}
        return tuple(sorted(every, key=self.cost)[:MAX_CLAUSES])

    # --- the query on term presence alone

    def presence(self, node: Node) -> _Presence | None:
        """The query read on which terms occur anywhere, or None if it needs none.

        Sentences, distances and fields are dropped (SENT(x) -> x, a NEAR b -> a AND b,
        title:a -> a) and a NOT is taken as met, so the result is necessary for a match,
        like ``required``, but keeps the whole boolean shape: (a AND b) OR (c AND d) is
        not met by a and d. Terms present are tested as one bitmask.
        """
        if isinstance(node, Term):
            return _Presence(1 << self.leaf(node), 0, ())
        if isinstance(node, Not):
            return None
        if isinstance(node, Sent):
            return self.presence(node.child)
        if isinstance(node, Or):
            options = [self.presence(child) for child in node.children]
            if any(option is None for option in options):
                return None  # a branch met by anything: so is the OR
            mask = 0
            others: list[_Presence] = []
            for option in options:
                assert option is not None
                if option.single and option.is_mask:
                    mask |= option.single  # a term, or an OR of terms: one bit among many
                else:
                    others.append(option)
            return _Presence(mask, 0, tuple(others), any_of=True)
        children = node.children if isinstance(node, And) else (node.left, node.right)
        every = 0
        others = []
        for child in children:
            need = self.presence(child)
            if need is None:
                continue
            if need.single and need.is_mask and need.single & (need.single - 1) == 0:
                every |= need.single  # a single term: all of these bits must be set
            elif not need.any_of and need.is_mask:
                every |= need.every
            else:
                others.append(need)
        if not every and not others:
            return None
        return _Presence(0, every, tuple(others))

    def anchors(self, node: Node) -> frozenset[int] | None:
        """The most selective required clause: one of these terms must occur, else None."""
        clauses = self.required(node)
        return clauses[0] if clauses else None

    def cost(self, anchors: frozenset[int] | None) -> float:
        """How likely a set of terms is to occur; lower is more selective.

        Without corpus statistics, length is the proxy Luwak also uses by default: long
        words and phrases are rarer than short words, prefixes match more than words.
        Words that fill every news page (``_NEWS_WORDS``) count as ten times commoner,
        so a query is not indexed under "health" when it also needs "counterfeit".
        """
        if anchors is None:
            return float("inf")
        known = self._costs.get(anchors)
        if known is not None:
            return known
        total = 0.0
        for leaf_id in anchors:
            tokens, prefix = self.leaves[leaf_id]
            chars = sum(len(t) if not is_cjk(t) else 2 for t in tokens)
            weight = 3.0 if prefix else 1.0
            cjk = all(map(is_cjk, tokens))
            if ("".join(tokens) if cjk else tokens[0]) in _NEWS_WORDS and (
                cjk or all(t in _NEWS_WORDS for t in tokens)
            ):
                weight *= 10.0
            total += weight / (chars * len(tokens))
        self._costs[anchors] = total
        return total

    # --- evaluators

    def compile(self, node: Node) -> _Eval:
        """Closures for ``node``; a subtree shared by many queries (an alias) compiles once."""
        memo = self._compiled.get(id(node))
        if memo is not None and memo[0] is node:
            return memo[1]
        result = self._compile(node)
        self._compiled[id(node)] = (node, result)
        return result

    def _compile(self, node: Node) -> _Eval:
        if isinstance(node, Term):
            return self._term(node)
        if isinstance(node, And):
            ordered = sorted(node.children, key=lambda c: self.cost(self.anchors(c)))
            return self._and([self.compile(c) for c in ordered])
        if isinstance(node, Or):
            # The plain terms of an OR (an alias such as @CHINA has thirty) are one evaluator
            # that visits only the terms the context holds, not a closure call per term.
            words: list[Term] = []
            others: list[Node] = []
            for option in node.children:
                if isinstance(option, Term) and option.field is None:
                    words.append(option)
                else:
                    others.append(option)
            if len(words) < 2:
                return self._or([self.compile(c) for c in node.children])
            rest = [self.compile(c) for c in others]
            return self._or([self._any_term(words), *rest]) if rest else self._any_term(words)
        if isinstance(node, Not):
            child = self.compile(node.child)
            return _Eval(
                lambda ctx, lo, hi: not child.test(ctx, lo, hi),
                lambda ctx, lo, hi: None if child.test(ctx, lo, hi) else [],
            )
        if isinstance(node, Near):
            return self._near(self.compile(node.left), self.compile(node.right), node.distance)
        return self._sent(self.compile(node.child), self.required(node.child))

    def _term(self, term: Term) -> _Eval:
        leaf_id = self.leaf(term)
        width = len(term.tokens)
        field = term.field

        # test and find repeat the lookup and the field clipping on purpose: they are the
        # hottest calls of matching, and a shared helper measured 7% slower per article.
        def term_test(ctx: _Ctx, lo: int, hi: int) -> bool:
            starts = ctx.known.get(leaf_id)
            if starts is None:
                starts = ctx.starts(leaf_id)
            if not starts:
                return False
            if field is not None:
                if field == "title":
                    hi = min(hi, ctx.doc.title_end)
                else:
                    lo = max(lo, ctx.doc.title_end)
            index = bisect_left(starts, lo)
            return index < len(starts) and starts[index] < hi

        def term_find(ctx: _Ctx, lo: int, hi: int) -> _Positions | None:
            starts = ctx.known.get(leaf_id)
            if starts is None:
                starts = ctx.starts(leaf_id)
            if not starts:
                return None
            if field is not None:
                if field == "title":
                    hi = min(hi, ctx.doc.title_end)
                else:
                    lo = max(lo, ctx.doc.title_end)
            found = starts[bisect_left(starts, lo) : bisect_left(starts, hi)]
            return [(s, s + width) for s in found] if found else None

        return _Eval(term_test, term_find)

    def _any_term(self, terms: list[Term]) -> _Eval:
        """Any of several terms (no field): only those ``ctx.present`` names are looked at."""
        clause = frozenset(self.leaf(term) for term in terms)
        widths = {leaf_id: len(self.leaves[leaf_id][0]) for leaf_id in clause}

        def any_test(ctx: _Ctx, lo: int, hi: int) -> bool:
            known = ctx.known
            for leaf_id in ctx.present(clause):
                starts = known.get(leaf_id)
                if starts is None:
                    starts = ctx.starts(leaf_id)
                if starts:
                    index = bisect_left(starts, lo)
                    if index < len(starts) and starts[index] < hi:
                        return True
            return False

        def any_find(ctx: _Ctx, lo: int, hi: int) -> _Positions | None:
            known = ctx.known
            out: _Positions = []
            for leaf_id in ctx.present(clause):
                starts = known.get(leaf_id)
                if starts is None:
                    starts = ctx.starts(leaf_id)
                if starts:
                    width = widths[leaf_id]
                    for start in starts[bisect_left(starts, lo) : bisect_left(starts, hi)]:
                        out.append((start, start + width))
            return out or None

        return _Eval(any_test, any_find)

    @staticmethod
    def _and(children: list[_Eval]) -> _Eval:
        tests = [c.test for c in children]
        finds = [c.find for c in children]

        def and_test(ctx: _Ctx, lo: int, hi: int) -> bool:
            for test in tests:  # noqa: SIM110 (a loop: all() adds a generator per call)
                if not test(ctx, lo, hi):
                    return False
            return True

        def and_find(ctx: _Ctx, lo: int, hi: int) -> _Positions | None:
            out: _Positions = []
            for find in finds:
                found = find(ctx, lo, hi)
                if found is None:
                    return None
                out.extend(found)
            return out

        return _Eval(and_test, and_find)

    @staticmethod
    def _or(children: list[_Eval]) -> _Eval:
        tests = [c.test for c in children]
        finds = [c.find for c in children]

        def or_test(ctx: _Ctx, lo: int, hi: int) -> bool:
            for test in tests:  # noqa: SIM110 (a loop: any() adds a generator per call)
                if test(ctx, lo, hi):
                    return True
            return False

        def or_find(ctx: _Ctx, lo: int, hi: int) -> _Positions | None:
            out: _Positions | None = None
            for find in finds:
                found = find(ctx, lo, hi)
                if found is not None:
                    out = found if out is None else out + found
            return out

        return _Eval(or_test, or_find)

    @staticmethod
    def _near(left: _Eval, right: _Eval, distance: int) -> _Eval:
        def pairs(ctx: _Ctx, lo: int, hi: int, first: bool) -> _Positions | None:
            lefts = left.find(ctx, lo, hi)
            if lefts is None:
                return None
            rights = right.find(ctx, lo, hi)
            if rights is None:
                return None
            title_end = ctx.doc.title_end
            out: _Positions = []
            used: set[tuple[int, int]] = set()
            for a in lefts:
                near = False
                for b in rights:
                    if a == b or (a[0] < title_end) != (b[0] < title_end):
                        continue
                    if b[0] >= a[1]:
                        gap = ctx.doc.gap_between(a[1] - 1, b[0], distance)
                    else:
                        gap = ctx.doc.gap_between(b[1] - 1, a[0], distance)
                    if gap <= distance:
                        if first:
                            return [a, b]
                        near = True
                        used.add(b)
                if near:
                    out.append(a)
            if not out:
                return None
            out.extend(used)
            return out

        return _Eval(
            lambda ctx, lo, hi: pairs(ctx, lo, hi, True) is not None,
            lambda ctx, lo, hi: pairs(ctx, lo, hi, False),
        )

    @staticmethod
    def _sent(child: _Eval, clauses: tuple[frozenset[int], ...]) -> _Eval:
        def sentences(ctx: _Ctx, lo: int, hi: int) -> list[tuple[int, int]]:
            """Token ranges of the sentences in [lo, hi) that meet every required clause.

            Units (lines) first, then sentences inside the units left, as bitmasks: a SENT
            whose terms never share a line is rejected with a few integer operations, no
            evaluation, and no sentence splitting.
            """
            if hi <= lo:
                return []
            within = ctx.within
            if within is not None and within[0] <= lo and hi <= within[1]:
                return [(lo, hi)]
            doc = ctx.doc
            units = ctx.clauses_units(clauses)
            if not units:
                return []
            if lo > 0 or hi < doc.n_tokens:
                first, last = doc.unit_of(lo), doc.unit_of(hi - 1)
                units &= ((1 << (last + 1)) - 1) >> first << first
                if not units:
                    return []
            if units < 0:
                units = (1 << doc.n_units) - 1
            ranges = []
            while units:
                lowest = units & -units
                units ^= lowest
                unit = lowest.bit_length() - 1
                found = doc.unit_sentences(unit)
                mask = (1 << len(found)) - 1
                for clause in clauses:
                    mask &= ctx.clause_sentences(clause, unit)
                    if not mask:
                        break
                while mask:
                    lowest = mask & -mask
                    mask ^= lowest
                    sentence_start, sentence_end = found[lowest.bit_length() - 1][:2]
                    start, end = max(lo, sentence_start), min(hi, sentence_end)
                    if start < end:
                        ranges.append((start, end))
            return ranges

        test = child.test

        def sent_test(ctx: _Ctx, lo: int, hi: int) -> bool:
            for start, end in sentences(ctx, lo, hi):  # noqa: SIM110 (no generator per call)
                if test(ctx, start, end):
                    return True
            return False

        def sent_find(ctx: _Ctx, lo: int, hi: int) -> _Positions | None:
            out: _Positions | None = None
            for start, end in sentences(ctx, lo, hi):
                found = child.find(ctx, start, end)
                if found is not None:
                    out = found if out is None else out + found
            return out

        return _Eval(sent_test, sent_find)


# ---------------------------------------------------------------------------- evidence


def _hit(
    commitment_id: str,
    version: str,
    root: _Eval,
    clauses: tuple[frozenset[int], ...],
    ctx: _Ctx,
    positions: _Positions,
) -> Hit:
    """Score a match and pick its evidence sentences.

    A sentence that satisfies the whole query on its own is better evidence than one that
    holds some of its terms; the score rewards a title that matches, such a sentence in
    the story's lead, and several such sentences (see docs/query-language.md, "Scoring").
    A sentence whose line lacks a term of one of the query's required ``clauses`` cannot
    satisfy it: it is not evaluated (the lines holding each clause are usually known
    already from evaluating the query). Every sentence's marks are the matched
    ``positions`` it holds (for a sentence that satisfies the query alone, a superset of
    the terms it needs on its own): a sentence is only tested, its positions are not found
    again (a seventh of a hit's cost on IP-dense news).
    """
    doc = ctx.doc
    tokens = doc.tokens
    title_end = doc.title_end  # the title's sentence is tokens [0, title_end)
    ordered = sorted(set(positions))
    ranked = []
    title_satisfies = title_has_terms = in_lead = False
    satisfying_text = 0
    possible = ctx.clauses_units(clauses)  # the units where the query can be met alone
    first_mark = 0
    while first_mark < len(ordered):
        # a sentence's marks are a run of the sorted positions: those before its end
        sentence, end, unit = doc.sentence_holding(ordered[first_mark][0])
        after = bisect_left(ordered, (end,), first_mark + 1)
        marks = tuple(ordered[first_mark:after])
        first_mark = after
        alone = False
        if possible >> unit & 1:
            ctx.within = (sentence, end)
            alone = root.test(ctx, sentence, end)
            ctx.within = None
        in_title = sentence < title_end
        if in_title:
            title_has_terms = True
            title_satisfies = alone
        elif alone:
            satisfying_text += 1
            if not in_lead:
                in_lead = sentence < doc.lead_end()
        distinct = (
            len({tokens[s] if e - s == 1 else tuple(tokens[s:e]) for s, e in marks})
            if len(marks) > 1
            else 1
        )
        ranked.append(((alone, distinct, in_title, -sentence), sentence, marks))
    ranked.sort(reverse=True)
    evidence = tuple(ctx.evidence(sentence, marks) for _, sentence, marks in ranked[:MAX_EVIDENCE])
    score = 1.0
    if title_satisfies or satisfying_text:
        score += 0.25
    if title_satisfies:
        score += 1.0
    elif title_has_terms:
        score += 0.5
    if in_lead:
        score += 0.5
    score += 0.5 * min(max(satisfying_text - 1, 0), 4)
    return Hit(commitment_id, score, evidence, version)


def _evidence(doc: Document, sentence: int, marks: Sequence[tuple[int, int]]) -> Evidence:
    """The sentence's text with ``marks`` (sorted token ranges) as merged character spans."""
    field, text, base = doc.sentence_text_at(sentence)
    merged: list[tuple[int, int]] = []
    for start, end in marks:
        found = doc.marked_span(sentence, start, end)
        if found is None:
            continue
        span = (found[0] - base, found[1] - base)
        if merged and span[0] <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span[1]))
        else:
            merged.append(span)
    return Evidence(text, tuple(merged), field)


# ---------------------------------------------------------------------------- queries


def query_version(query: str, exclude: str | None, aliases: Mapping[str, str]) -> str:
    """A short hash of everything that decides what a query matches.

    ``aliases`` should hold only the aliases the query uses: editing an alias then
    changes the version of exactly the commitments that use it.
    """
    payload = json.dumps(
        {"query": query, "exclude": exclude, "aliases": dict(sorted(aliases.items()))},
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


class Query:
    """One parsed query, for ``monitor test-query`` and for trying a query out in Python."""

    def __init__(
        self, text: str, parsed: ParsedQuery, aliases: Mapping[str, str], commitment_id: str | None
    ) -> None:
        self.text = text
        self.commitment_id = commitment_id
        self.root = parsed.root
        self.aliases_used = parsed.aliases_used
        self.version = query_version(text, None, {n: aliases[n] for n in parsed.aliases_used})
        self._compiler = _Compiler()
        self._eval = self._compiler.compile(self.root)

    @property
    def terms(self) -> list[str]:
        """Every distinct term, as matched (folded), in query order."""
        return list(dict.fromkeys(str(t).split(":", 1)[-1] for t in iter_terms(self.root)))

    def explain(self) -> str:
        """The query fully parenthesised, aliases expanded: shows how it was read."""
        return str(self.root)

    def match(self, title: str, text: str) -> Hit | None:
        """The hit this query alone makes on an article (any score), or None."""
        doc = Document(title, text)
        ctx = _LookupCtx(doc, self._compiler.leaves)
        if not self._eval.test(ctx, 0, doc.n_tokens):
            return None
        found = self._eval.find(ctx, 0, doc.n_tokens) or []
        clauses = self._compiler.required(self.root)
        return _hit(self.commitment_id or "", self.version, self._eval, clauses, ctx, found)

    def __str__(self) -> str:
        return self.explain()

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def compile_query(
    query: str, aliases: Mapping[str, str] | None = None, *, commitment_id: str | None = None
) -> Query:
    """Parse one query; raises QuerySyntaxError naming the commitment, position, expectation."""
    aliases = aliases or {}
    return Query(
        query, parse_query(query, aliases, commitment_id=commitment_id), aliases, commitment_id
    )


@dataclass(frozen=True)
class _Commitment:
    id: str
    version: str
    evaluate: _Eval
    exclude: _Eval | None
    min_score: float
    required: tuple[frozenset[int], ...]
    presence: _Presence | None  # the query on term presence alone (None: no constraint)


class Matcher:
    """All commitments' queries, compiled once; ``match`` runs the presearch then evaluates."""

    def __init__(
        self,
        compiler: _Compiler,
        commitments: list[_Commitment],
    ) -> None:
        self._commitments = commitments
        self._by_id = {c.id: c for c in commitments}
        self._leaves = compiler.leaves
        self.query_versions: dict[str, str] = {c.id: c.version for c in commitments}
        by_anchor: dict[int, list[int]] = defaultdict(list)
        always: list[int] = []
        for number, commitment in enumerate(commitments):
            if not commitment.required:
                always.append(number)
            else:  # indexed under its most selective clause: one of those terms must occur
                for leaf_id in commitment.required[0]:
                    by_anchor[leaf_id].append(number)
        self._by_anchor = dict(by_anchor)
        # A commitment found under a present anchor term has met its first clause; the
        # others, as bitmasks of term ids, are tested against the terms present.
        self._other_clauses = [
            tuple(sum(1 << leaf_id for leaf_id in clause) for clause in c.required[1:])
            for c in commitments
        ]
        # Then the whole boolean shape on the terms present, for the candidates whose
        # clauses are met (most that fail would fail on it: (a b) OR (c d) with a and d).
        self._presence = [c.presence for c in commitments]
        self._always = always
        # Term i is key i: "word " or "two words " (a prefix lacks the closing space), in
        # UTF-8: a search of bytes skips the character offsets a search of str works out.
        # Keys start at a letter, not at the space before it: a leading space is in every
        # key, and the search then stops at every space of the text. A match inside a
        # token ("ip " in "relationship ") is dropped by looking at the byte before it.
        keys = [
            (" ".join(tokens) + ("" if prefix else " ")).encode("utf-8", "surrogatepass")
            for tokens, prefix in compiler.leaves
        ]
        self._widths = [len(tokens) for tokens, _ in compiler.leaves]  # tokens per term
        # A DFA walks a byte in a few instructions (a third of the NFA's here); it costs
        # memory as keys grow (~30 MB at 20,000 keys), so it stops there.
        implementation = ahocorasick_rs.Implementation.DFA if len(keys) <= MAX_DFA_KEYS else None
        self._automaton = (
            ahocorasick_rs.BytesAhoCorasick(
                keys, matchkind=ahocorasick_rs.MatchKind.Standard, implementation=implementation
            )
            if keys
            else None
        )

    @property
    def always_evaluated(self) -> list[str]:
        """Ids of commitments with no anchor term (pure NOT queries): checked on every article."""
        return [self._commitments[n].id for n in self._always]

    def candidates(self, title: str, text: str) -> list[str]:
        """Ids of the commitments the presearch would evaluate on this article."""
        ctx = _PresearchCtx(Document(title, text), self._automaton, self._widths)
        return [self._commitments[n].id for n in sorted(self._candidate_numbers(ctx))]

    def _candidate_numbers(self, ctx: _PresearchCtx) -> list[int]:
        """Commitments with an anchor term present whose every required clause is met too."""
        numbers = set(self._always)
        by_anchor = self._by_anchor
        present = 0  # the terms present, as a bitmask: one AND tests a clause
        for leaf_id in ctx.raw:
            present |= 1 << leaf_id
            found = by_anchor.get(leaf_id)
            if found:
                numbers.update(found)
        other_clauses = self._other_clauses
        presence = self._presence
        out = []
        for number in numbers:
            for clause in other_clauses[number]:
                if not clause & present:
                    break
            else:
                shape = presence[number]
                if shape is None or shape.met(present):
                    out.append(number)
        return out

    def match(self, title: str, text: str) -> list[Hit]:
        """Hits with score >= the commitment's min_score and not excluded, best first."""
        ctx = _PresearchCtx(Document(title, text), self._automaton, self._widths)
        commitments = self._commitments
        hits = []
        for number in self._candidate_numbers(ctx):
            hit = self._evaluate(commitments[number], ctx)
            if hit is not None:
                hits.append(hit)
        hits.sort(key=lambda h: (-h.score, h.commitment_id))
        return hits

    def match_without_presearch(self, title: str, text: str) -> list[Hit]:
        """Same result as ``match``, evaluating every query with its own term lookups.

        The naive loop: the reference the presearch is tested against, and the baseline
        bench/match.py measures it against.
        """
        ctx = _LookupCtx(Document(title, text), self._leaves)
        hits = [h for c in self._commitments if (h := self._evaluate(c, ctx)) is not None]
        hits.sort(key=lambda h: (-h.score, h.commitment_id))
        return hits

    def match_one(self, commitment_id: str, title: str, text: str) -> Hit | None:
        """The hit of one commitment (same rules as ``match``); KeyError for an unknown id."""
        commitment = self._by_id[commitment_id]
        return self._evaluate(commitment, _LookupCtx(Document(title, text), self._leaves))

    @staticmethod
    def _evaluate(commitment: _Commitment, ctx: _Ctx) -> Hit | None:
        everything = ctx.doc.n_tokens
        # find is None exactly when test is False; asking for positions straight away
        # saves a second walk for hits and costs nothing measurable for misses.
        found = commitment.evaluate.find(ctx, 0, everything)
        if found is None:
            return None
        if commitment.exclude is not None and commitment.exclude.test(ctx, 0, everything):
            return None
        hit = _hit(
            commitment.id, commitment.version, commitment.evaluate, commitment.required, ctx, found
        )
        return hit if hit.score >= commitment.min_score else None

    def __len__(self) -> int:
        return len(self._commitments)


def compile_matcher(commitments: Sequence[Any], aliases: Mapping[str, str]) -> Matcher:
    """Compile every commitment's query (and exclude) into one matcher.

    Each commitment needs ``.id``, ``.query``, ``.exclude`` (str or None) and
    ``.min_score``. Every alias is parsed too, used or not, so a broken alias is reported
    at load time. Raises QuerySyntaxError for the first query or alias that does not parse.
    """
    collecting = gc.isenabled()
    gc.disable()  # compiling allocates many small objects that live on; cycles GC halves speed
    try:
        return _compile_matcher(commitments, aliases)
    finally:
        if collecting:
            gc.enable()


def _compile_matcher(commitments: Sequence[Any], aliases: Mapping[str, str]) -> Matcher:
    alias_cache: dict[str, tuple[Node, frozenset[str]]] = {}
    for name in aliases:
        parse_query(f"@{name}", aliases, alias_cache=alias_cache)
    compiler = _Compiler()
    compiled: list[_Commitment] = []
    for commitment in commitments:
        commitment_id = str(commitment.id)
        exclude_text = getattr(commitment, "exclude", None)
        parsed = parse_query(
            commitment.query, aliases, commitment_id=commitment_id, alias_cache=alias_cache
        )
        used = set(parsed.aliases_used)
        exclude_eval = None
        if exclude_text:
            excluded = parse_query(
                exclude_text, aliases, commitment_id=commitment_id, alias_cache=alias_cache
            )
            used |= excluded.aliases_used
            exclude_eval = compiler.compile(excluded.root)
        version = query_version(commitment.query, exclude_text, {n: aliases[n] for n in used})
        required = compiler.required(parsed.root)
        compiled.append(
            _Commitment(
                commitment_id,
                version,
                compiler.compile(parsed.root),
                exclude_eval,
                float(getattr(commitment, "min_score", 1.0)),
                required,
                compiler.presence(parsed.root),
            )
        )
    return Matcher(compiler, compiled)
