# Follow-ups as a daily tool: reminder times, the outcome, who created and who completed a task.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0005_broadcast_frozen_audience"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="followuptask",
            name="completed_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="completed by",
            ),
        ),
        migrations.AddField(
            model_name="followuptask",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
        migrations.AddField(
            model_name="followuptask",
            name="outcome",
            field=models.TextField(blank=True, db_default="", default="", verbose_name="outcome"),
        ),
        migrations.AddField(
            model_name="followuptask",
            name="remind_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="remind at"),
        ),
        migrations.AddField(
            model_name="followuptask",
            name="reminded_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="reminded at"),
        ),
        migrations.AddIndex(
            model_name="followuptask",
            index=models.Index(
                condition=models.Q(("status", "open")), fields=["assignee", "due_at"], name="task_open_assignee_due"
            ),
        ),
        migrations.AddIndex(
            model_name="followuptask",
            index=models.Index(
                condition=models.Q(("remind_at__isnull", False), ("reminded_at__isnull", True), ("status", "open")),
                fields=["remind_at"],
                name="task_reminder_due",
            ),
        ),
    ]
