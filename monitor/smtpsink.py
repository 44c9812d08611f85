"""A real SMTP server on 127.0.0.1 that records what it receives and fails on demand.

Tests and the demo deliver digests to it over real sockets, so every byte goes
through smtplib and aiosmtpd exactly as it would to a mail server::

    with SmtpSink() as sink:
        config = config.with_overrides(smtp=SmtpConfig(host="127.0.0.1", port=sink.port,
                                                       security="none"))
        deliver_pending(store, config)
        sink.messages[0].message["Subject"]

Faults are queued per SMTP stage and used up in order, the way a flaky server
would misbehave::

    sink.fail("connect", "421 4.3.2 Too busy")          # next greeting refuses, then closes
    sink.fail("rcpt", "451 4.3.0 Try again later")     # next RCPT TO is deferred
    sink.fail("data", "550 5.7.1 Rejected", times=2)   # next two messages refused
    sink.fail("data", DROP)        # close the connection after DATA, before replying
    sink.fail("data", ACCEPT_THEN_DROP)  # keep the message, then drop before replying
    sink.stop(); ...; sink.start()  # server down (connection refused), then back up

With ``tls=context`` the server offers STARTTLS (and requires it); with
``implicit_tls=True`` it speaks TLS from the first byte (port-465 style). With
``login=("user", "secret")`` it requires AUTH and records who logged in.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

#: Fault reply: close the connection after the data arrived, without replying and
#: without keeping the message (the client cannot know it was not delivered).
DROP = "drop"
#: Fault reply: keep the message, then close the connection without replying; the
#: client must assume it failed, so a resend reaches the recipient a second time.
ACCEPT_THEN_DROP = "accept-then-drop"

_STAGES = ("connect", "mail", "rcpt", "data")


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server accepted it: envelope plus the parsed email."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    tls: bool = False
    login: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _is_tls(server: Any, session: Any) -> bool:
    """STARTTLS sets session.ssl; implicit TLS only shows on the transport."""
    transport = getattr(server, "transport", None)
    implicit = transport is not None and transport.get_extra_info("sslcontext") is not None
    return session.ssl is not None or implicit


class _GreetingSMTP(SMTP):
    """aiosmtpd's server, able to answer the connection itself with a refusal."""

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    async def _handle_client(self) -> None:
        reply = self.sink._take_fault("connect")
        if reply is not None:
            await self.push(reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        return _GreetingSMTP(self.sink, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        reply = self.sink._take_fault("mail")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.sink._take_fault("rcpt")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.sink._take_fault("data")
        data = bytes(envelope.original_content or envelope.content or b"")
        if reply in (None, ACCEPT_THEN_DROP):
            login = session.auth_data if session.authenticated else None
            self.sink._record(
                envelope.mail_from, tuple(envelope.rcpt_tos), data, _is_tls(server, session), login
            )
        if reply in (DROP, ACCEPT_THEN_DROP):
            server.transport.abort()
            return "421 4.3.0 connection dropped by test"  # never reaches the client
        if reply is not None:
            return reply
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 (a free port unless given) recording every message."""

    def __init__(
        self,
        *,
        port: int | None = None,
        hostname: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.hostname = hostname
        self.port = port or free_port()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.login = login
        self.failed_logins = 0
        self.messages: list[ReceivedMessage] = []
        self._faults: dict[str, list[str]] = {stage: [] for stage in _STAGES}
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SmtpSink:
        """Listen (again) on the same port; a no-op when already running."""
        if self._controller is None:
            options: dict[str, Any] = {"decode_data": False}
            if self.tls is not None and self.implicit_tls:
                options["ssl_context"] = self.tls
            elif self.tls is not None:
                options.update(tls_context=self.tls, require_starttls=True)
            if self.login is not None:
                options.update(
                    authenticator=self._authenticate,
                    auth_required=True,
                    # implicit TLS is invisible to aiosmtpd's STARTTLS bookkeeping
                    auth_require_tls=self.tls is not None and not self.implicit_tls,
                )
            controller = _Controller(
                self,
                _Handler(self),
                hostname=self.hostname,
                port=self.port,
                ready_timeout=5.0,
                **options,
            )
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening: clients now get "connection refused", as from a server that is down."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records -------------------------------------------------------------

    def fail(self, stage: str, reply: str, *, times: int = 1) -> None:
        """Answer the next ``times`` commands of ``stage`` (mail|rcpt|data) with ``reply``.

        ``reply`` is an SMTP reply line ("451 4.3.0 Try later") or DROP / ACCEPT_THEN_DROP.
        """
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}, not {stage!r}")
        if reply in (DROP, ACCEPT_THEN_DROP) and stage != "data":
            raise ValueError("DROP and ACCEPT_THEN_DROP apply to the data stage")
        with self._lock:
            self._faults[stage].extend([reply] * times)

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    def _take_fault(self, stage: str) -> str | None:
        with self._lock:
            queue = self._faults[stage]
            return queue.pop(0) if queue else None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.login is not None:
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self.login:
                return AuthResult(success=True, auth_data=user)
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    def _record(
        self,
        mail_from: str,
        rcpt_tos: tuple[str, ...],
        data: bytes,
        tls: bool = False,
        login: str | None = None,
    ) -> None:
        parsed = message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(ReceivedMessage(mail_from, rcpt_tos, data, parsed, tls, login))

    def received_by(self, recipient: str) -> list[ReceivedMessage]:
        """Messages whose envelope included ``recipient`` (what that mailbox would hold)."""
        with self._lock:
            return [m for m in self.messages if recipient in m.rcpt_tos]
