"""Forms of the contact dashboard pages: the list's filters and chips, bulk actions, saved views, a contact's tags
and CSV import."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from communities.models import Community

from .filtersets import IDS_MAX, ContactFilterSet
from .models import Channel, Contact, ImportJob, Tag
from .selectors import staff_users

User = get_user_model()

# The list page's filters, by how the page shows them: the search box; the small fixed choices as toggle
# pills (always in view); the long lists (tags, channels, communities, staff) as searchable pickers
# (static/js/list.js; without JavaScript they are scrollable lists of checkboxes); then the rest. Other
# filters of the shared FilterSet (tag_all, region, id, ...) still apply when they are in the query string,
# and get a chip.
SEARCH_FILTER = "search"
PILL_FILTERS = ("stage", "intent_level")
PICKER_FILTERS = ("tag", "channel", "community", "owner")
OTHER_FILTERS = ("acquired_from", "acquired_to")
# Used less often: under "More filters" (a <details>, open while one of them is set).
MORE_PILL_FILTERS = ("layer",)
MORE_FILTERS = ("predicted_clv_min", "predicted_clv_max")
DASHBOARD_FILTERS = (SEARCH_FILTER, *PILL_FILTERS, *PICKER_FILTERS, *OTHER_FILTERS, *MORE_PILL_FILTERS, *MORE_FILTERS)
# Filters that take several values, each value its own chip.
MULTI_FILTERS = (*PILL_FILTERS, *MORE_PILL_FILTERS, *PICKER_FILTERS, "tag_all")
# Short chip captions where the filter's own label is a sentence.
CHIP_LABELS = {
    "search": _("Search"),
    "tag": _("Tag"),
    "community": _("Community"),
    "id": _("Chosen"),
}
_TRUE_VALUES = {"true", "True", "1", "yes", "on"}


def user_label(user) -> str:
    return user.get_full_name() or user.get_username()


def tag_choices_by_group(tags: Iterable[Tag]) -> list[tuple[str, list[tuple[int, str]]]]:
    """Choices for a tag <select>, one <optgroup> per tag group (tags come ordered by group)."""
    grouped: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for tag in tags:
        grouped.setdefault(tag.group_id, (tag.group.name, []))[1].append((tag.pk, tag.name))
    return list(grouped.values())


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class OptionGroup:
    label: str
    options: list[Option]


@dataclass(frozen=True)
class Chip:
    """One active filter value above the table, with the list's address without it."""

    name: str
    label: str
    value: str
    remove_url: str


