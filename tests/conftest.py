"""Shared fixtures: the real fixture HTTP server, a real SMTP server, a demo config.

Integration tests talk to these over 127.0.0.1 sockets; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.demo import demo_config, demo_site_dir
from monitor.digest_fixture import fixture_clock, load_fixture
from monitor.sitehost import SiteHost
from monitor.smtpsink import SmtpSink
from monitor.store import Store

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def site() -> Iterator[SiteHost]:
    """The demo site (fixtures/site) served on 127.0.0.1:<free port>."""
    with SiteHost(demo_site_dir()) as host:
        yield host


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """An aiosmtpd server on 127.0.0.1:<free port> that records what it receives."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def site_config(site: SiteHost, smtp: SmtpSink, tmp_path: Path) -> Config:
    """The shipped config pointed at the fixture site and SMTP server, with a fresh store."""
    return demo_config(site, smtp.port, tmp_path / "monitor.db")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store at ``tmp_path / "monitor.db"``: the same file ``site_config`` names,
    so tests that also want the fixture site get it by asking for ``site_config``."""
    handle = Store.open(tmp_path / "monitor.db")
    yield handle
    handle.close()


@pytest.fixture
def clock_now(store: Store) -> datetime:
    """The digest fixture store (monitor.digest_fixture) loaded, and its fixed clock."""
    return fixture_clock(load_fixture(store))


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the shipped config's default store out of the real home directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.delenv("MONITOR_DB", raising=False)
