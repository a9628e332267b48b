"""Benchmark (4): what a record-triggered orchestration adds to ``save()``.

One model, ``demo.EquipmentRequest``, in three configurations, each timed
over updates of existing rows (autocommit, as a view would save):

* **plain**: nobody watches the model (no active orchestration on it and it
  is left out of ``BATON_FLOW_MODELS``): Baton connects no receiver;
* **false**: an active orchestration triggered on create or update whose
  condition is false for these saves, the model exposed to flows;
* **true**: an active orchestration whose condition holds: every save starts
  a run (one stage, one background step, published to Redis on commit);
* **true, worker starts** (``BATON_RECORD_STARTS=worker``): the same, but the
  save only writes the ``PendingStart`` row and publishes a start message;
  a worker would start the run (none runs here: the messages wait in Redis,
  and the work they stand for is measured by (1) and (3), not here).

The configurations alternate over many short rounds (plain and false as
A-B-B-A within a round, so a slow drift of the machine hits both alike),
each configuration's ratio to the plain save *of the same round* is taken,
and the median of those ratios is reported (with the median times). Query counts per save are
read with ``CaptureQueriesContext``.
"""
import statistics
import time

from bench import common

MODEL = "demo.equipmentrequest"


def main():
    rounds, saves = (12, 100) if common.QUICK else (30, 300)
    common.setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from demo.models import Employee, EquipmentRequest
    from orchestration import triggers
    from orchestration.models import Orchestration, OrchestrationRun

    exposed = [m for m in settings.BATON_FLOW_MODELS if m.lower() != MODEL]
    common.noop_flow()
    start = {"type": "record_triggered", "model": MODEL, "when": "created_or_updated"}
    false_orch = common.grid_orchestration("bench_false", stages=1, steps=1,
                                           start={**start, "condition": 'record.item == "never"'})
    true_orch = common.grid_orchestration("bench_true", stages=1, steps=1,
                                          start={**start, "condition": 'record.item == "go"'})
    employee = Employee.objects.create(first_name="A", last_name="B", email="a@b.example")
    rows = list(EquipmentRequest.objects.bulk_create(
        [EquipmentRequest(employee=employee, item="laptop") for _ in range(saves)]))

    def configure(kind):
        active = {"plain": [], "false": [false_orch.pk], "true": [false_orch.pk, true_orch.pk],
                  "true_worker": [false_orch.pk, true_orch.pk]}[kind]
        settings.BATON_RECORD_STARTS = "worker" if kind == "true_worker" else "on_commit"
        Orchestration.objects.filter(pk__in=[false_orch.pk, true_orch.pk]).update(status="obsolete")
        Orchestration.objects.filter(pk__in=active).update(status="active")
        settings.BATON_FLOW_MODELS = exposed if kind == "plain" else exposed + [MODEL]
        triggers.definitions_changed()

    def timed(kind):
        item = "go" if kind.startswith("true") else "laptop"
        for row in rows:
            row.item = item
        start_at = time.perf_counter()
        for row in rows:
            row.save()
        took = (time.perf_counter() - start_at) / len(rows) * 1e6
        # The runs just started would make every later save re-check them: end them.
        OrchestrationRun.objects.filter(status="running").update(status="completed")
        return took

    def queries(kind):
        row = rows[0]
        row.item = "go" if kind.startswith("true") else "laptop"
        with CaptureQueriesContext(connection) as captured:
            row.save()
        OrchestrationRun.objects.filter(status="running").update(status="completed")
        return len(captured)

    figures = {"plain": [], "false": [], "true": [], "true_worker": []}
    counts = {}
    with common.publishing_to(common.REDIS + "/0"):
        for kind in figures:  # warm-up
            configure(kind)
            timed(kind)
        for _ in range(rounds):
            # plain and false as A-B-B-A, next to each other: a drift of the machine,
            # or the garbage a "true" round leaves behind, hits both alike.
            round_times = {kind: [] for kind in figures}
            for kind in ("plain", "false", "false", "plain", "true", "true_worker"):
                configure(kind)
                round_times[kind].append(timed(kind))
            for kind, times in round_times.items():
                figures[kind].append(statistics.mean(times))
        for kind in figures:
            configure(kind)
            counts[kind] = queries(kind)
    runs = OrchestrationRun.objects.filter(orchestration=true_orch).count()
    common.report(
        ratios={kind: statistics.median(t / p for t, p in zip(figures[kind], figures["plain"])) for kind in figures},
        plain_us=statistics.median(figures["plain"]), false_us=statistics.median(figures["false"]),
        true_us=statistics.median(figures["true"]), true_worker_us=statistics.median(figures["true_worker"]),
        rounds=rounds, saves=saves, runs_started=runs,
        plain_queries=counts["plain"], false_queries=counts["false"], true_queries=counts["true"],
        true_worker_queries=counts["true_worker"],
        all=figures,
    )


if __name__ == "__main__":
    main()
