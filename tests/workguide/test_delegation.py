"""Delegation (issue 17, point 1): out-of-office substitutes, through the services and the API."""
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orchestration.models import OrchestrationRun
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import launch_approval, token_client
from workguide import due, notifications, services
from workguide.models import Delegation, WorkItem

pytestmark = pytest.mark.django_db

DELEGATIONS = "/api/delegations/"


def away(user, substitute, days=7, start_days=-1):
    now = timezone.now()
    return Delegation.objects.create(user=user, substitute=substitute, starts=now + timedelta(days=start_days),
                                     ends=now + timedelta(days=days))


def body(substitute, days=7, **extra):
    now = timezone.now()
    return {"substitute": substitute, "starts": (now - timedelta(hours=1)).isoformat(),
            "ends": (now + timedelta(days=days)).isoformat(), **extra}


def test_alice_sets_her_own_delegation_and_her_new_work_goes_to_bob(approval, users):
    alice, bob = token_client(users.alice), token_client(users.bob)
    made = alice.post(DELEGATIONS, body("bob"), format="json")
    assert made.status_code == 201, made.content
    assert made.json()["user"] == "alice" and made.json()["substitute"] == "bob" and made.json()["active"] is True
    item = WorkItem.objects.get(run=launch_approval(users.launcher))
    assert item.assignee_user == users.bob and item.delegated_from == users.alice
    seen = bob.get(f"/api/work-items/{item.pk}/").json()
    assert seen["assignee"] == "user:bob" and seen["delegated_from"] == "alice" and seen["can_complete"] is True
    # alice still sees it, in her list too
    assert [i["id"] for i in alice.get("/api/work-items/").json()["results"]] == [item.pk]
    assert alice.get(f"/api/work-items/{item.pk}/").json()["delegated_from"] == "alice"
    opened = OrchestrationRun.objects.get(pk=item.run_id).events.get(kind="work_item_opened")
    assert opened.data["delegated_from"] == "alice"
    done = bob.post(f"/api/work-items/{item.pk}/complete/", {"values": {"decision": "approve"}}, format="json")
    assert done.status_code == 200 and done.json()["completed_by"] == "bob"
    # listed for both, deleted by its user
    assert [d["id"] for d in bob.get(DELEGATIONS).json()["results"]] == [made.json()["id"]]
    assert token_client(users.carol).get(DELEGATIONS).json()["count"] == 0
    assert bob.delete(f"{DELEGATIONS}{made.json()['id']}/").status_code == 403
    assert alice.delete(f"{DELEGATIONS}{made.json()['id']}/").json()["substitute"] == "bob"
    later = WorkItem.objects.get(run=launch_approval(users.launcher), step_run__step_name="review")
    assert later.assignee_user == users.alice and later.delegated_from is None


def test_the_substitute_sees_and_works_the_absent_users_older_items(approval, users):
    before = WorkItem.objects.get(run=launch_approval(users.launcher))  # alice's, opened before she left
    away(users.alice, users.bob)
    bob = token_client(users.bob)
    assert [i["id"] for i in bob.get("/api/work-items/").json()["results"]] == [before.pk]
    assert services.my_open_items(users.bob).get().source == "me"
    assert bob.post(f"/api/work-items/{before.pk}/claim/").json()["claimed_by"] == "bob"


def test_a_manager_sets_another_users_delegation_others_may_not(users):
    refused = token_client(users.carol).post(DELEGATIONS, body("bob", user="alice"), format="json")
    assert refused.status_code == 403 and not Delegation.objects.exists()
    made = token_client(users.manager).post(DELEGATIONS, body("bob", user="alice"), format="json")
    assert made.status_code == 201 and Delegation.objects.get().user == users.alice


@pytest.mark.parametrize("payload, field", [
    (lambda: body("alice"), "substitute"),
    (lambda: body("nobody"), "substitute"),
    (lambda: body("bob", days=-2), "ends"),
    (lambda: {"substitute": "bob"}, "starts"),
    (lambda: body("bob", user="ghost"), "user"),
])
def test_bad_delegations_are_400_naming_the_field(users, payload, field):
    answer = token_client(users.alice).post(DELEGATIONS, payload(), format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"]
    assert not Delegation.objects.exists()


def test_an_overlapping_delegation_is_refused(users):
    alice = token_client(users.alice)
    assert alice.post(DELEGATIONS, body("bob"), format="json").status_code == 201
    again = alice.post(DELEGATIONS, body("carol"), format="json")
    assert again.status_code == 400 and "already has a delegation" in again.json()["errors"]["starts"][0]


def test_reminders_for_the_absent_user_go_to_the_substitute(approval, users, settings, django_capture_on_commit_callbacks):
    settings.BATON_REMINDER_BEFORE = 24 * 3600
    users.alice.email, users.bob.email = "alice@example.com", "bob@example.com"
    users.alice.save(), users.bob.save()
    item = WorkItem.objects.get(run=launch_approval(users.launcher))  # alice's
    WorkItem.objects.filter(pk=item.pk).update(due_at=timezone.now() + timedelta(hours=2),
                                               created_at=timezone.now() - timedelta(days=2))
    away(users.alice, users.bob)
    mail.outbox.clear()
    assert notifications.deliver(item.pk, "due_reminder") == []
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]


def test_escalation_still_applies_to_a_delegated_item_and_follows_a_delegation(users):
    from orchestration import engine
    from tests.engine_builders import orchestration, screen_flow, ui

    screen_flow("deleg_due")
    away(users.alice, users.bob)
    away(users.carol, users.staff)
    orch = orchestration([{"name": "ask", "steps": [
        ui("approve", "deleg_due", {"user": "alice"}, due_in="1d", escalate_to="user:carol")]}])
    item = WorkItem.objects.get(run=engine.start_run(orch))
    assert item.assignee_user == users.bob and item.delegated_from == users.alice
    assert due.escalate_overdue(now=timezone.now() + timedelta(days=2)) == 1
    item.refresh_from_db()
    # escalated to carol, who is away too: her substitute gets it, recorded as hers
    assert item.assignee_user == users.staff and item.delegated_from == users.carol and item.escalated_at
