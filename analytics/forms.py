"""The parameters of the reports: one form per report, the only definition of what a report accepts.

The report pages (``analytics.views``), the analytics API (``analytics.api.views``) and the contact list's
drill-down (``contacts.views``) all validate their query strings with these forms: the period and its
defaults, the filters (a community only among those the user may see), months as ``YYYY-MM``, the years
allowed, each report's options and the rules between them. The pages show the errors on the form; the
API answers them in its one error shape and documents the fields as OpenAPI query parameters
(``analytics.api.parameters``, which reads each field's ``api_description``).

The forms only check and convert the query string; the numbers come from ``analytics.metrics``. A form is
bound with its defaults filled in (``from_query``), so the inputs show the period actually reported and
the export and drill-down links can repeat it exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar, Self, TypeVar

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import ModelChoiceIterator
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from communities.models import Community
from contacts.forms import user_label
from contacts.models import Channel, Contact
from contacts.selectors import staff_users
from scrm import limits

from . import metrics
from .models import Layer

User = get_user_model()

DATE_FORMAT = "%Y-%m-%d"
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 3660  # ten years: enough for any report, and far from the ends of the calendar
FIRST_YEAR, LAST_YEAR = 1970, limits.DATE_MAX.year
KOC_LIMIT_DEFAULT, KOC_LIMIT_MAX = 10, 100
#: Every drill-down parameter of the contact list starts with this, so that it never collides with the list's
#: own filters (``channel``, ``owner`` and ``community`` mean slightly different things there).
DRILL_PREFIX = "drill"
#: The ``layer`` of the drill-down for the contacts not scored yet (the ``null`` layer of the layers report).
UNSCORED = "unscored"
MONTH_PATTERN = r"^\d{4}-\d{2}$"

#: The report filters shared by every page (and the query parameters of the analytics API).
FILTER_FIELDS = ("date_from", "date_to", "channel", "owner", "community", "cohort")

FUNNEL_STEP_LABELS = {
    "leads": _("Leads"),
    "engaged": _("Engaged"),
    "first_purchase": _("First purchase"),
    "repeat_purchase": _("Repeat purchase"),
    "referrer": _("Referrer"),
}
TREND_METRIC_LABELS = {
    "revenue": _("Revenue"),
    "orders": _("Paid orders"),
    "buyers": _("Buyers"),
    "leads": _("Leads"),
    "new_customers": _("New customers"),
}
DECOMPOSITION_FACTOR_LABELS = {
    "retained_users": _("Retained users"),
    "fission": _("Fission rate"),
    "conversion": _("Conversion"),
    "aov": _("Average order value"),
    "repurchase": _("Repurchase (orders per buyer)"),
}
COHORT_BY_CHOICES = [("acquisition", _("Acquisition month")), ("first_purchase", _("First purchase month"))]
COHORT_VIEW_CHOICES = [("purchase", _("Paid purchase")), ("engagement", _("Inbound interaction"))]
GRAIN_CHOICES = [("day", _("Day")), ("week", _("Week")), ("month", _("Month"))]
GROUP_BY_CHOICES = [("", _("No grouping")), ("channel", _("Channel")), ("cohort", _("Acquisition month"))]
DRILL_METRIC_LABELS = {
    "leads": _("Leads"),
    "new_customers": _("New customers"),
    "buyers": _("Buyers"),
    "repeat_buyers": _("Repeat buyers"),
    "referred_leads": _("Referred leads"),
    "funnel": _("Funnel"),
    "cohort": _("Cohort"),
    "rfm": _("RFM layer"),
}
DRILL_PERIOD_LABELS = {
    "leads": _("Leads acquired %(period)s"),
    "new_customers": _("New customers (first paid purchase %(period)s)"),
    "buyers": _("Buyers (a paid purchase %(period)s)"),
    "repeat_buyers": _("Repeat buyers (2 or more paid orders %(period)s)"),
    "referred_leads": _("Referred leads acquired %(period)s"),
}
_MONTH = re.compile(MONTH_PATTERN)

F = TypeVar("F", bound=forms.Field)


def documented(field: F, description: str) -> F:
    """``field`` with the description of its query parameter in the API's OpenAPI schema. (The page shows
    the field's ``label`` and ``help_text``, written for a person filling in the form.)"""
    field.api_description = description
    return field


def layer_label(layer: str | None) -> str:
    if layer is None or layer == UNSCORED:
        return str(_("Not scored yet"))
    try:
        return str(Layer(layer).label)
    except ValueError:
        return layer


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format=DATE_FORMAT)


