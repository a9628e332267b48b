"""The run monitor (/monitor/): permissions, filters, query counts, operator actions, stats."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orchestration import engine
from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun
from orchestration.monitor.stats import orchestration_stats
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db

RUNS = reverse("monitor:runs")


def perm(user, *codenames):
    for codename in codenames:
        app, _, code = codename.partition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    return User.objects.get(pk=user.pk)  # drop the permission cache


@pytest.fixture
def viewer(db):
    return perm(User.objects.create_user("viewer", password="pw"), "orchestration.view_runs")


@pytest.fixture
def operator(db):
    return perm(
        User.objects.create_user("operator", password="pw"),
        "orchestration.view_runs", "orchestration.operate_runs", "workguide.manage_workitem",
    )


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="pw", email="alice@example.com")


@pytest.fixture
def failing_run(db):
    """A run whose background step failed: run, stage and step in error."""
    noop_flow("calc", outputs={"total": ("number", "1")})
    orch = orchestration([
        {"name": "one", "steps": [bg("compute", "calc")]},
        {"name": "two", "steps": [bg("after", "calc")]},
    ], api_name="billing")
    run = engine.start_run(orch)
    step_run = StepRun.objects.get(run=run, step_name="compute")
    engine.fail_step(step_run.pk, "the ledger service said no")
    run.refresh_from_db()
    assert run.status == "error"
    return run


# ---------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------

def test_anonymous_is_sent_to_login(client):
    response = client.get(RUNS)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_user_without_permission_is_refused(client, alice, failing_run):
    client.force_login(alice)
    assert client.get(RUNS).status_code == 403
    assert client.get(reverse("monitor:run", args=[failing_run.pk])).status_code == 403


def test_staff_and_view_permission_may_look(client, viewer, failing_run):
    staff = User.objects.create_user("staffer", password="pw", is_staff=True)
    for user in (staff, viewer):
        client.force_login(user)
        response = client.get(RUNS)
        assert response.status_code == 200
        assert f'data-run="{failing_run.pk}"' in response.content.decode()
        assert client.get(reverse("monitor:run", args=[failing_run.pk])).status_code == 200


def test_operate_permission_alone_opens_the_monitor_as_it_opens_the_api(client, failing_run):
    """Operating runs implies seeing them, on every screen: the API, the monitor and the nav link to it."""
    only_operate = perm(User.objects.create_user("opsonly", password="pw"), "orchestration.operate_runs")
    client.force_login(only_operate)
    assert client.get(f"/api/runs/{failing_run.pk}/").status_code == 200
    page = client.get(RUNS)
    assert page.status_code == 200
    assert f'data-run="{failing_run.pk}"' in page.content.decode()
    assert client.get(reverse("monitor:run", args=[failing_run.pk])).status_code == 200
    assert f'href="{RUNS}"' in client.get(reverse("workguide:my_work")).content.decode()
    response = client.post(reverse("monitor:run_cancel", args=[failing_run.pk]), {"reason": "the ledger is down"})
    assert response.status_code == 302
    failing_run.refresh_from_db()
    assert failing_run.status == "canceled"


def test_nav_shows_monitor_only_to_who_may_open_it(client, alice):
    client.force_login(alice)
    assert f'href="{RUNS}"' not in client.get(reverse("workguide:my_work")).content.decode()


def test_viewer_sees_no_operator_buttons_and_cannot_operate(client, viewer, failing_run):
    client.force_login(viewer)
    page = client.get(RUNS).content.decode()
    assert "the ledger service said no" in page  # the step's message is shown
    assert "Retry" not in page and "Cancel run" not in page
    for url in (
        reverse("monitor:step_retry", args=[failing_run.pk, "compute"]),
        reverse("monitor:step_skip", args=[failing_run.pk, "compute"]),
        reverse("monitor:run_cancel", args=[failing_run.pk]),
    ):
        assert client.post(url).status_code == 403
    failing_run.refresh_from_db()
    assert failing_run.status == "error"


def test_actions_need_post_and_csrf(operator, failing_run):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    url = reverse("monitor:run_cancel", args=[failing_run.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token
    failing_run.refresh_from_db()
    assert failing_run.status == "error"


# ---------------------------------------------------------------------------
# Operator actions
# ---------------------------------------------------------------------------

def test_operator_sees_buttons(client, operator, failing_run):
    client.force_login(operator)
    page = client.get(RUNS).content.decode()
    assert reverse("monitor:step_retry", args=[failing_run.pk, "compute"]) in page
    assert reverse("monitor:step_skip", args=[failing_run.pk, "compute"]) in page
    assert reverse("monitor:run_cancel", args=[failing_run.pk]) in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_retry_from_the_monitor(client, operator, failing_run):
    client.force_login(operator)
    response = client.post(reverse("monitor:step_retry", args=[failing_run.pk, "compute"]), {"next": RUNS})
    assert response.status_code == 302 and response["Location"] == RUNS
    failing_run.refresh_from_db()
    assert failing_run.status == "running"
    assert StepRun.objects.get(run=failing_run, step_name="compute").status == "queued"
    event = RunEvent.objects.get(run=failing_run, kind="step_retried")
    assert event.actor == operator


def test_skip_with_outputs_from_the_monitor(client, operator, failing_run):
    client.force_login(operator)
    url = reverse("monitor:step_skip", args=[failing_run.pk, "compute"])
    response = client.post(url, {"outputs": '{"total": 42}'})
    assert response.status_code == 302
    failing_run.refresh_from_db()
    assert failing_run.status == "running"
    compute = StepRun.objects.get(run=failing_run, step_name="compute")
    assert compute.status == "completed" and compute.outputs == {"total": 42}
    assert StepRun.objects.get(run=failing_run, step_name="after").status == "queued"  # the path went on
    assert RunEvent.objects.filter(run=failing_run, kind="step_skipped", actor=operator).exists()


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"total": "many"}', "total"),
    ('{"nope": 1}', "nope"),
])
def test_skip_outputs_are_validated(client, operator, failing_run, text, message):
    client.force_login(operator)
    response = client.post(reverse("monitor:step_skip", args=[failing_run.pk, "compute"]), {"outputs": text})
    assert response.status_code == 400
    assert message in response.content.decode()
    failing_run.refresh_from_db()
    assert failing_run.status == "error"
    assert StepRun.objects.get(run=failing_run, step_name="compute").status == "error"


def test_skip_outputs_over_the_size_limit_are_refused_as_in_the_api(client, operator, failing_run, settings):
    """The monitor checked no size before; now the same byte limit as the API and launches."""
    settings.BATON_MAX_INPUT_BYTES = 40
    client.force_login(operator)
    url = reverse("monitor:step_skip", args=[failing_run.pk, "compute"])
    response = client.post(url, {"outputs": '{"total": 1, "note": "%s"}' % ("é" * 12)})
    assert response.status_code == 400
    assert "too large" in response.content.decode() and "BATON_MAX_INPUT_BYTES" in response.content.decode()
    failing_run.refresh_from_db()
    assert failing_run.status == "error"


def test_cancel_from_the_monitor(client, operator, failing_run):
    client.force_login(operator)
    url = reverse("monitor:run_cancel", args=[failing_run.pk])
    response = client.post(url, {"reason": "ordered twice"}, follow=True)
    assert response.status_code == 200
    failing_run.refresh_from_db()
    assert failing_run.status == "canceled"
    assert "was canceled" in response.content.decode()
    # Canceling again is refused with a message, not an error page.
    response = client.post(url, {"reason": "again"}, follow=True)
    assert "cannot be canceled" in response.content.decode()


def test_cancel_asks_to_confirm_and_for_a_reason_shown_in_the_timeline(client, operator, failing_run):
    """Issue 17 #7: Cancel run was one click with no confirmation and no reason."""
    client.force_login(operator)
    url = reverse("monitor:run_cancel", args=[failing_run.pk])
    page = client.get(reverse("monitor:run", args=[failing_run.pk])).content.decode()
    # The button only opens the form; the form needs a reason before it cancels.
    assert '<summary class="button button-danger">Cancel run…</summary>' in page
    assert 'name="reason" rows="2" maxlength="500" required' in page
    for reason in ("", "   ", "x" * 501):
        response = client.post(url, {"reason": reason}, follow=True)
        assert "was not canceled" in response.content.decode(), reason
    failing_run.refresh_from_db()
    assert failing_run.status == "error" and not failing_run.events.filter(kind="run_canceled").exists()
    client.post(url, {"reason": "Customer  withdrew\nthe order"})
    failing_run.refresh_from_db()
    assert failing_run.status == "canceled"
    assert failing_run.events.get(kind="run_canceled").data == {"reason": "Customer withdrew the order"}
    page = client.get(reverse("monitor:run", args=[failing_run.pk])).content.decode()
    assert '<p class="reason">Reason: Customer withdrew the order</p>' in page
    api = client.get(f"/api/runs/{failing_run.pk}/").json()
    assert {"kind": "run_canceled", "reason": "Customer withdrew the order"}.items() <= {
        "kind": api["events"][-1]["kind"], **api["events"][-1]["data"]}.items()


