"""Serializers for the campaigns API: shapes of input and output. The business rules (placeholders,
audiences, send times, segment rules, caps) are checked by the services; these check shapes and resolve
ids to rows the user may use, so an unknown or hidden id is a 400 naming the field."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    FrequencyCap,
    FrequencyPolicy,
    Medium,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from campaigns.policy import PRESETS
from communities.models import Community
from contacts.api.serializers import AssignableUserField, UserSummarySerializer, VisibleContactField
from contacts.models import Contact, Tag, Touchpoint
from scrm import limits
from scrm.limits import SafeCharField, SafeSerializerMixin

User = get_user_model()


@extend_schema_field(OpenApiTypes.INT)
class VisibleCommunityIdField(serializers.PrimaryKeyRelatedField):
    """A community the requesting user runs (managers: any); any other id reads as "does not exist"."""

    def get_queryset(self):
        return Community.objects.visible_to(self.context["request"].user)


class VariablesField(serializers.DictField):
    """Template variables: names mapped to text or numbers (the coupon code, the event date)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", limits.SafeJSONField())
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        try:
            limits.json_check(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise serializers.ValidationError(
                    _("The variable “%(name)s” must be text or a number.") % {"name": key}
                )
        return data


# --- Segments -------------------------------------------------------------------------------------


class SegmentSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A saved audience. ``rules`` is the rule tree (``{"op": "and", "rules": [...]}``); the live count is
    on the detail and on ``/segments/{id}/count/``, never on the list (it is a query per segment)."""

    rules = limits.SafeJSONField(max_depth=2 * limits.JSON_MAX_DEPTH)
    created_by = UserSummarySerializer(read_only=True)

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "created_by", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    # The rules are checked by the segment services (``segment_rules_validate`` with the user): structure,
    # and ids that exist and that the user may see.


class SegmentDetailSerializer(SegmentSerializer):
    count = serializers.SerializerMethodField(help_text=_("Contacts that match now, among those you may see."))

    class Meta(SegmentSerializer.Meta):
        fields = [*SegmentSerializer.Meta.fields, "count"]

    def get_count(self, segment) -> int:
        from campaigns.segments import segment_count

        return segment_count(segment, user=self.context["request"].user)


class SegmentPreviewSerializer(serializers.Serializer):
    rules = limits.SafeJSONField(max_depth=2 * limits.JSON_MAX_DEPTH)


class SegmentFieldChoiceSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()


class SegmentFieldSerializer(serializers.Serializer):
    field = serializers.CharField()
    label = serializers.CharField()
    operators = serializers.ListField(child=serializers.CharField())
    choices = SegmentFieldChoiceSerializer(many=True, allow_null=True)
    help_text = serializers.CharField()


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


# --- Message templates ----------------------------------------------------------------------------


class MessageTemplateSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A message or script. ``placeholders`` lists the ``{name}`` fields the body and subject use."""

    created_by = UserSummarySerializer(read_only=True)
    placeholders = serializers.SerializerMethodField()

    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "name",
            "category",
            "kind",
            "subject",
            "body",
            "is_service",
            "is_active",
            "placeholders",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_placeholders(self, template) -> list[str]:
        from campaigns.content import template_placeholders

        names: set[str] = set()
        for text in (template.body, template.subject):
            try:
                names |= template_placeholders(text or "")
            except DjangoValidationError:
                pass
        return sorted(names)


class TemplatePreviewSerializer(serializers.Serializer):
    contact = serializers.IntegerField(min_value=1, max_value=limits.INT_MAX, help_text=_("A contact you may see."))
    variables = VariablesField(required=False, default=dict)


class TemplatePreviewResultSerializer(serializers.Serializer):
    subject = serializers.CharField(help_text=_("Empty when the template has no subject."))
    text = serializers.CharField()


class PlaceholderSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    source = serializers.ChoiceField(choices=[("contact", "contact"), ("variable", "variable")])


class TemplateCategorySerializer(serializers.Serializer):
    category = serializers.CharField()
    count = serializers.IntegerField()


# --- Broadcasts -----------------------------------------------------------------------------------


class BroadcastSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A mass send. Writes name the segment, template and communities by id; operators may use only the
    communities they run, and their broadcasts reach only their own contacts."""

    segment = serializers.PrimaryKeyRelatedField(queryset=Segment.objects.all(), required=False, allow_null=True)
    segment_name = serializers.CharField(source="segment.name", read_only=True, default=None)
    template = serializers.PrimaryKeyRelatedField(queryset=MessageTemplate.objects.all())
    template_name = serializers.CharField(source="template.name", read_only=True)
    communities = VisibleCommunityIdField(many=True, required=False)
    variables = VariablesField(required=False)
    created_by = UserSummarySerializer(read_only=True)
    approved_by = UserSummarySerializer(read_only=True)

    class Meta:
        model = Broadcast
        fields = [
            "id",
            "name",
            "segment",
            "segment_name",
            "communities",
            "template",
            "template_name",
            "variables",
            "medium",
            "status",
            "scheduled_at",
            "defer_quiet_hours",
            "conversion_window_days",
            "total_targeted",
            "audience_rules",
            "audience_count",
            "audience_frozen_at",
            "created_by",
            "approved_by",
            "approved_at",
            "started_at",
            "finished_at",
            "cancelled_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "total_targeted",
            "audience_rules",
            "audience_count",
            "audience_frozen_at",
            "approved_at",
            "started_at",
            "finished_at",
            "cancelled_at",
            "created_at",
            "updated_at",
        ]


class BroadcastSubmitSerializer(serializers.Serializer):
    scheduled_at = limits.SafeDateTimeField(
        required=False, allow_null=True, help_text=_("When to send; default: the broadcast's own time, else now.")
    )


class BroadcastProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Broadcast.Status.choices)
    targeted = serializers.IntegerField()
    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    suppressed_by_reason = serializers.DictField(child=serializers.IntegerField())
    done = serializers.IntegerField()
    percent = serializers.FloatField()


class BroadcastResultsSerializer(BroadcastProgressSerializer):
    conversion_window_days = serializers.IntegerField()
    converted_contacts = serializers.IntegerField()
    conversion_orders = serializers.IntegerField()
    conversion_revenue = serializers.DecimalField(max_digits=14, decimal_places=2)
    conversion_rate = serializers.FloatField(allow_null=True)


# --- Deliveries and the outbox --------------------------------------------------------------------


class DeliverySerializer(SafeSerializerMixin, serializers.ModelSerializer):
    contact_name = serializers.CharField(source="contact.name", read_only=True)
    automation = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "broadcast",
            "automation_run",
            "automation",
            "contact",
            "contact_name",
            "medium",
            "template",
            "is_marketing",
            "status",
            "reason",
            "attempts",
            "not_before",
            "claimed_at",
            "sent_at",
            "created_at",
            "error",
            "gateway",
            "gateway_message_id",
            "gateway_state",
        ]
        read_only_fields = fields

    def get_automation(self, delivery) -> int | None:
        run = delivery.automation_run
        return run.automation_id if run is not None else None


class OutboxMessageSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    broadcast = serializers.IntegerField(source="delivery.broadcast_id", read_only=True, allow_null=True)
    contact_name = serializers.CharField(source="contact.name", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = ["id", "delivery", "broadcast", "contact", "contact_name", "medium", "subject", "body", "created_at"]
        read_only_fields = fields


# --- Frequency policy -----------------------------------------------------------------------------


class FrequencyCapSerializer(serializers.Serializer):
    """One cap. A rolling window needs ``window_days`` and ``max_messages``; a calendar-month cap with
    ``max_messages`` empty allows as many messages as the month has days (WeCom's own rule)."""

    medium = serializers.ChoiceField(
        choices=Medium.choices, required=False, allow_blank=True, default="", help_text=_("Empty: all media together.")
    )
    window = serializers.ChoiceField(choices=FrequencyCap.Window.choices, default=FrequencyCap.Window.ROLLING)
    window_days = serializers.IntegerField(min_value=1, max_value=366, required=False, allow_null=True, default=None)
    max_messages = serializers.IntegerField(min_value=0, max_value=1000, required=False, allow_null=True, default=None)

    def validate(self, attrs):
        if attrs["window"] == FrequencyCap.Window.ROLLING:
            errors = {}
            if attrs.get("window_days") is None:
                errors["window_days"] = _("A rolling window needs a number of days (at least 1).")
            if attrs.get("max_messages") is None:
                errors["max_messages"] = _("Say how many messages the window allows.")
            if errors:
                raise serializers.ValidationError(errors)
        else:
            attrs["window_days"] = None
        return attrs


class FrequencyPolicySerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """The workspace sending policy with its caps."""

    caps = serializers.SerializerMethodField()
    updated_by = UserSummarySerializer(read_only=True)

    class Meta:
        model = FrequencyPolicy
        fields = [
            "quiet_hours_enabled",
            "quiet_start",
            "quiet_end",
            "exempt_service_messages",
            "caps",
            "updated_by",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(FrequencyCapSerializer(many=True))
    def get_caps(self, policy) -> list:
        return FrequencyCapSerializer(FrequencyCap.objects.all(), many=True).data


class FrequencyPolicyUpdateSerializer(serializers.Serializer):
    """``PUT``: the caps are replaced by ``caps`` (or by the caps of ``preset``; neither keeps them);
    policy fields left out keep their current values."""

    quiet_hours_enabled = serializers.BooleanField(required=False)
    quiet_start = serializers.TimeField(required=False)
    quiet_end = serializers.TimeField(required=False)
    exempt_service_messages = serializers.BooleanField(required=False)
    caps = FrequencyCapSerializer(many=True, required=False, max_length=20)
    preset = serializers.ChoiceField(
        choices=sorted(PRESETS), required=False, help_text=_("Use a preset's caps instead of listing them.")
    )

    def validate(self, attrs):
        if "caps" in attrs and "preset" in attrs:
            raise serializers.ValidationError({"preset": _("Give either caps or a preset, not both.")})
        return attrs


# --- Automations ----------------------------------------------------------------------------------


class AutomationSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    condition = serializers.PrimaryKeyRelatedField(queryset=Segment.objects.all(), required=False, allow_null=True)
    template = serializers.PrimaryKeyRelatedField(
        queryset=MessageTemplate.objects.all(), required=False, allow_null=True
    )
    tag = serializers.PrimaryKeyRelatedField(queryset=Tag.objects.all(), required=False, allow_null=True)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    trigger_config = limits.SafeJSONField(required=False)
    variables = VariablesField(required=False)
    created_by = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Automation
        fields = [
            "id",
            "name",
            "trigger",
            "trigger_config",
            "delay_minutes",
            "condition",
            "action",
            "template",
            "medium",
            "variables",
            "tag",
            "owner",
            "task_title",
            "is_active",
            "active_since",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["active_since", "created_at", "updated_at"]


class AutomationRunSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    automation_name = serializers.CharField(source="automation.name", read_only=True)
    contact_name = serializers.CharField(source="contact.name", read_only=True)

    class Meta:
        model = AutomationRun
        fields = [
            "id",
            "automation",
            "automation_name",
            "contact",
            "contact_name",
            "key",
            "purchase",
            "product",
            "status",
            "due_at",
            "created_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields


# --- Follow-up tasks ------------------------------------------------------------------------------


class FollowUpTaskSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A follow-up task. On create, ``assignee`` defaults to the contact's owner (the caller when the
    contact has no active owner); operators may assign tasks only to themselves, about contacts they own.
    ``remind_at`` puts the task among the assignee's reminders once it has passed (``reminded_at``);
    ``outcome`` is written by ``complete``."""

    contact = VisibleContactField()
    contact_name = serializers.CharField(source="contact.name", read_only=True)
    assignee = AssignableUserField(scope_model=Contact, required=False, allow_null=True)
    assignee_name = serializers.SerializerMethodField()
    automation = serializers.SerializerMethodField()

    class Meta:
        model = FollowUpTask
        fields = [
            "id",
            "assignee",
            "assignee_name",
            "contact",
            "contact_name",
            "title",
            "note",
            "due_at",
            "remind_at",
            "reminded_at",
            "status",
            "outcome",
            "automation",
            "created_by",
            "created_at",
            "completed_by",
            "done_at",
        ]
        read_only_fields = ["status", "outcome", "reminded_at", "created_by", "created_at", "completed_by", "done_at"]

    def get_assignee_name(self, task) -> str:
        return task.assignee.get_full_name() or task.assignee.username

    def get_automation(self, task) -> int | None:
        run = task.automation_run
        return run.automation_id if run is not None else None


class FollowUpTaskCompleteSerializer(serializers.Serializer):
    """Completing a task: what came of it (跟进结果, optional) and how the follow-up happened."""

    outcome = SafeCharField(required=False, allow_blank=True, default="")
    medium = serializers.CharField(
        required=False,
        default=Touchpoint.Medium.WECOM,
        max_length=20,
        help_text="How the follow-up happened, a touchpoint medium: " + ", ".join(Touchpoint.Medium.values) + ".",
    )
