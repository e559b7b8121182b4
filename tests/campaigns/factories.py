"""factory_boy factories for the campaigns app (and the analytics scores the segments read)."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from analytics.models import ContactScore, Layer
from campaigns.models import Broadcast, MessageTemplate, Segment
from tests.factories import ContactFactory, UserFactory

EVERYONE = {"op": "and", "rules": []}


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"人群{n}")
    rules = factory.LazyFunction(lambda: dict(EVERYONE, rules=[]))


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    name = factory.Sequence(lambda n: f"模板{n}")
    body = "{name}，您好"


class BroadcastFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Broadcast

    name = factory.Sequence(lambda n: f"群发{n}")
    template = factory.SubFactory(MessageTemplateFactory)
    segment = factory.SubFactory(SegmentFactory)
    created_by = factory.SubFactory(UserFactory)


class ContactScoreFactory(factory.django.DjangoModelFactory):
    """A nightly score row, written here directly (in the app only ``analytics.scores`` writes them)."""

    class Meta:
        model = ContactScore

    contact = factory.SubFactory(ContactFactory)
    layer = Layer.NONE
    as_of = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=1))
    computed_at = factory.LazyFunction(timezone.now)
