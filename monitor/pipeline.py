"""The orchestrator: one cycle of ipr-monitor, stage by stage.

For each source that is due: fetch its feed or listing page, discover the items,
fetch the article pages not stored yet, extract their text, fold copies of one
story together, match each new story against every commitment, and store it all.
Then build and deliver the digests that are due.

Each article is stored in one transaction (article, story, band keys, hits and the
"item seen" mark together), so a crash never leaves half an article behind, and an
item whose page failed is not marked seen and is tried again next cycle.
One source failing never stops the others: its error is recorded on it, it backs
off, and the cycle goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso, now, now_iso
from monitor.config import Config, SourceConfig
from monitor.dedupe import Deduper, canonical_url, content_hash
from monitor.discover import Item, discover, discover_all
from monitor.errors import FetchError, PermanentFetchError, RobotsDisallowedError
from monitor.extract import Article, extract
from monitor.fetch import Fetcher, Response, RobotsCache, next_attempt_delay
from monitor.match import Hit, Matcher, compile_matcher
from monitor.store import NewArticle, Store

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """What one source's run did, for people (CLI output) and tests."""

    name: str
    outcome: str = "ok"  # ok | not_modified | error | disallowed
    error: str | None = None
    items: int = 0
    new_articles: int = 0
    duplicates: int = 0
    failed_pages: int = 0
    hits: Counter[str] = field(default_factory=Counter)


@dataclass
class CycleReport:
    """The whole cycle: one report per source, plus totals."""

    sources: list[SourceReport] = field(default_factory=list)

    @property
    def articles_stored(self) -> int:
        return sum(s.new_articles for s in self.sources)

    @property
    def duplicates_merged(self) -> int:
        return sum(s.duplicates for s in self.sources)

    @property
    def hits(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for source in self.sources:
            total.update(source.hits)
        return total

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome in {"error", "disallowed"}]


@dataclass(frozen=True)
class Ingested:
    """The outcome of storing one page."""

    article_id: int
    story_id: int
    duplicate: bool
    hits: tuple[Hit, ...]


ProgressHook = Callable[[str], None]


