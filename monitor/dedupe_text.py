"""The text side of deduplication: an article's own body, its shingles, sketches and scores.

Republished copies differ from their original in predictable ways: site chrome
around the body (navigation, share bars, "Related:" lists, a truncated lead repeated
as a heading), a wire dateline in front, an ending trimmed off, a few words edited.
``body_lines`` removes what it can recognise *by shape* (so it needs no per-site
rules and no state), and ``similarity`` compares what is left in a way that an
abridged copy still scores high and an unrelated article quoting a few sentences
does not.

Everything here is deterministic across processes and machines: band keys are
persisted, so a hash that changed between runs would silently break deduplication.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

# -- the article's own body --------------------------------------------------------------

_WORD = re.compile(r"\w+")
_ASCII_WORD = re.compile(r"\w+", re.ASCII)
# Chinese, Japanese and Korean are written without spaces: each character is a token.
_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_WORD_OR_CJK = re.compile(f"[{_CJK_RANGES}]|[^\\W{_CJK_RANGES}]+")
# A line that ends like a sentence (or a quotation, or a bracket).
_SENTENCE_END = frozenset('.!?…:;"”’»)]。！？」』）')
# Navigation bars: "Home | News | Business", "World > Asia-Pacific", "Login  Register".
_NAV_SEPARATOR = re.compile(r"\s[|>»·•/]\s|\S\s{2,}\S")
# "Related:", "Share this article:", "Tags:": a short label ending in a colon.
_LABEL = re.compile(r"^\s*([\w'’]+(?:\s+[\w'’]+){0,2})\s*:\s")
# Consent and legal boilerplate, recognisable by wording rather than shape. ("copyright"
# alone is not enough: it is a subject of the news this product watches.)
_BOILERPLATE = re.compile(
    r"\bcookies?\b.{0,120}\b(?:agree|accept|consent|settings|polic(?:y|ies))\b"
    r"|\b(?:agree|accept|consent)\b.{0,120}\bcookies?\b"
    r"|\ball rights reserved\b|©",
    re.IGNORECASE,
)
# Wire datelines in front of a lead: "GENEVA, March 3 (Reuters) - ", "BEIJING (Xinhua) -- ".
_DATELINE = re.compile(
    r"^[A-ZÀ-Þ][A-ZÀ-Þ.'’ ]{2,40}?(?:,\s*[^—–()\n]{1,30}?)?\s*(?:\([^()\n]{1,40}\))?"
    r"\s*[—–-]{1,2}\s+"
)

#: Lines shorter than this are chrome unless the body would otherwise be empty.
MIN_LINE_WORDS = 8
#: Lines without sentence punctuation shorter than this are headings, bylines, menus.
MIN_UNPUNCTUATED_WORDS = 12


def words(text: str) -> list[str]:
    """Case- and compatibility-folded word tokens: what "the same words" means here.

    CJK characters are tokens on their own, so a Chinese article has shingles of
    characters rather than of whole clauses.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return _ASCII_WORD.findall(folded)  # same tokens, several times faster
    if _CJK.search(folded):
        return _WORD_OR_CJK.findall(folded)
    return _WORD.findall(folded)


#: ``body_lines`` only compares word counts with numbers up to 60: counting further
#: changes no decision, and splitting a long paragraph into all its words costs.
_COUNT_WORDS_UP_TO = 61


def _length(line: str, cjk_text: bool = True) -> int:
    """Roughly how many words a line has (CJK: two characters to a word), where any
    count above ``_COUNT_WORDS_UP_TO`` may be reported as just above it.

    ``cjk_text=False`` says the whole text has no CJK character, which saves a scan.
    """
    count = len(line.split(maxsplit=_COUNT_WORDS_UP_TO))
    if cjk_text and not line.isascii():
        cjk = len(_CJK.findall(line))
        if cjk:
            count += cjk // 2
    return count


def _is_notice(line: str) -> bool:
    folded = line.casefold()
    hinted = "cookie" in folded or "reserved" in folded or "©" in folded  # cheap pre-check
    return hinted and _BOILERPLATE.search(line) is not None


