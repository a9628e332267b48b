"""Load the demo: users, groups, queues, sample records and the demo definitions.

Safe to run any number of times: users, groups, queues and records are
looked up before they are created, and the definitions are imported (and
activated) only while no active version of them exists. Known passwords are
set again on every run, so the printed logins always work.
"""
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from demo.models import Employee, Opportunity

DEFINITIONS_DIR = Path(__file__).resolve().parents[2] / "definitions"
DEFINITION_FILES = [
    "onboarding.yaml", "deal_approval.yaml", "contract_signature.yaml", "purchase_approval.yaml",
    "supplier_onboarding.yaml",
]

# username, password, first name, last name, groups, role, superuser
USERS = [
    ("admin", "admin", "Ada", "Admin", [], "superuser: admin, monitor, every work item", True),
    ("alice", "alice", "Alice", "Moreau", ["managers"], "hiring manager (employees' manager)", False),
    ("bob", "bob", "Bob", "Okafor", ["sales_managers"], "sales manager: reviews deals", False),
    ("carol", "carol", "Carol", "Nguyen", ["sales"], "sales rep: owns deals, revises them", False),
    ("dave", "dave", "Dave", "Kowalski", ["it"], "IT support queue: picks equipment", False),
    ("erin", "erin", "Erin", "Schmidt", ["facilities"], "facilities queue: prepares desks", False),
]

GROUP_PERMISSIONS = {
    "managers": ["orchestration.view_runs", "orchestration.launch_orchestration"],
    "sales_managers": ["orchestration.view_runs", "workguide.manage_workitem"],
    "sales": [],
    "it": ["orchestration.launch_orchestration"],
    "facilities": [],
}

# The queues the definition files declare, created here too so the demo
# users see them even before the definitions are imported.
QUEUES = [
    ("it_support", "it-support@example.com", ["dave"], ["it"]),
    ("facilities", "", ["erin"], ["facilities"]),
    ("deal_desk", "deal-desk@example.com", [], ["sales_managers"]),
]


class Command(BaseCommand):
    help = "Create the demo users, groups, queues, records and definitions (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-records", action="store_true", help="Skip the sample employees and opportunities.")

    def handle(self, *args, **options):
        with transaction.atomic():
            groups = self.ensure_groups()
            users = self.ensure_users(groups)
            self.ensure_queues(users, groups)
        self.ensure_definitions()
        if not options["no_records"]:
            self.ensure_records(users)
        self.print_summary()

    # -- people ------------------------------------------------------------------

    def ensure_groups(self):
        groups = {}
        for name, perms in GROUP_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=name)
            for dotted in perms:
                app_label, codename = dotted.split(".")
                permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
                if permission is not None:
                    group.permissions.add(permission)
            groups[name] = group
        return groups

    def ensure_users(self, groups):
        User = get_user_model()
        users = {}
        for username, password, first, last, group_names, _role, superuser in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"},
            )
            user.is_superuser = superuser
            user.is_staff = superuser
            user.is_active = True
            user.set_password(password)
            user.save()
            user.groups.add(*(groups[g] for g in group_names))
            users[username] = user
            if created:
                self.stdout.write(f"  user {username} created")
        return users

    def ensure_queues(self, users, groups):
        from workguide.models import Queue

        for name, email, members, member_groups in QUEUES:
            queue, created = Queue.objects.get_or_create(name=name, defaults={"email": email})
            queue.members.add(*(users[u] for u in members))
            queue.member_groups.add(*(groups[g] for g in member_groups))
            if created:
                self.stdout.write(f"  queue {name} created")

    # -- definitions --------------------------------------------------------------

    def ensure_definitions(self):
        try:
            from orchestration.definition_files import import_document
        except ImportError as exc:
            self.stdout.write(self.style.WARNING(f"  definitions skipped: the importer is not available ({exc})"))
            return
        from orchestration.models import Orchestration

        for filename in DEFINITION_FILES:
            text = (DEFINITIONS_DIR / filename).read_text(encoding="utf-8")
            names = [o["api_name"] for o in (yaml.safe_load(text) or {}).get("orchestrations") or []]
            active = set(
                Orchestration.objects.filter(api_name__in=names, status="active").values_list("api_name", flat=True)
            )
            if names and set(names) <= active:
                self.stdout.write(f"  {filename}: already active ({', '.join(names)})")
                continue
            import_document(text, activate=True)
            self.stdout.write(self.style.SUCCESS(f"  {filename}: imported and activated ({', '.join(names)})"))

    # -- records -------------------------------------------------------------------

    def ensure_records(self, users):
        today = date.today()
        employees = [
            dict(first_name="Grace", last_name="Hopper", email="grace.hopper@example.com", department="engineering",
                 title="Staff engineer", status="active", remote=False, accounts_created=True,
                 start_date=today - timedelta(days=400)),
            dict(first_name="Linus", last_name="Berg", email="linus.berg@example.com", department="operations",
                 title="Operations analyst", status="active", remote=True, accounts_created=True,
                 start_date=today - timedelta(days=120)),
            # Created as "hired": each starts an onboarding run.
            dict(first_name="Maya", last_name="Patel", email="maya.patel@example.com", department="engineering",
                 title="Backend developer", status="hired", remote=True, start_date=today + timedelta(days=14)),
            dict(first_name="Tom", last_name="Lindqvist", email="tom.lindqvist@example.com", department="sales",
                 title="Account executive", status="hired", remote=False, start_date=today + timedelta(days=21)),
        ]
        for values in employees:
            email = values.pop("email")
            employee, created = Employee.objects.get_or_create(
                email=email, defaults={**values, "manager": users["alice"]}
            )
            if created:
                self.stdout.write(f"  employee {employee} created ({employee.status})")

        opportunities = [
            dict(name="Acme platform licence", account="Acme Corp", amount=Decimal("48000"),
                 discount_percent=Decimal("5"), stage="prospecting"),
            dict(name="Initech support renewal", account="Initech", amount=Decimal("12500"),
                 discount_percent=Decimal("10"), stage="negotiation"),
            dict(name="Globex expansion", account="Globex", amount=Decimal("96000"),
                 discount_percent=Decimal("25"), stage="negotiation", request_approval=True),
        ]
        for values in opportunities:
            request_approval = values.pop("request_approval", False)
            name = values.pop("name")
            opportunity, created = Opportunity.objects.get_or_create(
                name=name, defaults={**values, "owner": users["carol"]}
            )
            if created:
                self.stdout.write(f"  opportunity {opportunity} created ({opportunity.stage})")
                if request_approval:
                    # An update into "approval": starts a deal approval run.
                    opportunity.stage = Opportunity.Stage.APPROVAL
                    opportunity.save()
                    self.stdout.write(f"  opportunity {opportunity} sent for approval")

    # -- summary -------------------------------------------------------------------

    def print_summary(self):
        base = settings.BATON_BASE_URL
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Baton demo loaded."))
        self.stdout.write(f"  Open {base}/  (My Work: {base}/workguide/, Monitor: {base}/monitor/, "
                          f"Demo records: {base}/demo/, Admin: {base}/admin/)")
        self.stdout.write("  Logins (username / password — role):")
        for username, password, _first, _last, _groups, role, _su in USERS:
            self.stdout.write(f"    {username:<6} / {password:<6} — {role}")
