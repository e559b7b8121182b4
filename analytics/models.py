"""Stored analytics: per-contact RFM and predictive-CLV scores, and the nightly model fits behind them.

Both tables are written only by ``analytics.scores.scores_refresh`` (nightly, from Celery beat); the
reports and the segments read them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import SEE_ALL_CONTACTS
from scrm.querysets import RestrictedQuerySet


class ContactScoreQuerySet(RestrictedQuerySet):
    owner_path = "contact__owner"
    see_all_permissions = (SEE_ALL_CONTACTS,)


class CohortActivityQuerySet(RestrictedQuerySet):
    """Rollup cells are sliced by owner id (a plain column, not a foreign key)."""

    see_all_permissions = (SEE_ALL_CONTACTS,)

    def owned_by(self, user, prefix: str = "") -> Q:
        return Q(**{f"{prefix}owner_id": user.pk})


class Layer(models.TextChoices):
    """User layers (用户分层) of docs/metrics.md, "RFM layers"."""

    CORE = "core", _("Core (核心)")
    REPEAT = "repeat", _("Repeat (复购)")
    FIRST_TIME = "first_time", _("First-time (首购)")
    INTENT_ONLY = "intent_only", _("Intent only (有需求)")
    DORMANT = "dormant", _("Dormant (沉睡)")
    NONE = "none", _("Not layered")


class ContactScore(models.Model):
    """The latest scores of one live contact: RFM scores and layer, and the predictive-CLV forecast.

    Non-customers have a layer (intent-only or none) and nothing else. The predictions are empty when
    the last fit could not be used (too few customers, no convergence); see ``ClvFit``.
    """

    contact = models.OneToOneField(
        "contacts.Contact",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="score",
        verbose_name=_("contact"),
    )
    r_score = models.PositiveSmallIntegerField(_("R score"), null=True, blank=True)
    f_score = models.PositiveSmallIntegerField(_("F score"), null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(_("M score"), null=True, blank=True)
    recency_days = models.PositiveIntegerField(_("days since last purchase"), null=True, blank=True)
    frequency = models.PositiveIntegerField(_("paid purchases"), default=0)
    monetary = models.DecimalField(_("paid spend"), max_digits=14, decimal_places=2, default=0)
    layer = models.CharField(_("layer"), max_length=12, choices=Layer.choices, default=Layer.NONE)
    predicted_purchases = models.FloatField(_("predicted purchases"), null=True, blank=True)
    predicted_spend = models.DecimalField(
        _("predicted spend per purchase"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    predicted_clv = models.DecimalField(_("predicted CLV"), max_digits=14, decimal_places=2, null=True, blank=True)
    p_alive = models.FloatField(_("P(alive)"), null=True, blank=True)
    as_of = models.DateField(_("as of"))
    computed_at = models.DateTimeField(_("computed at"))

    objects = ContactScoreQuerySet.as_manager()

    class Meta:
        verbose_name = _("contact score")
        verbose_name_plural = _("contact scores")
        # Reading the reports is a permission of its own: managers and integrators have it, operators do not.
        permissions = [("view_reports", _("Can view analytics reports"))]
        indexes = [
            models.Index(fields=["layer"], name="score_layer"),
            models.Index(fields=["-predicted_clv"], name="score_predicted_clv"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(r_score__isnull=True) | Q(r_score__gte=1, r_score__lte=5))
                & (Q(f_score__isnull=True) | Q(f_score__gte=1, f_score__lte=5))
                & (Q(m_score__isnull=True) | Q(m_score__gte=1, m_score__lte=5)),
                name="score_rfm_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.layer}"


class ClvFit(models.Model):
    """One run of the nightly scores refresh: the BG/NBD and Gamma-Gamma parameters it fitted on all
    customers' paid purchases (time in days), how the fits ended, and the run's own status.

    The row is created first, as ``running``: the partial unique constraint lets only one run be
    ``running`` at a time, which is what makes a doubled beat tick harmless.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    as_of = models.DateField(_("as of"))
    horizon_days = models.PositiveIntegerField(_("horizon (days)"))
    dormant_days = models.PositiveIntegerField(_("dormant after (days)"))
    customers = models.PositiveIntegerField(_("customers"), default=0)
    repeat_customers = models.PositiveIntegerField(_("repeat customers"), default=0)
    contacts_scored = models.PositiveIntegerField(_("contacts scored"), default=0)
    # BG/NBD, alpha in days.
    r = models.FloatField(null=True, blank=True)
    alpha = models.FloatField(null=True, blank=True)
    a = models.FloatField(null=True, blank=True)
    b = models.FloatField(null=True, blank=True)
    bgnbd_log_likelihood = models.FloatField(_("BG/NBD log-likelihood"), null=True, blank=True)
    bgnbd_converged = models.BooleanField(_("BG/NBD converged"), default=False)
    # Gamma-Gamma, gamma in currency units.
    p = models.FloatField(null=True, blank=True)
    q = models.FloatField(null=True, blank=True)
    gamma = models.FloatField(null=True, blank=True)
    gamma_gamma_log_likelihood = models.FloatField(_("Gamma-Gamma log-likelihood"), null=True, blank=True)
    gamma_gamma_converged = models.BooleanField(_("Gamma-Gamma converged"), default=False)
    converged = models.BooleanField(_("usable"), default=False)
    message = models.TextField(_("message"), blank=True)
    started_at = models.DateTimeField(_("started at"))
    computed_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("CLV fit")
        verbose_name_plural = _("CLV fits")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="clvfit_one_running"),
        ]

    def __str__(self) -> str:
        return f"{self.as_of} ({self.get_status_display()})"


class CohortActivity(models.Model):
    """One cell of the materialised retention matrices: how many live contacts of one cohort slice
    (cohort month × acquisition channel × owner, cohorts by acquisition or by first paid purchase)
    were active in one calendar month, or (``kind = size``) how many the slice has.

    Rebuilt as a whole by ``analytics.rollups.cohort_rollup_refresh`` (nightly); the reports read it for
    the months that were over when it was built and query the rows live for the rest. Channel and owner
    are plain ids, not foreign keys: a rollup row must never stop a channel or a user from being deleted.
    """

    class By(models.TextChoices):
        ACQUISITION = "acquisition", _("Acquisition month")
        FIRST_PURCHASE = "first_purchase", _("First purchase month")

    class Kind(models.TextChoices):
        SIZE = "size", _("Cohort size")
        PURCHASE = "purchase", _("Paid purchase")
        ENGAGEMENT = "engagement", _("Inbound interaction")

    by = models.CharField(_("cohort by"), max_length=16, choices=By.choices)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    cohort_month = models.DateField(_("cohort month"))
    month = models.DateField(_("activity month"))
    channel_id = models.BigIntegerField(_("channel id"), null=True, blank=True)
    owner_id = models.BigIntegerField(_("owner id"), null=True, blank=True)
    contacts = models.PositiveIntegerField(_("contacts"))
    refreshed_at = models.DateTimeField(_("refreshed at"))

    objects = CohortActivityQuerySet.as_manager()

    class Meta:
        verbose_name = _("cohort activity")
        verbose_name_plural = _("cohort activity")
        indexes = [models.Index(fields=["by", "kind", "cohort_month"], name="cohort_activity_slice")]

    def __str__(self) -> str:
        return f"{self.by} {self.cohort_month:%Y-%m} {self.kind} {self.month:%Y-%m}: {self.contacts}"
