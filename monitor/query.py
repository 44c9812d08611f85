"""The commitment query language: text folding, tokens, and the parser.

A query is parsed once into a small tree of :class:`Term`, :class:`And`, :class:`Or`,
:class:`Not`, :class:`Near` and :class:`Sent` nodes; ``monitor.match`` compiles the
trees of all commitments into one matcher. Both the queries and the articles go through
the same :func:`fold` and :func:`word_tokens`, which is what makes matching case- and
diacritic-blind and lets Chinese terms match inside text written without spaces.

Grammar, loosest binding first (``docs/query-language.md`` has the user's version)::

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*          adjacent terms are ANDed
    unary    := "NOT" unary | near
    near     := primary ("NEAR/" n primary)*
    primary  := [field ":"] ( "(" or_expr ")" | "SENT(" or_expr ")"
                              | '"' phrase '"' | word["*"] | "@" alias )

Every syntax problem raises :class:`~monitor.errors.QuerySyntaxError` with the position
and what was expected; nothing else escapes the parser (it is fuzzed to keep it so).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import reduce
from itertools import accumulate
from operator import and_, or_

from monitor.errors import QuerySyntaxError

# Scripts written without spaces between words. Each of their characters is one token,
# so a term in them is a character sequence and matches inside longer runs
# (知识产权 inside 加强知识产权保护). Hangul is spaced, but its particles glue onto nouns,
# so substring matching serves it better too.
_CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef"
)
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")  # the definition; the patterns below are faster
_WORD = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_CJK_SPLIT = re.compile(f"[{_CJK}]|[^{_CJK}]+")
_ASCII_BYTES = bytes(range(128))  # deleting them from UTF-8 leaves the other characters
_UTF8_CONTINUATION = bytes(range(0x80, 0xC0))  # the bytes after the first of a character
SEP = "\x02"  # a pseudo-token between sentences: no term contains it, so none spans two
# [a-z0-9] and line breaks stay (split() treats "\n" as a space), A-Z become a-z,
# everything else is a space
_ASCII_SPLIT_TABLE = bytes(
    c
    if c in b"abcdefghijklmnopqrstuvwxyz0123456789\n" + SEP.encode()
    else c + 32
    if 65 <= c <= 90
    else 32
    for c in range(256)
)
_IS_CJK = re.compile(f"[{_CJK}]")
_JAMO = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff]")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")

FIELDS = ("title", "text")
MAX_NEAR = 1000
MAX_DEPTH = 64
MIN_PREFIX = 2


def fold(text: str) -> str:
    """Case- and diacritic-folded text: ``Coopération`` -> ``cooperation``, ``ＩＰ`` -> ``ip``.

    NFKD splits accents off and maps full-width forms; NFC afterwards re-joins Hangul
    syllables that NFKD took apart into jamo.
    """
    if text.isascii():
        return text.lower()
    stripped = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", stripped).casefold()


def word_tokens(folded: str) -> list[str]:
    """Tokens of already folded text: runs of letters/digits, and single CJK characters."""
    out: list[str] = []
    for word in _WORD.findall(folded):
        if word.isascii():
            out.append(word)
        else:
            out.extend(_CJK_SPLIT.findall(word))
    return out


class FoldedText:
    """A text folded once, tokenized whole, and counted line by line or span by span.

    Tokenizing is the fixed cost of matching an article, so the common cases take fast
    paths: when folding changes no character's length (``aligned``) the slices of the
    folded text line up with the original's, and when no letter outside ASCII is left
    (accents are folded away; curly quotes and dashes are not letters) a byte translation
    and a split replace the regular expression. Folding itself is done per distinct
    character (a text has a few dozen), replacing those that fold to a word character,
    unless a character folds differently next to its neighbours (combining marks, jamo).
    """

    __slots__ = ("_folded", "_source", "_utf8", "_words", "aligned", "ascii_words", "text")

    def __init__(self, text: str) -> None:
        if SEP in text:  # a stray control character must not pass for a sentence break
            text = text.replace(SEP, " ")
        self.text = text
        self._words: str | None = None
        self._folded: str | None = None
        self._source = text  # the text with every character that folds to a word replaced
        self._utf8: bytes | None = None  # the source in UTF-8, when it was made anyway
        if text.isascii():
            others = []
        else:
            self._utf8 = utf8 = text.encode("utf-8", "surrogatepass")
            # UTF-8 spells every other character without ASCII bytes, so deleting those
            # leaves exactly the others: twice as fast as a regular expression.
            others = list(set(utf8.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")))
        if not others:
            self.aligned = self.ascii_words = True
            return
        get = _char_flags.get
        flags = [get(char) or _describe_char(char) for char in others]
        every, some = reduce(and_, flags), reduce(or_, flags)
        self.ascii_words = not some & _GIVES_LETTER_OUTSIDE_ASCII
        if every & _INERT:
            # Only punctuation and symbols outside ASCII (curly quotes, dashes): they never
            # become or join tokens, so lowercasing ASCII is all the folding tokens need,
            # and the byte translation of ``_ascii_words`` does it.
            self.aligned = True
            return
        if every & _ALONE:
            # Each character folds the same on its own as in the text (no combining marks,
            # no Hangul jamo), so replacing the few that fold to a word character is the
            # whole folding, at a fraction of the cost of normalizing the text.
            source = text
            aligned = True
            spaces = not self.ascii_words  # see _mixed_tokens
            for char, flag in zip(others, flags, strict=True):
                if flag & _REPLACE:
                    source = source.replace(char, _char_folds[char])
                    aligned = aligned and bool(flag & _SAME_LENGTH)
                elif spaces and flag & _INERT:  # punctuation: a space to every tokenizer
                    source = source.replace(char, " ")
            self._source = source
            self._utf8 = None
            self.aligned = aligned
            if not self.ascii_words:
                self._folded = source.lower()
            return
        self._folded = self._source = folded = fold(text)
        self._utf8 = None
        self.aligned = len(folded) == len(text) and bool(every & _SAME_LENGTH)

    @property
    def folded(self) -> str:
        """The folded text (for text that needed only lowercasing, made when asked)."""
        if self._folded is None:
            self._folded = self._source.lower()
        return self._folded

    def all_tokens(self) -> list[str]:
        """Every token of the text, in order, with ``SEP`` for each line break.

        Tokens are runs of word characters (and single CJK characters), so a line's are
        the concatenation of the tokens of any split of it at non-word characters, such
        as its sentences: ``span_token_counts`` says how many fall in each.
        """
        if self.ascii_words:
            return self._ascii_words().replace("\n", f" {SEP} ").split()
        return self._mixed_tokens()

    def _mixed_tokens(self) -> list[str]:
        """``all_tokens`` of a text with word characters outside ASCII, line by line.

        Such characters are often a few names or a quote in an English article, so only
        the lines that hold a character outside ASCII are read with the regular
        expression (punctuation outside ASCII was made spaces, see ``__init__``); the
        lines between take the byte translation, five to ten times faster.
        """
        folded = self.folded
        words = self._ascii_words()  # same offsets as ``folded``: lowercasing kept lengths
        lines = folded.split("\n")
        others = [number for number, line in enumerate(lines) if not line.isascii()]
        ends = list(accumulate(map(len, lines)))  # ends[i] + i: where line i ends
        line_tokens = _TOKEN.findall
        out: list[str] = []
        position = 0  # where the text not yet tokenized starts: 0 or a line break
        for number in others:
            line = lines[number]
            end = ends[number] + number
            start = end - len(line)
            out.extend(words[position:start].replace("\n", f" {SEP} ").split())
            out.extend(line_tokens(line))
            position = end
        out.extend(words[position:].replace("\n", f" {SEP} ").split())
        return out

    def span_token_counts(self, spans: list[tuple[int, int]]) -> list[int]:
        """How many tokens each span of the text holds (offsets in the original)."""
        if not self.aligned:
            return [len(word_tokens(fold(self.text[start:end]))) for start, end in spans]
        if self.ascii_words:
            words = self._ascii_words()
            return [len(words[start:end].split()) for start, end in spans]
        return [len(self.tokens_folded(start, end)) for start, end in spans]

    def token_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """Character spans in the text of the tokens of ``text[start:end]``."""
        if not self.aligned:
            return [(a + start, b + start) for a, b in token_spans(self.text[start:end])]
        if self.ascii_words:
            found = _ASCII_WORD.finditer(self._ascii_words(), start, end)
        else:
            found = _TOKEN.finditer(self.folded, start, end)
        return [match.span() for match in found]

    def _ascii_words(self) -> str:
        """The folded text with every character but [a-z0-9] and line breaks made a space.

        A byte translation (which also lowercases A-Z) and a split find the [a-z0-9]+
        runs twice as fast as findall. It reads the UTF-8 of the text, made a space at
        the lead byte of every other character and its continuation bytes deleted: one
        character stays one byte, so offsets still line up with the folded text.
        """
        if self._words is None:
            utf8 = self._utf8
            if utf8 is None:
                utf8 = self._source.encode("utf-8", "surrogatepass")
            self._words = utf8.translate(_ASCII_SPLIT_TABLE, _UTF8_CONTINUATION).decode("ascii")
        return self._words

    def token_start(self, start: int, end: int, token: str, before: int) -> int | None:
        """Where in ``text[start:end]`` the token that follows ``before`` others like it starts.

        For highlighting one token without finding every token's span: in the translated
        text a token is a run of [a-z0-9] between other characters, so the first whole run
        equal to it after ``before`` such runs is it. None unless the fast path applies
        (``aligned`` and ``ascii_words``); callers then use ``token_spans``.
        """
        if not (self.aligned and self.ascii_words):
            return None
        words = self._ascii_words()
        size = len(token)
        found = words.find(token, start, end)
        while found >= 0:
            stop = found + size
            if (found == start or not words[found - 1].isalnum()) and (
                stop == end or not words[stop].isalnum()
            ):
                if not before:
                    return found
                before -= 1
                found = words.find(token, stop, end)
            else:
                found = words.find(token, found + 1, end)
        return None

    def tokens(self, start: int, end: int) -> list[str]:
        """The tokens of ``text[start:end]`` (offsets in the original text)."""
        if not self.aligned:
            return word_tokens(fold(self.text[start:end]))
        return self.tokens_folded(start, end)

    def tokens_folded(self, start: int, end: int | None) -> list[str]:
        if self.ascii_words:  # aligned here, so the translated text's offsets are the text's
            return self._ascii_words()[start:end].split()
        folded = self.folded
        stop = len(folded) if end is None else end
        out: list[str] = []
        for word in _WORD.findall(folded, start, stop):
            if word.isascii():
                out.append(word)
            else:
                out.extend(_CJK_SPLIT.findall(word))
        return out


def ascii_tokens(text: str) -> list[str]:
    """The tokens of a text that is all ASCII (and holds no ``SEP``): a translation and a split."""
    return text.encode("ascii").translate(_ASCII_SPLIT_TABLE).decode("ascii").split()


# What folding does to one character, worked out once per character ever seen.
_INERT = 1  # folds to something non-empty without letters or digits (punctuation, symbols)
_SAME_LENGTH = 2  # folds to exactly one character
_GIVES_LETTER_OUTSIDE_ASCII = 4
_ALONE = 8  # folds the same on its own as inside any text (see _folds_alone)
_REPLACE = 16  # folds to something else that may hold a word character: must be replaced
_char_flags: dict[str, int] = {}
_char_folds: dict[str, str] = {}


def _describe_char(char: str) -> int:
    folded = _char_folds[char] = fold(char)
    flags = 0
    if folded and not any(c.isalnum() for c in folded):
        flags |= _INERT
    if len(folded) == 1:
        flags |= _SAME_LENGTH
    if any(c.isalnum() and not c.isascii() for c in folded):
        flags |= _GIVES_LETTER_OUTSIDE_ASCII
    if folded != char and not (flags & _INERT and not char.isalnum()):
        flags |= _REPLACE
    if _folds_alone(char, folded) and (flags & _REPLACE or char.lower() == char):
        flags |= _ALONE  # and, if left in place, lowercasing the text leaves it be
    _char_flags[char] = flags
    return flags


def _folds_alone(char: str, folded: str) -> bool:
    """Whether ``char`` folds to ``folded`` wherever it stands in a text.

    Normalization looks past one character only for combining marks (reordered, removed
    or composed with what precedes them) and Hangul jamo (composed into syllables); a
    character that neither is nor folds to one of those folds the same alone. The result
    must also be unchanged by lowercasing, which a folded text gets for its ASCII.
    """
    for c in char + folded:
        if unicodedata.category(c)[0] == "M" or _JAMO.match(c):
            return False
    return folded.lower() == folded


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character spans in the *original* ``text`` of the tokens ``word_tokens(fold(text))`` yields.

    Folding can change lengths (``ß`` -> ``ss``, accents dropped); then each character is
    folded alone and the folded offsets are mapped back. Only evidence sentences pay this.
    """
    folded_text = FoldedText(text)
    if folded_text.aligned:
        pattern = _ASCII_WORD if folded_text.ascii_words else _TOKEN
        return [m.span() for m in pattern.finditer(folded_text.folded)]
    pieces: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = fold(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    joined = "".join(pieces)
    return [(origin[m.start()], origin[m.end() - 1] + 1) for m in _TOKEN.finditer(joined)]


def is_cjk(token: str) -> bool:
    """Whether a token is a single character of a script written without spaces."""
    return bool(_IS_CJK.match(token))


# ---------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Term:
    """A word, phrase or prefix: consecutive tokens; with ``prefix`` the last may continue."""

    tokens: tuple[str, ...]
    prefix: bool = False
    field: str | None = None
    source: str = dataclass_field(default="", compare=False)  # as written, for messages only

    @property
    def key(self) -> tuple[tuple[str, ...], bool]:
        """What the term matches, regardless of field: shared by every query that uses it."""
        return (self.tokens, self.prefix)

    def __str__(self) -> str:
        text = self.tokens[0]
        for before, token in zip(self.tokens, self.tokens[1:], strict=False):
            text += token if is_cjk(before) and is_cjk(token) else " " + token
        text += "*" if self.prefix else ""
        text = f'"{text}"' if len(self.tokens) > 1 else text
        return f"{self.field}:{text}" if self.field else text


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.children)) + ")"


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.children)) + ")"


