"""An orchestration version as plain, immutable Python objects.

The engine, the validator's path analysis, the dry run and the diagram all
read a ``Plan`` instead of querying stage and step rows. Active and obsolete
versions cannot change, so their plans are cached per version id; drafts are
always read fresh.
"""
import re
from dataclasses import dataclass, field
from functools import cached_property
from threading import Lock

from flows.durations import parse_duration

from .models import END, Orchestration, StageKind

_CACHE = {}
_CACHE_LOCK = Lock()
_CACHE_MAX = 512


@dataclass(frozen=True)
class Condition:
    """Either a CEL expression or an evaluation flow with its input mapping."""

    expression: str = ""
    flow: str = ""
    flow_inputs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, expression, flow="", flow_inputs=None):
        if not (expression or flow):
            return None
        return cls(expression or "", flow or "", dict(flow_inputs or {}))


@dataclass(frozen=True)
class StepPlan:
    name: str
    label: str
    type: str
    flow: str
    inputs: dict
    entry: str  # stage_start | after | condition | evaluation_flow
    after: tuple
    entry_condition: Condition | None
    exit_condition: Condition | None
    assignee_type: str
    assignee: str
    record: str
    due_in: str
    escalate_to: str
    priority: int
    retries: int
    timeout: str
    stage: str
    # The process patterns of DESIGN.md §10 (docs/definitions.md): empty when unused.
    assignee_exclude: str = ""
    for_each: str = ""
    assignees: str = ""
    completion: object = "all"  # "all" | "any" | {"at_least": N} | {"percent": P} | {"condition": expr}
    sequential: bool = False
    remaining: str = ""
    child_orchestration: str = ""
    wait_for: str = ""
    wait_until: str = ""
    wait_event: str = ""
    wait_timeout: str = ""
    on_timeout: str = ""

    @property
    def is_interactive(self):
        return self.type == "interactive"

    @property
    def is_multi_instance(self):
        """One instance per element of ``for_each`` (or per assignee of ``assignees``)."""
        return bool(self.for_each or self.assignees)

    @property
    def is_wait(self):
        return self.type == "wait"

    @property
    def is_child_orchestration(self):
        return self.type == "orchestration"

    @property
    def timeout_seconds(self):
        try:
            return int(parse_duration(self.timeout or "10m").total_seconds())
        except ValueError:
            return 600


@dataclass(frozen=True)
class OutcomePlan:
    name: str
    condition: Condition | None
    goto: str


