"""The Orchestration Builder's endpoints (orchestration/builder/): every change one request
answering the canvas and its checks, refusals naming the place and storing nothing."""
import re

import pytest
from django.contrib.auth.models import Permission, User

from orchestration.models import BuilderSnapshot, DecisionOutcome, Orchestration, Stage, Step
from tests.factories import make_flow, make_orchestration, make_user, stage, step, var

pytestmark = pytest.mark.django_db


def url(orch, suffix=""):
    return f"/admin/orchestration/orchestration/{orch.pk}/builder/{suffix}"


@pytest.fixture
def flows():
    return {
        "collect": make_flow("bb_collect", type="screen", outputs=[var("decision")]),
        "notify": make_flow("bb_notify", inputs=[var("who", required=True)], outputs=[var("sent", "boolean")]),
        "archive": make_flow("bb_archive"),
    }


@pytest.fixture
def draft(flows):
    return make_orchestration("bb_orch", path=[
        stage("review", step("ask", "bb_collect", type="interactive", assignee={"user": "admin"}),
              step("tell", "bb_notify", inputs={"who": '"x"'})),
        {"type": "decision", "name": "route", "outcomes": [
            {"name": "again", "condition": 'steps.ask.outputs.decision == "rework"', "goto": "review"}],
         "default": "finish"},
        stage("finish", step("store", "bb_archive")),
    ])


def snapshot(orch):
    from orchestration.spec import orchestration_to_dict

    return orchestration_to_dict(Orchestration.objects.get(pk=orch.pk))


def test_the_builder_page_shows_every_stage_and_step_by_label_or_name(admin_client, draft):
    Stage.objects.filter(orchestration=draft, name="review").update(label="Review the request")
    response = admin_client.get(url(draft))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Review the request", "route", "finish", "ask", "tell", "store", "Autolaunched"):
        assert text in html
    assert "no problems" in html


