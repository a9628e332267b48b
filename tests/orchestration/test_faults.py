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

from tests.servers import REPO
from tests.orchestration.test_integration import _reset_pools, wait_for

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
# tests/orchestration/test_integration.py::test_worker_killed_mid_step_runs_the_step_again kills
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
    from orchestration.worker import send_step_message
    from orchestration.models import RunEvent, StepRun
    from orchestration.tasks import run_step
    from orchestration.worker import sweep_stuck_steps
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


# ---------------------------------------------------------------------------
# 6. Parallel load
# ---------------------------------------------------------------------------

@pytest.mark.timeout(900)
def test_parallel_load_every_run_completes_and_every_stage_advances_once(postgres_db, redis_server,
                                                                        celery_worker_process, settings):
    """BATON_FAULT_RUNS runs (default 2,000) of 3 stages × 2 parallel background steps on 4 worker
    processes: every run completes, every stage is started and completed exactly once, nothing is lost,
    and no worker logs an unhandled database error."""
    from django.db.models import Count

    from orchestration import engine
    from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun

    runs_wanted = int(os.environ.get("BATON_FAULT_RUNS", "2000"))
    # The queue holds minutes of work here: a queued lease shorter than the wait would have the sweeper
    # re-send thousands of steps that were only waiting their turn (harmless, but it halves throughput).
    settings.BATON_QUEUED_LEASE = 900
    orch = parallel_orchestration(stages=3, width=2, api_name="load_pipeline")
    workers = [celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=2,
                                     beat=(i == 0),
                                     env={"BATON_SWEEP_INTERVAL": "5", "BATON_QUEUED_LEASE": "900"})
               for i in range(2)]
    started = time.monotonic()
    with publishing_to(redis_server):
        run_ids = [engine.start_run(orch).pk for _ in range(runs_wanted)]
        launched = time.monotonic() - started
        wait_for(lambda: ended_runs(run_ids) == runs_wanted, timeout=840, interval=1,
                 what=f"{runs_wanted} runs to end")
    elapsed = time.monotonic() - started

    runs = OrchestrationRun.objects.filter(pk__in=run_ids)
    assert runs.filter(status="completed").count() == runs_wanted, list(
        runs.exclude(status="completed").values_list("id", "status", "error")[:5])
    stages = StageRun.objects.filter(run__in=run_ids)
    assert stages.count() == 3 * runs_wanted
    assert stages.filter(status="completed").count() == 3 * runs_wanted
    assert not stages.values("run_id", "stage_name").annotate(n=Count("id")).filter(n__gt=1).exists()
    events = RunEvent.objects.filter(run__in=run_ids)
    per_kind = dict(events.values_list("kind").annotate(n=Count("id")))
    assert per_kind.get("stage_started") == 3 * runs_wanted
    assert per_kind.get("stage_completed") == 3 * runs_wanted
    assert per_kind.get("run_completed") == runs_wanted
    assert per_kind.get("step_completed") == 6 * runs_wanted
    assert not (events.filter(kind="stage_completed").values("run_id", "stage_name")
                .annotate(n=Count("id")).filter(n__gt=1).exists())
    assert StepRun.objects.filter(run__in=run_ids, status="completed").count() == 6 * runs_wanted
    logs = "\n".join(w.log() for w in workers)
    for bad in ("deadlock detected", "could not serialize", "IntegrityError", "raised unexpected", "Traceback"):
        assert bad not in logs, f"{bad!r} in a worker log:\n" + logs[logs.find(bad) - 2000:logs.find(bad) + 2000]
    steps = 6 * runs_wanted
    record_figure("parallel_load_runs", runs_wanted, "runs (3 stages x 2 parallel steps)")
    record_figure("parallel_load_seconds", elapsed, "s from the first launch to the last run completed")
    record_figure("parallel_load_launch_seconds", launched, "s to start every run")
    record_figure("parallel_load_steps_per_second", steps / elapsed, "steps/s on 4 worker processes")
    record_figure("parallel_load_resent_steps", per_kind.get("step_resent", 0), "steps re-sent by the sweeper")
    record_figure("parallel_load_ignored_completions", per_kind.get("completion_ignored", 0), "ignored completions")