def test_next_must_stay_on_the_site(client, operator, failing_run):
    client.force_login(operator)
    response = client.post(reverse("monitor:run_cancel", args=[failing_run.pk]),
                           {"next": "https://evil.example/", "reason": "test"})
    assert response["Location"] == reverse("monitor:run", args=[failing_run.pk])


# ---------------------------------------------------------------------------
# Stalled work items and reassign
# ---------------------------------------------------------------------------

@pytest.fixture
def waiting_item(alice):
    screen_flow("approve_it")
    orch = orchestration([{"name": "ask", "steps": [ui("approve", "approve_it", {"user": "alice"}, due_in="1h")]}],
                         api_name="approvals")
    run = engine.start_run(orch)
    return WorkItem.objects.get(run=run)


def test_stalled_items_listed_and_flagged_overdue(client, viewer, waiting_item, settings):
    settings.BATON_STALLED_AFTER = 3600
    client.force_login(viewer)
    page = client.get(RUNS).content.decode()
    assert f'data-work-item="{waiting_item.pk}"' not in page  # fresh and not due yet
    WorkItem.objects.filter(pk=waiting_item.pk).update(created_at=timezone.now() - timedelta(hours=2))
    page = client.get(RUNS).content.decode()
    assert f'data-work-item="{waiting_item.pk}"' in page
    assert "user:alice" in page and "stalled" in page
    WorkItem.objects.filter(pk=waiting_item.pk).update(due_at=timezone.now() - timedelta(minutes=5))
    page = client.get(RUNS).content.decode()
    assert "badge-overdue" in page


