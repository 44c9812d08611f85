"""``monitor demo``: the whole product, offline, in a few seconds.

It serves the fixture site (``fixtures/site/``) on 127.0.0.1, starts an SMTP server
on 127.0.0.1, runs one full cycle with the shipped commitments into a fresh store,
sends the digest, keeps the received message as an ``.eml`` file, and says what
happened at each stage. Nothing is faked: the same code paths as the daemon run,
over real sockets.
"""

from __future__ import annotations

import asyncio
import tempfile
import tomllib
from pathlib import Path

from rich.console import Console

from monitor.config import (
    Config,
    DigestConfig,
    SmtpConfig,
    SourcesFile,
    load_config,
)
from monitor.digest import build_digest, deliver_pending
from monitor.errors import ConfigError
from monitor.pipeline import Pipeline
from monitor.sitehost import SiteHost
from monitor.smtpsink import SmtpSink
from monitor.store import Store

DEMO_RECIPIENT = "analyst@example.org"


def demo_site_dir() -> Path:
    """The fixture site: ``fixtures/site`` in a checkout, else the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "fixtures" / "site", here / "_data" / "site"):
        if (candidate / "sources.toml").exists():
            return candidate
    raise ConfigError("the demo site (fixtures/site) is missing from this installation")


def demo_config(site: SiteHost, smtp_port: int, database: Path) -> Config:
    """The shipped config, pointed at the local site and SMTP server."""
    base = load_config(None, database=str(database))
    raw = (site.root / "sources.toml").read_text(encoding="utf-8").replace("{site}", site.base_url)
    sources = SourcesFile.model_validate(tomllib.loads(raw)).source
    return base.with_overrides(
        sources=sources,
        fetch=base.fetch.model_copy(update={"allow_private_networks": True, "min_delay": 0.0}),
        smtp=SmtpConfig(host="127.0.0.1", port=smtp_port, security="none"),
        digests=[DigestConfig(name="demo", recipients=[DEMO_RECIPIENT], schedule="0 7 * * *")],
    )


def run_demo(*, db: Path | None = None, out_dir: Path | None = None) -> int:
    """Run the demo; returns the process exit code (0 when a digest was received)."""
    console = Console(highlight=False)
    workdir = Path(out_dir or tempfile.mkdtemp(prefix="ipr-monitor-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database = db or workdir / "demo.db"
    with SiteHost(demo_site_dir()) as site, SmtpSink() as sink:
        config = demo_config(site, sink.port, database)
        console.print(
            f"[bold]ipr-monitor demo[/bold]: fixture site at {site.base_url}, "
            f"SMTP at 127.0.0.1:{sink.port}, store {database}"
        )
        store = Store.open(config.database_path)
        pipeline = Pipeline(config, store)
        report = asyncio.run(pipeline.run_cycle(force=True))

        console.print("\n[bold]1. Sources fetched[/bold]")
        for source in report.sources:
            state = source.error or source.outcome
            console.print(
                f"   {source.name}: {state}, {source.items} items, "
                f"{source.new_articles} new articles"
            )
        fetched = sum(1 for s in report.sources if s.outcome in {"ok", "not_modified"})
        console.print(f"   {fetched} of {len(report.sources)} sources fetched")

        console.print("\n[bold]2. Articles stored and duplicates merged[/bold]")
        console.print(
            f"   {report.articles_stored} articles stored in "
            f"{store.scalar('SELECT COUNT(*) FROM stories')} stories; "
            f"{report.duplicates_merged} duplicates merged"
        )
        for row in store.query(
            "SELECT st.title, st.source_count, GROUP_CONCAT(s.name, ' + ') AS names"
            " FROM stories st JOIN articles a ON a.story_id = st.id"
            " JOIN sources s ON s.id = a.source_id"
            " GROUP BY st.id HAVING COUNT(a.id) > 1"
        ):
            console.print(f'   merged: "{row["title"]}" carried by {row["names"]}')

        console.print("\n[bold]3. Hits per commitment[/bold]")
        for commitment_id, count in sorted(report.hits.items()):
            console.print(f"   {commitment_id}: {count}")
        if not report.hits:
            console.print("   (none)")

        console.print("\n[bold]4. Digest[/bold]")
        for group in config.digests:
            build_digest(store, config, group)
        results = deliver_pending(store, config)
        for result in results:
            console.print(
                f"   {result.group_name}: {result.state} as {result.message_id}"
                + (f" ({result.error})" if result.error else "")
            )
        received = list(sink.messages)
        for index, message in enumerate(received, start=1):
            path = workdir / f"digest-{index}.eml"
            path.write_bytes(message.data)
            console.print(
                f'   received by the SMTP server: "{message.message["Subject"]}" '
                f"for {', '.join(message.rcpt_tos)}"
            )
            console.print(f"   saved as {path}")
        store.close()
    if not received:
        console.print("[red]no digest was received[/red]")
        return 1
    return 0
