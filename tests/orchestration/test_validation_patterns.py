"""The activation validator on the process patterns of DESIGN §10: each rule names its place."""
import pytest

from orchestration.models import Orchestration
from orchestration.spec import orchestration_from_dict, orchestration_to_dict
from orchestration.validation import validate_orchestration
from tests.factories import make_flow, make_orchestration, make_user, stage, step, var

pytestmark = pytest.mark.django_db


def texts(problems):
    return [str(p) for p in problems]


def assert_problem(problems, *fragments):
    found = texts(problems)
    assert any(all(f in t for f in fragments) for t in found), "\n".join(found) or "(no problems)"


@pytest.fixture
def flows():
    make_user("ann")
    return {
        "work": make_flow("p_work", inputs=[var("x")], outputs=[var("result"), var("many", type="list")]),
        "form": make_flow("p_form", type="screen", inputs=[var("x")], outputs=[var("answer")]),
    }


def orch(*path, api_name="p_orch", **extra):
    return make_orchestration(api_name, path=list(path), **extra)


def approve(name="approve", **extra):
    extra.setdefault("assignee", {"user": "ann"})
    return step(name, "p_form", type="interactive", **extra)


def test_sound_uses_of_every_pattern_pass(flows):
    child = orch(stage("only", step("w", "p_work")), api_name="p_child", status="active",
                 inputs=[{"name": "n", "type": "number", "required": True}], outputs={"total": "1 + 1"})
    assert child.status == "active"
    o = orch(
        stage("review",
              step("each", "p_work", for_each="[1, 2, 3]", inputs={"x": "string(item) + string(index)"},
                   completion={"at_least": 2}, remaining="continue"),
              approve("quorum", assignees='["user:ann", "group:g"]', completion={"percent": 60},
                      assignee={"exclude": "[run.started_by]"}),
              approve("again", assignee={"same_as": "quorum"}, entry={"after": ["quorum"]}),
              step("sub", None, type="orchestration", orchestration="p_child", inputs={"n": "size(steps.each.outputs)"},
                   entry={"after": ["each"]}),
              step("sign", None, type="wait", event="signed", timeout="14d", on_timeout="complete"),
              on_error={"goto": "fix"}),
        stage("later", step("nap", None, type="wait", **{"for": "1h"}),
              step("then", "p_work", inputs={"x": "string(steps.sub.outputs.total) + string(steps.each.outputs[0].result)"})),
        stage("fix", step("mend", "p_work")),
        outputs={"who": "steps.quorum.instances[0].completed_by"},
    )
    assert texts(validate_orchestration(o)) == []


def test_the_file_format_round_trips_every_pattern(flows):
    data = {
        "api_name": "p_round", "outputs": {"total": "1"},
        "path": [
            {"name": "s", "on_error": {"goto": "end"}, "steps": [
                {"name": "each", "flow": "p_work", "for_each": "[1]", "completion": {"at_least": 1},
                 "sequential": True, "remaining": "continue"},
                {"name": "vote", "type": "interactive", "flow": "p_form", "assignees": '["user:ann"]',
                 "assignee": {"exclude": "[]"}},
                {"name": "same", "type": "interactive", "flow": "p_form", "assignee": {"same_as": "vote"}},
                {"name": "sub", "type": "orchestration", "orchestration": "p_child", "inputs": {"n": "1"}},
                {"name": "sign", "type": "wait", "event": "signed", "timeout": "14d", "on_timeout": "error"},
                {"name": "nap", "type": "wait", "for": "1h"},
                {"name": "till", "type": "wait", "until": "now"},
            ]},
        ],
    }
    again = orchestration_to_dict(orchestration_from_dict(data))
    assert again["path"] == data["path"]
    assert again["outputs"] == data["outputs"]


@pytest.mark.parametrize("extra, fragments", [
    ({"for_each": '"abc"'}, ("p_orch › s › a › for_each", "need a list")),
    ({"for_each": "inputs.n"}, ("p_orch › s › a › for_each", "inputs.n is a number input")),
    ({"for_each": "[1, 2]", "completion": {"at_least": 3}}, ("completion.at_least", "3 instances can never complete: for_each gives 2")),
    ({"for_each": "[1]", "completion": {"at_least": 0}}, ("completion.at_least", "at least 1")),
    ({"for_each": "[1]", "completion": {"percent": 150}}, ("completion.percent", "at most 100")),
    ({"for_each": "[1]", "completion": "most"}, ("completion", "'most'")),
    ({"for_each": "[1]", "completion": {"condition": "size(instances) > nope"}}, ("completion.condition", "nope — not in scope")),
    ({"for_each": "[1]", "remaining": "continue"}, ("remaining", "with completion all")),
    ({"for_each": "[1, 2]", "completion": "any", "sequential": True, "remaining": "continue"},
     ("p_orch › s › a › remaining", "a sequential step starts no instance after its rule is met")),
    ({"completion": "any"}, ("› completion", "only a step with for_each or assignees")),
    ({"sequential": True}, ("› sequential", "only a step with for_each or assignees")),
    ({"inputs": {"x": "string(item)"}}, ("inputs.x", "item — not in scope", "only in a step with for_each")),
])
def test_multi_instance_rules(flows, extra, fragments):
    o = orch(stage("s", step("a", "p_work", **extra)), inputs=[{"name": "n", "type": "number"}])
    assert_problem(validate_orchestration(o), *fragments)


