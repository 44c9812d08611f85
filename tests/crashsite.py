"""A news world for the crash harness: sites publishing over time, a config, a slow SMTP server.

``CrashWorld`` writes four sites into a directory served by ``SiteHost``:

* ``ipnews/feed.xml`` (RSS 2.0), ``lawblog/rss.xml`` (RSS 2.0), ``tradewire/atom.xml``
  (Atom) and ``ministry/news/index.html`` (an HTML listing page, no feed);
* article pages built from the labelled texts in ``fixtures/match_quality/articles``
  (so many match commitments, some match none) and from the off-topic page of the
  demo site, each in its site's own chrome;
* syndicated copies: the same story republished by ``tradewire`` or ``lawblog``
  under another URL, title and chrome, which dedupe must fold into the original's story.

Pages are published in waves (``publish(wave)``): the feeds and the listing list
every page published so far, newest first, so each daemon run finds something new
and digests keep being built. ``published_urls()`` is what the store must end up
holding, each exactly once.
"""

from __future__ import annotations

import html
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from monitor.smtpsink import SmtpSink

REPO = Path(__file__).resolve().parent.parent
ARTICLES = REPO / "fixtures" / "match_quality" / "articles"
SITES = ("ipnews", "lawblog", "tradewire", "ministry")
#: Where each site's index lives (feed or listing page).
INDEX = {
    "ipnews": "ipnews/feed.xml",
    "lawblog": "lawblog/rss.xml",
    "tradewire": "tradewire/atom.xml",
    "ministry": "ministry/news/index.html",
}
RECIPIENTS = {
    "everything": ["ana@example.org", "ben@example.org", "chen@example.org"],
    "china-intl": ["desk@example.org"],
}


@dataclass(frozen=True)
class Page:
    """One article page on one site; ``copy_of`` names the original's path for syndicated copies."""

    site: str
    path: str
    guid: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime
    wave: int
    copy_of: str | None = None


def _paragraphs(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split("\n") if p.strip()]
    if len(parts) >= 3:
        return tuple(parts)
    sentences = [s.strip() + "." for s in text.replace("\n", " ").split(". ") if s.strip()]
    return tuple(
        " ".join(sentences[i : i + 3]).replace("..", ".") for i in range(0, len(sentences), 3)
    )


class CrashWorld:
    """Build and publish the sites under ``root``; write configs pointing at them."""

    def __init__(
        self, root: Path, *, seed: int = 9, originals: int = 30, copies: int = 8, waves: int = 4
    ) -> None:
        self.root = root
        self.waves = waves
        rng = random.Random(seed)
        names = sorted(p.name for p in ARTICLES.glob("*.json"))
        chosen = sorted(rng.sample(names, originals))
        base = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
        pages: list[Page] = []
        for index, name in enumerate(chosen):
            data = json.loads((ARTICLES / name).read_text(encoding="utf-8"))
            site = ("ipnews", "ministry", "ipnews", "lawblog")[index % 4]
            slug = name.removesuffix(".json").replace("_", "-")
            pages.append(
                Page(
                    site=site,
                    path=f"{site}/2025/{slug}.html",
                    guid=f"{site}-{slug}",
                    title=data["title"],
                    paragraphs=_paragraphs(data["text"]),
                    published=base + timedelta(hours=5 * index),
                    wave=index % waves,
                )
            )
        for number, original in enumerate(rng.sample(pages, copies)):
            site = "tradewire" if original.site != "tradewire" and number % 2 == 0 else "lawblog"
            if site == original.site:
                site = "tradewire"
            slug = Path(original.path).stem
            pages.append(
                Page(
                    site=site,
                    path=f"{site}/wire/{slug}-syndicated.html",
                    guid=f"{site}-copy-{slug}",
                    title=f"{original.title} (wire)",
                    paragraphs=original.paragraphs,
                    published=original.published + timedelta(hours=2),
                    # the copy appears in the same wave or a later one
                    wave=min(waves - 1, original.wave + number % 2),
                    copy_of=original.path,
                )
            )
        self.pages = pages
        self.published_wave = -1

    # -- publishing -----------------------------------------------------------------------

    def publish(self, wave: int) -> None:
        """Make every page of waves ``<= wave`` visible (pages, feeds and listing rewritten)."""
        wave = min(wave, self.waves - 1)
        if wave <= self.published_wave:
            return
        self.published_wave = wave
        (self.root / "robots.txt").parent.mkdir(parents=True, exist_ok=True)
        visible = self.visible()
        for page in visible:
            _write(self.root / page.path, _page_html(page))
        for site in SITES:
            items = sorted(
                (p for p in visible if p.site == site), key=lambda p: p.published, reverse=True
            )
            _write(self.root / INDEX[site], _index(site, items))

    def visible(self) -> list[Page]:
        return [p for p in self.pages if p.wave <= self.published_wave]

    def published_urls(self, base_url: str) -> set[str]:
        return {f"{base_url}/{p.path}" for p in self.visible()}

    # -- config ---------------------------------------------------------------------------

    def write_config(self, directory: Path, base_url: str, smtp_port: int) -> Path:
        """A config directory for the daemon (store ``monitor.db`` inside it)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "monitor.toml").write_text(
            f"""
[general]
database = "monitor.db"
log_level = "INFO"

