"""The validator's findings as the builder shows them.

``Checks.of(orch)`` runs the activation validator once
(``orchestration.validation.OrchestrationValidator``, the very code that
Activate and ``import_definitions`` run) and pins each problem to the element
its place names: ``api › stage › step › what`` goes on the step card,
``api › stage › what`` on the stage or decision, ``api › start…`` on the start.
Anything else is about the whole version.

``names_in_scope`` and ``check_source`` ask the same validator what an
expression at one place may read and whether it compiles and reads only
those names.
"""
from dataclasses import dataclass, field

from flows.designer.checks import LINE_SUFFIX, Check
from flows.validation import SEP

from ..definition_files.yaml_lines import line_of
from ..models import StageKind, StartType, StepType
from ..validation import (
    COMPLETION_NAMES, CONDITION, DECISION, INSTANCE_NAMES, RUN_KEYS, VALUE, OrchestrationValidator, Site,
)

START_KEY = "start"
WHOLE_KEY = "orchestration"


def element_key(kind, pk):
    return f"{kind}-{pk}"


@dataclass
class Checks:
    validator: OrchestrationValidator
    problems: list
    pinned: dict = field(default_factory=dict)  # element key -> [Problem]
    keyed: list = field(default_factory=list)  # (element key, Problem) in the validator's order

    @classmethod
    def of(cls, orch):
        validator = OrchestrationValidator(orch)
        try:
            problems = validator.run()
        except Exception as exc:  # a half-made draft must still open; say what broke
            from flows.validation import Problem

            problems = [Problem(orch.api_name, f"the validator stopped: {exc.__class__.__name__}: {exc}")]
        checks = cls(validator, problems)
        checks._pin(orch)
        return checks

    @property
    def stages(self):
        return self.validator.stages

    def _pin(self, orch):
        stages = {s.name: s for s in self.stages}
        for problem in self.problems:
            key = self.key_for(problem.place, stages)
            self.keyed.append((key, problem))
            self.pinned.setdefault(key, []).append(problem)

    @staticmethod
    def key_for(place, stages):
        parts = place.split(SEP)
        if len(parts) < 2:
            return WHOLE_KEY
        head = parts[1]
        if head.startswith("start"):
            return START_KEY
        stage = stages.get(head)
        if stage is None:
            return WHOLE_KEY
        if len(parts) > 2 and stage.kind == StageKind.STAGE:
            for step in stage.steps.all():
                if step.name == parts[2]:
                    return element_key("step", step.pk)
        return element_key("decision" if stage.kind == StageKind.DECISION else "stage", stage.pk)

    def of_element(self, key):
        return self.pinned.get(key, [])


# ------------------------------------------------------------------ names in scope

def _site(validator, kind, stage=None, step=None, place=""):
    return Site(place or validator.orch.api_name, "", kind, stage, step)


def site_for(validator, element, what):
    """The validator's ``Site`` for an expression box: ``element`` is ("start"|"stage"|"step"|"decision", pk)."""
    kind, pk = element
    orch = validator.orch
    if kind == "start":
        return Site(SEP.join((orch.api_name, "start.condition")), "", "start")
    for stage in validator.stages:
        if kind in ("stage", "decision") and stage.pk == pk:
            site_kind = DECISION if stage.kind == StageKind.DECISION else CONDITION
            return Site(SEP.join((orch.api_name, stage.name, what)), "", site_kind, stage)
        if kind == "step":
            for step in stage.steps.all():
                if step.pk == pk:
                    site_kind = CONDITION if what.startswith(("entry", "exit", "completion")) else VALUE
                    return Site(SEP.join((orch.api_name, stage.name, step.name, what)), "", site_kind, stage, step,
                                extra_names=_extra_names(step, what))
    return None


def _extra_names(step, what):
    """Names only this place of a step reads (the validator's ``expression_sites`` gives the same)."""
    if what.startswith("completion"):
        return COMPLETION_NAMES
    if (step.for_each or step.assignees) and what.startswith(("inputs", "assignee", "record")):
        return INSTANCE_NAMES
    return ()


