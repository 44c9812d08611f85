"""Docs are part of the feature: fail when a command, config key or table is undocumented."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from monitor.cli import app
from monitor.config import config_reference
from monitor.docgen import END, START, config_reference_markdown
from monitor.store import Store, table_names

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_every_cli_command_is_documented() -> None:
    section = _section("Command line")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"`monitor {name}" not in section]
    assert not missing, f"undocumented commands: {missing}"


def test_config_reference_is_current() -> None:
    start, end = README.index(START), README.index(END)
    assert README[start + len(START) : end].strip() == config_reference_markdown().strip(), (
        "README's configuration reference is stale: run `python -m monitor.docgen README.md`"
    )
    for section, keys in config_reference().items():
        for key in keys:
            assert f"`{key}`" in README, f"config key {section}.{key} is undocumented"


def test_every_table_view_and_column_is_documented(tmp_path: Path) -> None:
    section = _section("The store")
    store = Store.open(tmp_path / "docs.db")
    missing = []
    for name in table_names(store):
        if f"**`{name}`**" not in section:
            missing.append(name)
            continue
        block = section.split(f"**`{name}`**", 1)[1].split("\n\n", 1)[0]
        for row in store.query(f"PRAGMA table_info({name})"):
            if f"`{row['name']}`" not in block:
                missing.append(f"{name}.{row['name']}")
    assert not missing, f"undocumented in README's store section: {missing}"


def test_quick_start_lines_are_exact() -> None:
    section = _section("Quick start")
    assert "pip install -e . && monitor demo" in section
    assert 'pip install -e ".[dev]" && pytest' in section
