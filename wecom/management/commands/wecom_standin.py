"""``manage.py wecom_standin --port 8001``: the local WeCom stand-in (``wecom.standin``) with this
project's corp id, secret, callback token and EncodingAESKey, for the demo and manual testing. Point
``WECOM_API_BASE`` at ``http://127.0.0.1:8001/cgi-bin`` and set ``WECOM_SIMULATION=1``."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from wecom.standin import WeComStandIn, serve


class Command(BaseCommand):
    help = "Serve the local WeCom stand-in (no internet needed)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--staff",
            nargs="*",
            default=None,
            help="WeCom userids of the follow users (default: manager operator, the demo users)",
        )
        parser.add_argument("--seed-customers", type=int, default=0, help="also seed this many customers")
        parser.add_argument("--busy-every", type=int, default=0, help="every Nth API call answers 45009")

    @staticmethod
    def _staff() -> list[str]:
        """The WeCom members this project knows (the demo's staff after ``seed_demo``), else two."""
        from wecom.models import StaffAccount

        return list(StaffAccount.objects.values_list("userid", flat=True)) or ["manager", "operator"]

    def handle(self, *args, **options):
        if not settings.WECOM_CORP_ID or not settings.WECOM_CORP_SECRET:
            raise CommandError("Set WECOM_CORP_ID and WECOM_CORP_SECRET (any values) for the stand-in to accept.")
        standin = WeComStandIn(
            corp_id=settings.WECOM_CORP_ID,
            corp_secret=settings.WECOM_CORP_SECRET,
            token=settings.WECOM_CALLBACK_TOKEN,
            encoding_aes_key=settings.WECOM_ENCODING_AES_KEY,
            busy_every=options["busy_every"],
            staff=options["staff"] if options["staff"] is not None else self._staff(),
        )
        if options["seed_customers"]:
            standin.seed(staff=len(standin.staff), customers=options["seed_customers"])
        server, base_url = serve(standin, host=options["host"], port=options["port"])
        self.stdout.write(f"WeCom stand-in on {base_url}/cgi-bin (control endpoints under {base_url}/standin/)")
        if standin.crypto is None:
            self.stdout.write("No WECOM_CALLBACK_TOKEN / WECOM_ENCODING_AES_KEY: /standin/scan cannot sign callbacks.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()
