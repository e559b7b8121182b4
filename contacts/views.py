from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def contact_list(request):
    return HttpResponse("contacts")


@login_required
def contact_import(request):
    return HttpResponse("import")


@login_required
def contact_detail(request, pk):
    return HttpResponse("contact")
