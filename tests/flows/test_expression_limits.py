"""CEL limits (issue 12, point 3): no expression can take a process down or stall other requests.

Expressions are checked for length, depth and size before the binding sees
them (at activation and import, and before each evaluation); evaluations run
in a child process with a memory cap and a deadline, and their results are
bounded. Attacks that crashed the process before run here in a subprocess,
so a regression fails the test instead of killing pytest.
"""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from flows.expressions import ExpressionError, compile_expression, evaluate, evaluate_condition
from flows.runtime import FlowError, run_flow
from flows.validation import validate_flow
from orchestration import engine, worker
from orchestration.lifecycle import ActivationRefused, activate
from orchestration.models import StepRun
from orchestration.validation import validate_orchestration
from tests.engine_builders import bg, noop_flow, orchestration
from tests.factories import make_flow, make_orchestration, stage, step, var
from tests.engine_builders import Recorder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUM_20000 = " + ".join(["1"] * 20000)
SUM_10000 = " + ".join(["1"] * 10000)
DIGITS = "[" + ", ".join(str(i) for i in range(10)) + "]"


def nested_maps(depth):
    """``depth`` nested ``.map()`` over ten numbers: 10**depth iterations."""
    source = "1"
    for level in range(depth):
        source = f"{DIGITS}.map(v{level}, {source})"
    return source


# A loop that doubles a text: ``times`` doublings of "ab".
def doubling_elements(times):
    return [
        {"type": "assign", "set": {"s": '"ab"', "i": "0.0"}},
        {"type": "assign", "name": "twice", "set": {"s": "s + s", "i": "i + 1.0"}},
        {"type": "decision", "name": "again", "outcomes": [{"condition": f"i < {times}.0", "goto": "twice"}]},
        {"type": "assign", "set": {"n": "double(size(s))"}},
    ]


