"""Instances of a multi-instance step whose flow cannot write run on receipt, as pure steps do.

On PostgreSQL an instance's message carries what the worker needs
(``worker.receipt_of``, with ``instance``); the worker runs the flow without
a claim and completes the instance by compare-and-set from ``queued`` for
that queueing (``instances._COMPLETE_INSTANCE_SQL`` with ``on_receipt``): one
statement while the completion cannot meet the step's rule, else under the
run's lock, where ``engine.complete_step`` checks the receipt. What the claim
settled (a duplicate, a message of an earlier queueing, a discontinued
instance, a failed attempt) is checked here, and the concurrency test of
``test_instances_pg.py`` is repeated on this path.
"""
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration import engine, worker
from orchestration.models import OrchestrationRun, RunEvent, StepRun
from tests.engine_builders import bg, noop_flow, orchestration


def fan(n, completion="all", expression="n", **extra):
    flow = noop_flow(inputs=[{"name": "n", "type": "number"}], outputs={"v": ("number", expression)})
    return orchestration([
        {"name": "fan", "steps": [bg("each", flow.api_name, for_each=str(list(range(n))), inputs={"n": "double(item)"},
                                    completion=completion, **extra)]},
        {"name": "after", "steps": [bg("next", flow.api_name, inputs={"n": "1.0"})]},
    ])


def instance_messages(sent):
    """``{instance index: (id, receipt)}`` of the instance messages sent so far."""
    rows = dict(StepRun.objects.filter(pk__in=[i for i, _ in sent], instance_index__isnull=False)
                .values_list("pk", "instance_index"))
    return {rows[i]: (i, r) for i, r in sent if i in rows}


def events(run, index):
    return [(e.kind, e.data) for e in RunEvent.objects.filter(run=run, step_name="each", data__instance=index)
            .order_by("id")]


def parent(run):
    return StepRun.objects.get(run=run, step_name="each", instance_index__isnull=True)


def test_instances_run_on_receipt_and_complete_in_one_statement_each(postgres_db, sent, django_assert_num_queries):
    run = engine.start_run(fan(3))
    messages = instance_messages(sent)
    assert sorted(messages) == [0, 1, 2]
    step_id, receipt = messages[0]
    assert receipt["instance"] == 0 and receipt["inputs"] == {"n": 0} and receipt["step"] == "each"
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        assert worker.run_on_receipt(step_id, receipt, "task-0") == "completed"
    assert len(queries.captured_queries) == 1  # no claim: the flow ran from the message, one statement completes it
    assert "instances_to_go - 1" in queries.captured_queries[0]["sql"]  # instances._COMPLETE_INSTANCE_SQL
    row = StepRun.objects.get(pk=step_id)
    assert (row.status, row.attempts, row.task_id, row.outputs) == ("completed", 1, "task-0", {"v": 0})
    assert parent(run).instances_to_go == 2
    # The journal reads as the claimed path's: queued, running (attempt 1, at receipt), completed; each with its index.
    assert events(run, 0) == [
        ("step_queued", {"instance": 0}),
        ("step_running", {"attempt": 1, "task_id": "task-0", "on_receipt": True, "instance": 0}),
        ("step_completed", {"outputs": {"v": 0}, "instance": 0}),
    ]
    running = RunEvent.objects.get(run=run, kind="step_running", data__instance=0)
    assert before <= running.at <= row.ended_at and running.stage_name == "fan"
    with django_assert_num_queries(1):
        assert worker.run_on_receipt(*messages[1], "task-1") == "completed"
    # The third meets the rule: refused by the statement, completed under the run's lock with the step.
    assert worker.run_on_receipt(*messages[2], "task-2") == "completed"
    step = parent(run)
    assert step.status == "completed" and step.outputs == [{"v": 0}, {"v": 1}, {"v": 2}]
    assert [k for k, _ in events(run, 2)] == ["step_queued", "step_running", "step_completed"]
    assert StepRun.objects.get(pk=messages[2][0]).attempts == 1
    assert RunEvent.objects.filter(run=run, kind="step_running", step_name="each").count() == 3
    (next_id, next_receipt), = [(i, r) for i, r in sent if r and r["step"] == "next"]
    assert "instance" not in next_receipt
    assert worker.run_on_receipt(next_id, next_receipt, "task-3") == "completed"
    assert OrchestrationRun.objects.get(pk=run.pk).status == "completed"


