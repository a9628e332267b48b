"""Multi-instance steps on PostgreSQL: instances completing at the same moment advance the step exactly once.

Each completion is a worker's (``instances.complete_from_worker``) from a
thread with its own connection, all released together by a barrier. The
completion rule is checked under the run's lock (orchestration/instances.py
rule 2), so whatever order the lock hands them out, one meets it.
"""
import threading

import pytest
from django.db import connection, connections

from orchestration import engine, instances, worker
from orchestration.models import OrchestrationRun, RunEvent, StepRun
from orchestration.plan import Plan
from tests.engine_builders import Recorder, bg, noop_flow, orchestration

N = 50


def complete_all_at_once(ids, run_id, fx):
    barrier = threading.Barrier(len(ids))
    results = {}

    def body(step_run_id):
        try:
            barrier.wait(30)
            # As a worker does (worker.execute_claimed): one statement when that cannot meet the rule, else the lock.
            step_run = StepRun.objects.select_related("run").get(pk=step_run_id)
            step = Plan.load(step_run.run.orchestration_id).step(step_run.step_name)
            results[step_run_id] = instances.complete_from_worker(step_run, step, {"v": 1}, effects=fx)
        except BaseException as exc:  # noqa: BLE001 — the test reports what each thread got
            results[step_run_id] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


@pytest.mark.parametrize("completion", ["all", {"at_least": 10}])
def test_fifty_instances_completing_at_once_advance_the_step_exactly_once(postgres_db, completion):
    assert connection.vendor == "postgresql"
    noop_flow("pg_one", inputs=[{"name": "n", "type": "number"}], outputs={"v": ("number", "n")})
    noop_flow("pg_next")
    orch = orchestration([
        {"name": "fan", "steps": [bg("each", "pg_one", for_each=str(list(range(N))),
                                    inputs={"n": "double(item)"}, completion=completion)]},
        {"name": "after", "steps": [bg("next", "pg_next")]},
    ])
    fx = Recorder()
    run = engine.start_run(orch, effects=fx)
    ids = list(StepRun.objects.filter(run=run, instance_index__isnull=False).values_list("id", flat=True))
    assert len(ids) == N
    results = complete_all_at_once(ids, run.pk, fx)
    errors = [r for r in results.values() if isinstance(r, BaseException)]
    assert errors == []
    step = StepRun.objects.get(run=run, step_name="each", instance_index__isnull=True)
    assert step.status == "completed"
    # Exactly once: one rule met, one step completion, one next step, one stage completion.
    assert RunEvent.objects.filter(run=run, kind="step_exit_condition_met", step_name="each").count() == 1
    assert RunEvent.objects.filter(run=run, kind="step_completed", step_name="each",
                                   data__instance__isnull=True).count() == 1
    assert RunEvent.objects.filter(run=run, kind="stage_completed", stage_name="fan").count() == 1
    assert StepRun.objects.filter(run=run, step_name="next").count() == 1
    statuses = list(StepRun.objects.filter(run=run, instance_index__isnull=False).values_list("status", flat=True))
    completed = statuses.count("completed")
    if completion == "all":
        assert completed == N and sum(results.values()) == N
    else:
        # The rest were discontinued the moment the tenth completed; their late completions were ignored.
        assert completed + statuses.count("discontinued") == N and completed >= 10
        assert sum(1 for r in results.values() if r is True) == completed
        assert RunEvent.objects.filter(run=run, kind="completion_ignored").count() == N - completed
    assert len(step.outputs) == N and sum(1 for o in step.outputs if o is not None) == completed
    assert step.instances_to_go == 0
    assert OrchestrationRun.objects.get(pk=run.pk).status == "running"


def test_an_instance_completion_that_leaves_the_rule_unmet_is_one_statement(postgres_db, django_assert_num_queries):
    noop_flow("pg_one1", inputs=[{"name": "n", "type": "number"}], outputs={"v": ("number", "n")})
    orch = orchestration([{"name": "fan", "steps": [bg("each", "pg_one1", for_each="[1, 2, 3]",
                                                      inputs={"n": "double(item)"}, completion={"at_least": 2})]}])
    fx = Recorder()
    run = engine.start_run(orch, effects=fx)
    first, second, third = StepRun.objects.filter(run=run, instance_index__isnull=False).order_by("instance_index")
    with django_assert_num_queries(1):
        assert instances.complete_counted(first, {"v": 1}) == (True, True)  # (open, completed)
    assert StepRun.objects.get(pk=first.pk).status == "completed"
    step = StepRun.objects.get(run=run, step_name="each", instance_index__isnull=True)
    assert step.status == "in_progress" and step.instances_to_go == 1
    # The second would meet the rule: refused here, done under the lock, and the third is discontinued.
    assert instances.complete_counted(second, {"v": 2}) == (True, False)
    assert StepRun.objects.get(pk=second.pk).status == "queued"
    assert worker.complete_background_step(second.pk, {"v": 2}, run_id=run.pk, effects=fx) is True
    step.refresh_from_db()
    assert step.status == "completed" and step.outputs == [{"v": 1}, {"v": 2}, None]
    assert StepRun.objects.get(pk=third.pk).status == "discontinued"
    assert instances.complete_counted(third, {"v": 3}) == (False, False)
    assert RunEvent.objects.filter(run=run, kind="step_completed", data__instance=0).count() == 1


def test_sequential_background_instances_go_on_after_a_workers_completion(postgres_db):
    # A worker's completion of a sequential step's instance goes through the lock, which starts the next one
    # (the one-statement completion, which starts nothing, is only for steps whose instances all run at once).
    assert connection.vendor == "postgresql"
    noop_flow("seq_one", inputs=[{"name": "n", "type": "number"}], outputs={"v": ("number", "n")})
    orch = orchestration([{"name": "fan", "steps": [bg("each", "seq_one", for_each="[1, 2, 3]",
                                                      inputs={"n": "double(item)"}, sequential=True)]}])
    fx = Recorder()
    run = engine.start_run(orch, effects=fx)
    first = StepRun.objects.get(run=run, instance_index=0)
    assert fx.sent == [first.pk]
    assert worker.execute_claimed(worker.claim(fx.sent.pop(0), "t0")) == "completed"
    statuses = list(StepRun.objects.filter(run=run, instance_index__isnull=False)
                    .order_by("instance_index").values_list("status", flat=True))
    assert statuses == ["completed", "queued", "waiting"]
    assert RunEvent.objects.filter(run=run, kind="step_queued", data__instance=1).count() == 1


def test_a_workers_instance_completion_that_meets_the_rule_skips_the_counted_stage_statement(postgres_db):
    from django.test.utils import CaptureQueriesContext
    noop_flow("pg_meet", inputs=[{"name": "n", "type": "number"}], outputs={"v": ("number", "n")})
    orch = orchestration([{"name": "fan", "steps": [bg("each", "pg_meet", for_each="[1, 2]",
                                                      inputs={"n": "double(item)"}, completion="any")]}])
    fx = Recorder()
    run = engine.start_run(orch, effects=fx)
    first = StepRun.objects.get(run=run, instance_index=0)
    claimed = worker.claim(first.pk, "t0")
    with CaptureQueriesContext(connection) as queries:
        assert worker.execute_claimed(claimed) == "completed"
    assert [q["sql"] for q in queries.captured_queries if "g.open_steps - 1" in q["sql"]] == []  # worker._COMPLETE_COUNTED_SQL
    assert StepRun.objects.get(run=run, step_name="each", instance_index__isnull=True).status == "completed"
