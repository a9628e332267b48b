"""Dry run: walk an orchestration's path in memory and say what a run would do.

``simulate(orchestration, record=None, inputs=None, outputs=None)`` follows
the engine's rules (``orchestration/engine.py``) over a ``Plan`` without
touching the database:

* a stage starts every step whose entry is ``stage_start``; the steps that
  started together form a *group* (they run in parallel). Each step
  "completes" at once with the outputs given for it (missing: ``{}``), and
  the next group is what can start then: ``after`` steps whose steps have all
  completed, condition steps whose condition now holds;
* a stage with an exit condition ends as soon as it holds (steps not started
  are discontinued); without one it ends when nothing more can start. A
  stage whose exit condition never holds would wait: the dry run says so and
  stops;
* re-entering a stage forgets its steps' earlier outputs until they complete
  again, as in a real run;
* a decision takes the first outcome whose condition holds, else its default;
* entering stages more than ``max_stage_visits`` times stops the walk, as it
  would put a real run in error;
* the inputs are checked and cleaned as a launch cleans them, and every
  expression a real run evaluates is evaluated: a starting step's input
  mapping (then checked against its flow's inputs), its assignee and record
  expressions and its exit condition (one that holds at once ends the step
  with no outputs, as in a run). The first failure stops the walk with its
  place. A missing key that only comes from what the dry run made up (no
  record given, a step completing with no outputs given) is noted on the
  step instead: with real data it may be there.

``outputs`` maps a step name to its outputs: a dict, or a list of dicts used
one per visit of the step (the last one repeats), so a loop can be walked
through "rework, then approve". Expressions see the same names as in a run
(``record``, ``inputs``, ``steps``, ``run``, ``now``); with no record,
``record`` is an empty map, so conditions on it are false.

Nothing is stored: evaluation flows run in memory, and the caller
(``simulate_orchestration``, the admin) wraps the walk in a transaction that
is rolled back anyway.
"""
import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from flows.compiled import FlowSpec
from flows.expressions import ExpressionError, evaluate, evaluate_condition, to_json
from flows.runtime import evaluate_flow
from flows.values import check_inputs, check_variables

from .models import END, Orchestration
from .plan import Plan
from .records import RecordError, model_label, record_map, resolve_record_ref


class SimulationError(Exception):
    pass


@dataclass
class SimStep:
    name: str
    label: str
    type: str
    group: int
    detail: str
    outputs: dict
    notes: list = field(default_factory=list)  # what could not be evaluated without the data a run has


@dataclass
class SimStage:
    name: str
    label: str
    visit: int
    steps: list = field(default_factory=list)
    not_started: list = field(default_factory=list)  # (step name, reason)
    exit: str = ""
    goes_to: str = ""
    kind: str = "stage"

    @property
    def groups(self):
        grouped = {}
        for step in self.steps:
            grouped.setdefault(step.group, []).append(step)
        return [grouped[k] for k in sorted(grouped)]


@dataclass
class SimDecision:
    name: str
    label: str
    outcome: str
    condition: str
    goes_to: str
    kind: str = "decision"


