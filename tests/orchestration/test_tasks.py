"""The claim (``orchestration/worker.py``) on PostgreSQL (one statement) and on SQLite, and the tasks' connection reuse (``tasks.py``)."""
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from orchestration import engine, tasks, worker
from orchestration.models import RunEvent, StepRun
from tests.engine_builders import bg, noop_flow, orchestration
from tests.pg_locks import wait_until, waiting_on_a_lock
from tests.engine_builders import Recorder


def queued_step(timeout="45s"):
    noop_flow("claimable", inputs=[{"name": "n", "type": "number", "required": True}],
              outputs={"x": ("number", "n + 1.0")})
    orch = orchestration([{"name": "one", "steps": [bg("s", "claimable", timeout=timeout, inputs={"n": "41.0"})]}])
    sent = Recorder()
    run = engine.start_run(orch, effects=sent)
    return run, StepRun.objects.get(pk=sent.sent[0])


def check_claim(run, step):
    assert step.timeout_seconds == 45
    before = timezone.now()
    claimed = worker.claim(step.pk, "task-1")
    assert claimed is not None and claimed.pk == step.pk
    assert claimed.status == "running" and claimed.attempts == 1 and claimed.task_id == "task-1"
    assert claimed.run.orchestration_id == run.orchestration_id and claimed.run_id == run.pk
    assert claimed.inputs == {"n": 41} and claimed.stage_run_id == step.stage_run_id  # as the ORM reads them
    stored = StepRun.objects.get(pk=step.pk)
    assert (stored.status, stored.attempts, stored.task_id) == ("running", 1, "task-1")
    # The lease is the step's timeout plus the margin (30 s by default), from the claim.
    lease = (stored.lease_until - before).total_seconds()
    assert 45 + 30 - 1 <= lease <= 45 + 30 + 5
    event = RunEvent.objects.get(run=run, kind="step_running")
    assert (event.stage_name, event.step_name) == ("one", "s")
    assert event.data == {"attempt": 1, "task_id": "task-1", "redelivered": False}

    # A second copy of the message finds it claimed: nothing happens.
    assert worker.claim(step.pk, "task-2") is None
    assert RunEvent.objects.filter(run=run, kind="step_running").count() == 1
    # The same message redelivered after its worker died takes it back.
    again = worker.claim(step.pk, "task-1", redelivered=True)
    assert again is not None and again.attempts == 2
    assert RunEvent.objects.filter(run=run, kind="step_running").last().data["redelivered"] is True
    # A step that does not exist, or has finished, is not claimed.
    assert worker.claim(step.pk + 1000, "task-3") is None
    worker.execute_claimed(again)
    done = StepRun.objects.get(pk=step.pk)
    assert done.status == "completed" and done.outputs == {"x": 42}
    assert worker.claim(step.pk, "task-1", redelivered=True) is None


def test_claim_on_postgresql_is_one_statement(postgres_db, django_assert_num_queries):
    assert connection.vendor == "postgresql"
    run, step = queued_step()
    with django_assert_num_queries(1):  # and the statement runs once: it changes rows
        assert worker.claim(step.pk, "probe") is not None
    StepRun.objects.filter(pk=step.pk).update(status="queued", attempts=0, task_id="")
    RunEvent.objects.filter(kind="step_running").delete()
    check_claim(run, step)


@pytest.mark.django_db
def test_claim_on_sqlite_behaves_the_same():
    if connection.vendor != "sqlite":
        pytest.skip("the default database of this run is not SQLite")
    run, step = queued_step()
    check_claim(run, step)


def test_a_busy_worker_skips_the_health_check_until_idle_or_after_an_error():
    conn = mock.Mock(errors_occurred=False, close_at=None, in_atomic_block=False)
    with mock.patch.object(tasks, "close_old_connections") as close_old, \
            mock.patch.object(tasks.connections, "all", return_value=[conn]):
        tasks._last_task_ended[0] = float("-inf")
        tasks._recycle_connections()
        assert close_old.call_count == 1  # the first task: the full check
        tasks._note_task_ended()
        tasks._recycle_connections()
        assert close_old.call_count == 1  # just used and fine: no check
        conn.errors_occurred = True
        tasks._recycle_connections()
        assert close_old.call_count == 2  # a database error since: the full check
        conn.errors_occurred = False
        tasks._last_task_ended[0] -= tasks.BUSY_CONNECTION_SECONDS + 0.1
        tasks._recycle_connections()
        assert close_old.call_count == 3  # idle for over a second: the full check
        tasks._note_task_ended()
        conn.close_at = 0  # past its CONN_MAX_AGE
        tasks._recycle_connections()
        assert close_old.call_count == 4


