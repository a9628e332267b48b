"""REST API: work items (the caller's list, detail, complete, reassign, claim, unclaim, comments),
and full journeys through the API only."""
import pytest
from django.contrib.auth.models import User

from flows.compiled import FlowSpec
from flows.screens import validate_all
from orchestration.models import OrchestrationRun
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import as_user, launch_approval, token_client
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow, ui
from workguide import services
from workguide.models import Queue, WorkItem

pytestmark = pytest.mark.django_db

LIST = "/api/work-items/"


def url(item, action=""):
    return f"/api/work-items/{item.pk}/" + (f"{action}/" if action else "")


@pytest.fixture
def review_item(approval, users):
    launch_approval(users.launcher)
    return WorkItem.objects.get(step_run__step_name="review")


@pytest.fixture
def group_item(review_item, users):
    """The 'confirm' item, assigned to the reviewers group (carol's)."""
    review_item.complete(users.alice, {"decision": "approve"})
    return WorkItem.objects.get(step_run__step_name="confirm")


@pytest.fixture
def dave(users):
    dave = User.objects.create_user("dave")
    dave.groups.add(users.reviewers)
    return dave


def queue_item(user, queue_name="desk"):
    queue = Queue.objects.get_or_create(name=queue_name)[0]
    queue.members.add(user)
    flow = screen_flow(f"api_q_{queue_name}_{WorkItem.objects.count()}")
    orch = orchestration([{"name": "s", "steps": [ui("q", flow.api_name, {"queue": queue_name})]}])
    from orchestration import engine

    run = engine.start_run(orch)
    return WorkItem.objects.get(run=run)


# -- list ---------------------------------------------------------------------------

def test_list_has_direct_group_and_queue_items_of_the_caller(review_item, group_item, users):
    via_queue = queue_item(users.carol)
    group_queue = Queue.objects.create(name="reviewers_desk")
    group_queue.member_groups.add(users.reviewers)
    flow = screen_flow("api_gq")
    from orchestration import engine

    run = engine.start_run(orchestration([{"name": "s", "steps": [ui("gq", flow.api_name,
                                                                     {"queue": "reviewers_desk"})]}]))
    via_group_of_queue = WorkItem.objects.get(run=run)

    carol = token_client(users.carol).get(LIST).json()
    assert set(carol) == {"count", "next", "previous", "results"}
    assert [i["id"] for i in carol["results"]] == [via_group_of_queue.pk, via_queue.pk, group_item.pk]
    first = carol["results"][-1]
    assert first["status"] == "open" and first["assignee"] == "group:reviewers" and first["step"] == "confirm"
    assert first["orchestration"] == "approval" and first["run"] == group_item.run_id
    # alice's review is completed now: not in her open list, in her completed one.
    assert token_client(users.alice).get(LIST).json()["count"] == 0
    done = token_client(users.alice).get(LIST, {"status": "completed"}).json()["results"]
    assert [i["id"] for i in done] == [review_item.pk] and done[0]["completed_by"] == "alice"
    assert token_client(users.alice).get(LIST, {"status": "all"}).json()["count"] == 1
    assert token_client(users.bob).get(LIST).json()["count"] == 0


def test_managers_may_list_everyone_s_items(review_item, users):
    assert token_client(users.manager).get(LIST).json()["count"] == 0
    everyone = token_client(users.manager).get(LIST, {"scope": "all"}).json()
    assert [i["id"] for i in everyone["results"]] == [review_item.pk]
    assert token_client(users.bob).get(LIST, {"scope": "all"}).json()["count"] == 0


def test_list_validation(users):
    client = token_client(users.alice)
    assert client.get(LIST, {"status": "pending"}).status_code == 400
    assert "scope" in client.get(LIST, {"scope": "world"}).json()["errors"]
    assert client.get(LIST, {"page": "zzz"}).status_code == 404


def test_list_query_count_is_bounded(approval, users, django_assert_max_num_queries):
    for _ in range(25):
        launch_approval(users.launcher)
    queue = Queue.objects.create(name="big")
    queue.member_groups.add(users.reviewers)
    users.alice.groups.add(users.reviewers)
    for item in WorkItem.objects.all()[:10]:
        item.complete(users.alice, {"decision": "approve"})  # opens 10 group items for reviewers
    client = token_client(users.alice)
    with django_assert_max_num_queries(10):
        body = client.get(LIST, {"page_size": 200}).json()
    assert body["count"] == 25  # 15 direct + 10 via the group


