"""Benchmark (2): the engine alone, in one process, on PostgreSQL, no broker.

The same orchestration as (1), 3 stages × 4 no-op background steps, measured
two ways:

* **in process** (the figure of record): ``BATON_STEP_EXECUTION=in_process``.
  A background step's flow runs inside the engine transition that starts it
  (``worker.run_in_transition``), as an engine that runs its nodes
  synchronously does; a whole run of these no-op steps is one transaction.
* **worker path, one process**: the default execution mode, with the Celery
  message replaced by an in-process list (``worker.send_step_message`` only is
  swapped; the engine's effects and ``transaction.on_commit`` are unchanged).
  The loop then does what a worker does with each message: a pure step's
  (the no-op flow's) runs on receipt and completes by compare-and-set
  (``worker.run_on_receipt``, one statement per step); any other is claimed
  and run (``claim`` and ``execute_claimed``, two). What is left is the
  engine, the flow runtime and the database, without the broker and Celery.
"""
import collections
import time

from bench import common


def measure(drive, runs):
    from django.db import connections

    drive(3)  # warm-up: caches, connection
    connections.close_all()
    common.settle()
    commits0, statements0 = common.db_stats()
    start = time.perf_counter()
    steps = drive(runs)
    elapsed = time.perf_counter() - start
    connections.close_all()
    common.settle()
    commits1, statements1 = common.db_stats()
    assert steps == runs * 12, steps
    return {"runs": runs, "steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed,
            "commits_per_step": (commits1 - commits0) / steps,
            "statements_per_step": (statements1 - statements0) / steps}


def main():
    runs = 30 if common.QUICK else 100
    common.setup_django()
    from django.test import override_settings

    from orchestration import engine, worker
    from orchestration.models import OrchestrationRun, StepRun

    common.noop_flow()
    orch = common.grid_orchestration()

    def in_process(count):
        ids = [engine.start_run(orch).pk for _ in range(count)]
        assert not OrchestrationRun.objects.filter(pk__in=ids).exclude(status="completed").exists()
        return StepRun.objects.filter(run_id__in=ids, status="completed").count()

    queue = collections.deque()
    worker.send_step_message = lambda step_run_id, countdown=None, receipt=None: queue.append((step_run_id, receipt))

    def worker_path(count):
        for _ in range(count):
            engine.start_run(orch)
        done = 0
        while queue:
            step_run_id, receipt = queue.popleft()
            if receipt is not None:  # a pure step: run on receipt, completed by compare-and-set (tasks.run_step)
                done += worker.run_on_receipt(step_run_id, receipt) == "completed"
                continue
            step_run = worker.claim(step_run_id, "")
            if step_run is not None:
                worker.execute_claimed(step_run)
                done += 1
        return done

    with override_settings(BATON_STEP_EXECUTION="in_process"):
        inline = measure(in_process, runs * 3)
    worker = measure(worker_path, runs)
    common.report(**inline, worker_path=worker)


if __name__ == "__main__":
    main()
