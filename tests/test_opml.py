"""OPML import/export and appending sources to sources.toml without losing the user's text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import SourceConfig, default_config_dir, load_config
from monitor.errors import ConfigError, PermanentFetchError
from monitor.opml import (
    OpmlSource,
    add_source,
    append_sources,
    export_opml,
    parse_opml,
    source_block,
    writable_sources_file,
)
from monitor.sitehost import SiteHost

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "feeds" / "sources.opml"
SITE = "http://news.example.org"


def fixture_opml() -> bytes:
    return FIXTURE.read_bytes().replace(b"{{SITE}}", SITE.encode())


def test_import_reads_folders_as_tags_and_skips_duplicates() -> None:
    sources = parse_opml(fixture_opml())
    assert [(s.name, s.url, s.tags) for s in sources] == [
        ("IP News", f"{SITE}/feeds/rss2.xml", ["policy"]),
        ("Atom fixture", f"{SITE}/feeds/atom.xml", ["policy"]),
        ("Old feed", f"{SITE}/feeds/rss091.xml", ["policy", "legacy"]),
    ]
    assert sources[0].html_url == f"{SITE}/feeds/"


def test_export_then_import_round_trip() -> None:
    configured = [
        SourceConfig(name="Feed A", url=f"{SITE}/a.xml", tags=["cn", "policy"]),
        SourceConfig(name="Map", kind="sitemap", url=f"{SITE}/sitemap.xml"),
        SourceConfig(name="Listing", kind="html", url=f"{SITE}/news/", selectors={"link": "a"}),
        SourceConfig(name="Ampersand & <angle>", url=f"{SITE}/b.xml?x=1&y=2"),
    ]
    document = export_opml(configured)
    assert document.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    back = parse_opml(document)
    assert [(s.name, s.url, s.kind, s.tags) for s in back] == [
        ("Feed A", f"{SITE}/a.xml", "feed", ["cn", "policy"]),
        ("Map", f"{SITE}/sitemap.xml", "sitemap", []),
        ("Ampersand & <angle>", f"{SITE}/b.xml?x=1&y=2", "feed", []),
    ]  # the HTML source needs selectors, which OPML cannot carry


def test_entity_bombs_and_non_opml_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<opml version="2.0"><body><outline text="&lol2;" xmlUrl="http://x/"/></body></opml>'
    )
    with pytest.raises(ConfigError, match="not a readable OPML file"):
        parse_opml(bomb)
    with pytest.raises(ConfigError, match="not an OPML file"):
        parse_opml(b"<rss version='2.0'/>")
    with pytest.raises(ConfigError, match="not a readable OPML file"):
        parse_opml(b"<opml><body>")


def test_append_keeps_comments_and_makes_names_unique(tmp_path: Path) -> None:
    sources_file = tmp_path / "sources.toml"
    original = (
        "# my own notes, keep them\n"
        '[[source]]\nname = "IP News"\nurl = "http://other.example.org/feed.xml"\n'
    )
    sources_file.write_text(original, encoding="utf-8")
    existing = load_config(tmp_path).sources
    incoming = [
        *parse_opml(fixture_opml()),
        OpmlSource(name="Dup", url="http://other.example.org/feed.xml"),
        OpmlSource(name='Quote " and \\ backslash', url=f"{SITE}/q.xml", tags=["zh 中文"]),
    ]
    added, skipped = append_sources(sources_file, existing, incoming)
    assert [s.name for s in added] == [
        "IP News (2)",
        "Atom fixture",
        "Old feed",
        'Quote " and \\ backslash',
    ]
    assert [s.name for s in skipped] == ["Dup"]
    text = sources_file.read_text(encoding="utf-8")
    assert text.startswith(original)
    loaded = load_config(tmp_path).sources
    assert [s.name for s in loaded][-1] == 'Quote " and \\ backslash'
    assert loaded[-1].tags == ["zh 中文"]
    assert loaded[3].tags == ["policy", "legacy"]
    again, skipped_again = append_sources(sources_file, loaded, incoming)
    assert again == [] and len(skipped_again) == len(incoming)
    assert sources_file.read_text(encoding="utf-8") == text


def test_source_block_validates() -> None:
    with pytest.raises(ValueError, match="not an http"):
        source_block("x", "ftp://example.org/feed")
    assert source_block("A", f"{SITE}/a.xml", comment="found via <link>").startswith(
        "# found via <link>\n[[source]]\n"
    )


# -- add-source against the fixture server ---------------------------------------------------


@pytest.fixture
def site() -> Iterator[SiteHost]:
    with SiteHost(FIXTURE.parent.parent) as host:
        yield host


def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "monitor.toml").write_text(
        "[fetch]\nallow_private_networks = true\nmin_delay = 0\nconnect_timeout = 2\n"
        "read_timeout = 2\ntotal_timeout = 5\n",
        encoding="utf-8",
    )
    (tmp_path / "sources.toml").write_text("# my sources\n", encoding="utf-8")
    return tmp_path


def test_add_source_finds_the_feed_and_appends_it(site: SiteHost, tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    added = asyncio.run(
        add_source(load_config(directory), site.url("feeds/homepage.html"), tags=["cn"])
    )
    assert (added.name, added.url, added.kind, added.how) == (
        "IP News (fixture)",
        site.url("feeds/rss2.xml"),
        "feed",
        "<link rel=alternate>",
    )
    sources = load_config(directory).sources
    assert [(s.name, s.url, s.tags) for s in sources] == [
        ("IP News (fixture)", site.url("feeds/rss2.xml"), ["cn"])
    ]
    text = (directory / "sources.toml").read_text(encoding="utf-8")
    assert text.startswith("# my sources\n")
    assert "found via <link rel=alternate>" in text
    with pytest.raises(ConfigError, match="configured already, as 'IP News \\(fixture\\)'"):
        asyncio.run(add_source(load_config(directory), site.url("feeds/rss2.xml")))


def test_add_source_sitemap_and_name(site: SiteHost, tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    added = asyncio.run(
        add_source(load_config(directory), site.url("feeds/news-sitemap.xml"), name="Daily")
    )
    assert (added.name, added.kind) == ("Daily", "sitemap")
    assert load_config(directory).sources[0].kind == "sitemap"


def test_add_source_without_a_feed_gives_advice(site: SiteHost, tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    with pytest.raises(PermanentFetchError, match="CSS selectors"):
        asyncio.run(add_source(load_config(directory), site.url("feeds/articles/one.html")))
    assert (directory / "sources.toml").read_text(encoding="utf-8") == "# my sources\n"


def test_the_shipped_config_is_not_edited() -> None:
    with pytest.raises(ConfigError, match="shipped configuration is not edited"):
        writable_sources_file(load_config(default_config_dir()))


# -- the commands ---------------------------------------------------------------------------------


def test_cli_add_import_export_and_sources(site: SiteHost, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    directory = config_dir(tmp_path)
    runner = CliRunner()
    common = ["--config", str(directory), "--db", str(tmp_path / "monitor.db")]

    added = runner.invoke(app, ["add-source", site.url("feeds/homepage.html"), *common])
    assert added.exit_code == 0, added.output
    assert "added 'IP News (fixture)': feed" in added.output

    opml_file = tmp_path / "in.opml"
    opml_file.write_bytes((FIXTURE.read_bytes()).replace(b"{{SITE}}", site.base_url.encode()))
    imported = runner.invoke(app, ["import-opml", str(opml_file), *common])
    assert imported.exit_code == 0, imported.output
    assert "2 added, 1 skipped" in imported.output  # rss2.xml was added by add-source

    exported = runner.invoke(app, ["export-opml", *common])
    assert exported.exit_code == 0, exported.output
    assert [s.name for s in parse_opml(exported.stdout_bytes)] == [
        "IP News (fixture)",
        "Atom fixture",
        "Old feed",
    ]

    listed = runner.invoke(app, ["sources", "--format", "json", *common])
    assert listed.exit_code == 0, listed.output
    assert '"status": "new: not fetched yet"' in listed.output

    missing = runner.invoke(app, ["add-source", site.url("feeds/articles/one.html"), *common])
    assert missing.exit_code == 1 and "CSS selectors" in missing.output
