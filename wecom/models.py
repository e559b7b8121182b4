"""The connection to WeCom (企业微信): staff accounts, follow relationships, channel live codes (渠道活码),
the callback inbox, corp tag links and sync runs.

Domain effects (contacts, tags, touchpoints, deliveries) go through the other apps' services; these
tables hold only what WeCom itself knows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from contacts.models import SEE_ALL_CONTACTS
from scrm.querysets import RestrictedQuerySet


class FollowQuerySet(RestrictedQuerySet):
    """A follow relationship is seen with its contact."""

    owner_path = "contact__owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class StaffAccount(models.Model):
    """A WeCom member (userid) and the Django user who works as them. Synced from
    ``get_follow_user_list`` (the members allowed to have customers) and editable by managers. Every
    WeCom call made for a user names this userid; nothing assumes it equals the username."""

    userid = models.CharField(_("WeCom userid"), max_length=64, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="wecom_account",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    # In the latest get_follow_user_list: may have customers (客户联系 permission).
    is_follow_user = models.BooleanField(_("has customer contact"), default=True)
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["userid"]
        verbose_name = _("WeCom staff account")
        verbose_name_plural = _("WeCom staff accounts")

    def __str__(self) -> str:
        return f"{self.name} ({self.userid})" if self.name else self.userid


class LiveCode(models.Model):
    """A channel live code (渠道活码): WeCom's "contact me" way (``add_contact_way``) with our ``state``,
    a pool of staff, tags applied to whoever scans it and a welcome message (欢迎语)."""

    class Assignment(models.TextChoices):
        ROUND_ROBIN = "round_robin", _("Round robin")
        FEWEST_TODAY = "fewest_today", _("Fewest added today")

    name = models.CharField(_("name"), max_length=100)
    channel = models.ForeignKey(
        "contacts.Channel", on_delete=models.PROTECT, related_name="live_codes", verbose_name=_("channel")
    )
    # WeCom's state: at most 30 characters, unique here, carried back in add_external_contact.
    state = models.CharField(_("state"), max_length=30, unique=True)
    assignment = models.CharField(
        _("assignment"), max_length=16, choices=Assignment.choices, default=Assignment.ROUND_ROBIN
    )
    backup_staff = models.ForeignKey(
        StaffAccount,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("backup staff"),
        help_text=_("Takes the adds when every member of the pool has reached their daily cap."),
    )
    skip_verify = models.BooleanField(_("add without verification"), default=True)
    tags = models.ManyToManyField("contacts.Tag", blank=True, related_name="+", verbose_name=_("tags"))
    welcome_template = models.ForeignKey(
        "campaigns.MessageTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("welcome message"),
    )
    # Attachments sent with the welcome text: [{"msgtype": "link"|"image"|"miniprogram", ...}] as WeCom takes them.
    welcome_attachments = models.JSONField(_("welcome attachments"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # What WeCom answered to add_contact_way.
    config_id = models.CharField(_("WeCom config_id"), max_length=64, blank=True)
    qr_code = models.URLField(_("WeCom QR code URL"), max_length=500, blank=True)
    # The userids the code currently sends scanners to (those under their cap), as last given to WeCom.
    wecom_users = models.JSONField(default=list, blank=True)
    # Round robin: the position of the next member in the pool.
    next_position = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("channel live code")
        verbose_name_plural = _("channel live codes")

    def __str__(self) -> str:
        return self.name


class LiveCodeStaff(models.Model):
    """One member of a live code's pool, with the number of adds per day they take at most."""

    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="pool")
    staff = models.ForeignKey(StaffAccount, on_delete=models.CASCADE, related_name="+", verbose_name=_("staff"))
    daily_cap = models.PositiveIntegerField(
        _("daily cap"), null=True, blank=True, help_text=_("Adds per day; empty for no cap.")
    )
    position = models.PositiveSmallIntegerField(default=0)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["live_code", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["live_code", "staff"], name="live_code_staff_once")]

    def __str__(self) -> str:
        return f"{self.live_code_id}:{self.staff_id}"


