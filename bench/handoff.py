"""`make run`'s hand-off time: one person finishes an interactive step → the next person's work item exists.

Run it on its own (SQLite and the embedded file-system broker in a scratch directory, a real Celery worker
started as ``serve`` starts it, concurrency 2; nothing else needed)::

    python -m bench.handoff [--rounds 30]

Two shapes, each timed from just before ``workguide.services.complete_work_item`` (alice's Finish, the
transaction and its commit included) until bob's item is stored, polled every 2 ms:

* ``direct``: alice's step, then bob's step in the next stage (the transition happens in the Finish);
* ``through a background step``: alice's step, a background step on the worker, then bob's step (the
  message goes through the file-system broker to the worker and back through the database).

Target (issue 18 point 4): p50 ≤ 250 ms through a background step. Prints p50 and p90 per shape and the
load average (the machine is shared: other work slows every figure).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 250


def orchestrations():
    from tests.engine_builders import bg, noop_flow, orchestration, ui
    from tests.workguide_helpers import ok_flow

    form = ok_flow().api_name
    noop_flow("handoff_work")
    direct = orchestration([{"name": "one", "steps": [ui("ask", form, assignee={"user": "alice"})]},
                            {"name": "two", "steps": [ui("next", form, assignee={"user": "bob"})]}],
                           api_name="handoff_direct")
    through = orchestration([{"name": "one", "steps": [ui("ask", form, assignee={"user": "alice"})]},
                             {"name": "work", "steps": [bg("work", "handoff_work")]},
                             {"name": "two", "steps": [ui("next", form, assignee={"user": "bob"})]}],
                            api_name="handoff_through")
    return {"direct": direct, "through a background step": through}


def one_handoff(orch, alice, timeout=30.0):
    from orchestration import engine
    from workguide import services
    from workguide.models import WorkItem

    run = engine.start_run(orch)
    item = WorkItem.objects.get(run=run, step_run__step_name="ask")
    started = time.perf_counter()
    services.complete_work_item(item, alice, {"ok": True})
    while not WorkItem.objects.filter(run=run, step_run__step_name="next").exists():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"run {run.pk}: bob's item did not appear within {timeout:.0f} s (is the worker up?)")
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="baton-handoff-"))
    os.environ.update(BATON_VAR_DIR=str(scratch), DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings",
                      SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-handoff-" + "x" * 50,
                      BATON_STEP_EXECUTION="worker")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    User.objects.create_user("bob", "bob@example.com", "pw")
    shapes = orchestrations()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "2", "--loglevel", "WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=REPO, env=dict(os.environ), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        one_handoff(shapes["through a background step"], alice, timeout=120)  # waits for the worker to be up
        times = {name: [] for name in shapes}
        for _ in range(args.rounds):  # alternate the shapes, so load changes touch both alike
            for name, orch in shapes.items():
                times[name].append(one_handoff(orch, alice))
    finally:
        worker.terminate()
        worker.wait(30)
    print(f"hand-off, {args.rounds} rounds each, SQLite + file-system broker, worker concurrency 2, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        values.sort()
        p50, p90 = statistics.median(values), values[int(len(values) * 0.9) - 1]
        verdict = f"target p50 <= {TARGET_MS} ms: {'pass' if p50 <= TARGET_MS else 'MISS'}" if "background" in name else ""
        print(f"  {name:28} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms   {verdict}")


if __name__ == "__main__":
    main()