def test_anonymous_is_401(review_item):
    from rest_framework.test import APIClient

    assert APIClient().get(LIST).status_code == 401
    assert APIClient().post(url(review_item, "complete"), {"values": {}}, format="json").status_code == 401


# -- detail ---------------------------------------------------------------------------

def test_detail_has_the_screen_flow_fields(review_item, users):
    response = token_client(users.alice).get(url(review_item))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == review_item.pk and body["status"] == "open" and body["can_complete"] is True
    assert body["flow"]["api_name"] == "api_review"
    fields = body["screens"][0]["fields"]
    assert [f["name"] for f in fields] == ["decision", "comment", "amount_ok", "needed_by"]
    assert fields[0]["choices"] == [{"value": "approve", "label": "Approve"}, {"value": "reject", "label": "Reject"}]
    assert fields[0]["required"] is True and fields[1]["visible_if"] == 'decision == "reject"'


def test_outsiders_get_404_for_reading_and_acting(review_item, users):
    bob = token_client(users.bob)
    for method, action, body in [("get", "", None), ("post", "complete", {"values": {"decision": "approve"}}),
                                 ("post", "claim", None), ("post", "unclaim", None),
                                 ("post", "reassign", {"assignee": "user:bob"}), ("get", "comments", None),
                                 ("post", "comments", {"text": "let me in"})]:
        response = getattr(bob, method)(url(review_item, action), body, format="json")
        assert response.status_code == 404, (action, response.content)
    review_item.refresh_from_db()
    assert review_item.status == "open" and review_item.assignee_user == users.alice
    # Staff without the manage permission are outsiders too.
    assert token_client(users.staff).get(url(review_item)).status_code == 404
    assert token_client(users.manager).get(url(review_item)).status_code == 200


def test_detail_unknown_is_404(users):
    assert token_client(users.alice).get("/api/work-items/31337/").status_code == 404
    assert token_client(users.alice).get("/api/work-items/1" + "0" * 40 + "/").status_code == 404


# -- complete ---------------------------------------------------------------------------

