"""Definition files: shape errors with lines, duplicates, all-or-nothing, --activate, export, round trip."""
import io
import string

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st

from flows.models import Flow
from orchestration.definition_files import (
    DefinitionFileError, LineLoader, export_document, import_document, load_yaml,
)
from orchestration.models import Orchestration
from tests.factories import make_user
from workguide.models import Queue

pytestmark = pytest.mark.django_db

GOOD = """\
queues:
  - name: desk
    email: desk@example.com
    members: [ann]
    member_groups: [helpers]
flows:
  - api_name: df_form
    label: Ask
    type: screen
    outputs: [{name: answer}]
    screens:
      - name: main
        fields:
          - {name: answer, type: choice, choices: [yes, no], required: true}
  - api_name: df_work
    type: autolaunched
    inputs: [{name: answer, required: true}]
    outputs: [{name: done, type: boolean}]
    elements:
      - {type: assign, set: {done: 'answer == "yes"'}}
orchestrations:
  - api_name: df_orch
    label: Ask then work
    start: {type: record_triggered, model: demo.employee, when: created, condition: 'record.status == "hired"'}
    path:
      - name: ask
        steps:
          - {name: ask, type: interactive, flow: df_form, assignee: {queue: desk}, due_in: 2d}
      - type: decision
        name: answered
        outcomes:
          - {name: yes, condition: 'steps.ask.outputs.answer == "yes"', goto: work}
        default: end
      - name: work
        steps:
          - {name: work, flow: df_work, inputs: {answer: 'steps.ask.outputs.answer'}}
"""


@pytest.fixture
def ann():
    return make_user("ann")


def problems_of(text, activate=False):
    with pytest.raises(DefinitionFileError) as refused:
        import_document(text, activate=activate)
    return [str(p) for p in refused.value.problems]


def has(problems, *fragments):
    return any(all(f in p for f in fragments) for p in problems)


def test_a_good_file_imports_as_drafts(ann):
    report = import_document(GOOD)
    assert [f.status for f in report.flows] == ["draft", "draft"]
    assert Orchestration.objects.get(api_name="df_orch").status == "draft"
    queue = Queue.objects.get(name="desk")
    assert [u.username for u in queue.members.all()] == ["ann"]
    assert [g.name for g in queue.member_groups.all()] == ["helpers"]
    # yes/no stay text, not booleans
    field = Flow.objects.get(api_name="df_form").screens.get().fields.get()
    assert field.choices == ["yes", "no"]


