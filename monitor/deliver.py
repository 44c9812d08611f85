"""Delivery of built digests: an outbox in SQLite, sent exactly once over SMTP or as .eml files.

``monitor.digest.build_digest`` leaves a ``digests`` row in ``pending`` with its
Message-ID, bodies and recipients fixed. ``deliver_pending`` takes it from there::

    pending ──► sending ──► sent        every recipient sent (or refused with 5xx)
                   │  ├───► deferred    a 4xx or connection error; retried with backoff
                   │  └───► failed      every recipient refused with 5xx
                   └── crash: left in sending; once its lease runs out the next run
                       resends the unfinished recipients with the same Message-ID

Several deliverers may run at once (the daemon's digest and delivery jobs, a manual
``monitor digest``). A claim sets ``sending`` with a lease in ``next_attempt_at`` and
bumps ``attempts``, which doubles as a fencing token: the lease is renewed before each
recipient only while ``attempts`` is still ours, so a deliverer stalled past its lease
stops instead of sending again what the one that took over has sent.

Each recipient has its own row and its own SMTP transaction, so a 550 for one address
fails only that address, and a crash resends only to those not yet recorded as sent.
The message bytes are rebuilt from the stored row (boundary derived from the
Message-ID), so a resend is the same message. SMTP's one ambiguity remains: a server
that accepted the data but whose "250" never arrived gets the message again, which a
mail client shows once because the Message-ID is the same.

``crash_point(name)`` marks the places a kill can land; tests set ``MONITOR_CRASH_AT``
to one of ``CRASH_POINTS`` and check that nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import smtplib
import sqlite3
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monitor import clock
from monitor.config import Config, SmtpConfig
from monitor.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from monitor.store import Store

log = logging.getLogger(__name__)

#: Seconds before the first retry of a deferred digest; doubles per attempt up to RETRY_MAX.
RETRY_BASE = 60.0
RETRY_MAX = 3600.0
#: Shortest lease on a digest being sent; a crashed deliverer's digest is resent after it.
LEASE_MIN = 60.0
CRASH_ENV = "MONITOR_CRASH_AT"
CRASH_EXIT_CODE = 77
#: Where a kill is simulated, in the order a digest passes them.
CRASH_POINTS = (
    "digest-built",  # inside the build transaction, before COMMIT
    "digest-claimed",  # digest marked sending, nothing sent yet
    "recipient-claimed",  # recipient marked sending, message not yet handed over
    "message-handed-over",  # server accepted the message (or .eml written), not yet recorded
    "recipient-sent",  # recipient recorded sent, digest still sending
    "digest-finalised",  # digest's final state committed
)


def crash_point(name: str) -> None:
    """Die here, like a kill -9, when ``MONITOR_CRASH_AT`` names this point (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_CODE)


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery attempt of one digest did (``recipients_sent``: in this attempt)."""

    digest_id: int
    group_name: str
    message_id: str
    state: str
    recipients_sent: int
    error: str | None


def domain_of(sender: str) -> str:
    """The sender's mail domain, for Message-IDs and List-Id (``localhost`` if none)."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2]
    return re.sub(r"[^A-Za-z0-9.-]", "", domain) or "localhost"


# -- the message -------------------------------------------------------------------------


