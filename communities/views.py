from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def community_list(request):
    return HttpResponse("communities")
