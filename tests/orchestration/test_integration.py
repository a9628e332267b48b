"""The real parts together: a Celery worker on a private Redis, a private PostgreSQL.

These tests commit for real (``postgres_db``) so worker processes see the rows.
"""
import contextlib
import multiprocessing
import os
import signal
import time

import pytest

pytestmark = [pytest.mark.services, pytest.mark.slow]


@contextlib.contextmanager
def publishing_to(broker_url):
    """Point this process's Celery app at ``broker_url`` (the project default is the file-system broker)."""
    from config.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = str(broker_url)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    _reset_pools(app)
    try:
        yield app
    finally:
        _reset_pools(app)
        app.conf.broker_url, app.conf.broker_transport_options = saved


def _reset_pools(app):
    """Forget cached broker connections and producers so the next send uses the current URL."""
    from kombu import pools

    pools.reset()  # kombu keeps producer pools per connection URL, process-wide
    app._pool = None
    app.amqp._producer_pool = None


def wait_for(predicate, timeout=60, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def onboarding_definitions():
    from tests.engine_builders import active_flow, orchestration

    active_flow(api_name="mark_accounts", type="autolaunched",
                inputs=[{"name": "employee_id", "type": "number", "required": True}],
                outputs=[{"name": "done", "type": "boolean"}],
                elements=[
                    {"type": "update_records", "model": "demo.employee", "filter": {"id": "int(employee_id)"},
                     "values": {"accounts_created": "true"}, "into": "count"},
                    {"type": "assign", "set": {"done": "count == 1"}},
                ])
    active_flow(api_name="noop_bg", type="autolaunched", elements=[])
    return orchestration(
        [
            {"name": "prepare", "steps": [
                {"name": "accounts", "type": "background", "flow": "mark_accounts",
                 "inputs": {"employee_id": "record.id"}},
                {"name": "badge", "type": "background", "flow": "noop_bg"},
            ]},
            {"type": "decision", "name": "ok", "outcomes": [
                {"name": "yes", "condition": "steps.accounts.outputs.done", "goto": "finish"}], "default": "end"},
            {"name": "finish", "steps": [{"name": "wrap", "type": "background", "flow": "noop_bg"}]},
        ],
        api_name="onboard_it",
        start={"type": "record_triggered", "model": "demo.employee", "when": "created",
               "condition": 'record.status == "hired"'},
    )


@pytest.mark.parametrize("starts", ["on_commit", "worker"])
def test_record_created_runs_background_steps_on_a_real_worker(postgres_db, redis_server, celery_worker_process,
                                                                settings, starts):
    """Either way a record-triggered run starts (here, or on the worker) and its steps run on the worker."""
    from demo.models import Employee
    from orchestration import triggers
    from orchestration.models import OrchestrationRun, PendingStart, RunEvent

    settings.BATON_RECORD_STARTS = starts
    onboarding_definitions()
    triggers.definitions_changed()
    celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=2,
                          env={"BATON_RECORD_STARTS": starts})
    from unittest import mock

    # In "worker" mode this process must not start the run itself: only the worker can have.
    here = mock.patch("orchestration.engine.start_run", side_effect=AssertionError("started in the saving process"))
    with publishing_to(redis_server), (here if starts == "worker" else contextlib.nullcontext()):
        employee = Employee.objects.create(first_name="Ada", last_name="L", email="ada@example.com", status="hired")
        Employee.objects.create(first_name="Not", last_name="Hired", email="n@example.com", status="left")
        run = wait_for(lambda: OrchestrationRun.objects.filter(record_pk=str(employee.pk)).first(), what="run start")
        wait_for(lambda: OrchestrationRun.objects.get(pk=run.pk).status != "running", timeout=60, what="run end")
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert OrchestrationRun.objects.count() == 1  # the second employee did not meet the condition
    employee.refresh_from_db()
    assert employee.accounts_created is True
    stages = list(run.stage_runs.order_by("id").values_list("stage_name", flat=True))
    assert stages == ["prepare", "finish"]
    assert RunEvent.objects.filter(run=run, kind="step_running").count() == 3
    assert not PendingStart.objects.exists()