# ---------------------------------------------------------------------------
# 5. Database restart
# ---------------------------------------------------------------------------

class WebProcess:
    """``gunicorn config.wsgi`` as a child process on a free loopback port (the Procfile's web process)."""

    def __init__(self, env, log_path):
        import subprocess
        import sys

        from tests.servers import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--timeout", "30"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def request(self, method, path, token, **kwargs):
        import requests

        return requests.request(method, self.base + path, headers={"Authorization": f"Token {token}"},
                                timeout=20, **kwargs)

    def wait_ready(self, token):
        import requests

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {Path(self.log_path).read_text()[-3000:]}")
            try:
                return self.request("GET", "/api/orchestrations/", token).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(up, timeout=60, what="gunicorn to serve")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def test_database_restart_fails_requests_cleanly_and_loses_no_step(postgres_db, redis_server, celery_worker_process,
                                                                  tmp_path, settings):
    """PostgreSQL restarts while a gunicorn web process and a worker (with beat) run, a step in flight:
    requests during the outage get 503 (never 500) and change nothing, both processes reconnect, and the
    run in flight completes (its step re-sent by the sweeper if its completion was lost)."""
    from django.contrib.auth import get_user_model
    from django.db import connections
    from rest_framework.authtoken.models import Token

    from orchestration.models import OrchestrationRun, RunEvent, StepRun
    from tests.engine_builders import active_flow, noop_flow, orchestration

    counter = tmp_path / "executions"
    active_flow(api_name="fault_db_slow", type="autolaunched",
                inputs=[{"name": "path", "type": "text", "required": True}],
                outputs=[{"name": "pid", "type": "number"}],
                elements=[{"type": "action", "action": "fault_count", "inputs": {"path": "path", "seconds": "3.0"}}])
    noop_flow("fault_db_after")

    def counter_of(run_id):
        return Path(f"{counter}-{run_id}")

    orchestration([
        {"name": "work", "steps": [{"name": "slow", "type": "background", "flow": "fault_db_slow", "timeout": "2s",
                                    "inputs": {"path": f'"{counter}-" + string(run.id)'}}]},
        {"name": "then", "steps": [{"name": "after", "type": "background", "flow": "fault_db_after"}]},
    ], api_name="db_restart", start={"type": "autolaunched"})
    user = get_user_model().objects.create_user("operator", password="x", is_staff=True)
    token = Token.objects.create(user=user).key

    env = {"BATON_ACTION_MODULES": ACTIONS, "BATON_SWEEP_INTERVAL": "2", "BATON_QUEUED_LEASE": "3",
           "BATON_LEASE_MARGIN": "1"}
    celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, beat=True, concurrency=2, env=env)
    web_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CELERY_"))}
    web_env.update(env, DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=postgres_db.url,
                   CELERY_BROKER_URL=str(redis_server), BATON_VAR_DIR=str(tmp_path / "web-var"), CONN_MAX_AGE="60")
    web = WebProcess(web_env, tmp_path / "gunicorn.log")
    server = postgres_db.server
    try:
        web.wait_ready(token)
        first = web.request("POST", "/api/orchestrations/db_restart/launch/", token, json={"inputs": {}})
        assert first.status_code == 201, first.text
        run_id = first.json()["id"]
        wait_for(counter_of(run_id).exists, timeout=30, what="the slow step to start")

        connections["default"].close()
        server.stop()
        down_at = time.monotonic()
        codes = []
        try:
            while time.monotonic() - down_at < 4:
                for method, path, body in (("POST", "/api/orchestrations/db_restart/launch/", {"inputs": {}}),
                                           ("GET", "/api/runs/", None), ("GET", f"/api/runs/{run_id}/", None)):
                    response = web.request(method, path, token, json=body)
                    codes.append(response.status_code)
                    assert response.status_code == 503, (method, path, response.status_code, response.text[:500])
                    assert response.headers.get("Retry-After")
                time.sleep(0.3)
        finally:
            server.start()  # same port; the session's server must come back whatever happened
        back = time.time()
        connections["default"].close()

        def launched_again():
            response = web.request("POST", "/api/orchestrations/db_restart/launch/", token, json={"inputs": {}})
            return response if response.status_code == 201 else None

        second = wait_for(launched_again, timeout=30, what="the web process to reconnect")
        second_id = second.json()["id"]
        wait_for(lambda: OrchestrationRun.objects.filter(pk__in=[run_id, second_id], status="completed").count() == 2,
                 timeout=90, what="both runs to complete after the restart")
    finally:
        web.stop()

    assert OrchestrationRun.objects.count() == 2  # nothing from the refused requests
    first_done = StepRun.objects.get(run_id=run_id, step_name="after").ended_at.timestamp() - back
    record_figure("database_outage_requests_503", len(codes), "requests during the outage, all 503")
    record_figure("database_back_to_run_completed_seconds", first_done, "s")
    slow_attempts = RunEvent.objects.filter(run_id=run_id, step_name="slow", kind="step_running").count()
    record_figure("database_restart_slow_step_executions", len(counter_of(run_id).read_text().splitlines()),
                  f"execution(s) of the in-flight step ({slow_attempts} claim(s))")
    assert StepRun.objects.filter(run_id=run_id, status="completed").count() == 2


