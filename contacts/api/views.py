"""REST API for contacts and their reference data. CRUD viewsets declare their queryset, serializer and
filters; actions validate input with a serializer, call one service and serialise the result."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.http import FileResponse, Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from contacts import selectors, services
from contacts.filtersets import ContactFilterSet, PurchaseFilterSet, TouchpointFilterSet
from contacts.models import Channel, ChannelSpend, Contact, ExportJob, ImportJob, Product, Tag, TagGroup
from contacts.saved_views import saved_view_create, saved_view_delete, saved_view_update, saved_views_owned
from scrm.audit import Action, audit
from scrm.exceptions import ConflictError

from . import serializers as s

User = get_user_model()


class ContactViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Contacts the caller may see (operators: the ones they own). Contacts are never deleted through the
    API: use ``erase`` (personal data removal) or ``merge``."""

    serializer_class = s.ContactSerializer
    filterset_class = ContactFilterSet
    ordering_fields = ["acquired_at", "last_purchase_at", "total_spent", "purchase_count", "name", "id"]
    action_permissions = {
        "bulk_tag": ["contacts.change_contact"],
        "bulk_untag": ["contacts.change_contact"],
        "merge": ["contacts.merge_contacts"],
        "reassign": ["contacts.handover_contacts"],
        "handover": ["contacts.handover_contacts"],
        "consent": ["contacts.change_contact"],
        "opt_out": ["contacts.change_contact"],
        "erase": ["contacts.erase_contact"],
        "export": ["contacts.export_contacts"],
        "import_csv": ["contacts.import_contacts"],
    }

    def get_queryset(self):
        if self.action == "list":
            return selectors.contact_list(self.request.user)
        return selectors.contact_detail(self.request.user).prefetch_related("tags__group")

    def retrieve(self, request, *args, **kwargs):
        response = super().retrieve(request, *args, **kwargs)
        audit(Action.CONTACT_VIEWED, actor=request.user, target_type="contacts.contact", target_id=kwargs["pk"])
        return response

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.ContactUpdateSerializer
        return s.ContactSerializer

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tag_ids", [])
        serializer.instance = services.contact_create(actor=self.request.user, tags=tags, tag_source="api", **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tag_ids", None)
        with transaction.atomic():
            contact = services.contact_update(contact=serializer.instance, actor=self.request.user, **data)
            if tags is not None:
                services.contact_tags_set(contact=contact, tags=tags, actor=self.request.user, source="api")
        serializer.instance = self.get_queryset().get(pk=contact.pk)

    @extend_schema(
        request=s.BulkTagSerializer,
        responses=inline_serializer("BulkTagResult", {"changed": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"], url_path="bulk-tag")
    def bulk_tag(self, request):
        """Put tags on many contacts at once (safe to retry)."""
        data = self._valid(s.BulkTagSerializer)
        added = services.contacts_bulk_tag(
            actor=request.user, contact_ids=data["contact_ids"], tags=data["tag_ids"], source="api"
        )
        return Response({"changed": added})

    @extend_schema(
        request=s.BulkTagSerializer,
        responses=inline_serializer("BulkUntagResult", {"changed": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"], url_path="bulk-untag")
    def bulk_untag(self, request):
        """Remove tags from many contacts at once."""
        data = self._valid(s.BulkTagSerializer)
        removed = services.contacts_bulk_untag(
            actor=request.user, contact_ids=data["contact_ids"], tags=data["tag_ids"]
        )
        return Response({"changed": removed})

    @extend_schema(request=s.MergeSerializer, responses=s.ContactSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        """Merge the ``duplicate`` contact into this one."""
        primary = self.get_object()
        data = self._valid(s.MergeSerializer)
        contact = services.contact_merge(primary=primary, duplicate=data["duplicate"], actor=request.user)
        return Response(
            s.ContactSerializer(self.get_queryset().get(pk=contact.pk), context=self.get_serializer_context()).data
        )

    @extend_schema(
        request=s.ReassignSerializer,
        responses=inline_serializer("ReassignResult", {"changed": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"])
    def reassign(self, request):
        """Give the listed contacts to another owner."""
        data = self._valid(s.ReassignSerializer)
        contacts = Contact.objects.live().visible_to(request.user).filter(pk__in=data["contact_ids"])
        changed = services.contacts_reassign(contacts=contacts, owner=data["owner"], actor=request.user)
        return Response({"changed": changed})

    @extend_schema(
        request=s.HandoverSerializer,
        responses=inline_serializer(
            "HandoverResult", {"contacts": serializers.IntegerField(), "communities": serializers.IntegerField()}
        ),
    )
    @action(detail=False, methods=["post"])
    def handover(self, request):
        """离职继承: hand all contacts (and communities) of a departing staff member to another."""
        data = self._valid(s.HandoverSerializer)
        result = services.contacts_handover(
            from_user=data["from_user"],
            to_user=data["to_user"],
            actor=request.user,
            include_communities=data["include_communities"],
        )
        return Response(result)

    @extend_schema(request=s.ConsentSerializer, responses=s.ContactSerializer)
    @action(detail=True, methods=["post"])
    def consent(self, request, pk=None):
        """Record the contact's marketing consent and where it was given."""
        contact = self.get_object()
        data = self._valid(s.ConsentSerializer)
        services.contact_consent_give(contact=contact, source=data["source"], actor=request.user)
        return self._contact_response(contact.pk)

    @extend_schema(request=None, responses=s.ContactSerializer)
    @action(detail=True, methods=["post"], url_path="opt-out")
    def opt_out(self, request, pk=None):
        """Record an opt-out: no marketing message reaches the contact any more."""
        contact = self.get_object()
        services.contact_opt_out(contact=contact, actor=request.user)
        return self._contact_response(contact.pk)

    @extend_schema(request=None, responses=s.ContactSerializer)
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        """Erase the contact's personal data (purchases stay, anonymous, for historical totals)."""
        contact = self.get_object()
        services.contact_erase(contact=contact, actor=request.user)
        return self._contact_response(contact.pk)

    @extend_schema(request=None, responses={202: s.ExportJobSerializer})
    @action(detail=False, methods=["post"])
    def export(self, request):
        """Export the filtered contact list as CSV in the background (same filters as the list, in the query
        string). Answers 202 with the job; poll ``/api/v1/exports/{id}/`` and download the file from its
        ``download_url`` when its status is ``done``. A job is complete or failed, never short."""
        from contacts.exports import export_job_create

        params = [(key, value) for key, values in request.query_params.lists() for value in values]
        try:
            job = export_job_create(user=request.user, source=ExportJob.Source.API, params=params)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
            ) from exc
        return Response(s.ExportJobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "ImportUpload",
                {"file": serializers.FileField(), "kind": serializers.ChoiceField(choices=ImportJob.Kind.choices)},
            )
        },
        responses={202: s.ImportJobSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_csv(self, request):
        """Upload a CSV of contacts (``kind=contacts``) or purchases (``kind=purchases``). The import runs in
        the background; poll ``/api/v1/imports/{id}/`` for progress and the report of rejected rows."""
        from contacts.imports import import_job_create

        upload = request.FILES.get("file")
        kind = request.data.get("kind", ImportJob.Kind.CONTACTS)
        if upload is None:
            raise serializers.ValidationError({"file": ["Upload a CSV file."]})
        if kind not in ImportJob.Kind.values:
            raise serializers.ValidationError({"kind": [f"Choose one of: {', '.join(ImportJob.Kind.values)}."]})
        job = import_job_create(kind=kind, upload=upload, actor=request.user)
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def _valid(self, serializer_class):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _contact_response(self, pk):
        return Response(s.ContactSerializer(self.get_queryset().get(pk=pk), context=self.get_serializer_context()).data)


class ImportJobViewSet(viewsets.ReadOnlyModelViewSet):
    """CSV imports: progress and the report of rejected rows (line, field, problem)."""

    serializer_class = s.ImportJobSerializer
    queryset = ImportJob.objects.all()

    def get_queryset(self):
        qs = super().get_queryset()
        if not Contact.objects.sees_all(self.request.user):
            qs = qs.filter(created_by_id=self.request.user.pk)
        return qs


class ExportJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Contact exports the caller asked for (``POST /contacts/export/``): progress, and the file once done.
    Only the user who asked for an export sees it."""

    serializer_class = s.ExportJobSerializer
    action_permissions = {action: ["contacts.export_contacts"] for action in ("list", "retrieve", "download")}

    def get_queryset(self):
        return ExportJob.objects.visible_to(self.request.user)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY, 404: OpenApiResponse(description="Not ready")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The export's CSV file; 404 until the export is done, and after its file expired."""
        job = self.get_object()
        if job.status != ExportJob.Status.DONE or not job.file:
            raise Http404
        audit(Action.EXPORT_DOWNLOADED, actor=request.user, target=job, count=job.written_rows)
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=job.filename, content_type="text/csv")


class SavedViewViewSet(viewsets.ModelViewSet):
    """The caller's saved views of the contact list (我的视图): a name and the list's filters as a query
    string, checked against the list's filters on every write (a bad filter is a 400 naming it). Each user
    sees and changes only their own; ``shared`` (managers only) shows a view to the team in the dashboard.
    Another user's view answers 404, like an unknown id."""

    serializer_class = s.SavedViewSerializer
    # A personal preference of whoever may read the contact list.
    action_permissions = {
        action: ["contacts.view_contact"]
        for action in ("list", "retrieve", "create", "update", "partial_update", "destroy")
    }

    def get_queryset(self):
        return saved_views_owned(self.request.user).order_by("name", "id")

    # Django ValidationErrors from the services answer 400 naming the field (scrm.api.exception_handler).
    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = saved_view_create(
            owner=self.request.user, name=data["name"], query=data["query"], shared=data.get("shared", False)
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = saved_view_update(
            view=serializer.instance,
            actor=self.request.user,
            name=data.get("name"),
            query=data.get("query"),
            shared=data.get("shared"),
        )

    def perform_destroy(self, instance):
        saved_view_delete(view=instance, actor=self.request.user)


class ReferencedDeleteMixin:
    """Reference data (channels, products, tag groups) that contacts, orders or codes still point to is
    kept: ``DELETE`` answers 409 and says why, instead of failing on the protected foreign key."""

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError as exc:
            raise ConflictError(
                _("“%(name)s” is still in use (by %(count)d records), so it cannot be deleted; deactivate it instead.")
                % {"name": str(instance), "count": len(exc.protected_objects)}
            ) from exc


class TagGroupViewSet(ReferencedDeleteMixin, viewsets.ModelViewSet):
    queryset = TagGroup.objects.all()
    serializer_class = s.TagGroupSerializer
    filterset_fields = ["exclusive"]


class TagViewSet(ReferencedDeleteMixin, viewsets.ModelViewSet):
    queryset = Tag.objects.select_related("group")
    serializer_class = s.TagSerializer
    filterset_fields = ["group"]


class ChannelViewSet(ReferencedDeleteMixin, viewsets.ModelViewSet):
    queryset = Channel.objects.all()
    serializer_class = s.ChannelSerializer
    filterset_fields = ["kind", "is_active"]


class ChannelSpendViewSet(ReferencedDeleteMixin, viewsets.ModelViewSet):
    queryset = ChannelSpend.objects.select_related("channel")
    serializer_class = s.ChannelSpendSerializer
    filterset_fields = ["channel"]


class ProductViewSet(ReferencedDeleteMixin, viewsets.ModelViewSet):
    queryset = Product.objects.all()
    serializer_class = s.ProductSerializer
    filterset_fields = ["is_active", "sku"]


class PurchaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orders. ``POST`` is idempotent on ``external_order_id``: 201 when the order is new, 200 with the
    stored order when it was already recorded, 409 when the stored order disagrees."""

    serializer_class = s.PurchaseSerializer
    filterset_class = PurchaseFilterSet
    ordering_fields = ["purchased_at", "amount", "id"]
    action_permissions = {"create": ["contacts.add_purchase"], "refund": ["contacts.change_purchase"]}

    def get_queryset(self):
        return selectors.purchase_list(self.request.user)

    @extend_schema(
        request=s.PurchaseSerializer,
        responses={201: s.PurchaseSerializer, 200: s.PurchaseSerializer, 409: OpenApiResponse(description="Conflict")},
    )
    def create(self, request):
        serializer = s.PurchaseSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        purchase, created = services.purchase_record(
            contact=data["contact"],
            external_order_id=data["external_order_id"],
            purchased_at=data["purchased_at"],
            amount=data["amount"],
            status=data.get("status", "paid"),
            items=data.get("items", []),
            source=data.get("source", ""),
            refunded_at=data.get("refunded_at"),
        )
        purchase = self.get_queryset().get(pk=purchase.pk)
        return Response(
            s.PurchaseSerializer(purchase, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=s.RefundSerializer, responses=s.PurchaseSerializer)
    @action(detail=True, methods=["post"])
    def refund(self, request, pk=None):
        """Mark the order refunded (idempotent)."""
        purchase = self.get_object()
        data = s.RefundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.purchase_refund(purchase=purchase, refunded_at=data.validated_data.get("refunded_at"))
        return Response(
            s.PurchaseSerializer(self.get_queryset().get(pk=purchase.pk), context=self.get_serializer_context()).data
        )


class TouchpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Interactions (append-only)."""

    serializer_class = s.TouchpointSerializer
    filterset_class = TouchpointFilterSet
    ordering_fields = ["occurred_at", "id"]

    def get_queryset(self):
        return selectors.touchpoint_list(self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.touchpoint_record(staff=self.request.user, **serializer.validated_data)
