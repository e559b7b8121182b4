"""Factories for the automation (SOP) tests. Automations themselves are made through
``campaigns.automations.automation_create`` in the tests; ``AutomationFactory`` builds starting data
directly (e.g. rows the services would refuse)."""

from __future__ import annotations

import factory
from django.utils import timezone

from campaigns.models import Automation, MessageTemplate, Segment
from tests.factories import TagFactory, UserFactory


class AutomationTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    name = factory.Sequence(lambda n: f"SOP模板{n}")
    body = "{name}，您好"


class AutomationSegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"SOP人群{n}")
    rules = factory.LazyFunction(lambda: {"op": "and", "rules": []})


class AutomationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Automation

    name = factory.Sequence(lambda n: f"SOP{n}")
    trigger = Automation.Trigger.CONTACT_CREATED
    action = Automation.Action.ADD_TAG
    tag = factory.SubFactory(TagFactory)
    is_active = True
    active_since = factory.LazyFunction(timezone.now)
    created_by = factory.SubFactory(UserFactory)
