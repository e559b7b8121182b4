"""Serializers of the WeCom API: shapes of input and output. The rules about a live code (its pool, caps,
attachments, what WeCom accepts) are checked by ``wecom.livecodes``; these check shapes and resolve ids,
so an unknown id is a 400 naming the field."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import MessageTemplate
from contacts.api.serializers import UserSummarySerializer
from contacts.models import Channel, Tag
from contacts.selectors import staff_users
from scrm.openapi import ReadOnlyFieldsMixin

from ..models import CallbackEvent, FollowRelationship, LiveCode, LiveCodeStaff, StaffAccount, SyncRun
from ..selectors import sync_run_progress

User = get_user_model()


# --- Staff accounts -------------------------------------------------------------------------------


class StaffAccountSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    """A WeCom member and the user who works as them. Only ``user`` can be changed (PATCH, managers): an
    active staff user, or ``null``; one user works as one member."""

    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.none(), allow_null=True, required=False)
    user_name = serializers.SerializerMethodField()

    class Meta:
        model = StaffAccount
        fields = ["id", "userid", "name", "user", "user_name", "is_follow_user", "synced_at", "created_at"]
        read_only_fields = ["userid", "name", "is_follow_user", "synced_at", "created_at"]

    def get_fields(self):
        fields = super().get_fields()
        fields["user"].queryset = staff_users()
        return fields

    def get_user_name(self, account) -> str | None:
        if account.user is None:
            return None
        return account.user.get_full_name() or account.user.get_username()


class StaffAccountUserSerializer(serializers.Serializer):
    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.none(), allow_null=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["user"].queryset = staff_users()
        return fields


# --- Live codes -----------------------------------------------------------------------------------


class PoolMemberSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    staff_userid = serializers.CharField(source="staff.userid", read_only=True)
    staff_name = serializers.CharField(source="staff.name", read_only=True)

    class Meta:
        model = LiveCodeStaff
        fields = ["staff", "staff_userid", "staff_name", "daily_cap"]


class PoolMemberInputSerializer(serializers.Serializer):
    staff = serializers.PrimaryKeyRelatedField(queryset=StaffAccount.objects.all())
    daily_cap = serializers.IntegerField(min_value=1, max_value=100_000, allow_null=True, required=False, default=None)


class FiguresSerializer(serializers.Serializer):
    adds = serializers.IntegerField()
    active = serializers.IntegerField()
    deleted_within_7_days = serializers.IntegerField()
    buyers = serializers.IntegerField()
    spend = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    cost_per_add = serializers.DecimalField(
        max_digits=14, decimal_places=2, allow_null=True, help_text=_("null when the channel has no spend recorded")
    )


@extend_schema_field({"type": "array", "items": {"type": "object", "additionalProperties": True}})
class AttachmentListField(serializers.JSONField):
    """WeCom welcome attachments: ``[{"msgtype": "link", "link": {"title": ..., "url": ...}}, ...]`` (also
    ``image`` and ``miniprogram`` as WeCom takes them)."""


class LiveCodeSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    """A channel live code (渠道活码). ``figures`` count the contacts the caller may see; ``cost_per_add`` is
    null when the channel has no spend recorded, never 0."""

    channel_name = serializers.CharField(source="channel.name", read_only=True)
    pool = PoolMemberSerializer(many=True, read_only=True)
    tags = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    welcome_attachments = AttachmentListField(read_only=True)
    created_by = UserSummarySerializer(read_only=True)
    figures = serializers.SerializerMethodField()

    class Meta:
        model = LiveCode
        fields = [
            "id",
            "name",
            "channel",
            "channel_name",
            "state",
            "assignment",
            "pool",
            "backup_staff",
            "skip_verify",
            "tags",
            "welcome_template",
            "welcome_attachments",
            "is_active",
            "config_id",
            "qr_code",
            "figures",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(FiguresSerializer)
    def get_figures(self, live_code):
        figures = self.context.get("figures", {}).get(live_code.pk)
        return FiguresSerializer(figures).data if figures is not None else None


class LiveCodeInputSerializer(serializers.Serializer):
    """What a live code is made of. On PATCH, fields left out keep their values."""

    name = serializers.CharField(max_length=100)
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all())
    pool = PoolMemberInputSerializer(many=True, allow_empty=True)
    backup_staff = serializers.PrimaryKeyRelatedField(
        queryset=StaffAccount.objects.all(), allow_null=True, required=False, default=None
    )
    assignment = serializers.ChoiceField(choices=LiveCode.Assignment.choices, default=LiveCode.Assignment.ROUND_ROBIN)
    skip_verify = serializers.BooleanField(default=True)
    tags = serializers.PrimaryKeyRelatedField(queryset=Tag.objects.all(), many=True, required=False, default=list)
    welcome_template = serializers.PrimaryKeyRelatedField(
        queryset=MessageTemplate.objects.filter(is_active=True), allow_null=True, required=False, default=None
    )
    welcome_attachments = AttachmentListField(required=False, default=list)

    def validate_welcome_attachments(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError(_("A list of attachments."))
        return value


# --- Follow relationships, callbacks, sync runs ----------------------------------------------------


class FollowRelationshipSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    """One staff member following one customer; ``active`` until either side deletes the other."""

    contact_name = serializers.CharField(source="contact.name", read_only=True)
    staff_userid = serializers.CharField(source="staff.userid", read_only=True)
    live_code_name = serializers.CharField(source="live_code.name", read_only=True, default=None)
    active = serializers.SerializerMethodField()

    class Meta:
        model = FollowRelationship
        fields = [
            "id",
            "contact",
            "contact_name",
            "staff",
            "staff_userid",
            "external_userid",
            "remark",
            "description",
            "add_way",
            "state",
            "live_code",
            "live_code_name",
            "added_at",
            "deleted_at",
            "ended_by",
            "active",
            "updated_at",
        ]
        read_only_fields = fields

    def get_active(self, follow) -> bool:
        return follow.deleted_at is None


class CallbackEventSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    """One verified WeCom callback in the inbox, with its processing status."""

    class Meta:
        model = CallbackEvent
        fields = [
            "id",
            "event",
            "change_type",
            "payload",
            "event_at",
            "received_at",
            "status",
            "attempts",
            "processed_at",
            "error",
        ]
        read_only_fields = fields


class SyncRunSerializer(ReadOnlyFieldsMixin, serializers.ModelSerializer):
    """One full sync: follow users, their customers, corp tags. ``progress`` is the members read so far."""

    started_by = UserSummarySerializer(read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "status",
            "started_by",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "progress",
            "staff_count",
            "customers_seen",
            "contacts_created",
            "follows_written",
            "skipped",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
        }
    )
    def get_progress(self, run):
        progress = sync_run_progress(run)
        return {"done": progress[0], "total": progress[1]} if progress else None


class SyncQueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    detail = serializers.CharField()


class IntakeRowSerializer(serializers.Serializer):
    key = serializers.IntegerField(allow_null=True, help_text="The channel, live code or staff account id.")
    label = serializers.CharField()
    adds = serializers.IntegerField()
    lost = serializers.IntegerField(help_text="Customers who deleted the staff member (流失).")
    removed = serializers.IntegerField(help_text="Customers the staff member deleted.")
    net = serializers.IntegerField(help_text="adds − lost − removed")


class IntakeDaySerializer(IntakeRowSerializer):
    day = serializers.DateField()


class IntakeSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    by = serializers.CharField()
    totals = IntakeRowSerializer(many=True)
    days = IntakeDaySerializer(many=True)
