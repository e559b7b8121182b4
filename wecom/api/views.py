"""REST API of the WeCom connection: channel live codes (渠道活码), follow relationships (scoped by the
contact's owner), the callback inbox and sync runs (managers), and the staff accounts with their user
mapping.

Live codes are written through ``wecom.livecodes`` (a refusal, here or by WeCom, is a 400 naming the
field); they are never deleted: ``DELETE`` (or ``POST …/archive/``) archives them, which stops the code in
WeCom and keeps its figures."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analytics.api.parameters import form_errors

from .. import livecodes, selectors
from ..client import WeComError
from ..filtersets import (
    CallbackEventFilterSet,
    FollowRelationshipFilterSet,
    LiveCodeFilterSet,
    StaffAccountFilterSet,
    SyncRunFilterSet,
)
from ..forms import IntakeForm
from ..reports import follow_flows, intake_totals
from ..services import staff_account_user_set, sync_enqueue
from . import serializers as s


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The request conflicts with the stored data.")
    default_code = "conflict"


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = gettext_lazy("WeCom could not be reached.")
    default_code = "wecom_unreachable"


def _service(call, **kwargs):
    """Run a live code service: its ValidationError becomes a 400 (by the exception handler), WeCom being
    unreachable a 502."""
    try:
        return call(**kwargs)
    except WeComError as exc:
        raise BadGateway(_("WeCom could not be reached: %(error)s") % {"error": exc}) from exc


# --- Live codes -----------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(request=s.LiveCodeInputSerializer, responses={201: s.LiveCodeSerializer}),
    update=extend_schema(request=s.LiveCodeInputSerializer, responses=s.LiveCodeSerializer),
    partial_update=extend_schema(request=s.LiveCodeInputSerializer, responses=s.LiveCodeSerializer),
    destroy=extend_schema(
        responses={204: OpenApiResponse(description="Archived: the code stops working in WeCom; its figures stay.")}
    ),
)
class LiveCodeViewSet(viewsets.ModelViewSet):
    """Channel live codes. Create and change them in WeCom and here; ``DELETE`` archives (never deletes).
    ``figures`` count the contacts the caller may see."""

    serializer_class = s.LiveCodeSerializer
    filterset_class = LiveCodeFilterSet
    ordering_fields = ["name", "created_at", "id"]
    action_permissions = {"archive": ["wecom.change_livecode"], "qr": ["wecom.view_livecode"]}

    def get_queryset(self):
        return selectors.live_code_list(self.request.user)

    def _with_figures(self, live_codes) -> dict:
        context = self.get_serializer_context()
        context["figures"] = livecodes.live_code_figures(live_codes=list(live_codes), user=self.request.user)
        return context

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        data = s.LiveCodeSerializer(rows, many=True, context=self._with_figures(rows)).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def _response(self, live_code, code=status.HTTP_200_OK):
        live_code = self.get_queryset().get(pk=live_code.pk)
        return Response(s.LiveCodeSerializer(live_code, context=self._with_figures([live_code])).data, status=code)

    def retrieve(self, request, *args, **kwargs):
        return self._response(self.get_object())

    def _input(self, *, partial_of=None) -> dict:
        serializer = s.LiveCodeInputSerializer(
            data=self.request.data, partial=partial_of is not None, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "pool" in data:
            data["pool"] = [livecodes.PoolMember(staff=m["staff"], daily_cap=m.get("daily_cap")) for m in data["pool"]]
        if partial_of is not None:  # PATCH: what is left out keeps its value
            code = partial_of
            current = {
                "name": code.name,
                "channel": code.channel,
                "pool": [livecodes.PoolMember(staff=m.staff, daily_cap=m.daily_cap) for m in code.pool.all()],
                "backup_staff": code.backup_staff,
                "assignment": code.assignment,
                "skip_verify": code.skip_verify,
                "tags": list(code.tags.all()),
                "welcome_template": code.welcome_template,
                "welcome_attachments": list(code.welcome_attachments or []),
            }
            data = {**current, **data}
        return data

    def create(self, request, *args, **kwargs):
        live_code = _service(livecodes.live_code_create, actor=request.user, **self._input())
        return self._response(live_code, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        live_code = self.get_object()
        if not live_code.is_active:
            raise Conflict(_("An archived code cannot be changed."))
        partial = kwargs.get("partial", False)
        data = self._input(partial_of=live_code if partial else None)
        live_code = _service(livecodes.live_code_update, live_code=live_code, **data)
        return self._response(live_code)

    def destroy(self, request, *args, **kwargs):
        live_code = self.get_object()
        if live_code.is_active:
            _service(livecodes.live_code_archive, live_code=live_code)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.LiveCodeSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Archive the code (harmless when repeated): it stops working in WeCom; its figures stay."""
        live_code = self.get_object()
        if live_code.is_active:
            live_code = _service(livecodes.live_code_archive, live_code=live_code)
        return self._response(live_code)

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def qr(self, request, pk=None):
        """The code's QR image (PNG), drawn here from WeCom's QR link (or, without one, the code's state)."""
        live_code = self.get_object()
        return HttpResponse(livecodes.live_code_qr_png(live_code=live_code), content_type="image/png")


