"""One-off messages (一对一消息) from a contact's page: one message to one contact, written by a staff member —
a template from the library, or their own text — recorded in the ``Delivery`` ledger like a broadcast's
messages and sent by the same sender with the same checks: consent, opt-out, an address for the medium, the
frequency caps and the quiet hours apply exactly as they do to broadcasts (``policy.recipients_checked`` when
the row is written, the sender's re-checks when it is claimed).

``message_send_one`` answers at once what became of the message: sent, queued (the quiet hours hold it; an
external gateway's worker sends it in a moment), or blocked with the reason in words. A request carries a key
(the form's hidden ``key``, unique in the ledger): a retried or double-submitted request finds the same
delivery and sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from contacts.models import Contact

from . import content, policy, sending
from .gateways import gateway_for
from .models import Delivery, Medium, MessageTemplate

BODY_MAX = 2000
SUBJECT_MAX = Delivery._meta.get_field("subject").max_length
_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")


@dataclass(frozen=True)
class OneOffOutcome:
    """What became of a one-off message: ``state`` is ``sent``, ``queued``, ``blocked`` or ``failed``;
    ``message`` says it in words for the person who wrote it."""

    delivery: Delivery
    state: str
    message: str

    @property
    def polls(self) -> bool:
        """Queued for a moment (a worker sends it within seconds): worth looking at again soon."""
        later = self.delivery.not_before is not None and self.delivery.not_before > timezone.now()
        return self.state == "queued" and not later


def _clean(*, actor, contact, medium, template, body, subject, key) -> dict:
    errors: dict[str, list[str]] = {}
    if contact is None or not (
        Contact.objects.live().visible_to(actor).filter(pk=contact.pk, erased_at__isnull=True).exists()
    ):
        # The same words for another's contact as for an id that does not exist.
        errors["contact"] = [_("Unknown contact.")]
    if medium not in Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    body = body.strip() if isinstance(body, str) else ""
    subject = subject.strip() if isinstance(subject, str) else ""
    if template is not None and body:
        errors["body"] = [_("Choose a template or write the message, not both.")]
    elif template is None and not body:
        errors["body"] = [_("Choose a template or write the message.")]
    elif template is not None:
        if not isinstance(template, MessageTemplate) or not template.is_active:
            errors["template"] = [_("Choose a template that is in use.")]
        else:
            for text, field in ((template.body, "template"), (template.subject, "template")):
                try:
                    content.template_validate(text, variables={}, require_variables=True)
                except ValidationError:
                    errors[field] = [
                        _(
                            "“%(name)s” needs values (a coupon, a link …) that only a broadcast gives; write the message instead."
                        )
                        % {"name": template.name}
                    ]
                    break
    else:
        if len(body) > BODY_MAX:
            errors["body"] = [_("At most %(max)d characters.") % {"max": BODY_MAX}]
        for text, field in ((body, "body"), (subject, "subject")):
            try:
                content.template_validate(text, variables={}, require_variables=True, field=field)
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    errors.setdefault(field if name == "variables" else name, []).extend(messages)
    if subject and medium != Medium.EMAIL:
        errors["subject"] = [_("Only an email has a subject.")]
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = [_("At most %(max)d characters.") % {"max": SUBJECT_MAX}]
    if key is not None and not (isinstance(key, str) and _KEY.match(key)):
        errors["key"] = [_("The form expired; reload the page and write the message again.")]
    if errors:
        raise ValidationError(errors)
    return {"body": "" if template is not None else body, "subject": "" if template is not None else subject}


def message_send_one(
    *,
    actor,
    contact: Contact,
    medium: str,
    template: MessageTemplate | None = None,
    body: str = "",
    subject: str = "",
    key: str | None = None,
) -> OneOffOutcome:
    """Send ``contact`` one message on ``medium``: ``template``, or ``body`` (and, for an email, ``subject``)
    written by ``actor``, who must see the contact. The delivery is written pending — or suppressed with the
    planner's reason — and, with a transactional gateway (the outbox), sent at once through the sender's own
    claim and checks; an external gateway's worker sends it within seconds. Safe to retry with the same
    ``key``: the first request's delivery is answered again. ``ValidationError`` keyed by field otherwise."""
    text = _clean(actor=actor, contact=contact, medium=medium, template=template, body=body, subject=subject, key=key)
    key = key or uuid.uuid4().hex
    existing = Delivery.objects.filter(one_off_key=key).first()
    if existing is not None:
        return _again(existing, actor=actor, contact=contact)
    now = timezone.now()
    is_marketing = not (template is not None and template.is_service)
    checked = policy.recipients_checked(
        Contact.objects.filter(pk=contact.pk), medium=medium, is_marketing=is_marketing, now=now
    )
    reason = checked.values_list("d_reason", flat=True).first() or ""
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                one_off_key=key,
                sent_by=actor,
                contact=contact,
                medium=medium,
                template=template,
                is_marketing=is_marketing,
                status=Delivery.Status.SUPPRESSED if reason else Delivery.Status.PENDING,
                reason=reason,
                **text,
            )
    except IntegrityError:
        # The same request twice at once: the other one wrote it.
        return _again(Delivery.objects.get(one_off_key=key), actor=actor, contact=contact)
    if delivery.status == Delivery.Status.PENDING:
        if gateway_for(medium).transactional:
            sending.deliveries_send_chunk(broadcast_id=None, only=[delivery.pk], now=now)
        else:
            from .tasks import deliveries_send as deliveries_send_task

            transaction.on_commit(lambda: deliveries_send_task.delay(None))
        delivery.refresh_from_db()
    return message_outcome(delivery, now=now)


