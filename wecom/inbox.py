"""The callback inbox: verify, store, answer; then process once, in Celery, after commit.

``callback_receive`` is all the endpoint does inside WeCom's 5-second limit: check the signature and the
timestamp, decrypt, parse, and store the message as one ``CallbackEvent`` row keyed by a hash of the
decrypted message (WeCom's retries and any replay are the same row). ``callback_event_claim`` hands a
row to exactly one worker (a conditional update); ``callback_events_sweep`` gives rows whose worker
died back to the queue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.parsers import expat

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .crypto import CallbackRejected, WeComCrypto
from .models import CallbackEvent

logger = logging.getLogger(__name__)

ADD_EVENTS = ("add_external_contact", "add_half_external_contact")
MAX_BODY = 64 * 1024  # WeCom's callbacks are a few hundred bytes
MAX_ATTEMPTS = 5
# Finished callbacks are kept this long for support, then deleted by the sweeper (in batches).
RETENTION = dt.timedelta(days=30)
PURGE_BATCH = 5000
# A row "processing" for longer than this lost its worker (a callback is processed in well under a second).
STUCK_AFTER = dt.timedelta(minutes=2)


def crypto_from_settings() -> WeComCrypto | None:
    """The crypto of the configured callback, or None when the token, key or corp id is missing."""
    if not (settings.WECOM_CALLBACK_TOKEN and settings.WECOM_ENCODING_AES_KEY and settings.WECOM_CORP_ID):
        return None
    return WeComCrypto(
        token=settings.WECOM_CALLBACK_TOKEN,
        encoding_aes_key=settings.WECOM_ENCODING_AES_KEY,
        receive_id=settings.WECOM_CORP_ID,
    )


def _forbidden(*_args) -> None:
    raise CallbackRejected("bad_xml", "DTDs and entities are not accepted")


def xml_fields(text: str | bytes) -> dict[str, str]:
    """The child elements of a flat WeCom XML document as a dict. The parser refuses any DOCTYPE or entity
    declaration wherever it appears (no expansion attacks), and anything that is not one ``<xml>`` element."""
    # A first pass with expat itself, which lets us refuse declarations before anything is expanded.
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = _forbidden
    guard.EntityDeclHandler = _forbidden
    guard.UnparsedEntityDeclHandler = _forbidden
    guard.ExternalEntityRefHandler = _forbidden
    try:
        guard.Parse(text, True)
        root = ElementTree.fromstring(text)
    except (expat.ExpatError, ElementTree.ParseError, ValueError):
        raise CallbackRejected("bad_xml", "the body is not well-formed XML") from None
    if root.tag != "xml":
        raise CallbackRejected("bad_xml", "the root element is not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


@dataclass(frozen=True)
class Received:
    event: CallbackEvent
    created: bool


def callback_url_check(*, crypto: WeComCrypto, params) -> str:
    """The GET that WeCom sends when the URL is saved in its console: the decrypted echostr to answer."""
    echostr = params.get("echostr", "")
    crypto.verify(
        signature=params.get("msg_signature", ""),
        timestamp=params.get("timestamp", ""),
        nonce=params.get("nonce", ""),
        ciphertext=echostr,
    )
    return crypto.decrypt(echostr)


def callback_receive(*, crypto: WeComCrypto, params, body: bytes) -> Received:
    """Verify and store one POSTed callback. Raises ``CallbackRejected`` (nothing written) when it is not
    WeCom's or not for us."""
    if len(body) > MAX_BODY:
        raise CallbackRejected("too_large", f"the body is larger than {MAX_BODY} bytes")
    ciphertext = xml_fields(body).get("Encrypt", "")
    crypto.verify(
        signature=params.get("msg_signature", ""),
        timestamp=params.get("timestamp", ""),
        nonce=params.get("nonce", ""),
        ciphertext=ciphertext,
    )
    message = crypto.decrypt(ciphertext)
    fields = xml_fields(message)
    event_at = None
    if fields.get("CreateTime", "").isdigit():
        event_at = dt.datetime.fromtimestamp(int(fields["CreateTime"]), tz=dt.UTC)
    key = hashlib.sha256(message.encode()).hexdigest()
    with transaction.atomic():
        event, created = CallbackEvent.objects.get_or_create(
            key=key,
            defaults={
                "event": fields.get("Event", "")[:64],
                "change_type": fields.get("ChangeType", "")[:64],
                "userid": fields.get("UserID", "")[:64],
                "external_userid": fields.get("ExternalUserID", "")[:64],
                "payload": fields,
                "message": message,
                "event_at": event_at,
            },
        )
        if created:
            if event.event == "change_external_contact" and event.change_type in ADD_EVENTS:
                transaction.on_commit(adds_drain_wake)
            else:
                transaction.on_commit(lambda: _enqueue(event.pk))
    return Received(event, created)


