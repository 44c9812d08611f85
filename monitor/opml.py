"""Sources in and out: add-source, OPML import/export, appending ``[[source]]`` blocks.

OPML is how feed readers trade subscription lists, so a user can bring theirs from
Miniflux or FreshRSS in one command and take ours elsewhere. Folders become tags
(nested folders give one tag each). Listing pages and sitemaps have no OPML form
that readers understand; they are exported as ``type="link"`` outlines carrying a
``monitorKind`` attribute, which readers ignore and our import understands for
sitemaps (an HTML source also needs selectors, which OPML cannot carry).

sources.toml is edited by appending text, never by rewriting it, so the user's
comments and layout survive an import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeElementTree

from monitor.config import Config, SourceConfig, default_config_dir
from monitor.errors import ConfigError

__all__ = [
    "AddedSource",
    "OpmlSource",
    "add_source",
    "append_sources",
    "export_opml",
    "parse_opml",
    "source_block",
]


@dataclass(frozen=True)
class OpmlSource:
    """One subscription read from OPML."""

    name: str
    url: str
    kind: str = "feed"
    html_url: str | None = None
    tags: list[str] = field(default_factory=list)


def parse_opml(data: bytes | str) -> list[OpmlSource]:
    """Subscriptions in an OPML document, in document order, each URL once.

    Raises ``ConfigError`` when the document is not OPML. Parsed with defusedxml, so
    an entity bomb in a file from the internet is refused rather than expanded.
    """
    try:
        root = SafeElementTree.fromstring(data)
    except Exception as exc:  # defusedxml raises several types; all mean "not usable"
        raise ConfigError(f"not a readable OPML file: {exc}") from exc
    if root.tag != "opml":
        raise ConfigError(f"not an OPML file: the root element is <{root.tag}>, not <opml>")
    body = root.find("body")
    if body is None:
        return []
    found: list[OpmlSource] = []
    seen_urls: set[str] = set()

    def walk(node: Element, folders: list[str]) -> None:
        for outline in node.findall("outline"):
            label = (outline.get("text") or outline.get("title") or "").strip()
            url = (outline.get("xmlUrl") or "").strip()
            kind = "feed"
            if not url and outline.get("monitorKind") == "sitemap":
                url, kind = (outline.get("url") or "").strip(), "sitemap"
            if url:
                if url in seen_urls or not url.lower().startswith(("http://", "https://")):
                    continue
                seen_urls.add(url)
                categories = [
                    c.strip().strip("/")
                    for c in (outline.get("category") or "").split(",")
                    if c.strip().strip("/")
                ]
                tags = list(dict.fromkeys([*folders, *categories]))
                found.append(
                    OpmlSource(
                        name=label or (urlsplit(url).hostname or url),
                        url=url,
                        kind=kind,
                        html_url=outline.get("htmlUrl") or None,
                        tags=tags,
                    )
                )
            elif len(outline):
                walk(outline, [*folders, label] if label else folders)

    walk(body, [])
    return found


def export_opml(sources: Iterable[SourceConfig], *, title: str = "ipr-monitor sources") -> bytes:
    """An OPML 2.0 document listing every source (feeds as ``type="rss"`` outlines)."""
    root = Element("opml", version="2.0")
    head = SubElement(root, "head")
    SubElement(head, "title").text = title
    body = SubElement(root, "body")
    for source in sources:
        attributes = {"text": source.name, "title": source.name}
        if source.kind == "feed":
            attributes.update(type="rss", xmlUrl=source.url)
        else:
            attributes.update(type="link", url=source.url, monitorKind=source.kind)
        if source.tags:
            attributes["category"] = ",".join(source.tags)
        SubElement(body, "outline", attributes)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode").encode()


def _toml_string(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def source_block(
    name: str,
    url: str,
    *,
    kind: str = "feed",
    tags: Iterable[str] = (),
    comment: str | None = None,
) -> str:
    """One ``[[source]]`` block of TOML text, validated as a SourceConfig first."""
    tags = list(tags)
    SourceConfig.model_validate({"name": name, "url": url, "kind": kind, "tags": tags})
    lines: list[str] = []
    if comment:
        lines.extend(f"# {line}" for line in comment.splitlines())
    lines += ["[[source]]", f"name = {_toml_string(name)}", f"kind = {_toml_string(kind)}"]
    lines.append(f"url = {_toml_string(url)}")
    if tags:
        lines.append("tags = [" + ", ".join(_toml_string(t) for t in tags) + "]")
    return "\n".join(lines) + "\n"


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... whichever is free."""
    candidate, number = name, 2
    while candidate in taken:
        candidate = f"{name} ({number})"
        number += 1
    return candidate


