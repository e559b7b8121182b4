"""``manage.py export_contacts -o FILE``: write a filtered contact list as CSV, in the columns of the contacts
import (so the file can be edited and imported again)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from contacts.exports import contact_csv_rows
from contacts.filtersets import ContactFilterSet
from contacts.models import Channel, Contact, Tag


class Command(BaseCommand):
    help = "Export contacts as CSV (UTF-8 with BOM, the columns of import_contacts). Filters combine with AND."

    def add_arguments(self, parser):
        parser.add_argument("-o", "--output", required=True, help="file to write, or - for standard output")
        parser.add_argument(
            "--stage", action="append", choices=Contact.Stage.values, help="lifecycle stage (repeatable)"
        )
        parser.add_argument("--channel", action="append", metavar="NAME", help="channel name (repeatable: any of)")
        parser.add_argument("--tag", action="append", metavar="GROUP:TAG", help="has any of these tags (repeatable)")
        parser.add_argument("--owner", metavar="USERNAME", help="owned by this user")
        parser.add_argument("--region", help="region (exact)")
        parser.add_argument("--search", help="name or phone contains")
        parser.add_argument("--as", dest="username", help="export only what this user may see (default: everything)")

    def handle(self, *args, **options):
        User = get_user_model()
        data = QueryDict(mutable=True)
        for stage in options["stage"] or ():
            data.appendlist("stage", stage)
        for name in options["channel"] or ():
            channel = Channel.objects.filter(name=name).first()
            if channel is None:
                raise CommandError(f"No channel named {name!r}.")
            data.appendlist("channel", str(channel.pk))
        for label in options["tag"] or ():
            group, _sep, name = label.partition(":")
            tag = Tag.objects.filter(group__name=group, name=name).first()
            if tag is None:
                raise CommandError(f"No tag {label!r} (write it as group:tag).")
            data.appendlist("tag", str(tag.pk))
        if options["owner"]:
            owner = User.objects.filter(**{User.USERNAME_FIELD: options["owner"]}).first()
            if owner is None:
                raise CommandError(f"No user named {options['owner']!r}.")
            data["owner"] = str(owner.pk)
        for key in ("region", "search"):
            if options[key]:
                data[key] = options[key]

        queryset = Contact.objects.live()
        if options["username"]:
            actor = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}, is_active=True).first()
            if actor is None:
                raise CommandError(f"No active user named {options['username']!r}.")
            queryset = Contact.objects.live().visible_to(actor)
        filterset = ContactFilterSet(data, queryset=queryset)
        if not filterset.is_valid():
            raise CommandError(f"Invalid filters: {filterset.errors.as_text()}")

        to_stdout = options["output"] == "-"
        output = None if to_stdout else open(options["output"], "w", encoding="utf-8", newline="")  # noqa: SIM115
        rows = 0
        try:
            for chunk in contact_csv_rows(filterset.qs):
                if output is None:
                    self.stdout.write(chunk, ending="")
                else:
                    output.write(chunk)
                rows += chunk.count("\r\n")
        finally:
            if output is not None:
                output.close()
        if not to_stdout:
            self.stderr.write(f"{max(0, rows - 1):,} contacts written to {options['output']}.")