def _complete_in_child(database_url, step_run_id, barrier, results, how="locked", run_id=None):
    """A separate process finishing one step: its own connection to the test's PostgreSQL database.

    The database is named explicitly rather than inherited through the fork:
    which connection a forked thread-local holds depends on what ran earlier
    in the session (a Playwright test leaves greenlets behind).
    """
    from django.db import connections

    from tests.servers import django_default_database

    connections.close_all()
    from orchestration import engine, worker
    from tests.engine_builders import Recorder

    with django_default_database(database_url):
        barrier.wait()
        if how == "counted":  # what a worker calls: one statement, the lock only for the last step
            results.put(worker.complete_background_step(step_run_id, {}, run_id=run_id, effects=Recorder()))
        else:
            results.put(engine.complete_step(step_run_id, {}, effects=Recorder()))
    connections.close_all()


@pytest.mark.parametrize("hows", [("locked", "locked"), ("counted", "counted"), ("counted", "locked")])
def test_parallel_completions_advance_the_stage_exactly_once(postgres_db, hows):
    """Two processes finish the two parallel steps of a run at the same instant, many times over.

    Both under the run's lock (``complete_step``), both counted (a worker's
    ``complete_background_step``), or one of each.
    """
    from django.db import connections

    from orchestration import engine
    from orchestration.models import RunEvent, StageRun, StepRun
    from tests.engine_builders import noop_flow, orchestration
    from tests.engine_builders import Recorder

    noop_flow("p")
    orch = orchestration([
        {"name": "one", "steps": [{"name": "a", "type": "background", "flow": "p"},
                                  {"name": "b", "type": "background", "flow": "p"}]},
        {"name": "two", "steps": [{"name": "c", "type": "background", "flow": "p"}]},
    ])
    ctx = multiprocessing.get_context("fork")
    rounds = int(os.environ.get("BATON_PARALLEL_ROUNDS", "25"))  # more in a stress run
    for _ in range(rounds):
        run = engine.start_run(orch, effects=Recorder())
        steps = list(StepRun.objects.filter(run=run).order_by("step_name").values_list("id", flat=True))
        connections.close_all()
        barrier, results = ctx.Barrier(2), ctx.Queue()
        children = [ctx.Process(target=_complete_in_child, args=(postgres_db.url, i, barrier, results, how, run.pk))
                    for i, how in zip(steps, hows)]
        for child in children:
            child.start()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        assert sorted(results.get(timeout=5) for _ in children) == [True, True]
        assert StageRun.objects.filter(run=run, stage_name="two").count() == 1
        assert RunEvent.objects.filter(run=run, kind="stage_completed").count() == 1
        assert StepRun.objects.get(run=run, step_name="c").status == "queued"
        assert StageRun.objects.get(run=run, stage_name="one").open_steps == 0
        assert StageRun.objects.get(run=run, stage_name="two").open_steps == 1


def test_worker_killed_mid_step_runs_the_step_again(postgres_db, redis_server, celery_worker_process, tmp_path):
    from orchestration import engine
    from orchestration.models import RunEvent, StepRun
    from tests.engine_builders import active_flow, orchestration

    marker = tmp_path / "started"
    active_flow(api_name="slow", type="autolaunched",
                inputs=[{"name": "marker", "type": "text", "required": True}],
                outputs=[{"name": "pid", "type": "number"}],
                elements=[{"type": "action", "action": "test_slow_once", "inputs": {"marker": "marker", "seconds": "60.0"}}])
    orch = orchestration([{"name": "one", "steps": [
        {"name": "slow", "type": "background", "flow": "slow", "inputs": {"marker": f'"{marker}"'}}]}])
    worker = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1,
                                   env={"BATON_ACTION_MODULES": "tests.worker_actions"})
    with publishing_to(redis_server):
        run = engine.start_run(orch)
        wait_for(marker.exists, timeout=30, what="the step to start on the worker")
        killed = worker.kill(signal.SIGKILL, child=True)
        step = wait_for(lambda: StepRun.objects.filter(run=run, status="completed").first(), timeout=60,
                        what="the step to run again and complete")
    run.refresh_from_db()
    assert run.status == "completed"
    assert step.outputs["pid"] != killed
    attempts = RunEvent.objects.filter(run=run, kind="step_running").order_by("id")
    assert attempts.count() == 2
    assert attempts.last().data["redelivered"] is True
