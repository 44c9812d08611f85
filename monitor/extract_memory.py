"""A site's boilerplate, learned from the lines that repeat across its pages.

Generic rules cannot know that "Ascom is a global solutions provider focused on ..." closes
every press release of one company, or that a site's footer says "Tell us what YOU
think...". A line that the extractor kept on several different pages of the same site is
that site's chrome, whatever its wording. The memory is an explicit object the caller
owns and passes to :func:`monitor.extract.extract`, so extraction stays a deterministic
function of its inputs; ``to_dict``/``from_dict`` let the caller persist it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from monitor.extract_clean import normalized

DEFAULT_MIN_PAGES = 3
DEFAULT_MAX_LINES_PER_SITE = 5000
MIN_LINE_WORDS = 2  # one-word lines ("Keyboard") are too common to tell sites apart


def site_of(url: str | None) -> str | None:
    """The host a page belongs to, without "www."; None for a URL without one."""
    if not url:
        return None
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or None


def _fingerprint(line: str) -> str | None:
    words = normalized(line)
    if words.count(" ") + 1 < MIN_LINE_WORDS:
        return None
    return hashlib.blake2b(words.encode("utf-8"), digest_size=8).hexdigest()


class SiteBoilerplate:
    """Per site, which lines were seen on which pages (bounded, oldest lines forgotten)."""

    def __init__(
        self,
        min_pages: int = DEFAULT_MIN_PAGES,
        max_lines_per_site: int = DEFAULT_MAX_LINES_PER_SITE,
    ) -> None:
        if min_pages < 2:
            raise ValueError("min_pages must be at least 2: one page proves nothing")
        self.min_pages = min_pages
        self.max_lines_per_site = max_lines_per_site
        self._sites: dict[str, OrderedDict[str, list[str]]] = {}

    def repeated(self, site: str, page: str, line: str) -> bool:
        """Whether ``line`` was seen on at least ``min_pages`` pages of ``site`` other than
        ``page`` (a page fetched again does not vouch for itself)."""
        fingerprint = _fingerprint(line)
        if fingerprint is None:
            return False
        table = self._sites.get(site)
        pages = table.get(fingerprint, []) if table is not None else []
        return sum(1 for seen in pages if seen != page) >= self.min_pages

    def learn(self, site: str, page: str, lines: Iterable[str]) -> None:
        """Remember that ``page`` of ``site`` showed these lines."""
        table = self._sites.setdefault(site, OrderedDict())
        for line in lines:
            fingerprint = _fingerprint(line)
            if fingerprint is None:
                continue
            pages = table.setdefault(fingerprint, [])
            table.move_to_end(fingerprint)
            if page not in pages:
                pages.append(page)
                del pages[: -(self.min_pages + 1)]  # enough to decide, no more
        while len(table) > self.max_lines_per_site:
            table.popitem(last=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, for the caller to store between runs."""
        return {
            "min_pages": self.min_pages,
            "max_lines_per_site": self.max_lines_per_site,
            "sites": {site: dict(table) for site, table in self._sites.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteBoilerplate:
        """The memory ``to_dict`` saved."""
        memory = cls(int(data["min_pages"]), int(data["max_lines_per_site"]))
        for site, table in (data.get("sites") or {}).items():
            memory._sites[site] = OrderedDict((k, list(v)) for k, v in table.items())
        return memory
