"""A transition's statements on PostgreSQL, built once from the models, against the ORM's (other databases):
what it reads (``read_locked_run``, ``read_step_runs``, ``read_active_flows``), what it writes when it ends
(``write_rows``) and how a stage visit follows another (``insert_stage_visit`` with ``closing``)."""
from datetime import timedelta

from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from orchestration import engine, journal, transition
from orchestration.models import EventKind, OrchestrationRun, RunEvent, StageRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration

STEPS = [("a", "background"), ("b", "background"), ("c", "interactive")]


def _events(run, actor, now):
    # Values a JSON parameter could bend: microseconds and an offset, quotes, non-ASCII, nesting, nulls, numbers.
    return [
        journal.new_event(EventKind.RUN_STARTED, run=run, at=now, actor=actor, version=3, inputs={"a": [1, 2.5, None]}),
        journal.new_event(EventKind.STAGE_STARTED, run=run, at=now + timedelta(microseconds=7), stage='Stufe "1"',
                          visit=1),
        journal.new_event(EventKind.STEP_COMPLETED, run=run, at=now, stage='Stufe "1"', step="étape ✓",
                          outputs={"text": "it's \\ 'quoted'", "deep": {"list": [{"x": True}]}}),
        journal.new_event(EventKind.RUN_COMPLETED, run=run, at=now + timedelta(seconds=1)),
    ]


def _a_run_with_a_stage(orch, now, open_steps=3):
    run = OrchestrationRun.objects.create(orchestration=orch, started_at=now)
    stage_run, step_runs = transition.insert_stage_visit(run, "s", 0, 1, now, open_steps, STEPS)
    return run, stage_run, step_runs


def _changes(run, stage_run, step_runs, now, actor):
    """The same changes made to either run's objects: what write_rows is given."""
    a, b, c = step_runs
    for step in (a, b):  # alike: one UPDATE ... WHERE id IN on PostgreSQL
        step.status, step.queued_at, step.inputs = "queued", now, {"n": 1, "s": "x'y"}
    c.status, c.outputs, c.completed_by = "completed", {"ok": True, "list": [1, "two"]}, "ann"
    run.status, run.current_stage, run.stage_visits, run.error = "error", "s", 2, "it's ✗"
    rows = [(a, ["status", "queued_at", "inputs"]), (b, ["status", "queued_at", "inputs"]),
            (c, ["status", "outputs", "completed_by"]),
            (run, ["status", "current_stage", "stage_visits", "error"])]
    return rows, {stage_run.pk: -1}, _events(run, actor, now)


def _rows_of(run):
    def plain(obj, *exclude):
        return model_to_dict(obj, exclude=["id", "run", "stage_run", "started_at", *exclude])
    return {
        "run": plain(OrchestrationRun.objects.get(pk=run.pk)),
        "stages": [plain(s) for s in StageRun.objects.filter(run=run).order_by("id")],
        "steps": [plain(s, "created_at") for s in StepRun.objects.filter(run=run).order_by("id")],
        "events": [plain(e) for e in RunEvent.objects.filter(run=run).order_by("id")],
    }


def test_a_transition_writes_alike_both_ways(postgres_db, django_assert_num_queries):
    """Rows of three models, rows alike, a count change and events: one statement writes exactly what the ORM
    writes in turn (every column, read back), events in the order they were noted."""
    assert connection.vendor == "postgresql"
    noop_flow("writes_noop")
    orch = orchestration([{"name": "s", "steps": [bg("x", "writes_noop")]}], api_name="writes_rows")
    actor = User.objects.create_user("writes-actor")
    now = timezone.now().replace(microsecond=123456)
    fast, orm = _a_run_with_a_stage(orch, now), _a_run_with_a_stage(orch, now)

    with django_assert_num_queries(1):
        transition.write_rows(*_changes(*fast, now, actor))
    with mock.patch.object(connection, "vendor", "sqlite"):  # the other databases' way, on the same database
        transition.write_rows(*_changes(*orm, now, actor))

    assert _rows_of(fast[0]) == _rows_of(orm[0])
    written = _rows_of(fast[0])
    assert [e["kind"] for e in written["events"]] == ["run_started", "stage_started", "step_completed", "run_completed"]
    assert written["events"][1]["at"] == now + timedelta(microseconds=7)
    assert written["stages"][0]["open_steps"] == 2
    assert written["run"]["error"] == "it's ✗" and written["steps"][2]["outputs"] == {"ok": True, "list": [1, "two"]}


