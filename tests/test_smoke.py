from __future__ import annotations

from contacts.models import Contact


def test_roles_exist_after_migrate(db):
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"admin", "manager", "operator", "integrator"}


def test_operator_api_lists_only_own_contacts(operator, other_operator, operator_api):
    from tests.factories import ContactFactory

    mine = ContactFactory(owner=operator)
    ContactFactory(owner=other_operator)
    response = operator_api.get("/api/v1/contacts/")
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    assert Contact.objects.count() == 2
