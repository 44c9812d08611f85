"""The error tree of ipr-monitor.

Every failure a user can meet is one of these, so the daemon can decide by type
whether to retry (transient) or to record and move on (permanent)::

    MonitorError
    ├── ConfigError                 bad or missing configuration (names file, key, fix)
    │   └── QuerySyntaxError        a commitment's query does not parse (names id, position)
    ├── StoreError                  the SQLite store cannot be opened or migrated
    │   └── LockHeldError           another daemon holds the store's lock
    ├── FetchError                  a URL could not be fetched
    │   ├── TransientFetchError     worth retrying later: timeouts, resets, 429, 5xx
    │   └── PermanentFetchError     retrying soon will not help: 4xx, bad scheme, too large
    │       ├── BlockedAddressError the URL resolves to a private/reserved address
    │       └── RobotsDisallowedError robots.txt forbids the URL
    └── DeliveryError               a digest could not be delivered
        ├── TransientDeliveryError  4xx SMTP replies, connection failures: defer and retry
        └── PermanentDeliveryError  5xx SMTP replies: fail for that recipient, report it
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error ipr-monitor raises on purpose."""


class ConfigError(MonitorError):
    """Configuration is invalid. The message names the file, the key and what is valid."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class QuerySyntaxError(ConfigError):
    """A commitment query does not parse; says where and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        commitment_id: str | None = None,
        position: int | None = None,
        query: str | None = None,
        file: str | None = None,
    ) -> None:
        self.commitment_id = commitment_id
        self.position = position
        self.query = query
        parts = []
        if commitment_id:
            parts.append(f"commitment {commitment_id}")
        if position is not None:
            parts.append(f"position {position}")
        prefix = ", ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if query is not None and position is not None:
            text += f"\n  {query}\n  {' ' * position}^"
        super().__init__(text, file=file, key="query" if commitment_id else None)


class StoreError(MonitorError):
    """The store cannot be opened, migrated or written."""


class LockHeldError(StoreError):
    """Another ipr-monitor process holds the store's lock."""


class FetchError(MonitorError):
    """A URL could not be fetched. ``reason`` is plain words for people ("HTTP 403")."""

    def __init__(self, reason: str, *, url: str | None = None, status: int | None = None) -> None:
        self.reason = reason
        self.url = url
        self.status = status
        super().__init__(reason)


class TransientFetchError(FetchError):
    """Worth retrying: timeouts, connection errors, 429, 5xx. ``retry_after`` in seconds."""

    def __init__(
        self,
        reason: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(reason, url=url, status=status)


class PermanentFetchError(FetchError):
    """Retrying soon will not help: 4xx, unsupported scheme, body too large."""


class BlockedAddressError(PermanentFetchError):
    """The URL resolves to a loopback/private/reserved address and those are not allowed."""


class RobotsDisallowedError(PermanentFetchError):
    """robots.txt disallows this URL for our user agent."""


class DeliveryError(MonitorError):
    """A digest could not be delivered."""


class TransientDeliveryError(DeliveryError):
    """Defer and retry: SMTP 4xx, connection refused or dropped."""


class PermanentDeliveryError(DeliveryError):
    """Do not retry for this recipient: SMTP 5xx."""
