"""Wait steps with real processes: a Celery worker on a private Redis, a private PostgreSQL.

- an event delivered here → the next (background) step runs on the worker;
- the fault test (``faults``): the worker whose sweeper is firing a due timer
  is killed mid-transition; the timer still fires, once, on the next worker.
"""
import contextlib
import os
import signal
import time

import pytest

from tests.pg_locks import waiting_on_a_lock, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


@contextlib.contextmanager
def publishing_to(broker_url):
    from kombu import pools

    from config.celery import app

    def reset():
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = str(broker_url)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    reset()
    try:
        yield app
    finally:
        reset()
        app.conf.broker_url, app.conf.broker_transport_options = saved


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_then_work(wait_step):
    from tests.engine_builders import noop_flow, orchestration

    noop_flow("proc_after", outputs={"seen": ("text", "'yes'")})
    return orchestration([
        {"name": "wait", "steps": [{"name": "wait", "type": "wait", **wait_step}]},
        {"name": "work", "steps": [{"name": "work", "type": "background", "flow": "proc_after"}]},
    ])


def test_an_event_starts_the_next_step_on_a_real_worker(postgres_db, redis_server, celery_worker_process):
    import orchestration
    from orchestration import engine
    from orchestration.models import StepRun

    orch = wait_then_work({"event": "signed"})
    celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1)
    with publishing_to(redis_server):
        run = engine.start_run(orch)
        assert StepRun.objects.get(run=run, step_name="wait").status == "in_progress"
        orchestration.send_event(run, "signed", data={"by": "Grace"})
        wait_for(lambda: StepRun.objects.filter(run=run, step_name="work", status="completed").exists(),
                 what="the next step to run on the worker")
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert StepRun.objects.get(run=run, step_name="wait").outputs == {"by": "Grace"}


@pytest.mark.faults
def test_worker_killed_while_a_timer_is_due_it_still_fires_once(postgres_db, redis_server, celery_worker_process):
    """The first worker's sweeper lists the due timer and blocks on the run's lock (held here); it is killed
    there, mid-transition. Its transaction never commits, so the timer is still pending; the next worker's
    sweeper fires it, once."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration import engine
    from orchestration.models import RunEvent, StepRun, Timer

    orch = wait_then_work({"for": "1h"})
    env = {"BATON_SWEEP_INTERVAL": "1"}
    with publishing_to(redis_server):
        run = engine.start_run(orch)
        Timer.objects.filter(run=run).update(due_at=timezone.now() - timedelta(seconds=1))
        holder = postgres_db.connect()
        try:
            holder.execute("SELECT id FROM orchestration_orchestrationrun WHERE id = %s FOR UPDATE", [run.pk])
            doomed = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1,
                                           beat=True, env=env)
            assert wait_until(lambda: waiting_on_a_lock(postgres_db) >= 1, timeout=60), \
                "the sweeper never reached the timer"
            os.killpg(doomed.pid, signal.SIGKILL)  # the worker, its pool and its beat, mid-firing
            time.sleep(0.5)
        finally:
            holder.rollback()
            holder.close()
        assert Timer.objects.get(run=run).state == "pending"
        celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1, beat=True,
                              env=env)
        wait_for(lambda: StepRun.objects.filter(run=run, step_name="work", status="completed").exists(),
                 timeout=90, what="the timer to fire and the next step to run")
        time.sleep(3)  # a few more sweeps: still once
    timer = Timer.objects.get(run=run)
    assert timer.state == "fired"
    assert RunEvent.objects.filter(run=run, kind="timer_fired").count() == 1
    assert StepRun.objects.get(run=run, step_name="wait").status == "completed"