def strip_dateline(line: str) -> str:
    """Drop up to three stacked wire datelines ("GENEVA (Reuters) - AP - ...")."""
    for _ in range(3):
        match = _DATELINE.match(line)
        if match is None:
            break
        line = line[match.end() :]
    return line


def body_lines(text: str) -> list[str]:
    """The lines of ``text`` that look like the article rather than the page around it.

    A line is chrome when it repeats an earlier line, is the truncated start of a line
    that follows (a lead repeated as a heading), is a navigation bar, shares a
    ``Label:`` with another line (``Related:`` lists), is a cookie or rights notice, or
    is too short to be prose.
    A dateline is removed from the first body line, so a wire copy and the original
    start with the same words. When nothing survives (a two-line article), all lines
    are kept: a short body is still better evidence than none.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    labels: dict[str, int] = {}
    for line in lines:
        match = _LABEL.match(line) if ":" in line[:40] else None
        if match:
            key = match.group(1).casefold()
            labels[key] = labels.get(key, 0) + 1
    cjk_text = not text.isascii() and _CJK.search(text) is not None
    kept: list[str] = []
    seen: set[str] = set()
    for index, line in enumerate(lines):
        if line in seen:
            continue
        seen.add(line)
        size = len(line)
        # The truncated start of one of the next lines? (A loop: any() over a generator
        # costs more, line by line.)
        heading = False
        for other in lines[index + 1 : index + 4]:
            if len(other) > size and other.startswith(line):
                heading = True
                break
        if heading:
            continue
        count = _length(line, cjk_text)
        punctuated = line[-1] in _SENTENCE_END  # lines are stripped and not empty
        if count < MIN_LINE_WORDS or (not punctuated and count < MIN_UNPUNCTUATED_WORDS):
            continue
        if not punctuated and len(_NAV_SEPARATOR.findall(line)) >= 2:
            continue
        label = _LABEL.match(line) if ":" in line[:40] else None
        if label and labels.get(label.group(1).casefold(), 0) >= 2 and count <= 40:
            continue
        if count <= 60 and _is_notice(line):
            continue
        kept.append(line)
    if not kept:
        return lines
    kept[0] = strip_dateline(kept[0])
    return kept


def body_text(text: str) -> str:
    """The article's body (see ``body_lines``) as one string."""
    return "\n".join(body_lines(text))


# -- token hashes and shingles -----------------------------------------------------------

SHINGLE = 5
_SHINGLE_MIX = np.array([pow(1_000_003, k, 1 << 64) for k in range(SHINGLE)], dtype=np.uint64)
_MAX_PERM = 256
_rng = np.random.RandomState(20261125)
_PERM_A = _rng.randint(1, (1 << 63) - 1, size=_MAX_PERM, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
_PERM_B = _rng.randint(0, (1 << 63) - 1, size=_MAX_PERM, dtype=np.uint64)
_BAND_MIX = _rng.randint(1, (1 << 63) - 1, size=64, dtype=np.uint64) | np.uint64(1)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Token hashing works on UTF-8 bytes with numpy, not word by word in Python: a word is a
# run of ASCII letters, digits and "_" or of non-ASCII bytes, except typographic
# punctuation (quotes, dashes, nbsp, CJK punctuation: see ``_punctuation``), and each CJK
# character stands alone.
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] = True
_WORD_BYTE[0x80:] = True
_CJK_UTF8 = re.compile(rb"[\xe3-\xed][\x80-\xbf][\x80-\xbf]")
_BYTE_PLUS_ONE = np.arange(1, 257, dtype=np.uint64)
_FIRST_PUNCTUATION_LEAD = 0xC2
# Lead bytes of three-byte UTF-8 sequences, CJK among them, are E3-ED: a text without
# one (most Latin-script news, typographic quotes being E2) needs no CJK scan.
_FIRST_CJK_LEAD = 0xE3


