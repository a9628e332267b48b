"""The builder's pages and htmx endpoints (URLs in ``orchestration.builder.urls``).

Every endpoint needs the admin's change permission for orchestrations. A
change answers with the whole workspace (toolbar, canvas, checks, property
panel) rendered after the validator ran on the changed draft. A refused
change answers 400 (409 for a frozen version) with the same workspace and
the message naming the place; nothing was stored (``edits``).
"""
import json
import re

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from flows.designer.views import MAX_YAML_CHARS
from flows.validation import SEP
from flows.versioning import DefinitionStatus

from .. import lifecycle
from ..models import Orchestration, OrchestrationRun, StageKind, StartType, Step, StepType
from ..simulate import SimulationError, dry_run
from . import diff as diff_module
from . import edits
from .checks import START_KEY, Checks, check_source, element_key, names_in_scope, site_for, with_lines
from .forms import (
    DecisionForm, InputVariableFormSet, StageForm, StartForm, StepForm, assignee_options, input_rows,
    outcome_formset,
)

TEMPLATES = "baton_admin/builder/"
SELECTED = re.compile(r"start|(stage|decision|step)-\d+|dryrun|activate|yaml")
ELEMENT_KINDS = ("start", "stage", "decision", "step")


def url_name(model_admin, suffix):
    opts = model_admin.model._meta
    return f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{suffix}"


