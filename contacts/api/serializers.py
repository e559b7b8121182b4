"""Serializers: shapes of the API's input and output. Validation of business rules lives in the
services and model constraints; these only check shapes and resolve ids the user may see."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from communities.models import Community
from contacts.models import (
    Channel,
    ChannelSpend,
    Contact,
    ExportJob,
    ImportJob,
    Product,
    Purchase,
    PurchaseItem,
    SavedView,
    Tag,
    TagGroup,
    Touchpoint,
)
from contacts.phones import normalize_phone
from contacts.services import CONTACT_EDITABLE_FIELDS
from scrm import limits
from scrm.limits import SafeSerializerMixin

User = get_user_model()


@extend_schema_field(OpenApiTypes.INT)
class VisibleContactField(serializers.PrimaryKeyRelatedField):
    """A contact id the requesting user may see; any other id reads as "does not exist"."""

    def get_queryset(self):
        return Contact.objects.live().visible_to(self.context["request"].user)


@extend_schema_field(OpenApiTypes.INT)
class AssignableUserField(serializers.PrimaryKeyRelatedField):
    """An active user the caller may give a row of ``scope_model`` to: anyone, for a user who sees every
    row of it; else only the caller. Any other id reads as "does not exist", like an unknown one."""

    def __init__(self, *, scope_model, **kwargs):
        self.scope_model = scope_model
        super().__init__(**kwargs)

    def get_queryset(self):
        user = self.context["request"].user
        users = User.objects.filter(is_active=True)
        return users if self.scope_model.objects.sees_all(user) else users.filter(pk=user.pk)


class UserSummarySerializer(SafeSerializerMixin, serializers.ModelSerializer):
    name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "name"]

    def get_name(self, user) -> str:
        return user.get_full_name() or user.username


class TagGroupSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = TagGroup
        fields = ["id", "name", "description", "exclusive", "sort_order"]


class TagSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    group_name = serializers.CharField(source="group.name", read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "group", "group_name", "name", "color"]


class TagSummarySerializer(SafeSerializerMixin, serializers.ModelSerializer):
    group = serializers.CharField(source="group.name", read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "group", "name", "color"]


class ChannelSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "description", "is_active", "created_at"]


class ChannelSpendSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = ChannelSpend
        fields = ["id", "channel", "start_date", "end_date", "amount", "note", "created_at"]

    def validate(self, attrs):
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start and end and end < start:
            raise serializers.ValidationError({"end_date": _("The end date is before the start date.")})
        return attrs


class ProductSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "price", "repurchase_cycle_days", "is_active"]
        # The table's check constraint: a cycle is at least one day (or none).
        extra_kwargs = {"repurchase_cycle_days": {"min_value": 1}}


class ContactSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A contact as the API shows it; writes accept the editable fields plus ``tag_ids``."""

    phone = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)
    tags = TagSummarySerializer(many=True, read_only=True)
    tag_ids = serializers.PrimaryKeyRelatedField(
        queryset=Tag.objects.select_related("group"), many=True, write_only=True, required=False
    )
    owner = AssignableUserField(scope_model=Contact, required=False, allow_null=True)
    referred_by = VisibleContactField(required=False, allow_null=True)
    marketing_consent = serializers.BooleanField(required=False)
    consent_source = limits.SafeCharField(required=False, allow_blank=True, max_length=64)
    acquired_at = limits.SafeDateTimeField(required=False)

    class Meta:
        model = Contact
        # What a caller may write is services.CONTACT_EDITABLE_FIELDS (the one list); the rest is read-only.
        fields = [
            "id",
            *CONTACT_EDITABLE_FIELDS,
            "stage",
            "marketing_consent",
            "consent_at",
            "consent_source",
            "opted_out_at",
            "erased_at",
            "tags",
            "tag_ids",
            "first_purchase_at",
            "last_purchase_at",
            "purchase_count",
            "total_spent",
            "last_interaction_at",
            "referral_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "stage",
            "consent_at",
            "opted_out_at",
            "erased_at",
            "first_purchase_at",
            "last_purchase_at",
            "purchase_count",
            "total_spent",
            "last_interaction_at",
            "referral_count",
            "created_at",
            "updated_at",
        ]
        # Uniqueness is checked by the service against the normalised values.
        validators = []
        extra_kwargs = {
            "external_id": {"validators": []},
            "wecom_external_userid": {"validators": []},
            "wechat_unionid": {"validators": []},
        }

    def validate_phone(self, value):
        if not value:
            return None
        try:
            return normalize_phone(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate_birthday(self, value):
        limits.not_in_future_check(value)
        return value


class ContactUpdateSerializer(ContactSerializer):
    class Meta(ContactSerializer.Meta):
        read_only_fields = [*ContactSerializer.Meta.read_only_fields, "marketing_consent", "consent_source"]


class BulkTagSerializer(serializers.Serializer):
    """Contacts and tags of a bulk (un)tag. Every id must be a contact the user may see, or the request is
    rejected as a whole (``services.contacts_bulk_tag``)."""

    contact_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=limits.INT_MAX), min_length=1, max_length=100000
    )
    tag_ids = serializers.PrimaryKeyRelatedField(
        queryset=Tag.objects.select_related("group"), many=True, allow_empty=False
    )


