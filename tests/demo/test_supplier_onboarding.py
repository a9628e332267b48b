"""The demo's supplier onboarding (demo/definitions/supplier_onboarding.yaml): compliance as a child run whose
outputs the parent reads, a quorum of two approvers of three, and a wait for the signed contract (an event) or
14 days — run end to end in process, both ways out of the wait."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

import orchestration
from orchestration import waits
from orchestration.models import OrchestrationRun, RunEvent, StepRun, Timer
from workguide import services
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db

SUPPLIER = {"supplier": "Northwind Traders", "country": "NL", "iban": "NL91ABNA0417164300"}


@pytest.fixture
def demo(settings, celery_eager):
    settings.BATON_STEP_EXECUTION = "in_process"
    call_command("load_demo", "--no-records", stdout=open("/dev/null", "w"))
    return {u.username: u for u in User.objects.all()}


def step(run, name):
    return StepRun.objects.filter(run=run, step_name=name, instance_index__isnull=True).order_by("-id").first()


def approved_by_two(run, users, django_capture_on_commit_callbacks):
    """The quorum: bob and dave approve; alice's item is withdrawn (and she is told)."""
    votes = {i.assignee_user.username: i for i in WorkItem.objects.filter(run=run, step_run__step_name="approve")}
    assert sorted(votes) == ["alice", "bob", "dave"]
    assert all(i.inputs == {"supplier": "Northwind Traders", "risk": "low"} for i in votes.values())
    services.complete_work_item(votes["bob"], users["bob"], {"approve": True, "note": "known to us"})
    assert step(run, "approve").status == "in_progress"  # one approval of the two needed
    with django_capture_on_commit_callbacks(execute=True):
        services.complete_work_item(votes["dave"], users["dave"], {"approve": True, "note": "VAT number checked"})
    assert WorkItem.objects.get(pk=votes["alice"].pk).status == "canceled"
    assert [m.to for m in mail.outbox if m.subject.startswith("No longer needed")] == [["alice@example.com"]]
    approve = step(run, "approve")
    assert approve.status == "completed"
    instances = StepRun.objects.filter(run=run, step_name="approve", instance_index__isnull=False)
    assert [(i.item, i.status) for i in instances.order_by("instance_index")] == [
        ("user:alice", "discontinued"), ("user:bob", "completed"), ("user:dave", "completed")]
    # Outputs are a list in element order, None for the instance that did not complete.
    assert approve.outputs == [None, {"approve": True, "note": "known to us"}, {"approve": True, "note": "VAT number checked"}]


def test_the_supplier_onboarding_journey_with_the_signed_contract(demo, client, django_capture_on_commit_callbacks):
    run = orchestration.launch("supplier_onboarding", inputs=SUPPLIER, user=demo["carol"])

    # 1. Compliance ran as a child run; its declared outputs are the step's outputs.
    compliance = step(run, "compliance")
    child = OrchestrationRun.objects.get(parent_step_run=compliance)
    assert child.orchestration.api_name == "supplier_compliance" and child.status == "completed"
    assert child.outputs == {"cleared": True, "risk": "low"}
    assert compliance.status == "completed" and compliance.outputs == child.outputs

    # 2. Two approvals of three.
    approved_by_two(run, demo, django_capture_on_commit_callbacks)

    # 3. Waiting for the signed contract, with its 14-day timeout as a timer.
    wait = step(run, "contract_signed")
    assert wait.status == "in_progress"
    timer = Timer.objects.get(step_run=wait)
    assert timer.state == "pending"
    assert abs(timer.due_at - (timezone.now() + timedelta(days=14))) < timedelta(minutes=5)

    # The monitor shows the run waiting, with the child linked both ways.
    client.force_login(demo["admin"])
    page = client.get(reverse("monitor:run", args=[run.pk])).content.decode()
    assert "Supplier onboarding" in page and "contract_signed" in page
    assert reverse("monitor:run", args=[child.pk]) in page
    child_page = client.get(reverse("monitor:run", args=[child.pk])).content.decode()
    assert reverse("monitor:run", args=[run.pk]) in child_page

    # 4. The event arrives through the Python API: the wait completes with its data, the run goes on to its end.
    orchestration.send_event(run, "contract_signed", data={"signed_by": "J. Smith"}, user=demo["admin"])
    assert step(run, "contract_signed").outputs == {"signed_by": "J. Smith"}
    assert Timer.objects.get(pk=timer.pk).state == "canceled"
    assert step(run, "activate").outputs == {"status": "active"}
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert RunEvent.objects.filter(run=run, kind="event_received").count() == 1
    with pytest.raises(waits.NothingWaits):  # nothing waits any more
        orchestration.send_event(run, "contract_signed")


def test_no_contract_within_14_days_puts_the_supplier_on_hold(demo, django_capture_on_commit_callbacks):
    run = orchestration.launch("supplier_onboarding", inputs=SUPPLIER, user=demo["carol"])
    approved_by_two(run, demo, django_capture_on_commit_callbacks)
    assert waits.fire_due_timers(now=timezone.now() + timedelta(days=13)) == 0
    assert step(run, "contract_signed").status == "in_progress"
    assert waits.fire_due_timers(now=timezone.now() + timedelta(days=14, minutes=1)) == 1
    assert step(run, "contract_signed").outputs == {"timed_out": True}
    assert step(run, "activate").outputs == {"status": "on hold: no signed contract"}
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert waits.fire_due_timers(now=timezone.now() + timedelta(days=30)) == 0  # once


def test_a_supplier_not_cleared_by_compliance_ends_before_the_approvals(demo):
    run = orchestration.launch("supplier_onboarding", inputs={**SUPPLIER, "country": "KP"}, user=demo["carol"])
    assert step(run, "compliance").outputs == {"cleared": False, "risk": "medium"}
    run.refresh_from_db()
    assert run.status == "completed"
    assert not WorkItem.objects.filter(run=run).exists()


def test_the_dry_run_walks_the_supplier_path_both_ways_out_of_the_wait(demo, capsys):
    cleared = ["--outputs", 'compliance={"cleared": true, "risk": "low"}']
    call_command("simulate_orchestration", "supplier_onboarding", *cleared,
                 "--outputs", 'contract_signed={"signed_by": "J. Smith"}')
    signed = capsys.readouterr().out
    assert "runs orchestration supplier_compliance" in signed
    assert "×3 instances (at_least 2): 2 complete, 1 withdrawn" in signed
    assert "event contract_signed arrives" in signed and "Stage activation" in signed
    call_command("simulate_orchestration", "supplier_onboarding", *cleared, "--timeout", "contract_signed")
    timed_out = capsys.readouterr().out
    assert "its timeout fires (on_timeout: complete)" in timed_out and "Stage activation" in timed_out
    call_command("simulate_orchestration", "supplier_onboarding")
    assert "Stage approval" not in capsys.readouterr().out  # not cleared: the decision's default ends the run