class Builder:
    """One request to the builder of one orchestration version."""

    def __init__(self, model_admin, request, object_id):
        self.admin = model_admin
        self.request = request
        if not model_admin.has_change_permission(request):  # the admin's rules, as its own buttons use them
            raise PermissionDenied
        self.orch = Orchestration.objects.filter(pk=unquote(object_id)).first()
        if self.orch is None:
            raise Http404("no such orchestration version")
        self.editable = self.orch.is_editable
        self.message = ""
        self.message_level = "info"
        selected = request.POST.get("selected") or request.GET.get("selected") or ""
        self.selected = selected if SELECTED.fullmatch(selected) else ""  # it is echoed into attributes
        self.panel = None  # (template, context) of the property panel
        self.sim = None

    # -------------------------------------------------------------- urls
    def url(self, suffix, *args):
        return reverse(url_name(self.admin, suffix), args=[self.orch.pk, *args])

    # -------------------------------------------------------------- rendering
    def workspace_context(self):
        checks = Checks.of(self.orch)
        self.checks = checks
        stages = checks.stages
        names = {s.name: i for i, s in enumerate(stages)}
        sim_state = self.sim.state() if self.sim is not None else None
        elements = []
        stage_number = 0
        for index, stage in enumerate(stages):
            is_decision = stage.kind == StageKind.DECISION
            key = element_key("decision" if is_decision else "stage", stage.pk)
            stage_number += 0 if is_decision else 1
            item = {"obj": stage, "key": key, "is_decision": is_decision, "index": index, "number": stage_number,
                    "problems": checks.of_element(key), "first": index == 0, "last": index == len(stages) - 1}
            if sim_state is not None:
                item["sim"] = sim_state["elements"].get(stage.name, "")
                item["visits"] = sim_state["visits"].get(stage.name)
                item["taken"] = sim_state["outcomes"].get(stage.name)
            if is_decision:
                item["outcomes"] = [
                    {"obj": o, "target": o.goto, "loop": o.goto in names and names[o.goto] <= index,
                     "taken": item.get("taken") == o.name}
                    for o in sorted(stage.outcomes.all(), key=lambda o: (o.position, o.id))]
                item["default_loop"] = stage.default_goto in names and names[stage.default_goto] <= index
                item["default_taken"] = sim_state is not None and item.get("taken") == "default"
            else:
                steps = sorted(stage.steps.all(), key=lambda s: (s.position, s.id))
                item["steps"] = [
                    {"obj": s, "key": element_key("step", s.pk), "problems": checks.of_element(element_key("step", s.pk)),
                     "interactive": s.type == StepType.INTERACTIVE, "first": i == 0, "last": i == len(steps) - 1,
                     "sim": sim_state["steps"].get(s.name, "") if sim_state is not None else ""}
                    for i, s in enumerate(steps)]
                item["loop"] = bool(stage.next) and stage.next in names and names[stage.next] <= index
            elements.append(item)
        orch = self.orch
        context = {
            "orch": orch, "editable": self.editable, "elements": elements, "checks": checks,
            "problems": [(key, problem, _panel_path(key)) for key, problem in checks.keyed],
            "problem_count": len(checks.problems),
            "start_problems": checks.of_element(START_KEY), "start_key": START_KEY,
            "whole_problems": checks.of_element("orchestration"),
            "record_triggered": orch.start_type == StartType.RECORD_TRIGGERED,
            "selected": self.selected, "message": self.message, "message_level": self.message_level,
            "last_change": edits.last_change(orch) if self.editable else None,
            "sim": self.sim,
            "urls": {
                "page": self.url("builder"), "change": self.url("builder_change"), "check": self.url("builder_check"),
                "assignees": self.url("builder_assignees"), "dry_run": self.url("builder_dry_run"),
                "activate": self.url("builder_activate"), "new_version": self.url("builder_new_version"),
                "diff": self.url("builder_diff"), "yaml": self.url("builder_yaml"),
                "panel": reverse(url_name(self.admin, "builder_panel"), args=[orch.pk, "start", 0])[:-len("start/0/")],
                "admin_change": reverse(url_name(self.admin, "change"), args=[orch.pk]),
            },
        }
        if self.panel is not None:
            template, panel_context = self.panel
            context["panel_template"] = template
            context.update(panel_context)
            kind, _, pk = panel_context.get("panel_element", "").partition(":")
            if kind in ELEMENT_KINDS:
                what = {"step": "inputs", "stage": "exit.condition", "decision": "outcomes"}.get(kind, "start.condition")
                site = site_for(checks.validator, (kind, int(pk)), what)
                context["scope_names"] = names_in_scope(checks.validator, site)
        return context

    def workspace(self, status=200):
        return TemplateResponse(self.request, TEMPLATES + "workspace.html", self.workspace_context(), status=status)

    def page(self):
        context = {
            **self.admin.admin_site.each_context(self.request),
            **self.workspace_context(),
            "opts": self.admin.model._meta,
            "title": f"Builder · {self.orch.label or self.orch.api_name} v{self.orch.version}",
            "versions": Orchestration.objects.filter(api_name=self.orch.api_name).order_by("-version"),
        }
        return TemplateResponse(self.request, TEMPLATES + "page.html", context)

    def refuse(self, message, status=400):
        self.message, self.message_level = message, "error"
        return self.workspace(status=status)

    # -------------------------------------------------------------- panels
    def open_panel(self, kind, pk, data=None):
        """Set up the property panel of one element; ``data`` binds its forms (a save or a refresh)."""
        orch = self.orch
        if kind == "start":
            form = StartForm(data, instance=orch, prefix="start")
            inputs = InputVariableFormSet(data, initial=input_rows(orch), prefix="inputs")
            self.selected = START_KEY
            self.panel = (TEMPLATES + "panel_start.html", {"form": form, "inputs_formset": inputs,
                                                          "panel_element": "start:0", "panel_kind": "start",
                                                          "panel_path": "start/0/"})
            return form, inputs
        if kind in ("stage", "decision"):
            element = orch.stages.filter(pk=pk).first()
            if element is None:
                raise edits.EditError(orch.api_name, f"no stage or decision with id {pk} (reload the page)")
            if element.kind == StageKind.DECISION:
                form = DecisionForm(data, instance=element, prefix="element")
                outcomes = outcome_formset(element, data)
                self.selected = element_key("decision", element.pk)
                self.panel = (TEMPLATES + "panel_decision.html", {
                    "form": form, "outcomes_formset": outcomes, "element": element,
                    "panel_element": f"decision:{element.pk}", "panel_kind": "decision",
                    "panel_path": f"decision/{element.pk}/"})
                return form, outcomes
            form = StageForm(data, instance=element, prefix="element")
            self.selected = element_key("stage", element.pk)
            self.panel = (TEMPLATES + "panel_stage.html", {"form": form, "element": element,
                                                          "panel_element": f"stage:{element.pk}",
                                                          "panel_kind": "stage", "panel_path": f"stage/{element.pk}/"})
            return form, None
        if kind == "step":
            step = Step.objects.filter(stage__orchestration=orch, pk=pk).select_related("stage").first()
            if step is None:
                raise edits.EditError(orch.api_name, f"no step with id {pk} (reload the page)")
            form = StepForm(data, instance=step, prefix="element")
            self.selected = element_key("step", step.pk)
            self.panel = (TEMPLATES + "panel_step.html", {"form": form, "element": step,
                                                         "panel_element": f"step:{step.pk}", "panel_kind": "step",
                                                         "panel_path": f"step/{step.pk}/"})
            return form, None
        raise edits.EditError(orch.api_name, f"no kind of element {kind!r}")

    def show_panel(self, kind, pk, data=None, status=200):
        try:
            self.open_panel(kind, pk, data)
        except edits.EditError as exc:
            return self.refuse(str(exc))
        return self.workspace(status=status)

    def save_panel(self, kind, pk):
        if not self.editable:
            return self.refuse(f"{self.orch} cannot be changed; make a new version from it", status=409)
        try:
            form, extra = self.open_panel(kind, pk, self.request.POST)
        except edits.EditError as exc:
            return self.refuse(str(exc))
        valid = form.is_valid() and (extra is None or extra.is_valid())
        if not valid:
            place = self.place_of_panel(kind, form)
            problems = [f"{place} › {name if name != '__all__' else 'form'}: {' '.join(errors)}"
                        for name, errors in form.errors.items()]
            if extra is not None:
                for index, errors in enumerate(extra.errors):
                    for name, messages in errors.items():
                        problems.append(f"{place} › row {index + 1} › {name}: {' '.join(messages)}")
                problems += [f"{place}: {e}" for e in extra.non_form_errors()]
            return self.refuse("Not saved. " + "; ".join(problems))
        description = f"Edited {self.place_of_panel(kind, form)}"
        try:
            edits.change(self.orch, description, self._apply_panel, kind, form, extra)
        except edits.EditError as exc:
            return self.refuse(str(exc), status=409 if "cannot be changed" in exc.message else 400)
        self.orch.refresh_from_db()
        self.message = f"Saved: {description.removeprefix('Edited ')}."
        return self.show_panel(kind, pk)

    def place_of_panel(self, kind, form):
        orch = self.orch
        if kind == "start":
            return SEP.join((orch.api_name, "start"))
        element = form.instance
        if kind == "step":
            return SEP.join((orch.api_name, element.stage.name, element.name))
        return SEP.join((orch.api_name, element.name))

    def _apply_panel(self, locked, kind, form, extra):
        if kind == "start":
            orch = form.save(commit=False)  # the same row as ``locked``, with the panel's values
            orch.inputs = [row.variable() for row in extra.forms if row.cleaned_data.get("name")]
            orch.save()
            return orch
        old_name = type(form.instance).objects.filter(pk=form.instance.pk).values_list("name", flat=True).first()
        saved = form.save()
        if extra is not None:
            for position, outcome_form in enumerate(extra.forms):
                outcome = outcome_form.save(commit=False)
                outcome.position = position
                outcome.save()
        if old_name and old_name != saved.name:
            rename_references(locked, kind, old_name, saved.name)
        return saved


