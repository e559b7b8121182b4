"""One-off messages (一对一消息) from a contact's page: recorded in the Delivery ledger, sent by the same sender
with the same consent, opt-out, address, cap and quiet-hour checks as broadcasts, answered in words; safe to
retry; scoped to the writer's contacts; released like broadcasts when the quiet hours change."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns import policy, sending, services
from campaigns.gateways.outbox import OutboxGateway
from campaigns.models import Delivery, FrequencyCap, FrequencyPolicy, MessageTemplate, OutboxMessage
from contacts.models import Contact
from contacts.services import contacts_reassign
from tests.factories import ContactFactory, UserFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
PASSWORD = "pass-word-123"

pytestmark = pytest.mark.urls("tests.campaigns.urls_for_tests")


@pytest.fixture(autouse=True)
def _english(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})
    FrequencyCap.objects.all().delete()


class AddressGateway(OutboxGateway):
    """The outbox, but needing the contact's address like a real gateway."""

    needs_address = True


class ExternalGateway(OutboxGateway):
    """Stands for an external gateway: not transactional, so a worker sends it."""

    transactional = False


def _send(actor, contact, **fields):
    fields.setdefault("medium", "wecom")
    if "template" not in fields:
        fields.setdefault("body", "{name}，您好！新品到店，欢迎来看看。")
    return services.message_send_one(actor=actor, contact=contact, **fields)


def _quiet_around_now(*, before: dt.timedelta = dt.timedelta(hours=1), after: dt.timedelta = dt.timedelta(hours=2)):
    now = timezone.localtime(timezone.now(), SHANGHAI)
    start, end = (now - before).time(), (now + after).time().replace(second=0, microsecond=0)
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True, quiet_start=start, quiet_end=end)
    return start, end


def test_a_one_off_message_is_sent_once_through_the_ledger(operator):
    contact = ContactFactory(owner=operator, name="王小姐")
    outcome = _send(operator, contact)
    assert outcome.state == "sent"
    assert outcome.message.startswith("Sent to 王小姐 via WeCom 1:1 (企业微信) at ")
    delivery = outcome.delivery
    assert (delivery.status, delivery.sent_by, delivery.broadcast_id, delivery.template_id) == (
        "sent",
        operator,
        None,
        None,
    )
    assert OutboxMessage.objects.get(delivery=delivery).body == "王小姐，您好！新品到店，欢迎来看看。"
    # A template from the library works the same way.
    greeting = MessageTemplate.objects.create(name="问候", body="{name}，好久不见")
    assert _send(operator, contact, template=greeting).state == "sent"
    assert OutboxMessage.objects.filter(contact=contact).count() == 2


def test_the_same_request_twice_sends_once(operator):
    contact = ContactFactory(owner=operator)
    first = _send(operator, contact, key="k" * 32)
    again = _send(operator, contact, key="k" * 32)
    assert first.delivery.pk == again.delivery.pk and again.state == "sent"
    assert Delivery.objects.count() == 1 and OutboxMessage.objects.count() == 1
    # The key of someone else's message is refused, naming nothing.
    other = ContactFactory(owner=operator)
    with pytest.raises(ValidationError) as error:
        _send(operator, other, key="k" * 32)
    assert "key" in error.value.message_dict and Delivery.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "reason", "words"),
    [
        ({"marketing_consent": False}, "no_consent", "has not agreed to receive marketing messages"),
        ({"opted_out_at": timezone.now()}, "opted_out", "opted out of messages"),
        ({"email": ""}, "no_address", "has no address for Email"),
    ],
)
def test_blocked_messages_say_why_in_words(operator, settings, fields, reason, words):
    settings.SCRM_GATEWAYS = {**settings.SCRM_GATEWAYS, "email": "tests.campaigns.test_oneoff.AddressGateway"}
    contact = ContactFactory(owner=operator, name="李先生", **fields)
    outcome = _send(operator, contact, medium="email", subject="新品")
    assert (outcome.state, outcome.delivery.status, outcome.delivery.reason) == ("blocked", "suppressed", reason)
    assert outcome.message == f"Not sent: 李先生 {words}." or words in outcome.message
    assert not OutboxMessage.objects.exists()


def test_the_frequency_cap_applies_to_one_off_messages_too(operator):
    FrequencyCap.objects.create(window="rolling", window_days=1, max_messages=1)
    contact = ContactFactory(owner=operator, name="赵女士")
    assert _send(operator, contact).state == "sent"
    outcome = _send(operator, contact)
    assert outcome.state == "blocked" and outcome.delivery.reason == "frequency_cap"
    assert "as many messages as the frequency policy allows" in outcome.message
    # A service template is exempt from the caps when the policy says so, never from consent.
    thanks = MessageTemplate.objects.create(name="发货通知", body="{name}，您的订单已发货", is_service=True)
    assert _send(operator, contact, template=thanks).state == "sent"
    assert OutboxMessage.objects.filter(contact=contact).count() == 2