def run_isolated(code, settings=None, timeout=120):
    """Run ``code`` in a fresh Python with ``flows.expressions`` configured by ``settings``; (returncode, stdout).

    Its address space is capped at 2 GB, so an attack that would grow
    without bound ends in a failed allocation quickly instead of taking the
    machine's memory.
    """
    preamble = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, resource.RLIM_INFINITY))
        sys.path.insert(0, {REPO!r})
        from django.conf import settings
        settings.configure(**{settings or {}!r})
        from flows.expressions import ExpressionError, evaluate
    """)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return done.returncode, done.stdout


# ---------------------------------------------------------------------------
# Compile time: length, depth, nodes, refused with the place
# ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_20000_term_sum_is_refused_at_activation_naming_the_place():
    flow = make_flow(api_name="adder", status="draft", elements=[{"type": "assign", "name": "total", "set": {"x": SUM_20000}}])
    with pytest.raises(ActivationRefused) as refused:
        activate(flow)
    text = "\n".join(str(p) for p in refused.value.problems)
    assert "adder › elements[0] (total).set.x" in text
    assert "79,997 characters long; the limit is 4,000 (setting BATON_CEL_MAX_LENGTH)" in text
    flow.refresh_from_db()
    assert flow.status == "draft"  # stored state as it was


@pytest.mark.django_db
def test_a_step_input_mapping_over_a_limit_is_refused_at_activation_naming_the_place():
    make_flow("v_work", inputs=[var("x", required=True)])
    orch = make_orchestration("v_limits", path=[stage("one", step("a", "v_work", inputs={"x": SUM_20000}))])
    problems = [str(p) for p in validate_orchestration(orch)]
    assert any("v_limits › one › a › inputs.x" in p and "BATON_CEL_MAX_LENGTH" in p for p in problems), problems


@pytest.mark.django_db
def test_the_10000_term_sum_is_refused_too(settings):
    # The binding evaluates it (0.24 s) but it is five times the length limit;
    # raising the length alone does not let it through: its depth is 10,000.
    with pytest.raises(ExpressionError, match="BATON_CEL_MAX_LENGTH"):
        compile_expression(SUM_10000, "here")
    settings.BATON_CEL_MAX_LENGTH = 100_000
    settings.BATON_CEL_MAX_NODES = 100_000
    with pytest.raises(ExpressionError, match=r"here: .*nests 10000 levels deep; the limit is 32 \(setting BATON_CEL_MAX_DEPTH\)"):
        compile_expression(SUM_10000, "here")


def test_depth_and_size_limits_name_their_setting():
    with pytest.raises(ExpressionError, match=r"here: .*nests 40 levels deep.*BATON_CEL_MAX_DEPTH"):
        compile_expression(" + ".join(["1"] * 40), "here")
    with pytest.raises(ExpressionError, match=r"brackets nest 40 deep.*BATON_CEL_MAX_DEPTH"):
        compile_expression("(" * 40 + "1" + ")" * 40, "here")
    with pytest.raises(ExpressionError, match=r"more than 1,000 parts.*BATON_CEL_MAX_NODES"):
        compile_expression("[" + ",".join(["1"] * 1500) + "]", "here")


def test_what_the_cel_spec_requires_every_implementation_to_accept_still_compiles():
    # CEL language definition: 32 terms of || or && in a row, 24 arithmetic
    # operators of one precedence, 12 nested calls, 12 selections, 12 indexes.
    scope = {"x": False, "m": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": 1}}}}}}}}}}}}}
    assert evaluate(" || ".join(["x"] * 32), scope) is False
    assert evaluate(" && ".join(["!x"] * 32), scope) is True
    assert evaluate(" + ".join(["1"] * 25), scope) == 25
    assert evaluate("string(" * 12 + "1" + ")" * 12, scope) == "1"
    assert evaluate("m" + ".a" * 12, scope) == 1
    assert evaluate("m" + '["a"]' * 12, scope) == 1
    assert evaluate('record.email.endsWith("@acc.example") && record.amount > 1000.0',
                    {"record": {"email": "ann@acc.example", "amount": 1500.0}}) is True


def test_ordinary_expressions_keep_their_meaning():
    assert evaluate("amount * 2.0", {"amount": 21.0}) == 42.0
    assert evaluate("has(r.manager) ? r.manager : 0", {"r": {"manager": 7}}) == 7
    assert evaluate("has(r.manager)", {"r": {}}) is False
    with pytest.raises(ExpressionError) as missing:
        evaluate("steps.review.outputs.ok", {"steps": {}}, "gate")
    assert missing.value.missing_key and str(missing.value).startswith("gate: ")
    assert evaluate_condition("steps.review.outputs.ok", {"steps": {}}) is False
    with pytest.raises(ExpressionError, match="does not compile"):
        evaluate("1 +", {})
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("1 / 0", {})
    # A text of exactly the limit passes; one more character does not.
    assert len(evaluate("s", {"s": "x" * 1_000_000})) == 1_000_000
    with pytest.raises(ExpressionError, match=r"1,000,001 characters; the limit is 1,000,000 \(setting BATON_CEL_MAX_STRING\)"):
        evaluate("s + 'x'", {"s": "x" * 1_000_000})


# ---------------------------------------------------------------------------
# Run time: attacks end in an error, the process survives
# ---------------------------------------------------------------------------

def test_the_20000_term_sum_forced_past_the_limits_kills_only_the_evaluator():
    # Allowing it on purpose reaches the binding, which overflows its stack:
    # the evaluator process dies, this one reports it and goes on.
    code, out = run_isolated("""
        try:
            evaluate(" + ".join(["1"] * 20000), {}, "forced")
        except ExpressionError as exc:
            print("ERROR", exc)
        print("after", evaluate("1 + 1", {}))
    """, settings={"BATON_CEL_MAX_LENGTH": 10 ** 6, "BATON_CEL_MAX_DEPTH": 10 ** 6, "BATON_CEL_MAX_NODES": 10 ** 6,
                   # On a busy machine the 1 s time limit could stop it before the stack overflows;
                   # this test is about the crash, so time is not the limit here.
                   "BATON_CEL_MAX_SECONDS": 60})
    assert code == 0, out
    assert "ERROR forced: " in out and "the evaluator died of SIG" in out and "BATON_CEL_MAX_MEMORY_MB" in out
    assert "after 2" in out


def test_doubling_a_text_forty_times_stops_at_the_limit_with_an_error():
    code, out = run_isolated("""
        s = "ab"
        try:
            for i in range(40):
                s = evaluate("s + s", {"s": s}, "doubling")
        except ExpressionError as exc:
            print("ERROR after", i, exc)
    """)
    assert code == 0, out
    assert "ERROR after 18 doubling: " in out and "(setting BATON_CEL_MAX_STRING)" in out


def test_doubling_past_the_memory_cap_kills_only_the_evaluator():
    # With the size limit lifted on purpose, the evaluator's memory cap ends it.
    code, out = run_isolated("""
        s = "ab"
        try:
            for i in range(40):
                s = evaluate("s + s + s + s", {"s": s}, "doubling")
        except ExpressionError as exc:
            print("ERROR", exc)
        print("after", evaluate("'still' + ' here'", {}))
    """, settings={"BATON_CEL_MAX_STRING": 10 ** 12, "BATON_CEL_MAX_MEMORY_MB": 256,
                   # A deadline far away, so the memory cap is what stops it on a loaded machine too.
                   "BATON_CEL_MAX_SECONDS": 60})
    assert code == 0, out
    assert "ERROR doubling: " in out and "BATON_CEL_MAX_MEMORY_MB" in out
    assert "after still here" in out


def test_eight_nested_maps_are_stopped_at_the_deadline():
    code, out = run_isolated(f"""
        try:
            evaluate({nested_maps(8)!r}, {{}}, "maps")
        except ExpressionError as exc:
            print("ERROR", exc)
        print("after", evaluate("[1, 2].map(x, x * 2)", {{}}))
    """, settings={"BATON_CEL_MAX_SECONDS": 0.5}, timeout=60)
    assert code == 0, out
    assert "ERROR maps: " in out and "ran longer than 0.5 s and was stopped (setting BATON_CEL_MAX_SECONDS)" in out
    assert "after [2, 4]" in out


def test_a_long_evaluation_does_not_stall_other_threads(settings):
    """While one thread's expression runs to the deadline, another thread keeps running."""
    settings.BATON_CEL_MAX_SECONDS = 0.5
    evaluate("1", {})  # an evaluator is ready
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        before = len(ticks)
        with pytest.raises(ExpressionError, match="BATON_CEL_MAX_SECONDS"):
            evaluate(nested_maps(6), {}, "maps")
        during = len(ticks) - before
    finally:
        stop.set()
        ticker.join()
    assert during > 0