def test_reassign_from_the_monitor(client, operator, waiting_item, settings):
    settings.BATON_STALLED_AFTER = 0
    User.objects.create_user("bob")
    client.force_login(operator)
    page = client.get(RUNS).content.decode()
    assert reverse("monitor:reassign", args=[waiting_item.pk]) in page
    response = client.post(reverse("monitor:reassign", args=[waiting_item.pk]), {"assignee": "user:bob"}, follow=True)
    assert response.status_code == 200
    waiting_item.refresh_from_db()
    assert waiting_item.assignee_display == "user:bob"
    assert RunEvent.objects.filter(run=waiting_item.run, kind="work_item_reassigned", actor=operator).exists()
    # A bad assignee gives a message and changes nothing.
    response = client.post(reverse("monitor:reassign", args=[waiting_item.pk]), {"assignee": "user:nobody"}, follow=True)
    assert "no active user" in response.content.decode()
    waiting_item.refresh_from_db()
    assert waiting_item.assignee_display == "user:bob"


def test_reassign_needs_manage_permission(client, viewer, waiting_item):
    client.force_login(viewer)
    response = client.post(reverse("monitor:reassign", args=[waiting_item.pk]), {"assignee": "user:alice"})
    assert response.status_code == 403


# ---------------------------------------------------------------------------
# Filters, search, pagination, live refresh
# ---------------------------------------------------------------------------