@dataclass
class Simulation:
    api_name: str
    version: int
    status: str
    record_ref: str
    inputs: dict
    given: list
    entries: list = field(default_factory=list)
    result: str = ""  # completed | stopped | error
    message: str = ""

    @property
    def path(self):
        """Element names in the order they were entered, then "end" if the run would complete."""
        names = [e.name for e in self.entries]
        return names + ([END] if self.result == "completed" else [])

    @property
    def stage_order(self):
        return [e.name for e in self.entries if e.kind == "stage"]

    @property
    def decisions(self):
        return [(e.name, e.outcome, e.goes_to) for e in self.entries if e.kind == "decision"]

    def state(self):
        """Diagram colouring (``orchestration.diagram``) for the walk: where it went."""
        elements, steps, outcomes, visits = {}, {}, {}, {}
        for entry in self.entries:
            elements[entry.name] = "done"
            if entry.kind == "decision":
                outcomes[entry.name] = entry.outcome
            else:
                visits[entry.name] = entry.visit
                for step in entry.steps:
                    steps[step.name] = "done"
                for name, _ in entry.not_started:
                    steps[name] = "skipped"
        if self.result == "completed":
            elements[END] = "done"
        elif self.entries:
            elements[self.entries[-1].name] = "error"
        return {"elements": elements, "steps": steps, "outcomes": outcomes, "visits": visits}

    def lines(self):
        out = [
            f"Dry run of {self.api_name} v{self.version} ({self.status}); nothing is stored.",
            f"Record: {self.record_ref or 'none'}   Inputs: {json.dumps(self.inputs, sort_keys=True)}",
            f"Outputs given for: {', '.join(self.given) or 'no step (every step completes with no outputs)'}",
            "",
        ]
        for number, entry in enumerate(self.entries, 1):
            if entry.kind == "decision":
                out.append(f"{number:>3}. Decision {entry.name} — {entry.label}")
                why = f" ({entry.condition})" if entry.condition else ""
                out.append(f"       takes {entry.outcome}{why} → {entry.goes_to}")
                continue
            visit = f" (visit {entry.visit})" if entry.visit > 1 else ""
            out.append(f"{number:>3}. Stage {entry.name} — {entry.label}{visit}")
            for group_number, group in enumerate(entry.groups, 1):
                together = " (in parallel)" if len(group) > 1 else ""
                out.append(f"       group {group_number}{together}:")
                for step in group:
                    out.append(f"         - {step.name} [{step.detail}]")
                    if step.outputs:
                        out.append(f"             outputs {json.dumps(step.outputs, sort_keys=True, default=str)}")
                    for note in step.notes:
                        out.append(f"             not evaluated: {note}")
            for name, reason in entry.not_started:
                out.append(f"         × {name} does not start: {reason}")
            if entry.exit:
                out.append(f"       {entry.exit}")
            if entry.goes_to:
                out.append(f"       → {entry.goes_to}")
        out.append("")
        if self.result == "completed":
            stages = len(self.stage_order)
            out.append(f"End: the run would complete after {stages} stage visit{'s' if stages != 1 else ''}.")
        else:
            out.append(f"{'Stopped' if self.result == 'stopped' else 'Error'}: {self.message}")
        return out

    def text(self):
        return "\n".join(self.lines())


def _step_detail(step):
    parts = [step.type]
    if step.is_interactive:
        if step.assignee_type == "expr":
            parts.append(f"assignee = {step.assignee}")
        elif step.assignee:
            parts.append(f"{step.assignee_type}:{step.assignee}")
        if step.due_in:
            parts.append(f"due in {step.due_in}")
    if step.entry == "after":
        parts.append("after " + ", ".join(step.after))
    elif step.entry_condition:
        parts.append("when " + (step.entry_condition.expression or f"flow {step.entry_condition.flow}"))
    if step.is_child_orchestration:
        parts.append(f"runs orchestration {step.child_orchestration} (its outputs: as given)")
    elif step.is_wait:
        if step.wait_event:
            parts.append(f"waits for event {step.wait_event}" + (
                f" (timeout {step.wait_timeout}, then {step.on_timeout or 'complete'})" if step.wait_timeout else ""))
        else:
            parts.append(f"waits for {step.wait_for}" if step.wait_for else f"waits until {step.wait_until}")
    else:
        parts.append(f"flow {step.flow}")
    return "; ".join(parts)


