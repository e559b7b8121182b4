"""``GET /api/v1/contacts/{id}/personal-data/``: everything held about one person (JSON, or
``?as=csv``), for their access request. Needs the contact to be visible and the export permission."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from scrm.audit import Action, audit
from scrm.permissions import TokenScopes

from ..models import Contact
from ..privacy import personal_data, personal_data_csv


class CanExportContacts(IsAuthenticated):
    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.user.has_perm("contacts.export_contacts")


class PersonalDataView(APIView):
    permission_classes = [TokenScopes, CanExportContacts]

    @extend_schema(
        summary="Everything held about one contact (PIPL access request)",
        parameters=[OpenApiParameter("as", str, enum=["json", "csv"], description="csv: one line per field")],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="?as=csv: one line per field."),
        },
    )
    def get(self, request, pk: int) -> HttpResponse:
        contact = get_object_or_404(Contact.objects.visible_to(request.user), pk=pk)
        audit(
            Action.PERSONAL_DATA_EXPORTED,
            actor=request.user,
            target=contact,
            detail={"as": request.query_params.get("as", "json")},
        )
        if request.query_params.get("as") == "csv":
            response = StreamingHttpResponse(personal_data_csv(contact), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="personal-data-{contact.pk}.csv"'
            return response
        return Response(personal_data(contact))
