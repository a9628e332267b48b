"""The flow designer's pages and htmx endpoints (wired in by ``FlowAdmin.get_urls``).

Every endpoint needs the admin's change permission for flows. A draft is
edited; an active or obsolete version is shown read-only with "New
version". Each change is one POST that answers the whole designer again
(``flows/designer/_designer.html``) with the validator's checks; a change
that cannot be made answers 400 with the designer as it was and the
refusal, naming its place, at the top. Nothing here answers 500 for what a
person can type.

The live preview is the Work Guide's own form: ``flows.screens.ScreenForm``
built from the draft's ``FlowSpec``, each field drawn by
``workguide/_field.html``.
"""
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from flows.compiled import FlowSpec, thaw
from flows.expressions import ExpressionError, compile_expression, display_text, merge_fields, render_merge
from flows.models import ELEMENT_TYPES, FIELD_TYPES, VARIABLE_TYPES, Flow, FlowType
from flows.runtime import FlowError
from flows.screens import ScreenForm
from flows.spec import flow_to_dict, replace_flow_content
from flows.validation import ELEMENT_KEYS, Problem, place_of
from flows.versioning import DefinitionStatus

from . import checks as pins
from .edits import (
    CHOICE_TYPES, ELEMENT_SCALARS, EXPRESSION_MAPS, EditRefused, apply_edit, choices_text, literal_text,
)

VIEWS = ("designer", "yaml")
MAX_EXPRESSION_CHARS = 20_000
MAX_YAML_CHARS = 1_000_000


def designer_urls(model_admin):
    """The designer's URL patterns, to go before the admin's own (``<path:object_id>/`` catches the rest)."""
    wrap = model_admin.admin_site.admin_view
    views = FlowDesigner(model_admin)
    return [
        path("<path:object_id>/builder/", wrap(views.page), name="flows_flow_builder"),
        path("<path:object_id>/builder/edit/", wrap(views.edit), name="flows_flow_builder_edit"),
        path("<path:object_id>/builder/yaml/", wrap(views.yaml), name="flows_flow_builder_yaml"),
        path("<path:object_id>/builder/preview/", wrap(views.preview), name="flows_flow_builder_preview"),
        path("<path:object_id>/builder/expression/", wrap(views.expression), name="flows_flow_builder_expression"),
        path("<path:object_id>/builder/activate/", wrap(views.activate), name="flows_flow_builder_activate"),
        path("<path:object_id>/builder/new-version/", wrap(views.new_version), name="flows_flow_builder_new_version"),
    ]


def yaml_of(data):
    from orchestration.definition_files import dump_yaml

    return dump_yaml({"flows": [data]})


def validator_problems(flow):
    from orchestration import lifecycle

    try:
        return list(lifecycle.validate(flow))
    except Exception as exc:  # a broken draft must give a message, not a 500
        return [Problem(flow.api_name, f"cannot be checked: {exc}")]


# --------------------------------------------------------------------------- what the templates show

def _screens(data, counts):
    out = []
    for s, screen in enumerate(data.get("screens") or []):
        fields = []
        for f, field in enumerate(screen.get("fields") or []):
            fields.append({
                "index": f, "key": f"s{s}f{f}", "name": field.get("name"), "type": field.get("type", "text"),
                "label": field.get("label", ""), "required": field.get("required", False),
                "visible_if": field.get("visible_if", ""), "problems": counts.get(f"s{s}f{f}", 0),
            })
        out.append({
            "index": s, "key": f"s{s}", "name": screen.get("name"), "label": screen.get("label", ""),
            "validate": (screen.get("validate") or {}).get("condition", ""), "fields": fields,
            "problems": counts.get(f"s{s}", 0) + counts.get(f"s{s}*", 0), "last": s == len(data["screens"]) - 1,
        })
    return out


def _summary(element):
    kind = element["type"]
    if kind == "assign":
        return ", ".join(element.get("set") or {}) or "nothing yet"
    if kind == "decision":
        return ", ".join(f"→ {o.get('goto')}" for o in element.get("outcomes") or []) or "no outcomes yet"
    for key in ("model", "action", "url", "to"):
        if element.get(key):
            return str(element[key])
    return ""


