# One-off messages in the Delivery ledger (one_off_key, sent_by, their own subject/body, template optional),
# and why a pending delivery waits (hold: quiet hours, retry), so that changed quiet hours release it.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0006_followup_workspace'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='delivery',
            name='delivery_has_source',
        ),
        migrations.AddField(
            model_name='delivery',
            name='body',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='delivery',
            name='hold',
            field=models.CharField(blank=True, choices=[('quiet_hours', 'Quiet hours'), ('retry', 'Retry after an error')], db_default='', default='', max_length=16),
        ),
        migrations.AddField(
            model_name='delivery',
            name='one_off_key',
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='delivery',
            name='sent_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='delivery',
            name='subject',
            field=models.CharField(blank=True, db_default='', default='', max_length=200),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='template',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='campaigns.messagetemplate'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('hold', 'quiet_hours'), ('status', 'pending')), fields=['not_before'], name='delivery_quiet_hold'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(('broadcast__isnull', False), ('automation_run__isnull', False), ('welcome_code__isnull', False), ('one_off_key__isnull', False), _connector='OR'), name='delivery_has_source'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(('template__isnull', False), models.Q(('body', ''), _negated=True), _connector='OR'), name='delivery_has_content'),
        ),
    ]
