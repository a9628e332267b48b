"""Operator actions on runs from the admin."""
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from orchestration import engine
from orchestration.models import OrchestrationRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:orchestration_orchestrationrun_changelist"


class Silent:
    def send_step(self, step_run):
        pass

    def open_work_item(self, *args):
        raise AssertionError

    def close_work_items(self, *args):
        pass


@pytest.fixture
def runs():
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}])
    good = engine.start_run(orch, effects=Silent())
    bad = engine.start_run(orch, effects=Silent())
    engine.fail_step(StepRun.objects.get(run=bad).pk, "boom", effects=Silent())
    return good, bad


def staff(perms=()):
    user = User.objects.create_user("op", password="pw", is_staff=True)
    for codename in ("view_orchestrationrun", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_cancel_and_retry_need_the_operate_permission(client, runs):
    good, bad = runs
    client.force_login(staff())
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200 and b"cancel_runs" not in page.content
    response = client.post(reverse(CHANGELIST), {"action": "cancel_runs", "_selected_action": [good.pk]})
    good.refresh_from_db()
    assert good.status == "running"


def test_operator_cancels_and_retries_from_the_admin(client, runs, django_capture_on_commit_callbacks):
    good, bad = runs
    client.force_login(staff(["operate_runs"]))
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse(CHANGELIST), {"action": "retry_failed_steps", "_selected_action": [good.pk, bad.pk]},
                               follow=True)
    assert b"has no step in error" in response.content
    bad.refresh_from_db()
    assert bad.status == "running" and StepRun.objects.get(run=bad).status == "queued"
    client.post(reverse(CHANGELIST), {"action": "cancel_runs", "_selected_action": [good.pk]})
    assert OrchestrationRun.objects.get(pk=good.pk).status == "canceled"
    detail = client.get(reverse("admin:orchestration_orchestrationrun_change", args=[good.pk]))
    assert reverse("monitor:run", args=[good.pk]).encode() in detail.content
