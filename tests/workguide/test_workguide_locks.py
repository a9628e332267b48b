"""Work item actions and engine transitions on PostgreSQL: locks in one order, so no deadlock.

Every engine transition (``cancel_run``, a step's completion, ...) locks the
run's row first and then writes the run's work items. A work item action
(complete, claim, unclaim, reassign) that locked the item first and the run
second (or wrote a RunEvent, whose foreign key takes a share lock on the run
row) could hold one lock each with a concurrent cancel: a deadlock, which
PostgreSQL breaks by failing one of them. ``workguide.services`` locks the
run first.

Each thread below has its own database connection (Django's connections are
per thread; ``postgres_db`` points them all at the test's database).
"""
import datetime
import os
import random
import re
import threading
import time

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.utils import timezone

from orchestration import engine
from workguide.effects import WorkGuideEffects
from orchestration.models import OrchestrationRun, StepRun
from tests.pg_locks import in_thread, wait_until, waiting_on_a_lock
from tests.engine_builders import orchestration, ui
from tests.workguide_helpers import ok_flow
from workguide import due, services
from workguide.models import WorkItem

ROUNDS = int(os.environ.get("BATON_LOCK_ROUNDS", "60"))


@pytest.fixture
def setting(postgres_db):
    """alice (in group crew), mona (manager); an orchestration of two one-step stages, given to crew."""
    assert connection.vendor == "postgresql"
    alice = User.objects.create_user("alice")
    crew = Group.objects.create(name="crew")
    alice.groups.add(crew)
    mona = User.objects.create_user("mona")
    mona.user_permissions.add(Permission.objects.get(codename="manage_workitem"))
    User.objects.create_user("quinn")
    flow = ok_flow()
    orch = orchestration([
        {"name": "first", "steps": [ui("first", flow.api_name, {"group": "crew"})]},
        {"name": "second", "steps": [ui("second", flow.api_name, {"group": "crew"})]},
    ])
    return {"alice": alice, "mona": User.objects.get(pk=mona.pk), "orch": orch}



class PausingEffects(WorkGuideEffects):
    """Stops the transition where it holds the run's lock and is about to cancel the work items."""

    def __init__(self):
        self.paused = threading.Event()
        self.go = threading.Event()

    def close_work_items(self, ctx, step_runs, status):
        self.paused.set()
        assert self.go.wait(20), "never released"
        super().close_work_items(ctx, step_runs, status)


ACTIONS = {
    "complete": lambda item, s: services.complete_work_item(item, s["alice"], {"ok": True}),
    "claim": lambda item, s: services.claim(item, s["alice"]),
    "unclaim": lambda item, s: services.unclaim(item, s["alice"]),
    "reassign": lambda item, s: services.reassign(item, s["mona"], "user:quinn"),
    "escalate": lambda item, s: due._escalate(item.pk, timezone.now()),  # the beat task's overdue escalation
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_an_action_arriving_while_a_cancel_holds_the_run_waits_for_it_instead_of_deadlocking(
        setting, postgres_db, action):
    """Deterministic: the cancel holds the run's lock and is about to cancel the item when the action
    (or the beat task's escalation of an overdue item) starts. The action must wait for the run (taking nothing the cancel needs), then find the item
    canceled. Locking the item first, it would hold what the cancel needs next: a deadlock."""
    run = engine.start_run(setting["orch"])
    item = WorkItem.objects.get(run=run)
    WorkItem.objects.filter(pk=item.pk).update(due_at=timezone.now() - datetime.timedelta(days=1))
    if action == "unclaim":
        services.claim(item, setting["alice"])
    item = WorkItem.objects.select_related("claimed_by", "assignee_queue").get(pk=item.pk)
    effects = PausingEffects()
    results = {}
    canceler = in_thread(lambda: engine.cancel_run(run.pk, effects=effects), results, "cancel")
    assert effects.paused.wait(10), results
    worker = in_thread(lambda: ACTIONS[action](item, setting), results, "action")
    assert wait_until(lambda: waiting_on_a_lock(postgres_db) >= 1), "the action did not wait on a lock"
    effects.go.set()
    canceler.join(20)
    worker.join(20)
    assert not canceler.is_alive() and not worker.is_alive()
    assert results["cancel"] is None, f"cancel_run failed: {results['cancel']!r}"
    if action == "unclaim":  # unclaiming needs no open item: it simply happens after the cancel
        assert isinstance(results["action"], WorkItem), repr(results["action"])
    elif action == "escalate":  # no longer open: nothing to escalate
        assert results["action"] is False, repr(results["action"])
    else:
        assert isinstance(results["action"], services.WorkItemClosed), repr(results["action"])
    run.refresh_from_db()
    item.refresh_from_db()
    assert run.status == "canceled" and item.status == "canceled"
    assert item.assignee_group.name == "crew" and item.escalated_at is None  # refused actions changed nothing
    assert StepRun.objects.get(pk=item.step_run_id).status == "discontinued"


def test_completing_items_while_their_runs_are_canceled_never_deadlocks(setting):
    """ROUNDS runs (BATON_LOCK_ROUNDS, default 60): on each, one thread completes the first item while
    another cancels the run, released together (each after a small random delay, so either may go
    first). Every round must end one of the two consistent ways; any other ending is collected and
    reported with the count of rounds it happened in."""
    runs = [engine.start_run(setting["orch"]) for _ in range(ROUNDS)]
    outcomes = {"completed then canceled": 0, "canceled first": 0}
    problems = []
    rng = random.Random(12)
    for run in runs:
        item = WorkItem.objects.select_related("claimed_by").get(run=run)
        results = {}
        barrier = threading.Barrier(2)
        delays = (rng.random() * 0.004, rng.random() * 0.004)

        def complete(item=item, delay=delays[0]):
            time.sleep(delay)
            return services.complete_work_item(item, setting["alice"], {"ok": True})

        def cancel(run_id=run.pk, delay=delays[1]):
            time.sleep(delay)
            return engine.cancel_run(run_id)

        threads = [in_thread(complete, results, "complete", barrier), in_thread(cancel, results, "cancel", barrier)]
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads), f"run {run.pk}: a thread hangs"
        if results["cancel"] is not None:
            problems.append(f"run {run.pk}: cancel_run failed: {results['cancel']!r}")
            continue
        run.refresh_from_db()
        items = {i.step_run.step_name: i for i in WorkItem.objects.filter(run=run).select_related("step_run")}
        first = items["first"]
        if isinstance(results["complete"], WorkItem):
            # the completion went first: the step completed, the run moved on, the cancel closed stage two
            assert first.status == "completed" and first.completed_by_id == setting["alice"].pk
            assert first.step_run.status == "completed" and first.step_run.outputs == {"ok": True}
            assert items["second"].status == "canceled" and items["second"].step_run.status == "discontinued"
            outcomes["completed then canceled"] += 1
        elif isinstance(results["complete"], services.WorkItemClosed):
            assert first.status == "canceled" and first.step_run.status == "discontinued"
            assert set(items) == {"first"}
            outcomes["canceled first"] += 1
        else:
            problems.append(f"run {run.pk}: the completion failed: {results['complete']!r}")
            continue
        assert run.status == "canceled"
    print(f"lock order rounds: {outcomes}, problems: {len(problems)}")
    assert not problems, f"{len(problems)} of {ROUNDS} rounds failed; the first: {problems[0]}"
    assert sum(outcomes.values()) == ROUNDS


