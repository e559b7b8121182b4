"""The SOP engine: automations (trigger → delay → condition → action) and their runs.

* ``services``: an automation's writes: ``automation_create``, ``automation_update``,
  ``automation_set_active``, everything validated when it is saved.
* ``triggers``: ``automations_scan`` finds, for each active automation, the trigger events that happened
  since it last looked and writes one ``AutomationRun`` per event in ``INSERT … SELECT … ON CONFLICT DO
  NOTHING`` statements, in keyset chunks of the source table. The run's ``key`` names the event
  (``purchase:42``, ``birthday:2026``, ``repurchase:42:7`` …) and is unique per (automation, contact, key):
  re-reading an overlapping window, or two scans at once, writes each run once.
* ``runs``: ``automation_runs_process`` claims chunks of due waiting runs (``SELECT … FOR UPDATE SKIP
  LOCKED`` and a conditional update), drops those whose contact is gone, fails the condition segment, or
  (repurchase reminders) bought again or was refunded, and applies the action to the rest with one
  statement per automation. Claim, action and the runs' final status commit together, so a worker killed
  mid-chunk leaves the runs waiting and nothing half-done; sends are ``Delivery`` rows (unique per run)
  that the senders of ``campaigns.sending`` send with the same consent, cap and quiet-hour checks as
  broadcasts.

* ``backfill``: the explicit “also apply to the contacts who match now” of switching one on
  (``automation_backfill_count`` previews it, ``automation_set_active(apply_to_current=True)`` does it).

Both periodic steps are set-based and harmless when beat runs them twice at once. Events before an
automation's ``active_since`` never fire it: switching one on does not replay history. Follow-up tasks made
by hand are written in ``campaigns.services``.
"""

from .backfill import automation_backfill, automation_backfill_count
from .runs import automation_runs_process
from .services import AUTOMATION_EDITABLE_FIELDS, automation_create, automation_set_active, automation_update
from .triggers import automation_scan, automations_scan

__all__ = [
    "AUTOMATION_EDITABLE_FIELDS",
    "automation_backfill",
    "automation_backfill_count",
    "automation_create",
    "automation_runs_process",
    "automation_scan",
    "automation_set_active",
    "automation_update",
    "automations_scan",
]