EXTRA_NAME_WHAT = {"item": "the element of this instance", "index": "its position, from 0",
                   "instances": "[{index, item, status, outputs, completed_by}] of this step"}


def names_in_scope(validator, site):
    """Dotted names an expression at ``site`` may read, with what each is; the validator decides."""
    orch = validator.orch
    names = []
    for variable in orch.inputs or []:
        if isinstance(variable, dict) and variable.get("name"):
            names.append((f"inputs.{variable['name']}", f"input, {variable.get('type') or 'text'}"))
    what, fields, _hidden = validator.record_fields()
    for name in sorted(fields or ()):
        names.append((f"record.{name}", f"field of {what}"))
        if orch.start_type == StartType.RECORD_TRIGGERED:
            names.append((f"record_prior.{name}", "its value before the update"))
    if site is not None and site.kind != "start" and getattr(validator, "dom", None) is not None:
        for step_name, step in validator.steps.items():
            if validator.surely_before(site, step) is not None:
                continue
            flow = validator.step_flows.get(step_name)
            for variable in (flow.output_variables() if flow is not None else []):
                names.append((f"steps.{step_name}.outputs.{variable.name}",
                              f"output of step {step.label or step_name}, {variable.type}"))
            if step.type == StepType.ORCHESTRATION and step.child_orchestration:
                child = validator.child_orchestration(step.child_orchestration)
                for output in (child.outputs or {}) if child is not None else ():
                    names.append((f"steps.{step_name}.outputs.{output}",
                                  f"output of orchestration {child.api_name} v{child.version}"))
            names.append((f"steps.{step_name}.status", f"status of step {step.label or step_name}"))
    names += [(name, EXTRA_NAME_WHAT.get(name, "")) for name in (site.extra_names if site is not None else ())]
    names += [(f"run.{key}", "the run") for key in RUN_KEYS] + [("now", "the time of evaluation")]
    return names


def check_source(validator, site, source):
    """The validator's problems for ``source`` placed at ``site`` (compile errors, unknown names)."""
    validator.problems = []
    probe = Site(site.place, source, site.kind, site.stage, site.step, extra_names=site.extra_names)
    validator.check_site(probe)
    return list(validator.problems)


# ------------------------------------------------------------------ YAML lines

def _named(items, name):
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and str(item.get("name")) == name:
            return index
    return None


def yaml_path(document, place):
    """The path into a definition ``document`` (one orchestration) of the deepest node ``place`` names.

    ``bb › review › tell › completion.at_least`` is
    ``["orchestrations", 0, "path", 0, "steps", 1, "completion", "at_least"]``: the
    element and step by name, then each dotted key (a list of named items, such
    as outcomes, by name).
    """
    path = ["orchestrations", 0]
    node = (document or {}).get("orchestrations", [None])[0] if isinstance(document, dict) else None
    if not isinstance(node, dict):
        return path
    for depth, part in enumerate(LINE_SUFFIX.sub("", place or "").split(SEP)[1:]):
        container = {0: "path", 1: "steps"}.get(depth)
        index = _named(node.get(container), part) if container and isinstance(node, dict) else None
        if index is not None:
            path += [container, index]
            node = node[container][index]
            continue
        for key in part.split("."):
            if isinstance(node, dict) and key in node:
                path.append(key)
                node = node[key]
            elif isinstance(node, list) and _named(node, key) is not None:
                index = _named(node, key)
                path.append(index)
                node = node[index]
            else:
                break
        break
    return path


def with_lines(document, problems):
    """Each problem as a designer ``Check`` carrying the line of ``document`` it is about (the flow designer's shape)."""
    return [Check(LINE_SUFFIX.sub("", p.place), p.message, "", line_of(document, yaml_path(document, p.place)))
            for p in problems]