class DayField(forms.DateField):
    """A day as ``YYYY-MM-DD`` (what an ``<input type="date">`` sends), between FIRST_YEAR and LAST_YEAR."""

    widget = DateInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_formats=[DATE_FORMAT], **kwargs)

    def validate(self, value: dt.date | None) -> None:
        super().validate(value)
        if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValidationError(
                _("Enter a date between %(first)s and %(last)s.") % {"first": FIRST_YEAR, "last": LAST_YEAR},
                code="range",
            )


class MonthField(forms.CharField):
    """A calendar month as ``YYYY-MM`` (an ``<input type="month">``), between FIRST_YEAR and LAST_YEAR."""

    widget = forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM", "pattern": r"\d{4}-\d{2}"})

    def to_python(self, value: Any) -> str:
        value = super().to_python(value)
        if value in self.empty_values:
            return ""
        if not _MONTH.match(value):
            raise ValidationError(_("Enter a month as YYYY-MM."), code="invalid")
        try:
            month = metrics.parse_month(value)
        except ValidationError as exc:
            raise ValidationError(_("Enter a month as YYYY-MM."), code="invalid") from exc
        if not FIRST_YEAR <= month.year <= LAST_YEAR:
            raise ValidationError(
                _("Enter a month between %(first)s and %(last)s.") % {"first": FIRST_YEAR, "last": LAST_YEAR},
                code="range",
            )
        return value


class _Offered(ModelChoiceIterator):
    """The choices a model choice field's list offers when they are fewer than the values it accepts."""

    def __init__(self, field: forms.ModelChoiceField, queryset: QuerySet) -> None:
        super().__init__(field)
        self.queryset = queryset


