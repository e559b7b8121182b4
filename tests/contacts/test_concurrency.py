"""Idempotent ingestion under concurrent retries. Real concurrency needs a server database: on SQLite
writers are serialised by the file lock, so these run on PostgreSQL only."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from contacts.models import Contact, Purchase
from tests.factories import ContactFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def _race(target) -> list:
    barrier = threading.Barrier(THREADS)
    results: list = []
    lock = threading.Lock()

    def run():
        try:
            barrier.wait()
            outcome = target()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_retries_of_one_order_create_exactly_one_purchase_through_the_service():
    from contacts.services import purchase_record

    contact = ContactFactory()

    def attempt():
        purchase, created = purchase_record(
            contact=contact,
            external_order_id="RACE-1",
            purchased_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
            amount=Decimal("88.00"),
        )
        return purchase.pk, created

    results = _race(attempt)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Purchase.objects.filter(external_order_id="RACE-1").count() == 1
    contact.refresh_from_db()
    assert contact.purchase_count == 1 and contact.total_spent == Decimal("88.00")


def test_concurrent_api_posts_of_one_order_answer_one_201_and_the_rest_200(integrator):
    contact = ContactFactory()
    payload = {
        "contact": contact.pk,
        "external_order_id": "RACE-API",
        "purchased_at": "2026-03-01T10:00:00+08:00",
        "amount": "120.00",
    }

    def attempt():
        client = APIClient()
        client.force_authenticate(integrator)
        response = client.post("/api/v1/purchases/", payload, format="json")
        return response.status_code, response.json()["id"]

    results = _race(attempt)
    codes = sorted(code for code, _ in results)
    assert codes == [200] * (THREADS - 1) + [201], results
    assert len({pk for _, pk in results}) == 1
    assert Purchase.objects.count() == 1


def test_concurrent_different_orders_of_one_contact_all_count_in_its_facts():
    from contacts.services import purchase_record

    contact = ContactFactory()
    counter = iter(range(THREADS))
    lock = threading.Lock()

    def attempt():
        with lock:
            n = next(counter)
        return purchase_record(
            contact=contact,
            external_order_id=f"MANY-{n}",
            purchased_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
            amount=Decimal("10.00"),
        )

    results = _race(attempt)
    assert not [r for r in results if isinstance(r, Exception)], results
    contact = Contact.objects.get(pk=contact.pk)
    assert contact.purchase_count == THREADS
    assert contact.total_spent == Decimal("10.00") * THREADS
    assert contact.stage == Contact.Stage.REPEAT
