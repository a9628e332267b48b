"""The monitor's part of wait steps, pause/resume and withdrawing a step."""
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

import orchestration
from orchestration import engine, waits
from orchestration.models import RunEvent, StepRun, Timer
from tests.engine_builders import bg, noop_flow, orchestration as make_orch, screen_flow, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db

RUNS = reverse("monitor:runs")


def perm(user, *codenames):
    for codename in codenames:
        app, _, code = codename.partition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def operator(db):
    return perm(User.objects.create_user("operator", password="pw"),
                "orchestration.view_runs", "orchestration.operate_runs")


@pytest.fixture
def viewer(db):
    return perm(User.objects.create_user("viewer", password="pw"), "orchestration.view_runs")


@pytest.fixture
def waiting_run(db):
    noop_flow("mon_after")
    orch = make_orch([
        {"name": "sign", "steps": [{"name": "sign", "type": "wait", "event": "signed", "timeout": "3d"},
                                   {"name": "nap", "type": "wait", "for": "1h"}]},
        {"name": "file", "steps": [bg("file", "mon_after")]},
    ], api_name="mon_signing")
    return engine.start_run(orch)


def test_the_list_shows_timers_kept_events_and_paused_runs(client, viewer, waiting_run):
    orchestration.send_event(waiting_run, "later", data={"note": "kept<b>"}, keep=True)
    waits.pause_run(waiting_run.pk, reason="hold")
    client.force_login(viewer)
    page = client.get(RUNS).content.decode()
    assert f'data-paused-run="{waiting_run.pk}"' in page
    for timer in Timer.objects.filter(run=waiting_run):
        assert f'data-timer="{timer.pk}"' in page
        assert timer.due_at.strftime("%Y-%m-%d %H:%M") in page
    assert "Event timeout" in page and "Wait (for / until)" in page
    assert "later" in page and "kept&lt;b&gt;" in page
    assert 'class="badge badge-paused"' in page


def test_the_run_page_shows_the_wait_and_its_webhook(client, viewer, waiting_run):
    client.force_login(viewer)
    page = client.get(reverse("monitor:run", args=[waiting_run.pk])).content.decode()
    sign = StepRun.objects.get(run=waiting_run, step_name="sign")
    assert 'data-wait="sign"' in page and "event <code>signed</code>" in page
    assert waits.webhook_path(sign.pk, "signed") in page
    assert 'data-wait="nap"' in page and "until" in page
    assert "Pause run" not in page and "Withdraw" not in page  # a viewer may not


def test_pause_and_resume_from_the_monitor_need_a_reason(client, operator, waiting_run):
    client.force_login(operator)
    run_url = reverse("monitor:run", args=[waiting_run.pk])
    assert "Pause run…" in client.get(run_url).content.decode()
    refused = client.post(reverse("monitor:run_pause", args=[waiting_run.pk]), {"reason": " "}, follow=True)
    assert "say why" in refused.content.decode()
    waiting_run.refresh_from_db()
    assert waiting_run.status == "running"
    client.post(reverse("monitor:run_pause", args=[waiting_run.pk]), {"reason": "audit"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == "paused"
    page = client.get(run_url).content.decode()
    assert "This run is paused" in page and "Resume run…" in page
    client.post(reverse("monitor:run_resume", args=[waiting_run.pk]), {"reason": "audit over"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == "running"
    events = RunEvent.objects.filter(run=waiting_run, kind__in=["run_paused", "run_resumed"]).order_by("id")
    assert [(e.kind, e.actor.username, e.data["reason"]) for e in events] == [
        ("run_paused", "operator", "audit"), ("run_resumed", "operator", "audit over")]


def test_a_viewer_cannot_pause(client, viewer, waiting_run):
    client.force_login(viewer)
    response = client.post(reverse("monitor:run_pause", args=[waiting_run.pk]), {"reason": "x"})
    assert response.status_code == 403
    waiting_run.refresh_from_db()
    assert waiting_run.status == "running"


def test_withdraw_a_step_from_the_monitor(client, operator, waiting_run):
    client.force_login(operator)
    page = client.get(reverse("monitor:run", args=[waiting_run.pk])).content.decode()
    assert "Withdraw…" in page
    client.post(reverse("monitor:step_cancel", args=[waiting_run.pk, "nap"]), {"reason": "no need"})
    assert StepRun.objects.get(run=waiting_run, step_name="nap").status == "canceled"
    again = client.post(reverse("monitor:step_cancel", args=[waiting_run.pk, "nap"]), follow=True)
    assert "only an open step can be withdrawn" in again.content.decode()


def test_the_work_item_page_says_the_run_is_paused(client, db):
    alice = User.objects.create_user("alice", password="pw")
    screen_flow("mon_ok")
    run = engine.start_run(make_orch([{"name": "one", "steps": [ui("ok", "mon_ok")]}]))
    waits.pause_run(run.pk)
    item = WorkItem.objects.get(run=run)
    client.force_login(alice)
    page = client.get(reverse("workguide:item", args=[item.pk])).content.decode()
    assert "The run is paused" in page


def test_pause_and_resume_from_the_admin(client, waiting_run):
    admin_user = User.objects.create_superuser("root", password="pw")
    client.force_login(admin_user)
    url = reverse("admin:orchestration_orchestrationrun_changelist")
    client.post(url, {"action": "pause_runs", "_selected_action": [waiting_run.pk]})
    waiting_run.refresh_from_db()
    assert waiting_run.status == "paused"
    event = RunEvent.objects.get(run=waiting_run, kind="run_paused")
    assert (event.actor, event.data) == (admin_user, {"reason": "admin"})
    client.post(url, {"action": "resume_runs", "_selected_action": [waiting_run.pk]})
    waiting_run.refresh_from_db()
    assert waiting_run.status == "running"
