"""Regenerate README's configuration reference from the config models.

Run ``python -m monitor.docgen`` after adding a config key; ``tests/test_docs.py``
fails when README and the models disagree, so the reference cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from monitor.config import config_reference

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
_FILES = {
    "general": "monitor.toml",
    "fetch": "monitor.toml",
    "smtp": "monitor.toml",
    "dedupe": "monitor.toml",
    "maintenance": "monitor.toml",
    "source": "sources.toml",
    "source.selectors": "sources.toml",
    "commitment": "commitments.toml",
    "digest": "digests.toml",
}


def _heading(section: str) -> str:
    if section in {"source", "commitment", "digest"}:
        return f"[[{section}]]"
    if "." in section:
        return section
    return f"[{section}]"


def _default(value: object) -> str:
    if value is PydanticUndefined:
        return "required"
    return f"`{value!r}`" if not isinstance(value, list) else f"`{value}`"


def config_reference_markdown() -> str:
    """The reference as Markdown tables, one per section."""
    parts = []
    for section, keys in config_reference().items():
        parts.append(
            f"**`{_heading(section)}`** in `{_FILES.get(section, '?')}`\n\n"
            "| key | default | meaning |\n|---|---|---|"
        )
        rows = [f"| `{key}` | {_default(d)} | {desc} |" for key, (desc, d) in keys.items()]
        parts[-1] += "\n" + "\n".join(rows)
    return "\n\n".join(parts)


def update_readme(path: Path) -> bool:
    """Rewrite the reference between the markers; returns True when the file changed."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    new = f"{head}{START}\n{config_reference_markdown()}\n{END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("updated" if update_readme(target) else "unchanged", target)
