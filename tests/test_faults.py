"""The fault suite (``make test-faults``): Baton under broker, worker and database failures.

Every test here runs real processes: a private PostgreSQL (``postgres_db``:
committed rows that worker processes see), a private Redis, and real
``celery worker`` processes started and killed by the test. Each is bounded
in time and cleans up after itself (the fixtures stop every process they
started).

Each test prints the figure it measured (``pytest -s`` shows them) and adds
it to ``test-output/fault-figures.json``; ``docs/operations.md`` quotes them.
"""
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.services import REPO
from tests.test_integration import _reset_pools, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.services, pytest.mark.slow]

ACTIONS = "tests.fault_actions"
FIGURES = REPO / "test-output" / "fault-figures.json"


def record_figure(name, value, unit):
    """Print a measured figure and keep it in test-output/fault-figures.json."""
    print(f"\n[fault figure] {name}: {value:.2f} {unit}")
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        figures = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        figures = {}
    figures[name] = {"value": round(value, 3), "unit": unit, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def publishing_to(broker_url):
    """Point this process's Celery app at a private Redis with the transport options production uses
    (``CELERY_BROKER_TRANSPORT_OPTIONS`` for a Redis URL, including the fail-fast publishing options)."""
    from django.conf import settings

    from config.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = str(broker_url)
    app.conf.broker_transport_options = {"visibility_timeout": 3600, **settings.BATON_BROKER_FAIL_FAST_OPTIONS}
    _reset_pools(app)
    try:
        yield app
    finally:
        _reset_pools(app)
        app.conf.broker_url, app.conf.broker_transport_options = saved


@pytest.fixture(autouse=True)
def _actions_loaded():
    """The flows below name the fault actions; register them in this process too."""
    import tests.fault_actions  # noqa: F401


def parallel_orchestration(stages=2, width=2, api_name=None, step_extra=None, **extra):
    """An orchestration of ``stages`` stages, each with ``width`` parallel background no-op steps."""
    from tests.engine_builders import noop_flow, orchestration

    flow = noop_flow()
    path = [
        {"name": f"s{i}", "steps": [
            {"name": f"s{i}_p{j}", "type": "background", "flow": flow.api_name, **(step_extra or {})}
            for j in range(width)]}
        for i in range(stages)
    ]
    return orchestration(path, api_name=api_name, **extra)


def ended_runs(run_ids):
    from orchestration.models import OrchestrationRun

    return OrchestrationRun.objects.filter(pk__in=run_ids).exclude(status="running").count()


# ---------------------------------------------------------------------------
# 2. Broker outage at record save
# ---------------------------------------------------------------------------

def test_broker_outage_at_record_save(postgres_db, make_redis_server, celery_worker_process, settings):
    """Redis is down when a record is saved: the save commits and its run starts with the steps
    queued; when Redis comes back the sweeper re-sends them and the run completes."""
    from demo.models import Employee
    from orchestration import triggers
    from orchestration.models import OrchestrationRun, RunEvent, StepRun

    settings.BATON_QUEUED_LEASE = 3  # the lease this process gives the steps it queues
    redis = make_redis_server()
    parallel_orchestration(stages=2, width=2, api_name="outage_onboard", start={
        "type": "record_triggered", "model": "demo.employee", "when": "created"})
    triggers.definitions_changed()
    worker = celery_worker_process(database_url=postgres_db.url, broker_url=redis, beat=True, concurrency=2,
                                   env={"BATON_SWEEP_INTERVAL": "2", "BATON_QUEUED_LEASE": "3"})
    with publishing_to(redis):
        redis.server.stop()
        started = time.monotonic()
        employee = Employee.objects.create(first_name="Bo", last_name="Down", email="bo@example.com", status="hired")
        save_seconds = time.monotonic() - started
        record_figure("broker_down_save_seconds", save_seconds, "s")
        assert save_seconds < 3, f"saving a record with the broker down took {save_seconds:.1f}s"

        run = OrchestrationRun.objects.get(record_model="demo.employee", record_pk=str(employee.pk))
        assert run.status == "running"
        assert sorted(StepRun.objects.filter(run=run).values_list("status", flat=True)) == ["queued", "queued"]
        time.sleep(4)  # the outage lasts past the lease: nothing can run
        assert StepRun.objects.filter(run=run, status="queued").count() == 2

        redis.server.start()  # same port
        back = time.time()
        wait_for(lambda: OrchestrationRun.objects.get(pk=run.pk).status != "running", timeout=90,
                 what="the run to complete after Redis came back")
    run.refresh_from_db()
    assert run.status == "completed", run.error
    last_done = max(StepRun.objects.filter(run=run).values_list("ended_at", flat=True))
    recovery = last_done.timestamp() - back
    record_figure("broker_return_to_last_step_seconds", recovery, "s")
    assert RunEvent.objects.filter(run=run, kind="step_resent").count() >= 2
    assert StepRun.objects.filter(run=run, status="completed").count() == 4
    assert recovery < 30, worker.log()[-3000:]


# ---------------------------------------------------------------------------
# 3. Worker death
# ---------------------------------------------------------------------------
# tests/test_integration.py::test_worker_killed_mid_step_runs_the_step_again kills
# the pool process running a step (the message comes back through
# reject_on_worker_lost). Here the whole worker dies, as a machine would: the
# message stays unacknowledged in Redis and only the sweeper can rescue it.

def test_whole_worker_killed_mid_step_sweeper_runs_it_again(postgres_db, redis_server, celery_worker_process,
                                                           tmp_path, settings):
    from orchestration import engine
    from orchestration.models import RunEvent, StepRun
    from tests.engine_builders import active_flow, noop_flow, orchestration

    settings.BATON_QUEUED_LEASE = 3
    marker = tmp_path / "started"
    active_flow(api_name="fault_slow", type="autolaunched",
                inputs=[{"name": "marker", "type": "text", "required": True}],
                outputs=[{"name": "pid", "type": "number"}],
                elements=[{"type": "action", "action": "fault_sleep_once",
                           "inputs": {"marker": "marker", "seconds": "120.0"}}])
    noop_flow("fault_after")
    orch = orchestration([
        {"name": "work", "steps": [{"name": "slow", "type": "background", "flow": "fault_slow", "timeout": "2s",
                                    "inputs": {"marker": f'"{marker}"'}}]},
        {"name": "then", "steps": [{"name": "after", "type": "background", "flow": "fault_after"}]},
    ])
    env = {"BATON_ACTION_MODULES": ACTIONS, "BATON_LEASE_MARGIN": "1", "BATON_QUEUED_LEASE": "3",
           "BATON_SWEEP_INTERVAL": "2"}
    doomed = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1, env=env)
    with publishing_to(redis_server):
        run = engine.start_run(orch)
        wait_for(marker.exists, timeout=30, what="the step to start on the first worker")
        first_pid = int(marker.read_text())
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its pool, at once
        killed_at = time.time()
        celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1, beat=True,
                              env=env)
        wait_for(lambda: StepRun.objects.filter(run=run, step_name="after", status="completed").exists(),
                 timeout=90, what="the run to finish on the second worker")
    run.refresh_from_db()
    assert run.status == "completed", run.error
    slow = StepRun.objects.get(run=run, step_name="slow")
    assert slow.outputs["pid"] != first_pid
    record_figure("worker_killed_to_step_completed_seconds", slow.ended_at.timestamp() - killed_at, "s")
    kinds = list(RunEvent.objects.filter(run=run, step_name="slow").order_by("id").values_list("kind", flat=True))
    assert kinds.count("step_running") == 2
    assert "step_resent" in kinds