def _punctuation(raw: np.ndarray) -> np.ndarray:
    """Offsets of the UTF-8 bytes of U+00A0-U+00BF, U+00D7, U+00F7, U+2000-U+207F and
    U+3000-U+303F (no-break space, quotes, dashes, ellipsis, CJK punctuation...)."""
    # Only lead bytes C2-E3 can start one: test the pairs at lead bytes alone (in a
    # Latin-script text, a few dozen offsets instead of every byte).
    leads = np.flatnonzero(raw[:-1] >= _FIRST_PUNCTUATION_LEAD)
    if leads.size == 0:
        return leads
    first, second = raw[leads], raw[leads + 1]
    two = ((first == 0xC2) & (second >= 0xA0)) | (
        (first == 0xC3) & ((second == 0x97) | (second == 0xB7))
    )
    three = ((first == 0xE2) & (second <= 0x81)) | ((first == 0xE3) & (second == 0x80))
    starts = leads[two | three]
    wide = leads[three]
    return np.concatenate((starts, starts + 1, np.minimum(wide + 2, raw.size - 1)))


# Polynomial hash of each token from one prefix sum: with an odd base B, B is invertible
# modulo 2**64, so hash(bytes[s:e]) = (Q[e] - Q[s]) * B**-s where Q sums b_i * B**i.
_BASE = 0x100000001B3
_INVERSE_BASE = pow(_BASE, -1, 1 << 64)


def _geometric(base: int, size: int) -> np.ndarray:
    steps = np.full(size, base, dtype=np.uint64)
    steps[0] = 1
    return np.cumprod(steps, dtype=np.uint64)  # wraps modulo 2**64, as intended


_powers: list[np.ndarray] = [_geometric(_BASE, 1 << 16), _geometric(_INVERSE_BASE, 1 << 16)]


def _powers_for(length: int) -> tuple[np.ndarray, np.ndarray]:
    """B**i and B**-i for i < length; the shared tables grow to 1 MB texts, no further."""
    if _powers[0].size < length:
        if length > 1 << 20:
            return _geometric(_BASE, length), _geometric(_INVERSE_BASE, length)
        _powers[:] = [_geometric(_BASE, length), _geometric(_INVERSE_BASE, length)]
    return _powers[0], _powers[1]


def token_hashes(text: str) -> np.ndarray:
    """Stable 64-bit hashes of the text's word tokens, case- and NFKC-folded, in order."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    data = folded.encode("utf-8")
    plain = folded.isascii()
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if not plain and raw.max() >= _FIRST_CJK_LEAD and _CJK_UTF8.search(data):
        data = _CJK_UTF8.sub(rb" \g<0> ", data)
        raw = np.frombuffer(data, dtype=np.uint8)
    word = np.zeros(raw.size + 2, dtype=bool)  # padded: no word before or after the text
    np.take(_WORD_BYTE, raw, out=word[1:-1])
    if not plain:
        word[_punctuation(raw) + 1] = False
    changes = np.flatnonzero(word[1:] != word[:-1])  # a word's start, then its end, ...
    starts, ends = changes[0::2], changes[1::2]
    powers, inverse = _powers_for(raw.size + 1)
    prefix = np.zeros(raw.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        values = np.take(_BYTE_PLUS_ONE, raw)
        values *= powers[: raw.size]
        np.cumsum(values, out=prefix[1:])
        hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
        hashes ^= hashes >> np.uint64(29)
        hashes *= _GOLDEN
        hashes ^= hashes >> np.uint64(32)
    return hashes


def shingle_sequence(tokens: np.ndarray, size: int = SHINGLE) -> np.ndarray:
    """Stable 64-bit hashes of each ``size``-gram of token hashes, in text order.

    A text shorter than one shingle gives one hash of all its tokens.
    """
    if tokens.size == 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        if tokens.size < size:
            return np.array([(tokens * _SHINGLE_MIX[: tokens.size]).sum()], np.uint64)
        count = tokens.size - size + 1
        hashes = tokens[:count] * _SHINGLE_MIX[0]
        for k in range(1, size):  # the sum over a sliding window, one shifted slice at a time
            hashes += tokens[k : k + count] * _SHINGLE_MIX[k]
        return hashes


def body_tokens(text: str) -> np.ndarray:
    """Token hashes of the article's body (see ``body_lines``), in text order."""
    return token_hashes(body_text(text))


def body_shingles(text: str) -> np.ndarray:
    """Shingle hashes of the article's body, in text order."""
    return shingle_sequence(body_tokens(text))