@dataclass(frozen=True)
class ElementPlan:
    name: str
    label: str
    kind: str  # stage | decision
    position: int
    next: str
    exit_condition: Condition | None  # None: all_steps_complete
    steps: tuple
    outcomes: tuple
    default_goto: str
    on_error_goto: str = ""  # a stage whose step fails after its retries goes here instead of stopping

    @property
    def is_decision(self):
        return self.kind == StageKind.DECISION

    @property
    def counts_down(self):
        """Whether this stage ends exactly when its last step ends: then completions can be counted.

        True for a stage whose steps are all background steps that start with
        the stage and end when their flow completes, with the default exit:
        nothing about the stage can change when one of several open steps
        completes, except that one fewer is open. Such a completion needs no
        run lock (``worker.complete_background_step``); ``worker.counts_completions``
        adds where the steps run when a visit opens.
        """
        return (not self.is_decision and bool(self.steps) and self.exit_condition is None
                and not self.on_error_goto
                and all(s.type == "background" and s.entry == "stage_start" and s.exit_condition is None
                        and not s.is_multi_instance
                        for s in self.steps))

    def step(self, name):
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True)
class Plan:
    orchestration_id: int
    api_name: str
    version: int
    label: str
    start_type: str
    start_model: str
    start_when: str
    start_condition: str
    only_when_changed_to_meet: bool
    inputs: tuple
    max_stage_visits: int
    elements: tuple
    outputs: dict = field(default_factory=dict)  # {name: expression} evaluated when a run completes

    @cached_property
    def by_name(self):
        return {element.name: element for element in self.elements}

    @cached_property
    def reads_record_prior(self):
        """Whether anything in this version can read ``record_prior`` (or needs it to decide its start).

        When not, a record-triggered start skips reading the stored row before
        the save: the run would never look at it (its ``record_prior`` stays
        empty). Any text of the plan that mentions the name counts, so the
        answer errs towards reading.
        """
        if self.only_when_changed_to_meet or "record_prior" in (self.start_condition or ""):
            return True
        return any("record_prior" in text for text in _texts(self.elements))

    @cached_property
    def reads_record(self):
        """Whether an expression of this version reads ``record``: then a run needs one to start."""
        from flows.names import free_names

        return any("record" in free_names(text) for text in self.expressions())

    @cached_property
    def record_fields_read(self):
        """The fields this version reads from ``record`` unguarded (``record.NAME``, ``record["NAME"]``;
        not inside ``has()`` and not in an expression that tests the same field with ``has()``).

        A record whose model does not expose one of them would stop the run in
        error at its first read, so a launch refuses it (``starts.launch``).
        """
        from flows.names import reads

        names = set()
        for text in self.expressions():
            found = reads(text)
            tested = {read.path[:2] for read in found if read.in_has}
            names.update(read.path[1] for read in found
                         if read.name == "record" and len(read.path) > 1 and not read.in_has
                         and read.path[:2] not in tested)
        return tuple(sorted(names))

    def expressions(self):
        """The text of every CEL expression of this version (conditions, mappings, assignees, records)."""
        def of_condition(condition):
            if condition is not None:
                if condition.expression:
                    yield condition.expression
                yield from (v for v in condition.flow_inputs.values() if isinstance(v, str))

        if self.start_condition:
            yield self.start_condition
        for element in self.elements:
            yield from of_condition(element.exit_condition)
            for outcome in element.outcomes:
                yield from of_condition(outcome.condition)
            for step in element.steps:
                yield from (v for v in step.inputs.values() if isinstance(v, str))
                yield from of_condition(step.entry_condition)
                yield from of_condition(step.exit_condition)
                if step.assignee_type == "expr" and step.assignee:
                    yield step.assignee
                if step.record:
                    yield step.record
                for text in (step.for_each, step.assignees, step.assignee_exclude, step.wait_until):
                    if text:
                        yield text
                if isinstance(step.completion, dict) and step.completion.get("condition"):
                    yield step.completion["condition"]
        yield from (v for v in self.outputs.values() if isinstance(v, str))

    @cached_property
    def record_prior_fields(self):
        """The fields of ``record_prior`` this version reads, as ``record_prior.NAME``; None when
        some text uses the name otherwise (whole, or by index): then every exposed field is kept.

        A run's ``record_prior`` (and its pending start's) stores only these:
        a field nothing reads is not copied into run rows.
        """
        names = set()
        for text in (self.start_condition or "", *_texts(self.elements)):
            if "record_prior" not in text:
                continue
            named = _PRIOR_FIELD.findall(text)
            if len(_PRIOR_ANY.findall(text)) != len(named):
                return None
            names.update(named)
        return tuple(sorted(names))

    @cached_property
    def instances_read(self):
        """The multi-instance steps whose ``steps.X.instances`` an expression of this version reads.

        Only these get that list in a transition's scope: building it reads
        every instance row of the step, on every later transition of the run.
        A read of ``steps`` or ``steps.X`` whole, or through a computed index,
        may reach it: it counts (the answer errs towards reading).
        """
        from flows.names import reads

        multi = frozenset(s.name for s in self.steps_by_name.values() if s.is_multi_instance)
        if not multi:
            return multi
        names = set()
        for text in self.expressions():
            for read in reads(text):
                if read.name != "steps":
                    continue
                if len(read.path) == 1:
                    return multi  # the whole map, or steps[...]: any of them
                if len(read.path) == 2 or read.path[2] == "instances":
                    names.add(read.path[1])
        return frozenset(names & multi)

    @cached_property
    def steps_by_name(self):
        return {step.name: step for element in self.elements for step in element.steps}

    @cached_property
    def flow_names(self):
        """The flows this version's steps run, sorted (a transition reads their active versions at once)."""
        return tuple(sorted({step.flow for step in self.steps_by_name.values() if step.flow}))

    @property
    def first(self):
        return self.elements[0].name if self.elements else END

    @property
    def stages(self):
        return [e for e in self.elements if not e.is_decision]

    def element(self, name):
        return self.by_name[name]

    def step(self, name):
        return self.steps_by_name[name]

    def following(self, element):
        """Where the path goes after a stage: its ``next``, else the next element, else the end."""
        if element.next:
            return element.next
        index = self.elements.index(element)
        return self.elements[index + 1].name if index + 1 < len(self.elements) else END

    def successors(self, element):
        """Every element name (or END) the path may reach right after ``element``."""
        if element.is_decision:
            targets = [o.goto for o in element.outcomes] + [element.default_goto or END]
        else:
            targets = [self.following(element)]
        seen = []
        for t in targets:
            if t not in seen:
                seen.append(t)
        return seen

    @classmethod
    def load(cls, orchestration):
        """The plan of ``orchestration`` (a model instance or id)."""
        orch_id = orchestration if isinstance(orchestration, int) else orchestration.pk
        plan = _CACHE.get(orch_id)
        if plan is not None:
            return plan
        if isinstance(orchestration, int):
            orchestration = Orchestration.objects.get(pk=orch_id)
        plan = cls.from_model(orchestration)
        if orchestration.status != "draft":
            with _CACHE_LOCK:
                if len(_CACHE) >= _CACHE_MAX:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[orch_id] = plan
        return plan

    @classmethod
    def from_model(cls, orch):
        stages = list(orch.stages.prefetch_related("steps", "outcomes").order_by("position", "id"))
        elements = []
        for stage in stages:
            steps = tuple(
                StepPlan(
                    name=s.name,
                    label=s.label or s.name,
                    type=s.type,
                    flow=s.flow,
                    inputs=dict(s.inputs or {}),
                    entry=s.entry_type,
                    after=tuple(s.entry_after or ()),
                    entry_condition=Condition.of(s.entry_condition, s.entry_flow, s.entry_flow_inputs)
                    if s.entry_type in ("condition", "evaluation_flow") else None,
                    exit_condition=Condition.of(s.exit_condition, s.exit_flow, s.exit_flow_inputs)
                    if s.exit_type in ("condition", "evaluation_flow") else None,
                    assignee_type=s.assignee_type,
                    assignee=s.assignee,
                    record=s.record,
                    due_in=s.due_in,
                    escalate_to=s.escalate_to,
                    priority=s.priority,
                    retries=s.retries,
                    timeout=s.timeout,
                    stage=stage.name,
                    assignee_exclude=s.assignee_exclude,
                    for_each=s.for_each,
                    assignees=s.assignees,
                    completion=s.completion if s.completion not in (None, "") else "all",
                    sequential=s.sequential,
                    remaining=s.remaining,
                    child_orchestration=s.child_orchestration,
                    wait_for=s.wait_for,
                    wait_until=s.wait_until,
                    wait_event=s.wait_event,
                    wait_timeout=s.wait_timeout,
                    on_timeout=s.on_timeout,
                )
                for s in sorted(stage.steps.all(), key=lambda s: (s.position, s.id))
            )
            outcomes = tuple(
                OutcomePlan(o.name, Condition.of(o.condition, o.condition_flow, o.condition_flow_inputs), o.goto)
                for o in sorted(stage.outcomes.all(), key=lambda o: (o.position, o.id))
            )
            elements.append(
                ElementPlan(
                    name=stage.name,
                    label=stage.label or stage.name,
                    kind=stage.kind,
                    position=len(elements),
                    next=stage.next,
                    exit_condition=Condition.of(stage.exit_condition, stage.exit_flow, stage.exit_flow_inputs)
                    if stage.exit_type != "all_steps_complete" else None,
                    steps=steps,
                    outcomes=outcomes,
                    default_goto=stage.default_goto,
                    on_error_goto=stage.on_error_goto,
                )
            )
        return cls(
            orchestration_id=orch.pk,
            api_name=orch.api_name,
            version=orch.version,
            label=orch.label or orch.api_name,
            start_type=orch.start_type,
            start_model=(orch.start_model or "").lower(),
            start_when=orch.start_when,
            start_condition=orch.start_condition,
            only_when_changed_to_meet=orch.only_when_changed_to_meet,
            inputs=tuple(orch.inputs or ()),
            max_stage_visits=orch.max_stage_visits or 50,
            elements=tuple(elements),
            outputs=dict(orch.outputs or {}),
        )


def forget(orchestration_id=None):
    """Drop cached plans (tests; a deleted draft)."""
    with _CACHE_LOCK:
        if orchestration_id is None:
            _CACHE.clear()
        else:
            _CACHE.pop(orchestration_id, None)


_PRIOR_FIELD = re.compile(r"\brecord_prior\.([A-Za-z_]\w*)")
_PRIOR_ANY = re.compile(r"\brecord_prior\b")


def _texts(value):
    """Every string inside a plan's (frozen) dataclasses, tuples and dicts."""
    import dataclasses

    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _texts(getattr(value, f.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _texts(item)
