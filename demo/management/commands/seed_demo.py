"""``manage.py seed_demo --contacts N``: fill an empty database with a realistic demo brand.

``make run`` calls it with ``--contacts 2000 --if-empty`` on every start; CI with 300; the benchmark in
``bench/seed_demo.py`` with a million. The logic lives in ``demo/seed.py``.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from contacts.models import Contact
from demo.seed import demo_seed
from demo.staff import STAFF


class Command(BaseCommand):
    help = "Create the demo staff and a realistic demo data set (contacts, purchases, touchpoints, communities)."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=2000, help="Number of contacts (default 2000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: the same seed makes the same data.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the database already has contacts."
        )
        parser.add_argument(
            "--purchases-per-contact", type=float, default=3.0, help="Purchases per contact on average (default 3)."
        )
        parser.add_argument(
            "--no-scores",
            action="store_true",
            help="Do not score the contacts after seeding (RFM layers and predicted CLV wait for the nightly run).",
        )
        parser.add_argument(
            "--touchpoints-per-contact",
            type=float,
            default=10.0,
            help="Touchpoints per contact on average (default 10).",
        )

    def handle(self, *args, **options):
        existing = Contact.objects.count()
        if existing:
            if options["if_empty"]:
                self.stdout.write(f"seed_demo: {existing:,} contacts exist already; nothing to do.")
                return
            raise CommandError(
                f"The database already has {existing:,} contacts. seed_demo fills an empty database: "
                "pass --if-empty to skip quietly, or empty it first (manage.py flush)."
            )
        if options["contacts"] < 1:
            raise CommandError("--contacts must be at least 1.")
        if options["purchases_per_contact"] < 0 or options["touchpoints_per_contact"] < 0:
            raise CommandError("--purchases-per-contact and --touchpoints-per-contact cannot be negative.")

        self.stdout.write(
            f"seed_demo: {options['contacts']:,} contacts, seed {options['seed']}, "
            f"{options['purchases_per_contact']:g} purchases and {options['touchpoints_per_contact']:g} touchpoints "
            "per contact"
        )
        started = time.perf_counter()
        result = demo_seed(
            contacts=options["contacts"],
            seed=options["seed"],
            purchases_per_contact=options["purchases_per_contact"],
            touchpoints_per_contact=options["touchpoints_per_contact"],
            score=not options["no_scores"],
            log=self.stdout.write,
        )
        total = time.perf_counter() - started

        self.stdout.write("Rows:")
        for table, count in result.rows.items():
            self.stdout.write(f"  {table:<34} {count:>12,}")
        if result.stage_corrections:
            self.stdout.write(
                self.style.WARNING(
                    f"  {result.stage_corrections:,} stages corrected by stage_expression(): "
                    "demo/people.py's stage hint is out of date"
                )
            )
        self.stdout.write(self.style.SUCCESS(f"Done in {total:.1f} s."))
        self.stdout.write("Demo logins (password):")
        for member in STAFF:
            if member.password:
                self.stdout.write(f"  {member.username:<12} {member.password:<15} {member.role}")
        self.stdout.write(f"Integrator API token: {result.token}")
        self.stdout.write(f"  curl -H 'Authorization: Token {result.token}' http://127.0.0.1:8000/api/v1/contacts/")
