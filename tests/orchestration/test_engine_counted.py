"""Counted stages on PostgreSQL: a worker completes a step in one statement; the last one, under the lock, moves the run on.

``worker.complete_background_step`` and ``StageRun.open_steps`` (kept by
every transition through ``Transition._open_count_changes``).
"""
import pytest
from django.db import connection

from orchestration import engine, worker
from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration
from tests.pg_locks import wait_until, waiting_on_a_lock
from tests.engine_builders import Recorder


def open_count_matches(stage_run):
    stage_run.refresh_from_db()
    open_rows = StepRun.objects.filter(stage_run=stage_run, status__in=["waiting", "queued", "running"]).count()
    return stage_run.open_steps == open_rows


@pytest.fixture
def grid(postgres_db):
    assert connection.vendor == "postgresql"
    noop_flow("g", outputs={"n": ("number", "7")})
    return orchestration([
        {"name": "one", "steps": [bg(f"a{i}", "g") for i in range(4)]},
        {"name": "two", "steps": [bg("b", "g", inputs={}), bg("c", "g", entry={"after": ["b"]})]},
    ])


def test_three_completions_are_one_statement_each_and_the_last_moves_the_run(grid, django_assert_num_queries):
    fx = Recorder()
    run = engine.start_run(grid, effects=fx)
    one = StageRun.objects.get(run=run, stage_name="one")
    assert one.open_steps == 4
    ids = list(StepRun.objects.filter(stage_run=one).order_by("id").values_list("id", flat=True))
    for left, step_run_id in zip((3, 2, 1), ids[:3]):
        with django_assert_num_queries(1):
            assert worker.complete_background_step(step_run_id, {"n": 7}, run_id=run.pk, effects=fx) is True
        one.refresh_from_db()
        assert one.open_steps == left and one.status == "in_progress"
    assert not StageRun.objects.filter(run=run, stage_name="two").exists()
    # The statement refuses the last open step: its completion and the stage's
    # transition must be one transaction (complete_step), never "all done, stage open".
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute(worker._COMPLETE_COUNTED_SQL, {"id": ids[3], "now": timezone.now(), "outputs": "{}",
                                                      "kind": "step_completed", "running_kind": "step_running",
                                                      "on_receipt": False, "queued_at": None, "task_id": "",
                                                      "received_at": None})
        assert cursor.fetchone() is None
    assert StepRun.objects.get(pk=ids[3]).status == "queued"
    one.refresh_from_db()
    assert one.open_steps == 1
    assert worker.complete_background_step(ids[3], {"n": 7}, run_id=run.pk, effects=fx) is True
    one.refresh_from_db()
    assert one.status == "completed" and one.open_steps == 0
    two = StageRun.objects.get(run=run, stage_name="two")
    assert two.open_steps is None  # an `after` step: this stage's completions take the lock
    assert all(s.status == "completed" and s.outputs == {"n": 7} and s.ended_at and s.lease_until is None
               for s in StepRun.objects.filter(stage_run=one))
    events = list(RunEvent.objects.filter(run=run, kind="step_completed").values_list("stage_name", "step_name", "data"))
    assert events == [("one", f"a{i}", {"outputs": {"n": 7}}) for i in range(4)]
    assert RunEvent.objects.filter(run=run, kind="stage_completed").count() == 1
    # The uncounted stage goes through complete_step; the run completes.
    b = StepRun.objects.get(stage_run=two, step_name="b")
    assert worker.complete_background_step(b.pk, {}, run_id=run.pk, effects=fx)
    c = StepRun.objects.get(stage_run=two, step_name="c")
    assert worker.complete_background_step(c.pk, {}, run_id=run.pk, effects=fx)
    assert OrchestrationRun.objects.get(pk=run.pk).status == "completed"


def test_a_duplicate_completion_is_ignored_and_counts_nothing(grid):
    fx = Recorder()
    run = engine.start_run(grid, effects=fx)
    one = StageRun.objects.get(run=run, stage_name="one")
    first = StepRun.objects.filter(stage_run=one).first()
    assert worker.complete_background_step(first.pk, {}, run_id=run.pk, effects=fx) is True
    assert worker.complete_background_step(first.pk, {}, run_id=run.pk, effects=fx) is False
    assert RunEvent.objects.filter(run=run, kind="completion_ignored").count() == 1
    one.refresh_from_db()
    assert one.open_steps == 3


