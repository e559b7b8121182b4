"""``manage.py wecom_sync [--resume]``: a full WeCom sync (``wecom.sync``), printing its progress."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from wecom.models import SyncRun
from wecom.sync import sync_run_continue, sync_run_running, sync_run_start


class Command(BaseCommand):
    help = "Sync WeCom follow users, corp tags and customers into contacts."

    def add_arguments(self, parser):
        parser.add_argument("--resume", action="store_true", help="carry on the running sync instead of refusing")
        parser.add_argument("--quiet-every", type=int, default=20, help="print progress every N pages")

    def handle(self, *args, **options):
        running = sync_run_running()
        if running is not None and not options["resume"]:
            raise CommandError(
                f"Sync #{running.pk} is running (heartbeat {running.heartbeat_at}); use --resume to carry it on."
            )
        run = running or sync_run_start()
        self.stdout.write(f"sync #{run.pk}: {'resuming at ' + str(run.position) if running else 'started'}")
        pages = {"n": 0}

        def progress(current: SyncRun) -> None:
            pages["n"] += 1
            if pages["n"] % max(1, options["quiet_every"]) == 0:
                position = current.position
                self.stdout.write(
                    f"  member {position.get('index')}/{len(position.get('userids') or [])}: "
                    f"{current.customers_seen:,} customers seen, {current.contacts_created:,} contacts created, "
                    f"{current.follows_written:,} follows written"
                )

        run = sync_run_continue(run=run, progress=progress)
        self.stdout.write(
            f"sync #{run.pk} {run.status}: {run.staff_count} staff, {run.customers_seen:,} customers seen, "
            f"{run.contacts_created:,} contacts created, {run.follows_written:,} follows written, "
            f"{len(run.skipped)} skipped"
        )
        if run.error:
            self.stdout.write(f"  {run.error}")
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(run.error)