# --- Follow relationships -------------------------------------------------------------------------


class FollowRelationshipViewSet(viewsets.ReadOnlyModelViewSet):
    """Who follows whom in WeCom. Operators see the follow relationships of their own contacts."""

    serializer_class = s.FollowRelationshipSerializer
    filterset_class = FollowRelationshipFilterSet
    ordering_fields = ["added_at", "deleted_at", "id"]

    def get_queryset(self):
        return selectors.follow_list(self.request.user)

    @extend_schema(
        summary="Intake per day: adds, losses (流失), removals, net adds",
        parameters=[
            OpenApiParameter(
                "date_from", OpenApiTypes.DATE, description="First day (default: 13 days before date_to)."
            ),
            OpenApiParameter("date_to", OpenApiTypes.DATE, description="Last day (default: today)."),
            OpenApiParameter(
                "by", str, enum=["channel", "live_code", "staff"], description="Group per (default: channel)."
            ),
        ],
        responses={200: s.IntakeSerializer},
    )
    @action(detail=False, methods=["get"], url_path="intake", filterset_class=None, pagination_class=None)
    def intake(self, request):
        """Adds, losses (the customer deleted the staff member), removals (the staff member deleted the
        customer) and net adds per day and per channel, live code or staff member, over the contacts the
        user may see; with the totals over the period."""
        form = IntakeForm(request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(form_errors(form))
        data = form.cleaned_data
        rows = follow_flows(user=request.user, start=data["date_from"], end=data["date_to"], by=data["by"])
        body = {
            "date_from": data["date_from"],
            "date_to": data["date_to"],
            "by": data["by"],
            "totals": intake_totals(rows),
            "days": rows,
        }
        return Response(s.IntakeSerializer(body).data)


# --- Callback inbox and sync runs (managers) -------------------------------------------------------


class CallbackEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The callback inbox: every verified WeCom callback and how its processing went."""

    serializer_class = s.CallbackEventSerializer
    filterset_class = CallbackEventFilterSet
    ordering_fields = ["received_at", "id"]

    def get_queryset(self):
        return selectors.callback_event_list(self.request.user)


@extend_schema_view(
    create=extend_schema(
        request=None,
        responses={
            202: s.SyncQueuedSerializer,
            409: OpenApiResponse(description="A sync is already running."),
            503: OpenApiResponse(description="The sync task is not installed."),
        },
    )
)
class SyncRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Full syncs: follow users, every customer of each, then corp tags. ``POST`` starts one (managers);
    the run appears in the list once a worker picks it up."""

    serializer_class = s.SyncRunSerializer
    filterset_class = SyncRunFilterSet
    ordering_fields = ["started_at", "id"]

    def get_queryset(self):
        return selectors.sync_run_list(self.request.user)

    def create(self, request, *args, **kwargs):
        queued, message = sync_enqueue(user=request.user)
        if not queued:
            raise Conflict(message)
        return Response({"queued": True, "detail": str(message)}, status=status.HTTP_202_ACCEPTED)


# --- Staff accounts -------------------------------------------------------------------------------


@extend_schema_view(partial_update=extend_schema(request=s.StaffAccountUserSerializer))
class StaffAccountViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """WeCom members (synced from WeCom) and the user who works as each. ``PATCH {"user": id|null}`` maps
    one (managers); one user works as one member."""

    serializer_class = s.StaffAccountSerializer
    filterset_class = StaffAccountFilterSet
    ordering_fields = ["userid", "name", "id"]
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.staff_account_list(self.request.user)

    def perform_update(self, serializer):
        if "user" not in serializer.validated_data:
            raise exceptions.ValidationError({"user": [_("This field is required.")]})
        account = staff_account_user_set(staff_account=serializer.instance, user=serializer.validated_data["user"])
        serializer.instance = self.get_queryset().get(pk=account.pk)
