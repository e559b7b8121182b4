"""A WeCom broadcast is sent from the owner's WeCom account as the staff mapping says, never from a userid
guessed from the username."""

from __future__ import annotations

import pytest

from campaigns import sending, services
from campaigns.gateways import SendResult
from campaigns.models import Broadcast, FrequencyPolicy, MessageTemplate, Segment
from tests.factories import ContactFactory
from wecom.models import StaffAccount

pytestmark = pytest.mark.django_db


class Capture:
    name = "capture"
    transactional = False
    needs_address = True

    def __init__(self) -> None:
        self.messages = []

    def send(self, messages):
        self.messages.extend(messages)
        return [SendResult(m.delivery_id, ok=True) for m in messages]


def test_the_sender_is_the_owners_mapped_wecom_userid(manager, operator, monkeypatch):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})
    StaffAccount.objects.create(userid="ZhangWei01", user=operator)
    mapped = ContactFactory(owner=operator, marketing_consent=True, wecom_external_userid="wmMapped")
    unmapped = ContactFactory(owner=manager, marketing_consent=True, wecom_external_userid="wmUnmapped")
    capture = Capture()
    monkeypatch.setattr(sending, "gateway_for", lambda medium: capture)
    template = MessageTemplate.objects.create(name="Promo", body="{name} 会员日")
    broadcast = services.broadcast_create(
        created_by=manager,
        name="会员日",
        template=template,
        segment=Segment.objects.create(name="Everyone", rules={"op": "and", "rules": []}),
        medium="wecom",
    )
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass
    assert Broadcast.objects.get(pk=broadcast.pk).status in (Broadcast.Status.SENDING, Broadcast.Status.SENT)
    senders = {m.contact_id: m.sender for m in capture.messages}
    assert senders == {mapped.pk: "ZhangWei01", unmapped.pk: ""}