def test_quiet_hours_hold_a_one_off_message_and_a_policy_change_releases_it(operator, manager):
    start, end = _quiet_around_now()
    contact = ContactFactory(owner=operator)
    outcome = _send(operator, contact)
    assert outcome.state == "queued" and "Waiting for the end of the quiet hours" in outcome.message
    delivery = Delivery.objects.get(pk=outcome.delivery.pk)
    assert (delivery.status, delivery.hold) == ("pending", "quiet_hours")
    assert delivery.not_before == policy.quiet_hours_end(timezone.now(), policy=policy.policy_get())
    assert not outcome.polls

    # The sender keeps it until then; the manager switches the quiet hours off: it goes at once, once.
    assert sending.deliveries_send_chunk(broadcast_id=None).sent == 0
    services.policy_update(
        user=manager, quiet_hours_enabled=False, quiet_start=start, quiet_end=end, exempt_service_messages=True, caps=[]
    )
    assert sending.deliveries_send_chunk(broadcast_id=None).sent == 1
    assert sending.deliveries_send_chunk(broadcast_id=None).claimed == 0
    assert OutboxMessage.objects.filter(contact=contact).count() == 1


def test_an_external_gateway_queues_the_message_for_a_worker(operator, settings):
    settings.SCRM_GATEWAYS = {**settings.SCRM_GATEWAYS, "sms": "tests.campaigns.test_oneoff.ExternalGateway"}
    contact = ContactFactory(owner=operator)
    outcome = _send(operator, contact, medium="sms")
    assert outcome.state == "queued" and outcome.polls
    assert outcome.message == "Queued: it goes out within a few seconds."
    # What the worker does: the automations' sender also takes one-off messages, never WeCom welcomes.
    assert sending.deliveries_send_chunk(broadcast_id=None).sent == 1
    delivery = Delivery.objects.get()
    assert delivery.status == "sent"


def test_a_one_off_message_held_overnight_is_not_sent_once_the_contact_is_someone_elses(operator, other_operator):
    _quiet_around_now()
    contact = ContactFactory(owner=operator)
    outcome = _send(operator, contact)
    contacts_reassign(contacts=Contact.objects.filter(pk=contact.pk), owner=other_operator)
    Delivery.objects.filter(pk=outcome.delivery.pk).update(not_before=timezone.now())
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=False)
    sending.deliveries_send_chunk(broadcast_id=None)
    assert Delivery.objects.get(pk=outcome.delivery.pk).reason == "not_owned"
    assert not OutboxMessage.objects.exists()