def test_failure_retry_skip_and_cancel_keep_the_count_equal_to_the_open_steps(grid):
    fx = Recorder()
    run = engine.start_run(grid, effects=fx)
    one = StageRun.objects.get(run=run, stage_name="one")
    a0, a1, a2, a3 = StepRun.objects.filter(stage_run=one).order_by("id")
    worker.complete_background_step(a0.pk, {}, run_id=run.pk, effects=fx)
    engine.fail_step(a1.pk, "boom", run_id=run.pk, effects=fx)
    assert open_count_matches(one) and one.open_steps == 2
    # Completions while the run is in error are recorded (rule 6); the stage waits for the operator.
    worker.complete_background_step(a2.pk, {}, run_id=run.pk, effects=fx)
    worker.complete_background_step(a3.pk, {}, run_id=run.pk, effects=fx)
    assert open_count_matches(one) and one.open_steps == 0
    assert OrchestrationRun.objects.get(pk=run.pk).status == "error"
    engine.retry_step(run.pk, "a1", effects=fx)
    assert open_count_matches(one) and one.open_steps == 1
    engine.fail_step(a1.pk, "boom again", run_id=run.pk, effects=fx)
    assert open_count_matches(one) and one.open_steps == 0
    engine.skip_step(run.pk, "a1", {"n": 1}, effects=fx)
    one.refresh_from_db()
    assert one.status == "completed" and open_count_matches(one)
    two = StageRun.objects.get(run=run, stage_name="two")
    assert two.status == "in_progress"

    # Cancel while a counted stage is open: its steps are discontinued, the count follows.
    other = engine.start_run(grid, effects=fx)
    stage = StageRun.objects.get(run=other, stage_name="one")
    engine.cancel_run(other.pk, effects=fx)
    assert open_count_matches(stage) and stage.open_steps == 0


def test_in_process_steps_keep_no_count(grid, settings):
    settings.BATON_STEP_EXECUTION = "in_process"
    run = engine.start_run(grid)
    assert OrchestrationRun.objects.get(pk=run.pk).status == "completed"
    assert set(StageRun.objects.filter(run=run).values_list("open_steps", flat=True)) == {None}


@pytest.mark.django_db
def test_sqlite_keeps_no_count_and_completes_under_the_lock():
    if connection.vendor != "sqlite":
        pytest.skip("the default database of this run is not SQLite")
    noop_flow("s")
    orch = orchestration([{"name": "one", "steps": [bg("x", "s"), bg("y", "s")]}])
    fx = Recorder()
    run = engine.start_run(orch, effects=fx)
    assert StageRun.objects.get(run=run).open_steps is None
    for step_run_id in fx.sent:
        assert worker.complete_background_step(step_run_id, {}, run_id=run.pk, effects=fx)
    assert OrchestrationRun.objects.get(pk=run.pk).status == "completed"


def test_a_counted_completion_meeting_a_transition_that_holds_the_run_waits_instead_of_deadlocking(
        grid, postgres_db, monkeypatch, caplog):
    """Deterministic: a completion under the run's lock (step a0) has read the stage's steps and is
    about to write the open count when a worker's counted completion of a1 arrives. The counted
    statement must wait for the run first. Before, it took the stage's row, then waited for the run
    (its event's foreign key) while the transition waited for the stage's row: PostgreSQL broke the
    deadlock by failing one of them (the counted one fell back to the lock and logged a warning, or
    the transition itself failed)."""
    import threading

    from django.db import connections

    fx = Recorder()
    run = engine.start_run(grid, effects=fx)
    steps = dict(StepRun.objects.filter(run=run).values_list("step_name", "id"))
    for name in ("a2", "a3"):  # leave a0 and a1 open: a1's counted completion would leave one open
        worker.complete_background_step(steps[name], {"n": 1.0}, run_id=run.pk, effects=fx)

    paused, go = threading.Event(), threading.Event()
    locked_thread = {}
    real_write = engine.Transition._open_count_changes

    def pausing_write(self):
        if threading.get_ident() == locked_thread.get("ident"):
            paused.set()
            assert go.wait(20), "never released"
        return real_write(self)

    monkeypatch.setattr(engine.Transition, "_open_count_changes", pausing_write)
    results = {}

    def in_thread(key, target):
        def body():
            if key == "locked":
                locked_thread["ident"] = threading.get_ident()
            try:
                results[key] = target()
            except BaseException as exc:  # noqa: BLE001 - the test reads what each side got
                results[key] = exc
            finally:
                connections.close_all()
        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        return thread


    caplog.set_level("WARNING", logger="orchestration.worker")
    locked = in_thread("locked", lambda: engine.complete_step(steps["a0"], {"n": 1.0}, run_id=run.pk,
                                                              effects=Recorder()))
    assert paused.wait(10)
    counted = in_thread("counted", lambda: worker.complete_background_step(steps["a1"], {"n": 1.0}, run_id=run.pk,
                                                                           effects=Recorder()))
    wait_until(lambda: waiting_on_a_lock(postgres_db))
    assert waiting_on_a_lock(postgres_db), "the counted completion should wait for the run's lock"
    go.set()
    locked.join(30)
    counted.join(30)

    assert results == {"locked": True, "counted": True}
    assert not [r for r in caplog.records if "counted completion" in r.getMessage()], "the counted statement failed"
    assert StageRun.objects.filter(run=run, stage_name="two").count() == 1
    assert RunEvent.objects.filter(run=run, kind="stage_completed").count() == 1
    assert open_count_matches(StageRun.objects.get(run=run, stage_name="one"))
