"""Turn a fetched body into text: which charset a page is really in.

Order of evidence, most decisive first:

1. a byte-order mark (it cannot be there by accident, so it beats even the header,
   as in the WHATWG encoding standard);
2. the ``charset`` of the HTTP Content-Type header;
3. ``<meta charset>`` / ``<meta http-equiv>`` in the first 4 KiB, or the XML
   declaration's ``encoding``;
4. statistical detection (charset-normalizer);
5. UTF-8 with replacement characters, so we always return *some* text.

A declared charset is only believed when the body decodes under it without error.
One lie is so common that it gets its own rule: servers that label everything
ISO-8859-1 (or ASCII) by default while the pages are UTF-8. When a body declared
as one of those is valid UTF-8 *and* has non-ASCII bytes, it is UTF-8: real Latin-1
text almost never forms valid multi-byte UTF-8 sequences.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([\w.:-]+)["']""", re.IGNORECASE)
# Labels that WHATWG maps to windows-1252, a superset that also decodes 0x80-0x9F.
_LATIN1_LABELS = {
    "iso-8859-1",
    "iso8859-1",
    "latin-1",
    "latin1",
    "l1",
    "ascii",
    "us-ascii",
    "cp1252",
    "windows-1252",
    "iso_8859-1",
}
_SNIFF_BYTES = 4096


def _normalise(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when Python knows no such codec."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _LATIN1_LABELS:
        return "cp1252"
    if label in {"gb2312", "gbk", "x-gbk"}:
        return "gb18030"  # superset; pages labelled gb2312 routinely use GBK characters
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def charset_from_header(content_type: str | None) -> str | None:
    """The charset label of a Content-Type header value, as written."""
    if not content_type:
        return None
    match = _HEADER_CHARSET.search(content_type)
    return match.group(1) if match else None


def declared_in_document(content: bytes) -> str | None:
    """The charset a document declares about itself (XML declaration or HTML meta)."""
    head = content[:_SNIFF_BYTES]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def _strict(content: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _believe(content: bytes, label: str | None) -> str | None:
    """Decode under a declared label if it holds, with the mislabelled-UTF-8 rule."""
    codec = _normalise(label)
    if codec is None:
        return None
    if codec == "cp1252" and not content.isascii():
        as_utf8 = _strict(content, "utf-8")
        if as_utf8 is not None:
            return as_utf8
    if codec.startswith("utf-16") or codec.startswith("utf-32"):
        # Without a BOM these labels are usually wrong (pages say utf-16, send utf-8).
        return None
    return _strict(content, codec)


def decode_body(content: bytes, content_type: str | None = None) -> tuple[str, str]:
    """``(text, codec)`` for a body; never raises. The BOM, if any, is not in the text."""
    if not content:
        return "", "utf-8"
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(codec, errors="replace"), codec
    for label in (charset_from_header(content_type), declared_in_document(content)):
        text = _believe(content, label)
        if text is not None:
            return text, _normalise(label) or "utf-8"
    as_utf8 = _strict(content, "utf-8")
    if as_utf8 is not None:
        return as_utf8, "utf-8"
    best = from_bytes(content[: 256 * 1024]).best()
    if best is not None and best.encoding:
        return content.decode(best.encoding, errors="replace"), best.encoding
    return content.decode("utf-8", errors="replace"), "utf-8"
