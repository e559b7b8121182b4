"""Signals other apps listen to, sent after the transaction that caused them commits."""

from __future__ import annotations

from django.dispatch import Signal

# Tags were put on or taken off contacts. Keyword arguments: ``contact_ids`` (list), ``added_tag_ids``,
# ``removed_tag_ids`` (lists of Tag ids) and ``source`` (a ContactTag.Source value; "" for removals).
# The WeCom connection mirrors the tags of its linked groups onto the customers in WeCom.
contact_tags_changed = Signal()

# A contact's personal data is being erased (PIPL), inside the erasing transaction. Keyword arguments:
# ``contact_id`` and ``actor`` (the user who erased, or None). Every app that keeps text about a person
# (rendered messages, task notes, WeCom remarks) scrubs it here, so the erasure is complete or not at all.
contact_erased = Signal()
