"""Separation of duties (a step's ``assignee.exclude``) whoever the work reaches: escalation, delegation, My Work.

The requester, carol, is excluded from the approval in every test. She may never be given it: not by an
escalation, not as someone's out-of-office substitute; and her My Work (list, counts, live check, the API's
"mine") does not offer her the items her group or a delegation would otherwise show her.
"""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.utils import timezone

from orchestration import engine
from orchestration.models import RunEvent, StepRun
from tests.engine_builders import orchestration, screen_flow, ui
from workguide import due, services
from workguide.models import Delegation, WorkItem

pytestmark = pytest.mark.django_db
EXCLUDE_CAROL = '["carol"]'  # as steps.request.completed_by would give it, when carol made the request


@pytest.fixture
def people(db):
    users = {name: User.objects.create_user(name, email=f"{name}@example.com")
             for name in ("alice", "bob", "carol", "mona")}
    approvers = Group.objects.create(name="approvers")
    users["carol"].groups.add(approvers)
    users["bob"].groups.add(approvers)
    users["mona"].user_permissions.add(Permission.objects.get(codename="manage_workitem"))
    return users


def away(user, substitute):
    now = timezone.now()
    return Delegation.objects.create(user=user, substitute=substitute, starts=now - timedelta(hours=1),
                                     ends=now + timedelta(days=7))


def approval(assignee, **step_extra):
    """A run whose one step, "approve", is for ``assignee`` and excludes carol."""
    if not WorkItem.objects.exists():
        screen_flow("approve_form")
    step = ui("approve", "approve_form", {**assignee, "exclude": EXCLUDE_CAROL}, **step_extra)
    run = engine.start_run(orchestration([{"name": "ask", "steps": [step]}]))
    item = WorkItem.objects.get(run=run)
    assert item.step_run.excluded_users == ["carol"]
    return item


def escalate(item, capture):
    with capture(execute=True):
        return due.check_due_dates(now=item.due_at + timedelta(minutes=1))


# ---------------------------------------------------------------------------
# Escalation
# ---------------------------------------------------------------------------

def test_an_escalation_to_an_excluded_user_leaves_the_item_where_it_was_and_says_why(
        people, django_capture_on_commit_callbacks):
    item = approval({"user": "alice"}, due_in="1d", escalate_to="user:carol")
    mail.outbox.clear()
    assert escalate(item, django_capture_on_commit_callbacks)["escalated"] == 1
    item.refresh_from_db()
    assert item.assignee_display == "user:alice" and item.escalated_at is not None
    assert not RunEvent.objects.filter(run=item.run, kind="work_item_escalated").exists()
    event = RunEvent.objects.get(run=item.run, kind="work_item_overdue")
    assert "carol is excluded from this step (separation of duties)" in event.data["escalate_to_problem"]
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]  # the assignee is told it is overdue


def test_an_escalation_to_a_user_away_passes_over_an_excluded_substitute(people, django_capture_on_commit_callbacks):
    away(people["bob"], people["carol"])
    item = approval({"user": "alice"}, due_in="1d", escalate_to="user:bob")
    escalate(item, django_capture_on_commit_callbacks)
    item.refresh_from_db()
    assert item.assignee_display == "user:bob" and item.delegated_from is None
    event = RunEvent.objects.get(run=item.run, kind="work_item_escalated")
    assert event.data["after"] == "user:bob" and event.data["delegation_skipped"] == "carol"
    assert "separation of duties" in event.data["delegation_skipped_reason"]


# ---------------------------------------------------------------------------
# Delegation
# ---------------------------------------------------------------------------

def test_a_new_item_is_not_delegated_to_an_excluded_substitute(people):
    away(people["alice"], people["carol"])
    item = approval({"user": "alice"})
    assert item.assignee_display == "user:alice" and item.delegated_from is None
    event = RunEvent.objects.get(run=item.run, kind="work_item_opened")
    assert event.data["delegation_skipped"] == "carol" and "delegated_from" not in event.data
    assert not services.can_work(item, people["carol"])


