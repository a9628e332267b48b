"""A pure step runs on receipt (``worker.run_on_receipt``): no claim, completed by compare-and-set from ``queued``.

On PostgreSQL, a background step whose flow cannot write gets a message that
carries what the worker needs; the worker runs the flow and completes the
step in one statement (the stage's last step under the run's lock, as
before). A message of an earlier queueing, a duplicate and a failed attempt
are the cases the claim used to settle; each is checked here.
"""
import pytest
from django.utils import timezone

from orchestration import engine, worker
from orchestration.models import RunEvent, StepRun
from tests.engine_builders import active_flow, bg, noop_flow, orchestration


def pure_stage(width=3, expression="n + 1.0"):
    noop_flow("pure", inputs=[{"name": "n", "type": "number", "required": True}],
              outputs={"x": ("number", expression)})
    return orchestration([
        {"name": "one", "steps": [bg(f"s{i}", "pure", inputs={"n": f"{i}.0"}) for i in range(width)]},
        {"name": "two", "steps": [bg("t", "pure", inputs={"n": "9.0"})]},
    ])


def kinds(run, step):
    return list(RunEvent.objects.filter(run=run, step_name=step).order_by("id").values_list("kind", flat=True))


def test_a_pure_step_runs_on_receipt_and_completes_in_one_statement(postgres_db, sent, django_assert_num_queries):
    run = engine.start_run(pure_stage())
    assert [receipt is not None for _, receipt in sent] == [True, True, True]
    step_id, receipt = sent[0]
    assert receipt["inputs"] == {"n": 0} and receipt["run"] == run.pk and receipt["step"] == "s0"
    before = timezone.now()
    with django_assert_num_queries(1):  # the flow ran from the message; one statement completes it
        assert worker.run_on_receipt(step_id, receipt, "task-1") == "completed"
    step = StepRun.objects.get(pk=step_id)
    assert (step.status, step.attempts, step.task_id, step.outputs) == ("completed", 1, "task-1", {"x": 1})
    assert kinds(run, "s0") == ["step_queued", "step_running", "step_completed"]
    running = RunEvent.objects.get(run=run, step_name="s0", kind="step_running")
    assert running.data == {"attempt": 1, "task_id": "task-1", "on_receipt": True}
    assert running.at >= before and running.stage_name == "one"
    # The others: the stage's last step completes under the run's lock and moves the run on.
    for step_id, receipt in sent[1:3]:
        assert worker.run_on_receipt(step_id, receipt, "task-2") == "completed"
    assert kinds(run, "s2") == ["step_queued", "step_running", "step_completed"]
    assert StepRun.objects.get(pk=sent[2][0]).attempts == 1
    step_id, receipt = sent[3]
    assert receipt["step"] == "t"
    assert worker.run_on_receipt(step_id, receipt, "task-3") == "completed"
    run.refresh_from_db()
    assert run.status == "completed"
    assert StepRun.objects.filter(run=run, status="completed").count() == 4


def test_nothing_is_written_before_the_completion_so_a_lost_worker_leaves_the_step_queued(postgres_db, sent):
    """The lease while the flow runs is the broker's (the message is acknowledged late); the row stays
    queued with its queued lease, which the sweeper honours: a worker that dies mid-step loses nothing."""
    run = engine.start_run(pure_stage(width=1))
    step_id, receipt = sent[0]
    before = StepRun.objects.get(pk=step_id)
    assert (before.status, before.attempts) == ("queued", 0)
    StepRun.objects.filter(pk=step_id).update(lease_until=timezone.now())  # the worker died; the lease ran out
    sent.clear()
    assert worker.sweep_stuck_steps() == 1
    assert sent == [(step_id, None)]  # re-sent as a plain message: the next worker claims it
    claimed = worker.claim(step_id, "task-2")
    assert worker.execute_claimed(claimed) == "completed"
    assert kinds(run, "s0") == ["step_queued", "step_resent", "step_running", "step_completed"]


@pytest.mark.parametrize("width", [3, 1], ids=["counted", "last-step"])
def test_a_message_of_an_earlier_queueing_completes_nothing(postgres_db, sent, width):
    """An operator's retry queues the step again with new inputs: a message sent for the earlier
    queueing still in the broker runs the old inputs, and its completion is ignored."""
    run = engine.start_run(pure_stage(width=width))
    step_id, receipt = sent[0]
    StepRun.objects.filter(pk=step_id).update(queued_at=timezone.now())  # queued again since
    assert worker.run_on_receipt(step_id, receipt, "stale") == "completed"  # ran, and completed nothing
    step = StepRun.objects.get(pk=step_id)
    assert (step.status, step.attempts, step.task_id) == ("queued", 0, "")
    assert kinds(run, "s0") == ["step_queued", "completion_ignored"]


def test_a_duplicate_message_finds_the_step_completed(postgres_db, sent):
    run = engine.start_run(pure_stage())
    step_id, receipt = sent[0]
    worker.run_on_receipt(step_id, receipt, "task-1")
    worker.run_on_receipt(step_id, receipt, "task-1")  # the same message again
    assert kinds(run, "s0") == ["step_queued", "step_running", "step_completed", "completion_ignored"]
    assert StepRun.objects.get(pk=step_id).attempts == 1


def test_a_failed_pure_attempt_takes_the_claim_and_the_retry_policy(postgres_db, sent):
    run = engine.start_run(pure_stage(width=1, expression="double(int(\"x\"))"))
    step_id, receipt = sent[0]
    sent.clear()
    assert worker.run_on_receipt(step_id, receipt, "task-1") == "retrying"
    step = StepRun.objects.get(pk=step_id)
    assert (step.status, step.attempts) == ("queued", 1)
    assert kinds(run, "s0") == ["step_queued", "step_running", "step_retry_scheduled"]
    assert sent == [(step_id, None)]  # the retry goes as a plain message: its attempt is claimed first


def test_a_step_whose_flow_can_write_is_claimed_first(postgres_db, sent):
    active_flow(api_name="writes", type="autolaunched",
                elements=[{"type": "action", "action": "no_such_action_needed_here", "inputs": {}}])
    noop_flow("pure")
    engine.start_run(orchestration([{"name": "one", "steps": [bg("w", "writes"), bg("p", "pure")]}]))
    receipts = {StepRun.objects.get(pk=i).step_name: r for i, r in sent}
    assert receipts["w"] is None and receipts["p"] is not None


def test_a_message_for_a_deleted_run_does_nothing(postgres_db, sent):
    run = engine.start_run(pure_stage(width=1))
    step_id, receipt = sent[0]
    run.delete()
    assert worker.run_on_receipt(step_id, receipt, "late") == "skipped"
    assert not StepRun.objects.filter(pk=step_id).exists()