@dataclass(frozen=True)
class Not:
    child: Node

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True)
class Near:
    """Both sides occur, at most ``distance`` words apart (in either order, same field)."""

    left: Node
    right: Node
    distance: int

    def __str__(self) -> str:
        return f"({self.left} NEAR/{self.distance} {self.right})"


@dataclass(frozen=True)
class Sent:
    """The inner query is satisfied by one sentence on its own."""

    child: Node

    def __str__(self) -> str:
        return f"SENT({self.child})"


Node = Term | And | Or | Not | Near | Sent


def iter_terms(node: Node, *, positive_only: bool = False) -> Iterator[Term]:
    """The terms of a tree; with ``positive_only``, not those under a NOT."""
    if isinstance(node, Term):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from iter_terms(child, positive_only=positive_only)
    elif isinstance(node, Near):
        yield from iter_terms(node.left, positive_only=positive_only)
        yield from iter_terms(node.right, positive_only=positive_only)
    elif isinstance(node, Sent):
        yield from iter_terms(node.child, positive_only=positive_only)
    elif isinstance(node, Not) and not positive_only:
        yield from iter_terms(node.child)


def _with_field(node: Node, field: str) -> Node:
    """Scope every term of ``node`` that has no field of its own to ``field``."""
    if isinstance(node, Term):
        if node.field:
            return node
        return Term(node.tokens, node.prefix, field, node.source)
    if isinstance(node, And):
        return And(tuple(_with_field(c, field) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(_with_field(c, field) for c in node.children))
    if isinstance(node, Not):
        return Not(_with_field(node.child, field))
    if isinstance(node, Near):
        return Near(_with_field(node.left, field), _with_field(node.right, field), node.distance)
    return Sent(_with_field(node.child, field))


# ---------------------------------------------------------------------------- the lexer

_LEX = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<phrase>"[^"]*"\*?)
  | (?P<badphrase>"[^"]*$)
  | (?P<alias>@[^\s()"]*)
  | (?P<near>NEAR(?:/[^\s()"]*)?(?=[\s()"]|$))
  | (?P<op>(?:AND|OR|NOT)(?=[\s()"]|$))
  | (?P<sent>SENT(?=\s*\())
  | (?P<field>[A-Za-z]+:)
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _describe(tok: _Tok | None) -> str:
    if tok is None:
        return "the end of the query"
    if tok.kind in ("lparen", "rparen"):
        return f"'{tok.text}'"
    return f"{tok.text!r}"


class _Parser:
    """Recursive descent over the tokens of one query (or one alias definition)."""

    def __init__(self, text: str, context: _Context, where: str) -> None:
        self.text = text
        self.context = context
        self.where = where  # "" for the query itself, "in alias @X: " for an alias
        self.toks = self._lex(text)
        self.index = 0
        self.depth = 0

    def error(self, message: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(
            self.where + message,
            commitment_id=self.context.commitment_id,
            position=pos,
            query=self.text,
        )

    def _lex(self, text: str) -> list[_Tok]:
        toks: list[_Tok] = []
        for match in _LEX.finditer(text):
            kind = match.lastgroup or "word"
            if kind == "space":
                continue
            if kind == "badphrase":
                raise self.error("unterminated phrase: expected a closing '\"'", match.start())
            toks.append(_Tok(kind, match.group(), match.start()))
        return toks

    def peek(self) -> _Tok | None:
        return self.toks[self.index] if self.index < len(self.toks) else None

    def end_pos(self) -> int:
        return len(self.text)

    def parse(self) -> Node:
        if not self.toks:
            raise self.error("empty query: expected a term, a phrase, an @alias or '('", 0)
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            expected = "an operator or the end of the query"
            if tok.kind == "rparen":
                expected = "the end of the query (this ')' closes nothing)"
            raise self.error(f"expected {expected}, found {_describe(tok)}", tok.pos)
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text == "OR":
            self.index += 1
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.unary()]
        while (tok := self.peek()) is not None:
            if tok.kind == "op" and tok.text == "AND":
                self.index += 1
                children.append(self.unary())
            elif tok.kind == "rparen" or (tok.kind == "op" and tok.text == "OR"):
                break
            else:
                children.append(self.unary())  # implicit AND
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "NOT":
            self.index += 1
            self.enter(tok.pos)
            child = self.unary()
            self.depth -= 1
            return Not(child)
        return self.near()

    def near(self) -> Node:
        start = self.peek()
        left = self.primary()
        chained = 0
        while (tok := self.peek()) is not None and tok.kind == "near":
            self.index += 1
            chained += 1  # a chain nests to the left: bound it like parentheses
            if chained > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} NEARs in a row", tok.pos)
            distance = self.near_distance(tok)
            right_tok = self.peek()
            right = self.primary()
            for side, side_tok in ((left, start), (right, right_tok)):
                if not any(True for _ in iter_terms(side, positive_only=True)):
                    pos = side_tok.pos if side_tok else tok.pos
                    raise self.error(
                        "NEAR needs something that occurs on each side, not only NOT terms",
                        pos,
                    )
            left = Near(left, right, distance)
        return left

    def near_distance(self, tok: _Tok) -> int:
        digits = tok.text[5:]
        if not tok.text.startswith("NEAR/") or not digits.isdigit() or not digits.isascii():
            raise self.error(
                f"expected NEAR/n with a number of words n (like NEAR/5), found {tok.text!r}",
                tok.pos,
            )
        distance = int(digits)
        if distance > MAX_NEAR:
            raise self.error(f"NEAR/{distance} is too far; use at most NEAR/{MAX_NEAR}", tok.pos)
        return distance

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"query nests deeper than {MAX_DEPTH} levels", pos)

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error(
                "expected a term, a phrase, an @alias or '(', found the end of the query",
                self.end_pos(),
            )
        if tok.kind == "field":
            name = tok.text[:-1]
            if name not in FIELDS:
                raise self.error(
                    f"unknown field {name!r}: expected title: or text: (or quote the term)",
                    tok.pos,
                )
            self.index += 1
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field":
                raise self.error(f"expected a term after {tok.text}, found a field", nxt.pos)
            return _with_field(self.primary(), name)
        if tok.kind == "lparen":
            return self.group(tok, "')'")
        if tok.kind == "sent":
            self.index += 1
            paren = self.peek()
            assert paren is not None and paren.kind == "lparen"  # the lexer's lookahead
            return Sent(self.group(paren, "')' to close SENT("))
        if tok.kind == "phrase":
            self.index += 1
            body = tok.text.removesuffix("*")[1:-1]
            prefix = tok.text.endswith("*") or body.endswith("*")
            return self.term(tok, body.removesuffix("*"), prefix, phrase=True)
        if tok.kind == "word":
            self.index += 1
            return self.term(tok, tok.text.rstrip("*"), tok.text.endswith("*"), phrase=False)
        if tok.kind == "alias":
            self.index += 1
            return self.context.alias(tok.text[1:], self, tok.pos)
        expected = "expected a term, a phrase, an @alias or '('"
        hint = ""
        if tok.kind == "rparen" and self.index and self.toks[self.index - 1].kind == "lparen":
            hint = " (the parentheses are empty)"
        elif tok.kind == "op" and tok.text == "NOT":
            hint = " (NOT cannot stand right after NEAR/n; NEAR needs terms on both sides)"
        raise self.error(f"{expected}, found {_describe(tok)}{hint}", tok.pos)

    def group(self, open_tok: _Tok, closer: str) -> Node:
        self.index += 1
        self.enter(open_tok.pos)
        node = self.or_expr()
        self.depth -= 1
        tok = self.peek()
        if tok is None or tok.kind != "rparen":
            pos = tok.pos if tok else self.end_pos()
            raise self.error(
                f"expected {closer} for the '(' at position {open_tok.pos}, found {_describe(tok)}",
                pos,
            )
        self.index += 1
        return node

    def term(self, tok: _Tok, body: str, prefix: bool, *, phrase: bool) -> Term:
        if "*" in body:
            offset = body.index("*") + (1 if phrase else 0)
            raise self.error(
                "a wildcard '*' may only end a word (like cooperat*)", tok.pos + offset
            )
        tokens = tuple(word_tokens(fold(body)))
        if not tokens:
            what = "an empty phrase" if phrase else f"{tok.text!r}, which has no letters or digits"
            raise self.error(f"expected a term with letters or digits, found {what}", tok.pos)
        if prefix and len(tokens[-1]) < MIN_PREFIX and not is_cjk(tokens[-1]):
            raise self.error(
                f"a wildcard needs at least {MIN_PREFIX} letters before '*' "
                "(it would match too much)",
                tok.pos,
            )
        return Term(tokens, prefix, None, tok.text)


class _Context:
    """Alias definitions shared by the parsers of one query: parsed once, cycles refused."""

    def __init__(
        self,
        aliases: Mapping[str, str],
        commitment_id: str | None,
        cache: dict[str, tuple[Node, frozenset[str]]] | None,
    ) -> None:
        self.aliases = aliases
        self.commitment_id = commitment_id
        # alias name -> (tree, aliases it uses in turn); may be shared by many queries
        self.parsed: dict[str, tuple[Node, frozenset[str]]] = {} if cache is None else cache
        self.active: list[str] = []
        self.used: set[str] = set()

    def alias(self, name: str, parser: _Parser, pos: int) -> Node:
        if name not in self.aliases:
            known = ", ".join("@" + n for n in sorted(self.aliases)) or "none are defined"
            label = f"unknown alias @{name}" if name else "expected an alias name after '@'"
            raise parser.error(f"{label} (known: {known})", pos)
        if name in self.active:
            cycle = " -> ".join("@" + n for n in [*self.active, name])
            raise parser.error(f"alias @{name} refers to itself: {cycle}", pos)
        if name not in self.parsed:
            self.active.append(name)
            outer, self.used = self.used, set()
            sub = _Parser(self.aliases[name], self, f"in alias @{name}: ")
            sub.depth = parser.depth
            tree = sub.parse()
            self.parsed[name] = (tree, frozenset(self.used))
            self.used = outer
            self.active.pop()
        tree, nested = self.parsed[name]
        self.used.add(name)
        self.used.update(nested)
        return tree


@dataclass(frozen=True)
class ParsedQuery:
    """A parsed query: its tree and the alias names it used (directly or through others)."""

    root: Node
    aliases_used: frozenset[str]


def parse_query(
    text: str,
    aliases: Mapping[str, str] | None = None,
    *,
    commitment_id: str | None = None,
    alias_cache: dict[str, tuple[Node, frozenset[str]]] | None = None,
) -> ParsedQuery:
    """Parse ``text`` or raise :class:`QuerySyntaxError` naming the commitment and position.

    Pass the same ``alias_cache`` (an empty dict at first) to parse many queries with the
    same aliases: each alias is then parsed once and its tree shared by every query.
    """
    context = _Context(aliases or {}, commitment_id, alias_cache)
    root = _Parser(text, context, "").parse()
    return ParsedQuery(root, frozenset(context.used))
