"""The activation validator for orchestrations, and impact analysis for flows.

``validate_orchestration(orch)`` returns every ``Problem`` that keeps an
orchestration version from being activated (DESIGN §5); an empty list means
it may be activated. ``validate_flow`` (re-exported from
``flows.validation``) does the same for a flow version, and
``impact_of_flow_activation(flow)`` lists the active orchestrations that a
new flow version would break.

Places read ``orchestration › stage › step › what``, for example::

    acc_broken › two › ship › inputs.colour: steps.collect.outputs.flavour —
    flow acc_b_collect v1 has no output 'flavour' (has: colour)
"""
import re
from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.contrib.auth.models import Group

from flows.durations import parse_duration
from flows.expressions import evaluate, tokens
from flows.names import TYPE_NAMES, reads
from flows.models import VARIABLE_TYPES, Flow, FlowType
from flows.validation import Problem, check_expression, check_model, place_of, validate_flow  # noqa: F401
from flows.versioning import DefinitionStatus

from .models import (
    END, AssigneeType, Orchestration, StageExit, StageKind, StartType, StartWhen, Step, StepEntry, StepExit,
    StepType,
)
from .records import allowed_models, exposed_fields

# Where an expression sits decides what it may read.
START, VALUE, CONDITION, DECISION = "start", "value", "condition", "decision"

# The names a run's expressions see (DESIGN §3), and the keys of those that are fixed maps.
SCOPE_NAMES = ("inputs", "now", "record", "record_prior", "run", "steps")
RUN_KEYS = ("id", "orchestration", "started_at", "started_by", "version")
STEP_KEYS = ("outputs", "status", "instances", "completed_by", "error")
# A multi-instance step's own inputs, assignee and record also see its element;
# its completion condition sees its instances (DESIGN §10).
INSTANCE_NAMES = ("item", "index")
COMPLETION_NAMES = ("instances",)
# Where an orchestration's ``outputs`` are evaluated: when the run completes.
OUTPUT = "output"


# Names are stored in 100-character columns (Flow/Orchestration.api_name, Stage/Step.name, ...): SQLite
# would keep a longer one whole and PostgreSQL refuse it with a database error. The definition file
# schema (orchestration.definition_files.schema) accepts the same names.
NAME_MAX_LENGTH = 100
SLUG_NAME = re.compile(r"[-A-Za-z0-9_]{1,%d}" % NAME_MAX_LENGTH)
IDENTIFIER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,%d}" % (NAME_MAX_LENGTH - 1))
NAME_FORMS = {SLUG_NAME: "letters, digits, '-' and '_'", IDENTIFIER_NAME: "a letter or '_', then letters, digits or '_'"}


