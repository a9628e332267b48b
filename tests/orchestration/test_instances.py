"""Multi-instance steps (orchestration/instances.py) and assignee rules (exclude, same_as)."""
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError

from orchestration import engine
from orchestration.models import RunEvent, StepRun
from orchestration.worker import claim, execute_claimed
from tests.engine_builders import bg, drain, noop_flow, orchestration, screen_flow, ui
from workguide import services
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    users = {n: User.objects.create_user(n, email=f"{n}@example.com", password="pw")
             for n in ("alice", "bob", "carol", "dave", "erin", "frank")}
    return users


def step_row(run, name):
    return StepRun.objects.get(run=run, step_name=name, instance_index__isnull=True)


def instance_rows(run, name):
    return list(StepRun.objects.filter(run=run, step_name=name, instance_index__isnull=False).order_by("instance_index"))


def double_flow():
    return noop_flow(inputs=[{"name": "n", "type": "number"}, {"name": "i", "type": "number"}],
                     outputs={"twice": ("number", "n * 2.0"), "at": ("number", "i")})


# ---------------------------------------------------------------------------
# Background instances
# ---------------------------------------------------------------------------

def test_background_instances_run_per_element_and_outputs_are_a_list_in_element_order(fx):
    flow = double_flow()
    noop_flow("after_flow", inputs=[{"name": "all", "type": "list"}, {"name": "firsts", "type": "number"}])
    orch = orchestration([
        {"name": "one", "steps": [bg("double", flow.api_name, for_each="[3.0, 1.0, 2.0]",
                                     inputs={"n": "item", "i": "double(index)"})]},
        {"name": "two", "steps": [bg("next", "after_flow", inputs={
            "all": "steps.double.instances.map(x, x.item)", "firsts": "steps.double.outputs[0].twice"})]},
    ])
    run = engine.start_run(orch, effects=fx)
    assert step_row(run, "double").status == "in_progress"
    assert [r.status for r in instance_rows(run, "double")] == ["queued"] * 3
    # Finish them out of order: the list is still in element order.
    for step_run_id in reversed(fx.sent[:3]):
        execute_claimed(claim(step_run_id, "t"))
    fx.sent = fx.sent[3:]
    assert step_row(run, "double").outputs == [{"twice": 6, "at": 0}, {"twice": 2, "at": 1}, {"twice": 4, "at": 2}]
    nxt = StepRun.objects.get(run=run, step_name="next")
    assert nxt.inputs == {"all": [3, 1, 2], "firsts": 6}
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"


def test_zero_elements_complete_the_step_at_once(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [bg("double", flow.api_name, for_each="[]",
                                                       inputs={"n": "item", "i": "double(index)"})]}])
    run = engine.start_run(orch, effects=fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert step_row(run, "double").outputs == []
    assert instance_rows(run, "double") == []


def test_a_for_each_that_is_not_a_list_is_an_error_naming_the_place(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [bg("double", flow.api_name, for_each="inputs.n",
                                                       inputs={"n": "item", "i": "double(index)"})]}],
                         inputs=[{"name": "n", "type": "number"}])
    run = engine.start_run(orch, effects=fx, inputs={"n": 4})
    run.refresh_from_db()
    assert run.status == "error"
    assert "one › double › for_each" in step_row(run, "double").error and "expected a list" in run.error


def test_an_instance_that_fails_puts_the_step_in_error_and_a_retry_reruns_only_the_failed_ones(fx):
    flow = noop_flow(inputs=[{"name": "n", "type": "number"}], outputs={"inv": ("number", "10.0 / n")})
    orch = orchestration([{"name": "one", "steps": [
        bg("inv", flow.api_name, for_each="inputs.ns", inputs={"n": "item"}, retries=0)]}],
        inputs=[{"name": "ns", "type": "list"}])
    run = engine.start_run(orch, effects=fx, inputs={"ns": [2, 0, 5]})
    drain(fx)
    run.refresh_from_db()
    assert run.status == "error"
    rows = instance_rows(run, "inv")
    assert [r.status for r in rows] == ["completed", "error", "completed"]
    assert step_row(run, "inv").status == "error" and step_row(run, "inv").error.startswith("instance 1:")
    assert RunEvent.objects.filter(run=run, kind="step_error", data__instance=1).exists()
    engine.retry_step(run.pk, "inv", effects=fx)
    assert [r.status for r in instance_rows(run, "inv")] == ["completed", "queued", "completed"]
    # Still fails (the element is 0): skipping the step completes it and the run goes on.
    drain(fx)
    engine.skip_step(run.pk, "inv", outputs=[], effects=fx)
    run.refresh_from_db()
    assert run.status == "completed"