def test_an_eager_task_inside_its_callers_transaction_keeps_the_connection():
    conn = mock.Mock(errors_occurred=True, close_at=0, in_atomic_block=True)
    with mock.patch.object(tasks, "close_old_connections") as close_old, \
            mock.patch.object(tasks.connections, "all", return_value=[conn]):
        tasks._last_task_ended[0] = float("-inf")
        tasks._recycle_connections()
        assert close_old.call_count == 0  # the caller's open transaction is left alone
        conn.in_atomic_block = False
        tasks._recycle_connections()
        assert close_old.call_count == 1


def test_lease_uses_the_copied_timeout_even_if_the_plan_is_unreadable(postgres_db):
    run, step = queued_step(timeout="45s")
    with mock.patch("orchestration.worker.Plan.load", side_effect=AssertionError("the claim read the plan")):
        claimed = worker.claim(step.pk, "t")
    assert claimed.lease_until > timezone.now() + timedelta(seconds=60)


@pytest.mark.parametrize("action", ["claim", "claim_redelivered", "retry", "sweep"])
def test_a_worker_change_meeting_a_transition_that_holds_the_run_waits_instead_of_deadlocking(postgres_db, action):
    """Deterministic: a transition (here the steps of cancel_run, by hand) holds the run's lock and is about
    to discontinue the step when a worker claims it. The claim must wait for the run before it takes the
    step. Before, the claim took the step, then waited for the run (its event's foreign key) while the
    transition waited for the step: PostgreSQL failed one of them with "deadlock detected"."""
    import threading

    from django.db import connections, transaction

    from orchestration.models import OrchestrationRun

    run, step = queued_step()
    if action != "claim":  # a running step: taken back by its redelivered message, retried, or swept
        StepRun.objects.filter(pk=step.pk).update(status="running", task_id="t-1",
                                                  lease_until=timezone.now() - timedelta(seconds=1))
        step.refresh_from_db()
    holding, go, results = threading.Event(), threading.Event(), {}

    def transition():
        try:
            with transaction.atomic():
                OrchestrationRun.objects.select_for_update(of=("self",)).get(pk=run.pk)  # the engine's run lock
                holding.set()
                assert go.wait(20)
                StepRun.objects.filter(pk=step.pk).update(status="discontinued", lease_until=None)
            results["transition"] = "done"
        except BaseException as exc:  # noqa: BLE001 - the test reads what each side got
            results["transition"] = exc
        finally:
            connections.close_all()

    def worker_side():
        try:
            if action.startswith("claim"):
                results["claim"] = worker.claim(step.pk, task_id="t-1", redelivered=action == "claim_redelivered")
            elif action == "retry":
                results["claim"] = worker.schedule_retry(step, "boom", "", delay=2)
            else:
                results["claim"] = worker.sweep_stuck_steps() or None
        except BaseException as exc:  # noqa: BLE001
            results["claim"] = exc
        finally:
            connections.close_all()


    first = threading.Thread(target=transition, daemon=True)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=worker_side, daemon=True)
    second.start()
    wait_until(lambda: waiting_on_a_lock(postgres_db))
    go.set()
    first.join(30)
    second.join(30)
    assert results["transition"] == "done"
    assert results["claim"] is None  # the step was discontinued under the run's lock: nothing to do
    step.refresh_from_db()
    assert step.status == "discontinued"
    assert not RunEvent.objects.filter(run=run, kind__in=["step_running", "step_retry_scheduled",
                                                          "step_resent"]).exists()


def test_one_retry_policy_for_both_execution_modes(settings):
    from types import SimpleNamespace

    settings.BATON_RETRY_BACKOFF = 2
    step = SimpleNamespace(retries=2)
    tried = [SimpleNamespace(attempts=n) for n in (1, 2, 3)]
    assert [worker.retry_delay(s, step) for s in tried] == [2, 4, None]
    assert [worker.retry_delay(s, step, in_process=True) for s in tried] == [0, 0, None]
    assert worker.retry_delay(SimpleNamespace(attempts=20), SimpleNamespace(retries=30)) == 300  # at most 5 minutes


@pytest.mark.django_db
def test_a_sweeper_job_that_fails_does_not_keep_the_timers_from_firing(settings):
    """The sweeper's jobs run in turn; one that raises (here the orphaned-children job) is logged, and
    the jobs after it, timers last, still run."""
    from orchestration import children, waits
    from orchestration.models import Timer

    settings.BATON_STEP_EXECUTION = "in_process"
    noop_flow("after_nap")
    orch = orchestration([{"name": "waiting", "steps": [{"name": "nap", "type": "wait", "for": "1m"}]},
                          {"name": "next", "steps": [bg("go", "after_nap")]}])
    run = engine.start_run(orch)
    Timer.objects.filter(run=run).update(due_at=timezone.now() - timedelta(seconds=1))
    with mock.patch.object(children, "sweep_orphaned_children", side_effect=RuntimeError("broken job")):
        done = tasks.sweep()
    assert done["children_canceled"] == "error"
    assert done["timers"] == 1
    assert StepRun.objects.get(run=run, step_name="nap").status == "completed"
    assert waits.fire_due_timers() == 0  # fired once
