"""Values that cannot be stored are refused where they are made (issue 12 review, holes 2, 4, 6).

A JSON column refuses inf and nan: before, a flow output holding one left its
step ``running`` (the worker's write raised, the sweeper re-sent it forever)
and an input mapping holding one made the launch a 500. A lone surrogate was
stored and then broke every page showing it. And merge text was bounded per
field only, so many fields could each repeat one large input.
"""
import pytest
from django.contrib.auth.models import User

from flows.expressions import ExpressionError, UnstorableValue, render_merge, to_json
from flows.runtime import FlowError, run_flow
from orchestration import engine, worker
from orchestration.models import StepRun
from tests.engine_builders import bg, noop_flow, orchestration
from tests.flow_builders import field, screen, screen_flow, var
from tests.engine_builders import Recorder

pytestmark = pytest.mark.django_db

INFINITE_LIST = '[1.0, double("1e400")]'


@pytest.mark.parametrize("value, message", [
    (float("inf"), "a number that is not finite"),
    ({"a": [1, {"b": float("nan")}]}, "a[1].b: a number that is not finite"),
    (["ok", "bad \ud800"], "[1]: text with a lone surrogate"),
    ({"\udfff": 1}, "\\udfff: the name: text with a lone surrogate"),
])
def test_to_json_refuses_what_cannot_be_stored_naming_where(value, message):
    with pytest.raises(UnstorableValue) as caught:
        to_json(value)
    assert str(caught.value).startswith(message)
    str(caught.value).encode("utf-8")  # the message can be shown


def test_a_flow_output_holding_inf_is_a_flow_error_naming_the_output():
    flow = noop_flow(outputs={"l": ("list", INFINITE_LIST)})
    with pytest.raises(FlowError, match=r"output l: \[1\]: a number that is not finite"):
        run_flow(flow, {})


def test_an_in_process_step_whose_output_holds_inf_ends_in_error(settings):
    settings.BATON_STEP_EXECUTION = "in_process"
    noop_flow("inf_out", outputs={"l": ("list", INFINITE_LIST)})
    orch = orchestration([{"name": "one", "steps": [bg("make", "inf_out")]}])
    run = engine.start_run(orch)
    step_run = StepRun.objects.get(run=run)
    assert step_run.status == "error" and "output l: [1]: a number that is not finite" in step_run.error
    run.refresh_from_db()
    assert run.status == "error"


def test_a_worker_step_whose_output_holds_nan_ends_in_error_not_running():
    noop_flow("nan_out", outputs={"l": ("list", '[double("nan")]')})
    orch = orchestration([{"name": "one", "steps": [bg("make", "nan_out", retries=0)]}])
    sent = Recorder()
    run = engine.start_run(orch, effects=sent)
    claimed = worker.claim(sent.sent[0], "task-1")
    assert worker.execute_claimed(claimed) == "error"
    step_run = StepRun.objects.get(pk=claimed.pk)
    assert step_run.status == "error" and step_run.lease_until is None
    assert "output l: [0]: a number that is not finite" in step_run.error
    run.refresh_from_db()
    assert run.status == "error"


@pytest.mark.parametrize("mapping", [INFINITE_LIST, "[inputs.big * 2.0]"])
def test_a_step_input_mapping_giving_inf_is_the_steps_error_naming_the_place(mapping):
    noop_flow("takes_l", inputs=[{"name": "l", "type": "list"}])
    orch = orchestration([{"name": "one", "steps": [bg("a", "takes_l", inputs={"l": mapping})]}],
                         api_name="inf_mapping", inputs=[{"name": "big", "type": "number"}])
    sent = Recorder()
    run = engine.start_run(orch, inputs={"big": 1.7e308}, effects=sent)
    step_run = StepRun.objects.get(run=run)
    assert step_run.status == "error"
    assert "inf_mapping › one › a › inputs.l" in step_run.error and "not finite" in step_run.error
    assert sent.sent == []
    run.refresh_from_db()
    assert run.status == "error"


def test_launch_with_an_input_mapping_giving_inf_is_not_a_500(client):
    from orchestration.starts import launch

    noop_flow("takes_l2", inputs=[{"name": "l", "type": "list"}])
    orchestration([{"name": "one", "steps": [bg("a", "takes_l2", inputs={"l": INFINITE_LIST})]}],
                  api_name="inf_launch", start={"type": "autolaunched"})
    run = launch("inf_launch", inputs={})
    assert run.status == "error"