def _panel_path(key):
    if key == START_KEY:
        return "start/0/"
    kind, _, pk = key.partition("-")
    return f"{kind}/{pk}/" if kind in ELEMENT_KINDS and pk.isdigit() else ""


def rename_references(orch, kind, old, new):
    """Keep gotos, ``next`` and ``after`` lists pointing at a renamed element or step."""
    from ..models import DecisionOutcome, Stage

    if kind in ("stage", "decision"):
        Stage.objects.filter(orchestration=orch, next=old).update(next=new)
        Stage.objects.filter(orchestration=orch, default_goto=old).update(default_goto=new)
        DecisionOutcome.objects.filter(stage__orchestration=orch, goto=old).update(goto=new)
    else:
        for step in Step.objects.filter(stage__orchestration=orch, entry_type="after"):
            if old in (step.entry_after or []):
                step.entry_after = [new if n == old else n for n in step.entry_after]
                step.save(update_fields=["entry_after"])


# ------------------------------------------------------------------ endpoints

def builder_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    if request.GET.get("open"):
        kind, _, pk = request.GET["open"].partition("-")
        if kind in ELEMENT_KINDS:
            try:
                builder.open_panel(kind, int(pk or 0))
            except (ValueError, edits.EditError):
                builder.panel = None
    return builder.page()


