"""Forms of the pages that make sending visible: the broadcast editor's estimate and preview, a one-off message
from a contact's page, switching an automation on (with the explicit “also apply to the contacts who match
now”), and the filters of a broadcast's per-recipient list and an automation's run history. They only parse
what the browser sends; the rules are in the services (``campaigns.oneoff``, ``campaigns.automations``).
"""

from __future__ import annotations

import uuid

from django import forms
from django.utils.translation import gettext_lazy as _

from communities.models import Community

from . import selectors
from .forms import ContactPickField, SelectOne, VariablesField, _date_time_input
from .models import AutomationRun, Delivery, Medium, MessageTemplate, Segment


class BroadcastEstimateForm(forms.Form):
    """The broadcast editor's fields that decide who receives what (posted by htmx as the form changes), and
    the contact to preview the message for (``sample``, else the first who would receive it)."""

    segment = forms.ModelChoiceField(label=_("Segment"), queryset=Segment.objects.none(), required=False)
    communities = forms.ModelMultipleChoiceField(
        label=_("Communities"), queryset=Community.objects.none(), required=False
    )
    template = forms.ModelChoiceField(label=_("Template"), queryset=MessageTemplate.objects.none(), required=False)
    variables = VariablesField(label=_("Variables"))
    medium = forms.ChoiceField(label=_("Sent via"), choices=Medium.choices, initial=Medium.WECOM)
    when = forms.CharField(required=False)
    scheduled_at = forms.DateTimeField(label=_("Send at"), required=False, widget=_date_time_input())
    sample = ContactPickField(label=_("Preview for"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = selectors.segment_list(user)
        self.fields["communities"].queryset = Community.objects.visible_to(user)
        self.fields["template"].queryset = selectors.template_list(user)
        self.fields["sample"].user = user
        self.fields["sample"].widget.attrs.update({"id": "id_sample", "data-testid": "estimate-sample"})


class OneOffMessageForm(forms.Form):
    """One message to one contact: a template from the library, or the message written here."""

    template = forms.ModelChoiceField(
        label=_("Template"),
        queryset=MessageTemplate.objects.none(),
        required=False,
        empty_label=_("No template: write it below"),
    )
    body = forms.CharField(
        label=_("Message"),
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("{name}, hello!")}),
        help_text=_("Placeholders such as {name} and {owner} are filled in for the contact."),
    )
    subject = forms.CharField(label=_("Subject"), required=False, max_length=200, help_text=_("Email only."))
    medium = forms.ChoiceField(label=_("Sent via"), choices=Medium.choices, initial=Medium.WECOM)
    # A fresh key each time the form is shown: the same submission twice sends once.
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = selectors.template_list(user).filter(
            is_active=True, kind=MessageTemplate.Kind.MESSAGE
        )
        for name in ("template", "body", "subject", "medium"):
            self.fields[name].widget.attrs.setdefault("data-testid", f"message-{name}")

    def service_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "template": data.get("template"),
            "body": data.get("body") or "",
            "subject": data.get("subject") or "",
            "medium": data["medium"],
            "key": data["key"],
        }


class AutomationActivateForm(forms.Form):
    apply_to_current = forms.BooleanField(required=False, initial=False)


def fit_delivery_filters(form: forms.Form) -> forms.Form:
    """A broadcast's recipients (``DeliveryFilterSet``): status, reason and hold as one drop-down each."""
    form.fields["status"].widget = SelectOne(choices=[("", _("All statuses")), *Delivery.Status.choices])
    form.fields["reason"].widget = SelectOne(choices=[("", _("Any reason")), *Delivery.Reason.choices])
    form.fields["hold"].widget = forms.Select(choices=[("", _("Anything")), *Delivery.Hold.choices])
    for name in ("broadcast", "automation", "contact", "medium"):
        form.fields.pop(name, None)
    return form


def fit_run_filters(form: forms.Form) -> forms.Form:
    """An automation's runs (``AutomationRunFilterSet``): the status as one drop-down."""
    form.fields["status"].widget = SelectOne(choices=[("", _("All statuses")), *AutomationRun.Status.choices])
    for name in ("automation", "contact"):
        form.fields.pop(name, None)
    return form