def compose_message(
    row: sqlite3.Row | Mapping[str, Any], recipients: Sequence[str], config: Config
) -> EmailMessage:
    """The digest as a multipart/alternative mail, rebuilt identically from its stored row."""
    sender = config.smtp.sender
    domain = domain_of(sender)
    group = row["group_name"]
    created = clock.parse_iso(row["created_at"]) or clock.now()
    message = EmailMessage()
    message["Subject"] = row["subject"]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(created)
    message["Message-ID"] = row["message_id"]
    message["List-Id"] = f"IPR monitor digest {group} <{group}.digest.{domain}>"
    unsubscribe = f"mailto:{parseaddr(sender)[1]}?subject={quote('unsubscribe ' + group)}"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-IPR-Monitor-Digest"] = f"{group} {row['id']}"
    message.set_content(row["body_text"], subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(
        row["body_html"], subtype="html", charset="utf-8", cte="quoted-printable"
    )
    # A fixed boundary keeps a resend byte-for-byte the same message.
    digest_hash = hashlib.sha256(row["message_id"].encode()).hexdigest()[:32]
    message.set_boundary(f"=_ipr_monitor_{digest_hash}")
    return message


# -- delivering --------------------------------------------------------------------------


class _ConnectionLost(TransientDeliveryError):
    """Transient, and the connection is unusable: defer the remaining recipients too."""


def _classify(exc: Exception) -> DeliveryError:
    """Map smtplib/socket failures onto the error tree: 5xx permanent, the rest transient."""
    reply: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (0, b""))
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        # A wrong password is fixed by the operator, not by dropping the digest.
        return _ConnectionLost(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}")
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, reply = exc.smtp_code, exc.smtp_error
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        return _ConnectionLost(f"connection lost: {exc or 'server disconnected'}")
    elif isinstance(exc, smtplib.SMTPException):  # e.g. no STARTTLS or AUTH offered
        return _ConnectionLost(f"SMTP error: {exc}")
    elif isinstance(exc, OSError):
        return _ConnectionLost(f"cannot reach the SMTP server: {exc.strerror or exc}")
    else:
        return _ConnectionLost(f"SMTP error: {exc}")
    message = f"{code} {_text(reply)}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(message)
    if code == 421:
        return _ConnectionLost(message)
    return TransientDeliveryError(message)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _connect(settings: SmtpConfig) -> smtplib.SMTP:
    host = settings.host or "localhost"
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.security == "ssl":
        client = smtplib.SMTP_SSL(host, settings.port, timeout=settings.timeout, context=context)
    else:
        client = smtplib.SMTP(host, settings.port, timeout=settings.timeout)
    try:
        client.ehlo()
        if settings.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if settings.username:
            password = settings.password
            if password is None:
                raise TransientDeliveryError(
                    f"smtp.username is set but ${settings.password_env} is empty; set it"
                )
            client.login(settings.username, password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: smtplib.SMTP | None) -> None:
    if client is None:
        return
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX))


class _LeaseLost(Exception):
    """Our lease on a digest ran out and another deliverer took it over: stop touching it."""


@dataclass
class _Claim:
    """A deliverer's hold on one digest. ``token`` is the digest's ``attempts`` after our
    claim; a takeover bumps it, so a stale deliverer notices before it sends again."""

    digest_id: int
    token: int
    moment: datetime
    lease: timedelta
    started: float = field(default_factory=time.monotonic)

    def renew(self, conn: sqlite3.Connection) -> None:
        """Extend the lease before each send; raise _LeaseLost if it is no longer ours."""
        elapsed = timedelta(seconds=time.monotonic() - self.started)
        renewed = conn.execute(
            "UPDATE digests SET next_attempt_at = ?"
            " WHERE id = ? AND state = 'sending' AND attempts = ?",
            (clock.iso(self.moment + elapsed + self.lease), self.digest_id, self.token),
        ).rowcount
        if not renewed:
            raise _LeaseLost(f"digest {self.digest_id} was taken over by another deliverer")


def _set_recipients(
    store: Store,
    digest_id: int,
    recipients: Iterable[str],
    state: str,
    claim: _Claim | None = None,
    **extra: Any,
) -> None:
    assignments = "".join(f", {key} = ?" for key in extra)
    bump = ", attempts = attempts + 1" if state == "sending" else ""
    with store.transaction() as conn:
        if claim is not None:
            claim.renew(conn)
        conn.executemany(
            f"UPDATE digest_recipients SET state = ?{bump}{assignments}"
            " WHERE digest_id = ? AND recipient = ?",
            [(state, *extra.values(), digest_id, address) for address in recipients],
        )


def deliver_pending(
    store: Store, config: Config, *, now: datetime | None = None
) -> list[DeliveryResult]:
    """Send every pending, due deferred, and interrupted (sending) digest; report each.

    SMTP when ``config.smtp.host`` is set, else ``.eml`` files in ``config.outbox_path``.
    Safe to call from several threads or processes at once: a digest is claimed in a
    transaction with a lease (``next_attempt_at`` while ``sending``), and only a digest
    whose lease ran out, because its deliverer died, is taken over and resent.
    """
    moment = now or clock.now()
    due = store.query(
        "SELECT id FROM digests WHERE state = 'pending'"
        " OR (state IN ('deferred', 'sending')"
        "     AND (next_attempt_at IS NULL OR next_attempt_at <= ?))"
        " ORDER BY id",
        (clock.iso(moment),),
    )
    results = []
    for row in due:
        try:
            result = _deliver_one(store, config, row["id"], moment)
        except Exception as exc:  # one broken digest must not hold up the others
            log.exception("digest %s: delivery crashed", row["id"])
            result = _record_crash(store, row["id"], moment, exc)
        if result is not None:
            log.log(
                logging.INFO if result.state == "sent" else logging.WARNING,
                "digest %s #%s %s: %s, %d recipient(s) sent%s",
                result.group_name,
                result.digest_id,
                result.message_id,
                result.state,
                result.recipients_sent,
                f"; {result.error}" if result.error else "",
                extra={"digest_id": result.digest_id, "digest_state": result.state},
            )
            results.append(result)
    return results