def _elements(data, counts):
    items = data.get("elements") or []
    return [{"index": i, "key": f"e{i}", "type": e["type"], "name": e.get("name", ""), "summary": _summary(e),
             "problems": counts.get(f"e{i}", 0), "last": i == len(items) - 1} for i, e in enumerate(items)]


def _variables(data, counts):
    out = {}
    for key, short in (("inputs", "in"), ("outputs", "out")):
        out[key] = [{"index": i, "key": f"{short}{i}", "name": v.get("name"), "type": v.get("type", "text"),
                     "required": v.get("required", False), "problems": counts.get(f"{short}{i}", 0)}
                    for i, v in enumerate(data.get(key) or [])]
    return out


def _selected(data, selection):
    """The property panel for ``selection`` (falls back to the flow when it names nothing)."""
    import re

    # Indexes of at most six digits: a longer one names nothing, and int() refuses over 4,300 digits (a 500).
    found = re.fullmatch(r"s(\d{1,6})(?:f(\d{1,6}))?|(in|out)(\d{1,6})|e(\d{1,6})", selection or "")
    screens = data.get("screens") or []
    if found and found.group(1) is not None:
        s = int(found.group(1))
        if s < len(screens):
            screen = screens[s]
            if found.group(2) is None:
                validate = screen.get("validate") or {}
                return {"kind": "screen", "key": f"s{s}", "screen": s, "item": screen,
                        "place": place_of(data.get("api_name"), f"screen {screen.get('name')}"),
                        "validate": validate.get("condition", ""), "validate_message": validate.get("message", "")}
            f = int(found.group(2))
            fields = screen.get("fields") or []
            if f < len(fields):
                field = fields[f]
                return {"kind": "field", "key": f"s{s}f{f}", "screen": s, "field": f, "item": field,
                        "place": place_of(data.get("api_name"), f"screen {screen.get('name')}", f"field {field.get('name')}"),
                        "type": field.get("type", "text"), "choices": choices_text(field.get("choices")),
                        "has_choices": field.get("type") in CHOICE_TYPES}
    if found and found.group(3):
        key = "inputs" if found.group(3) == "in" else "outputs"
        i = int(found.group(4))
        items = data.get(key) or []
        if i < len(items):
            return {"kind": "variable", "key": selection, "direction": key[:-1], "index": i, "item": items[i],
                    "place": place_of(data.get("api_name"), f"{key}.{items[i].get('name')}"),
                    "default": literal_text(items[i].get("default"))}
    if found and found.group(5):
        i = int(found.group(5))
        items = data.get("elements") or []
        if i < len(items):
            name = items[i].get("name")
            return {"kind": "element", "key": selection, "index": i, "item": items[i],
                    "place": place_of(data.get("api_name"), f"elements[{i}]" + (f" ({name})" if name else "")),
                    "settings": _element_settings(items[i])}
    return {"kind": "flow", "key": "flow", "item": data}


def _element_settings(element):
    """The boxes of an element's property panel, one per setting of its type."""
    settings = []
    for key in sorted(ELEMENT_KEYS[element["type"]]):
        value = element.get(key)
        if key in EXPRESSION_MAPS:
            rows = [{"name": k, "expr": v} for k, v in (value or {}).items()] + [{"name": "", "expr": ""}]
            settings.append({"key": key, "how": "map", "rows": rows})
        elif key == "outcomes":
            rows = [dict(o) for o in value or []] + [{"name": "", "condition": "", "goto": ""}]
            settings.append({"key": key, "how": "outcomes", "rows": rows})
        else:
            how = ELEMENT_SCALARS[key]
            if how == "names" and isinstance(value, list):
                value = ", ".join(value)
            expression = key in ("to", "subject", "url") or (key == "body" and element["type"] in (
                "send_email", "http_request"))
            merge = key in ("subject", "url") or (key == "body" and element["type"] == "send_email")
            settings.append({"key": key, "how": how, "value": "" if value is None else value,
                             "expression": expression, "merge": merge})
    return settings


# A sample value of each input type for the preview: merge text and conditions that compare an input
# (``discount > 20.0``) draw as they will for a person, not as an error about null. Records have no sample.
SAMPLE_BY_TYPE = {"text": lambda name: name, "number": lambda name: 0.0, "boolean": lambda name: False,
                  "date": lambda name: timezone.localdate().isoformat(),
                  "datetime": lambda name: timezone.now().replace(microsecond=0).isoformat(),
                  "list": lambda name: []}


