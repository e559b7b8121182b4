from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from communities import selectors, services
from communities.filtersets import CommunityFilterSet, MembershipFilterSet

from . import serializers as s


class CommunityViewSet(viewsets.ModelViewSet):
    """Communities the caller runs (operators) or all of them (managers)."""

    serializer_class = s.CommunitySerializer
    filterset_class = CommunityFilterSet
    ordering_fields = ["name", "created_at", "member_count"]

    def get_queryset(self):
        return selectors.community_list(self.request.user)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        admins = data.pop("admins", ())
        community = services.community_create(actor=self.request.user, admins=admins, **data)
        serializer.instance = self.get_queryset().get(pk=community.pk)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        admins = data.pop("admins", None)
        community = services.community_update(
            community=serializer.instance, actor=self.request.user, admins=admins, **data
        )
        serializer.instance = self.get_queryset().get(pk=community.pk)


class MembershipViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Who is in which community. ``POST`` joins (idempotent: 200 with the open membership when the
    contact is already in); ``leave`` closes a membership."""

    serializer_class = s.MembershipSerializer
    filterset_class = MembershipFilterSet
    action_permissions = {"leave": ["communities.change_membership"]}

    def get_queryset(self):
        return selectors.membership_list(self.request.user)

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership, created = services.membership_join(staff=request.user, **serializer.validated_data)
        return Response(
            s.MembershipSerializer(membership, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=s.LeaveSerializer, responses=s.MembershipSerializer)
    @action(detail=True, methods=["post"])
    def leave(self, request, pk=None):
        membership = self.get_object()
        data = s.LeaveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_leave(membership=membership, left_at=data.validated_data.get("left_at"))
        return Response(s.MembershipSerializer(membership, context=self.get_serializer_context()).data)