[fetch]
allow_private_networks = true
min_delay = 0
per_host = 4
respect_robots = false
max_new_articles = 200

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "ipr-monitor <monitor@example.org>"
timeout = 10
""",
            encoding="utf-8",
        )
        sources = []
        for site in SITES:
            url = f"{base_url}/{INDEX[site]}"
            if site == "ministry":
                sources.append(
                    f'[[source]]\nname = "{site}"\nkind = "html"\nurl = "{url}"\ninterval = "30m"\n'
                    'selectors = { item = "ul.news li", link = "a", title = "a",'
                    ' date = "span.date" }\n'
                )
            else:
                sources.append(
                    f'[[source]]\nname = "{site}"\nkind = "feed"\nurl = "{url}"\ninterval = "30m"\n'
                )
        (directory / "sources.toml").write_text("\n".join(sources), encoding="utf-8")
        shutil.copy(REPO / "config" / "commitments.toml", directory / "commitments.toml")
        groups = []
        for name, recipients in RECIPIENTS.items():
            tags = '["international"]' if name == "china-intl" else "[]"
            groups.append(
                f'[[digest]]\nname = "{name}"\nrecipients = {json.dumps(recipients)}\n'
                f'tags = {tags}\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
                # an empty digest too, so every run has something to deliver (and to kill)
                "send_when_empty = true\n"
            )
        (directory / "digests.toml").write_text("\n".join(groups), encoding="utf-8")
        return directory


class SlowSmtpSink(SmtpSink):
    """An SmtpSink that takes ``delay`` seconds to acknowledge each message it keeps.

    The message is recorded first and acknowledged after the pause, so a kill in
    the pause is the worst case: the server has the mail, the client never heard so.
    """

    def __init__(self, *, delay: float = 0.1, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.delay = delay

    def _record(self, *args: object, **kwargs: object) -> None:
        super()._record(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(self.delay)


# -- rendering ------------------------------------------------------------------------------


def _write(target: Path, text: str) -> None:
    """Atomically: a reader never sees half a feed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


_CHROME = {
    "ipnews": ("IP Policy Daily", "Share this post"),
    "lawblog": ("Law &amp; Policy Blog", "Subscribe to our newsletter"),
    "tradewire": ("Trade Wire", "Republished from a partner agency"),
    "ministry": ("Ministry of Commerce", "Print this page"),
}


def _page_html(page: Page) -> str:
    name, extra = _CHROME[page.site]
    body = "\n".join(f"        <p>{html.escape(p)}</p>" for p in page.paragraphs)
    title = html.escape(page.title)
    return f"""<!DOCTYPE html>
<!-- Description: crash-harness article ({page.guid}). Expect: stored once{
        "; folded into the story of " + page.copy_of if page.copy_of else ""
    }. -->
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} | {name}</title>
  <meta property="og:title" content="{title}">
  <meta property="article:published_time" content="{page.published.isoformat()}">
</head>
<body>
  <header class="site-header"><a href="/{page.site}/">{name}</a>
    <nav><a href="/{page.site}/policy">Policy</a> <a href="/{
        page.site
    }/trade">Trade</a></nav></header>
  <main>
    <article>
      <h1>{title}</h1>
      <div class="byline">{page.published:%d %B %Y}</div>
      <div class="entry-content">
{body}
      </div>
      <div class="share">{extra}</div>
    </article>
  </main>
  <footer><p>© 2025 {name}. All rights reserved.</p></footer>
</body>
</html>
"""


def _index(site: str, items: list[Page]) -> str:
    if site == "ministry":
        rows = "\n".join(
            f'    <li><a href="{{{{SITE}}}}/{p.path}">{html.escape(p.title)}</a>'
            f' <span class="date">{p.published:%Y-%m-%d}</span></li>'
            for p in items
        )
        return f"""<!DOCTYPE html>
<!-- Description: the ministry's news listing (no feed). Expect: {len(items)} items. -->
<html><head><meta charset="utf-8"><title>News</title></head>
<body><h1>News</h1>
  <ul class="news">
{rows}
  </ul>
</body></html>
"""
    if site == "tradewire":
        entries = "\n".join(
            f"""  <entry>
    <title>{html.escape(p.title)}</title>
    <id>urn:{p.guid}</id>
    <link href="{{{{SITE}}}}/{p.path}"/>
    <updated>{p.published.isoformat()}</updated>
    <summary>{html.escape(p.paragraphs[0][:160])}</summary>
  </entry>"""
            for p in items
        )
        return f"""<?xml version="1.0" encoding="utf-8"?>
<!-- Description: Trade Wire's Atom feed. Expect: {len(items)} entries. -->
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Trade Wire</title>
  <id>urn:tradewire</id>
  <updated>2025-06-01T00:00:00Z</updated>
{entries}
</feed>
"""
    channel_items = "\n".join(
        f"""    <item>
      <title>{html.escape(p.title)}</title>
      <link>{{{{SITE}}}}/{p.path}</link>
      <guid isPermaLink="false">{p.guid}</guid>
      <pubDate>{format_datetime(p.published)}</pubDate>
      <description>{html.escape(p.paragraphs[0][:160])}</description>
    </item>"""
        for p in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Description: {site}'s RSS feed. Expect: {len(items)} items. -->
<rss version="2.0">
  <channel>
    <title>{site}</title>
    <link>{{{{SITE}}}}/{site}/</link>
    <description>{site} news</description>
{channel_items}
  </channel>
</rss>
"""
