"""OPML import/export and appending sources to sources.toml without losing the user's text."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import SourceConfig, load_config
from monitor.errors import ConfigError
from monitor.opml import OpmlSource, append_sources, export_opml, parse_opml, source_block

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
