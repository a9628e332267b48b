"""Admin for flow definitions, and the lifecycle tools every versioned definition shares.

``DefinitionAdmin`` is the base of the Flow and Orchestration admins:

* list filters by status and api_name, search;
* the actions Validate, Activate and New version (on the list and as
  buttons on a version's page), each reporting the validator's problems as
  one message per problem;
* active and obsolete versions are shown read-only, their parts included;
* import (upload a YAML definition file) and export (download the selected
  definitions as YAML).

The lifecycle (``orchestration.lifecycle``) and the definition file code
(``orchestration.definition_files``) are orchestration's: activating a flow
checks the orchestrations that call it, and a definition file holds both
kinds. This admin is the one place flows reaches up into orchestration, and
it does so inside the actions that need them, so that loading any flows
module (this one included) loads nothing of orchestration: no import circle
between the apps (tests/config/test_import_graph.py).
"""
import json

import nested_admin
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import slugify
from nested_admin.formsets import NestedInlineFormSet

from .models import FIELD_TYPES, Flow, FlowElement, FlowType, FlowVariable, Screen, ScreenField
from .validation import ELEMENT_KEYS
from .versioning import DefinitionStatus, VersionedDefinition

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


# --- Frozen versions --------------------------------------------------------

def is_frozen(obj):
    """True when ``obj`` (a definition or one of its parts) belongs to an active or obsolete version."""
    if obj is None:
        return False
    if isinstance(obj, VersionedDefinition):
        owner = obj
    else:
        try:
            owner = obj.owning_definition()
        except ObjectDoesNotExist:
            # A part added in the same save as its parent (a screen with the new
            # flow, a step with a new stage) has no owner yet: it is new, so a draft.
            return False
    return owner is not None and owner.pk is not None and owner.status != DefinitionStatus.DRAFT


class DefinitionPartFormSet(NestedInlineFormSet):
    """The formset of a definition's parts: the rows under a dropped parent row are dropped too.

    django-nested-admin saves the rows nested under a new parent that is
    deleted in the same save (a new screen removed again, a stage turned into
    a decision), which fails; treating them as deleted keeps them out.
    """

    def rows_apply(self):
        return True

    def parent_dropped(self):
        parent_form = getattr(self, "parent_form", None)  # set by django-nested-admin on nested formsets
        parent_formset = getattr(parent_form, "parent_formset", None)
        if parent_formset is None or parent_formset.can_delete is False:
            return False
        parent_form.errors  # cleans the parent row first if it was not yet
        return bool(parent_formset._should_delete_form(parent_form))

    def _should_delete_form(self, form):
        return not self.rows_apply() or self.parent_dropped() or super()._should_delete_form(form)


def rows_only_when(selector, *values):
    """A formset class whose rows belong only to a parent whose ``selector`` is one of ``values``.

    Steps belong to stages, outcomes to decisions, screens to screen flows:
    when the parent is of another kind its rows of this inline (hidden in the
    browser) are treated as deleted, so they are neither validated nor kept.
    """

    class RowsOfKindFormSet(DefinitionPartFormSet):
        def rows_apply(self):
            parent_form = getattr(self, "parent_form", None)
            if parent_form is not None:
                chosen = parent_form[selector].value() if selector in parent_form.fields else None
            else:
                chosen = getattr(self.instance, selector, None)
            return not chosen or chosen in values  # no kind chosen yet: keep, the form says what is missing

    return RowsOfKindFormSet