def test_the_rule_meeting_instance_goes_under_the_lock_and_discontinues_the_rest(postgres_db, sent):
    run = engine.start_run(fan(4, completion={"at_least": 2}))
    messages = instance_messages(sent)
    assert worker.run_on_receipt(*messages[0], "t0") == "completed"
    assert worker.run_on_receipt(*messages[2], "t2") == "completed"  # meets at_least 2
    step = parent(run)
    assert step.status == "completed" and step.outputs == [{"v": 0}, None, {"v": 2}, None]
    assert RunEvent.objects.filter(run=run, kind="step_exit_condition_met", step_name="each").count() == 1
    statuses = dict(StepRun.objects.filter(run=run, instance_index__isnull=False).values_list("instance_index", "status"))
    assert statuses == {0: "completed", 1: "discontinued", 2: "completed", 3: "discontinued"}
    # The messages of the discontinued instances run their flow and complete nothing, without taking the lock.
    ignored_before = RunEvent.objects.filter(run=run).count()
    with CaptureQueriesContext(connection) as queries:
        assert worker.run_on_receipt(*messages[1], "t1") == "skipped"
    assert len(queries.captured_queries) == 1
    assert worker.run_on_receipt(*messages[3], "t3") == "skipped"
    assert RunEvent.objects.filter(run=run).count() == ignored_before
    rows = dict(StepRun.objects.filter(run=run, instance_index__in=[1, 3]).values_list("instance_index", "status"))
    assert rows == {1: "discontinued", 3: "discontinued"}
    assert StepRun.objects.get(run=run, instance_index=1).attempts == 0


@pytest.mark.parametrize("completion", ["all", "any"], ids=["counted", "meets-the-rule"])
def test_a_duplicate_message_completes_nothing(postgres_db, sent, completion):
    run = engine.start_run(fan(2, completion=completion))
    messages = instance_messages(sent)
    assert worker.run_on_receipt(*messages[0], "t0") == "completed"
    assert worker.run_on_receipt(*messages[0], "t0") == "skipped"  # the same message again
    row = StepRun.objects.get(pk=messages[0][0])
    assert (row.status, row.attempts) == ("completed", 1)
    assert [k for k, _ in events(run, 0)] == ["step_queued", "step_running", "step_completed"]
    assert parent(run).status == ("in_progress" if completion == "all" else "completed")


@pytest.mark.parametrize("completion", ["all", "any"], ids=["counted", "meets-the-rule"])
def test_a_message_of_an_earlier_queueing_completes_nothing(postgres_db, sent, completion):
    """An operator's retry queues the instance again: a message sent for the earlier queueing still in the
    broker finds another ``queued_at``, in the statement and (for the rule-meeting one) under the lock."""
    run = engine.start_run(fan(2, completion=completion))
    messages = instance_messages(sent)
    step_id, receipt = messages[0]
    StepRun.objects.filter(pk=step_id).update(queued_at=timezone.now() + timedelta(seconds=1))
    assert worker.run_on_receipt(step_id, receipt, "stale") == "skipped"
    row = StepRun.objects.get(pk=step_id)
    assert (row.status, row.attempts, row.task_id) == ("queued", 0, "")
    assert [k for k, _ in events(run, 0)] == ["step_queued"]
    assert parent(run).status == "in_progress"