def shorten(text, limit):
    """``text`` as a message may quote it: cut at ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def short_name(name):
    """A name as a problem may quote it: cut at NAME_MAX_LENGTH (a longer one is refused anyway)."""
    return shorten(str(name), NAME_MAX_LENGTH)


def record_field_names(model):
    """The keys ``record`` has for a record of ``model`` (``orchestration.records.record_values``)."""
    names = {"id", "pk"}
    for field in model._meta.concrete_fields:
        names.add(field.attname)
        names.add(field.name)
    return names


def exposed_record_fields(model):
    """The keys ``record`` really has for a record of ``model``: its exposed fields
    (``orchestration.records.exposed_fields``: BATON_FLOW_MODELS choices, secret fields left out)."""
    try:
        return set(exposed_fields(model))
    except ImproperlyConfigured:
        return {"id", "pk"}  # the setting is reported on its own (check_flow_models)


def step_reads(source):
    """``(steps, outputs, computed)`` that ``source`` reads, in every spelling.

    ``steps.a.outputs.note``, ``steps["a"].outputs.note`` and
    ``steps.a.outputs["note"]`` are one read: ``steps`` is the set of step
    names read, ``outputs`` the ``(step, output)`` pairs. ``computed`` lists
    the paths indexed by a computed key (``steps[inputs.n]``), which no check
    can follow.
    """
    named, outputs, computed = set(), [], []
    for read in reads(source):
        path = read.path
        if path[0] != "steps":
            continue
        if len(path) > 1:
            named.add(path[1])
        if len(path) > 3 and path[2] == "outputs":
            if (path[1], path[3]) not in outputs:
                outputs.append((path[1], path[3]))
        elif read.indexed and (len(path) == 1 or (len(path) == 3 and path[2] == "outputs")):
            computed.append(read.text)
    return named, outputs, computed


def _top_level(toks, start, stop_texts):
    """Index of the first token in ``stop_texts`` at bracket depth 0 from ``start`` (ternaries nest), or None."""
    depth = ternary = 0
    for at in range(start, len(toks)):
        t = toks[at][1]
        if depth == 0:
            if t == ":" and ternary:
                ternary -= 1
                continue
            if t in stop_texts:
                return at
            if t == "?":
                ternary += 1
        if t in ("(", "[", "{", "[?"):
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
    return None


def _strip_parens(toks):
    """``toks`` without parentheses around the whole of it."""
    while len(toks) >= 2 and toks[0][1] == "(" and toks[-1][1] == ")":
        closing = None
        depth = 0
        for at, (_, t) in enumerate(toks):
            depth += t in ("(", "[", "{", "[?")
            depth -= t in (")", "]", "}")
            if depth == 0:
                closing = at
                break
        if closing != len(toks) - 1:
            break
        toks = toks[1:-1]
    return toks


def _has_guard(toks):
    """``(path, end)`` when ``toks`` opens with ``has(<path>)``: the tested path and the index after ``)``."""
    if len(toks) < 4 or toks[0][1] != "has" or toks[1][1] != "(":
        return None
    closing = _top_level(toks, 2, {")"})
    if closing is None:
        return None
    inner = reads(" ".join(t for _, t in toks[2:closing]))
    if len(inner) != 1 or " ".join(t for _, t in toks[2:closing]).count("(") or inner[0].indexed:
        return None
    return inner[0].path, closing + 1


def unguarded_output_reads(source):
    """The ``steps.X.outputs.Y`` paths ``source`` reads where a ``has()`` does not guard them.

    A read is guarded only in these shapes (one sound rule, simple to state):
    ``has(P) ? <may read P> : <does not read P>`` and
    ``has(P) && <may read P>`` (nothing else at the top level). The branches
    are checked the same way, so guards nest.
    """
    found = tokens(source or "")
    if any(kind == "other" for kind, _ in found):
        return set()
    return _unguarded(found)


def _output_path(path):
    if len(path) > 3 and path[0] == "steps" and path[2] == "outputs":
        return ("steps", path[1], "outputs", path[3])
    return None


def _guard_of(toks):
    """P when ``toks`` is ``has(P)`` or ``has(P) && …`` (no ``||`` or ``?`` at the top), else None."""
    toks = _strip_parens(toks)
    guard = _has_guard(toks)
    if guard is None:
        return None
    tested, after = guard
    if after == len(toks) or (toks[after][1] == "&&" and _top_level(toks, after + 1, {"||", "?"}) is None):
        return _output_path(tested) or tested
    return None


def _unguarded(toks):
    toks = _strip_parens(toks)
    question = _top_level(toks, 0, {"?"})
    colon = _top_level(toks, question + 1, {":"}) if question is not None else None
    if colon is not None:
        condition, then, otherwise = toks[:question], toks[question + 1:colon], toks[colon + 1:]
        tested = _guard_of(condition)
        return ((_unguarded(condition) | _unguarded(then)) - {tested}) | _unguarded(otherwise)
    tested = _guard_of(toks)
    if tested is not None and _has_guard(toks)[1] < len(toks):  # has(P) && rest
        return _unguarded(toks[_has_guard(toks)[1] + 1:]) - {tested}
    out = set()
    for read in reads(" ".join(t for _, t in toks)):
        output = _output_path(read.path)
        if output is not None and not read.in_has:
            out.add(output)
    return out


def reads_record(sources):
    """Whether any of the expression ``sources`` reads ``record`` (so a run needs one)."""
    return any(read.name == "record" for source in sources if isinstance(source, str) for read in reads(source))


class MayHaveFailed(str):
    """Why a step's outputs may be missing that a ``has()`` guard answers: its stage's error path."""


@dataclass
class Site:
    """One expression of an orchestration and where it sits."""

    place: str
    source: str
    kind: str  # START | VALUE | CONDITION | DECISION
    stage: object = None
    step: object = None
    merge: bool = False
    extra_names: tuple = ()  # names in scope here only (item, index, instances)


def _stages(orch):
    return list(orch.stages.prefetch_related("steps", "outcomes").order_by("position", "id"))


def _mapping_sites(base, mapping, kind, stage, step):
    for key, source in (mapping or {}).items():
        yield Site(f"{base}.{key}", source, kind, stage, step)


def expression_sites(orch, stages=None):
    """Every expression of ``orch`` as a ``Site`` (place, source, what it may read)."""
    stages = _stages(orch) if stages is None else stages
    if orch.start_condition:
        yield Site(place_of(orch.api_name, "start.condition"), orch.start_condition, START)
    for stage in stages:
        base = place_of(orch.api_name, stage.name)
        if stage.kind == StageKind.DECISION:
            for i, outcome in enumerate(stage.outcomes.all()):
                oname = f"outcomes.{outcome.name or i}"
                if outcome.condition:
                    yield Site(place_of(base, f"{oname}.condition"), outcome.condition, DECISION, stage)
                yield from _mapping_sites(place_of(base, f"{oname}.inputs"), outcome.condition_flow_inputs,
                                          DECISION, stage, None)
            continue
        if stage.exit_type == StageExit.CONDITION:
            yield Site(place_of(base, "exit.condition"), stage.exit_condition, CONDITION, stage)
        elif stage.exit_type == StageExit.EVALUATION_FLOW:
            yield from _mapping_sites(place_of(base, "exit.inputs"), stage.exit_flow_inputs, CONDITION, stage, None)
        for step in stage.steps.all():
            sbase = place_of(base, step.name)
            element = INSTANCE_NAMES if (step.for_each or step.assignees) else ()
            for site in _mapping_sites(place_of(sbase, "inputs"), step.inputs, VALUE, stage, step):
                # A multi-instance step's values are evaluated per instance, with its element in scope.
                site.extra_names = element
                yield site
            if step.entry_type == StepEntry.CONDITION:
                yield Site(place_of(sbase, "entry.condition"), step.entry_condition, CONDITION, stage, step)
            elif step.entry_type == StepEntry.EVALUATION_FLOW:
                yield from _mapping_sites(place_of(sbase, "entry.inputs"), step.entry_flow_inputs, CONDITION, stage, step)
            if step.exit_type == StepExit.CONDITION:
                yield Site(place_of(sbase, "exit.condition"), step.exit_condition, CONDITION, stage, step)
            elif step.exit_type == StepExit.EVALUATION_FLOW:
                yield from _mapping_sites(place_of(sbase, "exit.inputs"), step.exit_flow_inputs, CONDITION, stage, step)
            if step.assignee_type == AssigneeType.EXPR:
                yield Site(place_of(sbase, "assignee.expr"), step.assignee, VALUE, stage, step, extra_names=element)
            if step.record:
                yield Site(place_of(sbase, "record"), step.record, VALUE, stage, step, extra_names=element)
            if step.assignee_exclude:
                yield Site(place_of(sbase, "assignee.exclude"), step.assignee_exclude, VALUE, stage, step,
                           extra_names=element)
            for key in ("for_each", "assignees"):
                if getattr(step, key):
                    yield Site(place_of(sbase, key), getattr(step, key), VALUE, stage, step)
            if isinstance(step.completion, dict) and isinstance(step.completion.get("condition"), str):
                yield Site(place_of(sbase, "completion.condition"), step.completion["condition"], CONDITION,
                           stage, step, extra_names=COMPLETION_NAMES)
            if step.type == StepType.WAIT and step.wait_until:
                yield Site(place_of(sbase, "until"), step.wait_until, VALUE, stage, step)
    for key, source in (orch.outputs or {}).items():
        yield Site(place_of(orch.api_name, f"outputs.{key}"), source, OUTPUT)


def _flow_desc(flow):
    return f"flow {flow.api_name} v{flow.version}"


def _names(items):
    return ", ".join(sorted(items)) or "none"


class OrchestrationValidator:
    def __init__(self, orch, flows=None):
        self.orch = orch
        self.flows = dict(flows or {})
        self.problems = []
        self.stages = _stages(orch)
        self.by_name = {}
        self.steps = {}  # step name -> Step
        self._flow_cache = {}
        self._children = {}
        self._record_fields = None

    def add(self, place, message):
        self.problems.append(Problem(place, message))

    # -------------------------------------------------------------- flows
    def flow(self, api_name, place, expected_type):
        """The flow version a step would run (the active one), or None after adding a Problem."""
        if not api_name:
            self.add(place, "no flow given")
            return None
        if api_name in self.flows:
            flow = self.flows[api_name]
        else:
            if api_name not in self._flow_cache:
                self._flow_cache[api_name] = Flow.objects.filter(
                    api_name=api_name, status=DefinitionStatus.ACTIVE
                ).prefetch_related("variables").first()
            flow = self._flow_cache[api_name]
        if flow is None:
            versions = list(Flow.objects.filter(api_name=api_name).values_list("version", "status"))
            if versions:
                listed = ", ".join(f"v{v} {s}" for v, s in sorted(versions))
                self.add(place, f"flow {api_name} has no active version ({listed})")
            else:
                self.add(place, f"no flow named {api_name!r}")
            return None
        if expected_type and flow.type != expected_type:
            self.add(place, f"{_flow_desc(flow)} is a {flow.type} flow; this needs a {expected_type} flow")
        return flow

    def check_mapping(self, place, flow, mapping):
        inputs = {v.name: v for v in flow.input_variables()}
        mapping = mapping or {}
        for key in mapping:
            if key not in inputs:
                self.add(f"{place}.{key}", f"{_flow_desc(flow)} has no input {key!r} (has: {_names(inputs)})")
        for name, variable in inputs.items():
            if variable.required and variable.default is None and name not in mapping:
                self.add(place, f"required input {name!r} of {_flow_desc(flow)} is not mapped")

    def check_evaluation_flow(self, place, api_name, mapping):
        flow = self.flow(api_name, f"{place}.evaluation_flow", FlowType.EVALUATION)
        if flow is None:
            return
        outputs = {v.name: v.type for v in flow.output_variables()}
        if outputs.get("condition_met") != "boolean":
            self.add(f"{place}.evaluation_flow", f"{_flow_desc(flow)} has no boolean output condition_met")
        self.check_mapping(f"{place}.inputs", flow, mapping)

    # -------------------------------------------------------------- path graph
    def build_graph(self):
        orch = self.orch
        if not self.stages:
            self.add(orch.api_name, "the path is empty: add at least one stage")
        for stage in self.stages:
            place = place_of(orch.api_name, stage.name)
            if not stage.name:
                self.add(place, "a path element needs a name")
            elif stage.name == END:
                self.add(place, "'end' is reserved and cannot name a stage")
            elif stage.name in self.by_name:
                self.add(place, f"{stage.name!r} names two path elements")
            self.by_name.setdefault(stage.name, stage)
        self.succ = {}
        for index, stage in enumerate(self.stages):
            following = self.stages[index + 1].name if index + 1 < len(self.stages) else END
            place = place_of(orch.api_name, stage.name)
            targets = []
            if stage.kind == StageKind.DECISION:
                targets = [(f"outcomes.{o.name or i}.goto", o.goto) for i, o in enumerate(stage.outcomes.all())]
                if stage.default_goto:
                    targets.append(("default", stage.default_goto))
            else:
                targets = [("next", stage.next)] if stage.next else [("", following)]
                if stage.on_error_goto:
                    targets.append(("on_error.goto", stage.on_error_goto))
            succ = []
            for where, target in targets:
                if not target:
                    continue
                if target != END and target not in self.by_name:
                    self.add(place_of(place, where), f"no stage or decision named {target!r} (names: {_names(self.by_name)}; or end)")
                    continue
                succ.append(target)
            self.succ[stage.name] = succ
        self.check_decision_cycles()
        # Reachability from the first element.
        self.reachable = set()
        if self.stages:
            todo = [self.stages[0].name]
            while todo:
                name = todo.pop()
                if name in self.reachable or name == END:
                    continue
                self.reachable.add(name)
                todo.extend(self.succ.get(name, []))
        for stage in self.stages:
            if stage.name not in self.reachable:
                what = "decision" if stage.kind == StageKind.DECISION else "stage"
                self.add(place_of(orch.api_name, stage.name), f"no path from the start reaches this {what}")
        # Dominators: the elements on every path from the start to each element. A stage with an
        # error path ends two ways, so its normal end is a node of its own (``passed``): what follows
        # the stage normally is reached through it, its error target is not.
        nodes = [s.name for s in self.stages if s.name in self.reachable]
        edges = {n: list(self.succ.get(n, [])) for n in nodes}
        for stage in self.stages:
            if stage.name in edges and stage.on_error_goto and stage.kind != StageKind.DECISION:
                passed = self.passed(stage.name)
                normal = [t for t in edges[stage.name] if t != stage.on_error_goto or t == self._following(stage)]
                edges[passed] = normal
                edges[stage.name] = [passed] + ([stage.on_error_goto] if stage.on_error_goto in edges else [])
                nodes.insert(nodes.index(stage.name) + 1, passed)
        self.succ_passed = edges
        preds = {n: [] for n in nodes}
        for n in nodes:
            for t in edges.get(n, []):
                if t in preds and n not in preds[t]:
                    preds[t].append(n)
        self.dom = {n: set(nodes) for n in nodes}
        if nodes:
            self.dom[nodes[0]] = {nodes[0]}
        changed = True
        while changed:
            changed = False
            for n in nodes[1:]:
                incoming = [self.dom[p] for p in preds[n]]
                new = set.intersection(*incoming) | {n} if incoming else {n}
                if new != self.dom[n]:
                    self.dom[n], changed = new, True
        # The elements on every path to the end (where an orchestration's outputs are evaluated).
        into_end = [self.dom[n] for n in nodes if END in edges.get(n, [])]
        self.dom_end = set.intersection(*into_end) if into_end else set()

    @staticmethod
    def passed(stage_name):
        """The node of a stage's normal end in the dominator graph (no stage can have this name)."""
        return f"{stage_name} ✓"

    def _following(self, stage):
        if stage.next:
            return stage.next
        index = self.stages.index(stage)
        return self.stages[index + 1].name if index + 1 < len(self.stages) else END

    def completed_before(self, target_stage, dominators):
        """Whether ``target_stage`` ended normally on every path with these dominators."""
        return (self.passed(target_stage.name) if target_stage.on_error_goto else target_stage.name) in dominators

    def check_decision_cycles(self):
        """Refuse decisions that can go to each other without entering a stage.

        Nothing changes between two decisions (no step runs), so a run that
        goes round such a cycle once goes round it forever.
        """
        decisions = {s.name for s in self.stages if s.kind == StageKind.DECISION}
        edges = {d: [t for t in self.succ.get(d, []) if t in decisions] for d in decisions}
        state, reported = {}, set()

        def visit(name, trail):
            state[name] = "open"
            for nxt in edges[name]:
                if state.get(nxt) == "open":
                    cycle = trail[trail.index(nxt):] + [nxt]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        self.add(place_of(self.orch.api_name, nxt),
                                 "decisions go to each other without entering a stage: " + " → ".join(cycle))
                elif state.get(nxt) is None:
                    visit(nxt, trail + [nxt])
            state[name] = "done"

        for stage in self.stages:
            if stage.name in decisions and state.get(stage.name) is None:
                visit(stage.name, [stage.name])

    # -------------------------------------------------------------- references
    def after_closure(self, step):
        seen, todo = set(), list(step.entry_after or []) if step.entry_type == StepEntry.AFTER else []
        same_stage = {s.name: s for s in step.stage.steps.all()}
        while todo:
            name = todo.pop()
            if name in seen or name not in same_stage:
                continue
            seen.add(name)
            other = same_stage[name]
            if other.entry_type == StepEntry.AFTER:
                todo.extend(other.entry_after or [])
        return seen

    def surely_before(self, site, target):
        """None when ``target`` step has surely completed where ``site`` reads it, else why not."""
        target_stage = target.stage
        here = site.stage
        if site.kind == START:
            return "the start condition runs before any step"
        if site.kind == OUTPUT:
            if self.completed_before(target_stage, self.dom_end):
                if target.entry_type in (StepEntry.CONDITION, StepEntry.EVALUATION_FLOW):
                    return f"step {target.name} may never start (its entry is a condition)"
                return None
            return (f"step {target.name} (stage {target_stage.name}) is not certain to have completed when the run "
                    f"ends: stage {target_stage.name} is not on every path to the end")
        if here is not None and target_stage.pk == here.pk:
            if site.kind == CONDITION:
                return None
            if site.step is not None and target.name in self.after_closure(site.step):
                return None
            if site.step is not None and target.name == site.step.name:
                return f"step {target.name} reads its own output"
            return (f"step {target.name} runs in the same stage and is not certain to have completed "
                    f"(add it to this step's entry.after)")
        if (here is not None and target_stage.on_error_goto and here.name in self.dom
                and target_stage.name in self.dom[here.name]
                and not self.completed_before(target_stage, self.dom[here.name])):
            return MayHaveFailed(f"stage {target_stage.name} has an error path to {target_stage.on_error_goto} "
                                 f"on the way here, so step {target.name} may have failed without outputs")
        if here is None or here.name not in self.dom or not self.completed_before(target_stage, self.dom.get(here.name, ())):
            return (f"step {target.name} (stage {target_stage.name}) is not certain to have completed before: "
                    f"stage {target_stage.name} is not on every path to {here.name if here else 'here'}")
        if site.kind == VALUE:
            if target.entry_type in (StepEntry.CONDITION, StepEntry.EVALUATION_FLOW):
                return f"step {target.name} may never start (its entry is a condition)"
            if target_stage.exit_type != StageExit.ALL_STEPS_COMPLETE:
                return f"step {target.name} may be discontinued (stage {target_stage.name} exits on a condition)"
        return None

    def record_fields(self):
        """(what the record is, the keys ``record`` may have) for this orchestration's runs.

        A record-triggered orchestration runs on records of its start model;
        an autolaunched one may be launched on a record of any model exposed
        to flows, so a field is known if one of those models has it.
        """
        if self._record_fields is None:
            label = (self.orch.start_model or "").lower()
            if label:
                try:
                    models = [apps.get_model(label)]
                except (LookupError, ValueError):
                    models = []  # reported by check_start
                what = f"model {label}"
            else:
                models = []
                for allowed in sorted(allowed_models()):
                    try:
                        models.append(apps.get_model(allowed))
                    except (LookupError, ValueError):
                        continue
                what = "any model exposed to flows (BATON_FLOW_MODELS)"
            fields = set().union(*(exposed_record_fields(m) for m in models)) if models else None
            hidden = set().union(*(record_field_names(m) for m in models)) - (fields or set()) if models else set()
            self._record_fields = (what, fields, hidden)
        return self._record_fields

    def check_names(self, site, source):
        """Every name ``source`` reads must be in a run's scope, with the keys it reads."""
        declared = [v.get("name") for v in self.orch.inputs or [] if isinstance(v, dict)]
        for read in reads(source):
            name, path = read.name, read.path
            if name in TYPE_NAMES or name in site.extra_names:
                continue
            if name not in SCOPE_NAMES:
                here = ", ".join((*SCOPE_NAMES, *site.extra_names))
                hint = ""
                if name in INSTANCE_NAMES:
                    hint = " — item and index exist only in a step with for_each or assignees"
                elif name in COMPLETION_NAMES:
                    hint = " — instances exists only in a completion condition"
                self.add(site.place, f"{name} — not in scope (an expression here reads {here}){hint}")
            elif name == "inputs" and len(path) > 1 and path[1] not in declared:
                self.add(site.place, f"inputs.{path[1]} — {self.orch.api_name} declares no input {path[1]!r} "
                                     f"(inputs: {_names(n for n in declared if n)})")
            elif name in ("record", "record_prior") and len(path) > 1:
                what, fields, hidden = self.record_fields()
                if fields is not None and path[1] in hidden:
                    self.add(site.place, f"{name}.{path[1]} — field {path[1]!r} of {what} is not exposed to flows "
                                         f"(a secret field, or left out of its BATON_FLOW_MODELS entry): "
                                         f"see BATON_FLOW_MODELS")
                elif fields is not None and path[1] not in fields:
                    self.add(site.place, f"{name}.{path[1]} — {what} has no field {path[1]!r}")
            elif name == "run" and len(path) > 1 and path[1] not in RUN_KEYS:
                self.add(site.place, f"run.{path[1]} — a run has no {path[1]!r} (has: {', '.join(RUN_KEYS)})")
            elif name == "steps" and len(path) > 2 and path[2] not in STEP_KEYS:
                self.add(site.place, f"{read.text} — a step has no {path[2]!r} (has: {', '.join(STEP_KEYS)})")

    def check_site(self, site):
        checked = check_expression(self.problems, site.place, site.source, merge=site.merge)
        for source in checked:
            self.check_names(site, source)
            named, outputs, computed = step_reads(source)
            for text in computed:
                target = self.steps.get(text.split(".")[1]) if text.count(".") == 2 else None
                if target is not None and (target.for_each or target.assignees):
                    continue  # a multi-instance step's outputs are a list: indexing it is the way to read them
                self.add(site.place, f"{text}[…] — a computed index into {text} cannot be checked: "
                                     f"name the step and output (steps.<step>.outputs.<output>)")
            for name in sorted(named):
                if name not in self.steps:
                    self.add(site.place, f"steps.{name} — no step named {name!r} in {self.orch.api_name}")
            unguarded = unguarded_output_reads(source)
            for step_name, output in outputs:
                target = self.steps.get(step_name)
                if target is None:
                    continue
                ref = f"steps.{step_name}.outputs.{output}"
                if target.for_each or target.assignees:
                    self.add(site.place, f"{ref} — step {step_name} runs once per element: its outputs are a list "
                                         f"in element order (steps.{step_name}.outputs[0].{output}, or "
                                         f"steps.{step_name}.instances)")
                    continue
                why = self.surely_before(site, target)
                if (why is None and site.kind == VALUE and target.exit_type != StepExit.STEP_COMPLETES
                        and ("steps", step_name, "outputs", output) in unguarded):
                    # A step withdrawn by its exit condition completes with no
                    # outputs, and its readers still run (docs/definitions.md).
                    why = (f"step {step_name} may end by its exit condition without outputs: "
                           f"read it as has({ref}) ? {ref} : <default>")
                if isinstance(why, MayHaveFailed):
                    if ("steps", step_name, "outputs", output) not in unguarded:
                        why = None  # read under has(): the error path is handled
                    else:
                        why = f"{why}: read it as has({ref}) ? {ref} : <default>"
                if why:
                    self.add(site.place, f"{ref} — {why}")
                if target.type == StepType.ORCHESTRATION:
                    child = self.child_orchestration(target.child_orchestration)
                    if child is not None and output not in (child.outputs or {}):
                        self.add(site.place, f"{ref} — orchestration {child.api_name} v{child.version} declares no "
                                             f"output {output!r} (outputs: {_names(child.outputs or {})})")
                    continue
                flow = self.step_flows.get(step_name)
                if flow is not None:
                    outputs = [v.name for v in flow.output_variables()]
                    if output not in outputs:
                        self.add(site.place, f"{ref} — {_flow_desc(flow)} has no output {output!r} (has: {_names(outputs)})")

    # -------------------------------------------------------------- parts
    def check_start(self):
        orch = self.orch
        place = place_of(orch.api_name, "start")
        if orch.start_type == StartType.RECORD_TRIGGERED:
            if not orch.start_model:
                self.add(f"{place}.model", "a record-triggered start needs a model")
            else:
                check_model(self.problems, f"{place}.model", orch.start_model)
            if orch.start_when not in StartWhen.values:
                self.add(f"{place}.when", f"expected one of {', '.join(StartWhen.values)}, got {orch.start_when!r}")
            if orch.only_when_changed_to_meet and not orch.start_condition:
                self.add(f"{place}.only_when_changed_to_meet", "needs a start condition")
            if orch.only_when_changed_to_meet and orch.start_when == StartWhen.CREATED:
                self.add(f"{place}.only_when_changed_to_meet", "only applies to updates (when: updated or created_or_updated)")
        elif orch.start_type == StartType.AUTOLAUNCHED:
            for key, value in (("model", orch.start_model), ("when", orch.start_when),
                               ("condition", orch.start_condition)):
                if value:
                    self.add(f"{place}.{key}", "only record-triggered starts have this")
        else:
            self.add(f"{place}.type", f"unknown start type {orch.start_type!r}")
        seen = set()
        for variable in orch.inputs or []:
            name = variable.get("name") if isinstance(variable, dict) else None
            vplace = place_of(orch.api_name, f"inputs.{name}")
            if not name or not str(name).isidentifier():
                self.add(vplace, f"{name!r} is not a valid input name")
            elif name in seen:
                self.add(vplace, f"input {name!r} is defined twice")
            seen.add(name)
            if isinstance(variable, dict) and variable.get("type", "text") not in VARIABLE_TYPES:
                self.add(vplace, f"unknown type {variable.get('type')!r} (one of: {', '.join(VARIABLE_TYPES)})")
        if orch.max_stage_visits < 1:
            self.add(place_of(orch.api_name, "max_stage_visits"), "must be at least 1")

    def assignee_exists(self, kind, value):
        """Whether the user, group or queue named ``value`` exists; each name is looked up once per validation."""
        known = self.__dict__.setdefault("_assignees", {})
        if (kind, value) not in known:
            if kind == AssigneeType.USER:
                User = get_user_model()
                rows = User.objects.filter(**{User.USERNAME_FIELD: value})
            elif kind == AssigneeType.GROUP:
                rows = Group.objects.filter(name=value)
            else:
                # Queues are the Work Guide's: found through the app registry, so orchestration imports no workguide.
                rows = apps.get_model("workguide", "Queue").objects.filter(name=value)
            known[(kind, value)] = rows.exists()
        return known[(kind, value)]

    def check_assignee(self, place, kind, value):
        if kind in (AssigneeType.USER, AssigneeType.GROUP, AssigneeType.QUEUE):
            if not self.assignee_exists(kind, value):
                self.add(place, f"no {kind} named {value!r}")
        else:
            self.add(place, f"unknown assignee type {kind!r} (user, group, queue or expr)")

    def check_name(self, place, name, what, pattern):
        """A stage/decision/step name as the definition file schema takes it (the admin lets anything in)."""
        if not pattern.fullmatch(name or ""):
            self.add(place, f"{what} name {short_name(name)!r} must be {NAME_FORMS[pattern]}, "
                            f"at most {NAME_MAX_LENGTH} characters")

    def check_stage(self, stage):
        base = place_of(self.orch.api_name, short_name(stage.name))
        self.check_name(base, stage.name, stage.kind, SLUG_NAME)
        if stage.kind == StageKind.DECISION:
            outcomes = list(stage.outcomes.all())
            if not outcomes:
                self.add(base, "a decision needs at least one outcome")
            names = set()
            for i, outcome in enumerate(outcomes):
                oplace = place_of(base, f"outcomes.{outcome.name or i}")
                if not outcome.name:
                    self.add(oplace, "an outcome needs a name")
                elif outcome.name in names:
                    self.add(oplace, f"outcome {outcome.name!r} is named twice")
                names.add(outcome.name)
                if bool(outcome.condition) == bool(outcome.condition_flow):
                    self.add(oplace, "an outcome needs either a condition or an evaluation_flow")
                if outcome.condition_flow:
                    self.check_evaluation_flow(oplace, outcome.condition_flow, outcome.condition_flow_inputs)
                if not outcome.goto:
                    self.add(f"{oplace}.goto", "an outcome needs a goto")
            if not stage.default_goto:
                self.add(f"{base} › default", "a decision needs a default (a stage name or end)")
            if stage.steps.exists():
                self.add(base, "a decision has no steps")
            if stage.on_error_goto:
                self.add(place_of(base, "on_error"), "a decision runs no step, so it has no error path")
            return
        steps = list(stage.steps.all())
        if not steps:
            self.add(base, "a stage needs at least one step")
        if stage.exit_type == StageExit.EVALUATION_FLOW:
            self.check_evaluation_flow(place_of(base, "exit"), stage.exit_flow, stage.exit_flow_inputs)
        elif stage.exit_type == StageExit.CONDITION and not stage.exit_condition:
            self.add(place_of(base, "exit.condition"), "an expression is required")
        names = {s.name for s in steps}
        for step in steps:
            self.check_step(base, step, names)
        self.check_after_cycles(base, steps)

    def check_step(self, base, step, stage_step_names):
        place = place_of(base, short_name(step.name))
        self.check_name(place, step.name, "step", IDENTIFIER_NAME)
        if step.type not in StepType.values:
            self.add(place_of(place, "type"), f"unknown step type {step.type!r} ({', '.join(StepType.values)})")
        self.check_instances(place, step)
        if step.type == StepType.WAIT:
            self.check_wait(place, step)
        elif step.type == StepType.ORCHESTRATION:
            self.check_child(place, step)
        flow = self.step_flows.get(step.name)
        if flow is not None:
            self.check_mapping(place_of(place, "inputs"), flow, step.inputs)
        if step.entry_type == StepEntry.AFTER:
            if not step.entry_after:
                self.add(place_of(place, "entry.after"), "name at least one step")
            for name in step.entry_after or []:
                if name == step.name:
                    self.add(place_of(place, "entry.after"), f"step {name} cannot wait for itself")
                elif name not in stage_step_names:
                    where = (f"it is in stage {self.steps[name].stage.name}" if name in self.steps
                             else "there is no such step")
                    self.add(place_of(place, "entry.after"), f"{name!r} is not a step of stage {step.stage.name} ({where})")
        elif step.entry_type == StepEntry.EVALUATION_FLOW:
            self.check_evaluation_flow(place_of(place, "entry"), step.entry_flow, step.entry_flow_inputs)
        elif step.entry_type == StepEntry.CONDITION and not step.entry_condition:
            self.add(place_of(place, "entry.condition"), "an expression is required")
        if step.exit_type == StepExit.EVALUATION_FLOW:
            self.check_evaluation_flow(place_of(place, "exit"), step.exit_flow, step.exit_flow_inputs)
        elif step.exit_type == StepExit.CONDITION and not step.exit_condition:
            self.add(place_of(place, "exit.condition"), "an expression is required")
        if step.type == StepType.INTERACTIVE:
            if step.assignees:
                if step.assignee_type:
                    self.add(place_of(place, "assignees"),
                             f"give either assignees (one item each) or assignee.{step.assignee_type}, not both")
            elif not step.assignee_type or not step.assignee:
                self.add(place_of(place, "assignee"),
                         "an interactive step needs an assignee (user, group, queue, expr or same_as) or assignees")
            elif step.assignee_type == AssigneeType.SAME_AS:
                self.check_same_as(place_of(place, "assignee.same_as"), step)
            elif step.assignee_type != AssigneeType.EXPR:
                self.check_assignee(place_of(place, f"assignee.{step.assignee_type}"), step.assignee_type, step.assignee)
            if step.due_in:
                try:
                    parse_duration(step.due_in)
                except ValueError as exc:
                    self.add(place_of(place, "due_in"), str(exc))
            if not isinstance(step.priority, int) or not 0 <= step.priority <= 100:
                self.add(place_of(place, "priority"), f"{step.priority!r}: a whole number from 0 to 100")
            if step.escalate_to:
                kind, sep, name = step.escalate_to.partition(":")
                if not sep or not name:
                    self.add(place_of(place, "escalate_to"),
                             f"{step.escalate_to!r}: write user:NAME, group:NAME or queue:NAME")
                else:
                    self.check_assignee(place_of(place, "escalate_to"), kind, name)
        else:
            for key in ("assignee", "assignee_exclude", "assignees", "record", "due_in", "escalate_to"):
                if getattr(step, key):
                    self.add(place_of(place, key.replace("assignee_", "assignee.")), "only interactive steps have this")
        if step.type == StepType.BACKGROUND:
            try:
                parse_duration(step.timeout)
            except ValueError as exc:
                self.add(place_of(place, "timeout"), str(exc))
        if step.type in (StepType.WAIT, StepType.ORCHESTRATION):
            if step.flow:
                self.add(place_of(place, "flow"), f"a {step.type} step runs no flow")
            if step.type == StepType.WAIT and step.inputs:
                self.add(place_of(place, "inputs"), "a wait step takes no inputs")

    # -------------------------------------------------------------- process patterns (DESIGN §10)
    def check_instances(self, place, step):
        """``for_each`` / ``assignees`` with ``completion``, ``sequential`` and ``remaining``."""
        source = step.for_each or step.assignees
        if step.for_each and step.assignees:
            self.add(place_of(place, "assignees"), "give either for_each or assignees, not both")
        if step.type == StepType.WAIT and step.for_each:
            self.add(place_of(place, "for_each"), "a wait step runs once (it has no instances)")
        completion = step.completion if step.completion not in (None, "") else "all"
        if not source:
            for key, unset in (("completion", completion == "all"), ("sequential", not step.sequential),
                               ("remaining", not step.remaining)):
                if not unset:
                    self.add(place_of(place, key), "only a step with for_each or assignees has this")
            return
        key = "for_each" if step.for_each else "assignees"
        size = self.check_list_source(place_of(place, key), source)
        if isinstance(completion, str):
            if completion not in ("all", "any"):
                self.add(place_of(place, "completion"),
                         f"{completion!r}: write all, any, {{at_least: N}}, {{percent: P}} or {{condition: ...}}")
        elif not isinstance(completion, dict) or len(completion) != 1 or next(iter(completion)) not in (
                "at_least", "percent", "condition"):
            self.add(place_of(place, "completion"),
                     "write all, any, {at_least: N}, {percent: P} or {condition: ...} (one key)")
        else:
            (rule, value), = completion.items()
            if rule == "at_least":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    self.add(place_of(place, "completion.at_least"), f"{value!r}: a whole number of at least 1")
                elif size is not None and value > size:
                    self.add(place_of(place, "completion.at_least"),
                             f"{value} instances can never complete: {key} gives {size}")
            elif rule == "percent":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
                    self.add(place_of(place, "completion.percent"), f"{value!r}: a number above 0, at most 100")
            elif not isinstance(value, str) or not value.strip():
                self.add(place_of(place, "completion.condition"), "an expression is required")
        if step.remaining and step.remaining != "continue":
            self.add(place_of(place, "remaining"),
                     f"{step.remaining!r}: give continue, or leave it out (the default: discontinue)")
        elif step.remaining and completion == "all":
            self.add(place_of(place, "remaining"), "with completion all no instance remains when it is met")
        elif step.remaining and step.sequential:
            # A sequential step starts its next instance only while its rule is unmet: none would go on.
            self.add(place_of(place, "remaining"), "a sequential step starts no instance after its rule is met: "
                                                   "remove remaining or sequential")

    def check_list_source(self, place, source):
        """What can be known statically of a ``for_each``/``assignees`` list: its size when it is a
        literal (None otherwise); a value that is surely not a list is a problem."""
        found = reads(source)
        if not found:
            try:
                value = evaluate(source, {}, place)
            except Exception:  # noqa: BLE001 — the expression check reports what is wrong with it
                return None
            if not isinstance(value, list):
                self.add(place, f"gives {type(value).__name__} {value!r}: for_each and assignees need a list")
                return None
            return len(value)
        if len(found) == 1 and found[0].text.strip() == source.strip():
            path = found[0].path
            if path[0] == "inputs" and len(path) == 2:
                declared = {v.get("name"): v.get("type", "text") for v in self.orch.inputs or [] if isinstance(v, dict)}
                kind = declared.get(path[1])
                if kind is not None and kind != "list":
                    self.add(place, f"inputs.{path[1]} is a {kind} input: for_each and assignees need a list")
            elif path[0] == "steps" and len(path) == 4 and path[2] == "outputs":
                flow = self.step_flows.get(path[1])
                target = self.steps.get(path[1])
                if flow is not None and target is not None and not (target.for_each or target.assignees):
                    kinds = {v.name: v.type for v in flow.output_variables()}
                    kind = kinds.get(path[3])
                    if kind is not None and kind != "list":
                        self.add(place, f"steps.{path[1]}.outputs.{path[3]} is a {kind} output of "
                                        f"{_flow_desc(flow)}: for_each and assignees need a list")
        return None

    def check_same_as(self, place, step):
        target = self.steps.get(step.assignee)
        if target is None:
            self.add(place, f"no step named {step.assignee!r} in {self.orch.api_name}")
        elif target.name == step.name:
            self.add(place, "a step cannot take its own assignee")
        elif target.type != StepType.INTERACTIVE:
            self.add(place, f"step {target.name} is a {target.type} step: only an interactive step has a person "
                            f"who completed it")
        else:
            why = self.surely_before(Site(place, "", VALUE, step.stage, step), target)
            if why:
                self.add(place, f"same_as {target.name} — {why}")

    def check_wait(self, place, step):
        given = [key for key, attr in (("for", "wait_for"), ("until", "wait_until"), ("event", "wait_event"))
                 if getattr(step, attr)]
        if len(given) != 1:
            self.add(place, "a wait step needs exactly one of for, until or event"
                            + (f" (has {', '.join(given)})" if given else ""))
        if step.wait_for:
            try:
                parse_duration(step.wait_for)
            except ValueError as exc:
                self.add(place_of(place, "for"), str(exc))
        if step.wait_timeout:
            if not step.wait_event:
                self.add(place_of(place, "timeout"), "only a wait for an event has a timeout")
            try:
                parse_duration(step.wait_timeout)
            except ValueError as exc:
                self.add(place_of(place, "timeout"), str(exc))
        if step.on_timeout:
            if step.on_timeout not in ("complete", "error"):
                self.add(place_of(place, "on_timeout"), f"{step.on_timeout!r}: complete or error")
            elif not step.wait_timeout:
                self.add(place_of(place, "on_timeout"), "give a timeout first")

    def child_orchestration(self, api_name):
        """The active version of a sub-orchestration step's orchestration, or None."""
        if api_name not in self._children:
            self._children[api_name] = Orchestration.objects.filter(
                api_name=api_name, status=DefinitionStatus.ACTIVE).first()
        return self._children[api_name]

    def check_child(self, place, step):
        where = place_of(place, "orchestration")
        if not step.child_orchestration:
            self.add(where, "a sub-orchestration step names the orchestration it runs")
            return
        if step.child_orchestration == self.orch.api_name:
            child = self.orch
        else:
            child = self.child_orchestration(step.child_orchestration)
        if child is None:
            versions = list(Orchestration.objects.filter(api_name=step.child_orchestration)
                            .values_list("version", "status"))
            listed = ", ".join(f"v{v} {s}" for v, s in sorted(versions))
            self.add(where, f"orchestration {step.child_orchestration} has no active version ({listed})" if versions
                     else f"no orchestration named {step.child_orchestration!r}")
            return
        declared = {v.get("name"): v for v in child.inputs or [] if isinstance(v, dict)}
        for key in step.inputs or {}:
            if key not in declared:
                self.add(place_of(place, f"inputs.{key}"),
                         f"orchestration {child.api_name} declares no input {key!r} (inputs: {_names(declared)})")
        for name, variable in declared.items():
            if variable.get("required") and variable.get("default") is None and name not in (step.inputs or {}):
                self.add(place_of(place, "inputs"), f"required input {name!r} of orchestration {child.api_name} "
                                                    f"is not mapped")
        trail = self.recursion_through(step, child)
        if trail:
            self.add(where, "recursion without a guard: " + " → ".join(trail) + " (give a step on the way an "
                     "entry condition that ends it; BATON_MAX_CHILD_DEPTH stops it at run time)")

    def recursion_through(self, step, child):
        """The api_names of a cycle back to this orchestration through steps that always start, or None.

        A step with an entry condition (or evaluation flow) is a guard: it can stop the recursion.
        """
        if step.entry_type in (StepEntry.CONDITION, StepEntry.EVALUATION_FLOW):
            return None
        todo, seen = [(child, [self.orch.api_name, child.api_name])], set()
        while todo:
            orch, trail = todo.pop()
            if orch.api_name == self.orch.api_name:
                return trail
            if orch.api_name in seen:
                continue
            seen.add(orch.api_name)
            for inner in Step.objects.filter(stage__orchestration=orch, type=StepType.ORCHESTRATION).exclude(
                    entry_type__in=(StepEntry.CONDITION, StepEntry.EVALUATION_FLOW)):
                nxt = (self.orch if inner.child_orchestration == self.orch.api_name
                       else self.child_orchestration(inner.child_orchestration))
                if nxt is not None:
                    todo.append((nxt, trail + [nxt.api_name]))
        return None

    def check_outputs(self):
        for name in self.orch.outputs or {}:
            if not IDENTIFIER_NAME.fullmatch(str(name)):
                self.add(place_of(self.orch.api_name, f"outputs.{name}"),
                         f"output name {short_name(str(name))!r} must be {NAME_FORMS[IDENTIFIER_NAME]}")

    def check_after_cycles(self, base, steps):
        graph = {s.name: [n for n in (s.entry_after or []) if n != s.name]
                 for s in steps if s.entry_type == StepEntry.AFTER}
        state = {}
        reported = set()

        def visit(name, trail):
            state[name] = "open"
            for nxt in graph.get(name, []):
                if state.get(nxt) == "open":
                    cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [name, nxt]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.add(place_of(base, nxt, "entry.after"), "steps wait for each other: " + " → ".join(cycle))
                elif state.get(nxt) is None:
                    visit(nxt, trail + [nxt])
            state[name] = "done"

        for name in graph:
            if state.get(name) is None:
                visit(name, [name])

    # -------------------------------------------------------------- all
    def run(self):
        orch = self.orch
        self.check_name(place_of(short_name(orch.api_name), "api_name"), orch.api_name, "orchestration", SLUG_NAME)
        self.check_start()
        self.build_graph()
        for stage in self.stages:
            for step in stage.steps.all():
                if step.name in self.steps:
                    other = self.steps[step.name].stage.name
                    self.add(place_of(orch.api_name, stage.name, step.name),
                             f"step name {step.name!r} is already used in stage {other} (step names are unique in an orchestration)")
                    continue
                self.steps[step.name] = step
        self.step_flows = {}
        for stage in self.stages:
            for step in stage.steps.all():
                if self.steps.get(step.name) is not step:
                    continue
                expected = {StepType.INTERACTIVE: FlowType.SCREEN,
                            StepType.BACKGROUND: FlowType.AUTOLAUNCHED}.get(step.type)
                if expected is None:
                    continue  # wait and sub-orchestration steps run no flow
                self.step_flows[step.name] = self.flow(
                    step.flow, place_of(orch.api_name, stage.name, step.name, "flow"), expected
                )
        for stage in self.stages:
            self.check_stage(stage)
        self.check_outputs()
        for site in expression_sites(orch, self.stages):
            self.check_site(site)
        return _dedupe(self.problems)