def append_sources(
    sources_file: Path,
    existing: Iterable[SourceConfig],
    new: Iterable[OpmlSource],
) -> tuple[list[OpmlSource], list[OpmlSource]]:
    """Append the sources whose URL is not configured yet; returns ``(added, skipped)``.

    Names are made unique against the existing ones. The file is created if needed and
    only ever appended to.
    """
    existing = list(existing)
    taken_names = {s.name for s in existing}
    taken_urls = {s.url for s in existing}
    added: list[OpmlSource] = []
    skipped: list[OpmlSource] = []
    blocks: list[str] = []
    for source in new:
        if source.url in taken_urls:
            skipped.append(source)
            continue
        name = unique_name(source.name, taken_names)
        taken_names.add(name)
        taken_urls.add(source.url)
        blocks.append(source_block(name, source.url, kind=source.kind, tags=source.tags))
        added.append(
            OpmlSource(
                name=name,
                url=source.url,
                kind=source.kind,
                html_url=source.html_url,
                tags=source.tags,
            )
        )
    if blocks:
        text = sources_file.read_text(encoding="utf-8") if sources_file.exists() else ""
        separator = (
            "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        )
        with sources_file.open("a", encoding="utf-8") as handle:
            handle.write(separator + "\n".join(blocks))
    return added, skipped


@dataclass(frozen=True)
class AddedSource:
    """What ``monitor add-source`` wrote, and how it found it."""

    name: str
    url: str
    kind: str
    title: str | None
    items: int
    how: str


def writable_sources_file(config: Config) -> Path:
    """config/sources.toml of a user's config dir; the shipped defaults are not edited."""
    try:
        shipped = default_config_dir().resolve() == config.directory.resolve()
    except ConfigError:
        shipped = False
    if shipped:
        raise ConfigError(
            "the shipped configuration is not edited; copy it with your changes to a"
            " directory of your own and pass --config DIR (or set MONITOR_CONFIG)"
        )
    return config.directory / "sources.toml"


async def add_source(
    config: Config,
    url: str,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
) -> AddedSource:
    """Find the feed or sitemap behind ``url`` and append it to the config's sources.toml.

    Raises ``ConfigError`` when the feed is configured already, and ``FetchError`` (with
    advice) when nothing usable is found.
    """
    from monitor.discover import find_source
    from monitor.fetch import Fetcher

    sources_file = writable_sources_file(config)
    async with Fetcher(config.fetch) as fetcher:
        found = await find_source(url, fetcher.get)
    for existing in config.sources:
        if existing.url in (found.url, url):
            raise ConfigError(
                f"{found.url} is configured already, as {existing.name!r}",
                file=str(sources_file),
            )
    taken = {s.name for s in config.sources}
    chosen = unique_name(name or found.title or urlsplit(found.url).hostname or found.url, taken)
    block = source_block(
        chosen,
        found.url,
        kind=found.kind,
        tags=tags,
        comment=f"added by `monitor add-source {url}` (found via {found.how})",
    )
    text = sources_file.read_text(encoding="utf-8") if sources_file.exists() else ""
    separator = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    with sources_file.open("a", encoding="utf-8") as handle:
        handle.write(separator + block)
    return AddedSource(chosen, found.url, found.kind, found.title, found.items, found.how)
