"""Dashboard pages for communities (社群): the list and one community with its current members."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from contacts.models import Contact

from .forms import DashboardCommunityFilterSet
from .selectors import community_list as visible_communities
from .selectors import membership_list

PAGE_SIZE = 50


@login_required
@permission_required("communities.view_community", raise_exception=True)
def community_list(request: HttpRequest) -> HttpResponse:
    filterset = DashboardCommunityFilterSet(request.GET, queryset=visible_communities(request.user), request=request)
    page_obj = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "communities/community_list.html",
        {"filterset": filterset, "page_obj": page_obj, "communities": list(page_obj.object_list)},
    )


@login_required
@permission_required("communities.view_community", raise_exception=True)
def community_detail(request: HttpRequest, pk: int) -> HttpResponse:
    community = get_object_or_404(visible_communities(request.user), pk=pk)
    members = (
        membership_list(request.user)
        .filter(community=community, left_at__isnull=True)
        .select_related("contact__owner")
        .order_by("-joined_at", "-id")
    )
    page_obj = Paginator(members, PAGE_SIZE).get_page(request.GET.get("page"))
    memberships = list(page_obj.object_list)
    # Members owned by other staff are listed (the community's runner sees who is in the group) but
    # their contact page is linked only for contacts the user may open.
    openable = set(
        Contact.objects.live()
        .visible_to(request.user)
        .filter(pk__in=[m.contact_id for m in memberships])
        .values_list("pk", flat=True)
    )
    for membership in memberships:
        membership.can_open = membership.contact_id in openable
    return render(
        request,
        "communities/community_detail.html",
        {
            "community": community,
            "page_obj": page_obj,
            "memberships": memberships,
            "fill_percent": min(100, round(community.member_count * 100 / community.capacity))
            if community.capacity
            else 0,
        },
    )