def _parse_day(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _as_param(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Channel | Community | User | Contact):
        return str(value.pk)
    return str(value)


def _check_period(form: forms.Form, first: str, last: str) -> None:
    """The end of the period ``first`` … ``last`` is not before its start, and the period is not too long."""
    date_from, date_to = form.cleaned_data.get(first), form.cleaned_data.get(last)
    if date_from and date_to:
        if date_to < date_from:
            form.add_error(last, _("The end of the period is before its start."))
        elif (date_to - date_from).days + 1 > MAX_PERIOD_DAYS:
            form.add_error(first, _("Choose a period of at most %(days)s days.") % {"days": MAX_PERIOD_DAYS})


def attach_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a metric service's ValidationError on the form: on the field it names, else on the form."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


class ReportFilterForm(forms.Form):
    """The period (whole days in the business time zone) and the filters of a report: the parameters of
    the overview, KPIs, channels, layers and communities reports, and the base of every other report's.
    Without dates the period is the 30 days ending today. The filters restrict the *contacts* counted."""

    date_from = documented(
        DayField(label=_("From")), _("First day of the period (YYYY-MM-DD); default: 29 days before date_to.")
    )
    date_to = documented(
        DayField(label=_("To")), _("Last day of the period (YYYY-MM-DD); default: today in the business time zone.")
    )
    channel = documented(
        forms.ModelChoiceField(
            queryset=Channel.objects.none(), required=False, label=_("Channel"), empty_label=_("All channels")
        ),
        _("Only contacts acquired through this channel (id)."),
    )
    owner = documented(
        forms.ModelChoiceField(
            queryset=User.objects.none(), required=False, label=_("Owner"), empty_label=_("All owners")
        ),
        _("Only contacts of this owner (id)."),
    )
    community = documented(
        forms.ModelChoiceField(
            queryset=Community.objects.none(),
            required=False,
            label=_("Community"),
            empty_label=_("All communities"),
            help_text=_("Contacts who were ever members."),
        ),
        _("Only contacts who were ever members of this community (id)."),
    )
    cohort = documented(
        MonthField(
            required=False, label=_("Acquired in month"), help_text=_("Only the contacts acquired in this month.")
        ),
        _("Only contacts acquired in this month (YYYY-MM)."),
    )

    #: Page options with their default values (strings, as in a query string).
    option_defaults: ClassVar[dict[str, str]] = {}
    #: Fields that ``with_defaults`` fills in when they are left out, besides ``option_defaults``.
    filled_in: ClassVar[tuple[str, ...]] = ("date_from", "date_to")

    def __init__(self, data=None, *, user, page: bool = False, **kwargs):
        """``page``: the form is shown on a dashboard page (its owner list offers the staff who own contacts)."""
        super().__init__(data, **kwargs)
        self.user = user
        self.page = page
        self.fields["channel"].queryset = Channel.objects.order_by("name", "id")
        # Any user's id is an owner (a former colleague's contacts can still be reported on); the list on
        # the page offers the active staff.
        owner = self.fields["owner"]
        owner.queryset = User.objects.all()
        owner.label_from_instance = user_label
        if page:
            owner.widget.choices = _Offered(owner, staff_users())
        self.fields["community"].queryset = Community.objects.visible_to(user).order_by("name", "id")

    # --- defaults -------------------------------------------------------------------------------

    @classmethod
    def from_query(cls, query: QueryDict, *, user, page: bool = False, today: dt.date | None = None) -> Self:
        """The form of a request's query string (parameters named as the fields), its defaults filled in."""
        data = cls.with_defaults(query, user=user, today=today)
        if page:
            data = cls.page_defaults(data, user=user)
        return cls(data, user=user, page=page, prefix=None)

    @classmethod
    def with_defaults(cls, data: QueryDict, *, user, today: dt.date | None = None) -> QueryDict:
        """The query string with the blanks filled in: the last 30 days, and each option's default."""
        today = today or timezone.localdate()
        data = data.copy()
        date_to = _parse_day(data.get("date_to"))
        if not data.get("date_to"):
            date_to = today
            data["date_to"] = today.isoformat()
        if not data.get("date_from"):
            end = date_to or today
            data["date_from"] = (end - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)).isoformat()
        for name, value in cls.option_defaults.items():
            if not data.get(name):
                data[name] = value
        return data

    @classmethod
    def page_defaults(cls, data: QueryDict, *, user) -> QueryDict:
        """What a page fills in beyond the documented defaults (nothing, but for the KOC page)."""
        return data

    @classmethod
    def defaulted_fields(cls) -> set[str]:
        """The fields a caller may leave out although the report needs them: ``with_defaults`` fills them."""
        return {*cls.filled_in, *cls.option_defaults}

    # --- validation -----------------------------------------------------------------------------

    def clean(self):
        cleaned = super().clean()
        _check_period(self, "date_from", "date_to")
        return cleaned

    # --- results --------------------------------------------------------------------------------

    def filters(self, **overrides: Any) -> metrics.Filters:
        """The report's ``metrics.Filters``, for the user asking."""
        data = self.cleaned_data
        values = {
            "date_from": data["date_from"],
            "date_to": data["date_to"],
            "user": self.user,
            "channel_id": data["channel"].pk if data.get("channel") else None,
            "owner_id": data["owner"].pk if data.get("owner") else None,
            "community_id": data["community"].pk if data.get("community") else None,
            "cohort": data.get("cohort") or None,
        }
        values.update(overrides)
        return metrics.Filters(**values)

    @property
    def period_days(self) -> int:
        return (self.cleaned_data["date_to"] - self.cleaned_data["date_from"]).days + 1

    @property
    def spend_attributable(self) -> bool:
        return not (self.cleaned_data.get("owner") or self.cleaned_data.get("community"))

    def query_params(self, names: tuple[str, ...] | None = None) -> dict[str, str]:
        """The valid form's values as query parameters (what the page reports on, defaults included)."""
        params = {}
        for name in names or tuple(self.fields):
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                params[name] = _as_param(value)
        return params


class FunnelForm(ReportFilterForm):
    group_by = documented(
        forms.ChoiceField(choices=GROUP_BY_CHOICES, required=False, label=_("Group by")),
        _("Also give the funnel per acquisition channel or per acquisition month."),
    )


class CohortForm(ReportFilterForm):
    """The retention matrix of the ``months`` cohorts ending with the month of date_to."""

    by = documented(
        forms.ChoiceField(choices=COHORT_BY_CHOICES, label=_("Cohorts by")),
        _("Cohorts by acquisition month or by month of the first paid purchase."),
    )
    view = documented(
        forms.ChoiceField(choices=COHORT_VIEW_CHOICES, label=_("Active means")),
        _("Active means a paid purchase (purchase) or an inbound interaction (engagement)."),
    )
    months = documented(
        forms.IntegerField(min_value=1, max_value=metrics.MAX_COHORT_MONTHS, label=_("Months")),
        _("Number of cohorts (and of months per cohort), ending with the month of date_to."),
    )

    option_defaults = {"by": "acquisition", "view": "purchase", "months": "12"}


