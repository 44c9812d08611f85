"""Configuration: one validated, typed table per file in the config directory.

A config directory holds up to four TOML files; each is optional and falls back to
the defaults documented on the models below::

    monitor.toml      [general] [fetch] [smtp] [dedupe] [maintenance]
    sources.toml      [[source]] ...
    commitments.toml  [aliases] and [[commitment]] ...
    digests.toml      [[digest]] ...

Every error names the file, the key and what would be valid. Secrets (the SMTP
password) are read only from environment variables, never from files, and are
kept out of ``repr`` so they never reach a log.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.errors import ConfigError

CONFIG_FILES = ("monitor.toml", "sources.toml", "commitments.toml", "digests.toml")
ENV_CONFIG_DIR = "MONITOR_CONFIG"
ENV_DB = "MONITOR_DB"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 900, '15m', '2h' or '1d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write 900, '15m', '2h' or '1d'")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name like 'Europe/Paris'"
        ) from exc
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneralConfig(_Model):
    """``[general]`` in monitor.toml."""

    database: str = Field(
        "monitor.db", description="Path of the SQLite store (relative to the config dir)."
    )
    timezone: str = Field("UTC", description="Time zone for dates shown to people.")
    default_interval: float = Field(
        3600, description="Fetch interval of a source that sets none ('1h')."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    outbox_dir: str = Field(
        "outbox", description="Where digests go as .eml files when no SMTP host is set."
    )

    _interval = field_validator("default_interval", mode="before")(parse_duration)
    _tz = field_validator("timezone")(_check_timezone)


class FetchConfig(_Model):
    """``[fetch]`` in monitor.toml: how politely and how robustly we fetch."""

    user_agent: str = Field(
        "ipr-monitor/0.1 (+https://github.com/ipr-monitor/ipr-monitor)",
        description="User-Agent header; name the project and a contact URL.",
    )
    concurrency: int = Field(
        16, ge=1, le=1024, description="Requests in flight at once, all hosts."
    )
    per_host: int = Field(2, ge=1, le=64, description="Requests in flight at once to one host.")
    min_delay: float = Field(0.5, ge=0, description="Seconds between two requests to one host.")
    connect_timeout: float = Field(10, gt=0, description="Seconds to connect.")
    read_timeout: float = Field(20, gt=0, description="Seconds to wait for the next bytes.")
    total_timeout: float = Field(60, gt=0, description="Seconds for a whole request.")
    max_body_mb: float = Field(15, gt=0, description="Largest body accepted, after decompression.")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirect hops followed.")
    respect_robots: bool = Field(True, description="Honour robots.txt (sources can override).")
    robots_ttl: float = Field(86400, description="How long a robots.txt is cached ('1d').")
    allow_private_networks: bool = Field(
        False, description="Allow loopback/private addresses (needed for local test sites)."
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="Non-public networks allowed anyway, as CIDR ('10.1.2.0/24').",
    )
    max_backoff: float = Field(86400, description="Longest wait after repeated failures ('1d').")
    max_new_articles: int = Field(
        50, ge=1, description="New article pages fetched per source per run."
    )

    _durations = field_validator("robots_ttl", "max_backoff", mode="before")(parse_duration)

    @field_validator("allowed_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network like '10.1.2.0/24'") from exc
        return value


class SmtpConfig(_Model):
    """``[smtp]`` in monitor.toml. Without ``host``, digests are written to the outbox dir."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    host: str | None = Field(None, description="SMTP server; unset writes .eml files instead.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="Transport security."
    )
    username: str | None = Field(None, description="Login name, if the server needs one.")
    password_env: str = Field(
        "MONITOR_SMTP_PASSWORD", description="Environment variable holding the password."
    )
    sender: str = Field("ipr-monitor <monitor@localhost>", description="From address.")
    timeout: float = Field(30, gt=0, description="Seconds before an SMTP conversation gives up.")

    @property
    def password(self) -> str | None:
        """The password, read from the environment at the moment it is needed."""
        return os.environ.get(self.password_env) or None


class DedupeConfig(_Model):
    """``[dedupe]`` in monitor.toml."""

    official_domains: list[str] = Field(
        default_factory=lambda: [
            "gov.cn",
            "cnipa.gov.cn",
            "wipo.int",
            "ustr.gov",
            "europa.eu",
            "uspto.gov",
        ],
        description="Domains whose copy becomes a story's primary source.",
    )
    threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Near-duplicate when this share of the shorter body's word 5-grams "
        "is found in the longer one.",
    )
    window_days: int = Field(
        14,
        ge=0,
        description="Days back (UTC calendar days before an article's own) that a near "
        "copy's original is looked for; an older story is news again. The same URL or "
        "the same text joins its story at any age.",
    )


class MaintenanceConfig(_Model):
    """``[maintenance]`` in monitor.toml."""

    schedule: str = Field("30 3 * * *", description="Cron line of the daily maintenance job.")
    keep_fetch_log_days: int = Field(90, ge=1, description="Days of fetch log kept.")


class MonitorFile(_Model):
    """monitor.toml as a whole."""

    general: GeneralConfig = Field(default_factory=GeneralConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)