def test_a_count_change_and_other_fields_of_one_stage_are_one_update(postgres_db, django_assert_num_queries):
    """PostgreSQL refuses to change one row twice in a statement: a stage's count change joins its own UPDATE."""
    noop_flow("writes_noop2")
    orch = orchestration([{"name": "s", "steps": [bg("x", "writes_noop2")]}], api_name="writes_rows2")
    run, stage_run, _ = _a_run_with_a_stage(orch, timezone.now())
    stage_run.ended_at = timezone.now()
    with django_assert_num_queries(1):
        transition.write_rows([(stage_run, ["ended_at"])], {stage_run.pk: -2}, [])
    stored = StageRun.objects.get(pk=stage_run.pk)
    assert (stored.open_steps, stored.ended_at) == (1, stage_run.ended_at)
    with django_assert_num_queries(0):
        transition.write_rows([], {}, [])


def test_a_stage_visit_following_another_closes_it_in_the_same_statement(postgres_db, django_assert_num_queries):
    """The close of the visit left and the insert of the next are one statement, and the one-in-progress index
    holds: the close is written before the insert is checked."""
    noop_flow("writes_noop3")
    orch = orchestration([{"name": "s", "steps": [bg("x", "writes_noop3")]}], api_name="writes_rows3")
    now = timezone.now()
    run, first, _ = _a_run_with_a_stage(orch, now, open_steps=2)
    first.status, first.ended_at, first.open_steps = "completed", now, 0
    with django_assert_num_queries(1):
        second, steps = transition.insert_stage_visit(run, "s", 0, 2, now, None, STEPS[:1],
                                                      closing=(first, ("status", "ended_at", "open_steps")))
    assert list(StageRun.objects.filter(run=run).order_by("id").values_list("visit", "status", "open_steps")) == [
        (1, "completed", 0), (2, "in_progress", None)]
    assert [s.step_name for s in steps] == ["a"] and steps[0].stage_run_id == second.pk

    # Without the close, the index refuses a second visit in progress (what the ordering above avoids).
    from django.db import IntegrityError, transaction
    with pytest.raises(IntegrityError), transaction.atomic():
        transition.insert_stage_visit(run, "s", 0, 3, now, None, STEPS[:1])


@pytest.mark.django_db
def test_a_run_writes_its_stages_and_journal_the_same_on_any_database():
    noop_flow("writes_noop4")
    orch = orchestration([{"name": "one", "steps": [bg("x", "writes_noop4")]},
                          {"name": "two", "steps": [bg("y", "writes_noop4")]}], api_name="writes_rows4")
    run = engine.start_run(orch)
    x = StepRun.objects.get(run=run, step_name="x")
    engine.complete_step(x.pk, {})
    assert list(StageRun.objects.filter(run=run).order_by("id").values_list("stage_name", "status")) == [
        ("one", "completed"), ("two", "in_progress")]
    assert list(RunEvent.objects.filter(run=run).order_by("id").values_list("kind", "stage_name", "step_name")) == [
        ("run_started", "", ""), ("stage_started", "one", ""), ("step_queued", "one", "x"),
        ("step_completed", "one", "x"), ("stage_completed", "one", ""), ("stage_started", "two", ""),
        ("step_queued", "two", "y")]
    assert OrchestrationRun.objects.get(pk=run.pk).current_stage == "two"


def _grid(api_name):
    noop_flow(f"{api_name}_noop")
    return orchestration([{"name": f"s{i}", "steps": [bg(f"s{i}x{j}", f"{api_name}_noop") for j in range(4)]}
                          for i in range(3)], api_name=api_name)


def test_twelve_steps_in_process_are_six_statements_on_postgresql(postgres_db, settings, django_assert_num_queries):
    """The run's insert, the active flows, three stage visits (each closing the one before) and one write of
    everything else: half a statement per step (and the transaction's BEGIN and COMMIT)."""
    from unittest import mock

    settings.BATON_STEP_EXECUTION = "in_process"
    orch = _grid("writes_grid")
    with mock.patch("orchestration.worker.send_step_message") as send:
        engine.start_run(orch)  # warm the plan and flow caches
        with django_assert_num_queries(6 + 2):
            run = engine.start_run(orch)
    assert send.call_count == 0
    assert StepRun.objects.filter(run=run, status="completed").count() == 12
    assert list(StageRun.objects.filter(run=run).values_list("status", flat=True)) == ["completed"] * 3
    assert RunEvent.objects.filter(run=run).count() == 1 + 3 * 2 + 12 * 2 + 1


def test_a_stage_transition_on_a_worker_is_five_statements_on_postgresql(postgres_db, django_assert_num_queries):
    """The last step of a stage completes under the run's lock: lock, read, the next visit (closing this
    one), active flows and one write of the rest, the step's completion with it (and BEGIN and COMMIT)."""
    from unittest import mock

    orch = _grid("writes_grid2")
    with mock.patch("orchestration.worker.send_step_message"):
        run = engine.start_run(orch)
        steps = list(StepRun.objects.filter(run=run).order_by("id"))
        for step in steps[:3]:
            engine.complete_step(step.pk, {}, run_id=run.pk)
        with django_assert_num_queries(5 + 2):
            engine.complete_step(steps[3].pk, {}, run_id=run.pk)
    assert list(StageRun.objects.filter(run=run).order_by("id").values_list("status", flat=True)) == [
        "completed", "in_progress"]
    assert StepRun.objects.filter(run=run, status="queued").count() == 4


