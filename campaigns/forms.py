"""Forms of the campaigns dashboard pages: segments, the template library, broadcasts, the frequency policy
and automations (SOP); and the fitting of the shared FilterSets' forms to the list pages.

The forms only parse what the browser sends; every rule about what is allowed lives in the services, which
raise ``ValidationError`` keyed by field. ``attach_service_errors`` puts those messages on the form: on the
field of the same name when the form has one, else among the form's own errors, prefixed with a label
that names the field (``audience``, ``caps[1].window_days`` ...).
"""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from communities.models import Community
from contacts.forms import tag_choices_by_group, user_label
from contacts.models import Contact, Product, Tag
from contacts.selectors import staff_users

from . import selectors
from .models import Automation, Broadcast, FollowUpTask, FrequencyCap, Medium, MessageTemplate, Segment

# Labels for the keys of service errors that are not form fields.
ERROR_KEY_LABELS = {
    "audience": _("Audience"),
    "status": _("Status"),
    "caps": _("Caps"),
    "rules": _("Conditions"),
    "trigger_config": _("Trigger settings"),
    "placeholders": _("Placeholders"),
}
CAP_KEY = re.compile(r"^caps\[(\d+)\]\.(\w+)$")


def error_key_label(key: str) -> str:
    """A readable name for the key of a service error: ``caps[1].window_days`` → “Cap 2 · window (days)”."""
    match = CAP_KEY.match(key)
    if match:
        index, field = int(match.group(1)), match.group(2)
        try:
            field_label = FrequencyCap._meta.get_field(field).verbose_name
        except Exception:  # noqa: BLE001 - an unknown field name is still shown as it is
            field_label = field
        return gettext("Cap %(number)s · %(field)s") % {"number": index + 1, "field": field_label}
    if key in ERROR_KEY_LABELS:
        return str(ERROR_KEY_LABELS[key])
    return key.replace("_", " ")


def attach_service_errors(form: forms.BaseForm, exc: ValidationError, *, field_map: dict | None = None) -> None:
    """Show a service's ``ValidationError`` on ``form``: on the named field when the form has it, else as a
    form error that starts with the key's label."""
    field_map = field_map or {}
    errors = exc.error_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.error_list}
    for key, error_list in errors.items():
        messages = [message for error in error_list for message in ValidationError(error).messages]
        target = field_map.get(key, key)
        if target in form.fields:
            form.add_error(target, messages)
        elif key == NON_FIELD_ERRORS:
            form.add_error(None, messages)
        else:
            label = error_key_label(key)
            form.add_error(None, [f"{label}: {message}" for message in messages])


def _json_object(value: str, *, what: str) -> dict:
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            _("%(what)s is not valid JSON (line %(line)s, column %(column)s: %(problem)s)."),
            code="invalid_json",
            params={"what": what, "line": exc.lineno, "column": exc.colno, "problem": exc.msg},
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError(_("%(what)s must be a JSON object."), code="not_object", params={"what": what})
    return data


