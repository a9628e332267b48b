"""What the Orchestration admin adds for designers: the path diagram and the dry run.

``DiagramAdminMixin`` goes before ``DefinitionAdmin`` in ``OrchestrationAdmin``'s
bases. It

* shows the version's path diagram (``orchestration.diagram``) on its change
  page, above the stages;
* adds a "Dry run" button there, leading to
  ``admin/orchestration/orchestration/<id>/dry-run/``: a small form (record,
  inputs, step outputs) that walks the path in memory with
  ``orchestration.simulate`` and shows the result as text and as a diagram
  coloured with where the walk went. Nothing is stored. It is meant for
  drafts, and works on any version.
"""
from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path

from .diagram import render_diagram
from .plan import Plan
from .simulate import SimulationError, dry_run, parse_inputs, parse_outputs


class DryRunForm(forms.Form):
    record = forms.CharField(
        required=False, max_length=200, help_text='The run\'s record as "app_label.model:pk" (optional).',
        widget=forms.TextInput(attrs={"placeholder": "demo.employee:1", "size": 30}),
    )
    inputs = forms.CharField(
        required=False, help_text="The run's inputs as a JSON object (optional).",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70, "spellcheck": "false"}),
    )
    outputs = forms.CharField(
        required=False,
        help_text='One line per step: STEP=JSON, e.g. review={"decision": "approve"}. A JSON list gives one '
                  "object per visit (for loops). Steps not named complete with {}.",
        widget=forms.Textarea(attrs={"rows": 5, "cols": 70, "spellcheck": "false"}),
    )

    def clean_inputs(self):
        try:
            return parse_inputs(self.cleaned_data.get("inputs"))
        except SimulationError as exc:
            raise forms.ValidationError(str(exc))

    def clean_outputs(self):
        try:
            return parse_outputs((self.cleaned_data.get("outputs") or "").splitlines())
        except SimulationError as exc:
            raise forms.ValidationError(str(exc))


class DiagramAdminMixin:
    change_form_template = "admin/orchestration/orchestration/baton_change_form.html"

    def _diagram(self, obj, state=None):
        try:
            return render_diagram(Plan.from_model(obj), state, dom_id=f"orchestration-{obj.pk}-diagram")
        except Exception as exc:  # a half-edited draft must still open
            return f"The diagram could not be drawn: {exc}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.model._default_manager.filter(pk=unquote(object_id)).first() if object_id else None
        if obj is not None:
            extra_context["baton_diagram"] = self._diagram(obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("<path:object_id>/dry-run/", self.admin_site.admin_view(self.dry_run_view),
                 name="%s_%s_dry_run" % info),
        ] + super().get_urls()

    def dry_run_view(self, request, object_id):
        obj = self.model._default_manager.filter(pk=unquote(object_id)).first()
        if obj is None:
            raise Http404("no such orchestration version")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        form = DryRunForm(request.POST or None)
        result = problem = None
        diagram = self._diagram(obj)
        if request.method == "POST" and form.is_valid():
            try:
                result = dry_run(obj, record_ref=form.cleaned_data["record"].strip() or None,
                                 inputs=form.cleaned_data["inputs"], outputs=form.cleaned_data["outputs"])
            except SimulationError as exc:
                problem = str(exc)
            else:
                diagram = self._diagram(obj, result.state())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": obj,
            "title": f"Dry run of {obj.api_name} v{obj.version}",
            "form": form,
            "result": result,
            "problem": problem,
            "diagram": diagram,
        }
        status = 400 if request.method == "POST" and (problem or not form.is_valid()) else 200
        return TemplateResponse(request, "admin/orchestration/orchestration/dry_run.html", context, status=status)
