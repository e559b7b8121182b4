"""The project's INSERT … SELECT builder (``scrm.sql.insert_select``), exercised on the delivery ledger: one
row per source row in one statement, conflicts skipped, values bound rather than spliced into the SQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F, Value
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Delivery
from contacts.models import Contact
from scrm.sql import insert_select
from tests.campaigns.factories import BroadcastFactory
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def _columns(broadcast, *, error: str = "") -> dict:
    return {
        "broadcast": Value(broadcast.pk),
        "contact_id": F("pk"),
        "medium": Value("wecom"),
        "template_id": Value(broadcast.template_id),
        "is_marketing": Value(True),
        "status": Value(Delivery.Status.PENDING),
        "reason": Value(""),
        "attempts": Value(0),
        "created_at": Value(timezone.now()),
        "error": Value(error),
        "gateway": Value(""),
        "gateway_message_id": Value(""),
        "gateway_state": Value(""),
    }


def test_insert_select_writes_one_row_per_source_row_in_one_statement():
    broadcast = BroadcastFactory()
    contacts = [ContactFactory(), ContactFactory(), ContactFactory()]

    with CaptureQueriesContext(connection) as queries:
        written = insert_select(Delivery, Contact.objects.all(), _columns(broadcast))

    assert written == 3
    assert len(queries) == 1
    assert sorted(Delivery.objects.filter(broadcast=broadcast).values_list("contact_id", flat=True)) == sorted(
        c.pk for c in contacts
    )


def test_insert_select_skips_rows_that_already_exist():
    broadcast = BroadcastFactory()
    first = ContactFactory()
    insert_select(Delivery, Contact.objects.filter(pk=first.pk), _columns(broadcast))
    ContactFactory()

    assert insert_select(Delivery, Contact.objects.all(), _columns(broadcast)) == 1
    assert insert_select(Delivery, Contact.objects.all(), _columns(broadcast)) == 0
    assert Delivery.objects.filter(broadcast=broadcast).count() == 2


def test_insert_select_binds_values_instead_of_splicing_them():
    broadcast = BroadcastFactory()
    ContactFactory()
    hostile = "'); DROP TABLE campaigns_delivery; --"

    insert_select(Delivery, Contact.objects.all(), _columns(broadcast, error=hostile))

    assert Delivery.objects.get().error == hostile
