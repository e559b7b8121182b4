"""``manage.py wecom_link_tag_group "<tag group name>"``: make a tag group a WeCom corp tag group."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from contacts.models import TagGroup
from wecom.client import WeComError
from wecom.corp_tags import tag_group_link


class Command(BaseCommand):
    help = "Make a tag group a WeCom corp tag group: its tags are created in WeCom and kept in step both ways."

    def add_arguments(self, parser):
        parser.add_argument("group", help="the tag group's name")

    def handle(self, *args, **options):
        group = TagGroup.objects.filter(name=options["group"]).first()
        if group is None:
            raise CommandError(f"No tag group named {options['group']!r}.")
        try:
            link = tag_group_link(group=group)
        except WeComError as exc:
            raise CommandError(f"WeCom refused: {exc}") from exc
        self.stdout.write(f"{group.name}: WeCom group {link.wecom_id}, {group.tags.count()} tags linked")