def test_the_same_launch_form_sent_twice_at_once_starts_one_run(setting):
    """Issue 17 #4: a double click on the launch button started two runs. Both POSTs of one rendered form,
    released together, ROUNDS/6 times: the second waits for the first's token row (unique), then answers
    with the first run; never two runs, never an error."""
    from django.test import Client

    from workguide.models import LaunchRequest

    launcher = User.objects.create_user("lena")
    launcher.user_permissions.add(Permission.objects.get(codename="launch_orchestration"))
    api_name = setting["orch"].api_name
    rounds = max(ROUNDS // 6, 3)
    for round_number in range(rounds):
        token = f"{round_number:032x}"
        data = {"api_name": api_name, "token": token, "next": "/workguide/"}
        results = {}
        barrier = threading.Barrier(2)

        def send():
            client = Client()
            client.force_login(launcher)
            response = client.post("/workguide/launch/", data, follow=True)
            # (response.context would mix both threads' templates: the test client's signal is global)
            messages = re.findall(r'<li class="message [^"]*">([^<]*)</li>', response.content.decode())
            return response.status_code, messages

        threads = [in_thread(send, results, key, barrier) for key in ("a", "b")]
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads)
        answers = sorted(results.values(), key=lambda answer: len(answer[1][0]))
        assert [status for status, _ in answers] == [200, 200], answers
        run = LaunchRequest.objects.get(token=token).run
        assert answers[0][1] == [f"Started {run.orchestration.label or api_name} (run #{run.pk})."], answers
        assert "only one run was started" in answers[1][1][0], answers
    assert OrchestrationRun.objects.count() == rounds


def test_two_members_bulk_claiming_the_same_items_at_once_each_item_goes_to_one(setting):
    """Issue 17 point 3: bulk claim from My Work by two members of the group, in opposite orders, released
    together: every item ends claimed by exactly one of them, each page reports one ✓ per item it won and an
    ✗ "already claimed" for the rest, no error and no deadlock."""
    from django.test import Client

    gina = User.objects.create_user("gina")
    gina.groups.add(Group.objects.get(name="crew"))
    for round_number in range(max(ROUNDS // 12, 3)):
        ids = [WorkItem.objects.get(run=engine.start_run(setting["orch"])).pk for _ in range(5)]
        results, barrier = {}, threading.Barrier(2)

        def bulk_claim(user, order):
            def send():
                client = Client()
                client.force_login(user)
                response = client.post("/workguide/bulk/", {"action": "claim", "items": order})
                page = response.content.decode()
                return response.status_code, page.count("✓ claimed"), page.count("is already claimed by")
            return send

        threads = [in_thread(bulk_claim(setting["alice"], ids), results, "alice", barrier),
                   in_thread(bulk_claim(gina, list(reversed(ids))), results, "gina", barrier)]
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads)
        assert all(not isinstance(r, BaseException) for r in results.values()), results
        assert [r[0] for r in results.values()] == [200, 200]
        won = {name: WorkItem.objects.filter(pk__in=ids, claimed_by__username=name).count() for name in results}
        assert sum(won.values()) == 5, won
        for name, (_, ok, refused) in results.items():
            assert ok == won[name] and refused == 5 - won[name], (name, results)
