"""Benchmark (2): the engine alone, in one process, on PostgreSQL.

The same orchestration as (1), 3 stages × 4 no-op background steps. Instead
of publishing a Celery message after commit, a queued step's id goes on an
in-process list (the engine's effects and ``transaction.on_commit`` are
unchanged, only ``send_step_message`` is replaced); the loop then does what
a worker does with it: ``claim`` and ``execute_claimed``. No broker, no
second process: what is left is the engine, the flow runtime and the
database.
"""
import collections
import time

from bench import common


def main():
    runs = 30 if common.QUICK else 100
    common.setup_django()
    from django.db import connections

    from orchestration import effects, engine, tasks

    queue = collections.deque()
    effects.send_step_message = lambda step_run_id, countdown=None: queue.append(step_run_id)

    common.noop_flow()
    orch = common.grid_orchestration()

    def drive(count):
        for _ in range(count):
            engine.start_run(orch)
        done = 0
        while queue:
            step_run = tasks.claim(queue.popleft(), "")
            if step_run is not None:
                tasks.execute_claimed(step_run)
                done += 1
        return done

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
    common.report(runs=runs, steps=steps, seconds=elapsed, steps_per_s=steps / elapsed,
                  commits_per_step=(commits1 - commits0) / steps,
                  statements_per_step=(statements1 - statements0) / steps)


if __name__ == "__main__":
    main()
