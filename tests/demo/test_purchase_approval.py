"""The demo's purchase approval (demo/definitions/purchase_approval.yaml): a quorum of two approvers of three
that never includes the requester, checks per rule, and the confirmation back to the requester."""
import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from orchestration import engine
from orchestration.models import Orchestration, StepRun
from workguide import services
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


def test_the_purchase_approval_journey(settings):
    settings.BATON_STEP_EXECUTION = "in_process"
    call_command("load_demo", stdout=open("/dev/null", "w"))
    users = {u.username: u for u in User.objects.all()}
    orch = Orchestration.objects.get(api_name="purchase_approval", status="active")
    run = engine.start_run(orch, inputs={"amount": 2500, "purpose": "Laptops"}, user=users["carol"])
    services.complete_work_item(WorkItem.objects.get(run=run), users["carol"], {"amount": 2500, "purpose": "Laptops"})
    votes = {i.assignee_user.username: i for i in WorkItem.objects.filter(run=run, step_run__step_name="approve")}
    assert sorted(votes) == ["alice", "bob", "erin"]
    assert all(i.step_run.excluded_users == ["carol"] for i in votes.values())
    services.complete_work_item(votes["erin"], users["erin"], {"approve": True})
    services.complete_work_item(votes["alice"], users["alice"], {"approve": True})
    assert WorkItem.objects.get(pk=votes["bob"].pk).status == "canceled"
    run.refresh_from_db()
    assert run.status == "running", run.error
    confirm = WorkItem.objects.get(run=run, step_run__step_name="order")
    assert confirm.assignee_user == users["carol"]
    assert confirm.inputs == {"approvals": 2, "checks": "all passed"}
    services.complete_work_item(confirm, users["carol"], {"ordered": True})
    run.refresh_from_db()
    assert run.status == "completed"
    assert [r.item for r in StepRun.objects.filter(run=run, step_name="check", instance_index__isnull=False)
            .order_by("instance_index")] == ["budget", "policy"]