# ---------------------------------------------------------------------------
# 7. Bad input
# ---------------------------------------------------------------------------

def stored_state():
    """Row counts of everything a bad input could leave behind."""
    from django.contrib.auth import get_user_model

    from flows.models import Flow
    from orchestration.models import Orchestration, OrchestrationRun, RunEvent, StageRun, StepRun
    from workguide.models import Queue, WorkItem

    return {model.__name__: model.objects.count() for model in (
        Flow, Orchestration, OrchestrationRun, StageRun, StepRun, RunEvent, WorkItem, Queue, get_user_model())}


def test_bad_input_gets_a_clear_error_and_changes_nothing(postgres_db, settings):
    """Malformed definitions and expressions, bad API bodies, bad screen values, oversize inputs and
    unknown models in ``record``: each is refused with a message naming the place, and the row counts
    of every definition and runtime table stay as they were."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from demo.models import Employee
    from orchestration import engine
    from orchestration.definition_files import DefinitionFileError, import_document
    from orchestration.lifecycle import ActivationRefused, activate
    from orchestration.starts import LaunchError, launch
    from orchestration.spec import orchestration_from_dict
    from tests.engine_builders import noop_flow, orchestration, screen_flow
    from workguide.models import WorkItem

    settings.BATON_MAX_INPUT_BYTES = 2000
    alice = get_user_model().objects.create_user("alice", password="x", is_staff=True)
    noop_flow("fault_noop")
    screen_flow("fault_form", fields=[{"name": "amount", "type": "number", "label": "Amount", "required": True},
                                      {"name": "when", "type": "date", "label": "When"}])
    orchestration([{"name": "s", "steps": [{"name": "fill", "type": "interactive", "flow": "fault_form",
                                            "assignee": {"user": "alice"}}]}],
                  api_name="fault_form_orch", inputs=[{"name": "note", "type": "text"},
                                                     {"name": "count", "type": "number"}])
    run = launch("fault_form_orch", inputs={"note": "ok"}, user=alice)
    item = WorkItem.objects.get(step_run__run=run)
    employee = Employee.objects.create(first_name="E", last_name="F", email="e@example.com", status="hired")
    client = APIClient()
    client.force_authenticate(alice)
    before = stored_state()
    refused = []

    def refuses(exc_type, call, *fragments):
        with pytest.raises(exc_type) as info:
            call()
        text = str(getattr(info.value, "message_dict", None) or info.value)
        for fragment in fragments:
            assert fragment in text, (fragment, text)
        refused.append(text)
        assert stored_state() == before, text

    def api_refuses(method, path, body, status, *fragments, **kwargs):
        response = getattr(client, method)(path, body, format=kwargs.pop("format", "json"), **kwargs)
        assert response.status_code == status, (path, response.status_code, response.content[:500])
        text = response.content.decode()
        for fragment in fragments:
            assert fragment in text, (fragment, text)
        refused.append(text)
        assert stored_state() == before, text

    # Definitions: broken YAML, a wrong shape, and a well-formed document the validator refuses.
    refuses(DefinitionFileError, lambda: import_document("flows: [ {api_name: x, type: screen"), "line")
    refuses(DefinitionFileError, lambda: import_document({"flows": [{"api_name": "x", "type": "bogus"}]}), "type")
    bad_document = {"orchestrations": [{
        "api_name": "fault_bad", "start": {"type": "record_triggered", "model": "nope.nothing", "when": "created"},
        "path": [{"name": "s", "steps": [{"name": "a", "type": "background", "flow": "fault_noop"}],
                  "exit": {"condition": "record.amount >"}},
                 {"type": "decision", "name": "d", "default": "end",
                  "outcomes": [{"name": "o", "condition": "true", "goto": "nowhere"}]}],
    }]}
    refuses(DefinitionFileError, lambda: import_document(bad_document, activate=True), "nope.nothing", "nowhere")
    # An expression that does not compile, caught at activation with its place.
    draft = orchestration_from_dict({"api_name": "fault_expr", "path": [{"name": "s", "steps": [
        {"name": "a", "type": "background", "flow": "fault_noop", "entry": {"condition": "1 +* 2"}}]}]})
    before = stored_state()  # the draft itself is allowed to exist
    refuses(ActivationRefused, lambda: activate(draft), "s", "a")

    # launch(): unknown orchestration, wrong types, unknown inputs, oversize inputs, unknown or unexposed models.
    refuses(LaunchError, lambda: launch("no_such_thing"), "no active orchestration")
    refuses(LaunchError, lambda: launch("fault_form_orch", inputs={"count": "many"}), "inputs.count")
    refuses(LaunchError, lambda: launch("fault_form_orch", inputs={"nope": 1}), "nope")
    refuses(LaunchError, lambda: launch("fault_form_orch", inputs={"note": "x" * 5000}), "BATON_MAX_INPUT_BYTES")
    refuses(LaunchError, lambda: launch("fault_form_orch", record={"model": "nope.nothing", "pk": 1}), "nope.nothing")
    refuses(LaunchError, lambda: launch("fault_form_orch", record={"model": "auth.user", "pk": alice.pk}), "auth.user")
    refuses(LaunchError, lambda: launch("fault_form_orch", record="demo.employee"), "record")
    refuses(LaunchError, lambda: launch("fault_form_orch", record={"model": "demo.employee", "pk": employee.pk + 99}),
            "no demo.employee")

    # The REST API: malformed JSON, wrong shapes, oversize bodies, unknown models.
    launch_url = "/api/orchestrations/fault_form_orch/launch/"
    api_refuses("post", launch_url, "{not json", 400, "JSON", content_type="application/json", format=None)
    api_refuses("post", launch_url, {"inputs": ["a list"]}, 400, "inputs")
    api_refuses("post", launch_url, {"inputs": {"count": "many"}}, 400, "inputs.count")
    api_refuses("post", launch_url, {"inputs": {"note": "x" * 5000}}, 400, "too large")
    api_refuses("post", launch_url, {"record": {"model": "nope.nothing", "pk": "1"}}, 400, "record")
    api_refuses("post", launch_url, {"record": {"model": "auth.user", "pk": str(alice.pk)}}, 400, "record")
    api_refuses("post", "/api/orchestrations/no_such_thing/launch/", {}, 404, "not_found")

    # Screen values through the API: every bad field named, the item still open.
    complete_url = f"/api/work-items/{item.pk}/complete/"
    api_refuses("post", complete_url, {"values": {"amount": "lots", "when": "31/31/2024"}}, 400, "amount", "when")
    api_refuses("post", complete_url, {"values": {}}, 400, "amount")
    api_refuses("post", complete_url, {"values": "amount=3"}, 400, "values")
    api_refuses("post", complete_url, {"values": {"amount": 1, "when": "x" * 5000}}, 400, "too large")
    item.refresh_from_db()
    assert item.status == "open"

    # And the good inputs still work afterwards.
    response = client.post(complete_url, {"values": {"amount": 3, "when": "2024-05-01"}}, format="json")
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert run.status == "completed"
    assert engine  # the engine module imported cleanly under the same settings
    record_figure("bad_inputs_refused", len(refused), "bad inputs refused, stored state unchanged")


def test_runtime_errors_in_background_steps_leave_the_worker_working(postgres_db, redis_server, celery_worker_process):
    """A CEL expression that fails at run time and an http_request to a host not allowed: each step errors
    with the reason, its run is in error, and the same worker process goes on to run the next task."""
    from orchestration import engine
    from orchestration.models import OrchestrationRun, StepRun
    from tests.engine_builders import active_flow, noop_flow, orchestration

    active_flow(api_name="fault_divide", type="autolaunched",
                inputs=[{"name": "n", "type": "number", "required": True}],
                outputs=[{"name": "x", "type": "number"}],
                elements=[{"type": "assign", "set": {"x": "10 / int(n)"}}])
    active_flow(api_name="fault_http", type="autolaunched",
                inputs=[{"name": "host", "type": "text", "required": True}],
                elements=[{"type": "http_request", "method": "GET", "url": "http://{!host}/hook"}])
    noop_flow("fault_fine")
    divide = orchestration([{"name": "s", "steps": [
        {"name": "divide", "type": "background", "flow": "fault_divide", "retries": 0, "inputs": {"n": "0.0"}}]}])
    http = orchestration([{"name": "s", "steps": [
        {"name": "call", "type": "background", "flow": "fault_http", "retries": 0,
         "inputs": {"host": '"evil.example"'}}]}])
    fine = orchestration([{"name": "s", "steps": [{"name": "ok", "type": "background", "flow": "fault_fine"}]}])
    worker = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1,
                                   env={"BATON_HTTP_ALLOWED_HOSTS": "api.example.com"})
    pool_before = worker.child_pids()
    with publishing_to(redis_server):
        runs = [engine.start_run(divide), engine.start_run(http), engine.start_run(fine)]
        wait_for(lambda: ended_runs([r.pk for r in runs]) == 3, timeout=60, what="the three runs to end")
    divide_run, http_run, fine_run = (OrchestrationRun.objects.get(pk=r.pk) for r in runs)
    divide_step = StepRun.objects.get(run=divide_run)
    assert divide_run.status == "error" and divide_step.status == "error"
    assert "division by zero" in divide_step.error.lower() or "divide" in divide_step.error.lower(), divide_step.error
    http_step = StepRun.objects.get(run=http_run)
    assert http_run.status == "error" and http_step.status == "error"
    assert "evil.example" in http_step.error and "BATON_HTTP_ALLOWED_HOSTS" in http_step.error, http_step.error
    assert fine_run.status == "completed"
    assert worker.alive and worker.child_pids() == pool_before  # the same pool process ran all three
    record_figure("runtime_errors_worker_restarts", 0, "pool restarts after two failing steps")