class VariablesField(forms.CharField):
    """Message variables (the coupon code ...) as ``name=value`` lines, or a JSON object."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "coupon=DD12"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", True)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{key}={val}" for key, val in value.items())
        return value

    def clean(self, value) -> dict:
        text = (super().clean(value) or "").strip()
        if not text:
            return {}
        if text.startswith("{"):
            return _json_object(text, what=gettext("Variables"))
        variables = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            name, sep, val = line.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValidationError(
                    _("Line %(number)s: write name=value, the name in letters, digits and underscores."),
                    code="invalid",
                    params={"number": number},
                )
            variables[name] = val.strip()
        return variables


def _date_time_input() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


# --- Segments -------------------------------------------------------------------------------------


class SegmentForm(forms.Form):
    name = forms.CharField(label=_("Segment name"), max_length=100)
    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    rules = forms.CharField(
        label=_("Rules (JSON)"),
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"}),
        help_text=_('A group is {"op": "and" or "or", "rules": [...]}; a condition is {"field", "operator", "value"}.'),
        initial='{"op": "and", "rules": []}',
    )

    def clean_rules(self) -> dict:
        return _json_object(self.cleaned_data["rules"], what=gettext("The rules"))


class SegmentCountForm(forms.Form):
    """The rules alone, posted by the editor for the live count."""

    rules = forms.CharField(required=False)

    def clean_rules(self) -> dict:
        text = self.cleaned_data["rules"].strip() or '{"op": "and", "rules": []}'
        return _json_object(text, what=gettext("The rules"))


# --- Message templates ----------------------------------------------------------------------------


class MessageTemplateForm(forms.Form):
    name = forms.CharField(label=_("Template name"), max_length=100)
    category = forms.CharField(
        label=_("Category"),
        max_length=50,
        required=False,
        help_text=_("e.g. 复购提醒, 新客欢迎, 活动通知"),
        widget=forms.TextInput(attrs={"list": "template-categories"}),
    )
    kind = forms.ChoiceField(
        label=_("Kind"), choices=MessageTemplate.Kind.choices, initial=MessageTemplate.Kind.MESSAGE
    )
    subject = forms.CharField(label=_("Subject"), max_length=200, required=False, help_text=_("Email only."))
    body = forms.CharField(label=_("Body"), widget=forms.Textarea(attrs={"rows": 8}))
    is_service = forms.BooleanField(
        label=_("Service message"),
        required=False,
        help_text=_("An order thank-you or a delivery notice: exempt from the frequency caps when the policy says so."),
    )
    is_active = forms.BooleanField(
        label=_("In use"), required=False, initial=True, help_text=_("Untick to archive the template.")
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not editing:
            del self.fields["is_active"]


class ContactPickField(forms.CharField):
    """A contact the user may see, named by id, phone or (part of the) name."""

    def __init__(self, *, user=None, **kwargs):
        self.user = user
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": _("Contact id, phone or name")}))
        super().__init__(**kwargs)

    def clean(self, value) -> Contact | None:
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        contacts = Contact.objects.live().visible_to(self.user).filter(erased_at__isnull=True).order_by("id")
        query = Q(name__icontains=text) | Q(phone__endswith=text)
        if text.isdigit():
            query |= Q(pk=int(text))
        contact = contacts.filter(query).order_by("-pk" if not text.isdigit() else "id").first()
        if contact is None:
            raise ValidationError(
                _("None of your contacts matches “%(text)s”."), code="no_contact", params={"text": text}
            )
        return contact


class TemplatePreviewForm(forms.Form):
    contact = ContactPickField(label=_("Preview for"), required=False)
    variables = VariablesField(label=_("Variables"), widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].user = user


# --- Broadcasts -----------------------------------------------------------------------------------


class BroadcastForm(forms.Form):
    NOW = "now"
    LATER = "later"

    name = forms.CharField(label=_("Broadcast name"), max_length=100)
    segment = forms.ModelChoiceField(
        label=_("Segment"), queryset=Segment.objects.none(), required=False, empty_label=_("No segment")
    )
    communities = forms.ModelMultipleChoiceField(
        label=_("Communities"),
        queryset=Community.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text=_("Their current members are added to the segment's contacts."),
    )
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=MessageTemplate.objects.none(), required=False, empty_label=_("Choose a template")
    )
    variables = VariablesField(label=_("Variables"), help_text=_("One name=value per line, e.g. coupon=DD12."))
    medium = forms.ChoiceField(label=_("Sent via"), choices=Medium.choices, initial=Medium.WECOM)
    when = forms.ChoiceField(
        label=_("When"),
        choices=[(NOW, _("As soon as it is approved")), (LATER, _("At a time"))],
        initial=NOW,
        widget=forms.RadioSelect,
    )
    scheduled_at = forms.DateTimeField(label=_("Send at"), required=False, widget=_date_time_input())
    defer_quiet_hours = forms.BooleanField(
        label=_("Defer messages in quiet hours"),
        required=False,
        initial=True,
        help_text=_("Deliver them when the quiet hours end instead of suppressing them."),
    )
    conversion_window_days = forms.IntegerField(
        label=_("Conversion window (days)"),
        min_value=0,
        max_value=365,
        initial=7,
        help_text=_("A recipient's paid order within this many days after the message counts as a conversion."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = selectors.segment_list(user)
        self.fields["communities"].queryset = Community.objects.visible_to(user).order_by("name")
        templates = selectors.template_list(user).filter(is_active=True)
        if self.initial.get("template"):
            templates = selectors.template_list(user).filter(Q(is_active=True) | Q(pk=self.initial["template"]))
        self.fields["template"].queryset = templates

    @classmethod
    def initial_for(cls, broadcast: Broadcast) -> dict:
        return {
            "name": broadcast.name,
            "segment": broadcast.segment_id,
            "communities": list(broadcast.communities.values_list("pk", flat=True)),
            "template": broadcast.template_id,
            "variables": broadcast.variables,
            "medium": broadcast.medium,
            "when": cls.LATER if broadcast.scheduled_at else cls.NOW,
            "scheduled_at": broadcast.scheduled_at,
            "defer_quiet_hours": broadcast.defer_quiet_hours,
            "conversion_window_days": broadcast.conversion_window_days,
        }

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("when") == self.LATER and not cleaned.get("scheduled_at") and "scheduled_at" not in self.errors:
            self.add_error("scheduled_at", _("Choose the time to send at, or “As soon as it is approved”."))
        return cleaned

    def service_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "segment": data.get("segment"),
            "communities": list(data.get("communities") or []),
            "template": data.get("template"),
            "variables": data.get("variables") or {},
            "medium": data["medium"],
            "scheduled_at": data.get("scheduled_at") if data.get("when") == self.LATER else None,
            "defer_quiet_hours": data.get("defer_quiet_hours", False),
            "conversion_window_days": data["conversion_window_days"],
        }


# --- Frequency policy -----------------------------------------------------------------------------


class PolicyForm(forms.Form):
    quiet_hours_enabled = forms.BooleanField(label=_("Quiet hours on"), required=False)
    quiet_start = forms.TimeField(
        label=_("Quiet hours start"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    quiet_end = forms.TimeField(
        label=_("Quiet hours end"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    exempt_service_messages = forms.BooleanField(
        label=_("Service messages are exempt from the caps"),
        required=False,
        help_text=_("Consent and opt-outs always apply, to every message."),
    )


class CapForm(forms.Form):
    medium = forms.ChoiceField(label=_("Sent via"), required=False, choices=[("", _("All media")), *Medium.choices])
    window = forms.ChoiceField(
        label=_("Window"), choices=FrequencyCap.Window.choices, initial=FrequencyCap.Window.ROLLING
    )
    window_days = forms.IntegerField(
        label=_("Window (days)"),
        required=False,
        min_value=1,
        max_value=366,
        widget=forms.NumberInput(attrs={"size": 4}),
    )
    max_messages = forms.IntegerField(
        label=_("At most"), required=False, min_value=0, max_value=1000, widget=forms.NumberInput(attrs={"size": 4})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The caps table has one header row instead of a label per input.
        for field in self.fields.values():
            field.widget.attrs.setdefault("aria-label", str(field.label or ""))


CapFormSet = forms.formset_factory(CapForm, extra=1, can_delete=True)


def caps_initial(caps) -> list[dict]:
    return [
        {"medium": cap.medium, "window": cap.window, "window_days": cap.window_days, "max_messages": cap.max_messages}
        for cap in caps
    ]


def formset_cap_forms(formset) -> list[forms.Form]:
    """The valid formset rows that are neither deleted nor left blank, in order: what the service's
    ``caps[i]`` error keys count."""
    return [
        form
        for form in formset.forms
        if getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE") and form.has_changed()
    ]


def formset_caps(formset) -> list[dict]:
    """The caps of the rows ``formset_cap_forms`` keeps, as ``policy_update`` takes them."""
    keys = ("medium", "window", "window_days", "max_messages")
    return [{key: form.cleaned_data.get(key) for key in keys} for form in formset_cap_forms(formset)]


def mark_cap_errors(formset, exc: ValidationError) -> None:
    """Outline the inputs named by ``caps[i].field`` errors (the messages themselves go to the form's errors,
    with the cap's number)."""
    if not hasattr(exc, "error_dict"):
        return
    rows = formset_cap_forms(formset)
    for key in exc.error_dict:
        match = CAP_KEY.match(key)
        if match and int(match.group(1)) < len(rows) and match.group(2) in rows[int(match.group(1))].fields:
            rows[int(match.group(1))].fields[match.group(2)].widget.attrs["aria-invalid"] = "true"


# --- Automations ----------------------------------------------------------------------------------

# Which extra fields each trigger and action uses (the page shows only those when the browser can).
TRIGGER_FIELDS = {
    Automation.Trigger.INACTIVE: ("trigger_days",),
    Automation.Trigger.JOINED_COMMUNITY: ("trigger_community",),
    Automation.Trigger.TAG_ADDED: ("trigger_tag",),
    Automation.Trigger.REPURCHASE_DUE: ("trigger_product",),
}
ACTION_FIELDS = {
    Automation.Action.SEND_TEMPLATE: ("template", "medium", "variables"),
    Automation.Action.ADD_TAG: ("tag",),
    Automation.Action.REMOVE_TAG: ("tag",),
    Automation.Action.ASSIGN_OWNER: ("owner",),
    Automation.Action.CREATE_TASK: ("task_title",),
}
TRIGGER_CONFIG_KEYS = {
    "trigger_days": "days",
    "trigger_community": "community",
    "trigger_tag": "tag",
    "trigger_product": "product",
}


class AutomationForm(forms.Form):
    name = forms.CharField(label=_("Automation name"), max_length=100)
    trigger = forms.ChoiceField(label=_("When"), choices=Automation.Trigger.choices)
    trigger_days = forms.IntegerField(
        label=_("Inactive for (days)"),
        required=False,
        min_value=1,
        max_value=3650,
        help_text=_("For “Inactive for N days”."),
    )
    trigger_community = forms.ModelChoiceField(
        label=_("Community"),
        queryset=Community.objects.none(),
        required=False,
        empty_label=_("Any community"),
        help_text=_("For “Joined a community”."),
    )
    trigger_tag = forms.ModelChoiceField(
        label=_("Tag"), queryset=Tag.objects.none(), required=False, help_text=_("For “Tag added”.")
    )
    trigger_product = forms.ModelChoiceField(
        label=_("Product"),
        queryset=Product.objects.none(),
        required=False,
        empty_label=_("Any product"),
        help_text=_("For “Repurchase due”: each product's repurchase cycle decides when."),
    )
    delay_minutes = forms.IntegerField(
        label=_("Delay (minutes)"),
        min_value=0,
        initial=0,
        help_text=_("Wait this long after the trigger (1 day = 1440)."),
    )
    condition = forms.ModelChoiceField(
        label=_("Only for contacts in"),
        queryset=Segment.objects.none(),
        required=False,
        empty_label=_("Every contact"),
    )
    action = forms.ChoiceField(label=_("Then"), choices=Automation.Action.choices)
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=MessageTemplate.objects.none(), required=False, empty_label=_("Choose a template")
    )
    medium = forms.ChoiceField(label=_("Sent via"), choices=Medium.choices, initial=Medium.WECOM)
    variables = VariablesField(label=_("Variables"))
    tag = forms.ModelChoiceField(label=_("Tag"), queryset=Tag.objects.none(), required=False)
    owner = forms.ModelChoiceField(label=_("New owner"), queryset=staff_users(), required=False)
    task_title = forms.CharField(label=_("Task title"), max_length=200, required=False)
    is_active = forms.BooleanField(label=_("Switched on"), required=False, initial=True)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["trigger_community"].queryset = Community.objects.visible_to(user).order_by("name")
        self.fields["trigger_product"].queryset = Product.objects.order_by("name")
        self.fields["condition"].queryset = selectors.segment_list(user)
        self.fields["template"].queryset = selectors.template_list(user).filter(is_active=True)
        self.fields["owner"].queryset = staff_users()
        self.fields["owner"].label_from_instance = user_label
        for name in ("trigger_tag", "tag"):
            field = self.fields[name]
            field.queryset = Tag.objects.select_related("group")
            field.widget.choices = [("", "---------"), *tag_choices_by_group(field.queryset)]
        for field_names in (*TRIGGER_FIELDS.values(), *ACTION_FIELDS.values()):
            for name in field_names:
                self.fields[name].widget.attrs.setdefault("data-depends", "1")

    @staticmethod
    def initial_for(automation: Automation) -> dict:
        config = automation.trigger_config or {}
        return {
            "name": automation.name,
            "trigger": automation.trigger,
            "trigger_days": config.get("days"),
            "trigger_community": config.get("community"),
            "trigger_tag": config.get("tag"),
            "trigger_product": config.get("product"),
            "delay_minutes": automation.delay_minutes,
            "condition": automation.condition_id,
            "action": automation.action,
            "template": automation.template_id,
            "medium": automation.medium,
            "variables": automation.variables,
            "tag": automation.tag_id,
            "owner": automation.owner_id,
            "task_title": automation.task_title,
            "is_active": automation.is_active,
        }

    def service_fields(self) -> dict:
        """The fields as ``automation_create`` takes them: the trigger's settings gathered in
        ``trigger_config`` (ids for objects), the action's settings only for the chosen action."""
        data = self.cleaned_data
        config = {}
        for name in TRIGGER_FIELDS.get(data["trigger"], ()):
            value = data.get(name)
            if value not in (None, ""):
                config[TRIGGER_CONFIG_KEYS[name]] = value.pk if hasattr(value, "pk") else value
        action_fields = ACTION_FIELDS.get(data["action"], ())
        return {
            "name": data["name"],
            "trigger": data["trigger"],
            "trigger_config": config,
            "delay_minutes": data["delay_minutes"],
            "condition": data.get("condition"),
            "action": data["action"],
            "template": data.get("template") if "template" in action_fields else None,
            "medium": data.get("medium") or Medium.WECOM,
            "variables": (data.get("variables") or {}) if "variables" in action_fields else {},
            "tag": data.get("tag") if "tag" in action_fields else None,
            "owner": data.get("owner") if "owner" in action_fields else None,
            "task_title": data.get("task_title", "") if "task_title" in action_fields else "",
            "is_active": data.get("is_active", False),
        }