def _dedupe(problems):
    seen, out = set(), []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out


def validate_orchestration(orch, flows=None):
    """Every problem that keeps ``orch`` from being activated.

    ``flows`` maps flow api_names to the version to check against instead of
    the active one (the importer passes the versions it is about to activate).
    """
    return OrchestrationValidator(orch, flows).run()


def impact_of_flow_activation(flow, superseded=()):
    """Readers in active orchestrations that activating ``flow`` would break.

    A reader is an expression reading ``steps.X.outputs.Y`` where step X runs
    ``flow.api_name`` and the new version drops Y or changes its type. Steps
    whose mapping would miss a newly required input, or whose type no longer
    matches, are listed too. Orchestrations named in ``superseded`` (about to
    be replaced in the same transaction) are left out.
    """
    problems = []
    outputs = {v.name: v.type for v in flow.output_variables()}
    inputs = {v.name: v for v in flow.input_variables()}
    current = (Flow.objects.filter(api_name=flow.api_name, status=DefinitionStatus.ACTIVE)
               .exclude(pk=flow.pk).prefetch_related("variables").first())
    before = {v.name: v.type for v in current.output_variables()} if current else {}
    desc = _flow_desc(flow)
    orchestrations = (Orchestration.objects.filter(status=DefinitionStatus.ACTIVE, stages__steps__flow=flow.api_name)
                      .exclude(api_name__in=list(superseded)).distinct())
    for orch in orchestrations:
        stages = _stages(orch)
        runners = {}
        for stage in stages:
            for step in stage.steps.all():
                if step.flow != flow.api_name:
                    continue
                runners[step.name] = step
                place = place_of(f"{orch.api_name} v{orch.version}", stage.name, step.name)
                expected = {StepType.INTERACTIVE: FlowType.SCREEN, StepType.BACKGROUND: FlowType.AUTOLAUNCHED}.get(step.type)
                if expected and flow.type != expected:
                    problems.append(Problem(place, f"runs {flow.api_name} as a {step.type} step; {desc} is a {flow.type} flow"))
                for name, variable in inputs.items():
                    if variable.required and variable.default is None and name not in (step.inputs or {}):
                        problems.append(Problem(place_of(place, "inputs"), f"does not map {name!r}, which {desc} requires"))
        if not runners:
            continue
        for site in expression_sites(orch, stages):
            for step_name, output in step_reads(site.source if isinstance(site.source, str) else "")[1]:
                if step_name not in runners:
                    continue
                ref = f"steps.{step_name}.outputs.{output}"
                place = site.place.replace(orch.api_name, f"{orch.api_name} v{orch.version}", 1)
                if output not in outputs:
                    problems.append(Problem(place, f"reads {ref}, which {desc} removes (has: {_names(outputs)})"))
                elif output in before and before[output] != outputs[output]:
                    problems.append(Problem(place, f"reads {ref}, which {desc} retypes from {before[output]} to {outputs[output]}"))
    return _dedupe(problems)
