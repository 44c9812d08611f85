"""The world the fault matrix runs in: two of the demo's sources (an Atom feed and an HTML
listing page) that stay healthy, and one more source ("Seed and Soil",
fixtures/hostile/feed.xml) that we break on purpose, all on one real fixture host on
127.0.0.1, with a fresh store per test.

A clean run of that world is computed once (``baseline``); every fault test compares
the healthy sources' stored articles with it, and the faulty source's articles after
recovery too.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, SourceConfig, SourcesFile, load_config
from monitor.demo import demo_site_dir
from monitor.match import Matcher, compile_matcher
from monitor.pipeline import CycleReport, Pipeline, SourceReport
from monitor.sitehost import SiteHost
from monitor.store import Store

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "fixtures" / "hostile"
HEALTHY = ("Trade Wire", "Ministry of Commerce (listing)")
FAULTY = "Seed and Soil"
FEED = "hostile/feed.xml"
PAGE = "hostile/articles/rice-varieties.html"
OTHER_PAGE = "hostile/articles/oolong-gi.html"

# Small limits keep the suite fast; every fault below is sized against them.
TEST_FETCH: dict[str, Any] = {
    "allow_private_networks": True,
    "min_delay": 0.0,
    "connect_timeout": 1.0,
    "read_timeout": 1.0,
    "total_timeout": 4.0,
    "max_body_mb": 1.0,
}

ArticleKey = tuple[str, str, str, str | None, str | None]


@pytest.fixture(scope="session")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo site with fixtures/hostile added as /hostile/, so all share one host."""
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(demo_site_dir(), root, dirs_exist_ok=True)
    shutil.copytree(HOSTILE, root / "hostile")
    return root


@pytest.fixture
def host(web_root: Path) -> Iterator[SiteHost]:
    with SiteHost(web_root) as site:
        yield site


@pytest.fixture(scope="session")
def matcher() -> Matcher:
    """Compiled once: compiling every shipped commitment is the slow part of a Pipeline."""
    config = _shipped_config()
    return compile_matcher(config.commitments, config.aliases)


@functools.cache
def _shipped_config() -> Config:
    """The shipped config, loaded once: validating every commitment takes a quarter second."""
    return load_config(None, database=":memory:")


def demo_sources(base_url: str) -> list[SourceConfig]:
    raw = (demo_site_dir() / "sources.toml").read_text(encoding="utf-8")
    sources = SourcesFile.model_validate(tomllib.loads(raw.replace("{site}", base_url))).source
    return [source for source in sources if source.name in HEALTHY]


@dataclass
class World:
    """One store, one pipeline: the healthy sources plus the faulty one."""

    host: SiteHost
    tmp_path: Path
    matcher: Matcher
    faulty_url: str = ""
    faulty_kind: str = "feed"
    faulty_options: dict[str, Any] = field(default_factory=dict)
    fetch: dict[str, Any] = field(default_factory=dict)
    store_timeout: float = 30.0
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)  # other hosts' base URLs, shown as {site}
    _store: Store | None = None
    _pipeline: Pipeline | None = None

    def __post_init__(self) -> None:
        self.faulty_url = self.faulty_url or self.host.url(FEED)

    # -- building ----------------------------------------------------------------------

    def config(self) -> Config:
        base = _shipped_config()
        faulty = SourceConfig(
            name=FAULTY,
            kind=self.faulty_kind,  # type: ignore[arg-type]
            url=self.faulty_url,
            interval=3600,
            **self.faulty_options,
        )
        return base.with_overrides(
            database_override=str(self.tmp_path / "monitor.db"),
            sources=[*demo_sources(self.host.base_url), faulty],
            fetch=base.fetch.model_copy(update={**TEST_FETCH, **self.fetch}),
            digests=[],
        )

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.tmp_path / "monitor.db", timeout=self.store_timeout)
        return self._store

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(self.config(), self.store, matcher=self.matcher)
        return self._pipeline

    def rebuild(self, **changes: Any) -> None:
        """The user edits the config (same store): e.g. the faulty source's URL is fixed."""
        for key, value in changes.items():
            setattr(self, key, value)
        self._pipeline = None

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        if self._store is not None:
            self._store.close()

    # -- running and looking -----------------------------------------------------------

    def cycle(self, names: Sequence[str] | None = None) -> dict[str, SourceReport]:
        report: CycleReport = asyncio.run(self.pipeline.run_cycle(names, force=True))
        return {source.name: source for source in report.sources}

    def row(self, name: str = FAULTY) -> Any:
        row = self.store.source_row(name)
        assert row is not None
        return row

    def articles(self, names: Iterable[str]) -> set[ArticleKey]:
        """What a user would see of these sources' articles, with the port taken out."""
        wanted = list(names)
        marks = ",".join("?" * len(wanted))
        rows = self.store.query(
            "SELECT s.name, a.url, a.title, a.content_hash, a.extraction_note"
            " FROM articles a JOIN sources s ON s.id = a.source_id"
            f" WHERE s.name IN ({marks})",
            wanted,
        )
        return {
            (
                row["name"],
                self.local(row["url"]),
                row["title"],
                row["content_hash"],
                row["extraction_note"],
            )
            for row in rows
        }

    def local(self, url: str) -> str:
        for base in (self.host.base_url, *self.bases):
            url = url.replace(base, "{site}")
        return url

    def page_errors(self) -> list[str]:
        return [
            row["error"]
            for row in self.store.query(
                "SELECT f.error FROM fetches f JOIN sources s ON s.id = f.source_id"
                " WHERE s.name = ? AND f.url != s.url AND f.outcome != 'ok'",
                (FAULTY,),
            )
        ]


@dataclass(frozen=True)
class Baseline:
    healthy: frozenset[ArticleKey]
    faulty: frozenset[ArticleKey]
    reports: dict[str, tuple[str, int]]


@pytest.fixture(scope="session")
def baseline(
    web_root: Path, matcher: Matcher, tmp_path_factory: pytest.TempPathFactory
) -> Baseline:
    """A clean run of the same world: what every healthy source stores when nothing breaks."""
    with SiteHost(web_root) as site:
        world = World(site, tmp_path_factory.mktemp("baseline"), matcher)
        try:
            reports = world.cycle()
            assert all(r.outcome == "ok" for r in reports.values()), reports
            healthy = frozenset(world.articles(HEALTHY))
            faulty = frozenset(world.articles([FAULTY]))
        finally:
            world.close()
    assert len(faulty) == 2 and len(healthy) == 3
    return Baseline(healthy, faulty, {n: (r.outcome, r.new_articles) for n, r in reports.items()})


@pytest.fixture
def world(host: SiteHost, tmp_path: Path, matcher: Matcher) -> Iterator[World]:
    made = World(host, tmp_path, matcher)
    yield made
    made.close()