class FrozenAwareInlineMixin:
    """An inline that cannot be changed, added to or deleted from on a frozen version.

    ``obj`` is the inline's parent (the definition for top-level inlines, the
    parent part for nested ones); the admin also notes on the request whether
    the version being shown is frozen, for nested forms with no parent yet.
    """

    formset = DefinitionPartFormSet

    def _frozen(self, request, obj):
        return getattr(request, "_baton_frozen", False) or is_frozen(obj)

    def has_add_permission(self, request, obj=None):
        return not self._frozen(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._frozen(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._frozen(request, obj) and super().has_delete_permission(request, obj)


# --- Fields that depend on an element's kind ----------------------------------

class KindDependentForm(forms.ModelForm):
    """A model form whose fields depend on the value of a choice field (a kind, a type).

    ``kind_fields`` maps each such selector field to the fields each of its
    values uses, e.g. ``{"kind": {"stage": ["next"], "decision": ["default_goto"]}}``.
    A field named under a selector but not under its chosen value does not
    apply: the browser hides it (``baton_admin/kind_fields.js`` reads the map
    from the selector's ``data-baton-kind``), and on save it is reset to its
    model default and its errors are dropped, so values nobody can see are
    neither stored nor in the way. A name starting with "@" is a nested
    inline group (its rows are dropped by ``rows_only_when``).
    """

    kind_fields = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for selector, by_value in self.kind_fields.items():
            if selector in self.fields:
                self.fields[selector].widget.attrs["data-baton-kind"] = json.dumps(by_value)

    @classmethod
    def fields_not_applying(cls, values):
        """The field names (no groups) that the selectors' ``values`` leave out."""
        left_out = set()
        for selector, by_value in cls.kind_fields.items():
            chosen = values.get(selector)
            if chosen in by_value:
                left_out |= set().union(*by_value.values()) - set(by_value[chosen])
        return {name for name in left_out if not name.startswith("@")}

    def clean(self):
        cleaned = super().clean()
        model_meta = self._meta.model._meta
        for name in self.fields_not_applying(cleaned):
            if name in self.fields:
                self._errors.pop(name, None)
                cleaned[name] = model_meta.get_field(name).get_default()
        return cleaned


def with_article(words):
    return f"{'an' if words[:1] in 'aeiou' else 'a'} {words}"


# --- Compact widgets --------------------------------------------------------------

def small_textarea(rows=2, cols=60):
    return forms.Textarea(attrs={"rows": rows, "cols": cols, "class": "baton-compact", "spellcheck": "false"})


class LiteralField(forms.JSONField):
    """A JSON literal that shows as an empty box when there is none (not ``null``)."""

    def prepare_value(self, value):
        if value is None:
            return ""
        return super().prepare_value(value)


# --- Flow pickers -----------------------------------------------------------------

FLOW_TYPE_GROUPS = {FlowType.SCREEN: "Screen flows", FlowType.AUTOLAUNCHED: "Autolaunched flows",
                    FlowType.EVALUATION: "Evaluation flows"}


def known_flows(request):
    """{api_name: (type, text)} for every flow, read once per request; the text shows the active version."""
    cached = getattr(request, "_baton_known_flows", None)
    if cached is not None:
        return cached
    latest, active = {}, {}
    rows = Flow.objects.order_by("api_name", "-version").values_list("api_name", "type", "version", "status", "label")
    for api_name, type_, version, status, label in rows:
        latest.setdefault(api_name, (type_, version, status, label))
        if status == DefinitionStatus.ACTIVE:
            active[api_name] = (type_, version, label)
    flows = {}
    for api_name, (type_, version, status, label) in latest.items():
        if api_name in active:
            type_, active_version, label = active[api_name]
            state = f"v{active_version} active"
        else:
            state = f"no active version; v{version} {status}"
        flows[api_name] = (type_, f"{api_name} — {label} ({state})" if label else f"{api_name} ({state})")
    if request is not None:
        request._baton_known_flows = flows
    return flows


class FlowSelect(forms.Select):
    """A select of flows whose options carry their flow type (``data-flow-type``) for the browser to filter."""

    def __init__(self, flow_types=None, attrs=None, choices=()):
        super().__init__(attrs, choices)
        self.flow_types = flow_types or {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value in self.flow_types:
            option["attrs"]["data-flow-type"] = self.flow_types[value]
        return option


class FlowChoiceField(forms.ChoiceField):
    """Pick a flow by api_name among the stored flows of ``types``; the api_name is what is stored.

    A stored name that matches no flow (deleted, or not imported yet) stays
    selectable on its own row's form (see ``keep_unknown_flows``), so opening
    and saving a draft never changes it; the validator reports it.
    """

    def __init__(self, flows, types, **kwargs):
        kwargs.pop("max_length", None)
        kwargs.pop("empty_value", None)
        self.flow_types = {name: type_ for name, (type_, _text) in flows.items() if type_ in types}
        groups = [
            (FLOW_TYPE_GROUPS[type_], [(name, text) for name, (t, text) in flows.items() if t == type_])
            for type_ in types
        ]
        kwargs.setdefault("widget", FlowSelect(self.flow_types))
        super().__init__(choices=[("", "---------")] + [g for g in groups if g[1]], **kwargs)

    def add_unknown(self, api_name):
        if api_name and api_name not in self.flow_types:
            self.choices = list(self.choices) + [(api_name, f"{api_name} (no such flow)")]


def flow_field(db_field, request, types, **kwargs):
    """The FlowChoiceField for ``db_field`` (a CharField holding an api_name)."""
    return FlowChoiceField(
        known_flows(request), types, required=not db_field.blank, label=db_field.verbose_name.capitalize(),
        help_text=db_field.help_text, **{k: v for k, v in kwargs.items() if k in ("widget",)},
    )


class KeepUnknownFlowsMixin:
    """Let a row keep a flow name that matches no stored flow (see ``FlowChoiceField``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if isinstance(field, FlowChoiceField):
                field.add_unknown(self.initial.get(name))


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Definition file (YAML)",
        help_text="Queues, flows and orchestrations in the definition file format. All or nothing.",
    )
    activate = forms.BooleanField(required=False, label="Activate what the file defines")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KB.")
        raw = upload.read()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.")


def problems_of(exc):
    """The problems an import or activation refusal carries, as text, one per problem."""
    problems = getattr(exc, "problems", None) or getattr(exc, "errors", None)
    if problems:
        return [str(p) for p in problems]
    messages_ = getattr(exc, "messages", None)
    if messages_ and isinstance(messages_, (list, tuple)):
        return [str(m) for m in messages_]
    return [str(exc) or exc.__class__.__name__]


class DefinitionAdmin(nested_admin.NestedModelAdmin):
    """Shared admin for versioned definitions (flows and orchestrations)."""

    change_form_template = "admin/baton/definition_change_form.html"
    change_list_template = "admin/baton/definition_change_list.html"
    list_display = ("api_name", "version", "status_text", "label", "created_at", "activated_at")
    list_display_links = ("api_name", "version")
    list_filter = ("status", "api_name")
    search_fields = ("api_name", "label", "description")
    ordering = ("api_name", "-version")
    readonly_fields = ("status", "version", "created_at", "activated_at")
    actions = ["validate_selected", "activate_selected", "new_version_of_selected", "export_selected"]
    save_on_top = True

    class Media:
        # Static files, not inline code: the Content-Security-Policy allows scripts from this site only.
        css = {"all": ["baton_admin/admin.css"]}
        js = ["baton_admin/kind_fields.js"]

    # -- list ---------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_text(self, obj):
        return obj.get_status_display()

    def get_actions(self, request):
        actions = super().get_actions(request)
        # A bulk delete would bypass the rule that an active version cannot be deleted.
        actions.pop("delete_selected", None)
        return actions

    # -- frozen versions ----------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        request._baton_frozen = is_frozen(obj)
        return obj

    def has_change_permission(self, request, obj=None):
        if is_frozen(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status == DefinitionStatus.ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk:
            fields.append("api_name")  # versions share it; a new name is a new definition
        if is_frozen(obj):
            fields += [f.name for f in self.model._meta.concrete_fields if f.name not in fields and f.name != "id"]
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.version = self.model.next_version_number(obj.api_name)
            obj.status = DefinitionStatus.DRAFT
        super().save_model(request, obj, form, change)

    # -- lifecycle ----------------------------------------------------------

    def _report_problems(self, request, obj, problems, level=messages.ERROR):
        for problem in problems:
            self.message_user(request, f"{obj}: {problem}", level)

    def _validate(self, request, obj):
        # orchestration's, imported when used: see the module docstring (no circle between the apps).
        from orchestration import lifecycle

        try:
            problems = lifecycle.validate(obj)
        except Exception as exc:  # a broken definition must give a message, not a 500
            problems = problems_of(exc)
        if problems:
            self._report_problems(request, obj, problems)
            self.message_user(
                request, f"{obj}: {len(problems)} problem{'s' if len(problems) != 1 else ''}.", messages.WARNING
            )
        else:
            self.message_user(request, f"{obj}: no problems found; it can be activated.", messages.SUCCESS)
        return not problems

    def _activate(self, request, obj):
        # orchestration's, imported when used: see the module docstring (no circle between the apps).
        from orchestration import lifecycle

        if obj.status == DefinitionStatus.ACTIVE:
            self.message_user(request, f"{obj} is already active.", messages.INFO)
            return False
        try:
            with transaction.atomic():
                lifecycle.activate(obj, user=request.user)
        except lifecycle.ActivationRefused as exc:
            self._report_problems(request, obj, problems_of(exc))
            self.message_user(request, f"{obj} was not activated.", messages.WARNING)
            return False
        obj.refresh_from_db()
        self.message_user(request, f"{obj.api_name} v{obj.version} is now active.", messages.SUCCESS)
        return True

    def _new_version(self, request, obj):
        # orchestration's, imported when used: see the module docstring (no circle between the apps).
        from orchestration import lifecycle

        try:
            with transaction.atomic():
                draft = lifecycle.new_version(obj)
        except Exception as exc:
            self._report_problems(request, obj, problems_of(exc))
            return None
        self.message_user(
            request, f"Draft {draft.api_name} v{draft.version} was created from v{obj.version}.", messages.SUCCESS
        )
        return draft

    @admin.action(description="Validate the selected versions", permissions=["view"])
    def validate_selected(self, request, queryset):
        for obj in queryset:
            self._validate(request, obj)

    @admin.action(description="Activate the selected versions", permissions=["activate"])
    def activate_selected(self, request, queryset):
        names = [obj.api_name for obj in queryset]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            self.message_user(
                request, f"Select one version per definition to activate (several of: {', '.join(sorted(duplicates))}).",
                messages.ERROR,
            )
            return
        for obj in queryset:
            self._activate(request, obj)

    @admin.action(description="New version (a draft copy) of the selected", permissions=["add"])
    def new_version_of_selected(self, request, queryset):
        for obj in queryset:
            self._new_version(request, obj)

    @admin.action(description="Export the selected as YAML", permissions=["view"])
    def export_selected(self, request, queryset):
        # orchestration's, imported when used: see the module docstring (no circle between the apps).
        from orchestration.definition_files import export_document

        api_names = sorted(set(queryset.values_list("api_name", flat=True)))
        try:
            text = export_document(api_names)
        except Exception as exc:
            for problem in problems_of(exc):
                self.message_user(request, problem, messages.ERROR)
            return None
        filename = slugify("-".join(api_names))[:80] or "definitions"
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.yaml"'
        return response

    def has_activate_permission(self, request):
        return self.has_change_permission(request)

    # -- per-object buttons and import ---------------------------------------

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name="%s_%s_import" % info),
            path("<path:object_id>/lifecycle/<str:operation>/", wrap(self.lifecycle_view), name="%s_%s_lifecycle" % info),
        ] + super().get_urls()

    def lifecycle_view(self, request, object_id, operation):
        if request.method != "POST":
            raise PermissionDenied
        obj = get_object_or_404(self.model, pk=object_id)
        info = self.model._meta.app_label, self.model._meta.model_name
        target = obj
        if operation == "validate":
            if not self.has_view_permission(request, obj):
                raise PermissionDenied
            self._validate(request, obj)
        elif operation == "activate":
            if not self.has_activate_permission(request):
                raise PermissionDenied
            self._activate(request, obj)
        elif operation == "new_version":
            if not self.has_add_permission(request):
                raise PermissionDenied
            target = self._new_version(request, obj) or obj
        else:
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:%s_%s_change" % info, args=[target.pk]))

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        problems = []
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            # orchestration's, imported when used: see the module docstring (no circle between the apps).
            from orchestration.definition_files import import_document

            try:
                result = import_document(form.cleaned_data["file"], activate=form.cleaned_data["activate"])
            except Exception as exc:  # every refusal is shown, nothing is stored
                problems = problems_of(exc)
            else:
                self.message_user(request, f"Imported: {describe_import(result)}.", messages.SUCCESS)
                info = self.model._meta.app_label, self.model._meta.model_name
                return HttpResponseRedirect(reverse("admin:%s_%s_changelist" % info))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import definitions",
            "form": form,
            "problems": problems,
        }
        return TemplateResponse(request, "admin/baton/import.html", context, status=400 if problems else 200)


def describe_import(result):
    """A short text for what ``import_document`` returned, whatever its shape."""
    if result is None:
        return "done"
    if isinstance(result, dict):
        parts = []
        for key, value in result.items():
            if isinstance(value, (list, tuple, set)):
                parts.append(f"{key}: {', '.join(str(v) for v in value) or 'none'}")
            else:
                parts.append(f"{key}: {value}")
        return "; ".join(parts) or "done"
    if isinstance(result, (list, tuple, set)):
        return ", ".join(str(v) for v in result) or "nothing"
    return str(result)


# --- Flows ------------------------------------------------------------------

INPUT_FIELD_TYPES = [t for t in FIELD_TYPES if t not in ("choice", "multichoice", "display")]


class FlowForm(KindDependentForm):
    kind_fields = {"type": {FlowType.SCREEN: ["@screens"], FlowType.AUTOLAUNCHED: ["@elements"],
                            FlowType.EVALUATION: ["@elements"]}}

    class Meta:
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 80})}


class FlowVariableForm(KindDependentForm):
    kind_fields = {"direction": {FlowVariable.INPUT: ["required", "default"], FlowVariable.OUTPUT: ["value"]}}
    default = LiteralField(required=False, widget=forms.TextInput(attrs={"size": 14}),
                           help_text="A JSON literal: 5, \"text\", true, [1, 2].")

    class Meta:
        widgets = {
            "name": forms.TextInput(attrs={"size": 16}),
            "position": forms.NumberInput(attrs={"class": "baton-position"}),
            "value": forms.TextInput(attrs={"size": 36, "spellcheck": "false"}),
        }


class FlowVariableInline(FrozenAwareInlineMixin, nested_admin.NestedTabularInline):
    model = FlowVariable
    form = FlowVariableForm
    extra = 0
    fields = ("direction", "position", "name", "type", "required", "default", "value")
    sortable_field_name = "position"


class ScreenFieldForm(KindDependentForm):
    kind_fields = {"type": {
        **{t: ["required", "default", "help_text"] for t in INPUT_FIELD_TYPES},
        "choice": ["required", "default", "help_text", "choices"],
        "multichoice": ["required", "default", "help_text", "choices"],
        "display": ["text"],
    }}

    class Meta:
        widgets = {
            "default": small_textarea(1, 40), "visible_if": small_textarea(1, 40),
            "choices": small_textarea(2, 60), "text": small_textarea(2, 60),
            "position": forms.NumberInput(attrs={"class": "baton-position"}),
        }


class ScreenFieldInline(FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = ScreenField
    form = ScreenFieldForm
    extra = 0
    sortable_field_name = "position"
    fieldsets = (
        (None, {"fields": (("name", "type", "position"), ("label", "required"), "help_text")}),
        ("Value and visibility", {"fields": ("default", "visible_if", "choices", "text")}),
    )


class ScreenForm(forms.ModelForm):
    class Meta:
        widgets = {"validate": small_textarea(1, 50), "position": forms.NumberInput(attrs={"class": "baton-position"})}


class ScreenInline(FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = Screen
    form = ScreenForm
    formset = rows_only_when("type", FlowType.SCREEN)
    extra = 0
    sortable_field_name = "position"
    fields = (("name", "label", "position"), ("validate", "validate_message"))
    inlines = [ScreenFieldInline]


class FlowElementForm(forms.ModelForm):
    """An element's settings are a JSON object with the keys of its type (listed under the box)."""

    class Meta:
        widgets = {"config": small_textarea(3, 80), "position": forms.NumberInput(attrs={"class": "baton-position"})}
        help_texts = {"config": "The element's settings as a JSON object, with the keys of its type: " + "; ".join(
            f"{kind}: {', '.join(sorted(keys))}" for kind, keys in ELEMENT_KEYS.items()) + "."}

    def clean(self):
        cleaned = super().clean()
        config, kind = cleaned.get("config"), cleaned.get("type")
        if config is not None and not isinstance(config, dict):
            self.add_error("config", "The settings must be a JSON object, e.g. {\"set\": {\"total\": \"1\"}}.")
        elif config and kind in ELEMENT_KEYS:
            unknown = sorted(set(config) - ELEMENT_KEYS[kind])
            if unknown:
                self.add_error("config", f"{', '.join(unknown)}: not a setting of {with_article(kind)} element "
                                         f"(its settings: {', '.join(sorted(ELEMENT_KEYS[kind]))}).")
        return cleaned


class FlowElementInline(FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = FlowElement
    form = FlowElementForm
    formset = rows_only_when("type", FlowType.AUTOLAUNCHED, FlowType.EVALUATION)
    extra = 0
    sortable_field_name = "position"
    fields = (("position", "type", "name"), "config")


@admin.register(Flow)
class FlowAdmin(DefinitionAdmin):
    form = FlowForm
    change_form_template = "admin/baton/flow_change_form.html"
    list_display = ("api_name", "version", "status_text", "type", "label", "created_at", "activated_at",
                    "designer_link")
    list_filter = ("status", "type", "api_name")
    inlines = [FlowVariableInline, ScreenInline, FlowElementInline]
    fieldsets = (
        (None, {"fields": (("api_name", "version", "status"), "label", "description", "type", "implementation")}),
        ("History", {"fields": (("created_at", "activated_at"),), "classes": ("collapse",)}),
    )

    def get_urls(self):
        from .designer.views import designer_urls

        return designer_urls(self) + super().get_urls()

    @admin.display(description="Designer")
    def designer_link(self, obj):
        url = reverse(f"{self.admin_site.name}:flows_flow_builder", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "Open in designer" if obj.status == DefinitionStatus.DRAFT
                           else "View in designer")
