"""The screen flow runner: forms from definitions, navigation, progress, validate_all."""
import json

import pytest
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import QueryDict

from flows.runtime import FlowError
from flows.screens import DisplayField, MultiChoiceField, ScreenFlowState, ScreenForm, validate_all
from tests.flow_builders import autolaunched, field, screen, screen_flow, var

pytestmark = pytest.mark.django_db

CHOICES = ["mac", {"value": "linux", "label": "Linux laptop"}]


def every_type_flow(**kwargs):
    return screen_flow(
        screen(
            "all",
            field("t", "text", required=True),
            field("ta", "textarea"),
            field("n", "number"),
            field("b", "boolean"),
            field("d", "date"),
            field("dt", "datetime"),
            field("c", "choice", choices=CHOICES),
            field("mc", "multichoice", choices=["mouse", "screen", "dock"]),
            field("e", "email"),
            field("hello", "display", text="Hello {!who}"),
        ),
        inputs=[var("who")],
        **kwargs,
    )


def form_for(spec, data=None, inputs=None, values=None, index=0):
    return ScreenForm(data, spec=spec, screen=spec.screens[index], inputs=inputs or {}, values=values or {})


def test_every_field_type_builds_the_right_form_field():
    spec = every_type_flow()
    form = form_for(spec, inputs={"who": "Ada"})
    kinds = {name: type(f) for name, f in form.fields.items()}
    assert kinds == {
        "t": forms.CharField, "ta": forms.CharField, "n": forms.FloatField, "b": forms.BooleanField,
        "d": forms.DateField, "dt": forms.DateTimeField, "c": forms.ChoiceField, "mc": MultiChoiceField,
        "e": forms.EmailField, "hello": DisplayField,
    }
    assert isinstance(form.fields["ta"].widget, forms.Textarea)
    assert form.fields["c"].choices == [("", "---------"), ("mac", "mac"), ("linux", "Linux laptop")]
    assert form.fields["t"].required and not form.fields["ta"].required
    html = form.as_div()
    assert 'type="date"' in html and 'type="datetime-local"' in html and 'type="checkbox"' in html
    assert "Hello Ada" in html


def test_every_field_type_cleans_to_json_values():
    spec = every_type_flow()
    data = QueryDict(mutable=True)
    data.update({"t": "x", "ta": "long\ntext", "n": "2.5", "b": "on", "d": "2024-05-01",
                 "dt": "2024-05-01T10:30", "c": "linux", "e": "a@example.com"})
    data.setlist("mc", ["mouse", "dock"])
    form = form_for(spec, data, inputs={"who": "Ada"})
    assert form.is_valid(), form.errors
    values = form.screen_values()
    assert values == {
        "t": "x", "ta": "long\ntext", "n": 2.5, "b": True, "d": "2024-05-01",
        "dt": "2024-05-01T10:30:00+00:00", "c": "linux", "mc": ["mouse", "dock"], "e": "a@example.com",
    }
    json.dumps(values)
    assert "hello" not in values


def test_invalid_values_of_every_type_are_field_errors():
    spec = every_type_flow()
    form = form_for(spec, {"t": "", "n": "many", "d": "someday", "dt": "later", "c": "windows",
                           "mc": ["typewriter"], "e": "nope"})
    assert not form.is_valid()
    assert set(form.errors) == {"t", "n", "d", "dt", "c", "mc", "e"}


def test_required_boolean_must_be_ticked_and_required_choice_starts_blank():
    spec = screen_flow(screen("s", field("agree", "boolean", required=True),
                              field("c", "choice", required=True, choices=["a", "b"])))
    form = form_for(spec, {"c": "a"})
    assert not form.is_valid() and set(form.errors) == {"agree"}
    # issue 17 #1: a required choice opens on a blank option, not on its first choice, and blank is refused
    assert form.fields["c"].choices == [("", "Choose…"), ("a", "a"), ("b", "b")]
    untouched = form_for(spec, {"agree": "on"})
    assert not untouched.is_valid() and untouched.errors["c"] == ["This field is required."]
    html = str(form_for(spec)["c"])
    assert '<option value="" selected>Choose…</option>' in html


def test_defaults_are_expressions_over_inputs_and_earlier_values():
    spec = screen_flow(
        screen("one", field("name", default="first + ' ' + last")),
        screen("two", field("greeting", default='"Hi " + name'), field("count", "number", default="2.0 * 3.0"),
               field("flag", "boolean", default="true"), field("broken", default="no_such_name.x")),
        inputs=[var("first"), var("last")],
    )
    state = ScreenFlowState(spec, {"first": "Ada", "last": "Lovelace"})
    assert state.form().initial["name"] == "Ada Lovelace"
    result = state.submit({"name": "Ada L"}, "next")
    assert result.ok
    initial = result.form.initial
    assert initial["greeting"] == "Hi Ada L" and initial["count"] == 6.0 and initial["flag"] is True
    assert initial.get("broken") is None


