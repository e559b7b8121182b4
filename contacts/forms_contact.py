"""Forms of the contact page as a workspace: the profile, a follow-up note (跟进记录), and adding the contact
to a community. They parse what the browser sends; the rules are the services' (``contact_update``,
``contact_note_add``, ``membership_join``), whose errors are put back on the fields by
``service_errors_attach``."""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from communities.models import Community, Membership
from scrm import limits

from .forms import user_label
from .models import Channel, Contact, Touchpoint
from .notes import NOTE_MAX_LENGTH
from .selectors import staff_users

# The profile fields staff edit on the page, in the order shown. Identifiers that integrations own
# (external id, WeCom and WeChat ids), the referrer and the acquisition are left to the API and imports.
PROFILE_FIELDS = (
    "name",
    "phone",
    "email",
    "gender",
    "birthday",
    "region",
    "city",
    "occupation",
    "channel",
    "intent_level",
    "owner",
)


def service_errors_attach(form: forms.BaseForm, exc: ValidationError) -> None:
    """A service's ValidationError on the form: on the field it names when the form has it, else on top."""
    errors = exc.error_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.error_list}
    for key, error_list in errors.items():
        messages = [message for error in error_list for message in ValidationError(error).messages]
        form.add_error(key if key in form.fields else None, messages)


def _text(label, max_length: int) -> forms.CharField:
    return forms.CharField(label=label, max_length=max_length, required=False, validators=[limits.text_check])


class ContactProfileForm(forms.Form):
    """The contact's profile. The owner is offered only to those who see every contact (managers):
    ``contact_update`` refuses an owner change from anyone else."""

    name = _text(_("Name"), 100)
    phone = forms.CharField(
        label=_("Phone"),
        max_length=32,
        required=False,
        validators=[limits.text_check],
        help_text=_("Mainland numbers without +86 are fine."),
    )
    email = forms.EmailField(label=_("Email"), required=False)
    gender = forms.ChoiceField(label=_("Gender"), choices=Contact.Gender.choices)
    birthday = forms.DateField(
        label=_("Birthday"),
        required=False,
        validators=[limits.date_check, limits.not_in_future_check],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    region = _text(_("Region"), 64)
    city = _text(_("City"), 64)
    occupation = _text(_("Occupation"), 64)
    channel = forms.ModelChoiceField(label=_("Channel"), queryset=Channel.objects.none(), required=False)
    intent_level = forms.ChoiceField(label=_("Intent level"), choices=Contact.IntentLevel.choices)
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=staff_users(), required=False, empty_label=_("Unassigned")
    )

    def __init__(self, data=None, *, contact: Contact, user, **kwargs):
        initial = {name: getattr(contact, name) for name in PROFILE_FIELDS}
        super().__init__(data, initial=initial, prefix="profile", **kwargs)
        self.contact = contact
        self.fields["channel"].queryset = Channel.objects.filter(Q(is_active=True) | Q(pk=contact.channel_id))
        if Contact.objects.sees_all(user):
            owners = staff_users()
            if contact.owner_id is not None:
                owners = staff_users().model.objects.filter(Q(pk__in=owners.values("pk")) | Q(pk=contact.owner_id))
                owners = owners.order_by("first_name", "username")
            self.fields["owner"].queryset = owners
            self.fields["owner"].label_from_instance = user_label
        else:
            del self.fields["owner"]

    def changed_values(self) -> dict:
        """The fields whose value differs from the contact's, as ``contact_update`` takes them."""
        changed = {}
        for name, value in self.cleaned_data.items():
            current = getattr(self.contact, name)
            if (value or None) != (current or None):
                changed[name] = value
        return changed


class ContactNoteForm(forms.Form):
    """A follow-up note (跟进记录): what was said or agreed, and through which medium."""

    text = forms.CharField(
        label=_("Note"),
        max_length=NOTE_MAX_LENGTH,
        validators=[limits.text_check],
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("What did you talk about? What was agreed?")}),
        error_messages={"required": _("Write the note first.")},
    )
    medium = forms.ChoiceField(label=_("Via"), choices=Touchpoint.Medium.choices, initial=Touchpoint.Medium.WECOM)

    def __init__(self, data=None, **kwargs):
        super().__init__(data, prefix="note", **kwargs)


class CommunityJoinForm(forms.Form):
    """Add the contact to one of the active communities the user may see that it is not in yet."""

    community = forms.ModelChoiceField(
        label=_("Community"), queryset=Community.objects.none(), empty_label=_("Choose a community")
    )

    def __init__(self, data=None, *, contact: Contact, user, **kwargs):
        super().__init__(data, prefix="join", **kwargs)
        open_membership = Membership.objects.filter(community=OuterRef("pk"), contact=contact, left_at__isnull=True)
        self.fields["community"].queryset = (
            Community.objects.visible_to(user)
            .filter(status=Community.Status.ACTIVE)
            .exclude(Exists(open_membership))
            .order_by("name", "id")
        )