def _record_crash(
    store: Store, digest_id: int, moment: datetime, exc: Exception
) -> DeliveryResult | None:
    """Defer a digest whose delivery raised unexpectedly; its recipients keep their states."""
    try:
        if store.conn.in_transaction:
            store.conn.execute("ROLLBACK")
        attempts = int(store.scalar("SELECT attempts FROM digests WHERE id = ?", (digest_id,)) or 1)
        error = f"delivery crashed: {type(exc).__name__}: {exc}"
        with store.transaction() as conn:
            conn.execute(
                "UPDATE digests SET state = 'deferred', last_error = ?, next_attempt_at = ?"
                " WHERE id = ? AND state != 'sent'",
                (error, clock.iso(moment + _backoff(attempts)), digest_id),
            )
        row = store.query(
            "SELECT group_name, message_id, state FROM digests WHERE id = ?", (digest_id,)
        )[0]
    except Exception:
        log.exception("digest %s: cannot record the failed delivery", digest_id)
        return None  # still leased as sending; retried when the lease runs out
    return DeliveryResult(digest_id, row["group_name"], row["message_id"], row["state"], 0, error)


def _lease(config: Config, recipients: int) -> timedelta:
    """How long a claimed digest is ours: every SMTP step of every recipient timing out."""
    if not config.smtp.host:
        return timedelta(seconds=LEASE_MIN)
    return timedelta(seconds=max(LEASE_MIN, config.smtp.timeout * (2 + 2 * recipients)))


def _deliver_one(
    store: Store, config: Config, digest_id: int, moment: datetime
) -> DeliveryResult | None:
    stamp = clock.iso(moment)
    with store.transaction() as conn:
        recipients = conn.execute(
            "SELECT COUNT(*) FROM digest_recipients WHERE digest_id = ?", (digest_id,)
        ).fetchone()[0]
        claimed = conn.execute(
            "UPDATE digests SET state = 'sending', attempts = attempts + 1, next_attempt_at = ?"
            " WHERE id = ? AND (state = 'pending' OR (state IN ('deferred', 'sending')"
            "     AND (next_attempt_at IS NULL OR next_attempt_at <= ?)))",
            (clock.iso(moment + _lease(config, recipients)), digest_id, stamp),
        ).rowcount
        token = conn.execute("SELECT attempts FROM digests WHERE id = ?", (digest_id,)).fetchone()
    if not claimed:
        return None  # another deliverer took it between our SELECT and our claim
    claim = _Claim(digest_id, int(token[0]), moment, _lease(config, 1))
    crash_point("digest-claimed")
    row = store.query("SELECT * FROM digests WHERE id = ?", (digest_id,))[0]
    everyone = [
        r["recipient"]
        for r in store.query(
            "SELECT recipient FROM digest_recipients WHERE digest_id = ? ORDER BY recipient",
            (digest_id,),
        )
    ]
    todo = [
        r["recipient"]
        for r in store.query(
            "SELECT recipient FROM digest_recipients WHERE digest_id = ?"
            " AND state IN ('pending', 'deferred', 'sending') ORDER BY recipient",
            (digest_id,),
        )
    ]
    message = compose_message(row, everyone, config)
    try:
        if config.smtp.host:
            sent = _send_smtp(store, config, claim, message, todo, stamp)
        else:
            sent = _write_outbox(store, config, claim, row, message, todo, stamp)
        return _finalise(store, row, claim, sent)
    except _LeaseLost as lost:
        log.warning("%s; leaving it to them", lost)
        return None


