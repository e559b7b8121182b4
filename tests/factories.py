"""factory_boy factories for the domain. Write paths that have services (purchases, memberships)
should be exercised through the services in tests; these factories build starting data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from communities.models import Community, Membership
from contacts.models import Channel, ChannelSpend, Contact, Product, Purchase, Tag, TagGroup, Touchpoint

User = get_user_model()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    first_name = factory.Faker("first_name", locale="zh_CN")
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"渠道{n}")
    kind = Channel.Kind.PAID_ADS


class ChannelSpendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelSpend

    channel = factory.SubFactory(ChannelFactory)
    start_date = dt.date(2026, 1, 1)
    end_date = dt.date(2026, 1, 31)
    amount = Decimal("1000.00")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    name = factory.Faker("name", locale="zh_CN")
    phone = factory.Sequence(lambda n: f"+86138{n:08d}")
    region = "上海"
    acquired_at = factory.LazyFunction(timezone.now)
    channel = factory.SubFactory(ChannelFactory)
    marketing_consent = True


class TagGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TagGroup
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"标签组{n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    group = factory.SubFactory(TagGroupFactory)
    name = factory.Sequence(lambda n: f"标签{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    name = factory.Sequence(lambda n: f"商品{n}")
    price = Decimal("99.00")
    repurchase_cycle_days = 30


class PurchaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purchase

    contact = factory.SubFactory(ContactFactory)
    external_order_id = factory.Sequence(lambda n: f"ORD{n:08d}")
    purchased_at = factory.LazyFunction(timezone.now)
    amount = Decimal("99.00")


class TouchpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Touchpoint

    contact = factory.SubFactory(ContactFactory)
    medium = Touchpoint.Medium.CHAT
    kind = Touchpoint.Kind.MESSAGE_IN
    occurred_at = factory.LazyFunction(timezone.now)


class CommunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Community

    name = factory.Sequence(lambda n: f"宝妈交流群{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    community = factory.SubFactory(CommunityFactory)
    contact = factory.SubFactory(ContactFactory)
    joined_at = factory.LazyFunction(timezone.now)
