"""STARTTLS, implicit TLS and login against aiosmtpd with a throwaway certificate.

The client verifies the server as any mail client would; the test's certificate is
trusted through ``SSL_CERT_FILE``, which OpenSSL reads for its default trust store
(the same knob an operator with a private CA would use).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from monitor.config import SmtpConfig
from monitor.digest import build_digest, deliver_pending
from monitor.digest_fixture import FIXTURE_GROUP, fixture_config
from monitor.smtpsink import SmtpSink
from monitor.store import Store

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_context(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> ssl.SSLContext:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def smtp(port: int, security: str, **extra: object) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1", port=port, security=security, sender="m <monitor@ipr.example>",
        timeout=5, password_env="TEST_DIGEST_SMTP_PASSWORD", **extra,
    )  # fmt: skip


# aiosmtpd cannot see that implicit TLS is TLS, and warns about AUTH without it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(
    tmp_path: Path,
    store: Store,
    clock_now: datetime,
    server_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    security: str,
) -> None:
    monkeypatch.setenv("TEST_DIGEST_SMTP_PASSWORD", "s3cret")
    implicit = security == "ssl"
    with SmtpSink(tls=server_context, implicit_tls=implicit, login=("digest", "s3cret")) as sink:
        config = fixture_config(tmp_path, smtp=smtp(sink.port, security, username="digest"))
        build_digest(store, config, FIXTURE_GROUP, now=clock_now)

        [result] = deliver_pending(store, config, now=clock_now)

        assert result.state == "sent", result.error
        assert [(m.tls, m.login) for m in sink.messages] == [(True, "digest"), (True, "digest")]


def test_wrong_password_defers_rather_than_drops(
    tmp_path: Path,
    store: Store,
    clock_now: datetime,
    server_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DIGEST_SMTP_PASSWORD", "wrong")
    with SmtpSink(tls=server_context, login=("digest", "s3cret")) as sink:
        config = fixture_config(tmp_path, smtp=smtp(sink.port, "starttls", username="digest"))
        build_digest(store, config, FIXTURE_GROUP, now=clock_now)

        [result] = deliver_pending(store, config, now=clock_now)

        assert result.state == "deferred"
        assert "SMTP login refused: 535" in (result.error or "")
        assert sink.messages == [] and sink.failed_logins > 0
        states = store.query("SELECT state, last_error FROM digest_recipients")
        assert {r[0] for r in states} == {"deferred"}
        assert all("login refused" in r[1] for r in states)


def test_untrusted_certificate_is_refused(
    tmp_path: Path, store: Store, clock_now: datetime, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)  # SSL_CERT_FILE not set: the client must not trust it
    with SmtpSink(tls=context) as sink:
        config = fixture_config(tmp_path, smtp=smtp(sink.port, "starttls"))
        build_digest(store, config, FIXTURE_GROUP, now=clock_now)

        [result] = deliver_pending(store, config, now=clock_now)

        assert result.state == "deferred" and "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
        assert sink.messages == []
