"""Forms of the WeCom pages: a channel live code (渠道活码) with its pool, welcome message (欢迎语) and link
attachments, and the mapping of a WeCom member to a Django user.

The forms parse what the browser sends; the rules about a code (a pool, caps, attachments, what WeCom
accepts) live in ``wecom.livecodes``, whose ``ValidationError`` is put back on the form naming the field.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from campaigns.models import MessageTemplate
from contacts.forms import user_label
from contacts.models import Channel, Tag
from contacts.selectors import staff_users

from .livecodes import MAX_ATTACHMENTS, PoolMember
from .models import LiveCode, StaffAccount
from .reports import GROUPINGS

LINK_ROWS = 3  # link attachments offered on the form; other kinds (images, mini-programs) come from the API

ERROR_KEY_LABELS = {
    "pool": _("Pool"),
    "welcome_attachments": _("Attachments"),
    "state": _("State"),
}


def attach_service_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    """Show a service's ``ValidationError`` on ``form``: on the field of the same name when there is one,
    else among the form's own errors, starting with a label naming the field."""
    errors = exc.error_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.error_list}
    for key, error_list in errors.items():
        messages = [message for error in error_list for message in ValidationError(error).messages]
        if key in form.fields:
            form.add_error(key, messages)
        elif key == NON_FIELD_ERRORS:
            form.add_error(None, messages)
        else:
            label = ERROR_KEY_LABELS.get(key, key.replace("_", " "))
            form.add_error(None, [f"{label}: {message}" for message in messages])


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: StaffAccount) -> str:
        return str(obj)


class TagChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Tag) -> str:
        return f"{obj.group.name} / {obj.name}"