class _Walk:
    def __init__(self, plan, record, inputs, outputs, now, errors=None, timeouts=(), instances=None):
        self.plan = plan
        self.record_value = (record_map(record) if record is not None else None) or {}
        # Whether the walk stands in for data a run would have (no record; a
        # step's outputs not given): a missing key may then be the dry run's.
        self.made_up = record is None
        self.inputs = inputs or {}
        self.outputs = outputs or {}
        self.now = now or timezone.now()
        self.completed = {}  # step name → outputs (latest visit)
        self.errors = dict(errors or {})  # step name → the error it fails with (a chosen failure)
        self.timeouts = set(timeouts or ())  # wait steps whose timer fires (else: their event arrives)
        self.instances = dict(instances or {})  # multi-instance step name → how many of its instances complete
        self.failed = {}  # step name → {"message", "element"} of a step that failed (read on an error path)
        self.step_visits = {}
        self.stage_visits = {}
        self.record_ref = f"{model_label(record)}:{record.pk}" if record is not None else ""

    def scope(self):
        return {
            "record": self.record_value,
            "record_prior": None,
            "inputs": self.inputs,
            "steps": {**{name: {"status": "error", "outputs": {}, "error": why} for name, why in self.failed.items()},
                      **{name: {"status": "completed", "outputs": outs} for name, outs in self.completed.items()}},
            "run": {"id": 0, "started_at": self.now, "started_by": None,
                    "orchestration": self.plan.api_name, "version": self.plan.version},
            "now": self.now,
        }

    def holds(self, condition, place):
        scope = self.scope()
        if condition.expression:
            return evaluate_condition(condition.expression, scope, place)
        flow_inputs = {n: evaluate(e, scope, f"{place} › inputs.{n}") for n, e in condition.flow_inputs.items()}
        return bool(evaluate_flow(condition.flow, flow_inputs))

    def outputs_for(self, step_name):
        if step_name not in self.outputs:
            self.made_up = True
        given = self.outputs.get(step_name, {})
        visit = self.step_visits.get(step_name, 0)
        self.step_visits[step_name] = visit + 1
        if isinstance(given, list):
            if not given:
                return {}
            given = given[min(visit, len(given) - 1)]
        return dict(given or {})

    def place(self, *parts):
        return " › ".join([self.plan.api_name, *[p for p in parts if p]])

    def value(self, source, scope, place, notes):
        """Evaluate ``source`` as a run would; (True, value), or (False, None) after noting a made-up miss."""
        try:
            return True, evaluate(source, scope, place)
        except ExpressionError as exc:
            if exc.missing_key and self.made_up:
                notes.append(f"{place}: {exc.detail}")
                return False, None
            raise

    def start_step(self, element, step, extra=None):
        """What a run evaluates when ``step`` starts (``steps.prepare_step``). Returns notes, or raises.

        ``extra``: an instance's ``item`` and ``index``."""
        place = self.place(element.name, step.name)
        scope = {**self.scope(), **(extra or {})}
        notes, inputs, complete = [], {}, True
        for name, expression in step.inputs.items():
            ok, value = self.value(expression, scope, f"{place} › inputs.{name}", notes)
            complete = complete and ok
            if ok:
                inputs[name] = to_json(value)
        if complete and step.flow:
            try:
                spec = FlowSpec.active(step.flow)
            except LookupError as exc:
                raise ExpressionError(str(exc), place) from None
            _, errors = check_inputs(spec, inputs)
            if errors:
                raise ExpressionError("; ".join(f"inputs.{n}: {m}" for n, m in errors.items()), place)
        if step.is_interactive and step.assignee_type == "expr" and step.assignee:
            self.value(step.assignee, scope, f"{place} › assignee", notes)
        if step.is_interactive and step.record:
            self.value(step.record, scope, f"{place} › record", notes)
        return notes

    def run_stage(self, element, sim):
        visit = self.stage_visits.get(element.name, 0) + 1
        self.stage_visits[element.name] = visit
        entry = SimStage(element.name, element.label, visit)
        sim.entries.append(entry)
        for step in element.steps:  # a new visit: earlier outputs of its steps are gone
            self.completed.pop(step.name, None)
        waiting = [s for s in element.steps]
        group = 0
        while True:
            ready = []
            for step in waiting:
                if step.entry == "stage_start":
                    ready.append(step)
                elif step.entry == "after":
                    names_in_stage = {s.name for s in element.steps}
                    if all(n in self.completed for n in step.after if n in names_in_stage):
                        ready.append(step)
                elif step.entry_condition and self.holds(step.entry_condition, self.place(element.name, step.name, "entry")):
                    ready.append(step)
            if ready:
                group += 1
                for step in ready:
                    waiting.remove(step)
                    if step.is_multi_instance:
                        self.run_instances(element, step, entry, group)
                        continue
                    notes = self.start_step(element, step)
                    if (step.is_wait and step.name in self.timeouts and step.wait_event and step.wait_timeout
                            and step.on_timeout == "error"):
                        self.errors.setdefault(step.name, f"no event {step.wait_event!r} came within "
                                                          f"{step.wait_timeout} (on_timeout: error)")
                    if step.name in self.errors:
                        failed = self.fail_step(element, step, entry, group, notes, sim, waiting)
                        if failed is not None:
                            return failed
                    outs = to_json(self.outputs_for(step.name))
                    detail = _step_detail(step)
                    if step.is_wait:
                        outs, detail = self.wait_outcome(step, outs, detail)
                    if step.exit_condition and self.holds(step.exit_condition, self.place(element.name, step.name, "exit")):
                        outs, detail = {}, detail + "; ended by its exit condition at once (no outputs)"
                    entry.steps.append(SimStep(step.name, step.label, step.type, group, detail, outs, notes))
                    self.completed[step.name] = outs
            if element.exit_condition:
                if self.holds(element.exit_condition, self.place(element.name, "exit")):
                    cond = element.exit_condition.expression or f"flow {element.exit_condition.flow}"
                    entry.exit = f"exit condition holds ({cond})"
                    for step in waiting:
                        entry.not_started.append((step.name, "discontinued when the stage's exit condition held"))
                    return True
                if not ready:
                    cond = element.exit_condition.expression or f"flow {element.exit_condition.flow}"
                    for step in waiting:
                        entry.not_started.append((step.name, self._why_waiting(step)))
                    sim.result, sim.message = "stopped", (
                        f"stage {element.name} would wait: its exit condition ({cond}) does not hold "
                        "with these outputs and nothing else can start")
                    return False
            elif not ready:
                for step in waiting:
                    entry.not_started.append((step.name, self._why_waiting(step)))
                return True

    def run_instances(self, element, step, entry, group):
        """A multi-instance step: one start per element; as many complete as chosen (``--instances STEP=N``),
        by default as many as its completion rule needs; the rest are withdrawn."""
        import math

        key = "for_each" if step.for_each else "assignees"
        place = self.place(element.name, step.name)
        notes = []
        ok, elements = self.value(step.for_each or step.assignees, self.scope(), f"{place} › {key}", notes)
        if ok and not isinstance(elements, list):
            raise ExpressionError(f"{step.for_each or step.assignees!r} gave {type(elements).__name__} "
                                  f"{elements!r}; expected a list", f"{place} › {key}")
        elements = elements if ok else [None]
        for index, item in enumerate(elements[:20]):
            notes += self.start_step(element, step, {"item": item, "index": index})
        total = len(elements)
        completion = step.completion or "all"
        needed = {"all": total, "any": min(1, total)}.get(completion) if isinstance(completion, str) else None
        if needed is None:
            (rule, value), = completion.items()
            needed = (value if rule == "at_least" else math.ceil(value * total / 100) if rule == "percent"
                      else total)
        done = max(0, min(int(self.instances.get(step.name, needed)), total))
        each = to_json(self.outputs_for(step.name))
        outs = [each] * done + [None] * (total - done)
        rule = completion if isinstance(completion, str) else ", ".join(f"{k} {v}" for k, v in completion.items())
        detail = (f"{_step_detail(step)}; ×{total} instances ({rule}): {done} complete"
                  + (f", {total - done} withdrawn" if total - done else ""))
        entry.steps.append(SimStep(step.name, step.label, step.type, group, detail, outs, notes))
        self.completed[step.name] = outs

    def fail_step(self, element, step, entry, group, notes, sim, waiting):
        """A step chosen to fail (after its retries): the stage's error path, or the run stops in error."""
        message = str(self.errors[step.name] or "it fails")
        entry.steps.append(SimStep(step.name, step.label, step.type, group, f"fails: {message}", {}, notes))
        self.failed[step.name] = {"message": message, "element": self.place(element.name, step.name)}
        for other in waiting:
            entry.not_started.append((other.name, "discontinued: the stage ended in error"))
        if element.on_error_goto:
            entry.exit = f"step {step.name} failed: the stage's error path goes to {element.on_error_goto}"
            return element.on_error_goto
        sim.result, sim.message = "error", f"step {step.name} fails ({message}); the run would stop in error here"
        return False

    def wait_outcome(self, step, outs, detail):
        """A wait step's chosen outcome: its event arrives (with the outputs given), or its timer fires."""
        if not step.wait_event:
            return {}, detail + "; its timer fires"
        if step.name in self.timeouts and step.wait_timeout:
            return {"timed_out": True}, detail + "; no event: its timeout fires (on_timeout: complete)"
        return outs, detail + f"; event {step.wait_event} arrives with the outputs given"

    def _why_waiting(self, step):
        if step.entry == "after":
            return "waits for " + ", ".join(n for n in step.after if n not in self.completed)
        return "its entry condition is false"

    def decide(self, element, sim):
        for outcome in element.outcomes:
            if outcome.condition and self.holds(outcome.condition, self.place(element.name, f"outcome {outcome.name}")):
                cond = outcome.condition.expression or f"flow {outcome.condition.flow}"
                sim.entries.append(SimDecision(element.name, element.label, outcome.name, cond, outcome.goto or END))
                return outcome.goto or END
        goto = element.default_goto or END
        sim.entries.append(SimDecision(element.name, element.label, "default", "no outcome holds", goto))
        return goto