def panel_view(model_admin, request, object_id, kind, pk):
    builder = Builder(model_admin, request, object_id)
    if kind not in ELEMENT_KINDS:
        raise Http404("no such kind of element")
    if request.method == "POST":
        if request.POST.get("refresh"):
            # The type or a flow changed: show the fields that now apply, save nothing.
            return builder.show_panel(kind, pk, data=request.POST)
        return builder.save_panel(kind, pk)
    return builder.show_panel(kind, pk)


CHANGES = {
    "add_stage": ("Added a stage", lambda o, p: edits.add_element(o, StageKind.STAGE, p.get("after"))),
    "add_decision": ("Added a decision", lambda o, p: edits.add_element(o, StageKind.DECISION, p.get("after"))),
    "delete_element": ("Deleted {name}", lambda o, p: edits.delete_element(o, p.get("element"))),
    "move_element": ("Moved {name}", lambda o, p: edits.move_element(o, p.get("element"), p.get("index"))),
    "shift_element": ("Moved {name}", lambda o, p: edits.shift_element(o, p.get("element"), p.get("direction"))),
    "add_step": ("Added a step", lambda o, p: edits.add_step(o, p.get("stage"), p.get("type"))),
    "delete_step": ("Deleted step {name}", lambda o, p: edits.delete_step(o, p.get("step"))),
    "move_step": ("Moved step {name}", lambda o, p: edits.move_step(o, p.get("step"), p.get("stage"), p.get("index"))),
    "shift_step": ("Moved step {name}", lambda o, p: edits.shift_step(o, p.get("step"), p.get("direction"))),
    "add_outcome": ("Added an outcome", lambda o, p: edits.add_outcome(o, p.get("decision"))),
    "delete_outcome": ("Deleted outcome {name}", lambda o, p: edits.delete_outcome(o, p.get("outcome"))),
}


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def change_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    if request.method != "POST":
        return HttpResponse("POST a change", status=405)
    op = request.POST.get("op", "")
    if not builder.editable:
        return builder.refuse(f"{builder.orch.api_name} v{builder.orch.version} is {builder.orch.status} and cannot "
                              "be changed; make a new version from it", status=409)
    if op == "undo":
        try:
            undone = edits.undo(builder.orch)
        except edits.EditError as exc:
            return builder.refuse(str(exc))
        builder.orch.refresh_from_db()
        builder.message = f"Undone: {undone}."
        builder.selected = ""
        return builder.workspace()
    if op not in CHANGES:
        return builder.refuse(f"{builder.orch.api_name}: unknown change {op!r} (one of {', '.join(CHANGES)}, undo)")
    params = {k: _int_or_none(v) if k in ("after", "element", "stage", "step", "decision", "outcome") else v
              for k, v in request.POST.items()}
    template, fn = CHANGES[op]

    def describe(result):
        return template.format(name=getattr(result, "label", "") or getattr(result, "name", ""))

    try:
        result = edits.change(builder.orch, describe, lambda locked: fn(locked, params))
    except edits.EditError as exc:
        return builder.refuse(str(exc))
    description = describe(result)
    builder.orch.refresh_from_db()
    builder.message = f"{description}."
    if op.startswith("add_") and op != "add_outcome":
        kind = "step" if op == "add_step" else ("decision" if op == "add_decision" else "stage")
        return builder.show_panel(kind, result.pk)
    if op in ("add_outcome", "delete_outcome"):
        return builder.show_panel("decision", result.stage_id)
    if builder.selected and not op.startswith("delete"):
        kind, _, pk = builder.selected.partition("-")
        if kind in ELEMENT_KINDS:
            return builder.show_panel(kind, int(pk) if pk.isdigit() else 0)
    builder.selected = ""
    return builder.workspace()