def test_the_lock_honours_the_receipt_of_an_instance(postgres_db, sent):
    """``engine.complete_step`` with a receipt: the fallback when the statement cannot be used. A stale
    receipt and a discontinued instance complete nothing; a valid one writes the attempt and its event."""
    run = engine.start_run(fan(3, completion="any"))
    messages = instance_messages(sent)
    ids = {index: step_id for index, (step_id, _) in messages.items()}
    queued_at = StepRun.objects.get(pk=ids[0]).queued_at
    stale = worker.Receipt(queued_at=queued_at - timedelta(seconds=1), task_id="old", at=timezone.now())
    assert engine.complete_step(ids[0], {"v": 9}, source="worker", receipt=stale) is False
    assert StepRun.objects.get(pk=ids[0]).status == "queued"
    assert RunEvent.objects.get(run=run, kind="completion_ignored").data == {"status": "queued", "source": "worker"}
    mark = worker.Receipt(queued_at=queued_at, task_id="t0", at=timezone.now())
    assert engine.complete_step(ids[0], {"v": 0}, source="worker", receipt=mark) is True
    assert events(run, 0)[1] == ("step_running", {"attempt": 1, "task_id": "t0", "on_receipt": True, "instance": 0})
    assert StepRun.objects.get(pk=ids[0]).attempts == 1
    late = StepRun.objects.get(pk=ids[1])
    assert late.status == "discontinued"
    mark = worker.Receipt(queued_at=late.queued_at, task_id="t1", at=timezone.now())
    assert engine.complete_step(late.pk, {"v": 1}, source="worker", receipt=mark) is False
    late.refresh_from_db()
    assert (late.status, late.attempts) == ("discontinued", 0)


def test_a_sequential_steps_instances_run_on_receipt_and_complete_under_the_lock(postgres_db, sent):
    run = engine.start_run(fan(3, sequential=True))
    for index in range(3):
        messages = instance_messages(sent)
        assert sorted(messages) == list(range(index + 1))  # the next one is sent only when this one completes
        step_id, receipt = messages[index]
        assert receipt["instance"] == index
        with CaptureQueriesContext(connection) as queries:
            assert worker.run_on_receipt(step_id, receipt, f"t{index}") == "completed"
        assert not [q for q in queries.captured_queries if "instances_to_go - 1" in q["sql"]]  # no statement: the lock
        assert [k for k, _ in events(run, index)][:3] == ["step_queued", "step_running", "step_completed"]
        assert worker.run_on_receipt(step_id, receipt, f"t{index}") == "skipped"  # a duplicate: ignored under the lock
    assert parent(run).outputs == [{"v": 0}, {"v": 1}, {"v": 2}]
    assert RunEvent.objects.filter(run=run, kind="completion_ignored", step_name="each").count() == 3


def test_an_instance_whose_flow_fails_on_receipt_is_claimed_and_retried(postgres_db, sent):
    run = engine.start_run(fan(2, expression='double(int("x"))', retries=1))
    messages = instance_messages(sent)
    step_id, receipt = messages[1]
    sent.clear()
    assert worker.run_on_receipt(step_id, receipt, "t1") == "retrying"
    row = StepRun.objects.get(pk=step_id)
    assert (row.status, row.attempts) == ("queued", 1)
    assert [k for k, _ in events(run, 1)] == ["step_queued", "step_running", "step_retry_scheduled"]
    assert events(run, 1)[1][1] == {"attempt": 1, "task_id": "t1", "redelivered": False, "instance": 1}
    assert sent == [(step_id, None)]  # the retry goes as a plain message: its attempt is claimed first
    assert worker.execute_claimed(worker.claim(step_id, "t1b")) == "error"
    assert StepRun.objects.get(pk=step_id).status == "error"
    assert parent(run).status == "error"


N = 50