def _runs_on_page(response):
    import re

    return {int(x) for x in re.findall(r'data-run="(\d+)"', response.content.decode())}


def test_filters_and_search(client, viewer, failing_run):
    other = orchestration([{"name": "only", "steps": [bg("x", "calc")]}], api_name="shipping")
    done = OrchestrationRun.objects.create(orchestration=other, status="completed", record_model="demo.employee",
                                           record_pk="77", ended_at=timezone.now())
    client.force_login(viewer)
    assert _runs_on_page(client.get(RUNS)) == {failing_run.pk, done.pk}
    assert _runs_on_page(client.get(RUNS, {"status": "error"})) == {failing_run.pk}
    assert _runs_on_page(client.get(RUNS, {"status": "completed"})) == {done.pk}
    assert _runs_on_page(client.get(RUNS, {"orchestration": "shipping"})) == {done.pk}
    assert _runs_on_page(client.get(RUNS, {"q": str(failing_run.pk)})) == {failing_run.pk}
    assert _runs_on_page(client.get(RUNS, {"q": "demo.employee:77"})) == {done.pk}
    assert _runs_on_page(client.get(RUNS, {"q": "77"})) == {done.pk}
    assert _runs_on_page(client.get(RUNS, {"status": "bogus"})) == {failing_run.pk, done.pk}  # ignored, no 500


