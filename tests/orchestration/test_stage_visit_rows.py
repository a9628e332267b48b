"""A stage visit's rows (``transition.insert_stage_visit``): one statement on PostgreSQL, the ORM elsewhere."""
import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from orchestration import engine, transition
from orchestration.models import OrchestrationRun, StageRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration

STEPS = [("a", "background"), ("b", "interactive"), ("c", "background")]


def _rows(stage_run):
    stage = model_to_dict(StageRun.objects.get(pk=stage_run.pk), exclude=["id"])
    steps = [model_to_dict(s, exclude=["id", "stage_run"])
             for s in StepRun.objects.filter(stage_run=stage_run).order_by("id")]
    return stage, steps


def test_a_stage_visit_is_inserted_alike_both_ways(postgres_db, django_assert_num_queries):
    """The one-statement insert writes exactly the rows the ORM writes (every column, read back),
    and gives the objects their ids in the order of the steps."""
    assert connection.vendor == "postgresql"
    noop_flow("visit_noop")
    orch = orchestration([{"name": "s", "steps": [bg("x", "visit_noop")]}], api_name="visit_rows")
    run, other = (OrchestrationRun.objects.create(orchestration=orch) for _ in range(2))
    now = timezone.now()
    with django_assert_num_queries(1):
        fast_stage, fast_steps = transition.insert_stage_visit(run, "s", 0, 1, now, 3, STEPS)
    assert [s.step_name for s in fast_steps] == ["a", "b", "c"]
    assert all(s.pk and s.stage_run_id == fast_stage.pk and not s._state.adding for s in fast_steps)
    assert [s.pk for s in fast_steps] == sorted(s.pk for s in fast_steps)

    # The ORM's way (other databases), on the same database, for another run.
    orm_stage, orm_steps = transition._insert_with_the_orm(
        StageRun(run=other, stage_name="s", position=0, visit=1, started_at=now, open_steps=3),
        [StepRun(run=other, step_name=name, type=kind, created_at=now) for name, kind in STEPS])
    assert [s.step_name for s in orm_steps] == ["a", "b", "c"]

    fast, orm = _rows(fast_stage), _rows(orm_stage)
    assert {**fast[0], "run": other.pk} == orm[0]
    assert [{**row, "run": other.pk} for row in fast[1]] == orm[1]


def test_a_stage_without_steps_is_inserted_alone(postgres_db):
    noop_flow("visit_noop2")
    orch = orchestration([{"name": "s", "steps": [bg("x", "visit_noop2")]}], api_name="visit_rows2")
    run = OrchestrationRun.objects.create(orchestration=orch)
    stage_run, step_runs = transition.insert_stage_visit(run, "s", 0, 1, timezone.now(), None, [])
    assert step_runs == [] and StageRun.objects.filter(pk=stage_run.pk, status="in_progress").exists()


@pytest.mark.django_db
def test_runs_pass_their_stages_the_same_on_any_database():
    noop_flow("visit_noop3")
    orch = orchestration([{"name": "one", "steps": [bg("x", "visit_noop3"), bg("y", "visit_noop3")]},
                          {"name": "two", "steps": [bg("z", "visit_noop3")]}], api_name="visit_rows3")
    run = engine.start_run(orch)
    rows = list(StepRun.objects.filter(run=run).order_by("id").values_list("stage_run__stage_name", "step_name",
                                                                           "status"))
    assert rows == [("one", "x", "queued"), ("one", "y", "queued")]
