"""The demo campaigns content that ``seed_demo`` writes is valid input for the services that use it."""

from __future__ import annotations

from django.core.management import call_command

from campaigns import content
from campaigns.models import Automation, Broadcast, MessageTemplate, Segment
from campaigns.segments import segment_count, segment_rules_validate


def test_seed_demo_writes_a_valid_library_segments_and_sops(db):
    call_command("seed_demo", contacts=120, verbosity=0)
    call_command("seed_demo", contacts=120, if_empty=True, verbosity=0)
    assert MessageTemplate.objects.count() == 8
    for template in MessageTemplate.objects.all():
        content.template_placeholders(template.body)
    counts = {segment.name: segment_count(segment) for segment in Segment.objects.all()}
    assert len(counts) == 4 and all(n > 0 for n in counts.values()), counts
    for segment in Segment.objects.all():
        assert segment_rules_validate(segment.rules) == segment.rules
    assert Automation.objects.filter(is_active=True, active_since__isnull=False).count() == 5
    assert set(Broadcast.objects.values_list("status", flat=True)) == {"draft", "pending_approval"}