def check_view(model_admin, request, object_id):
    """Check one expression as it is typed: does it compile, does it read only names in scope there."""
    builder = Builder(model_admin, request, object_id)
    source = request.POST.get("source", "")
    kind, _, pk = (request.POST.get("element") or "").partition(":")
    what = request.POST.get("what") or "condition"
    validator = Checks.of(builder.orch).validator
    site = site_for(validator, (kind, _int_or_none(pk)), what) if kind in ELEMENT_KINDS else None
    if site is None:
        return HttpResponse(format_html('<span class="bb-check bb-check-bad">unknown place {}</span>',
                                        request.POST.get("element", "")), status=400)
    if not source.strip():
        return HttpResponse('<span class="bb-check">empty</span>')
    problems = check_source(validator, site, source)
    if not problems:
        return HttpResponse(format_html('<span class="bb-check bb-check-ok">✓ {}</span>', "compiles; names in scope"))
    items = format_html("".join("<li>{}</li>" for _ in problems), *[p.message for p in problems])
    return HttpResponse(format_html('<ul class="bb-check bb-check-bad">{}</ul>', items))


def assignees_view(model_admin, request, object_id):
    Builder(model_admin, request, object_id)
    options = assignee_options(request.GET.get("kind", ""), request.GET.get("q", ""))
    html = "".join(format_html('<option value="{}">{}</option>', value, text) for value, text in options)
    return HttpResponse(html)


# ------------------------------------------------------------------ dry run

def _typed(value, kind):
    value = (value or "").strip()
    if value == "":
        return None
    if kind == "boolean":
        return value.lower() == "true"
    if kind == "number":
        try:
            return int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise SimulationError(f"{value!r} is not a number")
    if kind == "list":
        return [part.strip() for part in value.split(",") if part.strip()]
    if kind == "any":  # a declared output of a sub-orchestration has no type: JSON if it reads as JSON, else text
        try:
            return json.loads(value, parse_constant=_not_json, parse_float=_finite_float)
        except RecursionError:
            raise SimulationError("nested too deeply")
        except ValueError:
            return value
    return value


def _not_json(text):
    raise ValueError(f"{text} is not JSON")  # NaN, Infinity: taken as text


def _finite_float(text):
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise SimulationError(f"{text} is out of range")
    return number


def dry_run_fields(builder):
    """What the dry-run form asks: the run's inputs and each step's flow outputs, with their types."""
    validator = Checks.of(builder.orch).validator
    inputs = [(v.get("name"), v.get("type") or "text") for v in builder.orch.inputs or [] if isinstance(v, dict)]
    steps = []
    for stage in validator.stages:
        for step in sorted(stage.steps.all(), key=lambda s: (s.position, s.id)):
            flow = getattr(validator, "step_flows", {}).get(step.name)
            outputs = [(v.name, v.type) for v in flow.output_variables()] if flow is not None else []
            if step.type == StepType.ORCHESTRATION and step.child_orchestration:
                # The child's declared outputs become the step's (DESIGN §10); they carry no type.
                child = (builder.orch if step.child_orchestration == builder.orch.api_name
                         else validator.child_orchestration(step.child_orchestration))
                outputs = [(name, "any") for name in (child.outputs or {})] if child is not None else []
            steps.append({"step": step, "stage": stage, "outputs": outputs})
    return inputs, steps


def dry_run_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    inputs, steps = dry_run_fields(builder)
    posted = request.POST if request.method == "POST" else {}
    context = {"dry_inputs": [(n, t, posted.get(f"in__{n}", "")) for n, t in inputs],
               "dry_steps": [{**s, "values": [(n, t, posted.get(f"out__{s['step'].name}__{n}", ""))
                                              for n, t in s["outputs"]]} for s in steps],
               "dry_record": posted.get("record", ""), "panel_kind": "dryrun"}
    builder.panel = (TEMPLATES + "panel_dry_run.html", context)
    builder.selected = "dryrun"
    if request.method != "POST":
        return builder.workspace()
    try:
        run_inputs = {n: _typed(posted.get(f"in__{n}"), t) for n, t in inputs if (posted.get(f"in__{n}") or "").strip()}
        outputs = {}
        for s in steps:
            # "rework | approve": one value per visit of the step's stage (the last one repeats).
            visits = {}
            for name, kind in s["outputs"]:
                raw = posted.get(f"out__{s['step'].name}__{name}") or ""
                for index, part in enumerate(raw.split("|") if raw.strip() else []):
                    try:
                        typed = _typed(part, kind)
                    except SimulationError as exc:
                        raise SimulationError(f"outputs of {s['step'].name} › {name}, visit {index + 1}: {exc}")
                    if typed is not None:
                        visits.setdefault(index, {})[name] = typed
            per_visit = [visits.get(i, {}) for i in range(max(visits, default=-1) + 1)]
            outputs[s["step"].name] = per_visit if len(per_visit) > 1 else (per_visit[0] if per_visit else {})
        result = dry_run(builder.orch, record_ref=(posted.get("record") or "").strip() or None,
                         inputs=run_inputs, outputs=outputs)
    except SimulationError as exc:
        context["dry_problem"] = str(exc)
        return builder.refuse(f"Dry run: {exc}")
    builder.sim = result
    context["dry_result"] = result
    path = result.path
    context["dry_path"] = " → ".join(path if len(path) <= 14 else
                                     path[:8] + [f"… {len(path) - 12} more …"] + path[-4:])
    return builder.workspace()


