"""Print rows for people (a rich table) or programs (JSON, CSV)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

Format = Literal["table", "json", "csv"]


def print_rows(
    rows: Sequence[dict[str, Any]],
    fmt: Format = "table",
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Write rows to stdout in the chosen format; ``columns`` picks and orders table columns."""
    if fmt == "json":
        json.dump(list(rows), sys.stdout, ensure_ascii=False, indent=2, default=str)
        sys.stdout.write("\n")
        return
    keys = list(columns or (rows[0].keys() if rows else []))
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    console = Console()
    if not rows:
        console.print(f"[dim]{title + ': ' if title else ''}nothing to show[/dim]")
        return
    table = Table(title=title, show_lines=False)
    for key in keys:
        table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(k) is None else str(row.get(k)) for k in keys))
    console.print(table)