def minhash(shingles: np.ndarray, num_perm: int, offset: int = 0) -> np.ndarray:
    """MinHash signature: the minimum of ``num_perm`` hash functions over the shingles.

    The functions are multiply-shift hashes of the shingle folded to 32 bits (the high
    half of ``a*x + b`` modulo 2**64), universal enough for MinHash and far cheaper
    than a modulo. ``offset`` selects a different slice of functions, so two
    signatures of one article (body and lead) are independent.
    """
    a = _PERM_A[offset : offset + num_perm]
    b = _PERM_B[offset : offset + num_perm]
    folded = (shingles ^ (shingles >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        values = np.multiply.outer(a, folded)  # one row per function: minima along rows
        values += b[:, None]
        return values.min(axis=1) >> np.uint64(32)  # the high half is monotone in the whole


_MASK64 = (1 << 64) - 1
_BAND_MIX_INTS = [int(value) for value in _BAND_MIX]
_GOLDEN_INT = int(_GOLDEN)


def band_keys(signature: np.ndarray, rows: int, salt: int) -> list[int]:
    """One signed 64-bit key per band of ``rows`` values, salted by the band's identity.

    ``salt`` keeps bands of different indexes (and of different signatures) apart, so
    equal values in band 3 and band 7 do not collide. Arithmetic is modulo 2**64 (in
    Python integers: for a few bands, numpy's per-call cost is most of the work).
    """
    values = signature.tolist()
    keys: list[int] = []
    for band in range(len(values) // rows):
        chunk = values[band * rows : (band + 1) * rows]
        mixed = sum(value * mix for value, mix in zip(chunk, _BAND_MIX_INTS, strict=False))
        mixed = (mixed & _MASK64) ^ (((band + salt) * _GOLDEN_INT) & _MASK64)
        mixed = ((mixed ^ (mixed >> 29)) * _GOLDEN_INT) & _MASK64
        keys.append(mixed - (1 << 64) if mixed >> 63 else mixed)
    return keys


# -- similarity --------------------------------------------------------------------------

#: How many opening shingles stand for "the lead" when checking where overlap starts.
LEAD_SHINGLES = 10
#: The lead of the smaller text must appear within this many shingles of the larger's start.
LEAD_WINDOW = 40
#: Without a shared lead, the overlap must also be this share of the larger text.
MIN_LARGER_COVERAGE = 0.5


@dataclass(frozen=True)
class Score:
    """How two bodies overlap.

    ``containment`` is the share of the smaller body's shingles found in the larger
    one: an abridged copy (the first 60% of the original) scores ~1, where Jaccard
    would give 0.6. ``coverage`` is the same overlap as a share of the larger body,
    and ``shared_lead`` says whether the smaller body's opening sits at the start of
    the larger one. A republished copy shares the lead or most of the text; an
    article that quotes two or three sentences of another has neither.
    """

    containment: float
    coverage: float
    shared_lead: bool

    def is_duplicate(self, threshold: float) -> bool:
        """Enough of the smaller body is in the larger, and it is not a mere quotation."""
        return self.containment >= threshold and (
            self.shared_lead or self.coverage >= MIN_LARGER_COVERAGE
        )


def _unique(values: np.ndarray) -> np.ndarray:
    # np.unique hashes (numpy 2.3: ~10x slower than sorting a few thousand values).
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _count_in(values: np.ndarray, sorted_set: np.ndarray) -> int:
    """How many of ``values`` are in ``sorted_set`` (sorted, unique, not empty)."""
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return int(np.count_nonzero(sorted_set[at] == values))


def similarity(a: np.ndarray, b: np.ndarray) -> Score:
    """Compare two shingle sequences (from ``body_shingles``)."""
    if a.size == 0 or b.size == 0:
        return Score(0.0, 0.0, False)
    set_a, set_b = _unique(a), _unique(b)
    small, large = (a, b) if set_a.size <= set_b.size else (b, a)
    small_set, large_set = (set_a, set_b) if set_a.size <= set_b.size else (set_b, set_a)
    common = _count_in(small_set, large_set)
    lead = small[:LEAD_SHINGLES]
    shared_lead = _count_in(lead, _unique(large[:LEAD_WINDOW])) >= min(2, lead.size)
    return Score(common / small_set.size, common / large_set.size, shared_lead)