def _fields(obj):
    return {k: v for k, v in vars(obj).items() if k != "_state"}


def test_a_transition_reads_alike_both_ways(postgres_db, django_assert_num_queries):
    """Every attribute of the run, its orchestration, each step row and its stage visit (JSON, times, nulls)
    as the ORM gives them; instances left out; the same active flows."""
    from orchestration.transition import read_active_flows, read_locked_run, read_step_runs

    noop_flow("reads_noop", outputs={"n": ("number", "1")})
    orch = orchestration([
        {"name": "one", "steps": [bg("a", "reads_noop"), bg("many", "reads_noop", for_each="[1, 2, 3]")]},
        {"name": "two", "steps": [bg("b", "reads_noop")]},
    ], api_name="reads_rows")
    run = engine.start_run(orch, inputs={})
    for step in StepRun.objects.filter(run=run, instance_index__isnull=True, stage_run__stage_name="one"):
        if step.step_name == "a":
            engine.complete_step(step.pk, {"n": 2, "text": "it's ✓", "list": [None, 1.5]}, run_id=run.pk)
    assert StepRun.objects.filter(run=run, instance_index__isnull=False).exists()
    assert StepRun.objects.filter(run=run, outputs__n=2).exists()

    from django.db import transaction

    with transaction.atomic():  # the run's lock is taken in a transition's transaction
        with django_assert_num_queries(1):
            fast_steps = read_step_runs(run)
        with django_assert_num_queries(1):
            fast_run = read_locked_run(run.pk)
        fast_flows = read_active_flows(("reads_noop", "no_such_flow"))
        with mock.patch.object(connection, "vendor", "sqlite"):  # the other databases' way, on the same database
            orm_steps, orm_run = read_step_runs(run), read_locked_run(run.pk)
            orm_flows = read_active_flows(("reads_noop", "no_such_flow"))

    assert [s.step_name for s in fast_steps] == ["a", "many"]
    assert [_fields(s) for s in fast_steps] == [_fields(s) for s in orm_steps]
    assert [_fields(s.stage_run) for s in fast_steps] == [_fields(s.stage_run) for s in orm_steps]
    assert all(not s._state.adding and s._state.db == "default" for s in fast_steps)
    assert _fields(fast_run) == _fields(orm_run)
    assert _fields(fast_run.orchestration) == _fields(orm_run.orchestration)
    assert fast_flows == orm_flows == {"reads_noop": fast_steps[0].flow_id}
    with pytest.raises(OrchestrationRun.DoesNotExist), transaction.atomic():
        read_locked_run(run.pk + 1000)


def test_an_event_name_too_long_for_its_column_is_refused_not_cut(postgres_db):
    """The JSON insert gives text columns as text: a value longer than its column fails as the ORM's insert did
    (a cast to varchar(100) would have cut it short without a word)."""
    from django.db import DataError, transaction

    noop_flow("writes_noop5")
    orch = orchestration([{"name": "s", "steps": [bg("x", "writes_noop5")]}], api_name="writes_rows5")
    run = OrchestrationRun.objects.create(orchestration=orch)
    event = journal.new_event(EventKind.DECISION_TAKEN, run=run, stage="d" * 101)
    with pytest.raises(DataError), transaction.atomic():
        transition.write_rows([], {}, [event])
    assert not RunEvent.objects.filter(run=run).exists()


def test_a_claim_prepared_before_a_column_is_added_still_claims(postgres_db):
    """Prepared statements (config/database.py) and a migration that adds a column while workers hold their
    connections: the claim names its columns, so its prepared plan stays valid (with ``s.*`` PostgreSQL answered
    "cached plan must not change result type")."""
    from unittest import mock

    from orchestration import worker

    noop_flow("writes_noop6")
    orch = orchestration([{"name": "s", "steps": [bg(f"x{i}", "writes_noop6") for i in range(8)]}],
                         api_name="writes_rows6")
    with mock.patch("orchestration.worker.send_step_message"):
        run = engine.start_run(orch)
    steps = list(StepRun.objects.filter(run=run).order_by("id"))
    for step in steps[:6]:  # past the threshold: the claim is prepared on this connection
        assert worker.claim(step.pk, "t") is not None
    with postgres_db.connect(autocommit=True) as other:  # another session migrates
        other.execute("ALTER TABLE orchestration_steprun ADD COLUMN added_later integer")
    claimed = worker.claim(steps[6].pk, "t")
    assert claimed is not None and claimed.status == "running" and claimed.pk == steps[6].pk