def test_for_each_over_an_output_that_is_not_a_list(flows):
    o = orch(stage("s", step("a", "p_work")), stage("t", step("b", "p_work", for_each="steps.a.outputs.result")))
    assert_problem(validate_orchestration(o), "p_orch › t › b › for_each", "steps.a.outputs.result is a text output")
    ok = orch(stage("s", step("a", "p_work")), stage("t", step("b", "p_work", for_each="steps.a.outputs.many")),
              api_name="p_ok")
    assert texts(validate_orchestration(ok)) == []


def test_a_multi_instance_steps_outputs_are_a_list(flows):
    o = orch(stage("s", step("a", "p_work", for_each="[1]")),
             stage("t", step("b", "p_work", inputs={"x": "steps.a.outputs.result"})))
    assert_problem(validate_orchestration(o), "p_orch › t › b › inputs.x", "its outputs are a list")


@pytest.mark.parametrize("extra, fragments", [
    ({"assignees": '["user:ann"]', "assignee": {"user": "ann"}}, ("assignees", "not both")),
    ({"assignee": {"same_as": "nobody"}}, ("assignee.same_as", "no step named 'nobody'")),
    ({"assignee": {"same_as": "b"}}, ("assignee.same_as", "a step cannot take its own assignee")),
    ({"assignee": {"same_as": "w"}}, ("assignee.same_as", "step w is a background step")),
    ({"assignee": {"same_as": "first"}}, ("assignee.same_as", "not certain to have completed")),
    ({"assignee": {"user": "ann", "exclude": "[nobody]"}}, ("assignee.exclude", "nobody — not in scope")),
])
def test_assignee_rules(flows, extra, fragments):
    o = orch(stage("s", step("w", "p_work"), approve("first"), approve("b", **extra)))
    assert_problem(validate_orchestration(o), "p_orch › s › b", *fragments)


def test_only_interactive_steps_have_assignees(flows):
    o = orch(stage("s", step("w", "p_work", assignees='["user:ann"]')))
    assert_problem(validate_orchestration(o), "p_orch › s › w › assignees", "only interactive steps")


@pytest.mark.parametrize("extra, fragments", [
    ({}, ("p_orch › s › w", "exactly one of for, until or event")),
    ({"for": "1h", "event": "e"}, ("exactly one of for, until or event (has for, event)",)),
    ({"for": "soon"}, ("› for",)),
    ({"until": "nowhere"}, ("› until", "nowhere — not in scope")),
    ({"for": "1h", "timeout": "2h"}, ("› timeout", "only a wait for an event")),
    ({"event": "e", "on_timeout": "complete"}, ("› on_timeout", "give a timeout first")),
    ({"event": "e", "flow": "p_work"}, ("› flow", "a wait step runs no flow")),
    ({"event": "e", "for_each": "[1]"}, ("› for_each", "a wait step runs once")),
])
def test_wait_rules(flows, extra, fragments):
    o = orch(stage("s", step("w", extra.pop("flow", None), type="wait", **extra)))
    assert_problem(validate_orchestration(o), *fragments)


def test_sub_orchestration_rules(flows):
    orch(stage("only", step("w", "p_work")), api_name="p_child", status="active",
         inputs=[{"name": "n", "type": "number", "required": True}], outputs={"total": "1"})
    o = orch(stage("s", step("a", None, type="orchestration", orchestration="p_child", inputs={"m": "1"})),
             stage("t", step("b", "p_work", inputs={"x": "string(steps.a.outputs.sum)"})))
    problems = validate_orchestration(o)
    assert_problem(problems, "p_orch › s › a › inputs.m", "declares no input 'm'")
    assert_problem(problems, "p_orch › s › a › inputs", "required input 'n'")
    assert_problem(problems, "p_orch › t › b › inputs.x", "declares no output 'sum' (outputs: total)")
    missing = orch(stage("s", step("a", None, type="orchestration", orchestration="p_none")), api_name="p_m")
    assert_problem(validate_orchestration(missing), "p_m › s › a › orchestration", "no orchestration named 'p_none'")


