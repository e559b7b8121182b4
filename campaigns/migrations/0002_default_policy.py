"""The workspace's sending policy row and the default cap, which mirrors WeCom's own rule for customer
broadcasts: in a calendar month a customer receives at most as many messages as the month has days."""

from django.db import migrations


def create_defaults(apps, schema_editor):
    FrequencyPolicy = apps.get_model("campaigns", "FrequencyPolicy")
    FrequencyCap = apps.get_model("campaigns", "FrequencyCap")
    FrequencyPolicy.objects.get_or_create(pk=1)
    if not FrequencyCap.objects.exists():
        FrequencyCap.objects.create(medium="", window="month", window_days=None, max_messages=None)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