class DashboardContactFilterSet(ContactFilterSet):
    """The shared ``ContactFilterSet`` with choices fitted to the asking user: the owner filter only for
    those who see every staff member's contacts, communities limited to the ones the user may see, and
    each list of choices loaded once (one query per list, shared by the options and the chips)."""

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        user = request.user if request is not None else None
        self.shows_owner = Contact.objects.sees_all(user)
        self.filters["tag"].queryset = Tag.objects.select_related("group")
        self.filters["tag_all"].queryset = Tag.objects.select_related("group")
        self.filters["community"].queryset = Community.objects.visible_to(user).order_by("name", "id")
        if self.shows_owner:
            self.filters["owner"].queryset = staff_users()
        else:
            # Operators only see their own contacts: an owner filter would be noise, and must not list staff.
            del self.filters["owner"]
        for filter_ in self.filters.values():
            # A form field built (and cached) on the class-level filter would keep the unscoped choices.
            filter_.__dict__.pop("_field", None)

    @property
    def form(self):
        if not hasattr(self, "_form"):
            form = super().form
            form.fields["search"].label = _("Search")
            form.fields["search"].widget.attrs.update(
                {
                    "placeholder": _("Name, phone, last 4 digits, external ID or WeCom ID"),
                    "type": "search",
                    "autocomplete": "off",
                }
            )
            for name in ("acquired_from", "acquired_to"):
                form.fields[name].widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
            for name in ("predicted_clv_min", "predicted_clv_max"):
                form.fields[name].widget.attrs.update({"min": "0", "step": "any", "inputmode": "decimal"})
        return self._form

    # --- choices, loaded once --------------------------------------------------------------------

    @cached_property
    def _choice_groups(self) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
        """Each multi-value filter's choices as ``[(group label, [(value, label), ...]), ...]`` (one group
        with an empty label where the choices are not grouped)."""
        groups: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
        for name in ("stage", "intent_level", "layer"):
            groups[name] = [("", [(str(value), str(label)) for value, label in self.filters[name].extra["choices"]])]
        tags = [(group, [(str(pk), label) for pk, label in options]) for group, options in self._tag_choices]
        groups["tag"] = groups["tag_all"] = tags
        groups["channel"] = [("", [(str(c.pk), c.name) for c in Channel.objects.order_by("name")])]
        groups["community"] = [("", [(str(c.pk), c.name) for c in self.filters["community"].queryset])]
        if "owner" in self.filters:
            groups["owner"] = [("", [(str(u.pk), user_label(u)) for u in self.filters["owner"].queryset])]
        return groups

    @cached_property
    def _tag_choices(self):
        return tag_choices_by_group(self.filters["tag"].queryset)

    def _value_labels(self, name: str) -> dict[str, str]:
        labels = {}
        for group, options in self._choice_groups.get(name, []):
            for value, label in options:
                labels[value] = f"{group} · {label}" if group else label
        return labels

    def option_groups(self, name: str) -> list[OptionGroup]:
        """The options of a pill or picker filter, with the values of the query string ticked."""
        chosen = set(self._values(name))
        return [
            OptionGroup(label=group, options=[Option(value, label, value in chosen) for value, label in options])
            for group, options in self._choice_groups.get(name, [])
        ]

    def _values(self, name: str, data=None) -> list[str]:
        data = (self.data if data is None else data) or {}
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        return [str(v) for v in values if v not in (None, "") and str(v).strip()]

    # --- what the page shows ---------------------------------------------------------------------

    def pill_fields(self):
        return [(self.form[name], self.option_groups(name)) for name in PILL_FILTERS if name in self.form.fields]

    def picker_fields(self):
        return [(self.form[name], self.option_groups(name)) for name in PICKER_FILTERS if name in self.form.fields]

    def other_fields(self):
        return [self.form[name] for name in OTHER_FILTERS if name in self.form.fields]

    def more_pill_fields(self):
        return [(self.form[name], self.option_groups(name)) for name in MORE_PILL_FILTERS if name in self.form.fields]

    def more_fields(self):
        return [self.form[name] for name in MORE_FILTERS if name in self.form.fields]

    @property
    def more_is_set(self) -> bool:
        """Whether one of the filters under "More filters" is set (or wrong): then they start open."""
        names = (*MORE_PILL_FILTERS, *MORE_FILTERS)
        return any(self._values(name) for name in names) or any(name in self.form.errors for name in names)

    def visible_fields(self):
        return [self.form[name] for name in DASHBOARD_FILTERS if name in self.form.fields]

    def hidden_values(self) -> list[tuple[str, str]]:
        """The values of filters that have no field on the page (``region``, ``tag_all``, ``id``, ... from a
        link or a saved view): kept as hidden inputs, so that changing the other filters does not drop them."""
        shown = set(DASHBOARD_FILTERS)
        return [(name, value) for name in self.filters if name not in shown for value in self._values(name)]

    @property
    def is_filtered(self) -> bool:
        return any(self._values(name) for name in self.filters)

    def chips(self, base_url: str, data: QueryDict | None = None) -> list[Chip]:
        """One chip per active filter value (each value of a multi-value filter on its own), in the order of
        the filters, each linking to the same list without that value (and back on its first page). ``data``:
        another query string than the filter set's own (a saved view's), read with the same choices."""
        if data is None:
            data = self.data if isinstance(self.data, QueryDict) else QueryDict(mutable=True)
        chips = []
        for name, filter_ in self.filters.items():
            labels = self._value_labels(name) if name in MULTI_FILTERS else {}
            for value in self._values(name, data):
                chips.append(
                    Chip(
                        name=name,
                        label=str(CHIP_LABELS.get(name, filter_.label)),
                        value=self._chip_value(name, value, labels),
                        remove_url=_url_without(base_url, data, name, value),
                    )
                )
        return chips

    @staticmethod
    def _chip_value(name: str, value: str, labels: dict[str, str]) -> str:
        if name == "id":
            count = len([part for part in value.split(",") if part.strip()])
            return ngettext("%(count)d contact", "%(count)d contacts", count) % {"count": count}
        if name == "marketing_consent":
            return str(_("Yes") if value in _TRUE_VALUES else _("No"))
        return labels.get(value, value)


