"""Back-office views of the stored scores and fits. Both tables are written only by the nightly
refresh, so the admin is read-only."""

from __future__ import annotations

from django.contrib import admin

from .models import ClvFit, CohortActivity, ContactScore


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ContactScore)
class ContactScoreAdmin(_ReadOnlyAdmin):
    list_display = (
        "contact",
        "layer",
        "r_score",
        "f_score",
        "m_score",
        "recency_days",
        "frequency",
        "monetary",
        "predicted_clv",
        "p_alive",
        "as_of",
    )
    list_filter = ("layer", "r_score", "f_score", "m_score", "as_of")
    list_select_related = ("contact",)
    search_fields = ("contact__name", "contact__phone")
    raw_id_fields = ("contact",)
    ordering = ("-predicted_clv",)
    show_full_result_count = False


@admin.register(ClvFit)
class ClvFitAdmin(_ReadOnlyAdmin):
    list_display = (
        "started_at",
        "as_of",
        "status",
        "converged",
        "customers",
        "repeat_customers",
        "contacts_scored",
        "r",
        "alpha",
        "a",
        "b",
        "p",
        "q",
        "gamma",
        "seconds",
    )
    list_filter = ("status", "converged")
    date_hierarchy = "started_at"


@admin.register(CohortActivity)
class CohortActivityAdmin(_ReadOnlyAdmin):
    list_display = ("by", "kind", "cohort_month", "month", "channel_id", "owner_id", "contacts", "refreshed_at")
    list_filter = ("by", "kind", "cohort_month")
    show_full_result_count = False