def run_all_at_once(messages):
    barrier = threading.Barrier(len(messages))
    results = {}

    def body(step_run_id, receipt):
        try:
            barrier.wait(30)
            results[step_run_id] = worker.run_on_receipt(step_run_id, receipt, f"task-{step_run_id}")
        except BaseException as exc:  # noqa: BLE001 — the test reports what each thread got
            results[step_run_id] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=m, daemon=True) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


@pytest.mark.parametrize("completion", ["all", {"at_least": 10}])
def test_fifty_instances_run_on_receipt_at_once_advance_the_step_exactly_once(postgres_db, sent, completion):
    run = engine.start_run(fan(N, completion=completion))
    messages = list(instance_messages(sent).values())
    assert len(messages) == N and all(r is not None for _, r in messages)
    results = run_all_at_once(messages)
    assert [r for r in results.values() if isinstance(r, BaseException)] == []
    step = parent(run)
    assert step.status == "completed"
    assert RunEvent.objects.filter(run=run, kind="step_exit_condition_met", step_name="each").count() == 1
    assert RunEvent.objects.filter(run=run, kind="step_completed", step_name="each",
                                   data__instance__isnull=True).count() == 1
    assert RunEvent.objects.filter(run=run, kind="stage_completed", stage_name="fan").count() == 1
    assert StepRun.objects.filter(run=run, step_name="next").count() == 1
    statuses = list(StepRun.objects.filter(run=run, instance_index__isnull=False).values_list("status", flat=True))
    completed = statuses.count("completed")
    assert list(results.values()).count("completed") == completed
    # Each completed instance: one attempt, one running event; none was ever claimed.
    assert RunEvent.objects.filter(run=run, kind="step_running", step_name="each",
                                   data__on_receipt=True).count() == completed
    assert set(StepRun.objects.filter(run=run, status="completed", instance_index__isnull=False)
               .values_list("attempts", flat=True)) == {1}
    if completion == "all":
        assert completed == N
    else:
        assert completed >= 10 and completed + statuses.count("discontinued") == N
        assert list(results.values()).count("skipped") == N - completed
    assert len(step.outputs) == N and sum(1 for o in step.outputs if o is not None) == completed
    assert step.instances_to_go == 0
    assert OrchestrationRun.objects.get(pk=run.pk).status == "running"


def test_an_operators_retry_and_a_resume_send_instances_with_their_receipt(postgres_db, sent):
    """Every place that queues an instance sends it with its receipt: the step's start, an operator's retry
    of the failed instances (a new queueing: the earlier message is stale), a resumed run's next
    sequential instance."""
    from orchestration import waits

    run = engine.start_run(fan(2))
    messages = instance_messages(sent)
    failed_id, old_receipt = messages[1]
    assert worker.run_on_receipt(*messages[0], "t0") == "completed"
    engine.fail_step(failed_id, "boom")  # its retries used up
    assert parent(run).status == "error"
    sent.clear()
    engine.retry_step(run.pk, "each")
    (retried_id, receipt), = sent
    assert retried_id == failed_id and receipt["instance"] == 1 and receipt["queued_at"] != old_receipt["queued_at"]
    assert worker.run_on_receipt(failed_id, old_receipt, "old") == "skipped"  # the earlier queueing's message
    assert StepRun.objects.get(pk=failed_id).status == "queued"
    assert worker.run_on_receipt(failed_id, receipt, "new") == "completed"
    assert parent(run).outputs == [{"v": 0}, {"v": 1}]

    sent.clear()
    run = engine.start_run(fan(2, sequential=True))
    (first_id, first), = instance_messages(sent).values()
    waits.pause_run(run.pk, reason="hold")
    assert worker.run_on_receipt(first_id, first, "t0") == "completed"  # what was queued finishes while paused
    assert list(instance_messages(sent)) == [0]  # the next one waits for the resume
    waits.resume_run(run.pk, reason="go")
    second_id, second = instance_messages(sent)[1]
    assert second["instance"] == 1
    assert worker.run_on_receipt(second_id, second, "t1") == "completed"
    assert parent(run).status == "completed"
