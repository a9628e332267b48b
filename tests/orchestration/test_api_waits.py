"""REST endpoints of events, pause/resume and withdrawing a step (orchestration/api_waits.py)."""
import pytest
from django.contrib.auth.models import User

from orchestration import waits
from orchestration.models import KeptEvent, StepRun
from orchestration.starts import launch
from tests.api_support import *  # noqa: F403
from tests.api_support import approval, grant, launch_approval, token_client, users  # noqa: F401
from tests.engine_builders import noop_flow, orchestration
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing(users):
    """A run waiting for event "signed" (then a background step)."""
    noop_flow("api_after")
    orchestration([
        {"name": "sign", "steps": [{"name": "sign", "type": "wait", "event": "signed", "timeout": "14d"}]},
        {"name": "file", "steps": [{"name": "file", "type": "background", "flow": "api_after"}]},
    ], api_name="signing", start={"type": "autolaunched"})
    return launch("signing", user=users.alice)


@pytest.fixture
def sender(users):
    return grant(User.objects.create_user("sender"), "orchestration.send_events", "orchestration.view_runs")


def test_an_event_answers_202_with_the_run_and_completes_the_wait(signing, sender):
    response = token_client(sender).post(f"/api/runs/{signing.pk}/events/signed/",
                                         {"data": {"signed_by": "Grace"}}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] == signing.pk
    sign = body["stages"][0]["steps"][0]
    assert sign["status"] == "completed" and sign["outputs"] == {"signed_by": "Grace"}
    received = [e for e in body["events"] if e["kind"] == "event_received"][0]
    assert received["actor"] == "sender"
    assert received["data"] == {"name": "signed", "data": {"signed_by": "Grace"}, "source": "api"}


