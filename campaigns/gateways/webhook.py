"""Signed HTTP POST of rendered messages to an integrator's endpoint (``SCRM_WEBHOOK_URL``).

The format is documented for receivers in ``docs/webhooks.md``. In short: JSON ``{"messages": [...]}``
in batches of at most ``BATCH_SIZE``; ``X-SCRM-Timestamp`` and ``X-SCRM-Signature: sha256=<hex of
HMAC-SHA256(secret, "{timestamp}.{body}")>``; an ``Idempotency-Key`` per batch, derived from its delivery
ids, that stays the same when the batch is retried.

Connection errors, timeouts, HTTP 5xx, 408 and 429 are retried a few times inside ``send()`` with
exponential backoff; after that the batch fails as transient (the engine retries it later) and the
batches after it are not tried. Any other non-2xx answer fails the batch for good. A 2xx answer may
carry per-message results, ``{"results": [{"delivery_id": 1, "ok": false, "error": "..."}]}``; they are
honoured, and a delivery the results leave out counts as accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .base import Gateway, OutgoingMessage, SendResult, describe_exception, failed

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
ATTEMPTS = 3  # per batch, inside one send()
BACKOFF = 0.25  # seconds before the 2nd attempt; doubles after each failure
MAX_RETRY_AFTER = 5.0  # a longer Retry-After is left to the engine's own backoff
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between our timestamp and its clock
RETRY_STATUS = {408, 429}
USER_AGENT = "SCRM-Webhook/1"


def webhook_signature(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"`` keyed with the shared secret."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_signature_verify(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    tolerance: int | None = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``signature`` (the ``X-SCRM-Signature`` header) signs ``body`` (the raw
    request body, before any JSON parsing) with ``timestamp`` (the ``X-SCRM-Timestamp`` header), and the
    timestamp is within ``tolerance`` seconds of ``now`` (replay protection; None turns it off)."""
    try:
        sent_at = int(str(timestamp))
    except ValueError:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    if not secret or not isinstance(signature, str):
        return False
    return hmac.compare_digest(webhook_signature(secret, str(timestamp), body), signature.strip())


def batch_idempotency_key(delivery_ids: list[int]) -> str:
    """The same deliveries give the same key, in any order: a retried batch is recognisable as one."""
    joined = ",".join(str(i) for i in sorted(delivery_ids))
    return "scrm-" + hashlib.sha256(joined.encode()).hexdigest()[:40]


def _payload(messages: list[OutgoingMessage]) -> bytes:
    body = {
        "messages": [
            {
                "delivery_id": m.delivery_id,
                "contact_id": m.contact_id,
                "medium": m.medium,
                "address": m.address,
                "sender": m.sender,
                "subject": m.subject,
                "body": m.body,
            }
            for m in messages
        ]
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Outcome:
    """How one batch ended: ``results`` per delivery, and whether the endpoint looked unavailable."""

    def __init__(self, results: list[SendResult], unavailable: str = "") -> None:
        self.results = results
        self.unavailable = unavailable


class WebhookGateway(Gateway):
    name = "webhook"

    def __init__(self) -> None:
        self.url = settings.SCRM_WEBHOOK_URL
        self.secret = settings.SCRM_WEBHOOK_SECRET
        self.timeout = settings.SCRM_GATEWAY_TIMEOUT
        if not self.url or not self.secret:
            raise ImproperlyConfigured(
                "The webhook gateway needs SCRM_WEBHOOK_URL (the receiver's endpoint) and SCRM_WEBHOOK_SECRET "
                "(the shared signing secret); set both, or choose another gateway in SCRM_GATEWAY_<MEDIUM>."
            )

    def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        unavailable = ""
        with requests.Session() as session:
            for start in range(0, len(messages), BATCH_SIZE):
                batch = messages[start : start + BATCH_SIZE]
                if unavailable:
                    # The endpoint just failed every attempt: do not spend the same time on each batch.
                    results += [failed(m, f"not tried: {unavailable}", transient=True) for m in batch]
                    continue
                outcome = self._send_batch(session, batch)
                results += outcome.results
                unavailable = outcome.unavailable
        return results

    def _send_batch(self, session: requests.Session, batch: list[OutgoingMessage]) -> _Outcome:
        body = _payload(batch)
        key = batch_idempotency_key([m.delivery_id for m in batch])
        delay = BACKOFF
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Idempotency-Key": key,
                "X-SCRM-Timestamp": timestamp,
                "X-SCRM-Signature": webhook_signature(self.secret, timestamp, body),
                "X-SCRM-Attempt": str(attempt),
            }
            try:
                response = session.post(
                    self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                problem = describe_exception(exc)
                wait = delay
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return _Outcome(self._results(batch, response))
                if status >= 500 or status in RETRY_STATUS:
                    problem = f"HTTP {status}"
                    wait = max(delay, _retry_after(response))
                else:
                    error = f"webhook answered HTTP {status}"
                    if 300 <= status < 400:
                        error += " (redirects are not followed: point SCRM_WEBHOOK_URL at the final address)"
                    elif snippet := _snippet(response):
                        error += f": {snippet}"
                    logger.warning("webhook batch %s failed for good: %s", key, error)
                    return _Outcome([failed(m, error) for m in batch])
            if attempt < ATTEMPTS:
                logger.info("webhook batch %s: attempt %s failed (%s), retrying in %.2fs", key, attempt, problem, wait)
                time.sleep(wait)
                delay *= 2
        error = f"webhook unavailable after {ATTEMPTS} attempts: {problem}"
        logger.warning("webhook batch %s: %s", key, error)
        return _Outcome([failed(m, error, transient=True) for m in batch], unavailable=error)

    @staticmethod
    def _results(batch: list[OutgoingMessage], response: requests.Response) -> list[SendResult]:
        """Per-message answers from a 2xx body, when it has them; everything else counts as accepted."""
        answered: dict[int, dict] = {}
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            for item in data["results"]:
                if isinstance(item, dict) and isinstance(item.get("delivery_id"), int):
                    answered[item["delivery_id"]] = item
        results = []
        for m in batch:
            item = answered.get(m.delivery_id)
            if item is None or item.get("ok", True) is True:
                message_id = str((item or {}).get("message_id") or "")
                results.append(SendResult(m.delivery_id, ok=True, message_id=message_id))
            else:
                error = str(item.get("error") or "rejected by the webhook receiver")[:500]
                results.append(failed(m, error, transient=item.get("transient") is True))
        return results


def _retry_after(response: requests.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _snippet(response: requests.Response) -> str:
    text = " ".join((response.text or "").split())
    return text[:200]