# Service error keys inside ``trigger_config`` point at the form field that holds them.
AUTOMATION_ERROR_FIELDS = {
    "trigger_config.days": "trigger_days",
    "trigger_config.community": "trigger_community",
    "trigger_config.tag": "trigger_tag",
    "trigger_config.product": "trigger_product",
    "days": "trigger_days",
}


# --- List filters ---------------------------------------------------------------------------------
# The dashboard lists filter with the API's FilterSets (``campaigns.filtersets``); these fit a FilterSet's
# form to its page: a drop-down of names where the API takes ids or a list of values.


class SelectOne(forms.SelectMultiple):
    """A multiple-choice filter shown as a plain drop-down: one value, read as a list; the empty choice
    is no filter."""

    allow_multiple_selected = False

    def value_from_datadict(self, data, files, name):
        values = super().value_from_datadict(data, files, name)
        if isinstance(values, str):
            values = [values]
        return [value for value in values or () if value]

    def format_value(self, value):
        return super().format_value(value) or [""]


class TaskStatusSelect(forms.Select):
    """Open, done or all tasks. No status given means the open ones; "all" means no status filter."""

    ALL = "all"

    def value_from_datadict(self, data, files, name):
        value = data.get(name) or FollowUpTask.Status.OPEN
        return "" if value == self.ALL else value

    def format_value(self, value):
        return super().format_value(value or self.ALL)


