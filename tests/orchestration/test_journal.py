"""The run journal (issue 13, point 3): one ``EventKind``, one writer, stage names on step events."""
import ast
import pathlib
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from orchestration import engine, journal, worker
from orchestration.models import EventKind, RunEvent, StepRun
from orchestration.worker import claim, execute_claimed, sweep_stuck_steps
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow
from workguide import services
from workguide.models import WorkItem

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _a_busy_run(fx, capture):
    """A run that goes through retries, a lost worker, a work item's claim, release, comment and reassignment."""
    alice = User.objects.create_user("alice")
    User.objects.create_user("bob")
    noop_flow("fine", outputs={"x": ("number", "1")})
    noop_flow("broken", outputs={"x": ("number", "1 / 0")})
    form = screen_flow()
    orch = orchestration([
        {"name": "work", "steps": [bg("flaky", "broken", retries=1), bg("lost", "fine"),
                                   {"name": "ask", "type": "interactive", "flow": form.api_name, "assignee": {"user": "alice"}}]},
    ])
    run = engine.start_run(orch, effects=fx)
    flaky, lost = (StepRun.objects.get(run=run, step_name=name) for name in ("flaky", "lost"))
    with mock.patch("orchestration.worker.send_step_message"), capture(execute=True):
        execute_claimed(claim(flaky.pk, "t1"))  # fails once: a retry is scheduled
        claim(lost.pk, "t2")  # claimed, then its worker vanished
        assert sweep_stuck_steps(now=timezone.now() + timedelta(hours=1)) >= 1
    item = WorkItem.objects.get(run=run)
    services.claim(item, alice)
    services.unclaim(WorkItem.objects.get(pk=item.pk), alice)
    services.add_comment(WorkItem.objects.get(pk=item.pk), alice, "looking")
    services.reassign(WorkItem.objects.get(pk=item.pk), alice, "user:bob")
    return run


def test_events_about_a_step_name_its_stage(fx, django_capture_on_commit_callbacks, db, settings):
    """Before: step_retry_scheduled, step_resent and the work item's claim/release/comment/reassign lacked it."""
    run = _a_busy_run(fx, django_capture_on_commit_callbacks)
    kinds = set(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert {"step_retry_scheduled", "step_resent", "work_item_claimed", "work_item_unclaimed", "comment",
            "work_item_reassigned"} <= kinds
    missing = list(RunEvent.objects.filter(run=run).exclude(step_name="").filter(stage_name="")
                   .values_list("kind", "step_name"))
    assert missing == []
    assert set(RunEvent.objects.filter(run=run).exclude(step_name="").values_list("stage_name", flat=True)) == {"work"}


def test_every_stored_kind_is_an_event_kind(fx, django_capture_on_commit_callbacks, db):
    run = _a_busy_run(fx, django_capture_on_commit_callbacks)
    engine.cancel_run(run.pk, reason="enough")
    stored = set(RunEvent.objects.values_list("kind", flat=True))
    assert stored and stored <= set(EventKind.values)


def test_an_unknown_kind_is_refused_where_it_is_written(db):
    with pytest.raises(ValueError):
        journal.new_event("step_wandered", run_id=1)


def _kind_arguments():
    """Every first argument of a call that writes an event, in the apps' source."""
    writers = {"event", "record", "new_event", "_log", "_event"}
    for folder in ("orchestration", "workguide", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and node.args:
                    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                    if name in writers and not (name == "event" and getattr(node.func, "value", None) is None):
                        yield f"{path.relative_to(ROOT)}:{node.lineno}", node.args[0]


def test_events_are_written_with_event_kinds_not_bare_strings():
    literals = [place for place, arg in _kind_arguments() if isinstance(arg, ast.Constant | ast.JoinedStr)]
    assert literals == []
    named = {arg.attr for _, arg in _kind_arguments()
             if isinstance(arg, ast.Attribute) and getattr(arg.value, "id", None) == "EventKind"}
    assert named and named <= set(EventKind.names)


def test_the_sql_statements_take_their_kind_as_a_parameter():
    for sql in (worker._CLAIM_SQL, worker._COMPLETE_COUNTED_SQL):
        insert = sql[sql.index("INSERT INTO orchestration_runevent"):]
        assert "%(kind)s" in insert and "'step_" not in insert