# ------------------------------------------------------------------ versions

def impact_of(orch):
    """What activating ``orch`` changes: the version it replaces, its open runs, other starts on the same saves."""
    active = Orchestration.objects.filter(api_name=orch.api_name, status=DefinitionStatus.ACTIVE).exclude(pk=orch.pk).first()
    impact = {"active": active, "rows": [], "summary": {}, "open_runs": 0, "same_model": []}
    if active is not None:
        impact["rows"] = [r for r in diff_module.compare(active, orch) if r.status != "same"]
        impact["summary"] = diff_module.summary(impact["rows"])
        impact["open_runs"] = OrchestrationRun.objects.filter(orchestration=active, status__in=("running", "paused")).count()
    if orch.start_type == StartType.RECORD_TRIGGERED and orch.start_model:
        impact["same_model"] = list(Orchestration.objects.filter(
            status=DefinitionStatus.ACTIVE, start_type=StartType.RECORD_TRIGGERED, start_model=orch.start_model,
        ).exclude(api_name=orch.api_name))
    return impact


def activate_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    orch = builder.orch
    builder.panel = (TEMPLATES + "panel_activate.html", {"impact": impact_of(orch), "panel_kind": "activate"})
    builder.selected = "activate"
    if request.method != "POST":
        return builder.workspace()
    if not model_admin.has_activate_permission(request):
        raise PermissionDenied
    if orch.status == DefinitionStatus.ACTIVE:
        return builder.refuse(f"{orch.api_name} v{orch.version} is already active")
    try:
        lifecycle.activate(orch, user=request.user)
    except lifecycle.ActivationRefused as exc:
        return builder.refuse("Not activated: " + "; ".join(str(p) for p in exc.problems))
    target = builder.url("builder")
    response = HttpResponse(status=204)
    response["HX-Redirect"] = target
    if not request.headers.get("HX-Request"):
        return HttpResponseRedirect(target)
    return response


def new_version_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    if request.method != "POST":
        return HttpResponse("POST to make a new version", status=405)
    if not model_admin.has_add_permission(request):  # as the admin's New version button
        raise PermissionDenied
    with transaction.atomic():
        draft = lifecycle.new_version(builder.orch)
    target = reverse(url_name(model_admin, "builder"), args=[draft.pk])
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


def diff_view(model_admin, request, object_id):
    builder = Builder(model_admin, request, object_id)
    orch = builder.orch
    versions = Orchestration.objects.filter(api_name=orch.api_name).order_by("-version")
    other = None
    other_id = request.GET.get("other")
    if other_id:
        other = versions.filter(pk=_int_or_none(other_id)).first() if str(other_id).isdigit() else None
        if other is None:
            return TemplateResponse(request, TEMPLATES + "diff.html", {
                **model_admin.admin_site.each_context(request), "orch": orch, "versions": versions,
                "problem": f"{orch.api_name}: no version with id {other_id!r} to compare with",
                "urls": {"page": builder.url("builder"), "diff": builder.url("builder_diff")},
                "title": f"Compare {orch.api_name} versions"}, status=400)
    else:
        other = versions.exclude(pk=orch.pk).first()
    rows = diff_module.compare(other, orch) if other is not None else []
    return TemplateResponse(request, TEMPLATES + "diff.html", {
        **model_admin.admin_site.each_context(request), "orch": orch, "other": other, "versions": versions,
        "rows": rows, "summary": diff_module.summary(rows), "opts": model_admin.model._meta,
        "urls": {"page": builder.url("builder"), "diff": builder.url("builder_diff")},
        "title": f"Compare {orch.api_name} v{other.version if other else '?'} with v{orch.version}",
    })


