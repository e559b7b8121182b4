"""Dashboard pages for campaigns: segments with a rules builder and live counts, the script and material
library (话术/素材库), broadcasts (群发) with approval and a live progress bar, the outbox, the frequency
policy, automations (SOP) and follow-up tasks (跟进任务).

Reads start from ``campaigns.selectors`` so that an operator reaches only their own broadcasts, the
messages to their own contacts and their own tasks; an id outside that set is a 404. Writes go through
the services, whose ``ValidationError`` messages are shown on the form, naming the field.

Each section of the campaigns dashboard is a module here: ``segments``, ``message_templates``,
``broadcasts`` (with the outbox), ``policy``, ``automations`` and ``tasks`` (the follow-up tasks); ``common``
holds what they share.
"""

from .automations import automation_create, automation_edit, automation_list, automation_runs, automation_toggle
from .broadcasts import (
    broadcast_approve,
    broadcast_cancel,
    broadcast_create,
    broadcast_detail,
    broadcast_edit,
    broadcast_estimate,
    broadcast_list,
    broadcast_pending,
    broadcast_progress,
    broadcast_reject,
    broadcast_submit,
    outbox,
)
from .deliveries import broadcast_deliveries, contact_message, delivery_status
from .message_templates import template_create, template_detail, template_edit, template_list
from .policy import policy_edit
from .segments import segment_count, segment_create, segment_edit, segment_list, segment_row_count
from .tasks import task_done, task_list

__all__ = [
    "automation_create",
    "automation_edit",
    "automation_list",
    "automation_runs",
    "automation_toggle",
    "broadcast_approve",
    "broadcast_cancel",
    "broadcast_create",
    "broadcast_deliveries",
    "broadcast_detail",
    "broadcast_edit",
    "broadcast_estimate",
    "broadcast_list",
    "broadcast_pending",
    "broadcast_progress",
    "broadcast_reject",
    "broadcast_submit",
    "contact_message",
    "delivery_status",
    "outbox",
    "policy_edit",
    "segment_count",
    "segment_create",
    "segment_edit",
    "segment_list",
    "segment_row_count",
    "task_done",
    "task_list",
    "template_create",
    "template_detail",
    "template_edit",
    "template_list",
]
