"""Benchmark (1), distributed throughput, and (6) the same with parked runs.

Baton: an orchestration of 3 stages × 4 parallel no-op background steps,
``RUNS`` runs launched at once (each ``start_run`` its own transaction, its
messages published on commit) from this process, executed by one
``celery -A config worker`` (prefork, concurrency 2). The clock runs from
the first launch to the moment no run is left running.

Baselines in the same process, on the same servers (raw Celery and Baton
alternate over 5 rounds in full mode; the round with the median ratio is
reported, with every ratio):

* ``pgbench -N`` with 2 clients (one-row updates, one commit each): the
  commit ceiling of this PostgreSQL;
* raw Celery (``bench/celery_baseline.py``): the same shape as a chain of 3
  chords, ``RUNS`` workflows launched at once, on a worker of the same
  settings, results in Redis.

``bench/parked.py`` (benchmark 6) reuses ``park`` and ``baton``.
"""
import argparse
import os
import re
import subprocess
import sys
import time

from bench import common

RUN_TABLES = ("orchestration_orchestrationrun", "orchestration_stagerun", "orchestration_steprun",
              "orchestration_runevent", "orchestration_pendingstart", "workguide_workitem")


def baton(runs):
    from django.db import connections

    from orchestration import engine
    from orchestration.models import OrchestrationRun

    from orchestration.models import Orchestration

    orch = Orchestration.objects.filter(api_name="bench_grid", status="active").first()
    if orch is None:  # the second measurement of bench/parked.py reuses the definitions
        common.noop_flow()
        orch = common.grid_orchestration()
    worker = common.start_worker("config", name="baton-worker", env={"CELERY_BROKER_URL": common.REDIS + "/0"})
    try:
        with common.publishing_to(common.REDIS + "/0"):
            # Warm up: pool processes load the plan, the flow and their connection.
            warm = [engine.start_run(orch).pk for _ in range(4)]
            common.wait_until(lambda: not OrchestrationRun.objects.filter(pk__in=warm, status="running").exists(),
                              60, what="warm-up runs")
            # Start from the same state each time: the dead rows an earlier
            # measurement left would otherwise be vacuumed during this one.
            common.vacuum(*RUN_TABLES)
            connections.close_all()
            common.settle()
            commits0, statements0 = common.db_stats()
            polls = 0
            with common.pg_connect(common.bench_dbname()) as poll:
                start = time.perf_counter()
                for _ in range(runs):
                    engine.start_run(orch)
                launched = time.perf_counter() - start
                deadline = time.monotonic() + 600
                while True:
                    polls += 1
                    left = poll.execute("SELECT count(*) FROM orchestration_orchestrationrun "
                                        "WHERE status = 'running' AND orchestration_id = %s /* bench */",
                                        (orch.pk,)).fetchone()[0]
                    if left == 0:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{left} runs still running after 600 s")
                    time.sleep(0.01)
                elapsed = time.perf_counter() - start
        bad = OrchestrationRun.objects.filter(orchestration=orch, status__in=["running", "error"]).count()
        connections.close_all()
    finally:
        worker.stop()
    common.settle()
    commits1, statements1 = common.db_stats()
    steps = runs * 12
    # The poller's connection ran `polls` autocommit statements: one commit each.
    commits = commits1 - commits0 - polls
    return {
        "runs": runs, "seconds": elapsed, "launch_seconds": launched, "failed_runs": bad,
        "runs_per_s": runs / elapsed, "steps_per_s": steps / elapsed,
        "commits_per_step": commits / steps, "statements_per_step": (statements1 - statements0) / steps,
    }