class LiveCodeForm(forms.Form):
    """A live code. The pool is the checked ``pool`` boxes (staff account ids), each with an optional
    ``cap_<id>`` (adds per day); link attachments are ``link_title_<n>`` / ``link_url_<n>`` pairs."""

    name = forms.CharField(label=pgettext_lazy("a live code's", "Name"), max_length=100)
    channel = forms.ModelChoiceField(
        label=_("Channel"),
        queryset=Channel.objects.order_by("name"),
        empty_label=_("Choose a channel"),
        help_text=_("Where the people scanning this code come from: their contacts get this channel."),
    )
    pool = forms.TypedMultipleChoiceField(
        label=_("Pool (跟进成员)"),
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The staff members who take the adds, each with an optional daily cap."),
    )
    assignment = forms.ChoiceField(
        label=_("Assignment"), choices=LiveCode.Assignment.choices, widget=forms.RadioSelect, initial="round_robin"
    )
    backup_staff = StaffChoiceField(
        label=_("Backup staff"),
        queryset=StaffAccount.objects.none(),
        required=False,
        help_text=_("Takes the adds when every member of the pool has reached their daily cap."),
    )
    tags = TagChoiceField(
        label=_("Tags"),
        queryset=Tag.objects.select_related("group"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text=_("Put on every contact who adds through this code."),
    )
    welcome_template = forms.ModelChoiceField(
        label=_("Welcome message (欢迎语)"),
        queryset=MessageTemplate.objects.filter(is_active=True).order_by("category", "name"),
        required=False,
        help_text=_("Sent when a customer adds a staff member through this code; empty for none."),
    )
    skip_verify = forms.BooleanField(
        label=_("Add without verification"),
        required=False,
        initial=True,
        help_text=_("Customers are added at once, without the staff member accepting the request."),
    )

    def __init__(self, *args, live_code: LiveCode | None = None, **kwargs):
        self.live_code = live_code
        if live_code is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(live_code)
        super().__init__(*args, **kwargs)
        self.staff_accounts = list(StaffAccount.objects.order_by("-is_follow_user", "name", "userid"))
        self.fields["pool"].choices = [(s.pk, str(s)) for s in self.staff_accounts]
        self.fields["backup_staff"].queryset = StaffAccount.objects.order_by("-is_follow_user", "name", "userid")
        self.fields["backup_staff"].empty_label = gettext("— none —")
        self.fields["welcome_template"].empty_label = gettext("— no welcome message —")
        for staff in self.staff_accounts:
            self.fields[f"cap_{staff.pk}"] = forms.IntegerField(
                label=gettext("Daily cap of %(staff)s") % {"staff": staff},
                min_value=1,
                max_value=100000,
                required=False,
                widget=forms.TextInput(
                    attrs={"inputmode": "numeric", "placeholder": gettext("no cap"), "style": "max-width:8rem"}
                ),
            )
        for n in range(1, LINK_ROWS + 1):
            self.fields[f"link_title_{n}"] = forms.CharField(
                label=gettext("Link %(n)s title") % {"n": n}, max_length=128, required=False
            )
            self.fields[f"link_url_{n}"] = forms.URLField(
                label=gettext("Link %(n)s URL") % {"n": n},
                max_length=500,
                required=False,
                assume_scheme="https",
                widget=forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://"}),
            )

    @staticmethod
    def initial_for(live_code: LiveCode) -> dict:
        pool = list(live_code.pool.all())
        initial = {
            "name": live_code.name,
            "channel": live_code.channel_id,
            "pool": [m.staff_id for m in pool],
            "assignment": live_code.assignment,
            "backup_staff": live_code.backup_staff_id,
            "tags": [t.pk for t in live_code.tags.all()],
            "welcome_template": live_code.welcome_template_id,
            "skip_verify": live_code.skip_verify,
        }
        for member in pool:
            initial[f"cap_{member.staff_id}"] = member.daily_cap
        links = [
            a
            for a in live_code.welcome_attachments or []
            if isinstance(a, dict) and a.get("msgtype") == "link" and isinstance(a.get("link"), dict)
        ]
        for n, attachment in enumerate(links[:LINK_ROWS], start=1):
            link = attachment["link"]
            initial[f"link_title_{n}"] = link.get("title", "")
            initial[f"link_url_{n}"] = link.get("url", "")
        return initial

    def pool_rows(self) -> list[dict]:
        """One row per staff account for the pool table: whether it is checked and its cap field."""
        if self.is_bound:
            chosen = {str(v) for v in self.data.getlist("pool")} if hasattr(self.data, "getlist") else set()
        else:
            chosen = {str(v) for v in self.initial.get("pool") or []}
        return [
            {"staff": staff, "checked": str(staff.pk) in chosen, "cap": self[f"cap_{staff.pk}"]}
            for staff in self.staff_accounts
        ]

    def link_rows(self) -> list[tuple]:
        return [(self[f"link_title_{n}"], self[f"link_url_{n}"]) for n in range(1, LINK_ROWS + 1)]

    def clean(self):
        cleaned = super().clean()
        for n in range(1, LINK_ROWS + 1):
            title, url = cleaned.get(f"link_title_{n}"), cleaned.get(f"link_url_{n}")
            if title and not url and f"link_url_{n}" not in self.errors:
                self.add_error(f"link_url_{n}", gettext("Give the link's address, or clear its title."))
            if url and not title and f"link_title_{n}" not in self.errors:
                self.add_error(f"link_title_{n}", gettext("Give the link a title, or clear its address."))
        return cleaned

    def _attachments(self) -> list[dict]:
        links = []
        for n in range(1, LINK_ROWS + 1):
            title, url = self.cleaned_data.get(f"link_title_{n}"), self.cleaned_data.get(f"link_url_{n}")
            if title and url:
                links.append({"msgtype": "link", "link": {"title": title, "url": url}})
        # Images and mini-programs set through the API are kept: the form only edits the links.
        others = [
            a
            for a in (self.live_code.welcome_attachments if self.live_code else []) or []
            if not (isinstance(a, dict) and a.get("msgtype") == "link")
        ]
        return (others + links)[: MAX_ATTACHMENTS + 1]  # one over the limit still reaches the service's check

    def service_fields(self) -> dict:
        """The keyword arguments of ``live_code_create`` / ``live_code_update``."""
        data = self.cleaned_data
        by_id = {s.pk: s for s in self.staff_accounts}
        pool = [
            PoolMember(staff=by_id[pk], daily_cap=data.get(f"cap_{pk}")) for pk in data.get("pool") or [] if pk in by_id
        ]
        return {
            "name": data["name"],
            "channel": data["channel"],
            "pool": pool,
            "backup_staff": data.get("backup_staff"),
            "assignment": data["assignment"],
            "skip_verify": bool(data.get("skip_verify")),
            "tags": list(data.get("tags") or []),
            "welcome_template": data.get("welcome_template"),
            "welcome_attachments": self._attachments(),
        }


def user_choice_label(user) -> str:
    label = user_label(user)
    return label if label == user.get_username() else f"{label} ({user.get_username()})"


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return user_choice_label(obj)


class StaffAccountUserForm(forms.Form):
    """Which Django user works as a WeCom member: an active staff user, or nobody."""

    user = UserChoiceField(
        label=_("User"),
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.Select(attrs={"style": "width:auto; min-width:14rem"}),
    )

    def __init__(self, *args, staff_account: StaffAccount, **kwargs):
        self.staff_account = staff_account
        kwargs.setdefault("initial", {"user": staff_account.user_id})
        kwargs.setdefault("prefix", f"staff{staff_account.pk}")
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = staff_users()
        self.fields["user"].empty_label = gettext("— not mapped —")


MAX_DAYS = 366


class IntakeForm(forms.Form):
    """The report's parameters, shared by the page and the API (``wecom/intake/``)."""

    date_from = forms.DateField(label=_("From"), required=False)
    date_to = forms.DateField(label=_("To"), required=False)
    by = forms.ChoiceField(
        label=_("Per"),
        required=False,
        choices=[("channel", _("Channel")), ("live_code", _("Live code")), ("staff", _("Staff member"))],
    )

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        for name in ("date_from", "date_to"):
            if data.get(name) and not 2000 <= data[name].year <= 2100:
                self.add_error(name, _("Choose a date between 2000 and 2100."))
        if self.errors:
            return data
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - dt.timedelta(days=13)
        data["by"] = data.get("by") or "channel"
        if data["date_from"] > data["date_to"]:
            self.add_error("date_from", _("The start is after the end."))
        elif (data["date_to"] - data["date_from"]).days >= MAX_DAYS:
            self.add_error("date_from", _("At most %(days)d days at once.") % {"days": MAX_DAYS})
        assert data["by"] in GROUPINGS
        return data
