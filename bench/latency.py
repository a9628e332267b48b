"""Benchmark (3): latency from a record's commit to its first background step running.

A record-triggered orchestration (one stage, one no-op background step) on
``demo.Employee``; one ``celery -A config worker`` (prefork, concurrency 2)
idle between samples. For each sample this process creates an employee in
a transaction whose first ``on_commit`` callback notes the time (the commit
has just happened); the run starts on commit and publishes its step; the
worker's claim stamps the ``step_running`` event. Latency = that stamp minus
the commit time (same machine, same clock). The next sample waits until the
run has completed, so the worker is idle again.

Measured twice: runs started by the saving process on commit (the
default), then by a worker (``BATON_RECORD_STARTS=worker``: PostgreSQL
notifies the worker's listener, which starts the run and publishes its step).

Baseline in the same run: a raw Celery no-op task's round trip
(``apply_async().get()``, Redis broker and result backend) on a worker of
the same settings.
"""
import time

from bench import common


def baton(samples, starts="on_commit"):
    from django.conf import settings
    from django.db import connections, transaction

    from demo.models import Employee
    from orchestration import triggers
    from orchestration.models import OrchestrationRun, RunEvent

    from orchestration.models import Orchestration

    if not Orchestration.objects.filter(api_name="bench_latency").exists():
        common.noop_flow()
        common.grid_orchestration("bench_latency", stages=1, steps=1, start={
            "type": "record_triggered", "model": "demo.employee", "when": "created",
            "condition": 'record.status == "hired"'})
    triggers.definitions_changed()
    settings.BATON_RECORD_STARTS = starts
    worker = common.start_worker("config", name="latency-worker", env={"CELERY_BROKER_URL": common.REDIS + "/0",
                                                                       "BATON_RECORD_STARTS": starts})
    latencies = []
    try:
        with common.publishing_to(common.REDIS + "/0"):
            for i in range(samples + 5):  # the first 5 warm the worker up
                stamp = {}
                with transaction.atomic():
                    transaction.on_commit(lambda: stamp.setdefault("at", time.time()))
                    employee = Employee.objects.create(first_name="E", last_name=f"{starts}{i}",
                                                       email=f"e{i}@x.example", status="hired")
                run = common.wait_until(lambda: OrchestrationRun.objects.filter(
                    record_model="demo.employee", record_pk=str(employee.pk)).first(), 60, interval=0.002,
                    what="the run to start")
                event = common.wait_until(
                    lambda: RunEvent.objects.filter(run=run, kind="step_running").values_list("at", flat=True).first(),
                    60, interval=0.002, what="the step to run")
                common.wait_until(lambda: not OrchestrationRun.objects.filter(pk=run.pk, status="running").exists(),
                                  60, interval=0.002, what="the run to end")
                if i >= 5:
                    latencies.append((event.timestamp() - stamp["at"]) * 1000)
        connections.close_all()
    finally:
        worker.stop()
    return latencies


def raw_celery(samples):
    import os

    from bench import celery_baseline

    celery_baseline.app.set_current()
    os.environ.pop("CELERY_BROKER_URL", None)
    worker = common.start_worker("bench.celery_baseline", name="latency-raw")
    times = []
    try:
        for i in range(samples + 5):
            start = time.perf_counter()
            celery_baseline.noop.apply_async().get(timeout=60)
            if i >= 5:
                times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.005)
    finally:
        worker.stop()
    return times


def main():
    samples = 100 if common.QUICK else 500
    common.setup_django()
    lat = baton(samples)
    lat_worker = baton(samples, starts="worker")
    raw = raw_celery(samples)
    common.report(samples=len(lat), p50_ms=common.percentile(lat, 50), p99_ms=common.percentile(lat, 99),
                  max_ms=max(lat), celery_p50_ms=common.percentile(raw, 50), celery_p99_ms=common.percentile(raw, 99),
                  worker_starts_p50_ms=common.percentile(lat_worker, 50),
                  worker_starts_p99_ms=common.percentile(lat_worker, 99))


if __name__ == "__main__":
    main()