class TrendForm(ReportFilterForm):
    metric = forms.ChoiceField(choices=list(TREND_METRIC_LABELS.items()), label=_("Metric"))
    grain = documented(
        forms.ChoiceField(choices=GRAIN_CHOICES, label=_("Per")),
        _("Bucket size; default: day for up to 62 days, week for up to 366 days, else month."),
    )

    option_defaults = {"metric": "revenue"}
    filled_in = (*ReportFilterForm.filled_in, "grain")

    @classmethod
    def with_defaults(cls, data: QueryDict, *, user, today: dt.date | None = None) -> QueryDict:
        data = super().with_defaults(data, user=user, today=today)
        if not data.get("grain"):
            date_from, date_to = _parse_day(data.get("date_from")), _parse_day(data.get("date_to"))
            days = (date_to - date_from).days + 1 if date_from and date_to else DEFAULT_PERIOD_DAYS
            data["grain"] = "day" if days <= 62 else "week" if days <= 366 else "month"
        return data


class DecompositionForm(ReportFilterForm):
    """Period B is the report's period; period A (compare_from … compare_to) defaults to the days just
    before it, as many as B has."""

    compare_from = documented(
        DayField(label=_("Compare with, from"), required=False),
        _("First day of period A; default: the period of the same length before B."),
    )
    compare_to = documented(
        DayField(label=_("Compare with, to"), required=False),
        _("Last day of period A; default: the day before date_from."),
    )

    @classmethod
    def with_defaults(cls, data: QueryDict, *, user, today: dt.date | None = None) -> QueryDict:
        data = super().with_defaults(data, user=user, today=today)
        if not data.get("compare_from") and not data.get("compare_to"):
            date_from, date_to = _parse_day(data.get("date_from")), _parse_day(data.get("date_to"))
            if date_from and date_to and date_from <= date_to:
                compare_to = date_from - dt.timedelta(days=1)
                data["compare_to"] = compare_to.isoformat()
                data["compare_from"] = (compare_to - (date_to - date_from)).isoformat()
        return data

    def clean(self):
        cleaned = super().clean()
        compare_from, compare_to = cleaned.get("compare_from"), cleaned.get("compare_to")
        if any(name in self.errors for name in ("compare_from", "compare_to", "date_from", "date_to")):
            return cleaned  # the defaults could not be worked out, or the field says what is wrong
        if not compare_from and not compare_to:
            self.add_error("compare_from", _("Choose the period to compare with."))
        elif not compare_from or not compare_to:
            self.add_error(
                "compare_to" if compare_from else "compare_from", _("Give both the start and the end of the period.")
            )
        else:
            _check_period(self, "compare_from", "compare_to")
        return cleaned

    def compare_filters(self) -> metrics.Filters:
        return self.filters(date_from=self.cleaned_data["compare_from"], date_to=self.cleaned_data["compare_to"])


class KocForm(ReportFilterForm):
    """KOC ranking of one community: the ranking is of the current members, whatever the period and the
    other filters. The page therefore leaves them out (they ride along to the other report tabs); the API
    accepts them, and the period names its CSV file."""

    community = documented(
        forms.ModelChoiceField(
            queryset=Community.objects.none(), label=_("Community"), empty_label=_("Choose a community")
        ),
        _("The community (id) whose members are ranked."),
    )
    limit = documented(
        forms.IntegerField(min_value=1, max_value=KOC_LIMIT_MAX, label=_("Show the top")),
        _("How many members to list."),
    )

    option_defaults = {"limit": str(KOC_LIMIT_DEFAULT)}

    def __init__(self, data=None, *, user, page: bool = False, **kwargs):
        super().__init__(data, user=user, page=page, **kwargs)
        if page:
            for name in FILTER_FIELDS:
                if name != "community":
                    del self.fields[name]

    @classmethod
    def page_defaults(cls, data: QueryDict, *, user) -> QueryDict:
        if not data.get("community"):
            # The biggest community the user may see (by current members) is the most telling default.
            biggest = (
                Community.objects.visible_to(user)
                .annotate(members=Count("memberships", filter=Q(memberships__left_at__isnull=True)))
                .order_by("-members", "name", "id")
                .values_list("pk", flat=True)
                .first()
            )
            if biggest is not None:
                data["community"] = str(biggest)
        return data