def test_import_activate_activates_flows_then_orchestrations(ann, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        import_document(GOOD, activate=True)
    assert set(Flow.objects.values_list("status", flat=True)) == {"active"}
    assert Orchestration.objects.get(api_name="df_orch").status == "active"
    import_document(GOOD, activate=True)  # a second import: version 2, version 1 obsolete
    assert list(Orchestration.objects.order_by("version").values_list("version", "status")) == [
        (1, "obsolete"), (2, "active")]


def test_bad_yaml_names_the_line():
    problems = problems_of("flows:\n  - api_name: x\n    type: [screen\n")
    assert has(problems, "line 4", "not valid YAML")


def test_unknown_keys_name_path_and_line():
    text = GOOD.replace("    label: Ask\n", "    label: Ask\n    colour: red\n")
    problems = problems_of(text)
    assert has(problems, "flows[0].colour (line 9)", "unknown key 'colour'")


def test_unknown_keys_in_steps_and_elements():
    text = GOOD.replace("{name: work, flow: df_work,", "{name: work, flow: df_work, colour: 1,").replace(
        "{type: assign, set:", "{type: assign, url: x, set:")
    problems = problems_of(text)
    assert has(problems, "orchestrations[0].path[2].steps[0].colour", "line 36", "unknown key")
    assert has(problems, "flows[1].elements[0].url", "line 20", "unknown key")


def test_wrong_types_name_path_and_line():
    text = GOOD.replace("due_in: 2d", "due_in: 2d, retries: many").replace("required: true}]", "required: maybe}]")
    problems = problems_of(text)
    assert has(problems, "orchestrations[0].path[0].steps[0].retries (line 28)", "expected a whole number")
    assert has(problems, "flows[1].inputs[0].required (line 17)", "expected true or false")


def test_bad_enums_and_missing_keys():
    text = GOOD.replace("type: autolaunched\n", "type: sideways\n").replace("  - api_name: df_form\n", "  - description: x\n")
    problems = problems_of(text)
    assert has(problems, "flows[1].type (line 16)", "'sideways' is not one of")
    assert has(problems, "flows[0] (line 7)", "missing required key 'api_name'")


def test_the_document_must_be_a_mapping():
    assert has(problems_of("- a\n- b\n"), "must be a mapping")


@pytest.mark.parametrize("old,new,fragments", [
    ("  - api_name: df_work\n", "  - api_name: df_form\n", ("flows[1].api_name (line 15)", "flow 'df_form' is defined twice", "line 7")),
    ("{name: work, flow: df_work,", "{name: ask, flow: df_work,", ("steps[0].name", "step 'ask' is defined twice")),
    ("      - name: work\n", "      - name: ask\n", ("path[2].name (line 34)", "stage or decision 'ask' is defined twice")),
    ("flows:\n", "  - name: desk\nflows:\n", ("queues[1].name (line 6)", "queue 'desk' is defined twice")),
    ("    label: Ask\n", "    label: Ask\n    label: Again\n", ("line 9", "key 'label' appears twice", "first on line 8")),
])
def test_duplicate_names_are_errors(old, new, fragments):
    problems = problems_of(GOOD.replace(old, new, 1))
    assert has(problems, *fragments), problems


def test_import_is_all_or_nothing(ann):
    # Everything is well formed, but a queue member is unknown: nothing at all is stored.
    problems = problems_of(GOOD.replace("members: [ann]", "members: [ann, ghost]"))
    assert has(problems, "queues[0].members[1] (line 4)", "no user named 'ghost'")
    assert not Flow.objects.exists() and not Orchestration.objects.exists() and not Queue.objects.exists()


def test_activation_problems_refuse_the_whole_file(ann):
    text = GOOD.replace("inputs: {answer: 'steps.ask.outputs.answer'}", "inputs: {answer: 'steps.ask.outputs.nope'}")
    problems = problems_of(text, activate=True)
    assert has(problems, "df_orch › work › work › inputs.answer (line 36)", "has no output 'nope' (has: answer)")
    assert not Flow.objects.exists() and not Orchestration.objects.exists()


def test_drafts_with_problems_import_with_warnings(ann):
    text = GOOD.replace("inputs: {answer: 'steps.ask.outputs.answer'}", "inputs: {answer: 'steps.ask.outputs.nope'}")
    report = import_document(text)
    assert any("has no output 'nope'" in str(w) for w in report.warnings)


def test_import_command(tmp_path, ann):
    path = tmp_path / "defs.yaml"
    path.write_text(GOOD)
    out = io.StringIO()
    call_command("import_definitions", str(path), "--activate", stdout=out)
    assert "orchestration df_orch v1: active" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("import_definitions", str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows: [{api_name: x}]\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_definitions", str(bad), stderr=err)
    assert "missing required key 'type'" in err.getvalue()


def test_export_command(tmp_path, ann):
    import_document(GOOD, activate=True)
    out = io.StringIO()
    call_command("export_definitions", "df_orch", stdout=out)
    data = yaml.load(out.getvalue(), Loader=LineLoader)
    assert [o["api_name"] for o in data["orchestrations"]] == ["df_orch"]
    assert [q["name"] for q in data["queues"]] == ["desk"]
    assert "flows" not in data
    target = tmp_path / "all.yaml"
    call_command("export_definitions", "--output", str(target))
    everything = yaml.load(target.read_text(), Loader=LineLoader)
    assert [f["api_name"] for f in everything["flows"]] == ["df_form", "df_work"]
    with pytest.raises(CommandError, match="no_such"):
        call_command("export_definitions", "no_such")


def test_export_leaves_defaults_out(ann):
    import_document(GOOD)
    text = export_document(["df_orch"])
    for default in ("retries", "timeout", "max_stage_visits", "entry", "exit", "only_when_changed_to_meet"):
        assert default not in text


def test_round_trip_of_the_sample(ann):
    import_document(GOOD)
    first = export_document()
    import_document(first)
    assert export_document() == first
    original = yaml.load(GOOD, Loader=LineLoader)
    assert yaml.load(first, Loader=LineLoader) == original


def test_load_yaml_records_lines():
    data, problems = load_yaml("a:\n  - x: 1\n    y: 2\n")
    assert problems == []
    assert data["a"].item_lines == [2]
    assert data["a"][0].key_lines == {"x": 2, "y": 3}


# ---------------------------------------------------------------- property: import(export(x)) == x

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " _-.:'\"#é", min_size=1, max_size=12)
EXPR = st.sampled_from(["true", "1 + 2", 'record.name == "x"', "inputs.a", "size([1, 2]) > 1"])


def optional(draw, out, key, strategy):
    if draw(st.booleans()):
        out[key] = draw(strategy)


@st.composite
def variables(draw, outputs=False):
    names = draw(st.lists(NAME, unique=True, max_size=3))
    result = []
    for name in names:
        v = {"name": name}
        optional(draw, v, "type", st.sampled_from(["number", "boolean", "date", "list", "record"]))
        optional(draw, v, "required", st.just(True))
        optional(draw, v, "default", st.one_of(TEXT, st.integers(-5, 5), st.booleans()))
        if outputs:
            optional(draw, v, "value", EXPR)
        result.append(v)
    return result


@st.composite
def flows(draw, api_name):
    flow = {"api_name": api_name}
    optional(draw, flow, "label", TEXT)
    optional(draw, flow, "description", TEXT)
    flow["type"] = draw(st.sampled_from(["screen", "autolaunched", "evaluation"]))
    for key, outs in (("inputs", False), ("outputs", True)):
        values = draw(variables(outs))
        if values:
            flow[key] = values
    if flow["type"] == "screen":
        screens = []
        field_names = iter(draw(st.lists(NAME, unique=True, min_size=4, max_size=4)))
        for screen_name in draw(st.lists(NAME, unique=True, min_size=1, max_size=2)):
            screen = {"name": screen_name}
            optional(draw, screen, "label", TEXT)
            fields = []
            for _ in range(draw(st.integers(0, 2))):
                f = {"name": next(field_names)}
                optional(draw, f, "type", st.sampled_from(["number", "choice", "display", "textarea"]))
                optional(draw, f, "label", TEXT)
                optional(draw, f, "required", st.just(True))
                optional(draw, f, "default", EXPR)
                optional(draw, f, "choices", st.lists(TEXT, min_size=1, max_size=3))
                optional(draw, f, "text", TEXT)
                fields.append(f)
            screen["fields"] = fields
            if draw(st.booleans()):
                screen["validate"] = {"condition": draw(EXPR)}
                optional(draw, screen["validate"], "message", TEXT)
            screens.append(screen)
        flow["screens"] = screens
    else:
        elements = []
        for label in draw(st.lists(NAME, unique=True, min_size=1, max_size=3)):
            element = draw(st.sampled_from([
                {"type": "assign", "set": {"x": "1"}},
                {"type": "send_email", "to": '"a@b.c"', "subject": "Hi {!name}"},
                {"type": "action", "action": "act", "inputs": {"p": "1"}},
                {"type": "decision", "outcomes": [{"condition": "true", "goto": "end"}], "default": "end"},
            ]))
            element = dict(element)
            if draw(st.booleans()):
                element = {"type": element.pop("type"), "name": label, **element}
            elements.append(element)
        flow["elements"] = elements
    return flow


def conditionish(draw, word):
    choice = draw(st.sampled_from([None, "condition", "evaluation_flow"]))
    if choice is None:
        return None
    if choice == "condition":
        return {"condition": draw(EXPR)}
    out = {"evaluation_flow": draw(NAME)}
    if draw(st.booleans()):
        out["inputs"] = {draw(NAME): draw(EXPR)}
    return out


@st.composite
def orchestrations(draw, api_name, flow_names):
    orch = {"api_name": api_name}
    optional(draw, orch, "label", TEXT)
    if draw(st.booleans()):
        start = {"type": "record_triggered", "model": "demo.employee"}
        optional(draw, start, "when", st.sampled_from(["created", "updated", "created_or_updated"]))
        optional(draw, start, "condition", EXPR)
        optional(draw, start, "only_when_changed_to_meet", st.just(True))
        orch["start"] = start
    else:
        orch["start"] = {"type": "autolaunched"}
    inputs = draw(variables())
    if inputs:
        orch["inputs"] = inputs
    optional(draw, orch, "max_stage_visits", st.integers(1, 49))
    names = iter(draw(st.lists(NAME, unique=True, min_size=12, max_size=12)))
    path = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:
            decision = {"type": "decision", "name": next(names)}
            optional(draw, decision, "label", TEXT)
            outcome = {"name": "yes"}
            outcome.update(conditionish(draw, "x") or {"condition": "true"})
            outcome["goto"] = "end"
            decision["outcomes"] = [outcome]
            decision["default"] = "end"
            path.append(decision)
            continue
        stage = {"name": next(names)}
        optional(draw, stage, "label", TEXT)
        optional(draw, stage, "next", st.just("end"))
        exit_ = conditionish(draw, "x")
        if exit_:
            stage["exit"] = exit_
        steps = []
        for _ in range(draw(st.integers(0, 2))):
            s = {"name": next(names)}
            optional(draw, s, "label", TEXT)
            interactive = draw(st.booleans())
            if interactive:
                s["type"] = "interactive"
            s["flow"] = draw(st.sampled_from(flow_names))
            optional(draw, s, "inputs", st.dictionaries(NAME, EXPR, min_size=1, max_size=2))
            entry = conditionish(draw, "x")
            if steps and draw(st.booleans()):
                entry = {"after": [steps[0]["name"]]}
            if entry:
                s["entry"] = entry
            exit_ = conditionish(draw, "x")
            if exit_:
                s["exit"] = exit_
            if interactive:
                s["assignee"] = draw(st.sampled_from([{"user": "ann"}, {"group": "g"}, {"queue": "q1"},
                                                      {"expr": '"user:ann"'}]))
                optional(draw, s, "record", EXPR)
                optional(draw, s, "due_in", st.sampled_from(["2d", "PT30S"]))
                optional(draw, s, "escalate_to", st.just("queue:q1"))
            else:
                optional(draw, s, "retries", st.integers(0, 2))
                optional(draw, s, "timeout", st.sampled_from(["30s", "2h"]))
            steps.append(s)
        if steps:
            stage["steps"] = steps
        path.append(stage)
    orch["path"] = path
    return orch


@st.composite
def documents(draw):
    doc = {}
    if draw(st.booleans()):
        queue = {"name": "q1"}
        optional(draw, queue, "email", st.just("q1@example.com"))
        optional(draw, queue, "member_groups", st.just(["g", "h"]))
        doc["queues"] = [queue]
    flow_names = draw(st.lists(NAME, unique=True, min_size=1, max_size=3))
    doc["flows"] = [draw(flows(name)) for name in flow_names]
    orch_names = draw(st.lists(NAME, unique=True, max_size=2))
    if orch_names:
        doc["orchestrations"] = [draw(orchestrations(name, flow_names)) for name in orch_names]
    return doc


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow],
           phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(doc=documents())
