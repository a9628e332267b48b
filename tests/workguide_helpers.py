"""Builders shared by the Work Guide tests: a two-screen flow on a demo record, users in every role."""
import itertools

from django.contrib.auth.models import Group, Permission, User

from demo.models import Employee
from orchestration import engine
from tests.engine_builders import active_flow, orchestration, ui
from workguide.models import Queue, WorkItem

_names = itertools.count(1)

CHOICES = [{"value": "mac", "label": "MacBook"}, {"value": "linux", "label": "Linux laptop"}]


def two_screen_flow(api_name=None):
    """Screen one: every simple type, visible_if and a screen-level validate; screen two: the rest."""
    return active_flow(
        api_name=api_name or f"details_{next(_names)}",
        type="screen",
        label="Details",
        inputs=[{"name": "who", "type": "text"}],
        outputs=[],
        screens=[
            {
                "name": "about", "label": "About the hire",
                "fields": [
                    {"name": "hello", "type": "display", "text": "Equipment for {!who}"},
                    {"name": "laptop", "type": "choice", "label": "Laptop", "required": True, "choices": CHOICES},
                    {"name": "monitors", "type": "number", "label": "Monitors", "required": True, "default": "1",
                     "help_text": "0 to 3"},
                    {"name": "remote", "type": "boolean", "label": "Works remotely"},
                    {"name": "address", "type": "text", "label": "Home address", "required": True,
                     "visible_if": "remote"},
                ],
                "validate": {"condition": "monitors >= 0.0 && monitors <= 3.0", "message": "Pick between 0 and 3 monitors."},
            },
            {
                "name": "delivery", "label": "Delivery",
                "fields": [
                    {"name": "needed_by", "type": "date", "label": "Needed by", "required": True},
                    {"name": "call_at", "type": "datetime", "label": "Call at"},
                    {"name": "contact", "type": "email", "label": "Contact email"},
                    {"name": "extras", "type": "multichoice", "label": "Extras", "choices": ["mouse", "dock"]},
                    {"name": "notes", "type": "textarea", "label": "Notes"},
                    {"name": "summary", "type": "display", "label": "Summary", "text": "Laptop {!laptop} for {!who}"},
                ],
            },
        ],
    )


def ok_flow():
    return active_flow(
        api_name=f"ok_{next(_names)}", type="screen", outputs=[],
        screens=[{"name": "main", "label": "Check", "fields": [{"name": "ok", "type": "boolean", "label": "OK"}]}],
    )


def guide_orchestration(assignee=None, second_assignee=None, api_name=None):
    """Stage ``collect`` (the two-screen flow) then stage ``review`` (one checkbox), on demo employees."""
    details = two_screen_flow()
    check = ok_flow()
    return orchestration(
        [
            {"name": "collect", "label": "Collect details", "steps": [
                ui("details", details.api_name, assignee=assignee or {"user": "alice"}, label="Enter the details",
                   inputs={"who": 'record.first_name + " " + record.last_name'}),
            ]},
            {"name": "review", "label": "Review", "steps": [
                ui("review", check.api_name, assignee=second_assignee or {"user": "alice"}, label="Review the details"),
            ]},
        ],
        api_name=api_name,
        label="Hire equipment",
    )


def employee(first="Ada", last="Lovelace", **extra):
    return Employee.objects.create(first_name=first, last_name=last, email=f"{first.lower()}@example.com", **extra)


def start(orch, record=None, user=None):
    return engine.start_run(orch, record=record, user=user)


def item_of(run, step="details"):
    return WorkItem.objects.get(run=run, step_run__step_name=step)


def people(password=None):
    """alice (direct), gina (group "crew"), quinn (queue "desk" member), quentin (via a group of the queue),
    otto (outsider), mona (manager: workguide.manage_workitem)."""
    users = {name: User.objects.create_user(name, f"{name}@example.com", password)
             for name in ("alice", "gina", "quinn", "quentin", "otto", "mona")}
    crew = Group.objects.create(name="crew")
    users["gina"].groups.add(crew)
    desk_team = Group.objects.create(name="desk_team")
    users["quentin"].groups.add(desk_team)
    desk = Queue.objects.create(name="desk")
    desk.members.add(users["quinn"])
    desk.member_groups.add(desk_team)
    users["mona"].user_permissions.add(Permission.objects.get(codename="manage_workitem"))
    return users


STEP_ONE = {"laptop": "mac", "monitors": "2"}
STEP_TWO = {"needed_by": "2030-01-15", "contact": "ada@example.com", "extras": ["mouse"], "notes": "<b>soon</b>"}


def people_who_sign_in(settings):
    """``people()`` with the password "pw" each, for browser tests that sign in through the page
    (a fast hasher; tasks and mail in process; the live refresh off)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # No live refresh unless a test asks for it: a poll landing while the test thread writes to the in-memory
    # SQLite database meets "database table is locked" (a 500 the page would report).
    settings.BATON_WORKGUIDE_POLL_SECONDS = 0
    users = people()
    for user in users.values():
        user.set_password("pw")
        user.save()
    return users