def simulate(orchestration, *, record=None, inputs=None, outputs=None, now=None, errors=None, timeouts=(),
             instances=None):
    """Walk the path of ``orchestration`` (a model instance, id or Plan) in memory. Returns a ``Simulation``.

    ``errors`` maps a step name to the error it fails with (after its retries), to walk a stage's error path.
    ``timeouts`` names wait steps whose timer fires: an event wait then times out (``on_timeout``);
    other event waits receive their event, with the outputs given for them as its data.
    """
    plan = orchestration if isinstance(orchestration, Plan) else Plan.from_model(_orch(orchestration))
    status = getattr(orchestration, "status", "") if not isinstance(orchestration, (int, Plan)) else ""
    # The inputs as a launch would clean them (types converted, defaults applied).
    cleaned, input_errors = check_variables(list(plan.inputs), inputs or {})
    walk = _Walk(plan, record, cleaned if not input_errors else inputs, outputs, now, errors, timeouts, instances)
    sim = Simulation(plan.api_name, plan.version, status or "version", walk.record_ref, dict(inputs or {}),
                     sorted(outputs or {}))
    if input_errors:
        sim.result, sim.message = "error", "a launch would refuse these inputs: " + "; ".join(
            f"inputs.{name}: {message}" for name, message in input_errors.items())
        return sim
    name = plan.first
    total_visits = 0
    hops = 0
    max_hops = (plan.max_stage_visits + 1) * (len(plan.elements) + 1)
    try:
        while True:
            hops += 1
            if name == END:
                sim.result = "completed"
                return sim
            element = plan.by_name.get(name)
            if element is None:
                sim.result, sim.message = "error", f"the path names {name!r}, which is not an element of this version"
                return sim
            if hops > max_hops:
                sim.result, sim.message = "stopped", "decisions go round without entering a stage"
                return sim
            if element.is_decision:
                name = walk.decide(element, sim)
                continue
            if total_visits >= plan.max_stage_visits:
                sim.result, sim.message = "stopped", (
                    f"entering {element.name} would exceed max_stage_visits ({plan.max_stage_visits}); "
                    "a real run would stop in error here (a loop that does not end with these outputs)")
                return sim
            total_visits += 1
            went = walk.run_stage(element, sim)
            if went is False:
                return sim
            name = went if isinstance(went, str) else plan.following(element)
            sim.entries[-1].goes_to = name
    except ExpressionError as exc:
        sim.result, sim.message = "error", f"{exc} (a real run would stop in error here)"
        return sim
    except Exception as exc:  # an evaluation flow that fails
        sim.result, sim.message = "error", f"{exc.__class__.__name__}: {exc}"
        return sim


