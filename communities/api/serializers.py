from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from communities.models import Community, Membership
from contacts.api.serializers import AssignableUserField, VisibleContactField
from scrm import limits
from scrm.limits import SafeSerializerMixin

User = get_user_model()


@extend_schema_field(OpenApiTypes.INT)
class VisibleCommunityField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        return Community.objects.visible_to(self.context["request"].user)


class CommunitySerializer(SafeSerializerMixin, serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True)
    owner = AssignableUserField(scope_model=Community, required=False, allow_null=True)
    admins = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True), many=True, required=False)

    class Meta:
        model = Community
        fields = [
            "id",
            "name",
            "kind",
            "platform",
            "owner",
            "admins",
            "capacity",
            "rules",
            "status",
            "external_chat_id",
            "member_count",
            "created_at",
        ]
        read_only_fields = ["created_at"]


class MembershipSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    community = VisibleCommunityField()
    contact = VisibleContactField()
    invited_by = VisibleContactField(required=False, allow_null=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Membership
        fields = [
            "id",
            "community",
            "contact",
            "role",
            "joined_at",
            "left_at",
            "join_source",
            "invited_by",
            "is_active",
        ]
        read_only_fields = ["left_at"]
        extra_kwargs = {"joined_at": {"required": False}}
        validators = []


class LeaveSerializer(serializers.Serializer):
    left_at = limits.SafeDateTimeField(required=False)