def test_visible_if_hides_fields_which_are_then_not_required_nor_kept():
    spec = screen_flow(screen(
        "s",
        field("needs_laptop", "boolean"),
        field("model", "choice", required=True, choices=["mac", "linux"], visible_if="needs_laptop"),
        field("why", "text", required=True, visible_if='model == "linux"'),
        field("vip", "text", visible_if="level > 2.0"),
    ), inputs=[var("level", "number")])
    hidden = form_for(spec, {"model": "mac", "why": "x"}, inputs={"level": 1.0})
    assert hidden.is_valid(), hidden.errors
    assert set(hidden.fields) == {"needs_laptop"}
    assert hidden.screen_values() == {"needs_laptop": False}
    shown = form_for(spec, {"needs_laptop": "on"}, inputs={"level": 5.0})
    assert not shown.is_valid()
    assert set(shown.errors) == {"model"}
    assert {"model", "vip"} <= set(shown.fields) and "why" not in shown.fields
    chained = form_for(spec, {"needs_laptop": "on", "model": "linux"}, inputs={"level": 1.0})
    assert not chained.is_valid() and set(chained.errors) == {"why"}


def test_screen_validate_expression_gives_a_non_field_error():
    spec = screen_flow(screen(
        "s", field("start", "date", required=True), field("end", "date", required=True),
        validate={"condition": "start <= end", "message": "The end comes after the start."},
    ))
    bad = form_for(spec, {"start": "2024-05-02", "end": "2024-05-01"})
    assert not bad.is_valid()
    assert bad.non_field_errors() == ["The end comes after the start."]
    assert form_for(spec, {"start": "2024-05-01", "end": "2024-05-01"}).is_valid()
    broken = screen_flow(screen("s", field("x"), validate={"condition": "size(", "message": "m"}))
    form = form_for(broken, {"x": "a"})
    assert not form.is_valid() and "cannot be checked" in form.non_field_errors()[0]


def test_display_merge_fields_escape_html_in_values():
    spec = screen_flow(
        screen("s", field("intro", "display", text="Hello {!who}\nYou chose {!choice}"), field("choice")),
        inputs=[var("who")],
    )
    form = form_for(spec, inputs={"who": "<script>alert(1)</script>"}, values={"choice": "<b>bold</b>"})
    html = str(form["intro"])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<br>" in html
    broken = screen_flow(screen("s", field("intro", "display", text="Hi {!nope.x}")))
    assert "nope.x" in str(form_for(broken)["intro"])


def two_screen_flow(**kwargs):
    return screen_flow(
        screen("who", field("name", required=True), field("age", "number")),
        screen("what", field("item", "choice", required=True, choices=["laptop", "phone"]),
               field("note", "textarea"), validate={"condition": 'item != "phone" || age >= 18.0',
                                                    "message": "Phones need an adult."}),
        **kwargs,
    )


def test_next_and_back_keep_values_and_progress_resumes():
    spec = two_screen_flow()
    state = ScreenFlowState(spec, {})
    assert state.current_screen.name == "who" and state.is_first
    bad = state.submit({"age": "3"}, "next")
    assert not bad.ok and bad.errors == {"name": ["This field is required."]}
    assert state.current_screen.name == "who"
    ok = state.submit({"name": "Ada", "age": "30"}, "next")
    assert ok.ok and state.current_screen.name == "what" and state.is_last
    assert state.values == {"name": "Ada", "age": 30.0}
    # Back keeps what was typed (even invalid) without validating.
    back = state.submit({"item": "tablet", "note": "half done"}, "back")
    assert back.ok and state.current_screen.name == "who"
    assert back.form.initial["name"] == "Ada"
    progress = json.loads(json.dumps(state.progress))
    resumed = ScreenFlowState(spec, {}, progress)
    assert resumed.current_screen.name == "who" and resumed.values == state.values
    assert resumed.submit({"name": "Ada", "age": "30"}, "next").ok
    form = resumed.form()
    assert form.initial["item"] == "tablet" and form.initial["note"] == "half done"
    assert 'half done' in form.as_div()


def test_finish_validates_the_last_screen_then_all_screens():
    spec = two_screen_flow(outputs=[var("summary", value='name + " wants " + item'), var("age", "number")])
    state = ScreenFlowState(spec, {})
    state.submit({"name": "Kid", "age": "10"}, "next")
    refused = state.submit({"item": "phone"}, "finish")
    assert not refused.ok and refused.errors == {NON_FIELD_ERRORS: ["Phones need an adult."]}
    done = state.submit({"item": "laptop", "note": ""}, "finish")
    assert done.ok and done.finished and state.finished
    assert done.outputs == {"name": "Kid", "age": 10.0, "item": "laptop", "note": None,
                            "summary": "Kid wants laptop"}
    json.dumps(state.progress)
    again = ScreenFlowState(spec, {}, state.progress).submit({}, "finish")
    assert not again.ok and again.finished