def test_a_backtracking_regular_expression_is_stopped_at_the_deadline(settings):
    """A loop-free expression is not always cheap: ``matches()`` with a pattern that backtracks over a
    long input ran 14 s in the calling process (holding the interpreter lock, so other requests
    stalled). It goes to the bounded evaluator like the macros, and stops at the deadline."""
    settings.BATON_CEL_MAX_SECONDS = 0.5
    scope = {"inputs": {"s": "a" * 60_000}}
    evaluate("[1].map(x, x)", {}, "warm-up")  # an evaluator process is running: its start is not timed below
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="BATON_CEL_MAX_SECONDS"):
        evaluate('inputs.s.matches("(?:.{0,100}){0,100}b")', scope, "mapping")
    assert time.monotonic() - started < 5
    assert evaluate('inputs.s.matches("^a+$")', scope) is True  # an ordinary pattern still answers


def test_a_binding_panic_is_an_ordinary_error():
    from flows import cel_worker

    class PanicException(BaseException):  # what the binding raises: not an Exception
        pass

    class Program:
        def execute(self, scope):
            raise PanicException("capacity overflow")

    class Binding:
        @staticmethod
        def compile(source):
            return Program()

    reply = cel_worker.answer(Binding, {}, ("eval", "s + s", {"s": "ab"}, 100, 100))
    assert reply == ("error", "capacity overflow")


