"""Reaching people: segments, message templates, broadcasts, deliveries, the frequency policy,
automations (SOP) and the follow-up tasks they create.

The ``Delivery`` table is the ledger that makes sending exactly-once and auditable: one row per
(broadcast, contact) or per automation run, created in one set-based statement, claimed by workers with
conditional updates, and counted by the frequency caps.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import SEE_ALL_CONTACTS
from scrm.querysets import RestrictedQuerySet

# Who sees every broadcast, delivery and task: those who see every contact, and approvers.
SEE_ALL_CAMPAIGNS = (SEE_ALL_CONTACTS, "campaigns.approve_broadcast")


class BroadcastQuerySet(RestrictedQuerySet):
    """Operators see the broadcasts they wrote."""

    owner_path = "created_by"
    see_all_permissions = SEE_ALL_CAMPAIGNS


class ContactMessageQuerySet(RestrictedQuerySet):
    """Deliveries and outbox messages: operators see the ones to their own contacts."""

    owner_path = "contact__owner"
    see_all_permissions = SEE_ALL_CAMPAIGNS


class AutomationRunQuerySet(RestrictedQuerySet):
    owner_path = "contact__owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class FollowUpTaskQuerySet(RestrictedQuerySet):
    """Operators see the tasks assigned to them."""

    owner_path = "assignee"
    see_all_permissions = SEE_ALL_CAMPAIGNS


class Medium(models.TextChoices):
    """Where a message goes. Each medium is sent through the gateway configured for it."""

    WECOM = "wecom", _("WeCom 1:1 (企业微信)")
    GROUP = "group", _("WeChat group (社群)")
    OFFICIAL_ACCOUNT = "official_account", _("Official account (公众号)")
    SMS = "sms", _("SMS (短信)")
    EMAIL = "email", _("Email")


class Segment(models.Model):
    """A saved audience: a tree of whitelisted rules (``campaigns.segments``) compiled to ORM filters each
    time it is used, so a segment is always current at send time."""

    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(_("description"), max_length=300, blank=True)
    rules = models.JSONField(_("rules"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        # Segments are shared for reading and use; changing or deleting one is for its author and for
        # those who hold this permission (or see every contact): see ``services.segment_may_change``.
        permissions = [("change_any_segment", _("Can change or delete any segment"))]

    def __str__(self) -> str:
        return self.name


class MessageTemplate(models.Model):
    """One entry of the script and material library (话术/素材库): a message body with ``{placeholder}``
    fields filled per contact by the safe formatter in ``campaigns.content``."""

    class Kind(models.TextChoices):
        MESSAGE = "message", _("Message (消息模板)")
        SCRIPT = "script", _("Operator script (话术)")

    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=50, blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.MESSAGE)
    subject = models.CharField(_("subject"), max_length=200, blank=True, help_text=_("Email only."))
    body = models.TextField(_("body"))
    # Service messages (an order thank-you) may be exempt from the frequency caps, never from consent.
    is_service = models.BooleanField(_("service message"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["category", "name", "id"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name


class FrequencyPolicy(models.Model):
    """The sending policy of the whole workspace (a single row, ``pk=1``), edited by managers in the
    dashboard: quiet hours and whether service messages are exempt from the caps. The caps themselves
    are ``FrequencyCap`` rows."""

    quiet_hours_enabled = models.BooleanField(_("quiet hours on"), default=True)
    quiet_start = models.TimeField(_("quiet hours start"), default="22:00")
    quiet_end = models.TimeField(_("quiet hours end"), default="08:00")
    exempt_service_messages = models.BooleanField(_("service messages are exempt from the caps"), default=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        verbose_name = _("frequency policy")
        verbose_name_plural = _("frequency policy")

    def __str__(self) -> str:
        return str(_("Frequency policy"))


class FrequencyCap(models.Model):
    """At most ``max_messages`` marketing messages per contact per window, on one medium or (blank
    medium) on all media together. The window is the last ``window_days`` days (rolling), or the
    contact's current calendar month; ``max_messages`` empty on a calendar-month cap means "as many as
    the month has days" — WeCom's own rule for customer broadcasts."""

    class Window(models.TextChoices):
        ROLLING = "rolling", _("Rolling window of days")
        CALENDAR_MONTH = "month", _("Calendar month")

    medium = models.CharField(_("medium"), max_length=20, choices=Medium.choices, blank=True)
    window = models.CharField(_("window"), max_length=10, choices=Window.choices, default=Window.ROLLING)
    window_days = models.PositiveSmallIntegerField(_("window (days)"), null=True, blank=True)
    max_messages = models.PositiveSmallIntegerField(_("at most"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["medium", "window", "window_days"]
        verbose_name = _("frequency cap")
        verbose_name_plural = _("frequency caps")
        constraints = [
            models.CheckConstraint(
                condition=(Q(window="rolling", window_days__gte=1, max_messages__isnull=False))
                | Q(window="month", window_days__isnull=True),
                name="frequency_cap_window_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.medium or '*'} {self.window} {self.window_days or ''} ≤ {self.max_messages or 'days'}"


class Broadcast(models.Model):
    """One mass send (群发): an audience (a segment and/or communities), a template, a medium and a time.

    Status flow: draft → pending approval (operators' broadcasts) → scheduled → sending → sent, or
    cancelled before it is sent. The deliveries are planned once, when sending starts."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PENDING_APPROVAL = "pending_approval", _("Pending approval")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    name = models.CharField(_("name"), max_length=100)
    segment = models.ForeignKey(
        Segment, on_delete=models.PROTECT, null=True, blank=True, related_name="broadcasts", verbose_name=_("segment")
    )
    communities = models.ManyToManyField(
        "communities.Community", blank=True, related_name="broadcasts", verbose_name=_("communities")
    )
    template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, related_name="broadcasts", verbose_name=_("template")
    )
    variables = models.JSONField(_("variables"), default=dict, blank=True, help_text=_("e.g. the coupon code."))
    medium = models.CharField(_("medium"), max_length=20, choices=Medium.choices, default=Medium.WECOM)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    scheduled_at = models.DateTimeField(_("send at"), null=True, blank=True)
    defer_quiet_hours = models.BooleanField(
        _("defer messages in quiet hours"),
        default=True,
        help_text=_("Deliver them when the quiet hours end instead of suppressing them."),
    )
    conversion_window_days = models.PositiveSmallIntegerField(_("conversion window (days)"), default=7)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="broadcasts", verbose_name=_("created by")
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    started_at = models.DateTimeField(_("sending started at"), null=True, blank=True)
    planned_at = models.DateTimeField(_("deliveries planned at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    total_targeted = models.PositiveIntegerField(_("targeted"), default=0)
    # The audience its approver saw, frozen at approval (or at submission by someone who needs no
    # approval): the segment's rules then, and how many contacts they matched. Planning reads these, so
    # a segment edited afterwards cannot widen or change an approved broadcast.
    audience_rules = models.JSONField(_("frozen segment rules"), null=True, blank=True, editable=False)
    audience_count = models.PositiveIntegerField(_("audience when approved"), null=True, blank=True, editable=False)
    audience_frozen_at = models.DateTimeField(_("audience frozen at"), null=True, blank=True, editable=False)
    # Touched by every chunk a worker sends: the periodic tick re-enqueues senders only when it is stale.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = BroadcastQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("broadcast")
        verbose_name_plural = _("broadcasts")
        permissions = [("approve_broadcast", _("Can approve broadcasts"))]
        indexes = [models.Index(fields=["status", "scheduled_at"], name="broadcast_due")]

    def __str__(self) -> str:
        return self.name


class Automation(models.Model):
    """One SOP: when ``trigger`` happens to a contact, wait ``delay_minutes``, check the optional
    ``condition`` segment, then do ``action``. Each firing is an ``AutomationRun``."""

    class Trigger(models.TextChoices):
        CONTACT_CREATED = "contact_created", _("Contact created")
        PURCHASE_MADE = "purchase_made", _("Purchase made")
        BIRTHDAY = "birthday", _("Birthday")
        REPURCHASE_DUE = "repurchase_due", _("Repurchase due")
        INACTIVE = "inactive", _("Inactive for N days")
        JOINED_COMMUNITY = "joined_community", _("Joined a community")
        TAG_ADDED = "tag_added", _("Tag added")

    class Action(models.TextChoices):
        SEND_TEMPLATE = "send_template", _("Send a template")
        ADD_TAG = "add_tag", _("Add a tag")
        REMOVE_TAG = "remove_tag", _("Remove a tag")
        ASSIGN_OWNER = "assign_owner", _("Assign an owner")
        CREATE_TASK = "create_task", _("Create a follow-up task")

    name = models.CharField(_("name"), max_length=100)
    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices)
    # Trigger parameters: inactive → {"days": 30}; joined_community → {"community": id} (optional);
    # tag_added → {"tag": id}; repurchase_due → {"product": id} (optional).
    trigger_config = models.JSONField(_("trigger settings"), default=dict, blank=True)
    delay_minutes = models.PositiveIntegerField(_("delay (minutes)"), default=0)
    condition = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="automations",
        verbose_name=_("condition"),
    )
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="automations"
    )
    medium = models.CharField(_("medium"), max_length=20, choices=Medium.choices, default=Medium.WECOM)
    variables = models.JSONField(_("variables"), default=dict, blank=True)
    tag = models.ForeignKey("contacts.Tag", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    task_title = models.CharField(_("task title"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Events before this moment never fire the automation: switching one on does not replay history.
    active_since = models.DateTimeField(_("active since"), null=True, blank=True)
    # High-water mark of the trigger scan (events are re-read with an overlap; the runs' unique key dedupes).
    scanned_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("automation")
        verbose_name_plural = _("automations")

    def __str__(self) -> str:
        return self.name


class AutomationRun(models.Model):
    """One firing of an automation for one contact. ``key`` names the event (``purchase:42``,
    ``repurchase:42:7``, ``birthday:2026`` ...): unique per (automation, contact, key), which is what
    makes the trigger scan safe to repeat and a repurchase reminder fire once per purchase cycle."""

    class Status(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Condition not met")
        FAILED = "failed", _("Failed")

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="runs")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="automation_runs")
    key = models.CharField(max_length=64)
    # For repurchase reminders and purchase thank-yous: the purchase (and product) that fired the run.
    purchase = models.ForeignKey("contacts.Purchase", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    product = models.ForeignKey("contacts.Product", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = AutomationRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("automation run")
        verbose_name_plural = _("automation runs")
        constraints = [
            models.UniqueConstraint(fields=["automation", "contact", "key"], name="automation_run_once"),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="automation_run_due", condition=Q(status="waiting")),
        ]

    def __str__(self) -> str:
        return f"{self.automation_id}/{self.contact_id}/{self.key}"


class Delivery(models.Model):
    """One message to one contact, from a broadcast, an automation run, a WeCom welcome or a one-off message
    written by a staff member on the contact's page (``one_off_key``): the exactly-once ledger.

    ``pending`` → ``sending`` (claimed by a worker; counts against the caps from this moment) → ``sent`` or
    ``failed``; or ``suppressed`` with the reason. ``not_before`` defers a pending delivery and ``hold`` says
    why (quiet hours, a retry's backoff): when the quiet hours change, the rows they hold are released.
    A one-off message has a template, or its own ``body`` (placeholders allowed, rendered at send time)."""

    class Hold(models.TextChoices):
        QUIET_HOURS = "quiet_hours", _("Quiet hours")
        RETRY = "retry", _("Retry after an error")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SUPPRESSED = "suppressed", _("Suppressed")

    class Reason(models.TextChoices):
        NO_CONSENT = "no_consent", _("No consent")
        OPTED_OUT = "opted_out", _("Opted out")
        FREQUENCY_CAP = "frequency_cap", _("Frequency cap")
        QUIET_HOURS = "quiet_hours", _("Quiet hours")
        NO_ADDRESS = "no_address", _("No address for this medium")
        GONE = "gone", _("Contact erased or merged")
        NOT_OWNED = "not_owned", _("No longer the author's contact")
        CANCELLED = "cancelled", _("Broadcast cancelled")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries")
    automation_run = models.OneToOneField(
        AutomationRun, on_delete=models.CASCADE, null=True, blank=True, related_name="delivery"
    )
    # A WeCom welcome message (欢迎语): the WelcomeCode of the add it answers, usable once.
    welcome_code = models.CharField(max_length=128, null=True, blank=True, unique=True)
    # A one-off message: its idempotency key (a retried request finds the same row) and who wrote it.
    one_off_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="deliveries")
    medium = models.CharField(max_length=20, choices=Medium.choices)
    # Empty only for a one-off message written freely: then ``subject``/``body`` hold its text.
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Defaults in the database too: the set-based INSERT … SELECT of planning and automations leaves them out.
    subject = models.CharField(max_length=200, blank=True, default="", db_default="")
    body = models.TextField(blank=True, default="", db_default="")
    is_marketing = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=16, choices=Reason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    hold = models.CharField(max_length=16, choices=Hold.choices, blank=True, default="", db_default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    error = models.TextField(blank=True)
    # What the gateway answered: its message id and state (WeCom: waiting for the staff member to confirm).
    gateway = models.CharField(max_length=16, blank=True)
    gateway_message_id = models.CharField(max_length=128, blank=True)
    gateway_state = models.CharField(max_length=32, blank=True)

    objects = ContactMessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "contact"],
                condition=Q(broadcast__isnull=False),
                name="delivery_once_per_broadcast",
            ),
            models.CheckConstraint(
                condition=Q(broadcast__isnull=False)
                | Q(automation_run__isnull=False)
                | Q(welcome_code__isnull=False)
                | Q(one_off_key__isnull=False),
                name="delivery_has_source",
            ),
            models.CheckConstraint(condition=Q(template__isnull=False) | ~Q(body=""), name="delivery_has_content"),
        ]
        indexes = [
            # The frequency caps: a contact's marketing messages that count (claimed or sent) by time.
            models.Index(
                fields=["contact", "claimed_at"],
                condition=Q(status__in=["sending", "sent"]),
                name="delivery_cap_count",
            ),
            models.Index(fields=["broadcast", "status"], name="delivery_broadcast_status"),
            models.Index(fields=["status", "claimed_at"], name="delivery_stuck", condition=Q(status="sending")),
            # What the quiet hours hold: released at once when the policy changes.
            models.Index(
                fields=["not_before"], name="delivery_quiet_hold", condition=Q(status="pending", hold="quiet_hours")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk}: {self.contact_id} {self.status}"


class OutboxMessage(models.Model):
    """A message "sent" through the outbox gateway: the rendered text, recorded in the same transaction
    that marks its delivery sent (so a crash can never leave one without the other)."""

    delivery = models.OneToOneField(Delivery, on_delete=models.CASCADE, related_name="outbox_message")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    medium = models.CharField(max_length=20, choices=Medium.choices)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ContactMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")

    def __str__(self) -> str:
        return f"{self.delivery_id}: {self.body[:40]}"


class FollowUpTask(models.Model):
    """A to-do for the staff member who owns a contact (跟进任务), created by an automation or by hand.

    ``remind_at`` is when the assignee wants to be reminded; the beat task ``follow_up_reminders_tick``
    stamps ``reminded_at`` once it has passed, and the task then heads the assignee's list until it is
    done. Completing a task records its ``outcome`` and a ``task_done`` touchpoint on the contact's
    timeline (``campaigns.followups``)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")

    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follow_up_tasks", verbose_name=_("assignee")
    )
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="follow_up_tasks", verbose_name=_("contact")
    )
    title = models.CharField(_("title"), max_length=200)
    note = models.TextField(_("note"), blank=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    remind_at = models.DateTimeField(_("remind at"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("reminded at"), null=True, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    # What came of it (跟进结果), written when the task is completed. A database default too: automations
    # write their tasks with one INSERT … SELECT that names only the columns it sets.
    outcome = models.TextField(_("outcome"), blank=True, default="", db_default="")
    automation_run = models.OneToOneField(
        AutomationRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="task"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("completed by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    objects = FollowUpTaskQuerySet.as_manager()

    class Meta:
        ordering = ["status", "due_at", "-id"]
        verbose_name = _("follow-up task")
        verbose_name_plural = _("follow-up tasks")
        indexes = [
            models.Index(fields=["assignee", "status"], name="task_assignee_status"),
            # The open tasks of one assignee by due time: the today / overdue views and their counts.
            models.Index(fields=["assignee", "due_at"], name="task_open_assignee_due", condition=Q(status="open")),
            # The reminder tick: open tasks whose reminder has not fired yet, by reminder time.
            models.Index(
                fields=["remind_at"],
                name="task_reminder_due",
                condition=Q(status="open", reminded_at__isnull=True, remind_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title
