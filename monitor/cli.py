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
DbOpt = Annotated[
    Path | None, typer.Option("--db", envvar="MONITOR_DB", help="SQLite store path.")
]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Output: table, json or csv.")
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn our errors into one line on stderr and an exit code (2 for config, 1 otherwise)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            console.print(f"[bold red]config error:[/bold red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        except MonitorError as exc:
            console.print(f"[bold red]error:[/bold red] {exc}", markup=True, highlight=False)
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
    from rich.progress import Progress

    from monitor.pipeline import Pipeline

    config = _load(config_dir, db)
    store = _open(config)
    pipeline = Pipeline(config, store)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("fetching sources", total=len(config.sources))
        report = asyncio.run(
            pipeline.run_cycle(
                force=all_sources, on_source_done=lambda _: progress.advance(task)
            )
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
) -> None:
    """Run the daemon: fetch each source on its interval and send digests on their cron."""
    from monitor.scheduler import run_daemon

    config = load_config(config_dir, database=str(db) if db else None)
    run_daemon(config, config_dir=config_dir, log_format=log_format)


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
    """List sources with their last fetch, errors and health."""
    config = _load(config_dir, db)
    store = _open(config)
    store.sync_sources(config.sources)
    print_rows(
        reports.sources(store),
        _format(fmt),
        title="Sources",
        columns=None
        if fmt != "table"
        else ["name", "kind", "enabled", "last_success_at", "last_error", "consecutive_failures",
              "items_seen", "next_fetch_at"],
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
def search(
    query: Annotated[str, typer.Argument(help="FTS5 words or \"phrases\".")],
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
    if preview or preview_text:
        html, text = render_preview(store, config, groups[0])
        if preview:
            preview.write_text(html, encoding="utf-8")
            print(f"HTML preview written to {preview}")
        if preview_text:
            preview_text.write_text(text, encoding="utf-8")
            print(f"text preview written to {preview_text}")
        return
    for g in groups:
        build_digest(store, config, g)
    for result in deliver_pending(store, config):
        print(f"digest {result.group_name}: {result.state} ({result.message_id})")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
