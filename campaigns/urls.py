"""Dashboard pages for campaigns, mounted at /campaigns/ (namespace ``campaigns``)."""

from __future__ import annotations

from django.urls import path

from . import views
from .views import tasks as task_views

app_name = "campaigns"

urlpatterns = [
    # Broadcasts (群发): the section's home page.
    path("", views.broadcast_list, name="broadcast_list"),
    path("broadcasts/new/", views.broadcast_create, name="broadcast_create"),
    path("broadcasts/estimate/", views.broadcast_estimate, name="broadcast_estimate"),
    path("broadcasts/pending/", views.broadcast_pending, name="broadcast_pending"),
    path("broadcasts/<int:pk>/", views.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/edit/", views.broadcast_edit, name="broadcast_edit"),
    path("broadcasts/<int:pk>/progress/", views.broadcast_progress, name="broadcast_progress"),
    path("broadcasts/<int:pk>/deliveries/", views.broadcast_deliveries, name="broadcast_deliveries"),
    path("broadcasts/<int:pk>/submit/", views.broadcast_submit, name="broadcast_submit"),
    path("broadcasts/<int:pk>/approve/", views.broadcast_approve, name="broadcast_approve"),
    path("broadcasts/<int:pk>/reject/", views.broadcast_reject, name="broadcast_reject"),
    path("broadcasts/<int:pk>/cancel/", views.broadcast_cancel, name="broadcast_cancel"),
    # Segments
    path("segments/", views.segment_list, name="segment_list"),
    path("segments/new/", views.segment_create, name="segment_create"),
    path("segments/count/", views.segment_count, name="segment_count"),
    path("segments/<int:pk>/", views.segment_edit, name="segment_edit"),
    path("segments/<int:pk>/count/", views.segment_row_count, name="segment_row_count"),
    # Script and material library (话术/素材库)
    path("templates/", views.template_list, name="template_list"),
    path("templates/new/", views.template_create, name="template_create"),
    path("templates/<int:pk>/", views.template_detail, name="template_detail"),
    path("templates/<int:pk>/edit/", views.template_edit, name="template_edit"),
    # Outbox, frequency policy
    path("outbox/", views.outbox, name="outbox"),
    # One-off messages from a contact's page
    path("contacts/<int:pk>/message/", views.contact_message, name="contact_message"),
    path("deliveries/<int:pk>/status/", views.delivery_status, name="delivery_status"),
    path("policy/", views.policy_edit, name="policy"),
    # Automations (SOP) and follow-up tasks (跟进任务)
    path("automations/", views.automation_list, name="automation_list"),
    path("automations/new/", views.automation_create, name="automation_create"),
    path("automations/<int:pk>/", views.automation_edit, name="automation_edit"),
    path("automations/<int:pk>/active/", views.automation_toggle, name="automation_toggle"),
    path("automations/<int:pk>/runs/", views.automation_runs, name="automation_runs"),
    path("tasks/", views.task_list, name="task_list"),
    path("tasks/<int:pk>/done/", views.task_done, name="task_done"),
    path("tasks/new/", task_views.task_create, name="task_create"),
    path("tasks/contact-options/", task_views.task_contact_options, name="task_contact_options"),
]
