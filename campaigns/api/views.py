"""REST API for campaigns: segments, message templates, broadcasts, deliveries and the outbox, the
frequency policy, automations and their runs, follow-up tasks.

CRUD viewsets declare their queryset (from the selectors, scoped to the caller), serializer and filters,
and write through the services; actions validate input with a serializer, call one service and serialise
the result. Nothing that is part of the delivery ledger is deleted through the API: broadcasts are
cancelled and automations deactivated instead (``DELETE`` answers 405).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, ProtectedError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from campaigns import automations, content, followups, policy, segments, selectors, services
from campaigns.filtersets import (
    AutomationFilterSet,
    AutomationRunFilterSet,
    BroadcastFilterSet,
    DeliveryFilterSet,
    FollowUpTaskFilterSet,
    MessageTemplateFilterSet,
    OutboxMessageFilterSet,
    SegmentFilterSet,
)
from campaigns.models import AutomationRun, FrequencyCap, FrequencyPolicy
from contacts.models import Contact

from . import serializers as s


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The request conflicts with the stored data.")
    default_code = "conflict"


class ValidSerializerMixin:
    def _valid(self, serializer_class, **kwargs):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- Segments -------------------------------------------------------------------------------------


class SegmentViewSet(ValidSerializerMixin, viewsets.ModelViewSet):
    """Saved audiences. A segment's live count is evaluated in the database among the contacts the caller
    may see: on the detail, on ``count``, and for unsaved rules on ``preview``. A segment that broadcasts
    or automations use cannot be deleted (409)."""

    filterset_class = SegmentFilterSet
    ordering_fields = ["name", "created_at", "updated_at", "id"]
    # Counting unsaved rules is a read, though it is a POST.
    action_permissions = {"preview": ["campaigns.view_segment"]}

    def get_queryset(self):
        return selectors.segment_list(self.request.user)

    def get_serializer_class(self):
        if self.action == "list":
            return s.SegmentSerializer
        return s.SegmentDetailSerializer

    def perform_create(self, serializer):
        segment = services.segment_create(created_by=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=segment.pk)

    def get_object(self):
        segment = super().get_object()
        # Shared for reading; changing or deleting is for the author and managers. Checked before the body
        # is read, so a refused edit says nothing about the body.
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and not services.segment_may_change(
            segment=segment, user=self.request.user
        ):
            raise exceptions.PermissionDenied(_("Only the segment's author or a manager can change or delete it."))
        return segment

    def perform_update(self, serializer):
        segment = services.segment_update(
            segment=serializer.instance, user=self.request.user, **serializer.validated_data
        )
        serializer.instance = self.get_queryset().get(pk=segment.pk)

    def perform_destroy(self, instance):
        try:
            services.segment_delete(segment=instance, user=self.request.user)
        except ProtectedError as exc:
            raise Conflict(_("This segment is used by broadcasts or automations, so it cannot be deleted.")) from exc

    @extend_schema(request=s.SegmentPreviewSerializer, responses=s.CountSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """The live count of unsaved ``rules``, among the contacts you may see."""
        data = self._valid(s.SegmentPreviewSerializer)
        rules = segments.segment_rules_validate(data["rules"], user=request.user)
        return Response({"count": segments.segment_count(rules, user=request.user)})

    @extend_schema(responses=s.SegmentFieldSerializer(many=True), filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def fields(self, request):
        """The rule language: each field with its label, operators and (for choice fields) choices."""
        return Response(segments.segment_fields_describe())

    @extend_schema(responses=s.CountSerializer)
    @action(detail=True, methods=["get"])
    def count(self, request, pk=None):
        """How many contacts the segment matches now, among those you may see."""
        segment = self.get_object()
        return Response({"count": segments.segment_count(segment, user=request.user)})


# --- Message templates ----------------------------------------------------------------------------


class MessageTemplateViewSet(ValidSerializerMixin, viewsets.ModelViewSet):
    """The script and material library (话术/素材库). Placeholders are ``{name}``-style fields filled by the
    safe formatter; an unknown placeholder is a 400 on ``body`` (or ``subject``). A template that
    broadcasts, automations or deliveries refer to cannot be deleted (409): archive it with
    ``is_active: false``."""

    serializer_class = s.MessageTemplateSerializer
    filterset_class = MessageTemplateFilterSet
    ordering_fields = ["name", "category", "created_at", "updated_at", "id"]
    # Rendering a preview is a read, though it is a POST.
    action_permissions = {"preview": ["campaigns.view_messagetemplate"]}

    def get_queryset(self):
        return selectors.template_list(self.request.user)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        is_active = data.pop("is_active", True)
        template = services.message_template_create(created_by=self.request.user, **data)
        if not is_active:
            template = services.message_template_update(template=template, is_active=False)
        serializer.instance = self.get_queryset().get(pk=template.pk)

    def perform_update(self, serializer):
        template = services.message_template_update(template=serializer.instance, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=template.pk)

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(
                _("This template has been used (broadcasts, automations or sent messages); archive it instead.")
            ) from exc

    @extend_schema(
        request=s.TemplatePreviewSerializer,
        responses={200: s.TemplatePreviewResultSerializer, 404: OpenApiResponse(description="Unknown contact.")},
    )
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        """The template's text as ``contact`` would receive it, with ``variables`` filled in. The contact must
        be one you may see (404 otherwise)."""
        template = self.get_object()
        data = self._valid(s.TemplatePreviewSerializer)
        contact = get_object_or_404(
            Contact.objects.live().visible_to(request.user).select_related("owner"), pk=data["contact"]
        )
        variables = data["variables"]
        subject = content.template_preview(template.subject, contact, variables=variables) if template.subject else ""
        text = content.template_preview(template, contact, variables=variables)
        return Response({"subject": subject, "text": text})

    @extend_schema(responses=s.PlaceholderSerializer(many=True), filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def placeholders(self, request):
        """The placeholders a template may use: contact fields, and variables each broadcast supplies."""
        return Response(
            [
                {
                    "name": name,
                    "description": str(description),
                    "source": "variable" if name in content.VARIABLE_PLACEHOLDERS else "contact",
                }
                for name, description in content.PLACEHOLDERS.items()
            ]
        )

    @extend_schema(responses=s.TemplateCategorySerializer(many=True), filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def categories(self, request):
        """The categories in use, with how many templates each has."""
        rows = (
            self.get_queryset()
            .order_by("category")
            .values("category")
            .annotate(count=Count("id"))
            .values_list("category", "count")
        )
        return Response([{"category": category, "count": n} for category, n in rows])


# --- Broadcasts -----------------------------------------------------------------------------------


class BroadcastViewSet(
    ValidSerializerMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Mass sends (群发). Operators see and edit only their own broadcasts, which reach only their own
    contacts. Flow: create (draft) → ``submit`` (scheduled, or pending approval when the author may not
    approve) → ``approve`` / ``reject`` (managers) → sending → sent; ``cancel`` before it is sent.
    Only drafts can be edited. Broadcasts are never deleted (405): cancel them."""

    serializer_class = s.BroadcastSerializer
    filterset_class = BroadcastFilterSet
    ordering_fields = ["created_at", "scheduled_at", "name", "id"]
    action_permissions = {
        "submit": ["campaigns.change_broadcast"],
        "approve": ["campaigns.approve_broadcast"],
        "reject": ["campaigns.approve_broadcast"],
        "cancel": ["campaigns.change_broadcast"],
    }

    def get_queryset(self):
        return selectors.broadcast_list(self.request.user)

    def perform_create(self, serializer):
        broadcast = services.broadcast_create(created_by=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=broadcast.pk)

    def perform_update(self, serializer):
        broadcast = services.broadcast_update(
            broadcast=serializer.instance, user=self.request.user, **serializer.validated_data
        )
        serializer.instance = self.get_queryset().get(pk=broadcast.pk)

    def _broadcast_response(self, broadcast):
        broadcast = self.get_queryset().get(pk=broadcast.pk)
        return Response(s.BroadcastSerializer(broadcast, context=self.get_serializer_context()).data)

    @extend_schema(request=s.BroadcastSubmitSerializer, responses=s.BroadcastSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Ask for the draft to be sent at ``scheduled_at`` (default: its own time, else now). Managers'
        broadcasts are scheduled at once; operators' wait for approval. 400 when the audience is empty or
        the time is past."""
        broadcast = self.get_object()
        data = self._valid(s.BroadcastSubmitSerializer)
        broadcast = services.broadcast_submit(
            broadcast=broadcast, user=request.user, scheduled_at=data.get("scheduled_at")
        )
        return self._broadcast_response(broadcast)

    @extend_schema(request=None, responses=s.BroadcastSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a broadcast pending approval: it is scheduled (a time already past means now)."""
        broadcast = services.broadcast_approve(broadcast=self.get_object(), user=request.user)
        return self._broadcast_response(broadcast)

    @extend_schema(request=None, responses=s.BroadcastSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Send a broadcast pending approval back to its author as a draft."""
        broadcast = services.broadcast_reject(broadcast=self.get_object(), user=request.user)
        return self._broadcast_response(broadcast)

    @extend_schema(request=None, responses=s.BroadcastSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop a broadcast that is not sent yet (harmless when repeated); deliveries not yet claimed are
        suppressed with the reason "cancelled"."""
        broadcast = services.broadcast_cancel(broadcast=self.get_object(), user=request.user)
        return self._broadcast_response(broadcast)

    @extend_schema(responses=s.BroadcastProgressSerializer)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """How many deliveries are pending, in flight, sent, failed and suppressed (by reason)."""
        progress = selectors.broadcast_progress(self.get_object())
        return Response(s.BroadcastProgressSerializer(progress).data)

    @extend_schema(responses=s.BroadcastResultsSerializer)
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Progress plus conversions: recipients who made a paid purchase within the conversion window."""
        results = selectors.broadcast_results(self.get_object())
        return Response(s.BroadcastResultsSerializer(results).data)


# --- Deliveries and the outbox --------------------------------------------------------------------


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The delivery ledger: one row per message to one contact. Operators see deliveries to their own
    contacts only."""

    serializer_class = s.DeliverySerializer
    filterset_class = DeliveryFilterSet
    ordering_fields = ["id", "created_at", "claimed_at", "sent_at"]

    def get_queryset(self):
        return selectors.delivery_list(self.request.user)


class OutboxMessageViewSet(viewsets.ReadOnlyModelViewSet):
    """Messages "sent" through the outbox gateway, as rendered."""

    serializer_class = s.OutboxMessageSerializer
    filterset_class = OutboxMessageFilterSet
    ordering_fields = ["id", "created_at"]

    def get_queryset(self):
        return selectors.outbox_list(self.request.user)


# --- Frequency policy -----------------------------------------------------------------------------

_CAP_KEY = re.compile(r"^caps\[(\d+)\]\.")


def _dotted_cap_errors(exc: DjangoValidationError) -> DjangoValidationError:
    """``caps[1].window_days`` (the service's keys) → ``caps.1.window_days`` (the API's dotted fields)."""
    if not hasattr(exc, "error_dict"):
        return exc
    return DjangoValidationError(
        {
            _CAP_KEY.sub(r"caps.\1.", key): [m for e in errors for m in e.messages]
            for key, errors in exc.error_dict.items()
        }
    )


class FrequencyPolicyViewSet(ValidSerializerMixin, viewsets.GenericViewSet):
    """The workspace sending policy (one per workspace, no id in the URL): quiet hours, whether service
    messages are exempt, and the frequency caps. ``PUT`` needs ``campaigns.change_frequencypolicy``
    (managers)."""

    singleton = True
    queryset = FrequencyPolicy.objects.all()
    serializer_class = s.FrequencyPolicySerializer
    pagination_class = None
    filter_backends: list = []

    def get_object(self):
        return policy.policy_get()

    def _policy_response(self):
        policy_row = FrequencyPolicy.objects.select_related("updated_by").get(pk=policy.policy_get().pk)
        return Response(s.FrequencyPolicySerializer(policy_row, context=self.get_serializer_context()).data)

    @extend_schema(responses=s.FrequencyPolicySerializer)
    def retrieve(self, request):
        return self._policy_response()

    @extend_schema(request=s.FrequencyPolicyUpdateSerializer, responses=s.FrequencyPolicySerializer)
    def update(self, request):
        data = self._valid(s.FrequencyPolicyUpdateSerializer)
        current = policy.policy_get()
        if "preset" in data:
            caps = policy.PRESETS[data["preset"]]
        elif "caps" in data:
            caps = data["caps"]
        else:
            caps = list(FrequencyCap.objects.values("medium", "window", "window_days", "max_messages"))
        try:
            services.policy_update(
                user=request.user,
                quiet_hours_enabled=data.get("quiet_hours_enabled", current.quiet_hours_enabled),
                quiet_start=data.get("quiet_start", current.quiet_start),
                quiet_end=data.get("quiet_end", current.quiet_end),
                exempt_service_messages=data.get("exempt_service_messages", current.exempt_service_messages),
                caps=[dict(cap) for cap in caps],
            )
        except DjangoValidationError as exc:
            raise _dotted_cap_errors(exc) from exc
        return self._policy_response()


# --- Automations ----------------------------------------------------------------------------------


class AutomationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """SOPs: trigger → delay → condition → action. Switch one on or off with ``activate``/``deactivate``
    (switching on never replays past events). Automations are not deleted (405): their runs and
    deliveries are the record of what was sent."""

    serializer_class = s.AutomationSerializer
    filterset_class = AutomationFilterSet
    ordering_fields = ["name", "created_at", "id"]
    action_permissions = {
        "activate": ["campaigns.change_automation"],
        "deactivate": ["campaigns.change_automation"],
    }

    def get_queryset(self):
        return selectors.automation_list(self.request.user)

    def perform_create(self, serializer):
        automation = automations.automation_create(created_by=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=automation.pk)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        is_active = data.pop("is_active", None)
        automation = serializer.instance
        if data:
            automation = automations.automation_update(automation=automation, **data)
        if is_active is not None and is_active != automation.is_active:
            automation = automations.automation_set_active(automation=automation, active=is_active)
        serializer.instance = self.get_queryset().get(pk=automation.pk)

    def _set_active(self, active: bool):
        automation = automations.automation_set_active(automation=self.get_object(), active=active)
        automation = self.get_queryset().get(pk=automation.pk)
        return Response(s.AutomationSerializer(automation, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses=s.AutomationSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Switch the automation on: events from now on fire it."""
        return self._set_active(True)

    @extend_schema(request=None, responses=s.AutomationSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        """Switch the automation off."""
        return self._set_active(False)


class AutomationRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Each firing of an automation for one contact. Operators see runs for their own contacts only."""

    serializer_class = s.AutomationRunSerializer
    filterset_class = AutomationRunFilterSet
    ordering_fields = ["created_at", "due_at", "id"]

    def get_queryset(self):
        return AutomationRun.objects.visible_to(self.request.user).select_related("automation", "contact")


# --- Follow-up tasks ------------------------------------------------------------------------------


class FollowUpTaskViewSet(
    ValidSerializerMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Follow-up tasks (跟进任务). Operators see the tasks assigned to them; a new task goes to the
    contact's owner unless ``assignee`` says otherwise (managers only), with the checks of the dashboard's
    task forms (``campaigns.followups.follow_up_task_add``: posting the same open task again returns it).
    ``complete`` takes an optional ``outcome``, which also goes on the contact's timeline."""

    serializer_class = s.FollowUpTaskSerializer
    filterset_class = FollowUpTaskFilterSet
    ordering_fields = ["due_at", "remind_at", "created_at", "id"]
    action_permissions = {"complete": ["campaigns.change_followuptask"]}

    def get_queryset(self):
        return selectors.task_list(self.request.user).select_related("completed_by")

    def perform_create(self, serializer):
        task = followups.follow_up_task_add(actor=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=task.pk)

    @extend_schema(request=s.FollowUpTaskCompleteSerializer, responses=s.FollowUpTaskSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """Mark the task done with an optional outcome (harmless when repeated: the first outcome stays)."""
        task = self.get_object()
        data = self._valid(s.FollowUpTaskCompleteSerializer)
        task = followups.follow_up_task_finish(task=task, user=request.user, **data)
        task = self.get_queryset().get(pk=task.pk)
        return Response(s.FollowUpTaskSerializer(task, context=self.get_serializer_context()).data)
