"""Carry DRF's authtoken keys over to scrm.ApiToken, hashed, then delete them (no key stays in clear).

An integration keeps working with the key it has: it is now looked up by its SHA-256. A carried-over
token gets every scope (DRF's token could do everything its user could) and expires after
SCRM_API_TOKEN_DAYS, like a new one.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def carry_over(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("scrm", "ApiToken")
    now = timezone.now()
    expires_at = now + timedelta(days=settings.SCRM_API_TOKEN_DAYS)
    for token in Token.objects.all():
        ApiToken.objects.get_or_create(
            key_hash=hashlib.sha256(token.key.encode()).hexdigest(),
            defaults={
                "user_id": token.user_id,
                "name": "DRF token (carried over)",
                "key_prefix": token.key[:8],
                "scopes": ["analytics", "read", "write"],
                "created_at": token.created,
                "expires_at": expires_at,
            },
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scrm", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
