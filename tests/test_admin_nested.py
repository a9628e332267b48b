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