class MergeSerializer(serializers.Serializer):
    duplicate = VisibleContactField()


class ReassignSerializer(serializers.Serializer):
    contact_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=limits.INT_MAX), min_length=1, max_length=100000
    )
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))


class HandoverSerializer(serializers.Serializer):
    from_user = serializers.PrimaryKeyRelatedField(queryset=User.objects.all())
    to_user = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))
    include_communities = serializers.BooleanField(default=True)


class ConsentSerializer(serializers.Serializer):
    source = limits.SafeCharField(max_length=64)


class PurchaseItemSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="sku", queryset=Product.objects.all())
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    quantity = serializers.IntegerField(min_value=1, max_value=limits.INT_MAX, default=1)

    class Meta:
        model = PurchaseItem
        fields = ["product", "quantity", "unit_price"]


class PurchaseSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """An order. On create, name the contact by ``contact`` (id) or ``contact_external_id``; items name
    products by SKU."""

    contact = VisibleContactField(required=False)
    contact_external_id = limits.SafeCharField(write_only=True, required=False, max_length=64)
    items = PurchaseItemSerializer(many=True, required=False)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)

    class Meta:
        model = Purchase
        fields = [
            "id",
            "contact",
            "contact_external_id",
            "external_order_id",
            "purchased_at",
            "amount",
            "status",
            "refunded_at",
            "source",
            "items",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        validators = []
        extra_kwargs = {"external_order_id": {"validators": []}}

    def validate_purchased_at(self, value):
        limits.not_in_future_check(value)
        return value

    def validate(self, attrs):
        external_id = attrs.pop("contact_external_id", None)
        if external_id and not attrs.get("contact"):
            contact = (
                Contact.objects.live().visible_to(self.context["request"].user).filter(external_id=external_id).first()
            )
            if contact is None:
                raise serializers.ValidationError({"contact_external_id": _("No contact has this external ID.")})
            attrs["contact"] = contact
        if not attrs.get("contact"):
            raise serializers.ValidationError({"contact": _("Name the contact by contact or contact_external_id.")})
        return attrs


class RefundSerializer(serializers.Serializer):
    refunded_at = limits.SafeDateTimeField(required=False)


@extend_schema_field(OpenApiTypes.INT)
class VisibleCommunityField(serializers.PrimaryKeyRelatedField):
    """A community the caller may see; any other id is answered like an unknown one."""

    def get_queryset(self):
        return Community.objects.visible_to(self.context["request"].user)


class TouchpointSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    contact = VisibleContactField()
    community = VisibleCommunityField(required=False, allow_null=True)

    class Meta:
        model = Touchpoint
        fields = ["id", "contact", "medium", "kind", "occurred_at", "staff", "community", "metadata"]
        extra_kwargs = {"occurred_at": {"required": False}, "staff": {"read_only": True}}


class ExportJobSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "status",
            "params",
            "total_rows",
            "written_rows",
            "progress_percent",
            "message",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, job) -> str | None:
        if job.status != ExportJob.Status.DONE:
            return None
        return reverse("exportjob-download", args=[job.pk], request=self.context.get("request"))


class SavedViewSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    """A saved view of the contact list (the caller's own): its name, the list's filters as a query string
    (checked against the list's filters when saved) and whether a manager shared it with the team.
    ``contacts_url`` lists its contacts through the API."""

    contacts_url = serializers.SerializerMethodField()

    class Meta:
        model = SavedView
        fields = ["id", "name", "query", "shared", "contacts_url", "created_at", "updated_at"]
        read_only_fields = ["id", "contacts_url", "created_at", "updated_at"]
        # Unique per owner: the service says so, naming the field (the owner is the caller, not an input).
        validators = []

    def get_contacts_url(self, view) -> str:
        url = reverse("contact-list", request=self.context.get("request"))
        return f"{url}?{view.query}" if view.query else url


class ImportJobSerializer(SafeSerializerMixin, serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "kind",
            "status",
            "filename",
            "total_rows",
            "processed_rows",
            "progress_percent",
            "created_count",
            "updated_count",
            "unchanged_count",
            "error_count",
            "errors",
            "message",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
