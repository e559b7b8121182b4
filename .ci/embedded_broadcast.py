"""CI, embedded default: schedule a broadcast 15 seconds ahead and wait for the worker and beat that
.ci/run started (SQLite + filesystem broker) to send it. Run with ``manage.py shell < this file``."""

import datetime as dt
import sys
import time

from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns import services
from campaigns.models import Broadcast, FrequencyPolicy, MessageTemplate, OutboxMessage, Segment
from campaigns.selectors import broadcast_progress

# CI may run at night: the default quiet hours (22:00-08:00) would hold the messages until morning.
FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=False)
manager = get_user_model().objects.get(username="manager")
broadcast = services.broadcast_create(
    created_by=manager,
    name="CI embedded broadcast",
    template=MessageTemplate.objects.get(name="双十二预热"),
    segment=Segment.objects.get(name="已授权的全部客户"),
    variables={"coupon": "CI"},
    scheduled_at=timezone.now() + dt.timedelta(seconds=15),
)
services.broadcast_submit(broadcast=broadcast, user=manager)
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    broadcast.refresh_from_db()
    if broadcast.status == Broadcast.Status.SENT:
        break
    time.sleep(2)
progress = broadcast_progress(broadcast)
print("embedded broadcast:", progress)
outbox = OutboxMessage.objects.filter(delivery__broadcast=broadcast).count()
if broadcast.status != Broadcast.Status.SENT or progress["sent"] == 0 or outbox != progress["sent"]:
    print(f"embedded broadcast FAILED: status {broadcast.status}, outbox {outbox}")
    sys.exit(1)
print(f"embedded default OK: beat + worker sent the broadcast to {progress['sent']} contacts")
