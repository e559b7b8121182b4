"""Email through Django's email backend (``EMAIL_BACKEND``: SMTP in production, locmem in tests).

A chunk goes out over one connection, one message per recipient. Each message carries a deterministic
``Message-ID: <delivery-{id}@{domain}>``, so a message sent again after a crash (the only way one can
be) can be recognised as the same one by the receiving side.

Failures: a refused recipient (or sender, or message) with a 5xx reply is final; a 4xx reply, a
connection that cannot be opened or drops, or a timeout is transient.
"""

from __future__ import annotations

import logging
import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.message import sanitize_address

from .base import Gateway, OutgoingMessage, SendResult, describe_exception, failed

logger = logging.getLogger(__name__)


def _smtp_code_is_temporary(code) -> bool:
    try:
        return 400 <= int(code) < 500
    except (TypeError, ValueError):
        return False


def _smtp_reply(code, text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


class EmailGateway(Gateway):
    name = "email"

    def __init__(self) -> None:
        self.from_email = settings.DEFAULT_FROM_EMAIL
        address = parseaddr(self.from_email)[1]
        self.domain = address.rpartition("@")[2] or "scrm.localhost"
        self.timeout = getattr(settings, "EMAIL_TIMEOUT", None) or settings.SCRM_GATEWAY_TIMEOUT

    def message_id(self, delivery_id: int) -> str:
        return f"<delivery-{delivery_id}@{self.domain}>"

    def _email(self, message: OutgoingMessage, connection) -> EmailMessage:
        sanitize_address(message.address, "utf-8")  # raises ValueError for an address no server would take
        email = EmailMessage(
            subject=message.subject,
            body=message.body,
            from_email=self.from_email,
            to=[message.address],
            headers={"Message-ID": self.message_id(message.delivery_id), "X-SCRM-Delivery": str(message.delivery_id)},
            connection=connection,
        )
        email.message()  # builds the MIME message now: a bad address or header fails here, not mid-connection
        return email

    def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        prepared: list[tuple[OutgoingMessage, EmailMessage]] = []
        connection = get_connection(fail_silently=False, timeout=self.timeout)
        for m in messages:
            if not m.address:
                results[m.delivery_id] = failed(m, "no email address")
                continue
            try:
                prepared.append((m, self._email(m, connection)))
            except ValueError as exc:  # BadHeaderError and invalid addresses
                results[m.delivery_id] = failed(m, f"invalid email address or header: {exc}")
        if prepared:
            self._send_all(prepared, connection, results)
        return [results[m.delivery_id] for m in messages]

    def _send_all(self, prepared, connection, results: dict[int, SendResult]) -> None:
        unavailable = ""
        try:
            connection.open()
        except (smtplib.SMTPException, OSError) as exc:
            unavailable = f"email server unavailable: {describe_exception(exc)}"
        try:
            for m, email in prepared:
                if unavailable:
                    results[m.delivery_id] = failed(m, unavailable, transient=True)
                    continue
                try:
                    connection.send_messages([email])
                except smtplib.SMTPRecipientsRefused as exc:
                    replies = list(exc.recipients.values())
                    temporary = bool(replies) and all(_smtp_code_is_temporary(code) for code, _text in replies)
                    detail = "; ".join(_smtp_reply(code, text) for code, text in replies)
                    results[m.delivery_id] = failed(m, f"recipient refused: {detail}", transient=temporary)
                except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                    what = "sender refused" if isinstance(exc, smtplib.SMTPSenderRefused) else "message refused"
                    results[m.delivery_id] = failed(
                        m,
                        f"{what}: {_smtp_reply(exc.smtp_code, exc.smtp_error)}",
                        transient=_smtp_code_is_temporary(exc.smtp_code),
                    )
                except ValueError as exc:  # an address the backend cannot encode
                    results[m.delivery_id] = failed(m, f"invalid email address: {exc}")
                except (smtplib.SMTPException, OSError) as exc:
                    # The connection is gone (or timed out): this message may or may not have been taken.
                    results[m.delivery_id] = failed(m, f"email not sent: {describe_exception(exc)}", transient=True)
                    unavailable = self._reopen(connection)
                else:
                    results[m.delivery_id] = SendResult(
                        m.delivery_id, ok=True, message_id=self.message_id(m.delivery_id)
                    )
        finally:
            try:
                connection.close()
            except Exception:  # closing a broken connection must not hide the results
                logger.debug("closing the email connection failed", exc_info=True)
        failures = sum(1 for r in results.values() if not r.ok)
        if failures:
            logger.warning("email gateway: %s of %s messages failed", failures, len(results))

    @staticmethod
    def _reopen(connection) -> str:
        try:
            connection.close()
        except Exception:  # already broken; open() below tells whether the server is back
            pass
        try:
            connection.open()
        except (smtplib.SMTPException, OSError) as exc:
            return f"email server unavailable: {describe_exception(exc)}"
        return ""