def test_the_builder_needs_the_change_permission(client, draft):
    user = make_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_orchestration"))
    client.force_login(user)
    assert client.get(url(draft)).status_code == 403
    assert client.post(url(draft, "change/"), {"op": "add_stage"}).status_code == 403
    assert Stage.objects.filter(orchestration=draft).count() == 3
    user.user_permissions.add(Permission.objects.get(codename="change_orchestration"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(url(draft)).status_code == 200


def test_a_new_version_needs_the_add_permission_as_the_admins_button_does(client, draft):
    """With change but not add permission the admin's New version answers 403; so does the builder's."""
    user = make_user("editor", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_orchestration", "view_orchestration"]))
    client.force_login(user)
    versions = Orchestration.objects.filter(api_name=draft.api_name).count()
    assert client.post(f"/admin/orchestration/orchestration/{draft.pk}/lifecycle/new_version/").status_code == 403
    assert client.post(url(draft, "new-version/")).status_code == 403
    assert Orchestration.objects.filter(api_name=draft.api_name).count() == versions
    user.user_permissions.add(Permission.objects.get(codename="add_orchestration"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.post(url(draft, "new-version/")).status_code == 302
    assert Orchestration.objects.filter(api_name=draft.api_name).count() == versions + 1


def test_an_unknown_version_is_404(admin_client):
    assert admin_client.get("/admin/orchestration/orchestration/999999/builder/").status_code == 404


def test_adding_a_stage_a_decision_and_steps_each_answer_the_canvas(admin_client, draft):
    response = admin_client.post(url(draft, "change/"), {"op": "add_stage"})
    assert response.status_code == 200
    new = Stage.objects.get(orchestration=draft, name="stage_1")
    assert new.position == 3 and "New stage" in response.content.decode()
    response = admin_client.post(url(draft, "change/"), {"op": "add_step", "stage": new.pk, "type": "interactive"})
    assert response.status_code == 200
    added = Step.objects.get(stage=new)
    assert (added.type, added.name) == ("interactive", "step_1")
    # The new step has no flow: the check is pinned to its card and listed.
    html = response.content.decode()
    assert f'id="el-step-{added.pk}"' in html and "no flow given" in html
    response = admin_client.post(url(draft, "change/"), {"op": "add_decision", "after": new.pk})
    assert response.status_code == 200
    assert Stage.objects.get(orchestration=draft, name="decision_1").kind == "decision"


def test_moving_steps_and_stages_renumbers_positions(admin_client, draft):
    review = Stage.objects.get(orchestration=draft, name="review")
    finish = Stage.objects.get(orchestration=draft, name="finish")
    tell = Step.objects.get(stage=review, name="tell")
    response = admin_client.post(url(draft, "change/"), {"op": "move_step", "step": tell.pk, "stage": finish.pk, "index": 0})
    assert response.status_code == 200
    assert [s.name for s in finish.steps.order_by("position")] == ["tell", "store"]
    assert [s.position for s in finish.steps.order_by("position")] == [0, 1]
    response = admin_client.post(url(draft, "change/"), {"op": "shift_step", "step": tell.pk, "direction": "down"})
    assert [s.name for s in finish.steps.order_by("position")] == ["store", "tell"]
    response = admin_client.post(url(draft, "change/"), {"op": "shift_element", "element": finish.pk, "direction": "left"})
    assert list(draft.stages.order_by("position").values_list("name", flat=True)) == ["review", "finish", "route"]
    response = admin_client.post(url(draft, "change/"), {"op": "move_element", "element": finish.pk, "index": 5})
    assert list(draft.stages.order_by("position").values_list("name", flat=True)) == ["review", "route", "finish"]


def test_undo_puts_back_the_definition_before_the_last_change(admin_client, draft):
    before = snapshot(draft)
    finish = Stage.objects.get(orchestration=draft, name="finish")
    admin_client.post(url(draft, "change/"), {"op": "delete_element", "element": finish.pk})
    assert not Stage.objects.filter(orchestration=draft, name="finish").exists()
    response = admin_client.post(url(draft, "change/"), {"op": "undo"})
    assert response.status_code == 200 and "Undone: Deleted finish" in response.content.decode()
    assert snapshot(draft) == before
    response = admin_client.post(url(draft, "change/"), {"op": "undo"})
    assert response.status_code == 400 and "nothing to undo" in response.content.decode()


@pytest.mark.parametrize("data, words", [
    ({"op": "explode"}, "unknown change 'explode'"),
    ({"op": "delete_step", "step": "999999"}, "no step with id 999999"),
    ({"op": "move_step", "step": "abc", "stage": "1", "index": "0"}, "no step with id 'abc'"),
    ({"op": "add_step", "stage": "STAGE", "type": "robot"}, "step type 'robot' is not one of"),
    ({"op": "shift_step", "step": "STEP", "direction": "left"}, "there is no stage to the left"),
    ({"op": "move_step", "step": "STEP", "stage": "DECISION", "index": "0"}, "cannot move a step into decision route"),
    ({"op": "add_step", "stage": "DECISION", "type": "background"}, "a decision has outcomes, not steps"),
    ({"op": "move_element", "element": "STAGE", "index": "x"}, "position 'x' is not a number"),
])
def test_a_bad_change_is_refused_naming_the_place_and_stores_nothing(admin_client, draft, data, words):
    review = Stage.objects.get(orchestration=draft, name="review")
    ids = {"STAGE": review.pk, "STEP": Step.objects.get(name="ask", stage=review).pk,
           "DECISION": Stage.objects.get(orchestration=draft, name="route").pk}
    data = {k: str(ids.get(v, v)) for k, v in data.items()}
    before = snapshot(draft)
    response = admin_client.post(url(draft, "change/"), data)
    assert response.status_code == 400
    assert words in response.content.decode().replace("&#x27;", "'")
    assert snapshot(draft) == before
    assert not BuilderSnapshot.objects.filter(orchestration=draft).exists()


def test_a_frozen_version_is_read_only_with_new_version(admin_client, draft):
    draft.set_lifecycle_status("active")
    response = admin_client.get(url(draft))
    html = response.content.decode()
    assert response.status_code == 200 and "read-only" in html and "New version" in html
    assert "bb-grip" not in html
    before = snapshot(draft)
    response = admin_client.post(url(draft, "change/"), {"op": "add_stage"})
    assert response.status_code == 409 and "cannot be changed" in response.content.decode()
    step_pk = Step.objects.get(stage__orchestration=draft, name="ask").pk
    response = admin_client.post(url(draft, f"panel/step/{step_pk}/"), {"element-name": "x"})
    assert response.status_code == 409
    assert snapshot(draft) == before
    response = admin_client.post(url(draft, "new-version/"))
    newer = Orchestration.objects.get(api_name="bb_orch", version=2)
    assert response.status_code == 302 and response["Location"] == url(newer)
    assert newer.status == "draft"


def step_post(step_obj, **changes):
    data = {"element-name": step_obj.name, "element-label": step_obj.label, "element-type": step_obj.type,
            "element-flow": step_obj.flow, "element-entry_type": "stage_start", "element-exit_type": "step_completes",
            "element-assignee_type": step_obj.assignee_type, "element-assignee": step_obj.assignee,
            "element-record": "", "element-due_in": "", "element-escalate_to": "", "element-retries": "3",
            "element-timeout": "10m"}
    for key, value in (step_obj.inputs or {}).items():
        data[f"element-inputs__{key}"] = value
    data.update({f"element-{k}": v for k, v in changes.items()})
    return data


def test_the_step_panel_offers_active_flows_of_its_type_and_their_inputs(admin_client, draft, flows):
    make_flow("bb_draft_only", status="draft")
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    html = admin_client.get(url(draft, f"panel/step/{tell.pk}/")).content.decode()
    assert "bb_notify v1" in html and "bb_archive v1" in html
    assert "bb_collect" not in re.search(r'name="element-flow".*?</select>', html, re.S).group(0)
    assert "bb_draft_only" not in html
    assert 'name="element-inputs__who"' in html and "required" in html
    # Names in scope: the decision output of ask is not certain before tell (same stage, no after).
    assert 'data-insert="steps.ask.outputs.decision"' not in html
    store = Step.objects.get(stage__orchestration=draft, name="store")
    html = admin_client.get(url(draft, f"panel/step/{store.pk}/")).content.decode()
    assert 'data-insert="steps.ask.outputs.decision"' in html and 'data-insert="run.started_by"' in html


def test_saving_a_step_stores_its_fields_and_mapping_only_for_its_kind(admin_client, draft):
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    response = admin_client.post(url(draft, f"panel/step/{tell.pk}/"), step_post(
        tell, label="Tell them", **{"inputs__who": "inputs.person", "entry_type": "after", "entry_after": ["ask"],
                                    "assignee_type": "user", "assignee": "ghost", "retries": "5", "timeout": "2m"}))
    assert response.status_code == 200, response.content.decode()[:2000]
    tell.refresh_from_db()
    assert (tell.label, tell.inputs, tell.entry_type, tell.entry_after) == (
        "Tell them", {"who": "inputs.person"}, "after", ["ask"])
    assert (tell.retries, tell.timeout, tell.assignee) == (5, "2m", "")  # a background step has no assignee
    html = response.content.decode()
    assert "inputs.person" in html and "declares no input" in html  # the validator ran on the change
    assert "Saved" in html


@pytest.mark.parametrize("changes, words", [
    ({"name": "two words"}, "is not a valid step name"),
    ({"name": "ask"}, "another step of this orchestration is named ask"),
    ({"retries": "many"}, "retries"),
    ({"timeout": "soon"}, "is not a duration for timeout"),
    ({"type": "robot"}, "type"),
])
def test_a_bad_step_panel_is_refused_naming_the_field_and_stores_nothing(admin_client, draft, changes, words):
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    before = snapshot(draft)
    response = admin_client.post(url(draft, f"panel/step/{tell.pk}/"), step_post(tell, **changes))
    assert response.status_code == 400
    text = response.content.decode().replace("&#x27;", "'")
    assert "bb_orch › review › tell" in text and words in text
    assert snapshot(draft) == before


def test_renaming_a_stage_keeps_the_gotos_pointing_at_it(admin_client, draft):
    review = Stage.objects.get(orchestration=draft, name="review")
    response = admin_client.post(url(draft, f"panel/stage/{review.pk}/"), {
        "element-name": "check", "element-label": "Check", "element-next": "", "element-exit_type": "all_steps_complete",
        "element-exit_condition": "", "element-exit_flow": ""})
    assert response.status_code == 200, response.content.decode()[:2000]
    assert DecisionOutcome.objects.get(stage__orchestration=draft, name="again").goto == "check"


def test_the_decision_panel_saves_outcomes_and_default(admin_client, draft):
    route = Stage.objects.get(orchestration=draft, name="route")
    admin_client.post(url(draft, "change/"), {"op": "add_outcome", "decision": route.pk})
    outcomes = list(route.outcomes.order_by("position"))
    data = {"element-name": "route", "element-label": "Approved?", "element-default_goto": "end",
            "outcomes-TOTAL_FORMS": "2", "outcomes-INITIAL_FORMS": "2", "outcomes-MIN_NUM_FORMS": "0",
            "outcomes-MAX_NUM_FORMS": "1000"}
    for i, (o, name, cond, goto) in enumerate(zip(outcomes, ["again", "done"],
                                                  ['steps.ask.outputs.decision == "rework"', "true"],
                                                  ["review", "finish"])):
        data.update({f"outcomes-{i}-id": str(o.pk), f"outcomes-{i}-name": name, f"outcomes-{i}-condition": cond,
                     f"outcomes-{i}-goto": goto})
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"), data)
    assert response.status_code == 200, response.content.decode()[:2000]
    route.refresh_from_db()
    assert route.default_goto == "end" and route.label == "Approved?"
    assert [(o.name, o.goto) for o in route.outcomes.order_by("position")] == [("again", "review"), ("done", "finish")]
    data["outcomes-1-name"] = "again"
    before = snapshot(draft)
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"), data)
    assert response.status_code == 400 and "outcome names must differ: again" in response.content.decode()
    assert snapshot(draft) == before


def test_the_start_panel_saves_the_trigger_and_inputs(admin_client, draft):
    response = admin_client.post(url(draft, "panel/start/0/"), {
        "start-label": "Deals", "start-start_type": "autolaunched", "start-start_model": "", "start-start_when": "",
        "start-start_condition": "", "start-max_stage_visits": "50", "start-description": "",
        "inputs-TOTAL_FORMS": "2", "inputs-INITIAL_FORMS": "0", "inputs-MIN_NUM_FORMS": "0", "inputs-MAX_NUM_FORMS": "100",
        "inputs-0-name": "amount", "inputs-0-type": "number", "inputs-0-required": "on", "inputs-0-default": "5",
        "inputs-1-name": "", "inputs-1-type": "text", "inputs-1-default": ""})
    assert response.status_code == 200, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert draft.inputs == [{"name": "amount", "type": "number", "required": True, "default": 5}]
    response = admin_client.post(url(draft, "panel/start/0/"), {
        "start-label": "Deals", "start-start_type": "autolaunched", "start-max_stage_visits": "50",
        "inputs-TOTAL_FORMS": "1", "inputs-INITIAL_FORMS": "0", "inputs-MIN_NUM_FORMS": "0", "inputs-MAX_NUM_FORMS": "100",
        "inputs-0-name": "amount", "inputs-0-type": "number", "inputs-0-default": "lots"})
    assert response.status_code == 400 and "row 1 › default" in response.content.decode()
    draft.refresh_from_db()
    assert draft.inputs[0]["default"] == 5


def test_an_expression_is_checked_as_typed_with_the_names_in_scope_there(admin_client, draft):
    store = Step.objects.get(stage__orchestration=draft, name="store")
    ok = admin_client.post(url(draft, "check/"), {"source": 'steps.ask.outputs.decision == "x"',
                                                   "element": f"step:{store.pk}", "what": "exit.condition"})
    assert ok.status_code == 200 and "compiles" in ok.content.decode()
    bad = admin_client.post(url(draft, "check/"), {"source": "1 +", "element": f"step:{store.pk}", "what": "record"})
    assert "bb-check-bad" in bad.content.decode()
    unknown = admin_client.post(url(draft, "check/"), {"source": "steps.ask.outputs.colour",
                                                        "element": f"step:{store.pk}", "what": "inputs.x"})
    assert "has no output 'colour'" in unknown.content.decode().replace("&#x27;", "'")
    nowhere = admin_client.post(url(draft, "check/"), {"source": "true", "element": "planet:3", "what": "x"})
    assert nowhere.status_code == 400


def test_assignee_search_lists_matching_users(admin_client, draft):
    make_user("alice_bb")
    make_user("bob_bb")
    html = admin_client.get(url(draft, "assignees/") + "?kind=user&q=ali").content.decode()
    assert "alice_bb" in html and "bob_bb" not in html


def test_dry_run_walks_both_outcomes_and_highlights_the_path(admin_client, draft):
    ask = "out__ask__decision"
    rework = admin_client.post(url(draft, "dry-run/"), {ask: "rework"})
    assert rework.status_code == 200
    html = rework.content.decode()
    assert "review → route → review" in html  # a loop: max_stage_visits stops it
    done = admin_client.post(url(draft, "dry-run/"), {ask: "approve"})
    html = done.content.decode()
    assert "review → route → finish → end" in html
    assert "bb-sim-done" in html
    both = admin_client.post(url(draft, "dry-run/"), {ask: "rework | approve"}).content.decode()
    assert "review → route → review → route → finish → end" in both
    bad = admin_client.post(url(draft, "dry-run/"), {"record": "nowhere.model:1"})
    assert bad.status_code == 400 and "Dry run: record" in bad.content.decode()


def test_activate_shows_impact_then_activates_only_without_problems(admin_client, draft, flows):
    html = admin_client.get(url(draft, "activate/")).content.decode()
    assert "No version of bb_orch is active yet" in html
    response = admin_client.post(url(draft, "activate/"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"] == url(draft)
    draft.refresh_from_db()
    assert draft.status == "active"
    admin_client.post(url(draft, "new-version/"))
    second = Orchestration.objects.get(api_name="bb_orch", version=2)
    admin_client.post(url(second, "change/"), {"op": "add_stage"})
    html = admin_client.get(url(second, "activate/")).content.decode()
    assert "v1, now active, becomes obsolete" in html and "stage stage_1" in html
    assert "must be fixed first" in html and "bb-confirm-activate" not in html
    response = admin_client.post(url(second, "activate/"))
    assert response.status_code == 400 and "Not activated" in response.content.decode()
    second.refresh_from_db()
    assert second.status == "draft"


def test_the_diff_compares_two_versions_side_by_side(admin_client, draft):
    draft.set_lifecycle_status("active")
    admin_client.post(url(draft, "new-version/"))
    second = Orchestration.objects.get(api_name="bb_orch", version=2)
    finish = Stage.objects.get(orchestration=second, name="finish")
    admin_client.post(url(second, "change/"), {"op": "add_step", "stage": finish.pk, "type": "background"})
    admin_client.post(url(second, "change/"), {"op": "delete_step",
                                               "step": Step.objects.get(stage__orchestration=second, name="tell").pk})
    response = admin_client.get(url(second, "diff/") + f"?other={draft.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r"step step_1 <small class=\"bb-diff-added\">added", html)
    assert re.search(r"step tell <small class=\"bb-diff-removed\">removed", html)
    assert re.search(r"stage finish <small class=\"bb-diff-changed\">changed", html)
    assert admin_client.get(url(second, "diff/") + "?other=abc").status_code == 400


def test_the_yaml_view_shows_and_applies_the_import_format(admin_client, draft):
    html = admin_client.get(url(draft, "yaml/")).content.decode()
    assert "api_name: bb_orch" in html
    before = snapshot(draft)
    bad = admin_client.post(url(draft, "yaml/"), {"yaml": "orchestrations:\n- api_name: bb_orch\n  path: [\n"})
    assert bad.status_code == 400 and "line" in bad.content.decode()
    assert snapshot(draft) == before
    other = admin_client.post(url(draft, "yaml/"), {"yaml": "orchestrations:\n- api_name: other\n  path: []\n"})
    assert other.status_code == 400 and "exactly one orchestration named bb_orch" in other.content.decode()
    text = ("orchestrations:\n- api_name: bb_orch\n  start: {type: autolaunched}\n  path:\n"
            "  - name: only\n    steps:\n    - {name: store, flow: bb_archive}\n")
    ok = admin_client.post(url(draft, "yaml/"), {"yaml": text})
    assert ok.status_code == 200
    assert list(draft.stages.values_list("name", flat=True)) == ["only"]
    admin_client.post(url(draft, "change/"), {"op": "undo"})
    assert snapshot(draft) == before


def test_the_admin_links_to_the_builder(admin_client, draft):
    assert url(draft) in admin_client.get("/admin/orchestration/orchestration/").content.decode()
    assert url(draft) in admin_client.get(f"/admin/orchestration/orchestration/{draft.pk}/change/").content.decode()


def test_opening_the_builder_reads_a_fixed_number_of_queries_whatever_the_size(admin_client, flows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_user("admin")

    def queries(n):
        orch = make_orchestration(path=[stage(f"st{i}", *[step(f"p{i}_{k}", "bb_collect", type="interactive",
                                                               assignee={"user": "admin"}) for k in range(n)])
                                        for i in range(n)])
        admin_client.get(url(orch))
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url(orch)).status_code == 200
        return len(ctx.captured_queries)

    assert queries(2) == queries(6)


def test_the_selected_element_echoed_into_the_page_is_only_ever_an_element_key(admin_client, draft):
    review = Stage.objects.get(orchestration=draft, name="review")
    html = admin_client.post(url(draft, "change/"), {"op": "shift_element", "element": review.pk, "direction": "right",
                                                     "selected": '", "op": "delete_element'}).content.decode()
    assert "delete_element&quot;" not in html and '"selected": ""' in html


def test_a_record_triggered_start_picks_an_exposed_model_and_offers_its_fields(admin_client, draft):
    html = admin_client.get(url(draft, "panel/start/0/")).content.decode()
    assert '<option value="demo.employee">' in html
    response = admin_client.post(url(draft, "panel/start/0/"), {
        "start-label": "", "start-start_type": "record_triggered", "start-start_model": "demo.employee",
        "start-start_when": "created", "start-start_condition": "record.nope == 1", "start-max_stage_visits": "50",
        "inputs-TOTAL_FORMS": "0", "inputs-INITIAL_FORMS": "0", "inputs-MIN_NUM_FORMS": "0",
        "inputs-MAX_NUM_FORMS": "100"})
    assert response.status_code == 200, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert (draft.start_type, draft.start_model, draft.start_when) == ("record_triggered", "demo.employee", "created")
    html = response.content.decode().replace("&#x27;", "'")
    assert "model demo.employee has no field 'nope'" in html  # pinned to the start
    assert 'data-insert="record.name"' in html or 'data-insert="record.email"' in html
    refused = admin_client.post(url(draft, "panel/start/0/"), {
        "start-start_type": "record_triggered", "start-start_model": "auth.user", "start-max_stage_visits": "50",
        "inputs-TOTAL_FORMS": "0", "inputs-INITIAL_FORMS": "0", "inputs-MIN_NUM_FORMS": "0",
        "inputs-MAX_NUM_FORMS": "100"})
    assert refused.status_code == 400 and "start_model" in refused.content.decode()


def test_a_frozen_versions_panels_are_shown_disabled(admin_client, draft):
    draft.set_lifecycle_status("active")
    ask = Step.objects.get(stage__orchestration=draft, name="ask")
    html = admin_client.get(url(draft, f"panel/step/{ask.pk}/")).content.decode()
    assert "<fieldset disabled>" in html and "bb-apply" not in html


def test_renaming_a_step_keeps_the_after_lists_naming_it(admin_client, draft):
    ask = Step.objects.get(stage__orchestration=draft, name="ask")
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    Step.objects.filter(pk=tell.pk).update(entry_type="after", entry_after=["ask"])
    response = admin_client.post(url(draft, f"panel/step/{ask.pk}/"), step_post(ask, name="request", **{
        "assignee_type": "user", "assignee": "admin"}))
    assert response.status_code == 200, response.content.decode()[:2000]
    tell.refresh_from_db()
    assert tell.entry_after == ["request"]


# ------------------------------------------------------------------ §10 panels (DESIGN §10)

def post_step(client, orch, step_obj, **changes):
    return client.post(url(orch, f"panel/step/{step_obj.pk}/"), step_post(step_obj, **changes))


def stored_step(orch, name):
    for element in snapshot(orch)["path"]:
        for item in element.get("steps", []):
            if item["name"] == name:
                return item
    raise AssertionError(f"no step {name}")


def text_of(response):
    return response.content.decode().replace("&#x27;", "'").replace("&quot;", '"').replace("&gt;", ">")


def pinned(response):
    """The problems listed under Checks, as "place: message" lines."""
    html = text_of(response)
    return "\n".join(f"{place}: {message.strip()}" for place, message in
                     re.findall(r'<span class="bb-place">(.*?)</span>(.*?)</a>', html, re.S))


def test_a_multi_instance_step_is_set_in_its_panel_with_item_and_index_in_scope(admin_client, draft):
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    html = text_of(admin_client.get(url(draft, f"panel/step/{tell.pk}/")))
    assert 'name="element-for_each"' in html and 'name="element-completion_rule"' in html
    assert 'data-insert="item"' not in html  # runs once: no element in scope yet
    response = post_step(admin_client, draft, tell, for_each='["a", "b"]', completion_rule="at_least",
                         completion_at_least="1", sequential="on", remaining="on", inputs__who="item")
    assert response.status_code == 200, text_of(response)[:2000]
    assert stored_step(draft, "tell") | {} == {
        "name": "tell", "flow": "bb_notify", "inputs": {"who": "item"}, "for_each": '["a", "b"]',
        "completion": {"at_least": 1}, "sequential": True, "remaining": "continue"}
    html = text_of(response)
    assert 'data-insert="item"' in html and 'data-insert="index"' in html
    assert "tell › inputs.who" not in pinned(response)  # item is in scope for the inputs of a multi-instance step
    assert "bb_orch › review › tell › remaining: a sequential step starts no instance after its rule is met" in pinned(response)
    # A value the validator refuses is stored and pinned to the step, with its place.
    response = post_step(admin_client, draft, tell, for_each='["a", "b"]', completion_rule="at_least",
                         completion_at_least="3", inputs__who="item")
    assert response.status_code == 200
    assert ("bb_orch › review › tell › completion.at_least: 3 instances can never complete: for_each gives 2"
            in pinned(response))
    assert re.search(rf'id="el-step-{tell.pk}".*?class="bb-badge"', text_of(response), re.S)
    for rule, extra, stored in [("percent", {"completion_percent": "50"}, {"percent": 50}),
                                ("condition", {"completion_condition": "size(instances) > 1"},
                                 {"condition": "size(instances) > 1"}),
                                ("any", {}, "any")]:
        response = post_step(admin_client, draft, tell, for_each="[1, 2]", completion_rule=rule, **extra)
        assert response.status_code == 200, text_of(response)[:2000]
        assert stored_step(draft, "tell")["completion"] == stored
    # A completion condition reads the instances, checked as typed.
    ok = admin_client.post(url(draft, "check/"), {"source": "size(instances) > 1", "element": f"step:{tell.pk}",
                                                   "what": "completion.condition"})
    assert "compiles; names in scope" in text_of(ok)
    bad = admin_client.post(url(draft, "check/"), {"source": "size(instances) > 1", "element": f"step:{tell.pk}",
                                                    "what": "for_each"})
    assert "instances — not in scope" in text_of(bad)
    # Without for_each the instance rules do not apply and are not kept.
    response = post_step(admin_client, draft, tell, for_each="", completion_rule="any", sequential="on")
    assert response.status_code == 200
    assert {"completion", "sequential", "for_each"}.isdisjoint(stored_step(draft, "tell"))


@pytest.mark.parametrize("changes, field, words", [
    ({"for_each": "[1]", "completion_rule": "at_least", "completion_at_least": "many"}, "completion_at_least",
     "Enter a whole number"),
    ({"for_each": "[1]", "completion_rule": "at_least", "completion_at_least": ""}, "completion_at_least",
     "give it a value"),
    ({"for_each": "[1]", "completion_rule": "percent", "completion_percent": "250"}, "completion_percent",
     "less than or equal to 100"),
    ({"for_each": "[1]", "completion_rule": "percent", "completion_percent": "nan"}, "completion_percent",
     "Enter a number"),
    ({"for_each": "[1]", "completion_rule": "sometimes"}, "completion_rule", "Select a valid choice"),
    ({"priority": "1000"}, "priority", "less than or equal to 100"),
])
def test_a_bad_instance_rule_is_refused_with_its_place(admin_client, draft, changes, field, words):
    ask = Step.objects.get(stage__orchestration=draft, name="ask")
    before = snapshot(draft)
    response = post_step(admin_client, draft, ask, **changes)
    assert response.status_code == 400
    assert f"bb_orch › review › ask › {field}: " in text_of(response) and words in text_of(response)
    assert snapshot(draft) == before


def test_a_step_turned_into_a_wait_keeps_none_of_its_former_kind(admin_client, draft):
    ask = Step.objects.get(stage__orchestration=draft, name="ask")
    response = post_step(admin_client, draft, ask, type="wait", wait_kind="for", wait_for="1h", for_each="[1, 2]",
                         completion_rule="any")
    assert response.status_code == 200, text_of(response)[:2000]
    assert stored_step(draft, "ask") == {"name": "ask", "type": "wait", "for": "1h"}
    assert "bb_orch › review › ask" not in pinned(response)


def test_parallel_assignees_same_as_and_exclude_are_chosen_in_the_assignee_panel(admin_client, draft):
    finish = Stage.objects.get(orchestration=draft, name="finish")
    admin_client.post(url(draft, "change/"), {"op": "add_step", "stage": finish.pk, "type": "interactive"})
    approve = Step.objects.get(stage=finish, name="step_1")
    html = text_of(admin_client.get(url(draft, f"panel/step/{approve.pk}/")))
    assert '<option value="list">' in html and '<option value="ask">ask</option>' in html  # same_as offers ask
    response = post_step(admin_client, draft, approve, flow="bb_collect", assignee_type="list",
                         assignees='["user:admin", "group:board"]', completion_rule="at_least",
                         completion_at_least="2", assignee_exclude="[steps.ask.completed_by]")
    assert response.status_code == 200, text_of(response)[:2000]
    item = stored_step(draft, "step_1")
    assert item["assignees"] == '["user:admin", "group:board"]' and item["completion"] == {"at_least": 2}
    assert item["assignee"] == {"exclude": "[steps.ask.completed_by]"}
    html = text_of(response)
    assert "step_1 › assignee" not in pinned(response)  # a list of assignees is an assignee
    response = post_step(admin_client, draft, approve, flow="bb_collect", assignee_type="same_as", same_as_step="ask")
    assert response.status_code == 200, text_of(response)[:2000]
    item = stored_step(draft, "step_1")
    assert item["assignee"] == {"same_as": "ask"} and "assignees" not in item and "completion" not in item
    before = snapshot(draft)
    response = post_step(admin_client, draft, approve, flow="bb_collect", assignee_type="same_as", same_as_step="")
    assert response.status_code == 400
    assert "bb_orch › finish › step_1 › same_as_step: pick the step" in text_of(response)
    assert snapshot(draft) == before


def test_a_wait_step_panel_shows_only_the_wait_fields_and_keeps_one_kind(admin_client, draft):
    finish = Stage.objects.get(orchestration=draft, name="finish")
    response = admin_client.post(url(draft, "change/"), {"op": "add_step", "stage": finish.pk, "type": "wait"})
    wait = Step.objects.get(stage=finish, name="step_1")
    html = text_of(response)
    assert 'name="element-wait_kind"' in html and 'name="element-wait_event"' in html
    for other in ("element-flow", "element-retries", "element-assignee_type", "element-for_each"):
        assert f'name="{other}"' not in html
    assert "bb_orch › finish › step_1: a wait step needs exactly one of for, until or event" in pinned(response)
    data = {"wait_kind": "event", "wait_event": "contract_signed", "wait_timeout": "2d", "on_timeout": "error",
            "wait_for": "1h", "flow": "", "type": "wait"}
    response = post_step(admin_client, draft, wait, **data)
    assert response.status_code == 200, text_of(response)[:2000]
    assert stored_step(draft, "step_1") == {"name": "step_1", "label": "New wait step", "type": "wait",
                                            "event": "contract_signed", "timeout": "2d", "on_timeout": "error"}
    assert "step_1" not in pinned(response)  # no problem left on it
    response = post_step(admin_client, draft, wait, type="wait", flow="", wait_kind="until",
                         wait_until="run.started_at +", wait_event="contract_signed")
    assert response.status_code == 200
    assert stored_step(draft, "step_1")["until"] == "run.started_at +"
    assert "bb_orch › finish › step_1 › until: " in pinned(response)  # the compile error, pinned
    before = snapshot(draft)
    response = post_step(admin_client, draft, wait, type="wait", flow="", wait_kind="for", wait_for="soon")
    assert response.status_code == 400
    assert "bb_orch › finish › step_1 › wait_for: 'soon' is not a duration" in text_of(response)
    response = post_step(admin_client, draft, wait, type="wait", flow="", wait_kind="event", wait_event="two words")
    assert response.status_code == 400 and "'two words' is not an event name" in text_of(response)
    assert snapshot(draft) == before


def test_a_sub_orchestration_step_picks_an_active_orchestration_and_maps_its_inputs(admin_client, draft, flows):
    make_orchestration("bb_child", status="active", inputs=[{"name": "amount", "type": "number", "required": True},
                                                             {"name": "note"}],
                       outputs={"total": "inputs.amount"}, path=[stage("only", step("store", "bb_archive"))])
    make_orchestration("bb_child_draft", path=[stage("only", step("store", "bb_archive"))])
    finish = Stage.objects.get(orchestration=draft, name="finish")
    admin_client.post(url(draft, "change/"), {"op": "add_step", "stage": finish.pk, "type": "orchestration"})
    sub = Step.objects.get(stage=finish, name="step_1")
    # Choosing the orchestration redraws the panel (refresh: nothing saved) with its declared inputs.
    response = admin_client.post(url(draft, f"panel/step/{sub.pk}/"),
                                 {**step_post(sub, type="orchestration", flow="", child_orchestration="bb_child"),
                                  "refresh": "1"})
    html = text_of(response)
    select = re.search(r'name="element-child_orchestration".*?</select>', html, re.S).group(0)
    assert "bb_child v1" in select and "bb_child_draft" not in select
    assert 'name="element-inputs__amount"' in html and "number · required" in html
    assert 'name="element-flow"' not in html
    assert Step.objects.get(pk=sub.pk).child_orchestration == ""
    response = post_step(admin_client, draft, sub, type="orchestration", flow="", child_orchestration="bb_child",
                         inputs__note='"hello"')
    assert response.status_code == 200, text_of(response)[:2000]
    assert stored_step(draft, "step_1")["orchestration"] == "bb_child"
    assert "bb_orch › finish › step_1 › inputs: required input 'amount' of orchestration bb_child is not mapped" \
        in pinned(response)
    response = post_step(admin_client, draft, sub, type="orchestration", flow="", child_orchestration="bb_child",
                         inputs__note='"hello"', inputs__amount="2")
    assert response.status_code == 200
    assert stored_step(draft, "step_1")["inputs"] == {"amount": "2", "note": '"hello"'}
    assert "step_1 › inputs" not in pinned(response)
    # A later step may read the child's declared outputs: they are among the names in scope there.
    admin_client.post(url(draft, "change/"), {"op": "add_step", "stage": finish.pk, "type": "background"})
    later = Step.objects.get(stage=finish, name="step_2")
    response = post_step(admin_client, draft, later, entry_type="after", entry_after=["step_1"], flow="bb_archive")
    assert 'data-insert="steps.step_1.outputs.total"' in text_of(response)
    before = snapshot(draft)
    response = post_step(admin_client, draft, sub, type="orchestration", flow="", child_orchestration="bb_nowhere")
    assert response.status_code == 400
    assert "bb_orch › finish › step_1 › child_orchestration: Select a valid choice" in text_of(response)
    assert snapshot(draft) == before


def test_the_dry_run_asks_a_sub_orchestrations_declared_outputs_and_decides_on_them(admin_client, flows):
    """A child's declared outputs become its step's (DESIGN §10): the dry-run form asks them, JSON or text."""
    make_orchestration("bb_score", status="active", inputs=[{"name": "n", "type": "number"}],
                       outputs={"score": "inputs.n", "grade": '"a"'}, path=[stage("only", step("store", "bb_archive"))])
    parent = make_orchestration("bb_parent", path=[
        stage("rate", {"name": "call", "type": "orchestration", "orchestration": "bb_score", "inputs": {"n": "1"}}),
        {"type": "decision", "name": "route", "outcomes": [
            {"name": "high", "condition": "steps.call.outputs.score > 3", "goto": "high"}], "default": "low"},
        stage("high", step("keep", "bb_archive")),
        stage("low", step("drop", "bb_archive")),
    ])
    form = admin_client.get(url(parent, "dry-run/")).content.decode()
    assert 'name="out__call__score"' in form and 'name="out__call__grade"' in form
    high = admin_client.post(url(parent, "dry-run/"), {"out__call__score": "5", "out__call__grade": "b"}).content.decode()
    assert "rate → route → high" in high
    low = admin_client.post(url(parent, "dry-run/"), {"out__call__score": "2"}).content.decode()
    assert "rate → route → low" in low


def test_a_deeply_nested_json_value_for_a_sub_orchestrations_output_is_refused_not_a_500(admin_client, flows):
    """A value too deeply nested for JSON (RecursionError) or a number out of range is refused with its
    place, never a 500 (review of 84f0d84)."""
    make_orchestration("bb_deep", status="active", outputs={"score": '"1"'},
                       path=[stage("only", step("store", "bb_archive"))])
    parent = make_orchestration("bb_deep_parent", path=[
        stage("rate", {"name": "call", "type": "orchestration", "orchestration": "bb_deep", "inputs": {}})])
    admin_client.raise_request_exception = False
    answer = admin_client.post(url(parent, "dry-run/"), {"out__call__score": "[" * 100000})
    assert answer.status_code == 400, answer.status_code
    assert "outputs of call › score, visit 1: nested too deeply" in answer.content.decode()
    huge = admin_client.post(url(parent, "dry-run/"), {"out__call__score": "1e999"})
    assert huge.status_code == 400 and "1e999 is out of range" in huge.content.decode()


def test_a_stages_error_path_is_picked_among_the_stages(admin_client, draft):
    review = Stage.objects.get(orchestration=draft, name="review")
    data = {"element-name": "review", "element-label": "", "element-next": "", "element-exit_type": "all_steps_complete",
            "element-exit_condition": "", "element-exit_flow": "", "element-on_error_goto": "finish"}
    html = text_of(admin_client.get(url(draft, f"panel/stage/{review.pk}/")))
    assert re.search(r'name="element-on_error_goto".*?<option value="finish">finish</option>', html, re.S)
    response = admin_client.post(url(draft, f"panel/stage/{review.pk}/"), data)
    assert response.status_code == 200, text_of(response)[:2000]
    assert snapshot(draft)["path"][0]["on_error"] == {"goto": "finish"}
    assert "on error → finish" in text_of(response)
    before = snapshot(draft)
    response = admin_client.post(url(draft, f"panel/stage/{review.pk}/"), {**data, "element-on_error_goto": "mars"})
    assert response.status_code == 400 and "bb_orch › review › on_error_goto" in text_of(response)
    assert snapshot(draft) == before
    response = admin_client.post(url(draft, f"panel/stage/{review.pk}/"), {**data, "element-on_error_goto": ""})
    assert "on_error" not in snapshot(draft)["path"][0]


def test_a_decision_outcome_can_be_decided_by_an_evaluation_flow(admin_client, draft):
    from tests.factories import make_evaluation_flow

    make_evaluation_flow("bb_big_deal", inputs=[var("amount", "number", required=True)])
    route = Stage.objects.get(orchestration=draft, name="route")
    outcome = route.outcomes.get()
    base = {"element-name": "route", "element-label": "", "element-default_goto": "finish",
            "outcomes-TOTAL_FORMS": "1", "outcomes-INITIAL_FORMS": "1", "outcomes-MIN_NUM_FORMS": "0",
            "outcomes-MAX_NUM_FORMS": "1000", "outcomes-0-id": str(outcome.pk), "outcomes-0-name": "again",
            "outcomes-0-condition": "true", "outcomes-0-goto": "review", "outcomes-0-condition_test": "evaluation_flow",
            "outcomes-0-condition_flow": "bb_big_deal"}
    html = text_of(admin_client.post(url(draft, f"panel/decision/{route.pk}/"), {**base, "refresh": "1"}))
    assert 'name="outcomes-0-condition_inputs__amount"' in html and "number · required" in html
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"), base)
    assert response.status_code == 200, text_of(response)[:2000]
    assert "bb_orch › route › outcomes.again.inputs: required input 'amount'" in pinned(response)  # not mapped
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"),
                                 {**base, "outcomes-0-condition_inputs__amount": "5"})
    assert response.status_code == 200
    assert snapshot(draft)["path"][1]["outcomes"] == [
        {"name": "again", "evaluation_flow": "bb_big_deal", "inputs": {"amount": "5"}, "goto": "review"}]
    before = snapshot(draft)
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"), {**base, "outcomes-0-condition_flow": ""})
    assert response.status_code == 400
    assert "bb_orch › route › row 1 › condition_flow: pick the evaluation flow" in text_of(response)
    assert snapshot(draft) == before
    response = admin_client.post(url(draft, f"panel/decision/{route.pk}/"),
                                 {**base, "outcomes-0-condition_test": "condition"})
    assert snapshot(draft)["path"][1]["outcomes"] == [{"name": "again", "condition": "true", "goto": "review"}]


# ------------------------------------------------------------------ YAML view: lines and kept text

YAML_WITH_PROBLEM = """orchestrations:
- api_name: bb_orch
  start: {type: autolaunched}
  path:
  - name: only
    steps:
    - name: store
      flow: bb_archive
    - name: tell
      flow: bb_notify
      inputs:
        nobody: '"x"'
"""


def test_checks_after_applying_yaml_name_their_line(admin_client, draft):
    response = admin_client.post(url(draft, "yaml/"), {"yaml": YAML_WITH_PROBLEM})
    assert response.status_code == 200, text_of(response)[:2000]
    checks = re.search(r'id="bb-yaml-checks">(.*?)</ul>', text_of(response), re.S).group(1)
    # The unknown input is on line 12; the missing required one is about the step's inputs (line 11).
    assert re.search(r"line 12</strong> · <span class=\"bb-yaml-place\">bb_orch › only › tell › inputs.nobody", checks)
    assert re.search(r"line 11</strong> · <span class=\"bb-yaml-place\">bb_orch › only › tell › inputs</span>: "
                     r"required input 'who'", checks)
    # Opening the YAML view again lists the checks with the lines of the text it shows.
    again = text_of(admin_client.get(url(draft, "yaml/")))
    assert "bb_orch › only › tell › inputs.nobody" in re.search(r'id="bb-yaml-checks">(.*?)</ul>', again, re.S).group(1)


def test_yaml_typed_and_not_applied_is_kept_across_the_canvas(admin_client, draft):
    before = snapshot(draft)
    typed = admin_client.get(url(draft, "yaml/")).context["yaml_text"].replace("name: finish", "name: finale")
    assert admin_client.post(url(draft, "yaml/"), {"yaml": typed, "keep": "1"}).status_code == 204
    assert snapshot(draft) == before  # kept, not applied
    review = Stage.objects.get(orchestration=draft, name="review")
    admin_client.get(url(draft, f"panel/stage/{review.pk}/"))  # to the canvas...
    back = admin_client.get(url(draft, "yaml/"))  # ... and back
    assert back.context["yaml_text"] == typed and 'id="bb-yaml-kept"' in text_of(back)
    assert "the draft has changed since" not in text_of(back)
    # A change made on the canvas meanwhile is said, the text still kept.
    admin_client.post(url(draft, "change/"), {"op": "add_stage"})
    back = admin_client.get(url(draft, "yaml/"))
    assert back.context["yaml_text"] == typed and "the draft has changed since" in text_of(back)
    discarded = admin_client.post(url(draft, "yaml/"), {"discard": "1"})
    assert "name: finish" in discarded.context["yaml_text"] and 'id="bb-yaml-kept"' not in text_of(discarded)
    # Refused text is kept too, and applied text is no longer "kept".
    refused = admin_client.post(url(draft, "yaml/"), {"yaml": "orchestrations: [\n"})
    assert refused.status_code == 400 and "line 2" in text_of(refused)
    assert admin_client.get(url(draft, "yaml/")).context["yaml_text"] == "orchestrations: [\n"
    applied = admin_client.post(url(draft, "yaml/"), {"yaml": typed})
    assert applied.status_code == 200, text_of(applied)[:2000]
    assert "finale" in Stage.objects.filter(orchestration=draft).values_list("name", flat=True)
    assert 'id="bb-yaml-kept"' not in text_of(admin_client.get(url(draft, "yaml/")))


def test_a_frozen_version_keeps_no_yaml(admin_client, draft):
    draft.set_lifecycle_status("active")
    response = admin_client.post(url(draft, "yaml/"), {"yaml": "x: 1", "keep": "1"})
    assert response.status_code == 409
    assert "api_name: bb_orch" in admin_client.get(url(draft, "yaml/")).context["yaml_text"]


def test_a_flow_the_panel_does_not_offer_is_refused_not_stored(admin_client, draft):
    tell = Step.objects.get(stage__orchestration=draft, name="tell")
    before = snapshot(draft)
    for name in ("bb_nowhere", "f" * 101):  # not a flow; longer than the column holds
        response = post_step(admin_client, draft, tell, flow=name)
        assert response.status_code == 400
        assert "bb_orch › review › tell › flow: Select a valid choice" in text_of(response)
    assert snapshot(draft) == before


def test_a_bad_duration_is_said_once_naming_the_field(admin_client, draft):
    ask = Step.objects.get(stage__orchestration=draft, name="ask")
    response = admin_client.post(url(draft, f"panel/step/{ask.pk}/"), step_post(ask, due_in="soon"))
    assert response.status_code == 400
    text = text_of(response)
    assert "'soon' is not a duration for due in (write 30s, 10m, 2h, 3d or PT30S)" in text
    assert text.count("is not a duration") == 2  # the message above the canvas and the field's own: once each


def test_the_diff_writes_true_and_false_as_the_yaml_does(admin_client, flows):
    start = {"type": "record_triggered", "model": "demo.opportunity", "when": "updated",
             "condition": 'record.stage == "approval"'}
    old = make_orchestration("bb_flag", status="active", start=start, path=[stage("only", step("store", "bb_archive"))])
    admin_client.post(url(old, "new-version/"))
    new = Orchestration.objects.get(api_name="bb_flag", version=2)
    new.only_when_changed_to_meet = True
    new.save()
    html = admin_client.get(url(new, "diff/") + f"?other={old.pk}").content.decode()
    row = re.search(r'<tr class="bb-diff-row bb-diff-changed bb-depth-0">.*?</tr>', html, re.S).group(0)
    assert "only_when_changed_to_meet: true" in row and "True" not in row
    assert 'id="bb-diff-scroll"' in html  # the table scrolls inside its box on a narrow screen


def test_the_dry_run_record_hint_names_the_orchestrations_own_start_model(admin_client, flows):
    start = {"type": "record_triggered", "model": "demo.opportunity", "when": "created"}
    orch = make_orchestration("bb_deal", start=start, path=[stage("only", step("store", "bb_archive"))])
    html = admin_client.get(url(orch, "dry-run/")).content.decode()
    assert 'placeholder="demo.opportunity:1"' in html and "demo.employee" not in html
    autolaunched = make_orchestration("bb_auto", path=[stage("only", step("store", "bb_archive"))])
    html = admin_client.get(url(autolaunched, "dry-run/")).content.decode()
    assert 'placeholder="app_label.model:1"' in html and "demo.employee" not in html


def test_the_orchestration_list_has_few_columns_with_the_builder_link_early(admin_client, draft):
    html = admin_client.get("/admin/orchestration/orchestration/").content.decode()
    headers = re.findall(r'<th scope="col"\s+class="[^"]*column-(\w+)', html)
    assert headers[:4] == ["api_name", "version", "status_text", "builder_link"]
    assert "created_at" not in headers and "start_model" not in headers and len(headers) <= 6
    assert f'href="{url(draft)}">Open in Builder</a>' in html
