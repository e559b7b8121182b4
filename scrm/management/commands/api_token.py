"""manage.py api_token create|list|revoke|rotate: the API tokens from the command line."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from scrm.authentication import api_token_create, api_token_revoke, api_token_rotate
from scrm.models import ApiToken


class Command(BaseCommand):
    help = "Create, list, revoke or rotate API tokens. A key is printed once, when it is made."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Issue a token and print its key.")
        create.add_argument("username")
        create.add_argument("--name", default="API token")
        create.add_argument(
            "--scope",
            action="append",
            choices=ApiToken.Scope.values,
            dest="scopes",
            help="read, write or analytics; repeat for several (default: read)",
        )
        create.add_argument("--days", type=int, default=None, help="lifetime (default: SCRM_API_TOKEN_DAYS)")
        listing = sub.add_parser("list", help="List tokens (never their keys).")
        listing.add_argument("--user", default=None)
        listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
        revoke = sub.add_parser("revoke", help="Revoke a token by id.")
        revoke.add_argument("id", type=int)
        rotate = sub.add_parser("rotate", help="Revoke a token and issue its replacement; prints the new key.")
        rotate.add_argument("id", type=int)
        rotate.add_argument("--days", type=int, default=None)

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    @staticmethod
    def _expiry(days):
        return timezone.now() + timedelta(days=days) if days else None

    def _token(self, pk: int) -> ApiToken:
        try:
            return ApiToken.objects.select_related("user").get(pk=pk)
        except ApiToken.DoesNotExist as error:
            raise CommandError(f"No API token with id {pk}.") from error

    def _create(self, username, name, scopes, days, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as error:
            raise CommandError(f"No user named {username!r}.") from error
        token, key = api_token_create(
            user=user, name=name, scopes=scopes or [ApiToken.Scope.READ], expires_at=self._expiry(days)
        )
        self._print_key(token, key)

    def _list(self, user, all, **options):
        tokens = ApiToken.objects.select_related("user").order_by("id")
        if user:
            tokens = tokens.filter(user__username=user)
        if not all:
            tokens = tokens.active()
        for token in tokens:
            state = "revoked" if token.is_revoked else "expired" if token.is_expired else "active"
            last = timezone.localtime(token.last_used_at).strftime("%Y-%m-%d %H:%M") if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk:>5}  {token.key_prefix}…  {token.user.username:<16} {token.name:<24} "
                f"{','.join(token.scopes):<20} expires {timezone.localtime(token.expires_at):%Y-%m-%d}  "
                f"last used {last}  {state}"
            )

    def _revoke(self, id, **options):
        token = api_token_revoke(token=self._token(id))
        self.stdout.write(
            self.style.SUCCESS(f"Token {token.pk} ({token.name}) revoked at {token.revoked_at:%Y-%m-%d %H:%M}.")
        )

    def _rotate(self, id, days, **options):
        token = self._token(id)
        if token.is_revoked:
            raise CommandError(f"Token {id} is revoked; create a new one instead.")
        new, key = api_token_rotate(token=token, expires_at=self._expiry(days))
        self.stdout.write(f"Token {token.pk} revoked; its replacement is token {new.pk}.")
        self._print_key(new, key)

    def _print_key(self, token: ApiToken, key: str) -> None:
        self.stdout.write(
            f"Token {token.pk} for {token.user.username} ({','.join(token.scopes)}), "
            f"expires {timezone.localtime(token.expires_at):%Y-%m-%d}. Key, shown only this once:"
        )
        self.stdout.write(key)
