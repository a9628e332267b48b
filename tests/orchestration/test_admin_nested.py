"""The definition admin's nested forms: a definition and its parts added in one save,
only the fields of an element's kind kept, flows picked from a list, compact pages."""
import pytest

from flows.models import Flow, FlowVariable, Screen, ScreenField
from orchestration.models import DecisionOutcome, Orchestration, Stage, Step

pytestmark = pytest.mark.django_db


def management(prefix, total, initial=0):
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}


def rows(prefix, items):
    """Formset data for ``items`` (dicts of field values) under ``prefix``, all new rows."""
    data = management(prefix, len(items))
    for index, item in enumerate(items):
        for key, value in item.items():
            data[f"{prefix}-{index}-{key}"] = value
    return data


def screen_flow_post(api_name="nest_screen"):
    data = {"api_name": api_name, "label": "Collect", "description": "", "type": "screen",
            "implementation": "", "_save": "Save"}
    data.update(rows("variables", [
        {"direction": "output", "position": "0", "name": "approved", "type": "boolean", "default": "", "value": ""},
    ]))
    data.update(rows("screens", [
        {"name": "first", "label": "First", "position": "0", "validate": "", "validate_message": ""},
        {"name": "second", "label": "Second", "position": "1", "validate": "", "validate_message": ""},
    ]))
    data.update(rows("screens-0-fields", [
        {"name": "approved", "type": "boolean", "position": "0", "label": "Approved", "help_text": "",
         "default": "", "visible_if": "", "choices": "[]", "text": ""},
        {"name": "colour", "type": "choice", "position": "1", "label": "Colour", "help_text": "",
         "default": "", "visible_if": "", "choices": '["red", "blue"]', "text": ""},
    ]))
    data.update(rows("screens-1-fields", [
        {"name": "note", "type": "textarea", "position": "0", "label": "Note", "help_text": "",
         "default": "", "visible_if": "", "choices": "[]", "text": ""},
    ]))
    data.update(management("elements", 0))
    return data


def test_a_screen_flow_with_screens_and_fields_is_added_in_one_save(admin_client):
    response = admin_client.post("/admin/flows/flow/add/", screen_flow_post())
    assert response.status_code == 302, response.content.decode()[:3000]
    flow = Flow.objects.get(api_name="nest_screen")
    assert (flow.status, flow.version, flow.type) == ("draft", 1, "screen")
    assert [s.name for s in flow.screens.all()] == ["first", "second"]
    fields = {(f.screen.name, f.name, f.type) for f in ScreenField.objects.filter(screen__flow=flow)}
    assert fields == {("first", "approved", "boolean"), ("first", "colour", "choice"), ("second", "note", "textarea")}
    assert ScreenField.objects.get(screen__flow=flow, name="colour").choices == ["red", "blue"]
    assert [v.name for v in flow.variables.all()] == ["approved"]


def make_flow(api_name, type_, status="active"):
    flow = Flow.objects.create(api_name=api_name, type=type_, version=Flow.next_version_number(api_name))
    if type_ == "screen":
        screen = Screen.objects.create(flow=flow, name="one")
        ScreenField.objects.create(screen=screen, name="decision", type="text")
        FlowVariable.objects.create(flow=flow, direction="output", name="decision", type="text")
    Flow.objects.filter(pk=flow.pk).update(status=status)
    flow.refresh_from_db()
    return flow


STEP_BLANK = {
    "label": "", "inputs": "{}", "entry_type": "stage_start", "entry_after": "[]", "entry_condition": "",
    "entry_flow": "", "entry_flow_inputs": "{}", "exit_type": "step_completes", "exit_condition": "",
    "exit_flow": "", "exit_flow_inputs": "{}", "assignee_type": "", "assignee": "", "record": "",
    "due_in": "", "escalate_to": "", "retries": "3", "timeout": "10m",
}
STAGE_BLANK = {
    "label": "", "next": "", "exit_type": "all_steps_complete", "exit_condition": "", "exit_flow": "",
    "exit_flow_inputs": "{}", "default_goto": "",
}
OUTCOME_BLANK = {"condition": "", "condition_flow": "", "condition_flow_inputs": "{}"}