def _orch(value):
    return value if isinstance(value, Orchestration) else Orchestration.objects.get(pk=value)


def parse_outputs(pairs):
    """``["step=JSON", ...]`` → {step: dict or list of dicts}; SimulationError naming the bad one."""
    result = {}
    for pair in pairs or ():
        pair = pair.strip()
        if not pair:
            continue
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SimulationError(f"{pair!r}: write STEP=JSON, e.g. review={{\"decision\": \"approve\"}}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SimulationError(f"outputs of {name}: not JSON ({exc.msg}, column {exc.colno})")
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, dict) for v in items):
            raise SimulationError(f"outputs of {name}: give a JSON object, or a list of objects (one per visit)")
        result[name] = value
    return result


def parse_errors(pairs):
    """``["step=message", ...]`` → {step: message}; SimulationError naming the bad one."""
    result = {}
    for pair in pairs or ():
        name, sep, message = pair.strip().partition("=")
        if not sep or not name.strip():
            raise SimulationError(f"{pair!r}: write STEP=MESSAGE, e.g. charge=\"card declined\"")
        result[name.strip()] = message.strip() or "it fails"
    return result


def parse_instances(pairs):
    """``["step=N", ...]`` → {step: N}: how many instances of a multi-instance step complete."""
    result = {}
    for pair in pairs or ():
        name, sep, text = pair.strip().partition("=")
        if not sep or not name.strip() or not text.strip().isdigit():
            raise SimulationError(f"{pair!r}: write STEP=N (how many instances complete), e.g. approve=3")
        result[name.strip()] = int(text)
    return result