def fit_broadcast_filters(form: forms.Form) -> forms.Form:
    """The broadcast list (``BroadcastFilterSet``): the status as one drop-down."""
    form.fields["status"].widget = SelectOne(choices=[("", _("All statuses")), *Broadcast.Status.choices])
    return form


def fit_outbox_filters(form: forms.Form, *, user) -> forms.Form:
    """The outbox (``OutboxMessageFilterSet``): the broadcast chosen among the user's that were sent."""
    broadcasts = Broadcast.objects.visible_to(user).exclude(
        status__in=[Broadcast.Status.DRAFT, Broadcast.Status.PENDING_APPROVAL]
    )
    choices = [("", _("All messages")), *((broadcast.pk, str(broadcast)) for broadcast in broadcasts)]
    form.fields["broadcast"].widget = forms.Select(choices=choices)
    return form


def fit_task_filters(form: forms.Form, *, shows_assignee: bool) -> forms.Form:
    """The follow-up tasks (``FollowUpTaskFilterSet``): open, done or all (open unless asked), and the
    assignee among the staff for those who see everyone's tasks."""
    status_choices = [*FollowUpTask.Status.choices, (TaskStatusSelect.ALL, _("All"))]
    form.fields["status"].widget = TaskStatusSelect(choices=status_choices)
    if shows_assignee:
        staff = [("", _("Everyone")), *((user.pk, user_label(user)) for user in staff_users())]
        form.fields["assignee"].widget = forms.Select(choices=staff)
    else:
        del form.fields["assignee"]
    return form