def orchestration_post(api_name="nest_orch"):
    data = {"api_name": api_name, "label": "Approve", "description": "", "start_type": "autolaunched",
            "start_model": "", "start_when": "", "start_condition": "", "inputs": "[]",
            "max_stage_visits": "50", "_save": "Save"}
    data.update(rows("stages", [
        {**STAGE_BLANK, "kind": "stage", "name": "review", "position": "0"},
        {**STAGE_BLANK, "kind": "decision", "name": "approved", "position": "1", "default_goto": "end"},
        {**STAGE_BLANK, "kind": "stage", "name": "book", "position": "2"},
    ]))
    data.update(rows("stages-0-steps", [
        {**STEP_BLANK, "name": "decide", "position": "0", "type": "interactive", "flow": "nest_ask",
         "assignee_type": "user", "assignee": "root", "due_in": "2d"},
        {**STEP_BLANK, "name": "score", "position": "1", "type": "background", "flow": "nest_calc",
         "retries": "2", "timeout": "5m"},
    ]))
    data.update(management("stages-0-outcomes", 0))
    data.update(management("stages-1-steps", 0))
    data.update(rows("stages-1-outcomes", [
        {**OUTCOME_BLANK, "name": "yes", "position": "0", "goto": "book",
         "condition": 'steps.decide.outputs.decision == "yes"'},
    ]))
    data.update(rows("stages-2-steps", [
        {**STEP_BLANK, "name": "record", "position": "0", "type": "background", "flow": "nest_calc"},
    ]))
    data.update(management("stages-2-outcomes", 0))
    return data


def test_an_orchestration_with_stages_steps_and_outcomes_is_added_in_one_save(admin_client):
    make_flow("nest_ask", "screen")
    make_flow("nest_calc", "autolaunched")
    response = admin_client.post("/admin/orchestration/orchestration/add/", orchestration_post())
    assert response.status_code == 302, response.content.decode()[:3000]
    orch = Orchestration.objects.get(api_name="nest_orch")
    assert (orch.status, orch.version) == ("draft", 1)
    assert [(s.name, s.kind) for s in orch.stages.all()] == [
        ("review", "stage"), ("approved", "decision"), ("book", "stage")]
    steps = {(s.stage.name, s.name, s.type, s.flow) for s in Step.objects.filter(stage__orchestration=orch)}
    assert steps == {("review", "decide", "interactive", "nest_ask"), ("review", "score", "background", "nest_calc"),
                     ("book", "record", "background", "nest_calc")}
    outcome = DecisionOutcome.objects.get(stage__orchestration=orch)
    assert (outcome.name, outcome.goto) == ("yes", "book")


# --- only the fields of the chosen kind are kept ------------------------------------