def test_complete_finishes_the_item_and_moves_the_run(review_item, users):
    response = token_client(users.alice).post(
        url(review_item, "complete"),
        {"values": {"decision": "approve", "amount_ok": 12, "needed_by": "2025-03-01"}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed" and body["completed_by"] == "alice" and body["can_complete"] is False
    run = review_item.run
    run.refresh_from_db()
    assert run.current_stage == "confirm"
    outputs = review_item.step_run.__class__.objects.get(pk=review_item.step_run_id).outputs
    assert outputs["decision"] == "approve" and outputs["amount_ok"] == 12.0 and outputs["needed_by"] == "2025-03-01"


@pytest.mark.parametrize("values", [
    {},
    {"decision": "reject"},
    {"decision": "maybe"},
    {"decision": "approve", "amount_ok": "lots"},
    {"decision": "approve", "needed_by": "someday"},
    {"decision": "approve", "needed_by": 20250101},
    {"decision": "approve", "bogus": 1},
    {"decision": "approve", "amount_ok": float("inf")},
])
def test_complete_errors_are_the_pages_errors_keyed_by_field(review_item, users, values):
    import json

    raw = json.dumps({"values": values})  # inf is written 1e400 by hand below: no JSON encoder writes it
    raw = raw.replace("Infinity", "1e400")
    response = token_client(users.alice).post(url(review_item, "complete"), raw, content_type="application/json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    from workguide.api import form_values

    spec = FlowSpec.load(review_item.flow_id)
    data, _ = form_values(spec, values)
    _, page_errors = validate_all(spec, review_item.inputs, data)
    assert errors == {("non_field_errors" if k == "__all__" else k): v for k, v in page_errors.items()}
    review_item.refresh_from_db()
    assert review_item.status == "open" and review_item.step_run.status == "in_progress"


def test_complete_refuses_shapes_no_page_can_send(review_item, users):
    client = token_client(users.alice)
    cases = [({"values": {"decision": {"a": 1}}}, "decision"), ({"values": {"amount_ok": [1, 2]}}, "amount_ok"),
             ({"values": [1]}, "values"), ({"values": "approve"}, "values"),
             ({"values": {"decision": "approve", "needed_by": "x" * 400_000}}, "values")]
    for body, key in cases:
        response = client.post(url(review_item, "complete"), body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert key in response.json()["errors"], response.json()
    bad_json = client.post(url(review_item, "complete"), "{", content_type="application/json")
    assert bad_json.status_code == 400
    review_item.refresh_from_db()
    assert review_item.status == "open"


def test_complete_refuses_repeated_multichoice_values_and_changes_nothing(users):
    flow = screen_flow("api_extras", fields=[
        {"name": "extras", "type": "multichoice", "label": "Extras", "choices": ["mouse", "dock", "screen"]}])
    from orchestration import engine

    run = engine.start_run(orchestration([{"name": "s", "steps": [ui("pick", flow.api_name, {"user": "alice"})]}]))
    item = WorkItem.objects.get(run=run)
    client = token_client(users.alice)
    for extras, message in [
        (["mouse"] * 10_000, "Choose at most 3 option(s); 10000 were sent."),
        (["mouse", "dock", "mouse"], "Each option can be chosen once; chosen more than once: “mouse”."),
    ]:
        response = client.post(url(item, "complete"), {"values": {"extras": extras}}, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["errors"] == {"extras": [message]}
        item.refresh_from_db()
        assert item.status == "open" and item.step_run.status == "in_progress" and item.step_run.outputs == {}
    response = client.post(url(item, "complete"), {"values": {"extras": ["dock", "mouse"]}}, format="json")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.step_run.outputs == {"extras": ["dock", "mouse"]}


def test_complete_twice_is_a_409_naming_who(review_item, users):
    client = token_client(users.alice)
    assert client.post(url(review_item, "complete"), {"values": {"decision": "approve"}},
                       format="json").status_code == 200
    again = client.post(url(review_item, "complete"), {"values": {"decision": "approve"}}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict" and "already completed by alice" in again.json()["detail"]


def test_complete_with_session_needs_csrf(review_item, users):
    refused = as_user(users.alice, csrf=True).post(url(review_item, "complete"), {"values": {"decision": "approve"}},
                                                   format="json")
    assert refused.status_code == 403
    review_item.refresh_from_db()
    assert review_item.status == "open"
    assert as_user(users.alice).post(url(review_item, "complete"), {"values": {"decision": "approve"}},
                                     format="json").status_code == 200


# -- claim / unclaim ---------------------------------------------------------------

def test_claim_and_unclaim_a_group_item(group_item, users, dave):
    carol, other = token_client(users.carol), token_client(dave)
    claimed = carol.post(url(group_item, "claim"))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "carol"
    assert other.post(url(group_item, "claim")).status_code == 409
    blocked = other.post(url(group_item, "complete"), {"values": {"ok": True}}, format="json")
    assert blocked.status_code == 409 and "claimed by carol" in blocked.json()["detail"]
    assert other.post(url(group_item, "unclaim")).status_code == 409
    assert other.get(url(group_item)).json()["can_complete"] is False
    released = carol.post(url(group_item, "unclaim"))
    assert released.status_code == 200 and released.json()["claimed_by"] is None
    assert other.post(url(group_item, "complete"), {"values": {"ok": True}}, format="json").status_code == 200


def test_claim_errors(review_item, group_item, users):
    user_item = token_client(users.alice).post(url(review_item, "claim"))
    assert user_item.status_code == 409  # completed already
    # A manager who is not in the group may see it but not claim it.
    assert token_client(users.manager).post(url(group_item, "claim")).status_code == 403
    assert token_client(users.alice).post("/api/work-items/999999/claim/").status_code == 404


# -- reassign ---------------------------------------------------------------------------

def test_reassign_by_a_manager(review_item, users):
    response = token_client(users.manager).post(url(review_item, "reassign"), {"assignee": "user:bob"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == "user:bob"
    assert token_client(users.bob).get(LIST).json()["count"] == 1
    assert token_client(users.alice).get(url(review_item)).status_code == 404


def test_reassign_errors(review_item, users):
    manager = token_client(users.manager)
    unknown = manager.post(url(review_item, "reassign"), {"assignee": "user:zed"}, format="json")
    assert unknown.status_code == 400 and "assignee" in unknown.json()["errors"]
    for body in ({}, {"assignee": ["user:bob"]}, {"assignee": "nonsense"}, {"assignee": "x" * 1000}):
        assert manager.post(url(review_item, "reassign"), body, format="json").status_code == 400, body
    assert manager.post("/api/work-items/999999/reassign/", {"assignee": "user:bob"}, format="json").status_code == 404
    review_item.complete(users.alice, {"decision": "approve"})
    closed = manager.post(url(review_item, "reassign"), {"assignee": "user:bob"}, format="json")
    assert closed.status_code == 409


# -- comments ---------------------------------------------------------------------------

def test_comments(review_item, users):
    alice = token_client(users.alice)
    created = alice.post(url(review_item, "comments"), {"text": "On it."}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["author"] == "alice" and created.json()["text"] == "On it."
    token_client(users.manager).post(url(review_item, "comments"), {"text": "Thanks <b>!</b>"}, format="json")
    listed = alice.get(url(review_item, "comments")).json()
    assert listed["count"] == 2 and [c["text"] for c in listed["results"]] == ["On it.", "Thanks <b>!</b>"]
    for body in ({"text": "   "}, {"text": "x" * 5001}, {}, {"text": {"a": 1}}):
        assert alice.post(url(review_item, "comments"), body, format="json").status_code == 400, body
    assert alice.get(url(review_item, "comments")).json()["count"] == 2


# -- journeys, through the API only ----------------------------------------------------

def test_journey_launch_work_complete_run_completed(approval, users):
    launcher, alice, carol = token_client(users.launcher), token_client(users.alice), token_client(users.carol)
    launched = launcher.post("/api/orchestrations/approval/launch/", {"inputs": {"amount": 250}}, format="json")
    assert launched.status_code == 201
    run_id = launched.json()["id"]

    mine = alice.get(LIST).json()["results"]
    assert len(mine) == 1 and mine[0]["run"] == run_id
    item = alice.get(f"{LIST}{mine[0]['id']}/").json()
    assert [f["name"] for f in item["screens"][0]["fields"]][0] == "decision"
    rejected = alice.post(f"{LIST}{item['id']}/complete/", {"values": {"decision": "reject"}}, format="json")
    assert rejected.status_code == 400 and "comment" in rejected.json()["errors"]
    done = alice.post(f"{LIST}{item['id']}/complete/", {"values": {"decision": "approve"}}, format="json")
    assert done.status_code == 200

    group_work = carol.get(LIST).json()["results"]
    assert len(group_work) == 1 and group_work[0]["step"] == "confirm"
    assert carol.post(f"{LIST}{group_work[0]['id']}/claim/").status_code == 200
    assert carol.post(f"{LIST}{group_work[0]['id']}/complete/", {"values": {"ok": True}},
                      format="json").status_code == 200

    run = token_client(users.staff).get(f"/api/runs/{run_id}/").json()
    assert run["status"] == "completed"
    assert [s["status"] for s in run["stages"]] == ["completed", "completed"]
    assert run["stages"][0]["steps"][0]["outputs"]["decision"] == "approve"
    assert run["events"][-1]["kind"] == "run_completed"


def test_journey_with_a_background_step_run_eagerly(users, celery_eager, django_capture_on_commit_callbacks):
    noop_flow("api_total", outputs={"total": ("number", "inputs_amount * 2.0")},
              inputs=[{"name": "inputs_amount", "type": "number"}])
    check = screen_flow("api_check", fields=[{"name": "ok", "type": "boolean", "required": True}])
    orchestration([
        {"name": "check", "steps": [ui("check", check.api_name, {"user": "alice"})]},
        {"name": "compute", "steps": [bg("total", "api_total", inputs={"inputs_amount": "inputs.amount"})]},
    ], api_name="with_bg", inputs=[{"name": "amount", "type": "number", "required": True}])
    with django_capture_on_commit_callbacks(execute=True):
        run_id = token_client(users.launcher).post("/api/orchestrations/with_bg/launch/",
                                                   {"inputs": {"amount": 4}}, format="json").json()["id"]
    alice = token_client(users.alice)
    item_id = alice.get(LIST).json()["results"][0]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert alice.post(f"{LIST}{item_id}/complete/", {"values": {"ok": True}}, format="json").status_code == 200
    run = token_client(users.staff).get(f"/api/runs/{run_id}/").json()
    assert run["status"] == "completed", run
    assert run["stages"][1]["steps"][0]["outputs"]["total"] == 8.0
    assert OrchestrationRun.objects.get(pk=run_id).status == "completed"


# -- issue 17 #11: one claim rule for everyone ------------------------------------------

def test_a_claim_binds_managers_too(group_item, users, dave):
    """A manager outside the group completed an item carol had claimed (200) while dave, a member, got 409."""
    assert token_client(users.carol).post(url(group_item, "claim")).status_code == 200
    for who in (dave, users.manager):
        refused = token_client(who).post(url(group_item, "complete"), {"values": {"ok": True}}, format="json")
        assert refused.status_code == 409 and "claimed by carol" in refused.json()["detail"], who
        assert token_client(who).get(url(group_item)).json()["can_complete"] is False
    group_item.refresh_from_db()
    assert group_item.status == "open"
    # The manager releases it (recorded) and may then complete it.
    released = token_client(users.manager).post(url(group_item, "release"))
    assert released.status_code == 200 and released.json()["claimed_by"] is None
    done = token_client(users.manager).post(url(group_item, "complete"), {"values": {"ok": True}}, format="json")
    assert done.status_code == 200 and done.json()["completed_by"] == "manager"
    kinds = list(OrchestrationRun.objects.get(pk=group_item.run_id).events.values_list("kind", flat=True))
    assert "work_item_claimed" in kinds and "work_item_unclaimed" in kinds


# -- issue 17 #12: what an assignee may do with their own work --------------------------

def test_the_assignee_of_a_user_item_may_claim_release_and_hand_it_on(approval, users):
    direct = WorkItem.objects.get(run=launch_approval(users.launcher))
    alice = token_client(users.alice)
    claimed = alice.post(url(direct, "claim"))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "alice"
    assert token_client(users.bob).post(url(direct, "claim")).status_code == 404  # not his: not even visible
    assert alice.post(url(direct, "release")).json()["claimed_by"] is None
    handed = alice.post(url(direct, "reassign"), {"assignee": "group:reviewers"}, format="json")
    assert handed.status_code == 200, handed.content
    assert handed.json()["assignee"] == "group:reviewers"
    assert alice.get(url(direct)).status_code == 404  # no longer hers
    event = OrchestrationRun.objects.get(pk=direct.run_id).events.get(kind="work_item_reassigned")
    assert event.actor == users.alice and event.data["after"] == "group:reviewers"


def test_a_group_member_may_hand_on_only_what_they_claimed(group_item, users, dave):
    carol, other = token_client(users.carol), token_client(dave)
    body = {"assignee": "user:bob"}
    refused = carol.post(url(group_item, "reassign"), body, format="json")  # the group's, not carol's yet
    assert refused.status_code == 403 and "holder" in refused.json()["detail"]
    carol.post(url(group_item, "claim"))
    assert other.post(url(group_item, "reassign"), body, format="json").status_code == 403
    handed = carol.post(url(group_item, "reassign"), body, format="json")
    assert handed.status_code == 200 and handed.json()["assignee"] == "user:bob"
    assert handed.json()["claimed_by"] is None


@pytest.mark.parametrize("action, body", [
    ("complete", '{"values": {"decision": "reject", "comment": "bad \\ud800 note"}}'),
    ("complete", '{"values": {"decision": "approve", "\\udc00": 1}}'),
    ("comments", '{"text": "bad \\ud800 comment"}'),
])
def test_a_lone_surrogate_in_a_work_item_body_is_a_400_and_the_run_pages_still_show(review_item, users, action, body):
    """Issue 12 review, hole 2: stored, such text made /api/runs/, the run's page and its admin answer 500."""
    alice = token_client(users.alice)
    response = alice.post(url(review_item, action), body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error" and "lone surrogate" in response.json()["detail"]
    review_item.refresh_from_db()
    assert review_item.status == "open" and not services.comments(review_item).exists()
    admin = as_user(users.admin)
    run_id = review_item.step_run.stage_run.run_id
    for page in ("/api/runs/", f"/api/runs/{run_id}/", f"/monitor/runs/{run_id}/",
                 f"/admin/orchestration/orchestrationrun/{run_id}/change/"):
        assert admin.get(page).status_code == 200, page
