"""Forms of the follow-up task pages (跟进任务): a new task (on the task list and on a contact's page) and
completing one with its outcome. They parse what the browser sends; the rules are in
``campaigns.followups``, whose errors ``attach_service_errors`` puts back on the fields."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.forms import user_label
from contacts.models import Contact, Touchpoint
from contacts.selectors import staff_users
from scrm import limits

from .followups import TITLE_MAX_LENGTH, may_assign_to_others
from .forms import _date_time_input

#: How many contacts the task list's contact drop-down offers before the user searches.
CONTACT_CHOICES_SHOWN = 30


def contact_label(contact: Contact) -> str:
    """A contact in a drop-down: the name and the last four digits of the phone (never the whole number)."""
    name = contact.name or f"#{contact.pk}"
    return f"{name} · {contact.phone[-4:]}" if contact.phone else name


def contact_choices(user, *, search: str = "", selected: int | None = None) -> list[tuple[int | str, str]]:
    """Up to ``CONTACT_CHOICES_SHOWN`` live contacts ``user`` may see, matching ``search`` (name or
    phone), the most recently active first; plus the ``selected`` one so a redisplayed form keeps it."""
    contacts = Contact.objects.live().visible_to(user).filter(erased_at__isnull=True).only("pk", "name", "phone")
    search = (search or "").strip()[:100]
    if search:
        contacts = contacts.filter(Q(name__icontains=search) | Q(phone__contains=search))
    shown = list(contacts.order_by("-last_interaction_at", "-acquired_at", "-id")[:CONTACT_CHOICES_SHOWN])
    if selected and all(c.pk != selected for c in shown):
        shown = list(Contact.objects.live().visible_to(user).filter(pk=selected).only("pk", "name", "phone")) + shown
    return [(c.pk, contact_label(c)) for c in shown]


def _tomorrow_at_ten() -> dt.datetime:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(tomorrow, dt.time(10, 0)))


class FollowUpTaskForm(forms.Form):
    """A new follow-up task. On a contact's page the contact is fixed (``contact=``) and the field is left
    out; on the task list it is chosen among the contacts the user may see. The assignee is offered only
    to those who may assign others (managers); left empty, the task goes to the contact's owner."""

    contact = forms.ModelChoiceField(label=_("Contact"), queryset=Contact.objects.none())
    title = forms.CharField(
        label=_("Task"),
        max_length=TITLE_MAX_LENGTH,
        validators=[limits.text_check],
        widget=forms.TextInput(attrs={"placeholder": _("e.g. Call back about the trial pack")}),
    )
    due_at = forms.DateTimeField(
        label=_("Due"), required=False, validators=[limits.date_check], widget=_date_time_input()
    )
    remind_at = forms.DateTimeField(
        label=_("Remind me at"), required=False, validators=[limits.date_check], widget=_date_time_input()
    )
    assignee = forms.ModelChoiceField(
        label=_("Assignee"), queryset=staff_users(), required=False, empty_label=_("The contact's owner")
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=limits.TEXT_MAX_LENGTH,
        validators=[limits.text_check],
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, data=None, *, user, contact: Contact | None = None, prefix: str | None = None, **kwargs):
        kwargs.setdefault("initial", {"due_at": _tomorrow_at_ten()})
        super().__init__(data, prefix=prefix, **kwargs)
        self.user, self.fixed_contact = user, contact
        if contact is not None:
            del self.fields["contact"]
        else:
            field = self.fields["contact"]
            field.queryset = Contact.objects.live().visible_to(user).filter(erased_at__isnull=True)
            selected = self._selected_contact()
            # Rendered choices: a short list (the search fills it in); any visible contact validates.
            field.widget.choices = [("", _("Choose a contact")), *contact_choices(user, selected=selected)]
        if may_assign_to_others(user):
            self.fields["assignee"].label_from_instance = user_label
        else:
            del self.fields["assignee"]

    def _selected_contact(self) -> int | None:
        raw = self.data.get(self.add_prefix("contact")) if self.is_bound else self.initial.get("contact")
        try:
            return int(getattr(raw, "pk", raw)) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def service_values(self) -> dict:
        """The cleaned values as ``follow_up_task_add`` takes them."""
        data = self.cleaned_data
        return {
            "contact": self.fixed_contact if self.fixed_contact is not None else data["contact"],
            "title": data["title"],
            "due_at": data.get("due_at"),
            "remind_at": data.get("remind_at"),
            "note": data.get("note") or "",
            "assignee": data.get("assignee"),
        }


class FollowUpTaskCompleteForm(forms.Form):
    """Complete a task: what came of it (跟进结果), and how the follow-up happened."""

    outcome = forms.CharField(
        label=_("Outcome"),
        required=False,
        max_length=limits.TEXT_MAX_LENGTH,
        validators=[limits.text_check],
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": _("What came of it?")}),
    )
    medium = forms.ChoiceField(
        label=_("Via"), choices=Touchpoint.Medium.choices, initial=Touchpoint.Medium.WECOM, required=False
    )

    def __init__(self, data=None, *, task=None, **kwargs):
        # One form per task row: the prefix keeps the ids (labels) of the rows apart.
        super().__init__(data, prefix=f"task{task.pk}" if task is not None else None, **kwargs)

    def service_values(self) -> dict:
        return {
            "outcome": self.cleaned_data.get("outcome") or "",
            "medium": self.cleaned_data.get("medium") or Touchpoint.Medium.WECOM,
        }