def test_finish_revalidation_catches_earlier_screens_made_invalid():
    spec = two_screen_flow()
    # Stored progress whose first screen lost its required value (e.g. edited by hand or an older version).
    state = ScreenFlowState(spec, {}, {"screen": 1, "values": {"age": 30.0}})
    result = state.submit({"item": "laptop"}, "finish")
    assert not result.ok and result.errors == {"name": ["This field is required."]}
    assert state.current_screen.name == "who"
    assert result.form.errors["name"]


def test_next_on_the_last_screen_finishes():
    spec = screen_flow(screen("only", field("x")))
    result = ScreenFlowState(spec, {}).submit({"x": "1"}, "next")
    assert result.finished and result.outputs == {"x": "1"}


def test_validate_all_gives_the_same_errors_keyed_by_field():
    spec = two_screen_flow()
    outputs, errors = validate_all(spec, {}, {"age": "x", "item": "phone", "bogus": 1})
    assert outputs is None
    assert errors == {"name": ["This field is required."], "age": ["Enter a number."],
                      "bogus": ["Unknown field."]}
    outputs, errors = validate_all(spec, {}, {"name": "Kid", "age": 10, "item": "phone"})
    assert errors == {NON_FIELD_ERRORS: ["Phones need an adult."]}
    outputs, errors = validate_all(spec, {}, {"name": "Ada", "age": 30, "item": "phone"})
    assert errors == {} and outputs == {"name": "Ada", "age": 30.0, "item": "phone", "note": None}
    assert validate_all(spec, {}, ["x"])[1]


def test_validate_all_every_type_from_json_and_hidden_fields():
    spec = every_type_flow()
    values = {"t": "x", "n": 2, "b": True, "d": "2024-05-01", "dt": "2024-05-01T10:30:00+02:00",
              "c": "mac", "mc": ["mouse"], "e": "a@example.com"}
    outputs, errors = validate_all(spec, {"who": "Ada"}, values)
    assert errors == {}
    assert outputs["dt"] == "2024-05-01T10:30:00+02:00" or outputs["dt"].startswith("2024-05-01T08:30:00")
    assert outputs["b"] is True and outputs["mc"] == ["mouse"] and outputs["n"] == 2.0
    hidden = screen_flow(screen("s", field("show", "boolean"), field("x", required=True, visible_if="show")))
    assert validate_all(hidden, {}, {"show": False, "x": "dropped"}) == ({"show": False, "x": None}, {})
    assert validate_all(hidden, {}, {"show": True})[1] == {"x": ["This field is required."]}


def test_output_types_and_expressions_are_checked():
    spec = screen_flow(screen("s", field("x")), outputs=[var("n", "number", value="x")])
    outputs, errors = validate_all(spec, {}, {"x": "abc"})
    assert outputs is None and "output n" in errors[NON_FIELD_ERRORS][0]


def test_state_rejects_wrong_flows_inputs_and_actions():
    with pytest.raises(FlowError, match="not a screen flow"):
        ScreenFlowState(autolaunched(), {})
    spec = screen_flow(screen("s", field("x")), inputs=[var("who", required=True)])
    with pytest.raises(FlowError, match="who: required"):
        ScreenFlowState(spec, {})
    with pytest.raises(ValueError, match="unknown action"):
        ScreenFlowState(spec, {"who": "a"}).submit({}, "jump")


def test_preview_recomputes_visibility_without_errors():
    spec = screen_flow(screen("s", field("show", "boolean"), field("x", required=True, visible_if="show")))
    state = ScreenFlowState(spec, {})
    assert "x" not in state.form().fields
    preview = state.preview({"show": "on"})
    assert "x" in preview.fields and not preview.is_bound and preview.initial["show"] is True
    assert state.values == {} and state.index == 0


@pytest.mark.parametrize("chosen,message", [
    (["mouse"] * 10_000, "Choose at most 3 option(s); 10000 were sent."),
    (["mouse", "dock", "screen", "mouse"], "Choose at most 3 option(s); 4 were sent."),
    (["mouse", "dock", "mouse"], "Each option can be chosen once; chosen more than once: “mouse”."),
    (["dock", "dock", "mouse", "mouse"], "Choose at most 3 option(s); 4 were sent."),
    (["dock", "dock", "mouse"], "Each option can be chosen once; chosen more than once: “dock”."),
])
def test_multichoice_refuses_duplicates_and_more_values_than_options(chosen, message):
    spec = screen_flow(screen("s", field("mc", "multichoice", choices=["mouse", "screen", "dock"])))
    outputs, errors = validate_all(spec, {}, {"mc": chosen})
    assert outputs is None and errors == {"mc": [message]}
    data = QueryDict(mutable=True)
    data.setlist("mc", chosen)
    form = form_for(spec, data)
    assert not form.is_valid() and form.errors == {"mc": [message]}
    outputs, errors = validate_all(spec, {}, {"mc": ["dock", "mouse", "screen"]})
    assert errors == {} and outputs["mc"] == ["dock", "mouse", "screen"]
