"""The default gateway: records the rendered message in ``OutboxMessage``, as if it had been sent.

It writes to our own database, so the engine calls it inside the transaction that marks the
deliveries sent: both rows commit together or not at all."""

from __future__ import annotations

from campaigns.models import OutboxMessage

from .base import Gateway, OutgoingMessage, SendResult

SUBJECT_MAX = OutboxMessage._meta.get_field("subject").max_length


class OutboxGateway(Gateway):
    name = "outbox"
    transactional = True
    needs_address = False

    def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        # One row per delivery (a one-to-one): sending the same delivery again changes nothing.
        OutboxMessage.objects.bulk_create(
            [
                OutboxMessage(
                    delivery_id=m.delivery_id,
                    contact_id=m.contact_id,
                    medium=m.medium,
                    subject=m.subject[:SUBJECT_MAX],
                    body=m.body,
                )
                for m in messages
            ],
            ignore_conflicts=True,
        )
        return [SendResult(m.delivery_id, ok=True) for m in messages]