def test_recursion_needs_a_guard(flows):
    loop = orch(stage("s", step("again", None, type="orchestration", orchestration="p_orch")))
    assert_problem(validate_orchestration(loop), "p_orch › s › again › orchestration",
                   "recursion without a guard: p_orch → p_orch")
    guarded = orch(stage("s", step("again", None, type="orchestration", orchestration="p_rec",
                                   entry={"condition": "size(inputs) > 100"})), api_name="p_rec")
    assert texts(validate_orchestration(guarded)) == []


def test_recursion_through_another_orchestration(flows):
    orch(stage("s", step("back", None, type="orchestration", orchestration="p_top")), api_name="p_mid",
         status="active")
    top = orch(stage("s", step("down", None, type="orchestration", orchestration="p_mid")), api_name="p_top")
    assert_problem(validate_orchestration(top), "recursion without a guard: p_top → p_mid → p_top")


def test_error_paths_and_outputs(flows):
    o = orch(stage("s", step("a", "p_work"), on_error={"goto": "nowhere"}),
             stage("t", step("b", "p_work", inputs={"x": "steps.a.outputs.result"})),
             {"type": "decision", "name": "d", "outcomes": [{"name": "y", "condition": "true", "goto": "end"}],
              "default": "end"},
             outputs={"bad name": "1", "late": "steps.b.outputs.result"})
    o.stages.filter(name="d").update(on_error_goto="s")  # the admin can write what the file format refuses
    problems = validate_orchestration(o)
    assert_problem(problems, "p_orch › s › on_error.goto", "no stage or decision named 'nowhere'")
    assert_problem(problems, "p_orch › d › on_error", "a decision runs no step")
    assert_problem(problems, "p_orch › outputs.bad name", "output name")
    texts_ = texts(problems)
    assert not any("outputs.late" in t for t in texts_), texts_  # b is on every path to the end


def test_reading_a_step_of_a_stage_with_an_error_path_needs_a_guard(flows):
    o = orch(stage("s", step("a", "p_work"), on_error={"goto": "t"}),
             stage("t", step("b", "p_work", inputs={"x": "steps.a.outputs.result"})))
    assert_problem(validate_orchestration(o), "p_orch › t › b › inputs.x", "has an error path")
    ok = orch(stage("s", step("a", "p_work"), on_error={"goto": "t"}),
              stage("t", step("b", "p_work", inputs={"x": 'has(steps.a.outputs.result) ? steps.a.outputs.result : ""'})),
              api_name="p_ok")
    assert texts(validate_orchestration(ok)) == []


def test_outputs_read_only_steps_on_every_path_to_the_end(flows):
    o = orch(stage("s", step("a", "p_work")),
             {"type": "decision", "name": "d", "outcomes": [{"name": "y", "condition": "true", "goto": "end"}],
              "default": "t"},
             stage("t", step("b", "p_work")),
             outputs={"early": "steps.a.outputs.result", "maybe": "steps.b.outputs.result"})
    problems = validate_orchestration(o)
    assert_problem(problems, "p_orch › outputs.maybe", "not certain to have completed when the run ends")
    assert not any("outputs.early" in t for t in texts(problems))
    assert Orchestration.objects.filter(api_name="p_orch").count() == 1


def test_the_file_schema_takes_the_pattern_keys_and_names_a_bad_one():
    from orchestration.definition_files import check_shape

    good = {"orchestrations": [{
        "api_name": "p_file", "outputs": {"n": "1"},
        "path": [{"name": "s", "on_error": {"goto": "end"}, "steps": [
            {"name": "a", "flow": "f", "for_each": "[1]", "completion": {"percent": 50}, "sequential": True},
            {"name": "b", "type": "interactive", "flow": "g", "assignees": "[]", "assignee": {"exclude": "[]"}},
            {"name": "c", "type": "orchestration", "orchestration": "p_child"},
            {"name": "d", "type": "wait", "event": "signed", "timeout": "1d", "on_timeout": "complete"},
        ]}],
    }]}
    assert check_shape(good) == []
    bad = {"orchestrations": [{"api_name": "p_file", "path": [{"name": "s", "steps": [
        {"name": "d", "type": "wait", "event": "signed", "on_timeout": "later"}]}]}]}
    assert any("on_timeout" in str(p) for p in check_shape(bad)), check_shape(bad)
    bad_completion = {"orchestrations": [{"api_name": "p_file", "path": [{"name": "s", "steps": [
        {"name": "a", "flow": "f", "for_each": "[1]", "completion": {"at_least": 0}}]}]}]}
    assert any("completion" in str(p) for p in check_shape(bad_completion)), check_shape(bad_completion)