class Pipeline:
    """Runs cycles against one store with one compiled matcher.

    Build it once per process (compiling the matcher is the expensive part) and
    call :meth:`run_cycle` as often as the scheduler says.
    """

    def __init__(self, config: Config, store: Store, *, matcher: Matcher | None = None) -> None:
        self.config = config
        self.store = store
        self.matcher = matcher or compile_matcher(config.commitments, config.aliases)
        self.deduper = Deduper(
            store,
            official_domains=config.dedupe.official_domains,
            threshold=config.dedupe.threshold,
            window_days=config.dedupe.window_days,
        )
        self.sources = {source.name: source for source in config.sources}
        # robots.txt answers outlive one cycle's Fetcher (robots_ttl, default a day).
        self.robots_cache = RobotsCache()
        store.sync_sources(config.sources)
        store.sync_commitments(config.commitments, dict(self.matcher.query_versions))

    # -- the cycle ---------------------------------------------------------------------

    async def run_cycle(
        self,
        names: Sequence[str] | None = None,
        *,
        force: bool = False,
        on_source_done: ProgressHook | None = None,
    ) -> CycleReport:
        """Fetch and ingest the due sources (or ``names``; ``force`` ignores next_fetch_at)."""
        if names is None:
            names = (
                [s.name for s in self.config.sources if s.enabled]
                if force
                else self.store.due_source_names(now_iso())
            )
        chosen = [self.sources[name] for name in names if name in self.sources]
        report = CycleReport()
        # At most ``concurrency`` sources in progress: more would mostly queue for the
        # fetcher's request slots, and each holds its listing, its items and its page
        # workers in memory (100 feeds at once: +31 MB peak in bench/pipeline.py, at the
        # same articles per second).
        in_progress = asyncio.Semaphore(self.config.fetch.concurrency)
        async with Fetcher(self.config.fetch, robots_cache=self.robots_cache) as fetcher:

            async def one(source: SourceConfig) -> SourceReport:
                try:
                    async with in_progress:
                        result = await self.run_source(source, fetcher)
                except sqlite3.OperationalError as exc:
                    # Another program held the store's write lock past the busy timeout (or
                    # the disk failed). Each article is its own transaction and nothing
                    # unstored was marked seen, so the next cycle picks this source up again.
                    log.warning("%s: could not write to the store: %s", source.name, exc)
                    result = SourceReport(
                        source.name,
                        outcome="error",
                        error=f"could not write to the store ({exc}); retried next cycle",
                    )
                except Exception as exc:  # a bug costs one source its run, never the cycle
                    log.exception("%s: failed", source.name)
                    result = SourceReport(
                        source.name,
                        outcome="error",
                        error=f"internal error ({type(exc).__name__}); see the log",
                    )
                if on_source_done:
                    on_source_done(source.name)
                return result

            report.sources = list(await asyncio.gather(*(one(s) for s in chosen)))
        return report

    async def run_source(self, source: SourceConfig, fetcher: Fetcher) -> SourceReport:
        """One source: listing → items → new pages → stored articles; never raises FetchError."""
        report = SourceReport(source.name)
        source_id = self.store.source_id(source.name)
        assert source_id is not None, "sync_sources() runs in __init__"
        started = now()
        etag, last_modified = self.store.http_validators(source.url)
        try:
            response = await fetcher.get(
                source.url,
                etag=etag,
                last_modified=last_modified,
                respect_robots=source.respect_robots,
            )
            items = [] if response.not_modified else await self._discover(source, response, fetcher)
        except FetchError as exc:
            self._source_failed(source, source_id, exc, started, report)
            return report
        complete = True
        if response.not_modified:
            report.outcome = "not_modified"
        else:
            report.items = len(items)
            complete = await self._ingest_items(source, source_id, items, fetcher, report)
        # Validators are kept only once every listed item is stored or seen: else the next
        # fetch would get a 304 and never retry the pages that failed or waited for the cap.
        self.store.save_http_validators(
            source.url,
            response.etag if complete else None,
            response.last_modified if complete else None,
            response.status,
        )
        self._source_succeeded(source, source_id, response, started, report)
        return report

    async def _discover(
        self, source: SourceConfig, response: Response, fetcher: Fetcher | None = None
    ) -> list[Item]:
        """discover() in a worker thread: a hostile feed of tens of thousands of items takes
        seconds to parse, and the other sources' requests must not stall meanwhile. A parser
        that chokes on hostile bytes fails this source (recorded, backed off), not the cycle.
        """
        try:
            if source.kind == "sitemap" and fetcher is not None:  # an index has children
                return await discover_all(
                    source,
                    response,
                    lambda url: fetcher.get(url, respect_robots=source.respect_robots),
                )
            return await asyncio.to_thread(discover, source, response)
        except FetchError:
            raise
        except Exception as exc:
            log.warning("%s: parser failed on the listing", source.name, exc_info=True)
            what = {"feed": "feed", "sitemap": "sitemap"}.get(source.kind, "listing page")
            raise PermanentFetchError(f"malformed {what}: the parser could not read it") from exc

    async def _ingest_items(
        self,
        source: SourceConfig,
        source_id: int,
        items: list[Item],
        fetcher: Fetcher,
        report: SourceReport,
    ) -> bool:
        """Store the new items; True when none is left for a later run."""
        unseen_keys = self.store.unseen_item_keys(source_id, [item.key for item in items])
        unseen_keys |= self._reused_keys(source_id, [i for i in items if i.key not in unseen_keys])
        fresh = [item for item in items if item.key in unseen_keys]
        # Each linked item's (url, canonical url), computed once.
        urls = {item.key: (item.url, canonical_url(item.url)) for item in fresh if item.url}
        known = self.store.known_urls([u for pair in urls.values() for u in pair])
        todo = []
        for item in fresh:
            if item.key not in urls:
                continue
            if known.intersection(urls[item.key]):
                self.store.mark_item_seen(source_id, item.key, item.url)
            else:
                todo.append(item)
        cap = source.max_new_articles or self.config.fetch.max_new_articles
        capped = len(todo) > cap
        todo = todo[:cap]
        for item in fresh:
            if not item.url:
                self._ingest_linkless(source_id, item, report)
        retry_soon = 0  # pages worth fetching again before the feed changes

        async def page(item: Item) -> None:
            nonlocal retry_soon
            assert item.url is not None
            try:
                response = await fetcher.get(item.url, respect_robots=source.respect_robots)
            except FetchError as exc:
                report.failed_pages += 1
                if not isinstance(exc, PermanentFetchError):
                    retry_soon += 1
                self.store.record_fetch(
                    source_id=source_id,
                    url=item.url,
                    started_at=now_iso(),
                    duration_ms=None,
                    status=exc.status,
                    outcome="disallowed" if isinstance(exc, RobotsDisallowedError) else "error",
                    error=exc.reason,
                )
                log.warning("%s: article %s: %s", source.name, item.url, exc.reason)
                return
            try:
                ingested = self.ingest_page(
                    source_id, item, response, selectors=source.article_selector
                )
            except sqlite3.OperationalError as exc:  # store busy: not seen, retried next run
                report.failed_pages += 1
                retry_soon += 1
                log.warning("%s: article %s: could not store: %s", source.name, item.url, exc)
                return
            if ingested is not None:
                report.new_articles += 1
                report.duplicates += int(ingested.duplicate)
                report.hits.update(hit.commitment_id for hit in ingested.hits)

        # A fixed set of workers, not one task per page: a feed of thousands of new items
        # would otherwise hold thousands of suspended fetches (kilobytes each) in memory.
        # ``concurrency`` workers never wait on each other before the fetcher's limits do.
        pending = iter(todo)

        async def worker() -> None:
            for item in pending:
                await page(item)

        workers = min(len(todo), self.config.fetch.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        # A page gone for good (404, robots) is retried only when the feed changes, so it
        # does not cost the source its conditional GETs.
        return not capped and retry_soon == 0

    def _reused_keys(self, source_id: int, seen: list[Item]) -> set[str]:
        """Keys seen before for another link: feeds that reuse GUIDs (a position, "1", for
        whatever is newest) would otherwise hide every new article behind an old key."""
        linked = {item.key: item.url for item in seen if item.url}
        keys = list(linked)
        reused: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.store.query(
                "SELECT item_key, url FROM seen_items"
                f" WHERE source_id = ? AND item_key IN ({marks})",
                (source_id, *chunk),
            ):
                if row["url"] and row["url"] != linked[row["item_key"]]:
                    reused.add(row["item_key"])
        return reused

    def ingest_page(
        self, source_id: int, item: Item, response: Response, *, selectors: str | None = None
    ) -> Ingested | None:
        """Extract, store, dedupe and match one fetched page, all in one transaction."""
        article = extract(
            response.content or response.text, response.final_url, selectors=selectors
        )
        declared = article.canonical_url
        url = item.url or response.final_url
        return self._store_article(
            source_id,
            item,
            url=url,
            canonical=canonical_url(response.final_url, declared),
            article=article,
        )

    def _ingest_linkless(self, source_id: int, item: Item, report: SourceReport) -> None:
        """Feed items without a link are kept with their summary as the text."""
        digest = hashlib.sha1(item.key.encode()).hexdigest()[:16]
        url = f"urn:ipr-monitor:item:{source_id}:{digest}"
        article = Article(
            title=item.title or "",
            text=item.summary or "",
            published=item.published,
            authors=[],
            language=None,
            canonical_url=None,
            description=item.summary,
            reason=None if item.summary else "feed item without link or summary",
        )
        ingested = self._store_article(source_id, item, url=url, canonical=url, article=article)
        if ingested is not None:
            report.new_articles += 1
            report.hits.update(hit.commitment_id for hit in ingested.hits)

    def _store_article(
        self, source_id: int, item: Item, *, url: str, canonical: str, article: Article
    ) -> Ingested | None:
        title = article.title or item.title or ""
        text = article.text
        published = article.published or item.published
        with self.store.transaction():
            if self.store.article_id_for_url(url) is not None:
                self.store.mark_item_seen(source_id, item.key, url)
                return None
            article_id = self.store.insert_article(
                NewArticle(
                    url=url,
                    canonical_url=canonical,
                    source_id=source_id,
                    title=title,
                    text=text,
                    description=article.description,
                    authors=article.authors,
                    language=article.language,
                    published=iso(published),
                    content_hash=content_hash(text) if text else None,
                    extraction_note=article.reason,
                )
            )
            assignment = self.deduper.assign(article_id)
            hits: tuple[Hit, ...] = ()
            if assignment.is_new_story and (title or text):
                hits = tuple(self.matcher.match(title, text))
                for hit in hits:
                    self.store.save_hit(
                        story_id=assignment.story_id,
                        article_id=article_id,
                        commitment_id=hit.commitment_id,
                        score=hit.score,
                        evidence=[
                            {"text": e.text, "spans": [list(s) for s in e.spans], "field": e.field}
                            for e in hit.evidence
                        ],
                        query_version=hit.query_version,
                    )
            self.store.mark_item_seen(source_id, item.key, url)
            self.store.update_source(source_id, last_new_item_at=now_iso())
        return Ingested(article_id, assignment.story_id, not assignment.is_new_story, hits)

    # -- source state ------------------------------------------------------------------

    def _source_succeeded(
        self,
        source: SourceConfig,
        source_id: int,
        response: Response,
        started: datetime,
        report: SourceReport,
    ) -> None:
        finished = now()
        row = self.store.source_row(source.name)
        interval = self.config.source_interval(source)
        with self.store.transaction():
            self._log_listing_fetch(
                source,
                source_id,
                started,
                finished,
                status=response.status,
                outcome=report.outcome,
                size=len(response.content),
                items=report.items,
                new_articles=report.new_articles,
            )
            self.store.update_source(
                source_id,
                last_fetch_at=iso(finished),
                last_success_at=iso(finished),
                failing_since=None,
                consecutive_failures=0,
                items_seen=(row["items_seen"] if row else 0) + report.new_articles,
                next_fetch_at=iso(finished + interval),
            )

    def _log_listing_fetch(
        self,
        source: SourceConfig,
        source_id: int,
        started: datetime,
        finished: datetime,
        **details: Any,
    ) -> None:
        """One row in ``fetches`` for the source's feed or listing page."""
        self.store.record_fetch(
            source_id=source_id,
            url=source.url,
            started_at=iso(started) or "",
            duration_ms=int((finished - started).total_seconds() * 1000),
            **details,
        )

    def _source_failed(
        self,
        source: SourceConfig,
        source_id: int,
        exc: FetchError,
        started: datetime,
        report: SourceReport,
    ) -> None:
        finished = now()
        row = self.store.source_row(source.name)
        failures = (row["consecutive_failures"] if row else 0) + 1
        interval = self.config.source_interval(source)
        delay = next_attempt_delay(
            failures,
            interval.total_seconds(),
            retry_after=getattr(exc, "retry_after", None),
            max_backoff=self.config.fetch.max_backoff,
        )
        report.outcome = "disallowed" if isinstance(exc, RobotsDisallowedError) else "error"
        report.error = exc.reason
        with self.store.transaction():
            self._log_listing_fetch(
                source,
                source_id,
                started,
                finished,
                status=exc.status,
                outcome=report.outcome,
                error=exc.reason,
            )
            self.store.update_source(
                source_id,
                last_fetch_at=iso(finished),
                last_error=exc.reason,
                last_error_at=iso(finished),
                failing_since=(row["failing_since"] if row and row["failing_since"] else None)
                or iso(finished),
                consecutive_failures=failures,
                next_fetch_at=iso(finished + timedelta(seconds=delay)),
            )
        log.warning(
            "%s: %s (failure %d, next try in %.0f s)", source.name, exc.reason, failures, delay
        )