# ------------------------------------------------------------------ YAML view

def kept_yaml_key(orch):
    return f"baton-builder-yaml-{orch.pk}"


def yaml_view(model_admin, request, object_id):
    """The version as definition-file YAML; a draft can be replaced by edited YAML (checked as import checks it).

    Text typed but not applied is kept in the session (``keep=1``, sent by
    builder.js as you type and when the box loses focus, and a refused text
    too), so going to the canvas and back shows it again until it is applied
    or discarded. The checks are listed with the line of the text they are about.
    """
    from ..definition_files import dump_yaml, load_yaml, parse_document
    from ..spec import orchestration_to_dict, replace_draft_content

    builder = Builder(model_admin, request, object_id)
    orch = builder.orch
    key = kept_yaml_key(orch)
    stored = dump_yaml({"orchestrations": [orchestration_to_dict(orch)]})
    kept = request.session.get(key) if builder.editable else None
    context = {"yaml_text": stored, "panel_kind": "yaml", "yaml_problems": [], "yaml_kept": False}
    builder.panel = (TEMPLATES + "panel_yaml.html", context)
    builder.selected = "yaml"

    def show_checks(text):
        document, problems = load_yaml(text)
        if not problems:
            context["yaml_checks"] = with_lines(document, Checks.of(orch).problems)

    if request.method != "POST":
        if kept and kept.get("text", "").strip() != stored.strip():
            context.update(yaml_text=kept["text"], yaml_kept=True, yaml_stale=kept.get("base") != stored)
        else:
            request.session.pop(key, None)
            show_checks(stored)
        return builder.workspace()
    if not builder.editable:
        return builder.refuse(f"{orch} cannot be changed; make a new version from it", status=409)
    posted = request.POST.get("yaml", "").replace("\r\n", "\n")
    if request.POST.get("discard"):
        request.session.pop(key, None)
        show_checks(stored)
        builder.message = "Unapplied YAML discarded: this is the draft as stored."
        return builder.workspace()
    if request.POST.get("keep"):
        if posted.strip() == stored.strip() or len(posted) > MAX_YAML_CHARS:
            request.session.pop(key, None)
        elif not kept or kept.get("text") != posted:
            request.session[key] = {"text": posted, "base": kept.get("base", stored) if kept else stored}
        return HttpResponse(status=204)
    context["yaml_text"] = posted

    def refused(problems):
        context["yaml_problems"] = [str(p) for p in problems]
        if len(posted) <= MAX_YAML_CHARS:
            request.session[key] = {"text": posted, "base": stored}
        context["yaml_kept"] = True
        return builder.refuse("YAML not applied: " + "; ".join(context["yaml_problems"]))

    if len(posted) > MAX_YAML_CHARS:
        return refused([f"the YAML text is {len(posted):,} characters long; at most {MAX_YAML_CHARS:,}"])
    try:
        data = parse_document(posted)
    except Exception as exc:  # DefinitionFileError lists every problem with its line
        return refused(getattr(exc, "problems", [exc]))
    items = data.get("orchestrations") or []
    extra = [k for k in data if k != "orchestrations"]
    if len(items) != 1 or extra or items[0].get("api_name") != orch.api_name:
        return refused([f"the YAML must hold exactly one orchestration named {orch.api_name} under orchestrations: "
                        f"(found {len(items)}{'; also ' + ', '.join(extra) if extra else ''})"])
    edits.change(orch, "Edited the YAML", lambda locked: replace_draft_content(locked, items[0]))
    request.session.pop(key, None)
    orch.refresh_from_db()
    # The checks of the applied draft, with the lines of the text just applied.
    context["yaml_checks"] = with_lines(data, Checks.of(orch).problems)
    context["yaml_text"] = posted
    builder.message = "YAML applied."
    return builder.workspace()