def test_a_reassignment_to_a_user_away_is_not_delegated_to_an_excluded_substitute(people):
    away(people["bob"], people["carol"])
    item = approval({"user": "alice"})
    services.reassign(item, people["mona"], "user:bob")
    item.refresh_from_db()
    assert item.assignee_display == "user:bob" and item.delegated_from is None
    event = RunEvent.objects.get(run=item.run, kind="work_item_reassigned")
    assert event.data["delegation_skipped"] == "carol"


def test_a_delegation_to_someone_not_excluded_still_applies(people):
    away(people["alice"], people["bob"])
    item = approval({"user": "alice"})
    assert item.assignee_display == "user:bob" and item.delegated_from == people["alice"]


# ---------------------------------------------------------------------------
# My Work, its counts, its live check and the API's "mine"
# ---------------------------------------------------------------------------

def test_my_work_does_not_offer_an_excluded_member_their_groups_item(people, client):
    excluding = approval({"group": "approvers"})
    not_excluded = approval({"group": "approvers"})
    StepRun.objects.filter(pk=not_excluded.step_run_id).update(excluded_users=[])  # a step without the rule
    client.force_login(people["carol"])
    response = client.get("/workguide/")
    assert [i.pk for i in response.context["items"]] == [not_excluded.pk]
    assert response.context["counts"]["all"] == 1 and response.context["counts"]["groups"] == 1
    # The live check covers the same items as the page: it answers 204 while nothing changes for her...
    version = services.open_items_version(people["carol"])
    assert version == response.context["counts"]["version"]
    assert client.get("/workguide/results/", {"known": version}).status_code == 204
    # ...and another item excluding her arriving in her group changes nothing.
    approval({"group": "approvers"})
    assert services.open_items_version(people["carol"]) == version
    # The API's own list ("mine") agrees.
    listed = client.get("/api/work-items/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["id"] for row in rows] == [not_excluded.pk]
    # bob, in the same group and not excluded, is offered both (and the third).
    client.force_login(people["bob"])
    assert {i.pk for i in client.get("/workguide/").context["items"]} >= {excluding.pk, not_excluded.pk}


def test_a_substitute_who_is_excluded_does_not_see_the_absent_users_item_in_my_work(people, client):
    item = approval({"user": "alice"})  # opened before alice went away
    away(people["alice"], people["carol"])
    client.force_login(people["carol"])
    response = client.get("/workguide/")
    assert item.pk not in [i.pk for i in response.context["items"]] and response.context["counts"]["all"] == 0
    client.force_login(people["alice"])
    assert item.pk in [i.pk for i in client.get("/workguide/").context["items"]]


def test_the_live_check_covers_a_substitutes_delegated_items_as_the_page_does(people, client):
    """The cheap check and the page must count the same items, or every poll redraws My Work: with a delegation
    in force the check left out the absent user's items that the page lists."""
    away(people["alice"], people["bob"])
    item = approval({"user": "alice"})  # delegated to bob on opening
    older = approval({"group": "approvers"})
    WorkItem.objects.filter(pk=older.pk).update(assignee_type="user", assignee_group=None,
                                                assignee_user=people["alice"])  # alice's own, from before
    client.force_login(people["bob"])
    counts = client.get("/workguide/").context["counts"]
    assert counts["all"] == 2 and {item.pk, older.pk} <= {i.pk for i in client.get("/workguide/").context["items"]}
    assert services.open_items_version(people["bob"]) == counts["version"]
    assert client.get("/workguide/results/", {"known": counts["version"]}).status_code == 204


# ---------------------------------------------------------------------------
# Mail
# ---------------------------------------------------------------------------

@pytest.fixture
def mails(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_the_new_work_mail_never_goes_to_an_excluded_member_or_substitute(people, mails,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        approval({"group": "approvers"})
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]  # carol, in the group, is not told
    mail.outbox.clear()
    away(people["alice"], people["carol"])
    with django_capture_on_commit_callbacks(execute=True):
        approval({"user": "alice"})  # stays with alice (see above): so does its mail
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
