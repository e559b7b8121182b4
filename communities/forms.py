"""Forms of the community dashboard pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .filtersets import CommunityFilterSet
from .models import Community

# The filters the list page shows; the others of the shared FilterSet still apply from the query string.
DASHBOARD_FILTERS = ("name", "kind", "platform", "status")


class DashboardCommunityFilterSet(CommunityFilterSet):
    """The shared ``CommunityFilterSet`` with labels and widgets for the list page."""

    @property
    def form(self):
        if not hasattr(self, "_form"):
            form = super().form
            form.fields["name"].label = _("Search by name")
            form.fields["name"].widget.attrs.update({"placeholder": _("Community name"), "type": "search"})
            form.fields["kind"].label = _("Type")
            form.fields["kind"].widget = forms.CheckboxSelectMultiple(choices=Community.Kind.choices)
            # django-filter's choice fields add their own empty choice ("---------") in front of the
            # choices: name it instead of adding a second one.
            form.fields["platform"].label = _("Platform")
            form.fields["platform"].empty_label = _("All platforms")
            form.fields["platform"].choices = Community.Platform.choices
            form.fields["status"].label = _("Status")
            form.fields["status"].empty_label = _("All statuses")
            form.fields["status"].choices = Community.Status.choices
        return self._form

    def visible_fields(self):
        return [self.form[name] for name in DASHBOARD_FILTERS if name in self.form.fields]