class FollowRelationship(models.Model):
    """One staff member following one customer (one customer may be followed by several). Ended when
    either side deletes the other; a later add starts it again."""

    class EndedBy(models.TextChoices):
        STAFF = "staff", _("Staff deleted the customer")
        CUSTOMER = "customer", _("Customer deleted the staff member (流失)")

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="wecom_follows", verbose_name=_("contact")
    )
    staff = models.ForeignKey(StaffAccount, on_delete=models.PROTECT, related_name="follows", verbose_name=_("staff"))
    external_userid = models.CharField(_("external_userid"), max_length=64)
    remark = models.CharField(_("remark"), max_length=100, blank=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    add_way = models.IntegerField(_("add way"), null=True, blank=True)
    state = models.CharField(_("state"), max_length=30, blank=True)
    live_code = models.ForeignKey(
        LiveCode, on_delete=models.SET_NULL, null=True, blank=True, related_name="follows", verbose_name=_("live code")
    )
    added_at = models.DateTimeField(_("added at"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)
    ended_by = models.CharField(_("ended by"), max_length=10, choices=EndedBy.choices, blank=True)
    # The WeCom time of the latest event applied: an older event arriving late changes nothing.
    event_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FollowQuerySet.as_manager()

    class Meta:
        ordering = ["-added_at", "-id"]
        verbose_name = _("follow relationship")
        verbose_name_plural = _("follow relationships")
        constraints = [models.UniqueConstraint(fields=["staff", "external_userid"], name="follow_once_per_staff")]
        indexes = [
            models.Index(fields=["external_userid"], name="follow_external"),
            models.Index(fields=["live_code", "added_at"], name="follow_live_code_added"),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id}→{self.external_userid}"


class CallbackEvent(models.Model):
    """The callback inbox: every verified WeCom callback, stored before it is answered and processed
    once by Celery after commit. ``key`` (a hash of the decrypted message) makes WeCom's retries and any
    replay one row."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("callback", "Pending")
        PROCESSING = "processing", _("Processing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        IGNORED = "ignored", _("Ignored")

    key = models.CharField(max_length=64, unique=True)
    event = models.CharField(_("event"), max_length=64, blank=True)
    change_type = models.CharField(_("change type"), max_length=64, blank=True)
    # The follow it is about (UserID, ExternalUserID), for finding a later delete of the same follow.
    userid = models.CharField(_("WeCom userid"), max_length=64, blank=True)
    external_userid = models.CharField(_("external_userid"), max_length=64, blank=True)
    payload = models.JSONField(_("payload"), default=dict)
    message = models.TextField(_("decrypted message"))
    event_at = models.DateTimeField(_("WeCom time"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("WeCom callback")
        verbose_name_plural = _("WeCom callbacks")
        indexes = [
            models.Index(
                fields=["status", "claimed_at"],
                name="callback_unfinished",
                condition=~Q(status__in=["done", "ignored"]),
            ),
            models.Index(
                fields=["external_userid", "userid", "event_at"],
                name="callback_follow_deletes",
                condition=Q(change_type__in=["del_external_contact", "del_follow_user"]),
            ),
            models.Index(fields=["received_at"], name="callback_received"),
        ]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} #{self.pk}"


class CorpTagGroupLink(models.Model):
    """A tag group that is also a WeCom corp tag group: its tags sync both ways."""

    group = models.OneToOneField("contacts.TagGroup", on_delete=models.CASCADE, related_name="wecom_link")
    wecom_id = models.CharField(max_length=64, unique=True)

    objects = RestrictedQuerySet.as_manager()

    def __str__(self) -> str:
        return self.wecom_id


class CorpTagLink(models.Model):
    tag = models.OneToOneField("contacts.Tag", on_delete=models.CASCADE, related_name="wecom_link")
    wecom_id = models.CharField(max_length=64, unique=True)

    objects = RestrictedQuerySet.as_manager()

    def __str__(self) -> str:
        return self.wecom_id


class SyncRun(models.Model):
    """One full sync: follow users, then every customer of each (``batch/get_by_user`` with its cursor),
    then corp tags. ``position`` is where a crashed run resumes."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # {"userids": [...], "index": i, "cursor": "..."}: the staff list, the member being read and their cursor.
    position = models.JSONField(default=dict, blank=True)
    staff_count = models.PositiveIntegerField(_("staff"), default=0)
    customers_seen = models.PositiveIntegerField(_("customers seen"), default=0)
    contacts_created = models.PositiveIntegerField(_("contacts created"), default=0)
    follows_written = models.PositiveIntegerField(_("follow relationships written"), default=0)
    skipped = models.JSONField(_("skipped"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("WeCom sync run")
        verbose_name_plural = _("WeCom sync runs")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_sync")
        ]

    def __str__(self) -> str:
        return f"sync #{self.pk} ({self.status})"