def raw_celery(runs):
    from bench import celery_baseline

    # A Baton round before this one reset kombu's process-wide pools, closing the
    # baseline app's cached producer pool with them: make it build new ones.
    celery_baseline.app._pool = None
    celery_baseline.app.amqp._producer_pool = None
    worker = common.start_worker("bench.celery_baseline", name="raw-worker")
    # Parts of a chord are published through the *current* app; in this process
    # that is Baton's (Django's) app unless we say otherwise.
    celery_baseline.app.set_current()
    # Celery reads CELERY_BROKER_URL from the environment before any app setting;
    # Django's settings have read it already, so drop it for the baseline's app.
    os.environ.pop("CELERY_BROKER_URL", None)
    try:
        celery_baseline.workflow().apply_async().get(timeout=60)  # warm-up, and proof the worker is up
        start = time.perf_counter()
        results = [celery_baseline.workflow().apply_async() for _ in range(runs)]
        for result in results:
            # A round takes seconds; a chord that never completes (seen once in 40
            # rounds: Celery's chord counter in Redis) would otherwise hold the bench
            # for ten minutes per result. The caller runs such a round again.
            result.get(timeout=120)
        elapsed = time.perf_counter() - start
    finally:
        worker.stop()
        from config.celery import app as baton_app

        baton_app.set_current()  # Baton's shared tasks publish through the current app
    return {"runs": runs, "seconds": elapsed, "runs_per_s": runs / elapsed, "tasks_per_s": runs * 15 / elapsed}


def raw_celery_round(runs):
    """``raw_celery``, once more if a chord of the baseline never completed (said on stderr)."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    try:
        return raw_celery(runs)
    except CeleryTimeout:
        print("raw Celery: a chord never completed; this round's baseline is measured again", file=sys.stderr,
              flush=True)
        return raw_celery(runs)


def pgbench(seconds):
    from tests.servers import find_binary

    info = common.pg_info()
    with common.pg_connect() as conn:
        conn.execute("DROP DATABASE IF EXISTS pgbench")
        conn.execute("CREATE DATABASE pgbench")
    base = [find_binary("pgbench"), "-h", info["host"], "-p", str(info["port"]), "-U", info["user"]]
    subprocess.run(base + ["-i", "-s", "2", "-q", "pgbench"], check=True, capture_output=True, timeout=300)
    out = subprocess.run(base + ["-N", "-c", "2", "-j", "2", "-T", str(seconds), "pgbench"], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    with common.pg_connect() as conn:
        conn.execute("DROP DATABASE pgbench WITH (FORCE)")
    return {"tps": tps}


def park(count):
    from django.contrib.auth import get_user_model

    common.screen_flow()
    orch = common.waiting_orchestration()
    user = get_user_model().objects.create_user("parked")
    start = time.perf_counter()
    common.insert_waiting_work(orch.pk, _flow_id("bench_screen"), count, params={"user": user.pk})
    return time.perf_counter() - start


def _flow_id(api_name):
    from flows.models import Flow

    return Flow.objects.get(api_name=api_name, status="active").pk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50 if common.QUICK else 200)
    parser.add_argument("--only-baton", action="store_true")
    args = parser.parse_args()
    common.setup_django()
    result = {}
    if args.only_baton:
        common.report(baton=baton(args.runs))
        return
    result["pgbench"] = pgbench(5 if common.QUICK else 15)
    # Raw Celery and Baton alternate over several rounds (the order swapped each
    # round) and the ratio is taken per round: on this shared machine one
    # measurement of either moves by 10-20 % from minute to minute.
    rounds = 1 if common.QUICK else 5
    pairs = []
    for i in range(rounds):
        if i % 2:
            b = baton(args.runs)
            c = raw_celery_round(args.runs)
        else:
            c = raw_celery_round(args.runs)
            b = baton(args.runs)
        pairs.append((b["runs_per_s"] / c["runs_per_s"], b, c))
    pairs.sort(key=lambda pair: pair[0])
    ratio, result["baton"], result["celery"] = pairs[len(pairs) // 2]  # the median round
    result["ratio"] = ratio
    result["ratios"] = [pair[0] for pair in pairs]
    common.report(**result)


if __name__ == "__main__":
    main()