def sample_inputs(spec):
    """``{name: value}``: each input's default, else a sample of its type (records: none)."""
    samples = {}
    for var in spec.inputs:
        if var.default is not None:
            samples[var.name] = thaw(var.default)
        elif var.type in SAMPLE_BY_TYPE:
            samples[var.name] = SAMPLE_BY_TYPE[var.type](var.name)
    return samples


class PreviewForm(ScreenForm):
    """The Work Guide's screen form, except that merge text it cannot draw (an expression that fails on the
    sample inputs) is kept aside as a note instead of replacing the text."""

    def _merge(self, f):
        try:
            return render_merge(f.text, self.scope, self._place(f.name))
        except ExpressionError as exc:
            self.merge_problems.append(str(exc))
            return ""

    def __init__(self, *args, **kwargs):
        self.merge_problems = []
        super().__init__(*args, **kwargs)


def _shown(value):
    """A sample value written as an expression would: text quoted, an empty list as []."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return display_text(value)


def _preview(spec, screen_index, data=None, check=False):
    """``(screen, form, problem)``: the Work Guide's form of one screen, or why it cannot be drawn.
    The form carries ``samples`` (the input values it was drawn with) and ``merge_problems``."""
    if spec is None or not spec.screens:
        return None, None, ""
    screen = spec.screens[min(screen_index, len(spec.screens) - 1)]
    samples = sample_inputs(spec)
    try:
        form = PreviewForm(data, spec=spec, screen=screen, inputs=samples, values={}, prefix="preview")
        form.samples = [(var.name, _shown(samples.get(var.name))) for var in spec.inputs]
        if check:
            form.is_valid()
        [str(bound) for bound in form]  # draw now: a broken field shows here, not halfway through the page
    except (FlowError, ExpressionError, ValueError, TypeError, KeyError) as exc:
        return screen, None, f"This screen cannot be drawn yet: {exc}"
    form.auto_id = "preview-%s"
    return screen, form, ""


class FlowDesigner:
    def __init__(self, model_admin):
        self.admin = model_admin

    # -- access -------------------------------------------------------------------
    def _flow(self, request, object_id):
        if not self.admin.has_change_permission(request, None):  # the model's permission; frozen versions read-only
            raise PermissionDenied
        try:
            return get_object_or_404(Flow, pk=int(object_id))
        except (TypeError, ValueError):
            raise Http404("No such flow") from None

    def _url(self, name, flow):
        return reverse(f"{self.admin.admin_site.name}:{name}", args=[flow.pk])

    # -- drawing -------------------------------------------------------------------
    def context(self, request, flow, *, data=None, selection="flow", view="designer", refused=(), yaml_text=None,
                yaml_checks=None, preview_data=None):
        data = flow_to_dict(flow) if data is None else data
        problems = validator_problems(flow)
        checks = pins.pin(data, problems)
        counts = pins.targets(checks)
        if view == "yaml" and yaml_checks is None and checks:
            from orchestration.definition_files import load_yaml

            document, _ = load_yaml(yaml_of(data))
            yaml_checks = pins.pin(document["flows"][0], problems, document=document)
        panel = _selected(data, selection)
        editable = flow.status == DefinitionStatus.DRAFT
        spec = screen_index = None
        if flow.type == FlowType.SCREEN and data.get("screens"):
            spec = self._spec(flow)
            screen_index = panel.get("screen", 0)
        screen, form, preview_problem = _preview(spec, screen_index or 0, preview_data)
        return {
            **self.admin.admin_site.each_context(request),
            "opts": Flow._meta, "title": f"Flow designer: {flow.api_name} v{flow.version}",
            "flow": flow, "data": data, "editable": editable, "view": view, "selection": panel["key"],
            "panel": panel, "screens": _screens(data, counts), "elements": _elements(data, counts),
            "variables": _variables(data, counts), "checks": checks, "flow_problems": counts.get("flow", 0),
            "refused": list(refused), "panel_checks": [c for c in checks if c.target == panel["key"]], "is_screen_flow": data.get("type") == FlowType.SCREEN,
            "field_types": FIELD_TYPES, "element_types": ELEMENT_TYPES, "variable_types": VARIABLE_TYPES,
            "flow_types": FlowType.choices, "choice_types": CHOICE_TYPES,
            "preview_screen": screen, "preview_form": form, "preview_problem": preview_problem,
            "preview_index": screen_index or 0,
            "yaml_text": yaml_of(data) if yaml_text is None else yaml_text, "yaml_checks": yaml_checks,
            "urls": {name: self._url(f"flows_flow_builder{suffix}", flow) for name, suffix in (
                ("page", ""), ("edit", "_edit"), ("yaml", "_yaml"), ("preview", "_preview"),
                ("expression", "_expression"), ("activate", "_activate"), ("new_version", "_new_version"))},
            "change_url": reverse(f"{self.admin.admin_site.name}:flows_flow_change", args=[flow.pk]),
            "may_activate": self.admin.has_activate_permission(request) and editable,
            "may_copy": self.admin.has_add_permission(request),
        }

    def _spec(self, flow):
        try:
            return FlowSpec.load(flow.pk)
        except Exception:  # a draft that cannot be read as a spec is previewed as nothing; the checks say why
            return None

    def _render(self, request, context, status=200):
        template = "baton_admin/designer/page.html"
        if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
            template = "baton_admin/designer/_designer.html"
        return TemplateResponse(request, template, context, status=status)

    # -- endpoints -----------------------------------------------------------------
    def page(self, request, object_id):
        flow = self._flow(request, object_id)
        view = request.GET.get("view") if request.GET.get("view") in VIEWS else "designer"
        return self._render(request, self.context(request, flow, selection=request.GET.get("sel", "flow"), view=view))

    def _draft_or_refusal(self, request, flow):
        if request.method != "POST":
            raise PermissionDenied
        if flow.status != DefinitionStatus.DRAFT:
            refusal = Problem(f"{flow.api_name} v{flow.version}",
                              f"is {flow.status} and cannot be changed; use “New version” to edit a draft copy")
            return self._render(request, self.context(request, flow, refused=[refusal]), status=400)
        return None

    def edit(self, request, object_id):
        flow = self._flow(request, object_id)
        refusal = self._draft_or_refusal(request, flow)
        if refusal:
            return refusal
        view = request.POST.get("view") if request.POST.get("view") in VIEWS else "designer"
        selection = request.POST.get("sel", "flow")
        # A click that moved the focus out of the property panel brings the panel's unsaved values along
        # (designer.js, as "panel-<name>"): they are applied first, so the click loses no typing.
        pending = QueryDict(mutable=True)
        for key in request.POST:
            if key.startswith("panel-"):
                pending.setlist(key[len("panel-"):], request.POST.getlist(key))
        with transaction.atomic():
            flow = Flow.objects.select_for_update().get(pk=flow.pk)
            data = new = flow_to_dict(flow)
            try:
                for form in (pending, request.POST):
                    if form.get("op"):
                        new, selection = apply_edit(new, form)
            except EditRefused as exc:
                context = self.context(request, flow, data=data, selection=selection, refused=exc.problems)
                return self._render(request, context, status=400)
            if new != data:
                replace_flow_content(flow, new)
                data = new
        selection = request.POST.get("then_sel") or selection
        return self._render(request, self.context(request, flow, data=data, selection=selection, view=view))

    def yaml(self, request, object_id):
        """Apply the YAML view's text: the same checks as an import, line-numbered; refused text stays in the box."""
        from orchestration.definition_files import check_duplicates, check_shape, load_yaml

        flow = self._flow(request, object_id)
        refusal = self._draft_or_refusal(request, flow)
        if refusal:
            return refusal
        text = request.POST.get("yaml", "").replace("\r\n", "\n")
        then = request.POST.get("then") if request.POST.get("then") in VIEWS else "yaml"
        with transaction.atomic():
            flow = Flow.objects.select_for_update().get(pk=flow.pk)
            current = flow_to_dict(flow)
            if text.strip() == yaml_of(current).strip():
                return self._render(request, self.context(request, flow, data=current, view=then))
            if len(text) > MAX_YAML_CHARS:
                problems = [Problem("the YAML text", f"is {len(text):,} characters long; at most {MAX_YAML_CHARS:,}")]
                document = None
            else:
                document, problems = load_yaml(text)
                if not problems:
                    problems = check_shape(document) + check_duplicates(document)
                if not problems:
                    problems = self._one_flow_problems(flow, document)
            if problems:
                yaml_checks = [pins.Check(p.place, p.message, "flow") for p in problems]
                context = self.context(request, flow, data=current, view="yaml", yaml_text=text,
                                       yaml_checks=yaml_checks)
                return self._render(request, context, status=400)
            data = document["flows"][0]
            replace_flow_content(flow, data)
        # What the validator finds is shown with the lines of the text just applied.
        flow.refresh_from_db()
        stored = flow_to_dict(flow)
        yaml_checks = pins.pin(data, validator_problems(flow), document=document)
        context = self.context(request, flow, data=stored, view=then, yaml_text=text if then == "yaml" else None,
                               yaml_checks=yaml_checks)
        return self._render(request, context)

    @staticmethod
    def _one_flow_problems(flow, document):
        document = document or {}
        problems = []
        others = [key for key in document if key != "flows"]
        if others:
            problems.append(Problem(others[0], "this view holds one flow; define queues and orchestrations elsewhere"))
        flows = document.get("flows") or []
        if len(flows) != 1:
            problems.append(Problem("flows", f"this view holds exactly one flow ({flow.api_name}), found {len(flows)}"))
        elif flows[0].get("api_name") != flow.api_name:
            problems.append(Problem("flows[0].api_name", f"is {flows[0].get('api_name')!r}; this is the draft of "
                                                         f"{flow.api_name!r} (a new name is a new flow: import it)"))
        return problems

    def preview(self, request, object_id):
        """The preview of one screen redrawn from what is typed into it (visibility, merge text, checks)."""
        flow = self._flow(request, object_id)
        if request.method != "POST":
            raise PermissionDenied
        try:
            index = max(int(request.POST.get("preview_screen", 0)), 0)
        except ValueError:
            index = 0
        spec = self._spec(flow) if flow.type == FlowType.SCREEN else None
        screen, form, problem = _preview(spec, index, request.POST, check=bool(request.POST.get("check")))
        context = {"flow": flow, "preview_screen": screen, "preview_form": form, "preview_problem": problem,
                   "preview_index": index, "urls": {"preview": self._url("flows_flow_builder_preview", flow)},
                   "checked": bool(request.POST.get("check"))}
        return TemplateResponse(request, "baton_admin/designer/_preview.html", context)

    def expression(self, request, object_id):
        """Check one expression box as it is typed: does it compile, are the names it reads in scope."""
        from flows.names import TYPE_NAMES, reads
        from flows.validation import flow_scope_names

        flow = self._flow(request, object_id)
        if request.method != "POST":
            raise PermissionDenied
        key = request.POST.get("check", "")
        source = request.POST.get(key, "") if key else ""
        place = request.POST.get("place", "") or place_of(flow.api_name, key)
        merge = request.POST.get("merge") == "1"
        result = {"ok": False, "message": "", "reads": []}
        if not source.strip():
            result["message"] = ""
        elif len(source) > MAX_EXPRESSION_CHARS:
            result["message"] = f"{place}: is {len(source):,} characters long; at most {MAX_EXPRESSION_CHARS:,}"
        else:
            try:
                expressions = merge_fields(source) if merge else [source]
                for expression in expressions:
                    compile_expression(expression, place)
                names = flow_scope_names(flow, list(flow.variables.all()))
                read = sorted({r.name for e in expressions for r in reads(e)} - set(TYPE_NAMES))
                missing = [n for n in read if names is not None and n not in names]
                if missing:
                    result["message"] = (f"{place}: {', '.join(missing)} — not in scope "
                                         f"(names: {', '.join(sorted(names))})")
                else:
                    result.update(ok=True, reads=read)
            except ExpressionError as exc:
                result["message"] = str(exc)
        return TemplateResponse(request, "baton_admin/designer/_expression.html", {"result": result})

    def activate(self, request, object_id):
        flow = self._flow(request, object_id)
        if request.method != "POST" or not self.admin.has_activate_permission(request):
            raise PermissionDenied
        self.admin._activate(request, flow)
        return HttpResponseRedirect(self._url("flows_flow_builder", flow))

    def new_version(self, request, object_id):
        flow = self._flow(request, object_id)
        if request.method != "POST" or not self.admin.has_add_permission(request):
            raise PermissionDenied
        draft = self.admin._new_version(request, flow) or flow
        return HttpResponseRedirect(self._url("flows_flow_builder", draft))

