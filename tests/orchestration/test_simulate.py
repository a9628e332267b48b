"""Dry runs (orchestration.simulate and simulate_orchestration): order, decisions, loops; nothing stored."""
import json
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from orchestration.models import Orchestration
from orchestration.simulate import SimulationError, dry_run, parse_outputs, simulate
from tests.demo_definitions import import_demo_definitions
from tests.engine_builders import bg, noop_flow, orchestration

pytestmark = pytest.mark.django_db


def row_counts():
    """Rows in every table: a dry run must leave them all as they were."""
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.fixture
def demo(db):
    return import_demo_definitions()


def run_command(*args):
    out = StringIO()
    call_command("simulate_orchestration", *args, stdout=out)
    return out.getvalue()


# A value of each type for a demo orchestration's required inputs (an IBAN-shaped text passes the bank check).
SAMPLE_INPUTS = {"text": "NL91ABNA0417164300", "number": 1, "boolean": True, "list": []}


def test_every_demo_orchestration_dry_runs_to_the_end(demo):
    for names in demo.values():
        for api_name in names:
            orch = Orchestration.objects.get(api_name=api_name, status="active")
            inputs = {v["name"]: SAMPLE_INPUTS[v.get("type", "text")] for v in orch.inputs if v.get("required")}
            before = row_counts()
            result = dry_run(orch, inputs=inputs)
            assert result.result == "completed", result.text()
            assert row_counts() == before


def test_onboarding_parallel_group_then_after_step_and_both_decision_outcomes(demo):
    from demo.models import Employee

    orch = Orchestration.objects.get(api_name="onboarding", status="active")
    remote = Employee.objects.create(first_name="Rae", last_name="Mote", email="rae@example.com", status="hired",
                                     remote=True)
    office = Employee.objects.create(first_name="Ofe", last_name="Iss", email="ofe@example.com", status="hired",
                                     remote=False)
    before = row_counts()

    result = dry_run(orch, record_ref=f"demo.employee:{remote.pk}")
    prepare = result.entries[0]
    assert [[s.name for s in g] for g in prepare.groups] == [["create_accounts", "pick_equipment"], ["welcome_email"]]
    assert result.decisions == [("where_to", "remote", "ship_equipment")]
    assert result.stage_order == ["prepare", "ship_equipment", "first_day"]
    assert result.path[-1] == "end"

    result = dry_run(orch, record_ref=f"demo.employee:{office.pk}")
    assert result.decisions == [("where_to", "default", "desk_setup")]
    assert result.stage_order == ["prepare", "desk_setup", "first_day"]
    assert row_counts() == before


def test_deal_approval_all_three_outcomes(demo):
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    approve = simulate(orch, outputs={"manager_review": {"decision": "approve"}})
    assert approve.decisions == [("outcome", "approved", "finalize")]
    assert approve.stage_order == ["review", "finalize"] and approve.result == "completed"
    reject = simulate(orch, outputs={"manager_review": {"decision": "reject", "comments": "no"}})
    assert reject.decisions == [("outcome", "default", "decline")]
    assert reject.stage_order == ["review", "decline"] and reject.result == "completed"  # decline's next is end


def test_loop_with_outputs_per_visit(demo):
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    result = simulate(orch, outputs=parse_outputs([
        'manager_review=[{"decision": "rework"}, {"decision": "rework"}, {"decision": "approve"}]',
        'find_owner={"assignee": "user:dave"}',
    ]))
    assert result.stage_order == ["review", "revise", "review", "revise", "review", "finalize"]
    assert [d[1] for d in result.decisions] == ["rework", "rework", "approved"]
    revise = result.entries[2]
    assert [[s.name for s in g] for g in revise.groups] == [["find_owner"], ["revise_deal"], ["apply_revision"]]
    assert result.entries[3].visit == 2


def test_endless_loop_stops_at_max_stage_visits(demo):
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    before = row_counts()
    result = dry_run(orch, outputs={"manager_review": {"decision": "rework"}})
    assert result.result == "stopped"
    assert len(result.stage_order) == orch.max_stage_visits == 20
    assert "max_stage_visits (20)" in result.text()
    assert row_counts() == before


def test_missing_outputs_count_as_empty(demo):
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    result = simulate(orch)  # manager_review completes with {}: no outcome holds
    assert result.decisions == [("outcome", "default", "decline")]


def test_condition_steps_and_stage_exit():
    noop_flow("calc_s", outputs={"n": ("number", "1")})
    orch = orchestration([
        {"name": "gather", "exit": {"condition": 'has(steps.b.outputs.stop) && steps.b.outputs.stop'}, "steps": [
            bg("a", "calc_s"),
            bg("b", "calc_s", entry={"condition": "has(steps.a.outputs.go) && steps.a.outputs.go"}),
            bg("c", "calc_s", entry={"after": ["b"]}),
        ]},
        {"name": "done", "steps": [bg("d", "calc_s")]},
    ], api_name="conditional")
    # a says go: b starts (group 2); b says stop: the stage exits before c starts.
    result = simulate(orch, outputs={"a": {"go": True}, "b": {"stop": True}})
    gather = result.entries[0]
    assert [[s.name for s in g] for g in gather.groups] == [["a"], ["b"]]
    assert gather.not_started == [("c", "discontinued when the stage's exit condition held")]
    assert result.stage_order == ["gather", "done"]
    # a does not say go: b never starts, and the exit condition never holds: a real run would wait.
    result = simulate(orch, outputs={"a": {"go": False}})
    assert result.result == "stopped" and "would wait" in result.message
    assert ("b", "its entry condition is false") in result.entries[0].not_started