def test_sequential_instances_run_one_after_another(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [bg("double", flow.api_name, for_each="[1.0, 2.0, 3.0]",
                                                       sequential=True, inputs={"n": "item", "i": "double(index)"})]}])
    run = engine.start_run(orch, effects=fx)
    assert [r.status for r in instance_rows(run, "double")] == ["queued", "waiting", "waiting"]
    execute_claimed(claim(fx.sent.pop(0), "t"))
    assert [r.status for r in instance_rows(run, "double")] == ["completed", "queued", "waiting"]
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert [o["twice"] for o in step_row(run, "double").outputs] == [2, 4, 6]


def test_any_completes_at_the_first_and_discontinues_the_rest_which_never_complete_later(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [bg("double", flow.api_name, for_each="[1.0, 2.0, 3.0]",
                                                       completion="any", inputs={"n": "item", "i": "double(index)"})]}])
    run = engine.start_run(orch, effects=fx)
    first, *others = fx.sent
    late = claim(others[0], "t")  # a worker already has this one
    execute_claimed(claim(first, "t"))
    run.refresh_from_db()
    assert run.status == "completed"
    assert [r.status for r in instance_rows(run, "double")] == ["completed", "discontinued", "discontinued"]
    assert step_row(run, "double").outputs == [{"twice": 2, "at": 0}, None, None]
    execute_claimed(late)  # its completion arrives late and is ignored
    assert instance_rows(run, "double")[1].status == "discontinued"
    assert RunEvent.objects.filter(run=run, kind="completion_ignored").count() == 1


def test_percent_and_condition_rules(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [
        bg("half", flow.api_name, for_each="[1.0, 2.0, 3.0, 4.0]", completion={"percent": 50},
           inputs={"n": "item", "i": "double(index)"}),
        bg("big", flow.api_name, for_each="[1.0, 2.0, 3.0]",
           completion={"condition": "instances.exists(x, x.status == 'completed' && x.outputs.twice > 3.0)"},
           inputs={"n": "item", "i": "double(index)"}),
    ]}])
    run = engine.start_run(orch, effects=fx)
    half = [r.pk for r in instance_rows(run, "half")]
    big = [r.pk for r in instance_rows(run, "big")]
    execute_claimed(claim(half[0], "t"))
    assert step_row(run, "half").status == "in_progress"
    execute_claimed(claim(half[3], "t"))
    assert step_row(run, "half").status == "completed"
    execute_claimed(claim(big[0], "t"))  # twice 2: the condition does not hold yet
    assert step_row(run, "big").status == "in_progress"
    execute_claimed(claim(big[1], "t"))  # twice 4
    assert step_row(run, "big").status == "completed"
    assert [r.status for r in instance_rows(run, "big")] == ["completed", "completed", "discontinued"]


def test_remaining_continue_completes_the_step_and_lets_the_rest_go_on(fx):
    flow = double_flow()
    noop_flow("then")
    orch = orchestration([
        {"name": "one", "steps": [bg("double", flow.api_name, for_each="[1.0, 2.0, 3.0]", completion="any",
                                     remaining="continue", inputs={"n": "item", "i": "double(index)"})]},
        {"name": "two", "steps": [bg("then", "then")]},
    ])
    run = engine.start_run(orch, effects=fx)
    ids = [r.pk for r in instance_rows(run, "double")]
    execute_claimed(claim(ids[0], "t"))
    assert step_row(run, "double").status == "completed"
    assert StepRun.objects.get(run=run, step_name="then").status == "queued"
    execute_claimed(claim(ids[1], "t"))
    rows = instance_rows(run, "double")
    assert [r.status for r in rows] == ["completed", "completed", "queued"]
    assert rows[1].outputs == {"twice": 4, "at": 1}
    assert step_row(run, "double").outputs == [{"twice": 2, "at": 0}, None, None]  # recorded on the instance only
    engine.cancel_run(run.pk, effects=fx)
    assert instance_rows(run, "double")[2].status == "discontinued"


def test_at_least_more_than_the_list_is_an_error(fx):
    flow = double_flow()
    orch = orchestration([{"name": "one", "steps": [bg("double", flow.api_name, for_each="inputs.ns",
                                                       completion={"at_least": 3},
                                                       inputs={"n": "item", "i": "double(index)"})]}],
                         inputs=[{"name": "ns", "type": "list"}])
    run = engine.start_run(orch, effects=fx, inputs={"ns": [1, 2]})
    run.refresh_from_db()
    assert run.status == "error" and "completion.at_least: 3 instances can never complete" in run.error


# ---------------------------------------------------------------------------
# Parallel approvals (interactive instances)
# ---------------------------------------------------------------------------

