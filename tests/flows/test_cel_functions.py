"""CEL's function names are checked when an expression is checked (activation, import, the builders):
the binding compiles a call of any name and fails only when it runs, so a function CEL here does not
have must be refused before a run reaches it."""
import datetime

import pytest

from flows.expressions import CEL_FUNCTIONS, ExpressionError, compile_expression, evaluate
from orchestration.validation import validate_orchestration
from tests.engine_builders import bg, noop_flow, orchestration

WHEN = "timestamp('2026-01-02T03:04:05Z')"
# One call of each known function and what it gives: proves the list names only what the binding runs.
SAMPLES = {
    "size": ("size('ab')", 2), "int": ("int('7')", 7), "uint": ("uint(7) == 7u", True),
    "double": ("double(1)", 1.0), "string": ("string(5)", "5"), "bytes": ("bytes('a')", b"a"),
    "type": ("type(1) == int", True), "dyn": ("dyn(3)", 3),
    "duration": ("duration('90s')", datetime.timedelta(seconds=90)),
    "timestamp": (f"{WHEN}.getFullYear()", 2026), "matches": ("'abc'.matches('^a')", True),
    "contains": ("'abc'.contains('b')", True), "startsWith": ("'abc'.startsWith('a')", True),
    "endsWith": ("'abc'.endsWith('c')", True), "has": ("has({'a': 1}.a)", True),
    "map": ("[1, 2].map(x, x * 2)", [2, 4]), "filter": ("[1, 2].filter(x, x > 1)", [2]),
    "all": ("[1, 2].all(x, x > 0)", True), "exists": ("[1, 2].exists(x, x > 1)", True),
    "exists_one": ("[1, 2].exists_one(x, x > 1)", True),
    "getFullYear": (f"{WHEN}.getFullYear()", 2026), "getMonth": (f"{WHEN}.getMonth()", 0),
    "getDate": (f"{WHEN}.getDate()", 2), "getDayOfMonth": (f"{WHEN}.getDayOfMonth()", 1),
    "getDayOfWeek": (f"{WHEN}.getDayOfWeek()", 5), "getDayOfYear": (f"{WHEN}.getDayOfYear()", 1),
    "getHours": (f"{WHEN}.getHours()", 3), "getMinutes": (f"{WHEN}.getMinutes()", 4),
    "getSeconds": (f"{WHEN}.getSeconds()", 5), "getMilliseconds": (f"{WHEN}.getMilliseconds()", 0),
    "of": ("optional.of(1).value()", 1), "none": ("optional.none().hasValue()", False),
    "ofNonZeroValue": ("optional.ofNonZeroValue(0).hasValue()", False),
    "hasValue": ("optional.of(1).hasValue()", True), "value": ("optional.of(2).value()", 2),
    "or": ("optional.none().or(optional.of(3)).value()", 3), "orValue": ("optional.none().orValue(4)", 4),
}


def test_every_known_function_runs_in_the_binding():
    assert set(SAMPLES) == CEL_FUNCTIONS
    for name, (source, expected) in SAMPLES.items():
        compile_expression(source, f"sample {name}")
        assert evaluate(source, {}, f"sample {name}") == expected, name


@pytest.mark.parametrize("source, unknown", [
    ("['a', 'b'].join(', ')", "join()"),
    ("name.lowerAscii() == 'x'", "lowerAscii()"),
    ("max(1, 2) > 1", "max()"),
    ("size(items) > 0 && items.sortBy(x, x)[0] == 1", "sortBy()"),
])
def test_a_function_cel_does_not_have_is_refused_naming_the_place(source, unknown):
    with pytest.raises(ExpressionError) as refused:
        compile_expression(source, "deal › stage review › condition")
    message = str(refused.value)
    assert "deal › stage review › condition" in message and unknown in message
    assert "does not have" in message and "startsWith" in message  # says what there is


def test_a_field_named_like_a_function_is_not_a_call():
    compile_expression("record.size > 3 && record.join == 'x'", "a place")


@pytest.mark.django_db
def test_activation_check_refuses_an_unknown_function_in_a_step_condition():
    noop_flow("calc")
    orch = orchestration([{"name": "one", "steps": [
        bg("a", "calc", entry={"condition": "['x'].join('') == 'x'"})]}])
    problems = validate_orchestration(orch)
    assert any("join()" in problem and "one" in problem for problem in map(str, problems)), problems