def test_concurrent_evaluations_each_get_their_answer():
    results = {}

    def work(n):
        results[n] = [evaluate("n * 2.0", {"n": float(n)}) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [n * 2.0] * 20 for n in range(4)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_evaluator():
    assert evaluate("1 + 1", {}) == 2  # the parent's pool has an evaluator
    pid = os.fork()
    if pid == 0:
        try:
            ok = evaluate("20 + 1", {}) == 21
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert evaluate("2 + 2", {}) == 4  # and the parent's is undisturbed


# ---------------------------------------------------------------------------
# Through flows and the engine: a step that blows a limit ends in error
# ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_flow_doubling_a_text_fails_with_the_limit(settings):
    flow = make_flow(elements=doubling_elements(22), outputs=[var("n", "number")])
    with pytest.raises(FlowError, match=r"element #2 'twice' \(assign\): set s: .*BATON_CEL_MAX_STRING"):
        run_flow(flow, {})
    settings.BATON_CEL_MAX_STRING = 10_000_000  # allowed on purpose
    assert run_flow(flow, {}) == {"n": float(2 ** 23)}


@pytest.mark.django_db
def test_the_elements_a_flow_runs_are_bounded_by_a_setting(settings):
    settings.BATON_FLOW_MAX_ELEMENTS = 50
    flow = make_flow(elements=doubling_elements(3) + [
        {"type": "decision", "name": "spin", "outcomes": [{"condition": "true", "goto": "spin"}]}])
    with pytest.raises(FlowError, match=r"ran more than 50 elements.*BATON_FLOW_MAX_ELEMENTS"):
        run_flow(flow, {})


@pytest.mark.django_db
def test_an_in_process_step_whose_flow_blows_a_limit_ends_in_error(settings):
    settings.BATON_STEP_EXECUTION = "in_process"
    noop_flow("doubler", elements=doubling_elements(22))
    orch = orchestration([{"name": "one", "steps": [bg("grow", "doubler")]}])
    run = engine.start_run(orch)
    step_run = StepRun.objects.get(run=run)
    assert step_run.status == "error"
    assert "set s: 's + s' failed: it built a text of" in step_run.error
    assert "BATON_CEL_MAX_STRING" in step_run.error
    run.refresh_from_db()
    assert run.status == "error"


@pytest.mark.django_db
def test_a_worker_step_whose_flow_runs_past_the_deadline_ends_in_error(settings):
    settings.BATON_CEL_MAX_SECONDS = 0.3
    noop_flow("mapper", elements=[{"type": "assign", "set": {"x": nested_maps(6)}}])
    orch = orchestration([{"name": "one", "steps": [bg("spin", "mapper", retries=0)]}])
    sent = Recorder()
    run = engine.start_run(orch, effects=sent)
    claimed = worker.claim(sent.sent[0], "task-1")
    assert claimed.status == "running"
    assert worker.execute_claimed(claimed) == "error"
    step_run = StepRun.objects.get(pk=claimed.pk)
    assert step_run.status == "error"
    assert "ran longer than 0.3 s and was stopped (setting BATON_CEL_MAX_SECONDS)" in step_run.error
    run.refresh_from_db()
    assert run.status == "error"


@pytest.mark.django_db
def test_a_step_input_mapping_that_blows_a_limit_ends_in_error_naming_the_place(settings):
    # The engine evaluates input mappings itself, before any flow runs.
    settings.BATON_CEL_MAX_SECONDS = 0.3
    noop_flow("takes", inputs=[{"name": "x", "type": "list"}])
    orch = orchestration([{"name": "one", "steps": [bg("a", "takes", inputs={"x": nested_maps(6)})]}],
                         api_name="mapping_limits")
    sent = Recorder()
    run = engine.start_run(orch, effects=sent)
    step_run = StepRun.objects.get(run=run)
    assert step_run.status == "error"
    assert "mapping_limits › one › a › inputs.x" in step_run.error
    assert "BATON_CEL_MAX_SECONDS" in step_run.error
    assert sent.sent == []  # nothing was queued
    run.refresh_from_db()
    assert run.status == "error"


@pytest.mark.django_db
def test_a_step_input_mapping_building_a_huge_list_ends_in_error(settings):
    settings.BATON_CEL_MAX_ITEMS = 1000
    noop_flow("takes_list", inputs=[{"name": "x", "type": "list"}])
    orch = orchestration([{"name": "one", "steps": [bg("a", "takes_list", inputs={"x": nested_maps(3)})]}])
    run = engine.start_run(orch, effects=Recorder())
    step_run = StepRun.objects.get(run=run)
    assert step_run.status == "error" and "BATON_CEL_MAX_ITEMS" in step_run.error


@pytest.mark.django_db
def test_validate_flow_reports_every_limit_with_its_place():
    flow = make_flow(api_name="limits", elements=[
        {"type": "assign", "name": "deep", "set": {"x": " + ".join(["1"] * 40)}},
        {"type": "send_email", "to": '"a@b.example"', "subject": "{!" + SUM_20000 + "}"},
    ])
    problems = [str(p) for p in validate_flow(flow)]
    assert any(p.startswith("limits › elements[0] (deep).set.x: ") and "BATON_CEL_MAX_DEPTH" in p for p in problems)
    assert any(p.startswith("limits › elements[1].subject: ") and "BATON_CEL_MAX_LENGTH" in p for p in problems)


@pytest.mark.django_db
def test_an_imported_definition_over_a_limit_is_refused_naming_the_place_and_nothing_is_stored():
    from flows.models import Flow
    from orchestration.definition_files import DefinitionFileError, import_document

    document = textwrap.dedent(f"""\
        flows:
          - api_name: big_sum
            type: autolaunched
            outputs: [{{name: total, type: number}}]
            elements:
              - {{type: assign, name: add, set: {{total: '{SUM_20000}'}}}}
    """)
    with pytest.raises(DefinitionFileError) as refused:
        import_document(document, activate=True)
    problems = [str(p) for p in refused.value.problems]
    assert any("big_sum › elements[0] (add).set.total" in p and "BATON_CEL_MAX_LENGTH" in p for p in problems), problems
    assert not Flow.objects.filter(api_name="big_sum").exists()
