"""The designer's changes (flows/designer/edits.py) on any posted values: either a new mapping that an
import would accept, or EditRefused naming a place — never another exception, never a changed input."""
import copy

from django.http import QueryDict
from hypothesis import given, settings, strategies as st

from flows.designer.edits import EDITS, EditRefused, apply_edit, shape_problems, words_for_path

START = {
    "api_name": "intake", "type": "screen", "inputs": [{"name": "budget", "type": "number"}],
    "outputs": [{"name": "kind"}],
    "screens": [
        {"name": "first", "fields": [{"name": "kind", "type": "choice", "choices": ["a", "b"]},
                                     {"name": "model", "visible_if": "kind == 'a'"}]},
        {"name": "second", "fields": []},
    ],
    "elements": [{"type": "assign", "set": {"x": "1"}}],
}
KEYS = ["screen", "field", "to", "to_screen", "at", "index", "direction", "type", "name", "label", "choices",
        "default", "visible_if", "validate", "validate_message", "required", "text", "value", "set-name-0",
        "set-expr-0", "outcomes-condition-0", "outcomes-goto-0", "limit", "model", "into"]
VALUES = st.one_of(st.sampled_from(["0", "1", "2", "-1", "99", "x", "", "input", "output", "choice", "display",
                                    "assign", "decision", "text", "on", "kind", "a | A\nb", "[1", "1.5"]),
                   st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(sorted(EDITS) + ["nope"]), values=st.dictionaries(st.sampled_from(KEYS), VALUES))
def test_any_change_is_made_cleanly_or_refused_with_a_place(op, values):
    form = QueryDict(mutable=True)
    form.update({"op": op, **values})
    before = copy.deepcopy(START)
    try:
        new, selection = apply_edit(START, form)
    except EditRefused as exc:
        assert exc.problems and all(p.place for p in exc.problems)
    else:
        assert shape_problems(new) == []
        assert isinstance(selection, str) and selection
    assert START == before


def test_a_schema_path_reads_in_the_validators_words():
    assert words_for_path(START, "flows[0].screens[0].fields[1].name") == "intake › screen first › field model › name"
    assert words_for_path(START, "flows[0].inputs[0].default") == "intake › inputs.budget › default"
    assert words_for_path(START, "flows[0].elements[0].set") == "intake › elements[0] › set"