def _again(delivery: Delivery, *, actor, contact: Contact) -> OneOffOutcome:
    if delivery.contact_id != contact.pk or delivery.sent_by_id != getattr(actor, "pk", None):
        raise ValidationError({"key": [_("The form expired; reload the page and write the message again.")]})
    return message_outcome(delivery)


def _when(moment: dt.datetime, now: dt.datetime) -> str:
    local, today = timezone.localtime(moment), timezone.localtime(now).date()
    return date_format(local, "H:i" if local.date() == today else "m-d H:i")


def message_outcome(delivery: Delivery, *, now: dt.datetime | None = None) -> OneOffOutcome:
    """What became of a one-off message (also of any delivery), in words."""
    now = now or timezone.now()
    name = delivery.contact.name or _("the contact")
    medium = delivery.get_medium_display()
    status = delivery.status
    if status == Delivery.Status.SENT:
        if delivery.gateway_state == "awaiting_confirmation":
            return OneOffOutcome(
                delivery, "sent", _("Handed to WeCom: the owner confirms the send in their WeCom client.")
            )
        return OneOffOutcome(
            delivery,
            "sent",
            _("Sent to %(name)s via %(medium)s at %(time)s.")
            % {"name": name, "medium": medium, "time": _when(delivery.sent_at or now, now)},
        )
    if status == Delivery.Status.FAILED:
        return OneOffOutcome(
            delivery, "failed", _("Not sent: the gateway refused it (%(error)s).") % {"error": delivery.error[:200]}
        )
    if status == Delivery.Status.SUPPRESSED:
        return OneOffOutcome(delivery, "blocked", blocked_words(delivery.reason, name=name, medium=medium))
    if delivery.not_before and delivery.not_before > now:
        if delivery.hold == Delivery.Hold.QUIET_HOURS:
            return OneOffOutcome(
                delivery,
                "queued",
                _("Waiting for the end of the quiet hours: it goes out at %(time)s.")
                % {"time": _when(delivery.not_before, now)},
            )
        return OneOffOutcome(
            delivery,
            "queued",
            _("The gateway did not answer; it tries again at %(time)s.") % {"time": _when(delivery.not_before, now)},
        )
    return OneOffOutcome(delivery, "queued", _("Queued: it goes out within a few seconds."))


def blocked_words(reason: str, *, name: str, medium: str) -> str:
    """Why a message was not sent, as a sentence."""
    words = {
        Delivery.Reason.NO_CONSENT: _("Not sent: %(name)s has not agreed to receive marketing messages."),
        Delivery.Reason.OPTED_OUT: _("Not sent: %(name)s opted out of messages."),
        Delivery.Reason.NO_ADDRESS: _("Not sent: %(name)s has no address for %(medium)s."),
        Delivery.Reason.FREQUENCY_CAP: _(
            "Not sent: %(name)s already received as many messages as the frequency policy allows for now."
        ),
        Delivery.Reason.QUIET_HOURS: _("Not sent: it is quiet hours."),
        Delivery.Reason.GONE: _("Not sent: the contact was erased or merged."),
        Delivery.Reason.NOT_OWNED: _("Not sent: %(name)s is no longer your contact."),
        Delivery.Reason.CANCELLED: _("Not sent: cancelled."),
    }
    text = words.get(reason, _("Not sent."))
    return text % {"name": name, "medium": medium}