def _enqueue(event_id: int) -> None:
    from .tasks import callback_process

    try:
        callback_process.delay(event_id)
    except Exception:  # the broker being down must not lose the event: the sweeper picks the row up
        logger.warning("could not enqueue WeCom callback %s; the sweeper will", event_id, exc_info=True)


# Adds are drained in batches by at most this many tasks at once (one per worker process of the queue);
# each holds a slot in the cache while it works, renewed with every batch.
ADD_DRAINERS = 2
DRAIN_SLOT_TTL = 10  # seconds: a drainer killed mid-work frees its slot within this


def _slot(n: int) -> str:
    return f"scrm:wecom:adds-drain:{n}"


def adds_drain_wake() -> None:
    """After an add is stored: start a drainer in a free slot; when every slot is taken, the drainers
    at work will see the add (they look once more after giving their slot up)."""
    from .tasks import adds_drain

    for n in range(ADD_DRAINERS):
        try:
            taken = cache.add(_slot(n), 1, timeout=DRAIN_SLOT_TTL)
        except Exception:  # the cache being down must not fail the callback: the sweeper picks the row up
            logger.warning("could not reach the cache to wake an adds drainer", exc_info=True)
            return
        if taken:
            try:
                adds_drain.delay(n)
            except Exception:  # broker down: free the slot; the sweeper picks the rows up
                cache.delete(_slot(n))
                logger.warning("could not enqueue the WeCom adds drainer; the sweeper will", exc_info=True)
            return


def adds_drain_slot_release_quietly(n: int) -> None:
    try:
        cache.delete(_slot(n))
    except Exception:  # the cache being down: the slot expires by itself
        logger.warning("could not free adds drain slot %s", n, exc_info=True)


def adds_drain_slot_renew(n: int) -> None:
    cache.set(_slot(n), 1, timeout=DRAIN_SLOT_TTL)


def adds_drain_slot_release(n: int) -> bool:
    """Give the slot up, then look once more: True (slot taken again) when adds arrived meanwhile."""
    cache.delete(_slot(n))
    pending = CallbackEvent.objects.filter(
        status=CallbackEvent.Status.PENDING, event="change_external_contact", change_type__in=ADD_EVENTS
    ).exists()
    return pending and cache.add(_slot(n), 1, timeout=DRAIN_SLOT_TTL)


def callback_event_claim(*, event_id: int, now: dt.datetime | None = None) -> CallbackEvent | None:
    """Take a pending row for processing: the row as claimed, or None when another worker has it or it is
    finished."""
    now = now or timezone.now()
    claimed = CallbackEvent.objects.filter(pk=event_id, status=CallbackEvent.Status.PENDING).update(
        status=CallbackEvent.Status.PROCESSING, claimed_at=now, attempts=F("attempts") + 1
    )
    return CallbackEvent.objects.get(pk=event_id) if claimed else None


def callback_event_still_ours(event: CallbackEvent) -> bool:
    """Inside the processing transaction: lock the row and check that the sweeper has not handed it to
    another worker meanwhile. The lock is held until commit, so the sweeper cannot take it back between
    this check and the ``done`` mark."""
    return (
        CallbackEvent.objects.select_for_update()
        .filter(pk=event.pk, status=CallbackEvent.Status.PROCESSING, attempts=event.attempts)
        .exists()
    )


def callback_events_sweep(*, now: dt.datetime | None = None) -> int:
    """Re-queue rows whose processing died (still ``processing`` after ``STUCK_AFTER``) and pending rows
    that were never enqueued or whose task was lost. Rows that failed ``MAX_ATTEMPTS`` times stay failed."""
    now = now or timezone.now()
    stuck = CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSING, claimed_at__lt=now - STUCK_AFTER)
    stuck.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=CallbackEvent.Status.FAILED, error="the worker was lost while processing it, too many times"
    )
    stuck.update(status=CallbackEvent.Status.PENDING)
    due = list(
        CallbackEvent.objects.filter(status=CallbackEvent.Status.PENDING)
        .filter(Q(claimed_at__isnull=True, received_at__lt=now - dt.timedelta(seconds=30)) | Q(claimed_at__lt=now))
        .values_list("pk", flat=True)[:1000]
    )
    for pk in due:
        _enqueue(pk)
    from .adds import welcomes_expire

    welcomes_expire(now=now)
    callback_events_purge(now=now)
    return len(due)


def callback_events_purge(*, now: dt.datetime | None = None) -> int:
    """Delete finished rows older than ``RETENTION`` (at most ``PURGE_BATCH`` per call: the sweeper runs
    every minute). Failed rows stay until someone has looked at them."""
    now = now or timezone.now()
    old = CallbackEvent.objects.filter(
        status__in=(CallbackEvent.Status.DONE, CallbackEvent.Status.IGNORED), received_at__lt=now - RETENTION
    ).values_list("pk", flat=True)[:PURGE_BATCH]
    deleted, _detail = CallbackEvent.objects.filter(pk__in=list(old)).delete()
    return deleted