def test_an_event_nothing_waits_for_is_404_naming_run_and_event(signing, sender):
    response = token_client(sender).post(f"/api/runs/{signing.pk}/events/other/", {}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"].startswith(f"run {signing.pk}: no step waits for event 'other'")
    assert response.json()["code"] == "not_found"
    assert StepRun.objects.get(run=signing, step_name="sign").status == "in_progress"


def test_a_kept_event_is_202_and_stored(signing, sender):
    response = token_client(sender).post(f"/api/runs/{signing.pk}/events/later/", {"data": {"x": 1}, "keep": True},
                                         format="json")
    assert response.status_code == 202
    kept = KeptEvent.objects.get(run=signing)
    assert (kept.name, kept.data, kept.sent_by.username) == ("later", {"x": 1}, "sender")


def test_event_permissions_and_bad_bodies(signing, users, sender):
    url = f"/api/runs/{signing.pk}/events/signed/"
    for user in (users.operator, users.viewer, users.bob):
        assert token_client(user).post(url, {}, format="json").status_code == 403, user
    bad = token_client(sender).post(url, {"data": [1, 2]}, format="json")
    assert bad.status_code == 400 and "data" in bad.json()["errors"]
    bad_keep = token_client(sender).post(url, {"keep": "perhaps"}, format="json")
    assert bad_keep.status_code == 400 and "keep" in bad_keep.json()["errors"]
    assert token_client(sender).post("/api/runs/99999/events/signed/", {}, format="json").status_code == 404
    assert StepRun.objects.get(run=signing, step_name="sign").status == "in_progress"
    assert token_client(users.admin).post(url, {}, format="json").status_code == 202


def test_an_event_by_rest_reads_the_run_first_under_its_lock(signing, sender):
    """No query of the run before the transition (the lock is the read): the REST path costs what Python's does."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = token_client(sender)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(f"/api/runs/{signing.pk}/events/signed/", {"data": {"n": 1}}, format="json")
    assert response.status_code == 202
    sql = [q["sql"] for q in captured.captured_queries]
    begins = next(i for i, q in enumerate(sql) if q.startswith(("SAVEPOINT", "BEGIN")))
    assert not [q for q in sql[:begins] if "orchestration_" in q], sql[:begins]
    missing = client.post("/api/runs/99999/events/signed/", {"data": {"n": 1}}, format="json")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_run_shows_the_waiting_steps_webhook_and_it_needs_no_token(signing, users, api):
    body = token_client(users.viewer).get(f"/api/runs/{signing.pk}/").json()
    wait = body["stages"][0]["steps"][0]["wait"]
    assert wait["event"] == "signed" and wait["due_at"]
    assert "/api/hooks/events/" in wait["webhook_url"]
    path = wait["webhook_url"][wait["webhook_url"].index("/api/"):]
    response = api.post(path, {"data": {"ok": True}}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"run": signing.pk, "step": "sign", "event": "signed"}
    assert StepRun.objects.get(run=signing, step_name="sign").outputs == {"ok": True}
    again = api.post(path, {}, format="json")
    assert again.status_code == 404 and "no longer waits" in again.json()["detail"]
    forged = api.post(path.replace("/events/", "/events/x"), {}, format="json")
    assert forged.status_code == 404


def test_pause_and_resume_with_reasons(approval, users):  # noqa: F811
    run = launch_approval(users.alice)
    client = token_client(users.operator)
    response = client.post(f"/api/runs/{run.pk}/pause/", {"reason": "audit"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "paused"
    paused = [e for e in response.json()["events"] if e["kind"] == "run_paused"][0]
    assert (paused["actor"], paused["data"]) == ("operator", {"reason": "audit"})
    again = client.post(f"/api/runs/{run.pk}/pause/", {}, format="json")
    assert again.status_code == 409 and again.json()["detail"] == (
        f"run {run.pk} is paused; only a running run can be paused")
    assert token_client(users.viewer).get(f"/api/runs/?status=paused").json()["count"] == 1
    resumed = client.post(f"/api/runs/{run.pk}/resume/", {"reason": "done"}, format="json")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert client.post(f"/api/runs/{run.pk}/resume/", {}, format="json").status_code == 409


def test_pause_own_runs_covers_only_the_callers_runs(approval, users):  # noqa: F811
    own = grant(users.bob, "orchestration.pause_own_runs")
    mine = launch_approval(own)
    theirs = launch_approval(users.alice)
    assert token_client(own).post(f"/api/runs/{mine.pk}/pause/", {}, format="json").status_code == 200
    assert token_client(own).post(f"/api/runs/{theirs.pk}/pause/", {}, format="json").status_code == 403
    for user in (users.viewer, users.staff):
        assert token_client(user).post(f"/api/runs/{theirs.pk}/pause/", {}, format="json").status_code == 403
    assert token_client(users.operator).post("/api/runs/424242/pause/", {}, format="json").status_code == 404


def test_a_paused_runs_work_item_is_409_the_run_is_paused(approval, users):  # noqa: F811
    run = launch_approval(users.alice)
    waits.pause_run(run.pk, user=users.operator)
    item = WorkItem.objects.get(run=run)
    response = token_client(users.alice).post(f"/api/work-items/{item.pk}/complete/",
                                              {"values": {"decision": "approve"}}, format="json")
    assert response.status_code == 409
    assert "the run is paused" in response.json()["detail"]
    item.refresh_from_db()
    assert item.status == "open"


def test_withdraw_a_step(approval, users):  # noqa: F811
    run = launch_approval(users.alice)
    client = token_client(users.operator)
    assert token_client(users.viewer).post(f"/api/runs/{run.pk}/steps/review/cancel/", {},
                                           format="json").status_code == 403
    missing = client.post(f"/api/runs/{run.pk}/steps/nothing/cancel/", {}, format="json")
    assert missing.status_code == 404 and "no step named 'nothing'" in missing.json()["detail"]
    response = client.post(f"/api/runs/{run.pk}/steps/review/cancel/", {"reason": "not needed"}, format="json")
    assert response.status_code == 200, response.content
    steps = {s["name"]: s["status"] for stage in response.json()["stages"] for s in stage["steps"]}
    assert steps["review"] == "canceled"
    assert steps["confirm"] == "in_progress"  # the stage ended, the run went on
    assert WorkItem.objects.get(step_run__step_name="review", run=run).status == "canceled"
    late = client.post(f"/api/runs/{run.pk}/steps/review/cancel/", {}, format="json")
    assert late.status_code == 409 and "only an open step can be withdrawn" in late.json()["detail"]
