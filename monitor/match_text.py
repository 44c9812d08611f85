"""An article as the matcher reads it: folded tokens, then lines and sentences on demand.

Matching pays for reading every article, candidate or not, so ``Document`` does the
least up front: fold and tokenize the text once (``monitor.query.FoldedText``), with a
separator token after the title and at every line break. Lines (a line break always
ends a sentence) are found at the separators when a query first needs them, and a line
is split into sentences only when a query asks about one of its sentences (``SENT``, a
phrase, ``NEAR``, a hit's evidence). ``split_sentences`` is the sentence rule itself.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict

from monitor.query import SEP, FoldedText, ascii_tokens

__all__ = ["Document", "line_spans", "split_line", "split_sentences"]

# Words that end in a period without ending a sentence ("Art. 4", "No. 12", "Mr. Li").
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "no",
        "nos",
        "art",
        "arts",
        "sec",
        "secs",
        "para",
        "paras",
        "ch",
        "chap",
        "vol",
        "vols",
        "p",
        "pp",
        "fig",
        "figs",
        "cf",
        "vs",
        "al",
        "ed",
        "eds",
        "rev",
        "gov",
        "govt",
        "sen",
        "rep",
        "gen",
        "col",
        "lt",
        "capt",
        "inc",
        "ltd",
        "co",
        "corp",
        "bros",
        "dept",
        "est",
        "approx",
        "op",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "e.g",
        "i.e",
        "u.s",
        "u.k",
        "u.n",
        "e.u",
        "p.r.c",
    ]
)
# A sentence ends at . ! ? (and closing quotes) before a space and a word that is not
# lowercase, at a Chinese full stop, or at a line break.
_BOUNDARY = re.compile(r"[.!?。！？；]+[\"'”’)\]」』）]*")
_SOFT_LAST = frozenset(".!?\"'”’)]")  # a run ending so may not end the sentence
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
_OPENERS = "([{\"'“‘"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) in ``text``, whitespace trimmed, empty ones dropped.

    English sentences end at . ! ? followed by a space and not a lowercase letter, unless
    the period closes an abbreviation ("U.S.", "Art. 4", "No. 12") or an initial; Chinese
    ones end at 。！？；; a line break always ends one (headlines and list items lack periods),
    so the sentences of a text are those of its lines, one line after another.
    """
    spans: list[tuple[int, int]] = []
    for start, end in line_spans(text):
        spans.extend(split_line(text, start, end))
    return spans


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line of ``text`` that holds more than whitespace."""
    spans = []
    start = 0
    for line in text.split("\n"):
        end = start + len(line)
        if line and not line.isspace():
            spans.append((start, end))
        start = end + 1
    return spans


def split_line(text: str, line_start: int, line_end: int) -> list[tuple[int, int]]:
    """The sentence spans of ``text[line_start:line_end]``, a text without line breaks."""
    spans: list[tuple[int, int]] = []
    start = line_start
    for match in _BOUNDARY.finditer(text, line_start, line_end):
        begin, end = match.span()
        if text[begin] in ".!?" and text[end - 1] in _SOFT_LAST:
            if end < line_end:
                if not text[end].isspace():
                    continue  # "12.9bn", "e.g.,": no space after the mark
                following = text[end + 1 : end + 2]
                if following and not following.isspace():
                    if following.islower():
                        continue  # "Co. said": a lowercase word next
                else:
                    visible = _NEXT_VISIBLE.match(text, end, line_end)
                    if visible is not None and visible.group(1).islower():
                        continue
            if (
                end - begin == 1
                and text[begin] == "."
                and _is_abbreviation(text, begin, line_start)
            ):
                continue
        segment = text[start:end]
        stripped = segment.strip()
        if stripped:
            first = start + len(segment) - len(segment.lstrip())
            spans.append((first, first + len(stripped)))
        start = end
    segment = text[start:line_end]
    stripped = segment.strip()
    if stripped:
        first = start + len(segment) - len(segment.lstrip())
        spans.append((first, first + len(stripped)))
    return spans


def _is_abbreviation(text: str, period: int, line_start: int = 0) -> bool:
    """Whether the period at ``period`` closes an abbreviation rather than a sentence."""
    start = max(text.rfind(" ", line_start, period), text.rfind("\n", line_start, period)) + 1
    word = text[max(start, line_start) : period].lstrip(_OPENERS).lower()
    if word in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return True
    # "U.S", "e.g", "P.R.C": letters with inner periods
    return "." in word and all(len(part) == 1 and part.isalpha() for part in word.split("."))


LEAD_SENTENCES = 3  # a story's lead: its first sentences, where news says what it is about
LEAD_MIN_TOKENS = 5  # shorter sentences (datelines, bylines) are not counted in it


class Document:
    """An article as the matcher sees it: folded tokens, and its sentences when asked.

    ``tokens`` holds the title's tokens, then the text's, with a separator pseudo-token
    after the title and for each line break of the text, so positions are token indices
    and no phrase runs from the title into the text or across lines. ``joined`` is the
    same tokens joined by spaces, in UTF-8, for the Aho-Corasick pass.

    Sentences are found only where a query needs them (``SENT``, ``NEAR``, a phrase, the
    evidence of a hit): splitting a whole article costs as much as tokenizing it, and
    most candidates are settled by a few lines. A line break always ends a sentence, so
    the separators cut the document into *units* (the title, then each line of the
    text), and a unit is split into sentences the first time one of them is asked for.
    Tokens never straddle a sentence, so each is a range of token indices, named by its
    first token. A phrase is kept only inside one sentence, and each sentence break (not
    each separator: an empty line is no sentence) counts as a word for ``NEAR``.
    """

    __slots__ = (
        "_folded",
        "_index",
        "_lead_end",
        "_line_starts",
        "_lines_pending",
        "_marked",
        "_sentences",
        "_title_folded",
        "_title_span",
        "_unit_sentences",
        "_unit_starts",
        "_unit_te",
        "_unit_ts",
        "_vocab",
        "fields",
        "joined",
        "n_tokens",
        "spans",
        "text_start",
        "title_end",
        "tokens",
    )

    def __init__(self, title: str, text: str) -> None:
        self.fields = {"title": title, "text": text}
        tokens: list[str] = []
        title_span: tuple[int, int] | None = None
        start, end = len(title) - len(title.lstrip()), len(title.rstrip())
        self._title_folded: FoldedText | None = None  # made if the title's evidence needs it
        if end > start:
            if title.isascii() and SEP not in title:  # most titles: no folding to do
                title_tokens = ascii_tokens(title)
            else:
                self._title_folded = FoldedText(title)
                title_tokens = self._title_folded.tokens(start, end)
            if title_tokens:
                title_span = (start, end)
                tokens = title_tokens
        self.title_end = len(tokens)
        folded = FoldedText(text)
        self._folded = folded
        self._title_span = title_span
        self._line_starts: list[int] | None = None  # where each line of the text starts
        # unit -> its sentences: (first token, one past the last, start, end in the field);
        # the title, if any, is unit 0 and one sentence
        self._unit_sentences: list[list[tuple[int, int, int, int]] | None]
        self._unit_starts: list[list[int] | None]
        self._sentences: dict[int, tuple[int, str, int, int]]  # first token -> ...
        if title_span is None:
            self._unit_ts: list[int] = []
            self._unit_te: list[int] = []
            self._unit_sentences = []
            self._unit_starts = []
            self._sentences = {}
        else:
            self._unit_ts = [0]
            self._unit_te = [self.title_end]
            self._unit_sentences = [[(0, self.title_end, start, end)]]
            self._unit_starts = [[0]]
            self._sentences = {0: (self.title_end, "title", start, end)}
        text_tokens = folded.all_tokens()
        if tokens:
            tokens.append(SEP)
        self.text_start = len(tokens)
        self._lines_pending = True  # units for the lines are made on first use
        tokens.extend(text_tokens)
        self.tokens = tokens
        self.n_tokens = len(tokens)
        self.joined = (" " + " ".join(tokens) + " ").encode("utf-8", "surrogatepass")
        self._index: dict[str, list[int]] | None = None
        self._lead_end: int | None = None
        self._vocab: list[str] | None = None
        self.spans: dict[int, list[tuple[int, int]]] = {}  # sentence -> its tokens' char spans
        # (first, end) of marked tokens -> their characters: an article that matches many
        # commitments cites the same sentences and terms in hit after hit
        self._marked: dict[tuple[int, int], tuple[int, int] | None] = {}

    def _add_lines(self) -> None:
        """Make a unit of each line of the text, at the separators its tokens hold."""
        self._lines_pending = False
        find = self.tokens.index
        separators = []
        position = self.text_start
        try:
            while True:
                position = find(SEP, position) + 1
                separators.append(position - 1)
        except ValueError:
            pass
        if len(separators) != self.fields["text"].count("\n"):
            # Folding made or ate a line break (pathological Unicode): the text is one
            # unit, and then one sentence (see unit_sentences); never misplace a token.
            separators = []
            self._line_starts = [0]
        self._unit_ts.extend([self.text_start] + [sep + 1 for sep in separators])
        self._unit_te.extend([*separators, self.n_tokens])
        self._unit_sentences.extend([None] * (len(separators) + 1))
        self._unit_starts.extend([None] * (len(separators) + 1))

    def _unit_span(self, unit: int) -> tuple[str, int, int]:
        """The unit's field, and where it starts and ends in it."""
        if self._title_span is not None:
            if unit == 0:
                return ("title", *self._title_span)
            unit -= 1
        starts = self._line_starts
        text = self.fields["text"]
        if starts is None:
            starts = [0]
            found = text.find("\n")
            while found >= 0:
                starts.append(found + 1)
                found = text.find("\n", found + 1)
            self._line_starts = starts
        end = starts[unit + 1] - 1 if unit + 1 < len(starts) else len(text)
        return "text", starts[unit], end

    def _set_sentences(self, unit: int, found: list[tuple[int, int, int, int]]) -> None:
        field = "title" if unit == 0 and self._title_span is not None else "text"
        self._unit_sentences[unit] = found
        self._unit_starts[unit] = [first for first, *_ in found]
        for first, end, start, stop in found:
            if end > first:  # a sentence without tokens holds no term: it needs no name
                self._sentences[first] = (end, field, start, stop)

    def unit_sentences(self, unit: int) -> list[tuple[int, int, int, int]]:
        """The sentences of a unit, split on first use."""
        if self._lines_pending:
            self._add_lines()
        found = self._unit_sentences[unit]
        if found is None:
            _, start, end = self._unit_span(unit)
            spans = split_line(self.fields["text"], start, end)
            position = self._unit_ts[unit]
            if len(spans) <= 1:  # one sentence (a third of lines): it holds the line's tokens
                found = [(position, self._unit_te[unit], *spans[0])] if spans else []
                self._set_sentences(unit, found)
                return found
            found = []
            for span, count in zip(spans, self._folded.span_token_counts(spans), strict=True):
                found.append((position, position + count, *span))
                position += count
            if position != self._unit_te[unit]:
                # Folding a sentence alone gave other tokens than folding the whole text
                # (pathological Unicode): keep the line as one sentence, never misplace.
                found = [(self._unit_ts[unit], self._unit_te[unit], start, end)]
            self._set_sentences(unit, found)
        return found

    @property
    def n_units(self) -> int:
        if self._lines_pending:
            self._add_lines()
        return len(self._unit_ts)

    def unit_of(self, token: int) -> int:
        if self._lines_pending:
            self._add_lines()
        return bisect_right(self._unit_ts, token) - 1

    def unit_range(self, unit: int) -> tuple[int, int]:
        if self._lines_pending:
            self._add_lines()
        return self._unit_ts[unit], self._unit_te[unit]

    def local_sentence(self, unit: int, token: int) -> int:
        """The number, within its unit, of the sentence holding ``token``."""
        starts = self._unit_starts[unit]
        if starts is None:
            self.unit_sentences(unit)
            starts = self._unit_starts[unit]
            assert starts is not None
        return bisect_right(starts, token) - 1

    def sentence_holding(self, token: int) -> tuple[int, int, int]:
        """(first token, one past the last, unit) of the sentence holding ``token``."""
        if self._lines_pending:
            self._add_lines()
        unit = bisect_right(self._unit_ts, token) - 1
        found = self._unit_sentences[unit]
        if found is None:
            found = self.unit_sentences(unit)
        starts = self._unit_starts[unit]
        assert starts is not None
        first, end, _, _ = found[bisect_right(starts, token) - 1]
        return first, end, unit

    def lead_end(self) -> int:
        """Where the text's lead ends: one past the last token of its first
        ``LEAD_SENTENCES`` sentences of at least ``LEAD_MIN_TOKENS`` tokens.

        News puts what a story is about in its lead (the "inverted pyramid"); a topic
        first named deep in the text is more often a passing mention. Shorter sentences
        (a dateline, a byline, "Beijing, June 3") are not counted; a Chinese
        character is a token, so a short Chinese sentence counts. Only the lines up to
        the lead are split into sentences, once per article.
        """
        if self._lead_end is not None:
            return self._lead_end
        if self._lines_pending:
            self._add_lines()
        self._lead_end = self.n_tokens  # a text with fewer sentences is all lead
        counted = 0
        first_text_unit = 0 if self._title_span is None else 1
        for unit in range(first_text_unit, len(self._unit_ts)):
            for first, stop, _, _ in self.unit_sentences(unit):
                if stop - first >= LEAD_MIN_TOKENS:
                    counted += 1
                    if counted == LEAD_SENTENCES:
                        self._lead_end = stop
                        return stop
        return self._lead_end

    def all_sentences(self) -> list[tuple[int, int]]:
        """Every sentence's token range, splitting every unit (for tests and inspection)."""
        if self._lines_pending:
            self._add_lines()
        return [
            found[:2] for unit in range(len(self._unit_ts)) for found in self.unit_sentences(unit)
        ]

    def marked_span(self, sentence: int, first: int, end: int) -> tuple[int, int] | None:
        """Characters in the field of tokens [first, end) of ``sentence``, for highlighting.

        An evidence sentence has a few marked tokens among dozens, so each is found by
        its text (``FoldedText.token_start``) rather than by finding every token's span;
        ``token_spans`` is the fallback. None if folding changed the sentence's tokens.
        """
        key = (first, end)
        if key in self._marked:
            return self._marked[key]
        found = self._marked[key] = self._marked_span(sentence, first, end)
        return found

    def _marked_span(self, sentence: int, first: int, end: int) -> tuple[int, int] | None:
        _, field, start, stop = self._sentences[sentence]
        folded = self._field_folded(field)
        tokens = self.tokens
        head = folded.token_start(
            start, stop, tokens[first], tokens[sentence:first].count(tokens[first])
        )
        if head is not None:
            last = end - 1
            if last == first:
                return head, head + len(tokens[first])
            tail = folded.token_start(
                start, stop, tokens[last], tokens[sentence:last].count(tokens[last])
            )
            if tail is not None:
                return head, tail + len(tokens[last])
        spans = self.token_spans(sentence)
        if end - sentence > len(spans):
            return None  # folding changed the token count (rare Unicode): no highlight
        return spans[first - sentence][0], spans[end - 1 - sentence][1]

    def _field_folded(self, field: str) -> FoldedText:
        if field == "text":
            return self._folded
        if self._title_folded is None:
            self._title_folded = FoldedText(self.fields["title"])
        return self._title_folded

    def token_spans(self, sentence: int) -> list[tuple[int, int]]:
        """Character spans of the sentence's tokens in its field, for highlighting."""
        spans = self.spans.get(sentence)
        if spans is None:  # several commitments often cite the same sentence
            _, field, start, end = self._sentences[sentence]
            spans = self.spans[sentence] = self._field_folded(field).token_spans(start, end)
        return spans

    def sentence_text_at(self, sentence: int) -> tuple[str, str, int]:
        """The sentence's field, its text, and where it starts in the field."""
        _, field, start, end = self._sentences[sentence]
        return field, self.fields[field][start:end], start

    def within_one_sentence(self, starts: list[int], width: int) -> list[int]:
        """The occurrences of a ``width``-token phrase that do not cross a sentence break."""
        if width == 1 or not starts:
            return starts
        unit_of, local = self.unit_of, self.local_sentence
        last = width - 1
        kept = []
        for start in starts:
            unit = unit_of(start)
            if unit == unit_of(start + last) and local(unit, start) == local(unit, start + last):
                kept.append(start)
        return kept

    def gap_between(self, before: int, after: int, limit: int) -> int:
        """``NEAR``'s distance from token ``before`` to token ``after``: words and breaks.

        Separators are not words; sentence breaks count one each. Past ``limit`` on the
        words alone, the breaks are not counted (they would need the lines split).
        """
        between = after - before - 1
        if between < 0:  # the terms overlap
            return between
        words = between - (self.unit_of(after) - self.unit_of(before))
        if words > limit:
            return words
        return words + self.breaks_between(before, after)

    def breaks_between(self, before: int, after: int) -> int:
        """Sentence breaks between two text tokens; ``NEAR`` counts each as a word."""
        first, last = self.unit_of(before), self.unit_of(after)
        if first == last:
            return max(self.local_sentence(last, after) - self.local_sentence(first, before), 0)
        breaks = len(self.unit_sentences(first)) - self.local_sentence(first, before)
        for unit in range(first + 1, last):
            breaks += len(self.unit_sentences(unit))
        return breaks + self.local_sentence(last, after)

    @property
    def index(self) -> dict[str, list[int]]:
        """token -> positions, for evaluating a query without the presearch."""
        if self._index is None:
            index: dict[str, list[int]] = defaultdict(list)
            for position, token in enumerate(self.tokens):
                index[token].append(position)
            index.pop(SEP, None)
            self._index = dict(index)
        return self._index

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = sorted(self.index)
        return self._vocab