class DrillDownForm(ReportFilterForm):
    """The contacts behind one number of a report (``metrics.drilldown``): ``metric`` and, for a funnel
    step, a cohort cell or an RFM layer, the parameter that names it. The cohort of a cell is ``month``;
    ``cohort`` stays the shared acquisition-month filter.

    The contact list reads it from its query string as ``drill-metric`` and the other ``drill-…``
    parameters, with nothing filled in (the report's links carry every parameter); the API's drill-down
    reads it unprefixed, with the defaults filled in (``from_query``)."""

    metric = forms.ChoiceField(choices=list(DRILL_METRIC_LABELS.items()), label=_("Metric"))
    step = documented(
        forms.ChoiceField(choices=list(FUNNEL_STEP_LABELS.items()), required=False, label=_("Funnel step")),
        _("Funnel step (metric=funnel)."),
    )
    month = documented(
        MonthField(required=False, label=_("Cohort")), _("The cohort (YYYY-MM) of a retention cell (metric=cohort).")
    )
    offset = documented(
        forms.IntegerField(
            min_value=0, max_value=metrics.MAX_COHORT_MONTHS - 1, required=False, label=_("Month of the cohort")
        ),
        _("Month of the cohort (0 = the cohort's own month); without it, the whole cohort."),
    )
    by = forms.ChoiceField(choices=COHORT_BY_CHOICES, required=False, label=_("Cohorts by"))
    view = forms.ChoiceField(choices=COHORT_VIEW_CHOICES, required=False, label=_("Active means"))
    layer = documented(
        forms.ChoiceField(
            choices=[*Layer.choices, (UNSCORED, _("Not scored yet"))], required=False, label=_("RFM layer")
        ),
        _("RFM layer (metric=rfm); unscored = the contacts not scored yet."),
    )

    option_defaults = {"by": "acquisition", "view": "purchase"}

    def __init__(self, data=None, *, user, prefix: str | None = DRILL_PREFIX, **kwargs):
        super().__init__(data, user=user, prefix=prefix, **kwargs)

    @staticmethod
    def present(data: QueryDict) -> bool:
        return any(key.startswith(f"{DRILL_PREFIX}-") for key in data)

    def clean(self):
        cleaned = super().clean()
        metric = cleaned.get("metric")
        required = {"funnel": "step", "cohort": "month", "rfm": "layer"}.get(metric)
        if required and not cleaned.get(required):
            self.add_error(required, _("This drill-down needs this parameter."))
        return cleaned

    def drilldown_kwargs(self) -> dict[str, Any]:
        """The valid form's options of ``metrics.drilldown`` (besides the filters)."""
        data = self.cleaned_data
        layer = data.get("layer") or None
        return {
            "metric": data["metric"],
            "step": data.get("step") or None,
            "cohort": data.get("month") or None,
            "offset": data.get("offset"),
            "by": data.get("by") or "acquisition",
            "view": data.get("view") or "purchase",
            "layer": None if layer == UNSCORED else layer,
        }

    def contacts(self) -> QuerySet[Contact] | None:
        """The contacts behind the number (already limited to what the user may see), or None when the
        parameters are not valid (the errors are then on the form)."""
        if not self.is_valid():
            return None
        try:
            return metrics.drilldown(self.filters(), **self.drilldown_kwargs())
        except ValidationError as exc:
            attach_errors(self, exc)
            return None

    def error_text(self) -> str:
        parts = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return "; ".join(parts)

    def label(self) -> str:
        """What the contacts are, in words: "Funnel: Engaged · leads acquired 2025-03-01 – 2025-03-31 · …"."""
        data = self.cleaned_data
        metric = data["metric"]
        period = f"{data['date_from']:%Y-%m-%d} – {data['date_to']:%Y-%m-%d}"
        if metric == "funnel":
            what = _("Funnel step “%(step)s” of the leads acquired %(period)s") % {
                "step": FUNNEL_STEP_LABELS[data["step"]],
                "period": period,
            }
        elif metric == "cohort":
            by = dict(COHORT_BY_CHOICES)[data.get("by") or "acquisition"]
            what = _("Cohort %(month)s (%(by)s)") % {"month": data["month"], "by": by}
            if data.get("offset") is not None:
                view = dict(COHORT_VIEW_CHOICES)[data.get("view") or "purchase"]
                what = _("%(cohort)s, active in month %(offset)s (%(view)s)") % {
                    "cohort": what,
                    "offset": data["offset"],
                    "view": view,
                }
            what = _("%(what)s, as of %(date)s") % {"what": what, "date": f"{data['date_to']:%Y-%m-%d}"}
        elif metric == "rfm":
            what = _("RFM layer “%(layer)s”") % {"layer": layer_label(data["layer"])}
        else:
            what = DRILL_PERIOD_LABELS[metric] % {"period": period}
        parts = [str(what)]
        if data.get("channel"):
            parts.append(str(_("channel %(name)s") % {"name": data["channel"].name}))
        if data.get("owner"):
            parts.append(str(_("owner %(name)s") % {"name": user_label(data["owner"])}))
        if data.get("community"):
            parts.append(str(_("ever in community %(name)s") % {"name": data["community"].name}))
        if data.get("cohort"):
            parts.append(str(_("acquired in %(month)s") % {"month": data["cohort"]}))
        return " · ".join(parts)
