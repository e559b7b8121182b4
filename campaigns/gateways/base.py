"""The gateway interface: what the sending engine hands to a backend and what it gets back.

A gateway turns rendered messages into real sends. It answers one ``SendResult`` per message, in the
same order, and never raises for a message that could not be sent: it says whether the failure is
worth retrying later (``transient``) or final. It raises only for programming errors.

``gateway_for(medium)`` picks the backend named in ``settings.SCRM_GATEWAYS[medium]``: one of the
built-in names below or the dotted path of a ``Gateway`` subclass. Instances are cached per process
(they hold no per-send state) and dropped when a relevant setting changes (tests).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

BACKENDS = {
    "outbox": "campaigns.gateways.outbox.OutboxGateway",
    "email": "campaigns.gateways.email.EmailGateway",
    "webhook": "campaigns.gateways.webhook.WebhookGateway",
    "wecom": "campaigns.gateways.wecom.WeComGateway",
}

# Settings a gateway reads when it is built; changing one drops the cached instances.
_GATEWAY_SETTINGS = re.compile(
    r"^(SCRM_GATEWAYS|SCRM_GATEWAY_TIMEOUT|SCRM_WEBHOOK_.*|WECOM_.*|EMAIL_.*|DEFAULT_FROM_EMAIL)$"
)


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one delivery."""

    delivery_id: int
    contact_id: int
    medium: str
    subject: str
    body: str  # already rendered
    # wecom/group: contact.wecom_external_userid; email: contact.email; sms: contact.phone;
    # official_account: contact.wechat_unionid ("" if none)
    address: str
    sender: str  # the owner's WeCom userid (their wecom.StaffAccount); "" if the owner has none


@dataclass(frozen=True)
class SendResult:
    """What became of one message."""

    delivery_id: int
    ok: bool
    transient: bool = False  # failed but worth retrying later with backoff
    error: str = ""
    message_id: str = ""
    state: str = ""  # gateway-side state, e.g. "awaiting_confirmation" for WeCom


class Gateway:
    """A sending backend. Subclasses set ``name`` and implement ``send``; ``__init__`` reads and checks
    the settings it needs and raises ``ImproperlyConfigured`` when one is missing."""

    name: str = ""
    # True only when send() writes to our own database: the engine then calls it inside the transaction
    # that marks the deliveries sent, so a crash can never leave one without the other.
    transactional: bool = False
    # False when the backend needs no contact address (the outbox records the message for anyone).
    needs_address: bool = True

    def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """One result per message, same order. Never raises for per-message failures."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def failed(message: OutgoingMessage, error: str, *, transient: bool = False) -> SendResult:
    return SendResult(message.delivery_id, ok=False, transient=transient, error=error)


_QUERY = re.compile(r"\?[^\s'\")]*")


def describe_exception(exc: BaseException) -> str:
    """A short, safe description of a network error for the delivery's ``error`` column. Query strings
    are cut out: the WeCom ``access_token``/``corpsecret`` travel in them and must not be stored."""
    text = _QUERY.sub("?…", str(exc))
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_instances: dict[str, Gateway] = {}
_lock = threading.Lock()


def gateway_for(medium: str) -> Gateway:
    """The gateway that sends ``medium``, as configured in ``settings.SCRM_GATEWAYS``."""
    try:
        backend = settings.SCRM_GATEWAYS[medium]
    except KeyError:
        raise ImproperlyConfigured(
            f"No gateway is configured for medium {medium!r}: add it to SCRM_GATEWAYS."
        ) from None
    gateway = _instances.get(backend)
    if gateway is not None:
        return gateway
    path = BACKENDS.get(backend) or (backend if "." in backend else None)
    if path is None:
        choices = ", ".join(sorted(BACKENDS))
        raise ImproperlyConfigured(
            f"Unknown gateway {backend!r} for medium {medium!r} in SCRM_GATEWAYS: use one of {choices} "
            "or the dotted path of a Gateway subclass."
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Cannot import gateway {path!r} for medium {medium!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Gateway)):
        raise ImproperlyConfigured(f"{path!r} (SCRM_GATEWAYS[{medium!r}]) is not a Gateway subclass.")
    gateway = cls()  # reads and checks its settings; raises ImproperlyConfigured (and is not cached)
    with _lock:
        return _instances.setdefault(backend, gateway)


@receiver(setting_changed)
def _drop_cached_gateways(*, setting: str, **kwargs) -> None:
    if _GATEWAY_SETTINGS.match(setting):
        with _lock:
            _instances.clear()