def approval_orchestration(**extra):
    screen_flow("decide", fields=[{"name": "approve", "type": "boolean", "label": "Approve"}])
    noop_flow("after_approval")
    return orchestration([
        {"name": "approval", "steps": [{
            "name": "approve", "type": "interactive", "flow": "decide",
            "assignees": "['user:alice', 'user:bob', 'user:carol', 'user:dave', 'user:erin']", **extra}]},
        {"name": "done", "steps": [bg("after", "after_approval")]},
    ])


def test_a_parallel_approval_of_5_with_at_least_3_ends_after_the_third_with_the_other_two_canceled_and_mailed(
        fx, people, django_capture_on_commit_callbacks, celery_eager):
    orch = approval_orchestration(completion={"at_least": 3})
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(orch, effects=fx)
    items = {i.assignee_user.username: i for i in WorkItem.objects.filter(run=run)}
    assert sorted(items) == ["alice", "bob", "carol", "dave", "erin"]
    mail.outbox.clear()
    for name in ("carol", "alice"):
        with django_capture_on_commit_callbacks(execute=True):
            services.complete_work_item(items[name], people[name], {"approve": True})
        assert step_row(run, "approve").status == "in_progress"
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        services.complete_work_item(items["erin"], people["erin"], {"approve": True})
    assert step_row(run, "approve").status == "completed"
    statuses = {i.assignee_user.username: i.status for i in WorkItem.objects.filter(run=run)}
    assert statuses == {"alice": "completed", "bob": "canceled", "carol": "completed", "dave": "canceled",
                        "erin": "completed"}
    canceled_mail = sorted(m.to[0] for m in mail.outbox)
    assert canceled_mail == ["bob@example.com", "dave@example.com"]
    assert all(m.subject.startswith("No longer needed") for m in mail.outbox)
    assert StepRun.objects.get(run=run, step_name="after").status == "queued"
    # The instances say who finished each, in element order.
    rows = instance_rows(run, "approve")
    assert [r.completed_by for r in rows] == ["alice", "", "carol", "", "erin"]
    with pytest.raises(services.WorkItemClosed):
        services.complete_work_item(items["bob"], people["bob"], {"approve": True})


def test_an_assignees_element_that_is_not_an_assignee_is_an_error_naming_the_place(fx, people):
    screen_flow("decide2", fields=[{"name": "approve", "type": "boolean", "label": "Approve"}])
    orch = orchestration([{"name": "approval", "steps": [{
        "name": "approve", "type": "interactive", "flow": "decide2", "assignees": "['user:alice', 'alice']"}]}])
    run = engine.start_run(orch, effects=fx)
    run.refresh_from_db()
    assert run.status == "error"
    assert "approval › approve › assignees: element 1 is 'alice'" in run.error


# ---------------------------------------------------------------------------
# Assignee rules: exclude and same_as, steps.X.completed_by
# ---------------------------------------------------------------------------

def request_then_review(review_assignee):
    screen_flow("request_form", fields=[{"name": "amount", "type": "number", "label": "Amount"}])
    screen_flow("review_form", fields=[{"name": "ok", "type": "boolean", "label": "OK"}])
    return orchestration([
        {"name": "ask", "steps": [ui("request", "request_form", assignee={"group": "staff"})]},
        {"name": "check", "steps": [ui("review", "review_form", assignee=review_assignee)]},
    ])


@pytest.fixture
def staff(people):
    group = Group.objects.create(name="staff")
    for name in ("alice", "bob", "carol"):
        people[name].groups.add(group)
    return group


def test_the_item_page_tells_an_excluded_user_why_and_offers_no_claim(fx, people, staff, client):
    orch = request_then_review({"group": "staff", "exclude": "[steps.request.completed_by]"})
    run = engine.start_run(orch, effects=fx)
    services.complete_work_item(WorkItem.objects.get(run=run), people["alice"], {"amount": 5})
    review = WorkItem.objects.get(run=run, step_run__step_name="review")
    client.force_login(people["alice"])
    page = client.get(f"/workguide/items/{review.pk}/").content.decode()
    assert "separation of duties" in page and ">Claim</button>" not in page
    client.force_login(people["bob"])
    page = client.get(f"/workguide/items/{review.pk}/").content.decode()
    assert "separation of duties" not in page and ">Claim</button>" in page