def test_command_prints_order_and_decisions(demo):
    before = row_counts()
    text = run_command(
        "deal_approval", "--outputs", 'manager_review=[{"decision": "rework"}, {"decision": "approve"}]',
        "--outputs", 'find_owner={"assignee": "user:dave"}',
    )
    assert "Dry run of deal_approval v1" in text and "nothing is stored" in text
    assert text.index("Stage review") < text.index("takes rework") < text.index("Stage revise")
    assert "Manager review (visit 2)" in text and "takes approved" in text
    assert "End: the run would complete" in text
    assert row_counts() == before


def test_command_with_record_inputs_and_version(demo):
    from demo.models import Employee

    employee = Employee.objects.create(first_name="A", last_name="B", email="ab@example.com", status="hired", remote=True)
    text = run_command("onboarding", "--version", "1", "--record", f"demo.employee:{employee.pk}",
                       "--inputs", json.dumps({}))
    assert f"Record: demo.employee:{employee.pk}" in text
    assert "group 1 (in parallel):" in text
    assert "takes remote (record.remote) → ship_equipment" in text


@pytest.mark.parametrize("args, message", [
    (["nope"], "no orchestration named"),
    (["onboarding", "--version", "9"], "no version 9"),
    (["onboarding", "--outputs", "pick_equipment"], "STEP=JSON"),
    (["onboarding", "--outputs", "pick_equipment={bad"], "not JSON"),
    (["onboarding", "--outputs", "pick_equipment=[1]"], "JSON object"),
    (["onboarding", "--inputs", "[1]"], "JSON object"),
    (["onboarding", "--record", "demo.employee:999999"], "no demo.employee"),
    (["onboarding", "--record", "auth.user:1"], "not exposed"),
])
def test_command_errors(demo, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)


def test_parse_outputs_rejects_bad_pairs():
    with pytest.raises(SimulationError):
        parse_outputs(["=1"])
    assert parse_outputs(["a={}", " ", 'b=[{"x": 1}]']) == {"a": {}, "b": [{"x": 1}]}


def test_a_step_input_that_fails_in_a_run_fails_the_dry_run_with_its_place():
    """Issue 12, point 15: the dry run evaluates the step inputs the run evaluates, with the same inputs."""
    from orchestration import starts

    noop_flow("div_s", inputs=[{"name": "x", "type": "number"}])
    orch = orchestration([{"name": "one", "steps": [bg("s", "div_s", inputs={"x": "double(10 / int(inputs.d))"})]}],
                         api_name="divider", inputs=[{"name": "d", "type": "number", "required": True}])
    result = simulate(orch, inputs={"d": 0})
    assert result.result == "error", result.text()
    assert result.message.startswith("divider › one › s › inputs.x: ")
    assert "division by zero" in result.message and "a real run would stop in error here" in result.message
    assert simulate(orch, inputs={"d": 2}).result == "completed"
    run = starts.launch("divider", inputs={"d": 0})  # the real run fails at the same place
    run.refresh_from_db()
    assert run.status == "error" and "divider › one › s › inputs.x" in run.error


def test_the_dry_run_checks_inputs_as_a_launch_does_and_mapped_values_against_the_flow():
    noop_flow("typed_s", inputs=[{"name": "n", "type": "number"}])
    orch = orchestration([{"name": "one", "steps": [bg("s", "typed_s", inputs={"n": '"not a number"'}),
                                                    bg("t", "typed_s", inputs={"n": "inputs.d"})]}],
                         api_name="typed", inputs=[{"name": "d", "type": "number", "required": True}])
    refused = simulate(orch, inputs={})
    assert refused.result == "error" and "a launch would refuse these inputs: inputs.d" in refused.message
    result = simulate(orch, inputs={"d": "4"})
    assert result.result == "error" and result.message.startswith("typed › one › s: inputs.n")


def test_a_miss_that_comes_from_outputs_not_given_is_noted_not_an_error(demo):
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    result = simulate(orch, outputs={"manager_review": {"decision": "approve"}})
    assert result.result == "completed", result.text()
    finalize = next(e for e in result.entries if e.name == "finalize")
    assert any("no such key" in note for step in finalize.steps for note in step.notes)
    assert "not evaluated: deal_approval › finalize" in result.text()


def test_a_step_whose_exit_condition_holds_at_once_completes_without_outputs():
    noop_flow("quick_s", outputs={"n": ("number", "1")})
    orch = orchestration([{"name": "one", "steps": [bg("a", "quick_s", exit={"condition": "true"})]},
                          {"type": "decision", "name": "d", "outcomes": [
                              {"name": "got", "condition": "has(steps.a.outputs.n)", "goto": "end"}],
                           "default": "end"}], api_name="quick")
    result = simulate(orch, outputs={"a": {"n": 5}})
    assert result.entries[0].steps[0].outputs == {}
    assert "ended by its exit condition" in result.entries[0].steps[0].detail
    assert result.decisions == [("d", "default", "end")]