def parse_inputs(text):
    if not (text or "").strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SimulationError(f"inputs: not JSON ({exc.msg}, column {exc.colno})")
    if not isinstance(value, dict):
        raise SimulationError("inputs: give a JSON object")
    return value


def find_version(api_name, version=None):
    """The version to simulate: the given number, else the active one, else the latest."""
    versions = Orchestration.objects.filter(api_name=api_name)
    if version is not None:
        found = versions.filter(version=version).first()
        if found is None:
            raise SimulationError(f"{api_name} has no version {version}")
        return found
    found = versions.filter(status="active").first() or versions.order_by("-version").first()
    if found is None:
        raise SimulationError(f"no orchestration named {api_name!r}")
    return found


def dry_run(orchestration, *, record_ref=None, inputs=None, outputs=None, errors=None, timeouts=(), instances=None):
    """``simulate`` inside a transaction that is always rolled back; the record given as "model:pk"."""
    with transaction.atomic():
        try:
            record = resolve_record_ref(record_ref) if record_ref else None
        except RecordError as exc:
            raise SimulationError(f"record: {' '.join(exc.messages)}")
        if record_ref and record is None:
            raise SimulationError(f"record: {record_ref} does not exist")
        result = simulate(orchestration, record=record, inputs=inputs, outputs=outputs, errors=errors,
                          timeouts=timeouts, instances=instances)
        transaction.set_rollback(True)
    return result