def _send_smtp(
    store: Store,
    config: Config,
    claim: _Claim,
    message: EmailMessage,
    todo: Sequence[str],
    stamp: str | None,
) -> int:
    digest_id = claim.digest_id
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    envelope_from = parseaddr(config.smtp.sender)[1] or "monitor@localhost"
    client: smtplib.SMTP | None = None
    lost: str | None = None
    sent = 0
    try:
        for recipient in todo:
            if lost is not None:
                _set_recipients(store, digest_id, [recipient], "deferred", last_error=lost)
                continue
            _set_recipients(store, digest_id, [recipient], "sending", claim)
            crash_point("recipient-claimed")
            try:
                if client is None:
                    client = _connect(config.smtp)
                client.sendmail(envelope_from, [recipient], data)
            except (smtplib.SMTPException, OSError, DeliveryError) as exc:
                error = exc if isinstance(exc, DeliveryError) else _classify(exc)
                if isinstance(error, PermanentDeliveryError):
                    _set_recipients(store, digest_id, [recipient], "failed", last_error=str(error))
                    continue
                _set_recipients(store, digest_id, [recipient], "deferred", last_error=str(error))
                if isinstance(error, _ConnectionLost) or not isinstance(exc, smtplib.SMTPException):
                    lost = str(error)
                    if client is not None:
                        client.close()
                    client = None
                continue
            crash_point("message-handed-over")
            _set_recipients(store, digest_id, [recipient], "sent", sent_at=stamp, last_error=None)
            sent += 1
            crash_point("recipient-sent")
    finally:
        _close(client)
    return sent


def outbox_file(config: Config, row: sqlite3.Row) -> Path:
    """Where a digest's .eml goes: named by the digest, so a resend overwrites, never adds."""
    created = (clock.parse_iso(row["created_at"]) or clock.now()).strftime("%Y%m%dT%H%M%SZ")
    return config.outbox_path / f"{created}-{row['group_name']}-{row['id']}.eml"


def _write_outbox(
    store: Store,
    config: Config,
    claim: _Claim,
    row: sqlite3.Row,
    message: EmailMessage,
    todo: Sequence[str],
    stamp: str | None,
) -> int:
    if not todo:
        return 0
    digest_id = claim.digest_id
    _set_recipients(store, digest_id, todo, "sending", claim)
    crash_point("recipient-claimed")
    target = outbox_file(config, row)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".eml.part")
        with partial.open("wb") as handle:
            handle.write(bytes(message))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except OSError as exc:
        _set_recipients(
            store, digest_id, todo, "deferred", last_error=f"cannot write {target}: {exc}"
        )
        return 0
    crash_point("message-handed-over")
    _set_recipients(store, digest_id, todo, "sent", sent_at=stamp, last_error=None)
    crash_point("recipient-sent")
    return len(todo)


def _finalise(store: Store, row: sqlite3.Row, claim: _Claim, sent: int) -> DeliveryResult:
    digest_id, moment = row["id"], claim.moment
    recipients = store.query(
        "SELECT recipient, state, last_error FROM digest_recipients WHERE digest_id = ?"
        " ORDER BY recipient",
        (digest_id,),
    )
    states = {r["state"] for r in recipients}
    problems = [
        f"{r['recipient']}: {r['last_error']}"
        for r in recipients
        if r["state"] in ("deferred", "failed", "pending", "sending") and r["last_error"]
    ]
    error = "; ".join(problems) or None
    attempts = claim.token
    next_attempt: str | None = None
    if states & {"pending", "deferred", "sending"}:
        state = "deferred"
        next_attempt = clock.iso(moment + _backoff(attempts))
    elif "sent" in states or not recipients:
        state = "sent"
    else:
        state = "failed"
    with store.transaction() as conn:
        finished = conn.execute(
            "UPDATE digests SET state = ?, last_error = ?, next_attempt_at = ?,"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
            " WHERE id = ? AND attempts = ?",
            (state, error, next_attempt, state, clock.iso(moment), digest_id, claim.token),
        ).rowcount
    if not finished:
        raise _LeaseLost(f"digest {digest_id} was taken over by another deliverer")
    crash_point("digest-finalised")
    return DeliveryResult(
        digest_id=digest_id,
        group_name=row["group_name"],
        message_id=row["message_id"],
        state=state,
        recipients_sent=sent,
        error=error,
    )


def recipients_of(message: EmailMessage) -> list[str]:
    """Addresses in a message's To header (for tests and the demo)."""
    return [address for _, address in getaddresses(message.get_all("To", []))]
