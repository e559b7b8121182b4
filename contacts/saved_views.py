"""Saved views of the contact list (我的视图): a name for a set of the list's filters, one click away.

A view keeps the list's query string. It is checked when it is saved or changed by running the list's own
filter set on it for the user who saves it, so a view never holds a filter the list would refuse; it keeps
only the filters' own parameters (not the page, nor a report's drill-down), in the filter set's order.

Each user's views are their own. A manager (``contacts.share_savedview``) may share one of theirs with the
team: everyone then sees it among the quick links and applies it to the contacts *they* may see (the filters
run on each user's own book, so sharing reveals nothing). Only the owner renames, re-shares or deletes it.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import QueryDict
from django.utils.translation import gettext as _

from scrm import limits

from .models import Contact, SavedView

NAME_MAX_LENGTH = SavedView._meta.get_field("name").max_length
QUERY_MAX_LENGTH = SavedView._meta.get_field("query").max_length
SHARE_PERMISSION = "contacts.share_savedview"


def saved_view_query_normalize(query: str | QueryDict, *, filter_names) -> str:
    """``query`` with only the given filters' non-empty values, in the filters' order: the form in which a
    view is stored and the current list is compared with the views."""
    data = query if isinstance(query, QueryDict) else QueryDict(query or "")
    kept = QueryDict(mutable=True)
    for name in filter_names:
        for value in data.getlist(name):
            if value.strip():
                kept.appendlist(name, value.strip())
    return kept.urlencode()


def _filterset(user, query: QueryDict):
    from .forms import DashboardContactFilterSet

    request = SimpleNamespace(user=user, GET=query, query_params=query)
    return DashboardContactFilterSet(query, queryset=Contact.objects.none(), request=request)


def saved_view_query_clean(*, user, query: str) -> str:
    """The view's query string, normalised and checked against the list's filters for ``user``. Raises a
    ValidationError on ``query`` naming the bad filters, or when no filter is set."""
    if not isinstance(query, str):
        raise ValidationError({"query": [_("Enter the list's filters as a query string.")]})
    _text_check(query, "query")
    names = list(_filterset(user, QueryDict("")).filters)
    normalized = saved_view_query_normalize(query, filter_names=names)
    if not normalized:
        raise ValidationError({"query": [_("Set at least one filter before saving a view.")]})
    if len(normalized) > QUERY_MAX_LENGTH:
        raise ValidationError({"query": [_("These filters are too long to save as a view.")]})
    filterset = _filterset(user, QueryDict(normalized))
    if not filterset.is_valid():
        problems = [
            f"{filterset.filters[name].label}: {' '.join(str(m) for m in messages)}"
            if name in filterset.filters
            else " ".join(str(m) for m in messages)
            for name, messages in filterset.errors.items()
        ]
        raise ValidationError({"query": problems})
    return normalized


def _text_check(value: str, field: str) -> None:
    try:
        limits.text_check(value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc


def _name_clean(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": [_("Give the view a name.")]})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": [_("At most %(max)d characters.") % {"max": NAME_MAX_LENGTH}]})
    _text_check(name, "name")
    return name


def _share_check(user, shared: bool) -> None:
    if shared and not user.has_perm(SHARE_PERMISSION):
        raise ValidationError({"shared": [_("Only a manager can share a view with the team.")]})


def _name_taken(name: str) -> ValidationError:
    return ValidationError({"name": [_("You already have a view named “%(name)s”.") % {"name": name}]})


def _save(view: SavedView) -> SavedView:
    taken = SavedView.objects.filter(owner_id=view.owner_id, name=view.name).exclude(pk=view.pk).exists()
    if taken:
        raise _name_taken(view.name)
    try:
        with transaction.atomic():
            view.save()
    except IntegrityError as exc:  # the same name saved at the same moment (a double click)
        raise _name_taken(view.name) from exc
    return view


def saved_view_create(*, owner, name: str, query: str, shared: bool = False) -> SavedView:
    """Save ``query`` (the list's filters) under ``name`` for ``owner``; names are unique per owner."""
    if owner is None or not owner.is_authenticated:
        raise ValidationError({"owner": [_("Sign in first.")]})
    view = SavedView(
        owner=owner,
        name=_name_clean(name),
        query=saved_view_query_clean(user=owner, query=query),
        shared=bool(shared),
    )
    _share_check(owner, view.shared)
    return _save(view)


def saved_view_update(
    *, view: SavedView, actor, name: str | None = None, query: str | None = None, shared: bool | None = None
) -> SavedView:
    """Rename a view, replace its filters, or share or unshare it. Only its owner may."""
    if actor is None or view.owner_id != actor.pk:
        raise PermissionDenied
    if name is not None:
        view.name = _name_clean(name)
    if query is not None:
        view.query = saved_view_query_clean(user=actor, query=query)
    if shared is not None:
        if bool(shared) != view.shared:
            _share_check(actor, bool(shared))
        view.shared = bool(shared)
    return _save(view)


def saved_view_delete(*, view: SavedView, actor) -> None:
    """Delete a view. Only its owner may."""
    if actor is None or view.owner_id != actor.pk:
        raise PermissionDenied
    SavedView.objects.filter(pk=view.pk, owner_id=actor.pk).delete()


# --- Reads ----------------------------------------------------------------------------------------


def saved_views_for(user) -> QuerySet[SavedView]:
    """The views ``user`` may apply: their own first, then those shared with the team, by name."""
    if user is None or not user.is_authenticated:
        return SavedView.objects.none()
    mine_first = Case(When(owner_id=user.pk, then=Value(0)), default=Value(1), output_field=IntegerField())
    return SavedView.objects.visible_to(user).select_related("owner").order_by(mine_first, "name", "id")


def saved_views_owned(user) -> QuerySet[SavedView]:
    """The views ``user`` may change: their own (the API's ``/saved-views/`` and the rename forms)."""
    if user is None or not user.is_authenticated:
        return SavedView.objects.none()
    return SavedView.objects.visible_to(user).filter(owner_id=user.pk)