def test_partial_for_live_refresh(client, viewer, failing_run):
    client.force_login(viewer)
    response = client.get(RUNS, {"status": "error"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith("<div id=\"monitor-results\"")
    assert "<html" not in body
    assert 'hx-trigger="every 5s' in body and "status=error" in body
    full = client.get(RUNS).content.decode()
    assert "<html" in full and 'id="monitor-results"' in full


def test_progress_is_shown(client, viewer, failing_run):
    client.force_login(viewer)
    page = client.get(RUNS).content.decode()
    assert "Stage 1 of 2" in page and "steps 0/1" in page


def test_pagination(client, viewer, failing_run):
    orch = failing_run.orchestration
    OrchestrationRun.objects.bulk_create([OrchestrationRun(orchestration=orch, status="completed") for _ in range(30)])
    client.force_login(viewer)
    first = _runs_on_page(client.get(RUNS))
    second = _runs_on_page(client.get(RUNS, {"page": 2}))
    assert len(first) == 25 and len(second) == 6 and not first & second


# ---------------------------------------------------------------------------
# Query counts stay flat with thousands of runs
# ---------------------------------------------------------------------------

def _bulk_runs(count, orchestrations, alice):
    """``count`` runs across statuses, each with a stage visit and steps; some with open work items."""
    now = timezone.now()
    statuses = ["running", "completed", "error", "canceled"]
    runs = OrchestrationRun.objects.bulk_create([
        OrchestrationRun(
            orchestration=orchestrations[i % len(orchestrations)], status=statuses[i % 4],
            record_model="demo.employee", record_pk=str(i), current_stage="one" if i % 4 != 1 else "",
            started_at=now - timedelta(minutes=i + 5), ended_at=now if i % 4 == 1 else None,
        )
        for i in range(count)
    ])
    stage_runs = StageRun.objects.bulk_create([
        StageRun(run=r, stage_name="one", position=0, status="error" if r.status == "error" else
                 ("in_progress" if r.status == "running" else "completed"))
        for r in runs
    ])
    StepRun.objects.bulk_create([
        StepRun(run_id=s.run_id, stage_run=s, step_name="compute", type="background",
                status="error" if s.status == "error" else "completed", error="boom" if s.status == "error" else "")
        for s in stage_runs
    ])
    return runs


@pytest.mark.slow
def test_query_count_constant_with_thousands_of_runs(client, operator, failing_run, waiting_item, settings,
                                                       django_assert_max_num_queries):
    settings.BATON_STALLED_AFTER = 0
    orchestrations = [failing_run.orchestration, waiting_item.run.orchestration]
    client.force_login(operator)

    def measure(params):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"{RUNS}?{params}").status_code == 200
        return len(ctx.captured_queries)

    _bulk_runs(30, orchestrations, None)
    client.get(RUNS)  # warm-up: the first request of a session fills caches
    small = {p: measure(p) for p in ("", "status=error", "q=7")}
    _bulk_runs(3000, orchestrations, None)
    assert OrchestrationRun.objects.count() > 3000
    large = {p: measure(p) for p in ("", "status=error", "q=7")}
    assert large == small
    with django_assert_max_num_queries(25):
        client.get(RUNS)
    with django_assert_max_num_queries(25):
        client.get(RUNS, {"page": 40, "status": "error"}, HTTP_HX_REQUEST="true")


def test_run_page_query_count_does_not_grow_with_other_runs(client, operator, failing_run, django_assert_max_num_queries):
    client.force_login(operator)
    _bulk_runs(1000, [failing_run.orchestration], None)
    with django_assert_max_num_queries(25):
        assert client.get(reverse("monitor:run", args=[failing_run.pk])).status_code == 200


# ---------------------------------------------------------------------------
# Per-orchestration figures
# ---------------------------------------------------------------------------

def test_orchestration_stats(db):
    noop_flow("calc2")
    orch = orchestration([{"name": "one", "steps": [bg("s", "calc2")]}], api_name="stats_demo")
    now = timezone.now()
    OrchestrationRun.objects.bulk_create(
        [OrchestrationRun(orchestration=orch, status="completed", started_at=now - timedelta(minutes=m), ended_at=now)
         for m in range(1, 11)]  # 1..10 minutes
        + [OrchestrationRun(orchestration=orch, status="error") for _ in range(3)]
        + [OrchestrationRun(orchestration=orch, status="running") for _ in range(7)]
    )
    (row,) = orchestration_stats()
    assert (row.api_name, row.started, row.completed, row.failed, row.running) == ("stats_demo", 20, 10, 3, 7)
    assert row.completion_percent == 50.0
    assert row.average == timedelta(minutes=5, seconds=30)
    assert row.p90 == timedelta(minutes=9)


def test_stats_shown_on_the_monitor(client, viewer, failing_run):
    client.force_login(viewer)
    page = client.get(RUNS).content.decode()
    assert 'data-stats="billing"' in page


# ---------------------------------------------------------------------------
# The run page
# ---------------------------------------------------------------------------

def test_run_page_shows_timeline_steps_and_diagram(client, operator, failing_run):
    client.force_login(operator)
    response = client.get(reverse("monitor:run", args=[failing_run.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    for kind in ("run_started", "stage_started", "step_queued", "step_error", "run_error"):
        assert f'data-event="{kind}"' in page
    assert "the ledger service said no" in page
    assert "<svg" in page and 'data-element="one"' in page
    assert 'data-step="compute"' in page and 'data-state="error"' in page
    assert reverse("monitor:step_retry", args=[failing_run.pk, "compute"]) in page
    partial = client.get(reverse("monitor:run", args=[failing_run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="run-body"') and "every 5s" in partial


def test_run_page_shows_inputs_outputs_and_actor(client, operator, failing_run):
    client.force_login(operator)
    client.post(reverse("monitor:step_skip", args=[failing_run.pk, "compute"]), {"outputs": '{"total": 7}'})
    page = client.get(reverse("monitor:run", args=[failing_run.pk])).content.decode()
    assert "&quot;total&quot;: 7" in page
    assert "operator" in page and 'data-event="step_skipped"' in page


def test_escaping(client, viewer, failing_run):
    StepRun.objects.filter(run=failing_run, step_name="compute").update(error="<script>alert(1)</script>")
    client.force_login(viewer)
    for url in (RUNS, reverse("monitor:run", args=[failing_run.pk])):
        page = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_unknown_run_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("monitor:run", args=[999999])).status_code == 404
