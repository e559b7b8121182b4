"""Forms of the contact dashboard pages: the list's filters, bulk tagging, a contact's tags and CSV import."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from communities.models import Community

from .filtersets import ContactFilterSet
from .models import Contact, ImportJob, Tag
from .selectors import staff_users

User = get_user_model()

# The filters the list page shows, in the order it shows them. Other filters of the shared FilterSet
# (tag_all, intent_level, region, ...) still apply when they are in the query string.
DASHBOARD_FILTERS = ("search", "stage", "channel", "tag", "owner", "community", "acquired_from", "acquired_to")


def user_label(user) -> str:
    return user.get_full_name() or user.get_username()


def tag_choices_by_group(tags: Iterable[Tag]) -> list[tuple[str, list[tuple[int, str]]]]:
    """Choices for a tag <select>, one <optgroup> per tag group (tags come ordered by group)."""
    grouped: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for tag in tags:
        grouped.setdefault(tag.group_id, (tag.group.name, []))[1].append((tag.pk, tag.name))
    return list(grouped.values())


class DashboardContactFilterSet(ContactFilterSet):
    """The shared ``ContactFilterSet`` with choices fitted to the asking user: the owner filter only for
    those who see every staff member's contacts, communities limited to the ones the user may see, and
    tag choices loaded in one query."""

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        user = request.user if request is not None else None
        self.shows_owner = Contact.objects.sees_all(user)
        self.filters["tag"].queryset = Tag.objects.select_related("group")
        self.filters["community"].queryset = Community.objects.visible_to(user).order_by("name")
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
            form.fields["search"].widget.attrs.update(
                {"placeholder": _("Name or phone"), "type": "search", "autocomplete": "off"}
            )
            form.fields["stage"].widget = forms.CheckboxSelectMultiple(choices=Contact.Stage.choices)
            tag_field = form.fields["tag"]
            tag_field.widget.choices = tag_choices_by_group(tag_field.queryset)
            tag_field.widget.attrs.update({"size": 4})
            form.fields["channel"].widget.attrs.update({"size": 4})
            form.fields["community"].empty_label = _("All communities")
            if "owner" in form.fields:
                form.fields["owner"].label_from_instance = user_label
                form.fields["owner"].empty_label = _("All owners")
            for name in ("acquired_from", "acquired_to"):
                form.fields[name].widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        return self._form

    def visible_fields(self):
        return [self.form[name] for name in DASHBOARD_FILTERS if name in self.form.fields]

    @property
    def is_filtered(self) -> bool:
        return any(self.data.get(name) for name in self.filters)


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