def _url_without(base_url: str, data: QueryDict, name: str, value: str) -> str:
    kept = QueryDict(mutable=True)
    for key, values in data.lists():
        if key == "page":
            continue
        for item in values:
            if not (key == name and item == value) and item != "":
                kept.appendlist(key, item)
    return f"{base_url}?{kept.urlencode()}" if kept else base_url


class IdListField(forms.Field):
    """A list of positive integer ids from repeated form values (``?id=1&id=2``)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": _("Enter a list of contact ids.")}

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        try:
            ids = [int(v) for v in value]
        except (TypeError, ValueError) as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc
        if any(i <= 0 for i in ids):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return sorted(set(ids))


class TagChoiceMixin:
    def _group_tag_choices(self, field_name: str) -> None:
        field = self.fields[field_name]
        field.queryset = Tag.objects.select_related("group")
        choices = tag_choices_by_group(field.queryset)
        if isinstance(field, forms.ModelChoiceField) and not isinstance(field, forms.ModelMultipleChoiceField):
            choices = [("", field.empty_label), *choices]
        field.widget.choices = choices


class BulkTagForm(TagChoiceMixin, forms.Form):
    """Put tags on the contacts ticked in the list. Every id must be a contact the user may see, or the
    request is rejected as a whole (``services.contacts_bulk_tag``), exactly as in the API."""

    contact_ids = IdListField(
        label=_("Contacts"), error_messages={"required": _("Tick at least one contact in the list.")}
    )
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(),
        label=_("Tags"),
        error_messages={"required": _("Choose at least one tag.")},
        widget=forms.SelectMultiple(attrs={"size": 3}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._group_tag_choices("tags")


class BulkActionForm(TagChoiceMixin, forms.Form):
    """One bulk action (批量操作) on the contacts ticked in the list, or on every contact matching the list's
    filters (``query``, the list's query string). Only the actions the user may do are offered; the fields
    an action needs are checked here, the rest by the service it calls (``views.list.contact_bulk_action``)."""

    TAG, UNTAG, ASSIGN, COMMUNITY, TASK, EXPORT = "tag", "untag", "assign", "community", "task", "export"
    SELECTED, ALL = "selected", "all"
    ACTION_PERMISSIONS = {
        TAG: "contacts.change_contact",
        UNTAG: "contacts.change_contact",
        ASSIGN: "contacts.handover_contacts",
        COMMUNITY: "communities.add_membership",
        TASK: "campaigns.add_followuptask",
        EXPORT: "contacts.export_contacts",
    }
    # The field each action cannot do without, and what to say when it is missing.
    REQUIRED = {
        TAG: ("tags", _("Choose at least one tag.")),
        UNTAG: ("tags", _("Choose at least one tag.")),
        ASSIGN: ("owner", _("Choose the new owner.")),
        COMMUNITY: ("community", _("Choose a community.")),
        TASK: ("title", _("Give the task a title.")),
    }
    MAX_TICKED = IDS_MAX

    action = forms.ChoiceField(
        label=_("Action"),
        choices=[
            (TAG, _("Add tags")),
            (UNTAG, _("Remove tags")),
            (ASSIGN, _("Assign owner")),
            (COMMUNITY, _("Add to community")),
            (TASK, _("Create follow-up tasks")),
            (EXPORT, _("Export CSV")),
        ],
        error_messages={"required": _("Choose what to do."), "invalid_choice": _("Choose what to do.")},
    )
    scope = forms.ChoiceField(
        label=_("Contacts"),
        choices=[(SELECTED, _("The ticked rows")), (ALL, _("All contacts matching the filters"))],
        initial=SELECTED,
        widget=forms.RadioSelect,
    )
    contact_ids = IdListField(label=_("Contacts"), required=False)
    query = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(), label=_("Tags"), required=False, widget=forms.SelectMultiple(attrs={"size": 4})
    )
    owner = forms.ModelChoiceField(
        queryset=User.objects.none(), label=_("New owner"), required=False, empty_label=_("Choose a staff member")
    )
    community = forms.ModelChoiceField(
        queryset=Community.objects.none(), label=_("Community"), required=False, empty_label=_("Choose a community")
    )
    title = forms.CharField(label=_("Task"), required=False, max_length=200)
    due_at = forms.DateTimeField(
        label=_("Due"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    assignee = forms.ModelChoiceField(
        queryset=User.objects.none(), label=_("Assignee"), required=False, empty_label=_("Each contact's owner")
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.allowed_actions = [a for a, perm in self.ACTION_PERMISSIONS.items() if user.has_perm(perm)]
        self.fields["action"].choices = [c for c in self.fields["action"].choices if c[0] in self.allowed_actions]
        self._group_tag_choices("tags")
        self.fields["tags"].widget.attrs.update({"data-select-filter": "", "data-placeholder": _("Type to filter…")})
        if self.ASSIGN in self.allowed_actions:
            self.fields["owner"].queryset = staff_users()
            self.fields["owner"].label_from_instance = user_label
        else:
            del self.fields["owner"]
        self.fields["community"].queryset = (
            Community.objects.visible_to(user).filter(status=Community.Status.ACTIVE).order_by("name", "id")
        )
        if Contact.objects.sees_all(user):
            # Managers give tasks to anyone (campaigns.followups.may_assign_to_others); operators to themselves.
            self.fields["assignee"].queryset = staff_users()
            self.fields["assignee"].label_from_instance = user_label
        else:
            del self.fields["assignee"]

    @property
    def is_offered(self) -> bool:
        return bool(self.allowed_actions)

    def clean_contact_ids(self):
        ids = self.cleaned_data["contact_ids"]
        if len(ids) > self.MAX_TICKED:
            raise ValidationError(_("Tick at most %(max)d contacts at once.") % {"max": self.MAX_TICKED})
        return ids

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        if action in self.REQUIRED:
            field, message = self.REQUIRED[action]
            if not cleaned.get(field):
                self.add_error(field if field in self.fields else None, message)
        if (
            cleaned.get("scope") == self.SELECTED
            and "contact_ids" not in self.errors
            and not cleaned.get("contact_ids")
        ):
            self.add_error(
                "contact_ids", _("Tick at least one contact in the list, or choose all contacts matching the filters.")
            )
        return cleaned

    def description(self) -> str:
        """What the action does, in words, for the confirmation and the result message."""
        data = self.cleaned_data
        action = data["action"]
        if action in (self.TAG, self.UNTAG):
            tags = "、".join(tag.name for tag in data["tags"])
            if action == self.TAG:
                return _("Tag with %(tags)s") % {"tags": tags}
            return _("Remove the tags %(tags)s") % {"tags": tags}
        if action == self.ASSIGN:
            return _("Assign to %(owner)s") % {"owner": user_label(data["owner"])}
        if action == self.COMMUNITY:
            return _("Add to the community %(community)s") % {"community": data["community"].name}
        if action == self.TASK:
            return _("Create the follow-up task “%(title)s”") % {"title": data["title"]}
        return str(_("Export CSV"))

    def hidden_values(self) -> list[tuple[str, str]]:
        """The posted values again (for the confirmation's form), without the CSRF token."""
        return [
            (key, value)
            for key, values in self.data.lists()
            if key not in ("csrfmiddlewaretoken", "confirmed")
            for value in values
        ]


class SavedViewForm(forms.Form):
    """Save the list's current filters under a name, or rename a saved view (我的视图)."""

    name = forms.CharField(
        label=_("View name"),
        max_length=60,
        error_messages={"required": _("Give the view a name.")},
        widget=forms.TextInput(attrs={"placeholder": _("e.g. Strong intent, not yet bought"), "autocomplete": "off"}),
    )
    shared = forms.BooleanField(label=_("Share with the team"), required=False)
    query = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)


class ContactTagForm(TagChoiceMixin, forms.Form):
    """Add one tag to, or remove one tag from, a single contact."""

    ADD = "add"
    REMOVE = "remove"

    action = forms.ChoiceField(choices=[(ADD, _("Add")), (REMOVE, _("Remove"))], widget=forms.HiddenInput)
    tag = forms.ModelChoiceField(queryset=Tag.objects.none(), label=_("Tag"), empty_label=_("Choose a tag"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._group_tag_choices("tag")


IMPORT_MAX_BYTES = 200 * 1024 * 1024


class ImportForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("What the file holds"), choices=ImportJob.Kind.choices, initial=ImportJob.Kind.CONTACTS
    )
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 or GBK (as Excel saves it); the first line names the columns."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        if not name.endswith((".csv", ".txt")):
            raise ValidationError(_("Upload a .csv file."), code="extension")
        if upload.size == 0:
            raise ValidationError(_("The file is empty."), code="empty")
        if upload.size > IMPORT_MAX_BYTES:
            raise ValidationError(
                _("The file is larger than %(size)s MB; split it into smaller files.")
                % {"size": IMPORT_MAX_BYTES // (1024 * 1024)},
                code="too_large",
            )
        return upload