def test_values_that_do_not_apply_to_an_elements_kind_are_not_stored(admin_client):
    make_flow("nest_ask", "screen")
    make_flow("nest_calc", "autolaunched")
    data = orchestration_post()
    data.update({
        # an autolaunched start has no record trigger
        "start_model": "demo.opportunity", "start_when": "updated", "start_condition": "junk(",
        # a decision has no next stage and no exit; invalid JSON nobody sees does not block the save
        "stages-1-next": "book", "stages-1-exit_type": "condition", "stages-1-exit_condition": "junk(",
        "stages-1-exit_flow_inputs": "{not json",
        # a stage has no default goto
        "stages-0-default_goto": "book",
        # a background step has no assignee; an interactive one no retries or timeout
        "stages-0-steps-1-assignee_type": "user", "stages-0-steps-1-assignee": "root",
        "stages-0-steps-1-record": "junk(", "stages-0-steps-1-due_in": "1d",
        "stages-0-steps-0-retries": "9", "stages-0-steps-0-timeout": "1h",
        # entry and exit keep only the fields of their type
        "stages-0-steps-0-entry_type": "condition", "stages-0-steps-0-entry_condition": "true",
        "stages-0-steps-0-entry_after": '["score"]', "stages-0-steps-0-entry_flow_inputs": "{not json",
        "stages-0-steps-0-exit_type": "step_completes", "stages-0-steps-0-exit_condition": "junk(",
    })
    # rows of the other kind: a step under the decision, an outcome under a stage
    data.update(rows("stages-1-steps", [{**STEP_BLANK, "name": "stray", "position": "0", "type": "background",
                                         "flow": "nest_calc"}]))
    data.update(rows("stages-0-outcomes", [{**OUTCOME_BLANK, "name": "stray", "position": "0", "goto": "end"}]))
    response = admin_client.post("/admin/orchestration/orchestration/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]

    orch = Orchestration.objects.get(api_name="nest_orch")
    assert (orch.start_model, orch.start_when, orch.start_condition) == ("", "", "")
    review, decision, _book = orch.stages.all()
    assert (decision.next, decision.exit_type, decision.exit_condition, decision.exit_flow_inputs) == (
        "", "all_steps_complete", "", {})
    assert review.default_goto == ""
    assert not decision.steps.exists() and not review.outcomes.exists()
    decide, score = review.steps.all()
    assert (score.assignee_type, score.assignee, score.record, score.due_in) == ("", "", "", "")
    assert (decide.assignee_type, decide.assignee, decide.retries, decide.timeout) == ("user", "root", 3, "10m")
    assert (decide.entry_type, decide.entry_condition, decide.entry_after, decide.entry_flow_inputs) == (
        "condition", "true", [], {})
    assert decide.exit_condition == ""


def test_switching_a_stage_to_a_decision_drops_its_steps_on_save(admin_client):
    make_flow("nest_ask", "screen")
    make_flow("nest_calc", "autolaunched")
    admin_client.post("/admin/orchestration/orchestration/add/", orchestration_post())
    orch = Orchestration.objects.get(api_name="nest_orch")
    response = admin_client.get(f"/admin/orchestration/orchestration/{orch.pk}/change/")
    from bench.admin_pages import post_data

    data, _controls = post_data(response.content.decode())
    data["stages-2-kind"] = ["decision"]  # "book" had one step
    data["stages-2-default_goto"] = ["end"]
    response = admin_client.post(f"/admin/orchestration/orchestration/{orch.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    book = orch.stages.get(name="book")
    assert (book.kind, book.default_goto, book.steps.count()) == ("decision", "end", 0)
    assert orch.stages.get(name="review").steps.count() == 2


def test_flow_parts_of_the_other_kind_are_not_stored(admin_client):
    data = screen_flow_post("nest_auto")
    data["type"] = "autolaunched"  # the screens typed before switching the type are dropped
    data.update(rows("variables", [
        {"direction": "input", "position": "0", "name": "amount", "type": "number", "default": "5",
         "required": "on", "value": "amount * 2"},
        {"direction": "output", "position": "0", "name": "total", "type": "number", "default": "7",
         "required": "on", "value": "amount * 2.0"},
    ]))
    data.update(rows("elements", [{"position": "0", "type": "assign", "name": "", "config": '{"set": {}}'}]))
    response = admin_client.post("/admin/flows/flow/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    flow = Flow.objects.get(api_name="nest_auto")
    assert not flow.screens.exists() and flow.elements.count() == 1
    amount, total = flow.input_variables()[0], flow.output_variables()[0]
    assert (amount.default, amount.required, amount.value) == (5, True, "")
    assert (total.default, total.required, total.value) == (None, False, "amount * 2.0")


def test_screen_field_keeps_only_the_settings_of_its_type(admin_client):
    data = screen_flow_post()
    data.update({"screens-0-fields-0-choices": '["stray"]', "screens-0-fields-0-text": "stray",
                 "screens-1-fields-0-required": "on"})
    data.update(rows("screens-1-fields", [
        {"name": "intro", "type": "display", "position": "0", "label": "", "help_text": "stray", "required": "on",
         "default": "stray", "visible_if": "true", "choices": '["stray"]', "text": "Hello {!record.name}"},
    ]))
    response = admin_client.post("/admin/flows/flow/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    fields = {f.name: f for f in ScreenField.objects.filter(screen__flow__api_name="nest_screen")}
    assert (fields["approved"].choices, fields["approved"].text) == ([], "")
    intro = fields["intro"]
    assert (intro.help_text, intro.required, intro.default, intro.choices) == ("", False, "", [])
    assert (intro.visible_if, intro.text) == ("true", "Hello {!record.name}")


# --- flows are picked from a list ---------------------------------------------------

def test_a_steps_flow_is_picked_among_the_flows_with_their_active_version(admin_client):
    make_flow("nest_ask", "screen")
    Flow.objects.filter(api_name="nest_ask").update(label="Ask")
    make_flow("nest_calc", "autolaunched")
    make_flow("nest_calc", "autolaunched", status="draft")  # v2, a draft: v1 stays the one shown
    make_flow("nest_new", "autolaunched", status="draft")
    make_flow("nest_gate", "evaluation")
    body = admin_client.get("/admin/orchestration/orchestration/add/").content.decode()
    step_flow = body[body.index('name="stages-empty-steps-__prefix__-flow"'):]
    step_flow = step_flow[:step_flow.index("</select>")]
    assert '<optgroup label="Screen flows">' in step_flow and '<optgroup label="Autolaunched flows">' in step_flow
    assert 'value="nest_ask" data-flow-type="screen">nest_ask — Ask (v1 active)</option>' in step_flow
    assert 'value="nest_calc" data-flow-type="autolaunched">nest_calc (v1 active)</option>' in step_flow
    assert "nest_new (no active version; v1 draft)" in step_flow
    assert "nest_gate" not in step_flow  # evaluation flows are for conditions
    entry_flow = body[body.index('name="stages-empty-steps-__prefix__-entry_flow"'):]
    entry_flow = entry_flow[:entry_flow.index("</select>")]
    assert "nest_gate" in entry_flow and "nest_ask" not in entry_flow


def test_a_step_running_a_flow_of_the_wrong_type_is_refused_with_its_place(admin_client):
    make_flow("nest_ask", "screen")
    make_flow("nest_calc", "autolaunched")
    data = orchestration_post()
    data["stages-0-steps-1-flow"] = "nest_ask"  # a background step
    before = Orchestration.objects.count()
    response = admin_client.post("/admin/orchestration/orchestration/add/", data)
    assert response.status_code == 200
    assert "nest_ask is a screen flow; a background step runs an autolaunched flow." in response.content.decode()
    assert Orchestration.objects.count() == before


def test_a_stored_flow_name_that_matches_no_flow_survives_opening_and_saving(admin_client):
    orch = Orchestration.objects.create(api_name="nest_gone", version=1)
    stage = Stage.objects.create(orchestration=orch, name="one")
    Step.objects.create(stage=stage, name="calc", type="background", flow="no_such_flow")
    url = f"/admin/orchestration/orchestration/{orch.pk}/change/"
    body = admin_client.get(url).content.decode()
    assert '<option value="no_such_flow" selected>no_such_flow (no such flow)</option>' in body
    from bench.admin_pages import post_data

    data, _controls = post_data(body)
    data["label"] = ["Renamed"]
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Step.objects.get(stage=stage).flow == "no_such_flow"


# --- the variable row -----------------------------------------------------------------

def shown_values(body):
    """{name: value} of every form control on a page as a browser would show it (templates included)."""
    from bench.admin_pages import FormData

    parser = FormData()
    parser.feed(body)
    return dict(parser.data)


def test_a_variables_default_starts_empty_not_null(admin_client):
    body = admin_client.get("/admin/flows/flow/add/").content.decode()
    assert shown_values(body)["variables-__prefix__-default"] == ""
    flow = Flow.objects.create(api_name="nest_vars", type="autolaunched", version=1)
    FlowVariable.objects.create(flow=flow, direction="input", name="note", type="text")
    body = admin_client.get(f"/admin/flows/flow/{flow.pk}/change/").content.decode()
    assert shown_values(body)["variables-0-default"] == ""


def test_a_new_screen_removed_again_before_saving_takes_its_new_fields_with_it(admin_client):
    data = screen_flow_post()
    data["screens-1-DELETE"] = "on"  # "second" and its field "note" were added, then deleted
    response = admin_client.post("/admin/flows/flow/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    flow = Flow.objects.get(api_name="nest_screen")
    assert [s.name for s in flow.screens.all()] == ["first"]
    assert sorted(ScreenField.objects.filter(screen__flow=flow).values_list("name", flat=True)) == [
        "approved", "colour"]


def test_an_elements_settings_are_refused_with_the_keys_of_another_type(admin_client):
    data = screen_flow_post("nest_elem")
    data["type"] = "autolaunched"
    data.update(rows("elements", [
        {"position": "0", "type": "assign", "name": "", "config": '{"set": {"x": "1"}, "to": "a@b.example"}'},
        {"position": "1", "type": "send_email", "name": "", "config": '["not", "an", "object"]'},
    ]))
    response = admin_client.post("/admin/flows/flow/add/", data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "to: not a setting of an assign element (its settings: set)." in body
    assert "The settings must be a JSON object" in body
    assert not Flow.objects.filter(api_name="nest_elem").exists()


def test_the_flow_list_is_read_once_per_page(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_flow("nest_ask", "screen")
    make_flow("nest_calc", "autolaunched")
    admin_client.post("/admin/orchestration/orchestration/add/", orchestration_post())
    orch = Orchestration.objects.get(api_name="nest_orch")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/orchestration/orchestration/{orch.pk}/change/")
    assert response.status_code == 200
    flow_lists = [q["sql"] for q in queries if 'FROM "flows_flow"' in q["sql"] and '"flows_flow"."label"' in q["sql"]]
    assert len(flow_lists) == 1, flow_lists  # 3 stages, 3 steps, 1 outcome: 13 flow pickers, one query