# ---------------------------------------------------------------------------
# 4. Duplicate delivery
# ---------------------------------------------------------------------------

def test_duplicate_delivery_runs_the_flow_once(postgres_db, redis_server, celery_worker_process, tmp_path, settings):
    """The step's message published again (a new message, and the very same message by task id)
    and the sweeper passing while the first delivery still runs within its lease: one execution."""
    from orchestration import engine
    from orchestration.effects import send_step_message
    from orchestration.models import RunEvent, StepRun
    from orchestration.tasks import run_step, sweep_stuck_steps
    from tests.engine_builders import active_flow, orchestration

    counter = tmp_path / "executions"
    active_flow(api_name="fault_counted", type="autolaunched",
                inputs=[{"name": "path", "type": "text", "required": True}],
                outputs=[{"name": "pid", "type": "number"}],
                elements=[{"type": "action", "action": "fault_count", "inputs": {"path": "path", "seconds": "3.0"}}])
    orch = orchestration([{"name": "one", "steps": [
        {"name": "counted", "type": "background", "flow": "fault_counted", "inputs": {"path": f'"{counter}"'}}]}])
    # Two workers with two processes each: every duplicate finds a free process at once.
    workers = [celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=2,
                                     env={"BATON_ACTION_MODULES": ACTIONS}) for _ in range(2)]
    with publishing_to(redis_server):
        run = engine.start_run(orch)
        step = StepRun.objects.get(run=run)
        send_step_message(step.pk)  # a second message before anyone claimed the first
        wait_for(counter.exists, timeout=30, what="the first execution")
        step.refresh_from_db()
        assert step.status == "running" and step.task_id
        send_step_message(step.pk)  # a third, while it runs
        run_step.apply_async((step.pk,), task_id=step.task_id)  # the very same message again
        assert sweep_stuck_steps() == 0  # within its lease: the sweeper leaves it alone
        wait_for(lambda: StepRun.objects.get(pk=step.pk).status == "completed", timeout=60, what="completion")
        # Let every duplicate reach a worker and be turned away.
        wait_for(lambda: sum(w.log().count("nothing to do") for w in workers) >= 3, timeout=30,
                 what="the three duplicates to be skipped")
    executions = counter.read_text().splitlines()
    assert len(executions) == 1, executions
    run.refresh_from_db()
    assert run.status == "completed"
    assert RunEvent.objects.filter(run=run, kind="step_running").count() == 1
    assert RunEvent.objects.filter(run=run, kind="step_completed").count() == 1
    record_figure("duplicate_deliveries_executions", len(executions), "execution(s) for 4 deliveries")
