"""``monitor serve``: Datasette over the store, read-only, with canned queries.

Datasette is an optional extra (``pip install 'ipr-monitor[web]'``) because the
daemon does not need it. The store is opened the way Datasette opens a database
that may change underneath it: every query connection is ``mode=ro``, so the
daemon can keep writing while people browse, and nothing typed into the SQL box can
change the store. The canned queries (``datasette_metadata.json``) answer the
questions the CLI answers: latest hit per commitment, silent sources, stories by
source count, and full-text search over articles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError

METADATA_FILE = Path(__file__).resolve().parent / "datasette_metadata.json"
INSTALL_HINT = "pip install 'ipr-monitor[web]'"


def metadata_for(database: Path) -> dict[str, Any]:
    """The metadata file with its tables and queries placed under this database's name."""
    template = json.loads(METADATA_FILE.read_text(encoding="utf-8"))
    name = database.stem
    return {
        "title": template["title"],
        "description": template["description"],
        "databases": {name: {"tables": template["tables"], "queries": template["queries"]}},
    }


def _datasette_class() -> Any:
    try:
        from datasette.app import Datasette
    except ImportError:
        raise MonitorError(
            f"'monitor serve' needs Datasette, which is not installed; run: {INSTALL_HINT}"
        ) from None
    return Datasette


def build_datasette(database: Path) -> Any:
    """A configured ``datasette.app.Datasette`` over the store (not yet listening)."""
    Datasette = _datasette_class()
    if not database.exists():
        raise MonitorError(f"no store at {database} yet; run 'monitor once' or 'monitor run' first")
    return Datasette(
        files=[str(database)],
        metadata=metadata_for(database),
        settings={"sql_time_limit_ms": 3000, "max_returned_rows": 1000},
    )


def serve(database: Path, *, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Serve until interrupted. Binds to loopback by default: the store is not public data."""
    datasette = build_datasette(database)
    import uvicorn

    print(f"Datasette on http://{host}:{port}/ over {database} (read-only); Ctrl-C stops it")
    uvicorn.run(datasette.app(), host=host, port=port, log_level="warning")