def test_import_of_export_gives_the_same_definitions(doc):
    with transaction.atomic():
        import_document(doc)
        exported = export_document()
        expected = {key: sorted(items, key=lambda d: d.get("api_name", d.get("name"))) for key, items in doc.items()}
        assert yaml.load(exported, Loader=LineLoader) == expected
        import_document(exported)
        assert export_document() == exported
        transaction.set_rollback(True)


def test_the_documented_example_imports_and_activates(ann):
    from pathlib import Path

    text = Path(__file__).resolve().parents[2].joinpath("docs", "definitions.md").read_text()
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    report = import_document(example, activate=True)
    assert [o.status for o in report.orchestrations] == ["active"]


# ------------------------------------------------------------------ hostile YAML

def alias_bomb(levels, width=9):
    """A few hundred bytes whose aliases stand for width**levels strings."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
    lines.append(f"flows: [{{api_name: *l{levels - 1}, type: autolaunched}}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_by_the_import_command_without_expanding(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(6))  # 531,441 strings once expanded
    assert len(bomb.read_bytes()) < 400
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 problem in .*nothing was imported"):
        call_command("import_definitions", str(bomb), stderr=err)
    message = err.getvalue()
    assert "line 5" in message and "aliases repeat more than 10,000 nodes" in message, message
    assert len(message) < 500, len(message)  # before: the expanded list, quoted whole
    assert Flow.objects.count() == 0


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("queues: []\nflows: " + "[" * 5000 + "]" * 5000 + "\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):  # before: a raw RecursionError
        call_command("import_definitions", str(deep), stderr=err)
    assert "line 2" in err.getvalue() and "nested more than 64 levels deep" in err.getvalue(), err.getvalue()


def test_an_alias_inside_its_own_anchor_is_refused():
    problems = problems_of("flows: &loop [*loop]\n")
    assert has(problems, "line 1", "alias *loop refers to a node that contains it")


def test_a_value_quoted_in_a_problem_is_shortened():
    problems = problems_of(f"flows: [{{api_name: [{', '.join(['x' * 50] * 200)}], type: autolaunched}}]\n")
    text = "\n".join(str(p) for p in problems)
    assert "expected text, got a list" in text and len(text) < 600, text


def test_a_few_aliases_still_work():
    small = "a: &a {x: [1, 2, 3]}\nb: [*a, *a, *a]\n"
    data, problems = load_yaml(small)
    assert problems == [] and data["b"] == [{"x": [1, 2, 3]}] * 3


def test_an_alias_bomb_uploaded_to_the_admin_import_gets_a_short_answer(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("bomb.yaml", alias_bomb(6).encode(), content_type="application/yaml")
    response = admin_client.post("/admin/flows/flow/import/", {"file": upload})
    assert response.status_code == 400
    [problem] = response.context["problems"]
    assert "line 5" in problem and "aliases repeat more than" in problem, problem
    assert len(response.content) < 50_000, len(response.content)  # before: megabytes of the expanded list
    assert Flow.objects.count() == 0


@pytest.mark.parametrize("old, new, place", [
    ("  - api_name: df_form\n", "  - api_name: " + "A" * 900_000 + "\n", "flows[0].api_name"),
    ("{name: work, flow: df_work,", "{name: " + "w" * 101 + ", flow: df_work,", "orchestrations[0].path[2].steps[0].name"),
])
def test_over_long_names_are_refused_and_not_echoed_whole(old, new, place):
    """Issue 12 review, hole 9: names are stored in 100-character columns."""
    assert old in GOOD
    problems = problems_of(GOOD.replace(old, new, 1))
    assert has(problems, place, "characters long; at most 100")
    assert sum(len(p) for p in problems) < 2_000
    assert not Flow.objects.exists() and not Orchestration.objects.exists()


@pytest.mark.parametrize("old, new, place", [
    ("  - api_name: df_form\n", "  - api_name: 'df form!'\n", "flows[0].api_name"),
    ("      - name: ask\n", "      - name: 'a stage?'\n", "orchestrations[0].path[0].name"),
])
def test_names_must_be_slug_like(old, new, place):
    problems = problems_of(GOOD.replace(old, new, 1))
    assert has(problems, place, "does not match the expected form")


def test_step_priority_round_trips_and_is_checked(ann):
    text = GOOD.replace("due_in: 2d}", "due_in: 2d, priority: 80}")
    import_document(text)
    orch = Orchestration.objects.get(api_name="df_orch")
    assert orch.stages.get(name="ask").steps.get().priority == 80
    exported = yaml.safe_load(export_document(["df_orch"]))
    step = exported["orchestrations"][0]["path"][0]["steps"][0]
    assert step["priority"] == 80
    assert "priority" not in exported["orchestrations"][0]["path"][2]["steps"][0]  # the default is left out
    problems = problems_of(GOOD.replace("due_in: 2d}", "due_in: 2d, priority: high}"))
    assert has(problems, "orchestrations[0].path[0].steps[0].priority", "expected a whole number")