def test_an_operator_cannot_message_another_operators_contact(operator, other_operator):
    theirs = ContactFactory(owner=other_operator)
    with pytest.raises(ValidationError) as error:
        _send(operator, theirs)
    assert error.value.message_dict == {"contact": ["Unknown contact."]}
    assert not Delivery.objects.exists()
    client = Client()
    client.login(username=operator.username, password=PASSWORD)
    url = reverse("campaigns:contact_message", args=[theirs.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"body": "hi", "medium": "wecom", "key": "a" * 32}).status_code == 404
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"body": ""}, "body", "Choose a template or write the message."),
        ({"body": "x" * 2001}, "body", "At most 2000 characters."),
        ({"body": "{name} {nickname}"}, "body", "Unknown placeholder {nickname}"),
        ({"body": "券码 {coupon}"}, "body", "The template uses {coupon}"),
        ({"subject": "标题"}, "subject", "Only an email has a subject."),
        ({"medium": "fax"}, "medium", "Unknown medium"),
        ({"key": "short"}, "key", "The form expired"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(operator, fields, field, text):
    contact = ContactFactory(owner=operator)
    with pytest.raises(ValidationError) as error:
        _send(operator, contact, **fields)
    assert any(text in message for message in error.value.message_dict[field]), error.value.message_dict
    assert not Delivery.objects.exists()


def test_a_template_and_a_text_together_or_a_template_needing_variables_are_refused(operator):
    contact = ContactFactory(owner=operator)
    coupon = MessageTemplate.objects.create(name="券", body="{name} 券码 {coupon}")
    with pytest.raises(ValidationError) as error:
        _send(operator, contact, template=coupon)
    assert "only a broadcast gives" in error.value.message_dict["template"][0]
    plain = MessageTemplate.objects.create(name="问候", body="{name}，您好")
    with pytest.raises(ValidationError) as error:
        _send(operator, contact, template=plain, body="还有这段")
    assert "not both" in error.value.message_dict["body"][0]
    assert not Delivery.objects.exists()


def test_erasing_the_contact_erases_what_was_written_to_them(operator, manager):
    from contacts.services import contact_erase

    contact = ContactFactory(owner=operator)
    outcome = _send(operator, contact, body="{name}，您在13800001111的订单")
    contact_erase(contact=contact, actor=manager)
    delivery = Delivery.objects.get(pk=outcome.delivery.pk)
    assert (delivery.subject, delivery.body) == ("", "—")


# --- The page ---------------------------------------------------------------------------------------


def _client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_form_sends_in_place_with_htmx_and_shows_the_outcome(operator, django_assert_max_num_queries):
    contact = ContactFactory(owner=operator, name="陈女士", marketing_consent=False)
    client = _client(operator)
    url = reverse("campaigns:contact_message", args=[contact.pk])
    form = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="contact-message-form"' in form and 'name="key"' in form
    with django_assert_max_num_queries(25):
        response = client.post(
            url, {"body": "{name}，您好", "medium": "wecom", "key": "b" * 32}, HTTP_HX_REQUEST="true"
        )
    page = response.content.decode()
    assert 'data-state="blocked"' in page and "陈女士 has not agreed to receive marketing messages" in page
    # A fresh form with a new key is ready for the next message.
    assert 'value="' + "b" * 32 + '"' not in page and 'data-testid="contact-message-form"' in page
    # Without htmx: back to the contact's page with the outcome as a message.
    Contact.objects.filter(pk=contact.pk).update(marketing_consent=True)
    response = client.post(url, {"body": "{name}，您好", "medium": "wecom", "key": "c" * 32}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("contacts:detail", args=[contact.pk])
    assert any("Sent to 陈女士" in str(m) for m in response.context["messages"])


def test_the_form_shows_errors_on_the_fields(operator):
    contact = ContactFactory(owner=operator)
    client = _client(operator)
    url = reverse("campaigns:contact_message", args=[contact.pk])
    page = client.post(url, {"body": "", "medium": "wecom", "key": "d" * 32}, HTTP_HX_REQUEST="true").content.decode()
    assert "Choose a template or write the message." in page and not Delivery.objects.exists()


def test_the_outcome_of_a_queued_message_can_be_polled_only_by_who_may_see_it(operator, other_operator, settings):
    settings.SCRM_GATEWAYS = {**settings.SCRM_GATEWAYS, "sms": "tests.campaigns.test_oneoff.ExternalGateway"}
    contact = ContactFactory(owner=operator)
    outcome = _send(operator, contact, medium="sms")
    url = reverse("campaigns:delivery_status", args=[outcome.delivery.pk])
    page = _client(operator).get(url).content.decode()
    assert 'data-state="queued"' in page and "hx-trigger" in page
    sending.deliveries_send_chunk(broadcast_id=None)
    page = _client(operator).get(url).content.decode()
    assert 'data-state="sent"' in page and "hx-trigger" not in page
    assert _client(other_operator).get(url).status_code == 404


def test_the_contact_page_partial_loads_the_form(operator):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    contact = ContactFactory(owner=operator)
    request = RequestFactory().get("/")
    request.user = operator
    html = render_to_string("campaigns/partials/contact_message.html", {"contact": contact}, request=request)
    assert reverse("campaigns:contact_message", args=[contact.pk]) in html and 'hx-trigger="load"' in html


# --- With a real worker (PostgreSQL) ---------------------------------------------------------------


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.postgres
def test_a_real_worker_sends_held_one_off_messages_once_when_the_quiet_hours_end_early(celery_worker_process):
    operator = UserFactory(username="op", role="operator")
    manager = UserFactory(username="mgr", role="manager")
    contacts = [ContactFactory(owner=operator) for _ in range(20)]
    start, end = _quiet_around_now()
    outcomes = [_send(operator, contact, key=f"key-{contact.pk:08d}") for contact in contacts]
    # A retried form post on top of it: still one delivery per message.
    _send(operator, contacts[0], key=f"key-{contacts[0].pk:08d}")
    assert {outcome.state for outcome in outcomes} == {"queued"}
    celery_worker_process(concurrency=2)
    services.policy_update(
        user=manager, quiet_hours_enabled=False, quiet_start=start, quiet_end=end, exempt_service_messages=True, caps=[]
    )
    sent = Delivery.objects.filter(one_off_key__isnull=False, status="sent")

    def all_sent():
        sending.broadcasts_tick(stale_after=dt.timedelta(seconds=0))
        return sent.count() == 20

    _wait_for(all_sent, timeout=120, what="the worker to send the released messages")
    assert Delivery.objects.count() == 20 and OutboxMessage.objects.count() == 20
    assert not OutboxMessage.objects.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()