def test_exclude_keeps_the_requester_off_the_approval_through_a_group_claim_complete_and_reassign(fx, people, staff):
    orch = request_then_review({"group": "staff", "exclude": "[steps.request.completed_by]"})
    run = engine.start_run(orch, effects=fx)
    request = WorkItem.objects.get(run=run)
    services.complete_work_item(request, people["alice"], {"amount": 100})
    assert step_row(run, "request").completed_by == "alice"
    review = WorkItem.objects.get(run=run, step_run__step_name="review")
    assert review.step_run.excluded_users == ["alice"]
    with pytest.raises(PermissionDenied, match="separation of duties"):
        services.claim(review, people["alice"])
    with pytest.raises(PermissionDenied, match="separation of duties"):
        services.complete_work_item(review, people["alice"], {"ok": True})
    assert not services.can_work(review, people["alice"])
    # Bob holds it and tries to hand it to alice: refused.
    services.claim(review, people["bob"])
    with pytest.raises(ValidationError, match="separation of duties"):
        services.reassign(review, people["bob"], "user:alice")
    # Not even a manager who requested it may approve it.
    people["alice"].user_permissions.add(Permission.objects.get(codename="manage_workitem"))
    alice = User.objects.get(pk=people["alice"].pk)
    services.unclaim(review, people["bob"])
    with pytest.raises(PermissionDenied, match="separation of duties"):
        services.complete_work_item(review, alice, {"ok": True})
    services.complete_work_item(review, people["carol"], {"ok": True})
    run.refresh_from_db()
    assert run.status == "completed"


def test_exclude_naming_the_user_assignee_is_an_error_at_opening(fx, people, staff):
    orch = request_then_review({"expr": "'user:' + steps.request.completed_by",
                                "exclude": "steps.request.completed_by"})
    run = engine.start_run(orch, effects=fx)
    services.complete_work_item(WorkItem.objects.get(run=run), people["bob"], {"amount": 1})
    run.refresh_from_db()
    assert run.status == "error"
    assert "check › review › assignee: user:bob is excluded" in run.error


def test_same_as_gives_the_step_to_whoever_completed_the_named_step(fx, people, staff):
    orch = request_then_review({"same_as": "request"})
    run = engine.start_run(orch, effects=fx)
    services.complete_work_item(WorkItem.objects.get(run=run), people["carol"], {"amount": 1})
    review = WorkItem.objects.get(run=run, step_run__step_name="review")
    assert review.assignee_type == "user" and review.assignee_user == people["carol"]


def test_a_sub_orchestration_step_runs_one_child_per_element(settings):
    from orchestration.models import OrchestrationRun

    settings.BATON_STEP_EXECUTION = "in_process"
    noop_flow("add_one", inputs=[{"name": "n", "type": "number", "required": True}],
              outputs={"total": ("number", "n + 1.0")})
    orchestration([{"name": "work", "steps": [bg("a", "add_one", inputs={"n": "inputs.n"})]}], api_name="kid_each",
                  inputs=[{"name": "n", "type": "number", "required": True}],
                  outputs={"total": "steps.a.outputs.total"})
    parent = orchestration([{"name": "one", "steps": [
        {"name": "call", "type": "orchestration", "orchestration": "kid_each", "for_each": "[10.0, 20.0]",
         "inputs": {"n": "item + double(index)"}}]}], api_name="mum_each")
    run = engine.start_run(parent)
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert step_row(run, "call").outputs == [{"total": 11}, {"total": 22}]
    kids = OrchestrationRun.objects.filter(parent_step_run__run=run).order_by("parent_step_run__instance_index")
    assert [k.inputs for k in kids] == [{"n": 10}, {"n": 21}]


def test_monitor_api_diagram_and_simulate_show_the_instances(fx, people, client, django_capture_on_commit_callbacks):
    from orchestration.diagram import render_diagram
    from orchestration.plan import Plan
    from orchestration.simulate import simulate

    orch = approval_orchestration(completion={"at_least": 3})
    run = engine.start_run(orch, effects=fx)
    items = {i.assignee_user.username: i for i in WorkItem.objects.filter(run=run)}
    for name in ("alice", "bob"):
        services.complete_work_item(items[name], people[name], {"approve": True})
    admin = User.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    page = client.get(f"/monitor/runs/{run.pk}/").content.decode()
    assert "2 of 5 approved" in page
    body = client.get(f"/api/runs/{run.pk}/").json()
    rows = [s for stage in body["stages"] for s in stage["steps"] if s["name"] == "approve"]
    assert [(r["instance_index"], r["item"], r["completed_by"]) for r in rows] == [
        (None, None, ""), (0, "user:alice", "alice"), (1, "user:bob", "bob"), (2, "user:carol", ""),
        (3, "user:dave", ""), (4, "user:erin", "")]
    services.complete_work_item(items["erin"], people["erin"], {"approve": True})
    page = client.get(f"/monitor/runs/{run.pk}/").content.decode()
    assert "3 of 5 approved, 2 withdrawn" in page
    assert "×5" in render_diagram(Plan.load(orch.pk))
    sim = simulate(orch, outputs={"approve": {"approve": True}}, instances={"approve": 4})
    assert sim.result == "completed"
    step = next(s for e in sim.entries if getattr(e, "steps", None) for s in e.steps if s.name == "approve")
    assert step.outputs == [{"approve": True}] * 4 + [None]
    assert "×5 instances (at_least 3): 4 complete, 1 withdrawn" in step.detail
