"""``monitor search`` ranks the newest SEARCH_WINDOW matches, best first.

Why a window: bench/store_latency.py (bm25 over every match does not scale to 1M articles).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import reports
from monitor.store import NewArticle, Store


def _add(store: Store, number: int, text: str) -> None:
    url = f"https://news.example/{number}"
    with store.transaction():
        store.insert_article(
            NewArticle(
                url=url,
                canonical_url=url,
                source_id=None,
                title=f"Story {number}",
                text=text,
                description=None,
                authors=[],
                language="en",
                published=None,
                content_hash=None,
            )
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store.open(tmp_path / "search.db")
    # oldest first: the best match is the oldest article
    _add(handle, 1, "trademark trademark trademark squatting trademark filings")
    _add(handle, 2, "a court ruled on a trademark dispute between two brewers today")
    _add(handle, 3, "the ministry said trademark rules will change next year, among others")
    yield handle
    handle.close()


def test_fewer_matches_than_the_window_are_ranked_in_full(store: Store) -> None:
    found = reports.search(store, "trademark")
    assert len(found) == 3
    assert found[0]["title"] == "Story 1"  # the oldest, and the best match


def test_only_the_newest_window_of_matches_is_ranked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "SEARCH_WINDOW", 2)
    assert {row["title"] for row in reports.search(store, "trademark")} == {"Story 2", "Story 3"}
    # the window counts this query's matches: an old article that alone matches is found
    assert [row["title"] for row in reports.search(store, "squatting")] == ["Story 1"]
