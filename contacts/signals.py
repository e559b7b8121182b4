"""Signals other apps listen to, sent after the transaction that caused them commits."""

from __future__ import annotations

from django.dispatch import Signal

# Tags were put on or taken off contacts. Keyword arguments: ``contact_ids`` (list), ``added_tag_ids``,
# ``removed_tag_ids`` (lists of Tag ids) and ``source`` (a ContactTag.Source value; "" for removals).
# The WeCom connection mirrors the tags of its linked groups onto the customers in WeCom.
contact_tags_changed = Signal()