def test_completing_a_step_from_python_with_nan_outputs_is_refused_and_changes_nothing():
    noop_flow("plain", outputs={"n": ("number", "1")})
    orch = orchestration([{"name": "one", "steps": [bg("a", "plain")]}])
    run = engine.start_run(orch, effects=Recorder())
    step_run = StepRun.objects.get(run=run)
    with pytest.raises(UnstorableValue, match=r"n\[0\]: a number that is not finite"):
        engine.complete_step(step_run.pk, {"n": [float("nan")]})
    step_run.refresh_from_db()
    assert step_run.status == "queued" and step_run.outputs in (None, {})


def test_a_screen_flow_output_giving_inf_is_a_message_not_a_crash():
    from flows.screens import compute_outputs

    spec = screen_flow(screen("s", field("ok", "boolean")), outputs=[var("l", "list", value=INFINITE_LIST)])
    outputs, messages = compute_outputs(spec, {}, {"ok": True})
    assert outputs is None
    assert messages and "output l" in messages[0] and "not finite" in messages[0]


@pytest.mark.parametrize("outputs", ['{"n": NaN}', '{"n": [Infinity]}', '{"note": "\\ud800"}'])
def test_skipping_from_the_monitor_with_unstorable_outputs_is_a_form_error(outputs):
    from orchestration.monitor.views import SkipForm

    form = SkipForm({"outputs": outputs})
    assert not form.is_valid()
    assert "cannot be stored" in form.errors["outputs"][0]


def test_merge_text_is_bounded_as_a_whole_naming_the_place(settings):
    settings.BATON_CEL_MAX_STRING = 10_000
    text = "{!s}" * 1000
    assert len(render_merge(text, {"s": "M" * 10}, "mail › body")) == 10_000
    with pytest.raises(ExpressionError, match=r"mail › body: the merged text would be longer than 10,000 "
                                              r"characters \(setting BATON_CEL_MAX_STRING\)"):
        render_merge(text, {"s": "M" * 11}, "mail › body")


def test_a_screen_display_of_many_merge_fields_fails_with_the_place_not_a_huge_page(settings):
    from flows.screens import ScreenForm

    settings.BATON_CEL_MAX_STRING = 100_000
    spec = screen_flow(screen("s", field("intro", "display", text="{!s}" * 1000)), inputs=[var("s")])
    form = ScreenForm(spec=spec, screen=spec.screens[0], inputs={"s": "M" * 200})
    html = str(form["intro"])
    assert len(html) < 10_000 and "BATON_CEL_MAX_STRING" in html


def test_completing_a_work_item_from_python_with_a_lone_surrogate_is_a_field_error(approval_item):
    from django.core.exceptions import ValidationError

    from workguide.services import complete_work_item

    item, alice = approval_item
    for values, name, message in (({"decision": "reject", "comment": "x\ud800"}, "comment", "lone surrogate"),
                                  ({"decision": "approve", "\ud800": 1}, "\\ud800", "Unknown field.")):
        with pytest.raises(ValidationError) as caught:
            complete_work_item(item, alice, values)
        assert message in " ".join(caught.value.message_dict[name])
        str(caught.value).encode("utf-8")  # the message can be shown
        item.refresh_from_db()
        assert item.status == "open"
    step_run = StepRun.objects.get(pk=item.step_run_id)
    assert step_run.status == "in_progress" and not step_run.outputs


@pytest.fixture
def approval_item():
    from tests.engine_builders import screen_flow as active_screen_flow
    from tests.engine_builders import ui
    from workguide.models import WorkItem

    alice = User.objects.create_user("alice")
    review = active_screen_flow(fields=[
        {"name": "decision", "type": "choice", "label": "Decision", "required": True,
         "choices": [{"value": "approve", "label": "Approve"}, {"value": "reject", "label": "Reject"}]},
        {"name": "comment", "type": "text", "label": "Comment"},
    ])
    orch = orchestration([{"name": "one", "steps": [ui("review", review.api_name, {"user": "alice"})]}])
    engine.start_run(orch, effects=Recorder())
    return WorkItem.objects.get(step_run__step_name="review"), alice