class Selectors(_Model):
    """CSS selectors for an HTML listing page."""

    link: str = Field(description="Selects the <a> elements of article links.")
    title: str | None = Field(None, description="Selects a title inside each link's item.")
    date: str | None = Field(None, description="Selects a date inside each link's item.")
    item: str | None = Field(None, description="Selects each item block (scope for title/date).")


class SourceConfig(_Model):
    """One ``[[source]]`` in sources.toml."""

    name: str = Field(min_length=1, description="Unique name shown in digests and status.")
    kind: Literal["feed", "html", "sitemap"] = Field(
        "feed", description="feed (RSS/Atom), html (listing page with selectors) or sitemap."
    )
    url: str = Field(description="Feed, listing page or sitemap URL (http or https).")
    interval: float | None = Field(None, description="How often to fetch ('30m'); default general.")
    enabled: bool = Field(True, description="Set false to keep a source without fetching it.")
    selectors: Selectors | None = Field(None, description="Required for kind = 'html'.")
    article_selector: str | None = Field(
        None, description="CSS selector of the article body on this source's pages (optional)."
    )
    respect_robots: bool | None = Field(None, description="Override fetch.respect_robots.")
    max_new_articles: int | None = Field(None, ge=1, description="Override fetch.max_new_articles.")
    lastmod_days: float = Field(7, gt=0, description="Sitemaps: only URLs modified this recently.")
    tags: list[str] = Field(default_factory=list, description="Free labels for your own use.")

    _interval = field_validator("interval", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
            raise ValueError(f"{value!r} is not an http(s) URL")
        if "@" in re.split(r"[/?#]", value.split("://", 1)[1], maxsplit=1)[0]:
            # The URL is not echoed: it holds a password, which would reach logs and the store.
            raise ValueError(
                "has a user name or password in it; secrets never go in config files,"
                " so feeds behind a login are not supported"
            )
        return value

    @model_validator(mode="after")
    def _selectors_for_html(self) -> SourceConfig:
        if self.kind == "html" and self.selectors is None:
            raise ValueError("kind = 'html' needs selectors = { link = 'CSS selector' }")
        return self


class SourcesFile(_Model):
    source: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        _require_unique((s.name for s in self.source), "source name")
        return self


class CommitmentConfig(_Model):
    """One ``[[commitment]]`` in commitments.toml."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Stable id, e.g. PO-1.13.")
    actor: str = Field(description="Who committed (e.g. 'China (CNIPA)').")
    title: str = Field(description="One line for people.")
    description: str = Field("", description="What was promised, in plain words.")
    source: str = Field("", description="Source document.")
    article: str = Field("", description="Article or section in the source document.")
    tags: list[str] = Field(default_factory=list, description="Labels digest groups select by.")
    keywords: list[str] = Field(default_factory=list, description="Terms for people and baselines.")
    query: str = Field(min_length=1, description="Match query (see README, 'Query language').")
    exclude: str | None = Field(None, description="Articles matching this query are dropped.")
    min_score: float = Field(1.0, ge=0, description="Hits scoring below this are not kept.")


class CommitmentsFile(_Model):
    aliases: dict[str, str] = Field(default_factory=dict)
    commitment: list[CommitmentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> CommitmentsFile:
        _require_unique((c.id for c in self.commitment), "commitment id")
        return self


class DigestConfig(_Model):
    """One ``[[digest]]`` group in digests.toml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Group id (lowercase, dashes).")
    recipients: list[str] = Field(min_length=1, description="Email addresses.")
    commitments: list[str] = Field(default_factory=list, description="Commitment ids ([] = all).")
    tags: list[str] = Field(default_factory=list, description="Commitment tags (OR with ids).")
    schedule: str = Field("0 7 * * *", description="Cron line (minute hour day month weekday).")
    timezone: str = Field("UTC", description="Time zone of the schedule.")
    min_score: float = Field(
        0,
        ge=0,
        description="Hits below this score are left out: 2.0 drops most passing mentions, "
        "and about two reports in five (docs/query-language.md, score).",
    )
    send_when_empty: bool = Field(False, description="Send even when nothing is new.")

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.match(r"^[^@\s<>]+@[^@\s<>]+$", address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a cron line like '0 7 * * 1-5': {exc}") from exc
        return value


class DigestsFile(_Model):
    digest: list[DigestConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DigestsFile:
        _require_unique((d.name for d in self.digest), "digest name")
        return self


class Config(BaseModel):
    """The whole configuration, as loaded from one directory."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    general: GeneralConfig
    fetch: FetchConfig
    smtp: SmtpConfig
    dedupe: DedupeConfig
    maintenance: MaintenanceConfig
    sources: list[SourceConfig]
    aliases: dict[str, str]
    commitments: list[CommitmentConfig]
    digests: list[DigestConfig]
    database_override: str | None = None

    @property
    def database_path(self) -> Path:
        """The store's path: --db / MONITOR_DB first, else general.database.

        A relative path is taken beside the config directory, except for the shipped
        defaults, whose directory belongs to the installation: their store goes to
        ``$XDG_DATA_HOME/ipr-monitor`` (``~/.local/share/ipr-monitor``).
        """
        raw = self.database_override or os.environ.get(ENV_DB) or self.general.database
        path = Path(raw).expanduser()
        if path.is_absolute() or self.database_override or os.environ.get(ENV_DB):
            return path.resolve()
        return self.data_directory / path

    @property
    def data_directory(self) -> Path:
        """Where relative store and outbox paths live (see ``database_path``)."""
        try:
            shipped = default_config_dir().resolve() == self.directory
        except ConfigError:
            shipped = False
        if shipped:
            xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
            return Path(xdg) / "ipr-monitor"
        return self.directory

    @property
    def outbox_path(self) -> Path:
        path = Path(self.general.outbox_dir).expanduser()
        return path if path.is_absolute() else self.database_path.parent / path

    def source_interval(self, source: SourceConfig) -> timedelta:
        return timedelta(seconds=source.interval or self.general.default_interval)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with top-level fields replaced (used by tests and the demo)."""
        return self.model_copy(update=changes)


def _require_unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}; each must be unique")
        seen.add(value)


def default_config_dir() -> Path:
    """The config shipped with the package: ``config/`` in a checkout, else the wheel's copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config", here / "_data" / "config"):
        if (candidate / "monitor.toml").exists():
            return candidate
    raise ConfigError("no default configuration found; pass --config DIR")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc


def _key_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """Turn pydantic's ('source', 3, 'url') into 'source[3] (name = "x").url'."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(entry, dict):
                ident = entry.get("id") or entry.get("name")
                if ident:
                    label += f" ({ident})"
            parts.append(label)
            node = entry
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = _key_path(tuple(error["loc"]), data)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check its spelling; see config/*.toml for every key)"
            elif error["type"] == "missing":
                message = "required key is missing"
            lines.append(f"{key or '(top level)'}: {message}")
        raise ConfigError("; ".join(lines), file=str(path)) from None


def load_config(directory: str | Path | None = None, *, database: str | None = None) -> Config:
    """Load and validate a config directory (default: $MONITOR_CONFIG, else the shipped one).

    Raises ``ConfigError`` naming the file and key of the first problem found.
    """
    raw_dir = directory or os.environ.get(ENV_CONFIG_DIR)
    base = Path(raw_dir).expanduser() if raw_dir else default_config_dir()
    if not base.is_dir():
        raise ConfigError(
            "config directory does not exist; pass --config DIR or set MONITOR_CONFIG",
            file=str(base),
        )
    files = {name: base / name for name in CONFIG_FILES}
    loaded = {name: (_read_toml(p) if p.exists() else {}) for name, p in files.items()}
    monitor_file: MonitorFile = _validate(
        MonitorFile, loaded["monitor.toml"], files["monitor.toml"]
    )
    sources: SourcesFile = _validate(SourcesFile, loaded["sources.toml"], files["sources.toml"])
    commitments: CommitmentsFile = _validate(
        CommitmentsFile, loaded["commitments.toml"], files["commitments.toml"]
    )
    digests: DigestsFile = _validate(DigestsFile, loaded["digests.toml"], files["digests.toml"])
    known = {c.id for c in commitments.commitment}
    for index, group in enumerate(digests.digest):
        for commitment_id in group.commitments:
            if commitment_id not in known:
                raise ConfigError(
                    f"unknown commitment {commitment_id!r}; "
                    "ids are listed by 'monitor commitments'",
                    file=str(files["digests.toml"]),
                    key=f"digest[{index}] ({group.name}).commitments",
                )
    config = Config(
        directory=base.resolve(),
        general=monitor_file.general,
        fetch=monitor_file.fetch,
        smtp=monitor_file.smtp,
        dedupe=monitor_file.dedupe,
        maintenance=monitor_file.maintenance,
        sources=sources.source,
        aliases=commitments.aliases,
        commitments=commitments.commitment,
        digests=digests.digest,
        database_override=database,
    )
    _compile_queries(config, files["commitments.toml"])
    return config


def _compile_queries(config: Config, path: Path) -> None:
    """Parse every query now, so a typo is a config error and not a failed run."""
    from monitor.match import compile_matcher

    try:
        compile_matcher(config.commitments, config.aliases)
    except ConfigError as exc:
        if exc.file is None:
            exc.file = str(path)
            exc.args = (f"{path}: {exc.args[0]}",)
        raise


def config_reference() -> dict[str, dict[str, tuple[str, Any]]]:
    """Every documented key: {section: {key: (description, default)}}.

    README's reference is generated from this (``monitor.docgen``) and tested against it.
    """
    sections: dict[str, type[BaseModel]] = {
        "general": GeneralConfig,
        "fetch": FetchConfig,
        "smtp": SmtpConfig,
        "dedupe": DedupeConfig,
        "maintenance": MaintenanceConfig,
        "source": SourceConfig,
        "source.selectors": Selectors,
        "commitment": CommitmentConfig,
        "digest": DigestConfig,
    }
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for section, model in sections.items():
        out[section] = {
            name: (field.description or "", field.get_default(call_default_factory=True))
            for name, field in model.model_fields.items()
        }
    return out
