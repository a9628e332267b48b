"""Server time of the Orchestration Builder on a large orchestration: 30 stages × 10 steps.

Run it on its own (SQLite in a scratch directory, nothing else needed)::

    python -m bench.builder [--rounds N] [--stages 30] [--steps 10]

It stores active flows (a screen flow with an output, an autolaunched flow
with a required input and an output), then a draft whose every stage has
half interactive and half background steps, each background step mapping its
input from an output of a step of the stage before (so the validator checks
300 mappings and their names in scope), and prints the median server time
(Django's test client, after one warm-up) of

* ``open_ms``: GET the builder page (validator, canvas, checks);
* ``panel_ms``: GET one step's property panel (the workspace with the panel);
* ``change_ms``: POST one change, moving a step down (lock, undo snapshot,
  edit, validator, canvas);
* ``save_panel_ms``: POST one step's panel with a new label.

Target: open and one change ≤ 150 ms each on the 2-core machine (issue 15).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 150


def build(stages, steps):
    from orchestration.spec import orchestration_from_dict
    from tests.factories import make_flow, var

    make_flow("bench_screen", type="screen", outputs=[var("decision")])
    make_flow("bench_auto", inputs=[var("note", required=True)], outputs=[var("result")])
    path = []
    for s in range(stages):
        items = []
        for k in range(steps):
            name = f"s{s}_k{k}"
            if k % 2 == 0:
                items.append({"name": name, "label": f"Review {s}.{k}", "type": "interactive", "flow": "bench_screen",
                              "assignee": {"user": "admin"}})
            else:
                source = f"steps.s{s - 1}_k{k - 1}.outputs.decision" if s else '"first"'
                items.append({"name": name, "label": f"Work {s}.{k}", "flow": "bench_auto",
                              "inputs": {"note": source}})
        path.append({"name": f"stage_{s}", "label": f"Stage {s}", "steps": items})
    return orchestration_from_dict({"api_name": "bench_builder", "start": {"type": "autolaunched"}, "path": path})


def median_ms(fn, rounds):
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = fn()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:500]
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--stages", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="baton-builder-bench-"))
    os.environ.update({"BATON_VAR_DIR": str(scratch), "DEBUG": "true", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    settings.DEBUG = False  # no query log
    call_command("migrate", verbosity=0)
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "x")
    orch = build(args.stages, args.steps)
    base = f"/admin/orchestration/orchestration/{orch.pk}/builder/"
    client = Client()
    client.force_login(admin)
    from orchestration.builder.checks import Checks
    from orchestration.models import Step

    problems = len(Checks.of(orch).problems)
    step = Step.objects.get(stage__orchestration=orch, name="s15_k3")
    flip = {"direction": "down"}

    def change():
        response = client.post(base + "change/", {"op": "shift_step", "step": step.pk, **flip})
        flip["direction"] = "up" if flip["direction"] == "down" else "down"
        return response

    label = {"n": 0}

    def save_panel():
        label["n"] += 1
        return client.post(base + f"panel/step/{step.pk}/", {
            "element-name": "s15_k3", "element-label": f"Work {label['n']}", "element-type": "background",
            "element-flow": "bench_auto", "element-inputs__note": "steps.s14_k2.outputs.decision",
            "element-entry_type": "stage_start", "element-exit_type": "step_completes",
            "element-retries": "3", "element-timeout": "10m"})

    figures = {
        "open_ms": median_ms(lambda: client.get(base), args.rounds),
        "panel_ms": median_ms(lambda: client.get(base + f"panel/step/{step.pk}/"), args.rounds),
        "change_ms": median_ms(change, args.rounds),
        "save_panel_ms": median_ms(save_panel, args.rounds),
    }
    print(f"builder: {args.stages} stages x {args.steps} steps ({args.stages * args.steps} steps), "
          f"{problems} validator problems, SQLite, median of {args.rounds}")
    for name, value in figures.items():
        verdict = "pass" if value <= TARGET_MS else "miss"
        print(f"  {name:<14} {value:7.1f} ms   target <= {TARGET_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
