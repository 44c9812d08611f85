"""The ``monitor`` command: a thin layer that parses arguments and calls the library.

Every command takes ``--config DIR`` and ``--db PATH`` (or ``MONITOR_CONFIG`` and
``MONITOR_DB``). Errors print one plain line on stderr and exit non-zero; no traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from monitor import reports
from monitor.config import Config, load_config
from monitor.errors import ConfigError, MonitorError
from monitor.output import Format, print_rows
from monitor.store import Store

app = typer.Typer(
    name="monitor",
    help="ipr-monitor: watch IP-policy news and report which commitments moved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="MONITOR_CONFIG", help="Config directory."),
]
DbOpt = Annotated[Path | None, typer.Option("--db", envvar="MONITOR_DB", help="SQLite store path.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table, json or csv.")]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn our errors into one line on stderr and an exit code (2 for config, 1 otherwise)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            typer.echo(f"config error: {exc}", err=True)
            raise typer.Exit(2) from None
        except MonitorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _format(value: str) -> Format:
    if value not in ("table", "json", "csv"):
        raise ConfigError(f"--format must be table, json or csv, not {value!r}")
    return value  # type: ignore[return-value]


def _load(config_dir: Path | None, db: Path | None) -> Config:
    config = load_config(config_dir, database=str(db) if db else None)
    logging.basicConfig(
        level=config.general.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return config


def _open(config: Config) -> Store:
    return Store.open(config.database_path)


@app.command("check-config")
@friendly_errors
def check_config(config_dir: ConfigOpt = None, db: DbOpt = None) -> None:
    """Validate the configuration (every file, key and query) and say what it holds."""
    config = _load(config_dir, db)
    print(
        f"ok: {config.directory}: {len(config.sources)} sources, "
        f"{len(config.commitments)} commitments, {len(config.digests)} digest groups; "
        f"store {config.database_path}"
    )


@app.command()
@friendly_errors
def once(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    all_sources: Annotated[
        bool, typer.Option("--all", help="Fetch every enabled source, due or not.")
    ] = False,
    no_digest: Annotated[bool, typer.Option("--no-digest", help="Skip digests.")] = False,
) -> None:
    """Run one cycle now: fetch due sources, store, match, then send due digests."""
    from monitor.lock import StoreLock

    config = _load(config_dir, db)
    # A running daemon owns the store; a second writer would fetch the same sources twice.
    with StoreLock(config.database_path, command="monitor once"):
        _run_once(config, all_sources=all_sources, no_digest=no_digest)


def _run_once(config: Config, *, all_sources: bool, no_digest: bool) -> None:
    from rich.progress import Progress

    from monitor.pipeline import Pipeline

    store = _open(config)
    pipeline = Pipeline(config, store)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("fetching sources", total=len(config.sources))
        report = asyncio.run(
            pipeline.run_cycle(force=all_sources, on_source_done=lambda _: progress.advance(task))
        )
    for source in report.sources:
        status = source.error or source.outcome
        print(f"{source.name}: {status}; {source.items} items, {source.new_articles} new")
    print(
        f"{report.articles_stored} articles stored, {report.duplicates_merged} duplicates merged, "
        f"{sum(report.hits.values())} hits"
    )
    if not no_digest:
        from monitor.digest import build_digest, deliver_pending

        for group in config.digests:
            build_digest(store, config, group)
        for result in deliver_pending(store, config):
            print(f"digest {result.group_name}: {result.state} ({result.message_id})")


@app.command()
@friendly_errors
def run(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log lines as 'text' or 'json'.")
    ] = "text",
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: config)."),
    ] = None,
    tick: Annotated[
        float, typer.Option("--tick", min=1, help="Seconds between checks for due work.")
    ] = 30.0,
) -> None:
    """Run the daemon: fetch each source on its interval and send digests on their cron.

    One daemon per store (a lock beside the database). SIGTERM/SIGINT stop it after
    the current write; SIGHUP reloads the config (a bad one is reported and ignored).
    """
    from monitor.scheduler import run_daemon

    config = load_config(config_dir, database=str(db) if db else None)
    run_daemon(
        config, config_dir=config_dir, log_format=log_format, log_level=log_level, tick_seconds=tick
    )


@app.command()
@friendly_errors
def demo(
    db: DbOpt = None,
    keep: Annotated[
        Path | None, typer.Option("--out", help="Directory for the received .eml (default: temp).")
    ] = None,
) -> None:
    """Run the whole pipeline offline on a local fixture site and a local SMTP server."""
    from monitor.demo import run_demo

    raise typer.Exit(run_demo(db=db, out_dir=keep))


@app.command()
@friendly_errors
def sources(config_dir: ConfigOpt = None, db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """List sources with their health: ok, failing (why), or silent (no new item for long)."""
    from monitor.fetch_health import source_health

    config = _load(config_dir, db)
    store = _open(config)
    store.sync_sources(config.sources)
    intervals = {s.name: config.source_interval(s).total_seconds() for s in config.sources}
    print_rows(
        [health.row() for health in source_health(store, intervals=intervals)],
        _format(fmt),
        title="Sources",
        columns=None
        if fmt != "table"
        else [
            "name",
            "kind",
            "status",
            "last_success_at",
            "last_error",
            "consecutive_failures",
            "items_seen",
            "silent",
            "next_fetch_at",
        ],
    )


@app.command()
@friendly_errors
def commitments(config_dir: ConfigOpt = None, db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """List tracked commitments with their hit counts."""
    from monitor.match import compile_matcher

    config = _load(config_dir, db)
    store = _open(config)
    matcher = compile_matcher(config.commitments, config.aliases)
    store.sync_commitments(config.commitments, dict(matcher.query_versions))
    print_rows(reports.commitments(store), _format(fmt), title="Commitments")


@app.command()
@friendly_errors
def hits(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    commitment: Annotated[str | None, typer.Option(help="Only this commitment id.")] = None,
    since: Annotated[str | None, typer.Option(help="Only hits matched since (ISO date).")] = None,
    source: Annotated[str | None, typer.Option(help="Only stories this source carried.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
) -> None:
    """List hits (one per story and commitment), newest first."""
    config = _load(config_dir, db)
    store = _open(config)
    rows = reports.hits(store, commitment=commitment, since=since, source=source, limit=limit)
    print_rows(rows, _format(fmt), title="Hits")


@app.command()
@friendly_errors
def stories(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 30,
) -> None:
    """List recent stories (one per piece of news) with how many sources carried them."""
    config = _load(config_dir, db)
    store = _open(config)
    print_rows(reports.stories(store, limit=limit), _format(fmt), title="Stories")


@app.command()
@friendly_errors
def search(
    query: Annotated[str, typer.Argument(help='FTS5 words or "phrases".')],
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 20,
) -> None:
    """Full-text search over stored articles."""
    config = _load(config_dir, db)
    store = _open(config)
    print_rows(reports.search(store, query, limit=limit), _format(fmt), title="Search")


@app.command()
@friendly_errors
def digest(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    group: Annotated[str | None, typer.Option(help="Digest group (default: all).")] = None,
    preview: Annotated[
        Path | None, typer.Option("--preview", help="Write the HTML here; send nothing.")
    ] = None,
    preview_text: Annotated[
        Path | None, typer.Option("--preview-text", help="Write the plain text here; send nothing.")
    ] = None,
) -> None:
    """Build and send digests now, or preview them without sending."""
    from monitor.digest import build_digest, deliver_pending, render_preview

    config = _load(config_dir, db)
    store = _open(config)
    groups = [g for g in config.digests if group in (None, g.name)]
    if group and not groups:
        raise ConfigError(f"no digest group named {group!r}", key="digest.name")
    if not groups:
        raise ConfigError("no digest groups are configured; add a [[digest]] to digests.toml")
    if preview or preview_text:
        if len(groups) > 1:
            names = ", ".join(g.name for g in groups)
            raise ConfigError(f"a preview shows one group; pass --group (one of {names})")
        html, text = render_preview(store, config, groups[0])
        if preview:
            preview.write_text(html, encoding="utf-8")
            print(f"HTML preview of {groups[0].name} written to {preview}")
        if preview_text:
            preview_text.write_text(text, encoding="utf-8")
            print(f"text preview of {groups[0].name} written to {preview_text}")
        return
    for g in groups:
        if build_digest(store, config, g) is None:
            print(f"digest {g.name}: nothing new, nothing to send")
    where = (
        f"via {config.smtp.host}:{config.smtp.port}"
        if config.smtp.host
        else f"into {config.outbox_path}"
    )
    results = deliver_pending(store, config)
    for result in results:
        print(
            f"digest {result.group_name} #{result.digest_id}: {result.state}, "
            f"{result.recipients_sent} recipient(s) {where} ({result.message_id})"
        )
        if result.error:
            print(f"  {result.error}")
    if any(r.state != "sent" for r in results):
        raise typer.Exit(1)  # deferred ones are retried by the daemon or the next run


@app.command("test-query")
@friendly_errors
def test_query_command(
    query: Annotated[str | None, typer.Argument(help="A query to try (see README).")] = None,
    commitment: Annotated[
        str | None, typer.Option("--commitment", help="Try this commitment's configured query.")
    ] = None,
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    limit: Annotated[int, typer.Option(help="At most this many stories.")] = 20,
) -> None:
    """Run a query over the stored stories and show what it catches; nothing is saved."""
    from rich.progress import Progress

    from monitor import quality
    from monitor.match import compile_query

    config = _load(config_dir, db)
    if (query is None) == (commitment is None):
        raise ConfigError("give a QUERY or --commitment ID (one of them)")
    if commitment is not None:
        spec = next((c for c in config.commitments if c.id == commitment), None)
        if spec is None:
            raise ConfigError(f"unknown commitment {commitment!r}", key="commitment.id")
        query = spec.query
    assert query is not None
    compiled = compile_query(query, config.aliases, commitment_id=commitment)
    store = _open(config)
    console.print(f"query read as: {compiled.explain()}", highlight=False, markup=False)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("matching stories", total=quality.story_count(store))
        found = quality.test_query(
            store, compiled, limit=limit, progress=lambda n: progress.advance(task, n)
        )
    rows = [quality.hit_as_row(story, hit) for story, hit in found]
    print_rows(
        rows,
        _format(fmt),
        title=f"{len(rows)} matching stories",
        columns=None if fmt != "table" else ["story_id", "score", "title", "evidence"],
    )


@app.command()
@friendly_errors
def rematch(
    commitment: Annotated[
        str | None, typer.Option("--commitment", help="Only this commitment.")
    ] = None,
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Re-run matching over stored stories after queries changed (hits updated in place)."""
    from rich.progress import Progress

    from monitor import quality
    from monitor.match import compile_matcher

    config = _load(config_dir, db)
    store = _open(config)
    matcher = compile_matcher(config.commitments, config.aliases)
    store.sync_commitments(config.commitments, dict(matcher.query_versions))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("re-matching stories", total=quality.story_count(store))
        result = quality.rematch(
            store, matcher, commitment_id=commitment, progress=lambda n: progress.advance(task, n)
        )
    print(
        f"{result.stories} stories: {result.added} hits added, {result.updated} updated, "
        f"{result.removed} removed, {result.kept_sent} kept because a digest carried them"
    )


