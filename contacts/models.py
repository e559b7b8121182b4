"""Who the people are and what happened with them: channels, contacts, tags, touchpoints, purchases."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from scrm.querysets import RestrictedQuerySet

# Holders of this permission (managers, integrators) see and change every staff member's contacts.
SEE_ALL_CONTACTS = "contacts.view_all_contacts"


class ContactQuerySet(RestrictedQuerySet):
    """Contacts are owned by one staff member; merged duplicates are kept but are not "live"."""

    owner_path = "owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)

    def live(self) -> ContactQuerySet:
        """Contacts that were not merged into another one: the only ones lists, reports and sends use."""
        return self.filter(merged_into__isnull=True)


class ContactRowQuerySet(RestrictedQuerySet):
    """Rows that belong to one contact (purchases, touchpoints, tag links): visible with their contact."""

    owner_path = "contact__owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class PurchaseItemQuerySet(RestrictedQuerySet):
    owner_path = "purchase__contact__owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class ImportJobQuerySet(RestrictedQuerySet):
    """An import is followed by the user who started it, and by those who see every contact."""

    owner_path = "created_by"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class Channel(models.Model):
    """One acquisition channel (引流渠道) that brings people into the private domain."""

    class Kind(models.TextChoices):
        PAID_ADS = "paid_ads", _("Paid ads")
        SOCIAL_FISSION = "social_fission", _("Social fission")
        DISTRIBUTION = "distribution", _("Distribution fission")
        SHORT_VIDEO = "short_video", _("Short video")
        NEW_MEDIA = "new_media", _("New media")
        PARCEL_CARD = "parcel_card", _("E-commerce parcel card")
        OFFLINE_STORE = "offline_store", _("Offline store")
        REFERRAL = "referral", _("Referral")
        ORGANIC = "organic", _("Organic")
        OTHER = "other", _("Other")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices, default=Kind.OTHER)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.name


class ChannelSpend(models.Model):
    """Money spent on one channel over a date range: the C in CAC."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="spends", verbose_name=_("channel"))
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"))
    amount = models.DecimalField(
        _("amount"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-start_date", "channel_id"]
        verbose_name = _("channel spend")
        verbose_name_plural = _("channel spend")
        constraints = [
            models.CheckConstraint(condition=Q(end_date__gte=models.F("start_date")), name="spend_dates_ordered"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="spend_amount_not_negative"),
        ]
        indexes = [models.Index(fields=["channel", "start_date"])]

    def __str__(self) -> str:
        return f"{self.channel} {self.start_date}–{self.end_date}: {self.amount}"


_LIVE = Q(merged_into__isnull=True)
_PAID = Q(status="paid")


class Contact(models.Model):
    """One person in the private domain (a customer or a lead), owned by one staff member.

    The purchase and interaction facts at the bottom are denormalised: they are kept current by the
    services in ``contacts.services`` (never by hand) so that segments and reports need no joins.
    """

    class Gender(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        MALE = "male", _("Male")
        FEMALE = "female", _("Female")

    class IntentLevel(models.TextChoices):
        NONE = "none", _("None")
        LOW = "low", _("Low")
        MEDIUM = "medium", _("Medium")
        HIGH = "high", _("High")

    class Stage(models.TextChoices):
        LEAD = "lead", _("Lead")
        ENGAGED = "engaged", _("Engaged")
        CUSTOMER = "customer", _("Customer")
        REPEAT = "repeat", _("Repeat customer")
        ADVOCATE = "advocate", _("Advocate")

    name = models.CharField(_("name"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=20, null=True, blank=True, unique=True)
    email = models.EmailField(_("email"), blank=True)
    external_id = models.CharField(_("external ID"), max_length=64, null=True, blank=True, unique=True)
    wecom_external_userid = models.CharField(
        _("WeCom external_userid"), max_length=64, null=True, blank=True, unique=True
    )
    wechat_unionid = models.CharField(_("WeChat unionid"), max_length=64, null=True, blank=True, unique=True)
    gender = models.CharField(_("gender"), max_length=8, choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    region = models.CharField(_("region"), max_length=64, blank=True)
    city = models.CharField(_("city"), max_length=64, blank=True)
    occupation = models.CharField(_("occupation"), max_length=64, blank=True)
    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="contacts", verbose_name=_("channel")
    )
    acquired_at = models.DateTimeField(_("acquired at"))
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_contacts",
        verbose_name=_("owner"),
    )
    intent_level = models.CharField(
        _("intent level"), max_length=8, choices=IntentLevel.choices, default=IntentLevel.NONE
    )
    stage = models.CharField(_("lifecycle stage"), max_length=10, choices=Stage.choices, default=Stage.LEAD)
    referred_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
        verbose_name=_("referred by"),
    )
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    marketing_consent = models.BooleanField(_("marketing consent"), default=False)
    consent_at = models.DateTimeField(_("consent given at"), null=True, blank=True)
    consent_source = models.CharField(_("consent source"), max_length=64, blank=True)
    opted_out_at = models.DateTimeField(_("opted out at"), null=True, blank=True)
    erased_at = models.DateTimeField(_("erased at"), null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("merged into")
    )
    tags = models.ManyToManyField("Tag", through="ContactTag", related_name="contacts", verbose_name=_("tags"))

    # Denormalised facts (see the class docstring).
    first_purchase_at = models.DateTimeField(_("first purchase at"), null=True, blank=True, editable=False)
    last_purchase_at = models.DateTimeField(_("last purchase at"), null=True, blank=True, editable=False)
    purchase_count = models.PositiveIntegerField(_("purchases"), default=0, editable=False)
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=0, editable=False)
    last_interaction_at = models.DateTimeField(_("last interaction at"), null=True, blank=True, editable=False)
    referral_count = models.PositiveIntegerField(_("referrals"), default=0, editable=False)

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        ordering = ["-acquired_at", "-id"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        permissions = [
            ("view_all_contacts", _("Can see and change every staff member's contacts")),
            ("handover_contacts", _("Can hand contacts over from one staff member to another")),
            ("merge_contacts", _("Can merge duplicate contacts")),
            ("erase_contact", _("Can erase a contact's personal data")),
            ("import_contacts", _("Can import contacts and purchases from CSV")),
            ("export_contacts", _("Can export contacts to CSV")),
            # Without it, exported files mask phone numbers as the list pages do (contacts.exports.jobs).
            ("export_full_phones", _("Can export full phone numbers")),
        ]
        indexes = [
            # Partial on live contacts, the only ones lists show (selectors.contacts_visible_to filters
            # merged_into IS NULL): with the condition in the index, the paginator's COUNT is index-only.
            models.Index(fields=["owner", "-acquired_at"], name="contact_owner_acquired", condition=_LIVE),
            models.Index(fields=["stage", "-acquired_at"], name="contact_stage_acquired", condition=_LIVE),
            models.Index(fields=["channel", "-acquired_at"], name="contact_channel_acquired", condition=_LIVE),
            models.Index(fields=["channel", "stage", "-acquired_at"], name="contact_channel_stage", condition=_LIVE),
            models.Index(fields=["-acquired_at", "-id"], name="contact_acquired"),
            models.Index(fields=["last_purchase_at"], name="contact_last_purchase"),
            models.Index(fields=["referred_by"], name="contact_referred_by"),
            # The analytics overview (bench/analytics_overview.py): new customers of a period per channel
            # and the distinct referrers of its leads are read from these alone (index-only scans).
            models.Index(fields=["first_purchase_at", "channel"], name="contact_first_purchase", condition=_LIVE),
            models.Index(
                fields=["acquired_at", "referred_by"],
                name="contact_referred_acquired",
                condition=_LIVE & Q(referred_by__isnull=False),
            ),
            # The live month of the purchase-retention matrix: the cohort contacts who bought since its start.
            models.Index(
                fields=["last_purchase_at", "acquired_at", "id"],
                name="contact_live_last_purchase",
                condition=_LIVE & Q(last_purchase_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(total_spent__gte=0), name="contact_total_spent_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name or self.phone or f"#{self.pk}"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def can_receive_marketing(self) -> bool:
        return self.marketing_consent and self.opted_out_at is None and self.erased_at is None


class TagGroup(models.Model):
    """A family of tags, e.g. "意向度" holding "强意向" and "弱意向". In an exclusive group a
    contact carries at most one tag."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    exclusive = models.BooleanField(_("one tag per contact"), default=False)
    sort_order = models.PositiveSmallIntegerField(_("sort order"), default=0)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "name"]
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """One label that can be put on contacts."""

    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags", verbose_name=_("group"))
    name = models.CharField(_("name"), max_length=64)
    color = models.CharField(_("colour"), max_length=7, default="#607d8b")

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["group__sort_order", "group__name", "name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_unique_in_group")]

    def __str__(self) -> str:
        return f"{self.group.name}:{self.name}"


class ContactTag(models.Model):
    """One tag on one contact, with who or what put it there and when."""

    class Source(models.TextChoices):
        MANUAL = "manual", _("Staff")
        IMPORT = "import", _("Import")
        API = "api", _("API")
        AUTOMATION = "automation", _("Automation")
        MERGE = "merge", _("Merge")
        WECOM = "wecom", _("WeCom")
        LIVE_CODE = "live_code", _("Live code")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="contact_links")
    tagged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ContactRowQuerySet.as_manager()

    class Meta:
        verbose_name = _("contact tag")
        verbose_name_plural = _("contact tags")
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="contact_tag_unique")]
        indexes = [models.Index(fields=["tag", "contact"], name="contact_tag_by_tag")]

    def __str__(self) -> str:
        return f"{self.contact_id}:{self.tag_id}"


class Touchpoint(models.Model):
    """One interaction with a contact. Append-only; the biggest table."""

    class Medium(models.TextChoices):
        CHAT = "chat", _("1:1 chat")
        WECOM = "wecom", _("WeCom")
        GROUP = "group", _("Group")
        MOMENTS = "moments", _("Moments")
        MINI_PROGRAM = "mini_program", _("Mini-program")
        OFFICIAL_ACCOUNT = "official_account", _("Official account")
        VIDEO_CHANNEL = "video_channel", _("Video channel")
        OFFLINE = "offline", _("Offline")
        SMS = "sms", _("SMS")
        EMAIL = "email", _("Email")

    class Kind(models.TextChoices):
        MESSAGE_IN = "message_in", _("Message received")
        MESSAGE_OUT = "message_out", _("Message sent")
        ADD_FRIEND = "add_friend", _("Added as friend")
        # WeCom: the customer deleted the staff member (流失) / the staff member deleted the customer.
        DELETE_FRIEND = "delete_friend", _("Deleted the staff member")
        REMOVED = "removed", _("Removed by staff")
        JOIN_GROUP = "join_group", _("Joined group")
        LEAVE_GROUP = "leave_group", _("Left group")
        LIKE = "like", _("Like")
        COMMENT = "comment", _("Comment")
        CHECK_IN = "check_in", _("Check-in")
        VOTE = "vote", _("Vote")
        CLICK = "click", _("Click")
        VISIT = "visit", _("Visit")
        # Written by staff on the contact page: a follow-up note (跟进记录), and a follow-up task completed
        # with its outcome. The text is in ``metadata`` ("text"; "title" and "outcome").
        NOTE = "note", _("Follow-up note")
        TASK_DONE = "task_done", _("Follow-up task done")

    # Kinds that are not the contact engaging with us: our own outreach, the end of a WeCom friendship (by
    # either side), and staff's own records (notes, completed tasks). They never make a contact "engaged"
    # nor count as an interaction.
    OUTBOUND_KINDS = (Kind.MESSAGE_OUT, Kind.DELETE_FRIEND, Kind.REMOVED, Kind.NOTE, Kind.TASK_DONE)

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="touchpoints")
    medium = models.CharField(_("medium"), max_length=20, choices=Medium.choices)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    community = models.ForeignKey(
        "communities.Community", on_delete=models.SET_NULL, null=True, blank=True, related_name="touchpoints"
    )
    metadata = models.JSONField(default=dict, blank=True)

    objects = ContactRowQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("touchpoint")
        verbose_name_plural = _("touchpoints")
        indexes = [
            models.Index(fields=["contact", "-occurred_at"], name="touchpoint_contact_time"),
            models.Index(fields=["occurred_at"], name="touchpoint_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class Product(models.Model):
    """Something the brand sells; its repurchase cycle drives repurchase reminders."""

    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    price = models.DecimalField(
        _("price"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    repurchase_cycle_days = models.PositiveIntegerField(_("repurchase cycle (days)"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative"),
            models.CheckConstraint(
                condition=Q(repurchase_cycle_days__isnull=True) | Q(repurchase_cycle_days__gt=0),
                name="product_cycle_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Purchase(models.Model):
    """One order by one contact. ``external_order_id`` is the shop's order number: the key that makes
    ingestion idempotent. Refunded orders stay (for audit) but never count as revenue or purchases."""

    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        REFUNDED = "refunded", _("Refunded")

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("contact"))
    external_order_id = models.CharField(_("order ID"), max_length=64, unique=True)
    purchased_at = models.DateTimeField(_("purchased at"))
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PAID)
    refunded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = ContactRowQuerySet.as_manager()

    class Meta:
        ordering = ["-purchased_at", "-id"]
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="purchase_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["contact", "-purchased_at"], name="purchase_contact_time"),
            models.Index(fields=["purchased_at"], name="purchase_time"),
            # Paid purchases with their contact and amount, for index-only scans in the reports: by time
            # (revenue, orders and buyers of a short period; the live month of the retention matrix) and
            # by contact (buyers and repeat buyers of a long period, grouped in index order).
            models.Index(fields=["purchased_at", "contact", "amount"], name="purchase_paid_time", condition=_PAID),
            models.Index(fields=["contact", "purchased_at", "amount"], name="purchase_paid_contact", condition=_PAID),
        ]

    def __str__(self) -> str:
        return self.external_order_id


class PurchaseItem(models.Model):
    """One line of an order."""

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="purchase_items")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    objects = PurchaseItemQuerySet.as_manager()

    class Meta:
        verbose_name = _("purchase item")
        verbose_name_plural = _("purchase items")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="item_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="item_price_not_negative"),
        ]
        indexes = [models.Index(fields=["product", "purchase"], name="item_product")]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id}"


class ImportJob(models.Model):
    """One CSV import (contacts or purchases) and its outcome: counts and the report of rejected rows."""

    class Kind(models.TextChoices):
        CONTACTS = "contacts", _("Contacts")
        PURCHASES = "purchases", _("Purchases")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    filename = models.CharField(_("file name"), max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("processed rows"), default=0)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    unchanged_count = models.PositiveIntegerField(_("unchanged"), default=0)
    error_count = models.PositiveIntegerField(_("rejected rows"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    message = models.TextField(_("message"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, int(self.processed_rows * 100 / self.total_rows))


class ExportJobQuerySet(RestrictedQuerySet):
    """An export file holds personal data in bulk: only the user who asked for it sees and downloads it."""

    owner_path = "created_by"


class ExportJob(models.Model):
    """One CSV export of a filtered contact list, written by a worker into a file the user downloads when it
    is done. The file appears only once every row is written: a job is done with its whole file or failed
    with a message, never silently short."""

    class Source(models.TextChoices):
        DASHBOARD = "dashboard", _("Dashboard")
        API = "api", _("API")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.DASHBOARD)
    # The list's filters as query-string pairs, applied by the worker exactly as the list applies them.
    params = models.JSONField(_("filters"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(_("file"), upload_to="exports/%Y/%m/", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("created by")
    )
    total_rows = models.PositiveIntegerField(_("matching contacts"), default=0)
    written_rows = models.PositiveIntegerField(_("rows written"), default=0)
    message = models.TextField(_("message"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self) -> str:
        return f"{_('Export')} #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.EXPIRED)

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, int(self.written_rows * 100 / self.total_rows))

    @property
    def filename(self) -> str:
        return f"contacts-export-{self.pk}-{self.created_at:%Y%m%d-%H%M}.csv"


# The saved views of the contact list live in their own module (this one is long enough); importing them
# here registers the model with the app.
from .saved_view_models import SavedView, SavedViewQuerySet  # noqa: E402, F401