@app.command()
@friendly_errors
def label(
    args: Annotated[
        list[str],
        typer.Argument(help="HIT_ID JUDGEMENT, or JUDGEMENT with --article/--commitment."),
    ],
    article: Annotated[
        int | None, typer.Option("--article", help="Label an article the matcher missed.")
    ] = None,
    commitment: Annotated[
        str | None, typer.Option("--commitment", help="With --article: the commitment.")
    ] = None,
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Record whether a hit is relevant: `monitor label 12 irrelevant` (feeds `monitor quality`).

    For an article the matcher missed: `monitor label relevant --article 40 --commitment PO-1.13`.
    """
    from monitor import quality

    hit_id: int | None = None
    if article is None:
        if len(args) != 2 or not args[0].isdigit():
            raise ConfigError("usage: monitor label HIT_ID relevant|irrelevant")
        hit_id, judgement = int(args[0]), args[1]
    else:
        if len(args) != 1:
            raise ConfigError(
                "usage: monitor label relevant|irrelevant --article ID --commitment ID"
            )
        judgement = args[0]
    config = _load(config_dir, db)
    store = _open(config)
    saved = quality.label(
        store, judgement, hit_id=hit_id, article_id=article, commitment_id=commitment
    )
    print(
        f"labelled article {saved['article_id']} {saved['judgement']} for {saved['commitment_id']}"
    )


@app.command("quality")
@friendly_errors
def quality_command(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    by_score: Annotated[
        bool,
        typer.Option(
            "--by-score",
            help="Instead: precision and recall of your labelled hits at each digest min_score.",
        ),
    ] = False,
) -> None:
    """Precision per commitment from your labels (recall where misses were labelled)."""
    from monitor import quality

    config = _load(config_dir, db)
    store = _open(config)
    if by_score:
        rows = quality.quality_by_score(store)
        print_rows(rows, _format(fmt), title="Your labels at each digest min_score")
        return
    print_rows(quality.quality(store), _format(fmt), title="Quality from labels")


@app.command()
@friendly_errors
def status(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: text or json.")] = "text",
) -> None:
    """Is the daemon running? Source health, next runs, last digests, store size."""
    from monitor import ops

    config = load_config(config_dir, database=str(db) if db else None)
    result = ops.status(config)
    print(ops.status_json(result) if fmt == "json" else ops.format_status(result))


@app.command()
@friendly_errors
def export(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    what: Annotated[str, typer.Argument(help="hits or articles.")] = "hits",
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    since: Annotated[str | None, typer.Option(help="From this date (ISO, inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date (ISO, exclusive).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
) -> None:
    """Export hits (by match time) or articles (by fetch time) as CSV or JSON."""
    from monitor import ops

    config = _load(config_dir, db)
    store = _open(config)
    if out is None:
        ops.export(store, what, sys.stdout, fmt=fmt, since=since, until=until)  # type: ignore[arg-type]
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        count = ops.export(store, what, handle, fmt=fmt, since=since, until=until)  # type: ignore[arg-type]
    console.print(f"{count} {what} written to {out}", highlight=False, markup=False)


@app.command()
@friendly_errors
def backup(
    path: Annotated[Path, typer.Argument(help="Backup file, or a directory for a dated one.")],
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Copy the store with SQLite's online backup (safe while the daemon runs)."""
    from monitor import ops

    config = load_config(config_dir, database=str(db) if db else None)
    written = ops.backup(config.database_path, path, overwrite=force)
    print(f"backup written to {written} ({written.stat().st_size} bytes)")


@app.command()
@friendly_errors
def serve(
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
) -> None:
    """Browse the store read-only in Datasette (needs: pip install 'ipr-monitor[web]')."""
    from monitor.serve import serve as run_server

    config = load_config(config_dir, database=str(db) if db else None)
    run_server(config.database_path, host=host, port=port)


@app.command("add-source")
@friendly_errors
def add_source_command(
    url: Annotated[str, typer.Argument(help="A site, page, feed or sitemap URL.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name (default: the feed's title).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Find the feed of a site (<link rel=alternate>, common paths) and add it to sources.toml."""
    from monitor.opml import add_source

    config = _load(config_dir, db)
    added = asyncio.run(add_source(config, url, name=name, tags=tag or []))
    typer.echo(
        f"added {added.name!r}: {added.kind} {added.url}"
        f" ({added.items} items now; found via {added.how})"
    )


@app.command("import-opml")
@friendly_errors
def import_opml_command(
    file: Annotated[Path, typer.Argument(help="OPML file exported by a feed reader.")],
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add the feeds of an OPML file to sources.toml (folders become tags; known URLs skipped)."""
    from monitor.opml import append_sources, parse_opml, writable_sources_file

    config = _load(config_dir, db)
    sources_file = writable_sources_file(config)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(file)) from None
    added, skipped = append_sources(sources_file, config.sources, parse_opml(data))
    for source in added:
        typer.echo(f"added   {source.name} ({source.kind}) {source.url}")
    for source in skipped:
        typer.echo(f"skipped {source.name}: {source.url} is configured already")
    typer.echo(f"{len(added)} added, {len(skipped)} skipped, to {sources_file}")


@app.command("export-opml")
@friendly_errors
def export_opml_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    config_dir: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Write every source as OPML 2.0, for feed readers (listing pages as type="link")."""
    from monitor.opml import export_opml

    config = _load(config_dir, db)
    document = export_opml(config.sources)
    if output is None:
        sys.stdout.buffer.write(document + b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(document + b"\n")
        typer.echo(f"{len(config.sources)} sources written to {output}", err=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
