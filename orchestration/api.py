"""REST API for orchestrations and runs (DRF), plus what every Baton API view shares.

Endpoints (mounted under ``api/`` by ``orchestration/api_urls.py``):

- ``GET  orchestrations/``                       active versions (``?status=`` for others)
- ``GET  orchestrations/{api_name}/``            the active version with its path
- ``POST orchestrations/{api_name}/launch/``     ``{inputs, record: {model, pk}}`` → 201 with the run
- ``GET  runs/``                                 ``?status=``, ``?orchestration=<api_name>``
- ``GET  runs/{id}/``                            stages, steps (inputs, outputs, errors), events
- ``POST runs/{id}/cancel/``                     ``{reason}``
- ``POST runs/{id}/steps/{name}/retry/``         a step in error starts again
- ``POST runs/{id}/steps/{name}/skip/``          ``{outputs}``: complete the step by hand

Every error body has one shape (``ErrorSerializer``): ``detail`` (a sentence),
``code`` (machine-readable) and ``errors`` (field path → messages, empty
unless the input was invalid).
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from flows.expressions import UnstorableValue, check_unicode
from flows.versioning import DefinitionStatus

from .children import parent_of
from .conf import baton_settings
from .models import Orchestration, OrchestrationRun, RunEvent, RunStatus, StageRun, StepRun
from .permissions import can_launch, can_operate_runs, can_view_runs
from .starts import check_json_size, clean_skip_outputs

# ---------------------------------------------------------------------------
# Shared: errors, authentication, pagination, permissions
# ---------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    """The request is well formed but the object's state does not allow it (409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


def flatten_errors(detail, prefix=""):
    """DRF error detail (nested dicts/lists) as ``{"a.b": ["message", ...]}``."""
    out = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key in ("__all__", api_settings.NON_FIELD_ERRORS_KEY):
                name = prefix or api_settings.NON_FIELD_ERRORS_KEY
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, (list, tuple)):
        if all(not isinstance(item, (dict, list, tuple)) for item in detail):
            out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(detail)]
    return out


def django_errors(exc):
    """A Django ValidationError as a plain ``{field: [messages]}`` dict."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in DjangoValidationError(msgs).messages] for field, msgs in exc.error_dict.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in exc.messages]}


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


def _size_limit_error(exc):
    """Django's refusal of an oversized body (raised while DRF reads it) as an
    API error; left alone, it becomes Django's HTML 400 page."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return RequestTooLarge(f"The request body is larger than {limit:,} bytes, the most the API accepts.")
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return exceptions.ParseError(f"The request has too many form fields or files: {exc}")
    return exc


def api_exception_handler(exc, context):
    """DRF's handler, with Django's ValidationError as a 400 and one body shape for every error."""
    exc = _size_limit_error(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_errors(exc))
    elif isinstance(exc, RecursionError):  # a value nested so deep that checking it runs out of stack
        exc = exceptions.ParseError("The request holds values nested too deeply.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        first = next(iter(errors.items()), None)
        summary = "Invalid input."
        if first:
            field, messages = first
            where = "" if field == api_settings.NON_FIELD_ERRORS_KEY else f"{field}: "
            summary = f"Invalid input: {where}{messages[0]}" + (" (and more)" if len(errors) > 1 or len(messages) > 1 else "")
        response.data = {"detail": summary, "code": "invalid", "errors": errors}
        return response
    if isinstance(exc, Http404):
        code, detail = "not_found", "Not found."
    elif isinstance(exc, DjangoPermissionDenied):
        code, detail = "permission_denied", str(exc) or "You do not have permission to perform this action."
    else:
        detail = getattr(exc, "detail", None) or str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(detail, (dict, list)):  # an APIException built with structured detail
            response.data = {"detail": "Request refused.", "code": "invalid", "errors": flatten_errors(detail)}
            return response
    response.data = {"detail": str(detail), "code": code if isinstance(code, str) else "error", "errors": {}}
    return response


class ErrorSerializer(serializers.Serializer):
    """Every error response: a sentence, a code, and the bad fields (for 400s)."""

    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    code = serializers.CharField(help_text="Machine-readable: invalid, not_authenticated, permission_denied, "
                                           "not_found, conflict, throttled, parse_error...")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path → messages (inputs.amount, record, values.needed_by, non_field_errors...). "
                  "Empty unless the input was invalid.",
    )


def error_example(name, detail, code, errors=None, status_codes=None):
    return OpenApiExample(name, value={"detail": detail, "code": code, "errors": errors or {}},
                          response_only=True, status_codes=status_codes)


def error_responses(*codes, examples=()):
    """The documented error responses of an endpoint (401, 403, 404, 400, 409)."""
    words = {
        400: "Invalid input: ``errors`` names each bad field.",
        401: "Not authenticated (no or a bad token / session).",
        403: "Authenticated but not allowed.",
        404: "No such object, or not one you may see.",
        409: "The object's state does not allow this (already completed, claimed by another...).",
        429: "Too many requests (throttled).",
    }
    responses = {}
    for code in (401, 429, *codes):
        responses[code] = OpenApiResponse(
            ErrorSerializer, description=words[code],
            examples=[e for e in examples if not e.status_codes or str(code) in [str(c) for c in e.status_codes]],
        )
    return responses


class ApiPagination(PageNumberPagination):
    """``{count, next, previous, results}``; ``?page=``, ``?page_size=`` (at most 200)."""

    # Read when a request is paginated, not at import: a host may set no REST_FRAMEWORK at all.
    page_size = property(lambda self: api_settings.PAGE_SIZE or 50)
    page_size_query_param = "page_size"
    max_page_size = 200


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing with a 400 what would otherwise be a 500 now or later.

    Absurdly deep nesting (a RecursionError), and text holding a lone
    surrogate (``"\\ud800"`` is valid JSON but not Unicode that can be
    encoded): stored, it would make every page showing it fail.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            check_unicode(data)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply")
        except UnstorableValue as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}")
        return data


class BatonAPIView:
    """Mixin for every Baton API view: token or session auth, our error bodies, our pagination.

    Token comes first so an anonymous caller gets 401 with ``WWW-Authenticate: Token``.
    Session authentication enforces CSRF on unsafe methods, as DRF does.
    """

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    permission_classes = [IsAuthenticated]
    pagination_class = ApiPagination

    def get_exception_handler(self):
        return api_exception_handler

    # Throttle before checking permissions (DRF does it after), so that
    # anonymous callers are held to the anonymous rate even though every
    # request of theirs is refused.
    def check_permissions(self, request):
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        if getattr(request, "_baton_throttle_checked", False):
            return
        request._baton_throttle_checked = True
        super().check_throttles(request)


def id_parameter(what):
    """The ``{id}`` path parameter: digits only (anything else is a 404 before any query)."""
    return OpenApiParameter("id", {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                            OpenApiParameter.PATH, description=f"The {what}'s id.")


def query_choice(request, name, choices, default=None):
    """A query parameter restricted to ``choices`` (400 naming the parameter otherwise)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    if value not in choices:
        raise exceptions.ValidationError({name: [f"must be one of {', '.join(choices)}"]})
    return value


def max_input_bytes():
    return baton_settings.BATON_MAX_INPUT_BYTES


def check_size(name, value):
    """400 when a JSON value is larger than ``BATON_MAX_INPUT_BYTES`` (the rule is ``starts.check_json_size``)."""
    check_json_size(name, value, exceptions.ValidationError)


# ---------------------------------------------------------------------------
# Orchestrations
# ---------------------------------------------------------------------------

class VariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="text, number, boolean, date, datetime, record or list")
    required = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True)

    def to_representation(self, instance):
        return {
            "name": instance.get("name", ""), "type": instance.get("type") or "text",
            "required": bool(instance.get("required", False)), "default": instance.get("default"),
        }


class ConditionSerializer(serializers.Serializer):
    condition = serializers.CharField(required=False, help_text="A CEL expression.")
    evaluation_flow = serializers.CharField(required=False, help_text="Or the api_name of an evaluation flow...")
    inputs = serializers.DictField(child=serializers.CharField(), required=False, help_text="...with its inputs.")


def condition_dict(condition):
    if condition is None:
        return None
    if condition.expression:
        return {"condition": condition.expression}
    return {"evaluation_flow": condition.flow, "inputs": dict(condition.flow_inputs)}


class PathStepSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.ChoiceField(choices=["interactive", "background", "orchestration", "wait"])
    flow = serializers.CharField(help_text="api_name of the flow the step runs (empty for orchestration and wait steps).")
    orchestration = serializers.CharField(source="child_orchestration",
                                          help_text="Sub-orchestration steps: the api_name of the orchestration it runs.")
    for_each = serializers.CharField(help_text="Multi-instance steps: the expression giving the list of elements.")
    assignees = serializers.CharField(help_text="Interactive steps: an expression giving a list of assignees.")
    completion = serializers.JSONField(help_text='"all", "any", {"at_least": N}, {"percent": P} or {"condition": ...}.')
    sequential = serializers.BooleanField()
    remaining = serializers.CharField(help_text='"continue" or empty.')
    wait = serializers.SerializerMethodField(help_text="Wait steps: for, until, event, timeout, on_timeout.")
    inputs = serializers.DictField(child=serializers.CharField(), help_text="flow input → expression")
    entry = serializers.SerializerMethodField(help_text='"stage_start", {"after": [...]}, or a condition.')
    exit = serializers.SerializerMethodField(help_text='"step_completes" or a condition.')
    assignee = serializers.SerializerMethodField(help_text='{"user"|"group"|"queue"|"expr": value}; '
                                                           "interactive steps only.")
    due_in = serializers.CharField()

    @extend_schema_field(OpenApiTypes.ANY)
    def get_entry(self, step):
        if step.entry == "after":
            return {"after": list(step.after)}
        if step.entry in ("condition", "evaluation_flow"):
            return condition_dict(step.entry_condition)
        return "stage_start"

    @extend_schema_field(OpenApiTypes.ANY)
    def get_exit(self, step):
        return condition_dict(step.exit_condition) if step.exit_condition else "step_completes"

    @extend_schema_field(serializers.DictField(child=serializers.CharField(), allow_null=True))
    def get_assignee(self, step):
        if not step.assignee_type and not step.assignee_exclude:
            return None
        out = {step.assignee_type: step.assignee} if step.assignee_type else {}
        if step.assignee_exclude:
            out["exclude"] = step.assignee_exclude
        return out

    @extend_schema_field(serializers.DictField(child=serializers.CharField(), allow_null=True))
    def get_wait(self, step):
        if not step.is_wait:
            return None
        given = {"for": step.wait_for, "until": step.wait_until, "event": step.wait_event,
                 "timeout": step.wait_timeout, "on_timeout": step.on_timeout}
        return {key: value for key, value in given.items() if value}


class OutcomeSerializer(serializers.Serializer):
    name = serializers.CharField()
    condition = serializers.SerializerMethodField()
    goto = serializers.CharField()

    @extend_schema_field(ConditionSerializer(allow_null=True))
    def get_condition(self, outcome):
        return condition_dict(outcome.condition)


class PathElementSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["stage", "decision"], source="kind")
    name = serializers.CharField()
    label = serializers.CharField()
    next = serializers.CharField(help_text="Stages: where the path goes after it (empty: the next element).")
    exit = serializers.SerializerMethodField(help_text='Stages: "all_steps_complete" or a condition.')
    steps = PathStepSerializer(many=True, help_text="Stages: the steps (they may run in parallel).")
    outcomes = OutcomeSerializer(many=True, help_text="Decisions: outcomes, first that holds wins.")
    default = serializers.CharField(source="default_goto", help_text="Decisions: where to go when no outcome holds.")
    on_error = serializers.CharField(source="on_error_goto",
                                     help_text="Stages: where the run goes when a step fails for good (empty: it stops).")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_exit(self, element):
        if element.is_decision:
            return None
        return condition_dict(element.exit_condition) if element.exit_condition else "all_steps_complete"


class StartSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["record_triggered", "autolaunched"], source="start_type")
    model = serializers.CharField(source="start_model", help_text='"app_label.model" for record-triggered starts.')
    when = serializers.CharField(source="start_when")
    condition = serializers.CharField(source="start_condition")
    only_when_changed_to_meet = serializers.BooleanField()


class OrchestrationSerializer(serializers.ModelSerializer):
    """An orchestration version (summary, as listed)."""

    start = StartSerializer(source="*")
    inputs = serializers.SerializerMethodField(help_text="Variables a launch may give.")

    class Meta:
        model = Orchestration
        fields = ["id", "api_name", "version", "status", "label", "description", "start", "inputs",
                  "created_at", "activated_at"]
        read_only_fields = fields

    @extend_schema_field(VariableSerializer(many=True))
    def get_inputs(self, orch):
        return VariableSerializer([v for v in (orch.inputs or []) if isinstance(v, dict)], many=True).data


class OrchestrationDetailSerializer(OrchestrationSerializer):
    """An orchestration version with its path: stages (with steps) and decisions, in order."""

    path = serializers.SerializerMethodField()
    max_stage_visits = serializers.IntegerField(read_only=True)

    class Meta(OrchestrationSerializer.Meta):
        fields = OrchestrationSerializer.Meta.fields + ["max_stage_visits", "path"]
        read_only_fields = fields

    @extend_schema_field(PathElementSerializer(many=True))
    def get_path(self, orch):
        from .plan import Plan

        return PathElementSerializer(Plan.load(orch).elements, many=True).data


class RecordRefSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=100, help_text='"app_label.model", e.g. "demo.employee".')
    pk = serializers.CharField(max_length=64, help_text="The record's primary key (a number or text).")


class LaunchSerializer(serializers.Serializer):
    inputs = serializers.DictField(
        child=serializers.JSONField(), required=False, default=dict,
        help_text="The orchestration's inputs by name; checked against their declared types.",
    )
    record = RecordRefSerializer(
        required=False, allow_null=True, default=None,
        help_text="The record the run is about (required by record-triggered orchestrations).",
    )


ORCHESTRATION_EXAMPLE = {
    "id": 7, "api_name": "equipment_refresh", "version": 1, "status": "active", "label": "Replace equipment",
    "description": "IT picks replacement equipment for an employee and ships it.",
    "start": {"type": "autolaunched", "model": "", "when": "", "condition": "", "only_when_changed_to_meet": False},
    "inputs": [{"name": "reason", "type": "text", "required": False, "default": "replacement"}],
    "created_at": "2025-01-06T09:00:00Z", "activated_at": "2025-01-06T09:00:00Z",
}
ORCHESTRATION_DETAIL_EXAMPLE = {
    **ORCHESTRATION_EXAMPLE,
    "max_stage_visits": 50,
    "path": [
        {"type": "stage", "name": "choose", "label": "Choose equipment", "next": "", "exit": "all_steps_complete",
         "steps": [{"name": "pick_equipment", "label": "Pick replacement equipment", "type": "interactive",
                    "flow": "onboarding_pick_equipment",
                    "inputs": {"employee_name": 'record.first_name + " " + record.last_name'},
                    "entry": "stage_start", "exit": "step_completes", "assignee": {"queue": "it_support"},
                    "due_in": "3d"}],
         "outcomes": [], "default": ""},
        {"type": "stage", "name": "deliver", "label": "Deliver", "next": "", "exit": "all_steps_complete",
         "steps": [{"name": "ship", "label": "Ship the equipment", "type": "background",
                    "flow": "onboarding_ship_equipment", "inputs": {"employee_id": "record.id"},
                    "entry": "stage_start", "exit": "step_completes", "assignee": None, "due_in": ""}],
         "outcomes": [], "default": ""},
    ],
}


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

class RunRecordField(serializers.Serializer):
    model = serializers.CharField()
    pk = serializers.CharField()


class RunSerializer(serializers.ModelSerializer):
    """A run (summary, as listed)."""

    orchestration = serializers.CharField(source="orchestration.api_name", help_text="The orchestration's api_name.")
    version = serializers.IntegerField(source="orchestration.version", help_text="The version the run keeps.")
    label = serializers.CharField(source="orchestration.label")
    record = serializers.SerializerMethodField()
    started_by = serializers.SerializerMethodField()
    parent = serializers.SerializerMethodField(help_text="A sub-orchestration's run: its parent run and step.")

    class Meta:
        model = OrchestrationRun
        fields = ["id", "status", "orchestration", "version", "label", "record", "inputs", "started_by",
                  "started_at", "ended_at", "current_stage", "error", "parent", "outputs"]
        read_only_fields = fields

    @extend_schema_field(inline_serializer("ParentRef", {
        "run": serializers.IntegerField(), "step": serializers.CharField()}, allow_null=True))
    def get_parent(self, run):
        return parent_of(run)

    @extend_schema_field(RunRecordField(allow_null=True))
    def get_record(self, run):
        if not run.record_model:
            return None
        return {"model": run.record_model, "pk": run.record_pk}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_started_by(self, run):
        return run.started_by.get_username() if run.started_by_id else None


class StepRunSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="step_name")
    flow = serializers.SerializerMethodField(help_text="The flow version the step ran.")
    work_item = serializers.SerializerMethodField(help_text="Interactive steps: the work item's id.")
    child_runs = serializers.SerializerMethodField(
        help_text="Sub-orchestration steps: the ids of the runs it started, the latest last.")

    class Meta:
        model = StepRun
        fields = ["id", "name", "type", "status", "flow", "inputs", "outputs", "error", "attempts",
                  "work_item", "started_at", "ended_at", "child_runs", "instance_index", "item", "completed_by"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_child_runs(self, step_run):
        if step_run.type != "orchestration":
            return []
        return sorted(run.pk for run in step_run.child_runs.all())

    @extend_schema_field(inline_serializer("FlowVersionRef", {
        "api_name": serializers.CharField(), "version": serializers.IntegerField()}, allow_null=True))
    def get_flow(self, step_run):
        if not step_run.flow_id:
            return None
        return {"api_name": step_run.flow.api_name, "version": step_run.flow.version}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_work_item(self, step_run):
        item = getattr(step_run, "work_item", None)
        return item.pk if item is not None else None


class StageRunSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="stage_name")
    steps = StepRunSerializer(source="step_runs", many=True)

    class Meta:
        model = StageRun
        fields = ["id", "name", "visit", "status", "started_at", "ended_at", "steps"]
        read_only_fields = fields


class RunEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    stage = serializers.CharField(source="stage_name")
    step = serializers.CharField(source="step_name")

    class Meta:
        model = RunEvent
        fields = ["id", "at", "kind", "actor", "stage", "step", "data"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_actor(self, event):
        return event.actor.get_username() if event.actor_id else None


class RunDetailSerializer(RunSerializer):
    """A run with its stage visits (each with its steps) and its event log."""

    stages = StageRunSerializer(source="stage_runs", many=True)
    events = RunEventSerializer(many=True)

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["stages", "events"]
        read_only_fields = fields


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class SkipSerializer(serializers.Serializer):
    outputs = serializers.DictField(child=serializers.JSONField(), required=False, default=dict,
                                    help_text="The step's outputs, by name (checked against the flow's declared types).")


def run_detail_queryset():
    steps = StepRun.objects.select_related("flow", "work_item").order_by("id")
    return OrchestrationRun.objects.select_related("orchestration", "started_by").prefetch_related(
        Prefetch("stage_runs", queryset=StageRun.objects.order_by("started_at", "id").prefetch_related(
            Prefetch("step_runs", queryset=steps))),
        Prefetch("events", queryset=RunEvent.objects.select_related("actor").order_by("id")),
    )


RUN_EXAMPLE = {
    "id": 42, "status": "running", "orchestration": "equipment_refresh", "version": 1, "label": "Replace equipment",
    "record": {"model": "demo.employee", "pk": "1"}, "inputs": {"reason": "broken screen"}, "started_by": "alice",
    "started_at": "2025-01-06T09:30:00Z", "ended_at": None, "current_stage": "choose", "error": "",
    "parent": None, "outputs": {},
}
RUN_DETAIL_EXAMPLE = {
    **RUN_EXAMPLE,
    "stages": [{
        "id": 90, "name": "choose", "visit": 1, "status": "in_progress", "started_at": "2025-01-06T09:30:00Z",
        "ended_at": None,
        "steps": [{"id": 311, "name": "pick_equipment", "type": "interactive", "status": "in_progress",
                   "flow": {"api_name": "onboarding_pick_equipment", "version": 1},
                   "inputs": {"employee_name": "Grace Hopper", "needs_laptop": True}, "outputs": {}, "error": "",
                   "attempts": 0, "work_item": 17, "started_at": "2025-01-06T09:30:00Z", "ended_at": None,
                   "child_runs": []}],
    }],
    "events": [
        {"id": 1001, "at": "2025-01-06T09:30:00Z", "kind": "run_started", "actor": "alice", "stage": "", "step": "",
         "data": {"version": 1, "record": "demo.employee:1", "inputs": {"reason": "broken screen"}}},
        {"id": 1002, "at": "2025-01-06T09:30:00Z", "kind": "work_item_opened", "actor": "alice", "stage": "choose",
         "step": "pick_equipment", "data": {"work_item": 17, "assignee": "queue:it_support"}},
    ],
}

STEP_NAME = OpenApiParameter("step_name", str, OpenApiParameter.PATH, description="The step's name in the path.")


@extend_schema_view(
    list=extend_schema(
        summary="List runs",
        description="Newest first. Needs staff or `orchestration.view_runs`.",
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in RunStatus], description="Only runs in this status."),
            OpenApiParameter("orchestration", str, description="Only runs of this orchestration (its api_name)."),
        ],
        responses={200: RunSerializer(many=True), **error_responses(400, 403, 404)},
        examples=[OpenApiExample("Running runs", value=RUN_EXAMPLE, response_only=True)],
        tags=["runs"],
    ),
    retrieve=extend_schema(
        summary="A run",
        description="The run with its stage visits, each step's status, inputs, outputs and error, and its events.",
        responses={200: RunDetailSerializer, **error_responses(403, 404)},
        examples=[OpenApiExample("A run waiting for IT", value=RUN_DETAIL_EXAMPLE, response_only=True)],
        tags=["runs"],
    ),
)
@extend_schema(parameters=[id_parameter("run")])
class RunViewSet(BatonAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Runs: follow them, and (operators) cancel runs, retry or skip steps."""

    lookup_value_regex = r"[0-9]{1,18}"
    serializer_class = RunSerializer

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not can_view_runs(request.user):
            raise exceptions.PermissionDenied("Runs are visible to staff and holders of orchestration.view_runs.")

    def get_queryset(self):
        if self.action == "list":
            qs = OrchestrationRun.objects.select_related("orchestration", "started_by").order_by("-started_at", "-id")
            wanted = query_choice(self.request, "status", [s.value for s in RunStatus])
            if wanted:
                qs = qs.filter(status=wanted)
            api_name = self.request.query_params.get("orchestration")
            if api_name:
                qs = qs.filter(orchestration__api_name=api_name[:100])
            return qs
        return run_detail_queryset()

    def get_serializer_class(self):
        return RunSerializer if self.action == "list" else RunDetailSerializer

    def _operate(self, request):
        if not can_operate_runs(request.user):
            raise exceptions.PermissionDenied("This needs the orchestration.operate_runs permission.")
        return self.get_object()

    def _fresh(self, run):
        return Response(RunDetailSerializer(run_detail_queryset().get(pk=run.pk),
                                            context=self.get_serializer_context()).data)

    def _step_or_404(self, run, step_name):
        if not StepRun.objects.filter(run=run, step_name=step_name).exists():
            raise exceptions.NotFound(f"Run {run.pk} has no step named {step_name[:100]!r}.")

    @extend_schema(
        summary="Cancel a run",
        description="Discontinues every open stage and step and cancels open work items. "
                    "Needs `orchestration.operate_runs`. 409 when the run is already completed or canceled.",
        request=CancelSerializer,
        responses={200: RunDetailSerializer, **error_responses(400, 403, 404, 409, examples=[
            error_example("Already over", "run 42 is completed and cannot be canceled", "conflict",
                          status_codes=["409"])])},
        examples=[OpenApiExample("Cancel", value={"reason": "duplicate request"}, request_only=True)],
        tags=["runs"],
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        from .engine import EngineError, cancel_run

        run = self._operate(request)
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            cancel_run(run.pk, user=request.user, reason=body.validated_data["reason"])
        except EngineError as exc:
            raise Conflict(str(exc))
        return self._fresh(run)

    @extend_schema(
        summary="Retry a step in error",
        description="Starts the step again with its inputs resolved afresh; the run resumes. "
                    "Needs `orchestration.operate_runs`. 409 when the step is not in error.",
        request=None,
        parameters=[STEP_NAME],
        responses={200: RunDetailSerializer, **error_responses(403, 404, 409, examples=[
            error_example("Not in error", "step 'ship' of run 42 is not in error", "conflict", status_codes=["409"])])},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<step_name>[-a-zA-Z0-9_]{1,100})/retry")
    def retry(self, request, pk=None, step_name=None):
        from .engine import EngineError, retry_step

        run = self._operate(request)
        self._step_or_404(run, step_name)
        try:
            retry_step(run.pk, step_name, user=request.user)
        except EngineError as exc:
            raise Conflict(str(exc))
        return self._fresh(run)

    @extend_schema(
        summary="Skip a step",
        description="Completes a step that is in error (or still open) with the given outputs; the run goes on. "
                    "Outputs the step's flow declares are checked against their types. "
                    "Needs `orchestration.operate_runs`. 409 when the step is neither in error nor open.",
        request=SkipSerializer,
        parameters=[STEP_NAME],
        responses={200: RunDetailSerializer, **error_responses(400, 403, 404, 409)},
        examples=[OpenApiExample("Skip with outputs", value={"outputs": {"tracking_number": "manual-1"}},
                                 request_only=True)],
        tags=["runs"],
    )
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<step_name>[-a-zA-Z0-9_]{1,100})/skip")
    def skip(self, request, pk=None, step_name=None):
        from .engine import EngineError, skip_step

        run = self._operate(request)
        self._step_or_404(run, step_name)
        body = SkipSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outputs = clean_skip_outputs(run, step_name, dict(body.validated_data["outputs"]))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict)
        try:
            skip_step(run.pk, step_name, outputs, user=request.user)
        except EngineError as exc:
            raise Conflict(str(exc))
        return self._fresh(run)


@extend_schema_view(
    list=extend_schema(
        summary="List orchestrations",
        description="Active orchestration versions by default; `?status=draft|obsolete|all` for others.",
        parameters=[OpenApiParameter("status", str, enum=["active", "draft", "obsolete", "all"],
                                     description="Version status (default: active).")],
        responses={200: OrchestrationSerializer(many=True), **error_responses(400, 404)},
        examples=[OpenApiExample("Active orchestrations", value=ORCHESTRATION_EXAMPLE, response_only=True)],
        tags=["orchestrations"],
    ),
    retrieve=extend_schema(
        summary="An orchestration's active version",
        description="The active version of `api_name`, with its inputs and its path (stages, steps, decisions).",
        responses={200: OrchestrationDetailSerializer, **error_responses(404)},
        examples=[OpenApiExample("Equipment refresh", value=ORCHESTRATION_DETAIL_EXAMPLE, response_only=True)],
        tags=["orchestrations"],
    ),
)
class OrchestrationViewSet(BatonAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orchestration definitions (read) and launching runs."""

    lookup_field = "api_name"
    lookup_value_regex = r"[-a-zA-Z0-9_]{1,100}"
    serializer_class = OrchestrationSerializer

    def get_queryset(self):
        qs = Orchestration.objects.order_by("api_name", "-version")
        if self.action == "list":
            wanted = query_choice(self.request, "status", ["active", "draft", "obsolete", "all"], "active")
            return qs if wanted == "all" else qs.filter(status=wanted)
        return qs.filter(status=DefinitionStatus.ACTIVE)

    def get_serializer_class(self):
        if self.action == "retrieve":
            return OrchestrationDetailSerializer
        if self.action == "launch":
            return LaunchSerializer
        return OrchestrationSerializer

    @extend_schema(
        summary="Launch a run",
        description=(
            "Start a run of the active version. `inputs` are checked against the declared input types and "
            "`record` must be a record of a model exposed to flows (and, for record-triggered orchestrations, "
            "of their model). On any error nothing is created and `errors` names each bad input "
            "(`inputs.<name>`, `record`). Needs `orchestration.launch_orchestration` or staff."
        ),
        request=LaunchSerializer,
        responses={201: RunDetailSerializer, **error_responses(400, 403, 404)},
        examples=[
            OpenApiExample("Launch on an employee", request_only=True,
                           value={"inputs": {"reason": "broken screen"}, "record": {"model": "demo.employee", "pk": 1}}),
            error_example("A bad input", "Invalid input: inputs.reason: expected text, got the number 3", "invalid",
                          {"inputs.reason": ["expected text, got the number 3"]}, ["400"]),
        ],
        tags=["orchestrations"],
    )
    @action(detail=True, methods=["post"])
    def launch(self, request, api_name=None):
        from .records import RecordError, resolve_record_ref
        from .starts import LaunchError, launch

        if not can_launch(request.user):
            raise exceptions.PermissionDenied("Launching needs the orchestration.launch_orchestration permission.")
        orch = self.get_object()
        body = LaunchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        inputs = body.validated_data.get("inputs") or {}
        record = body.validated_data.get("record")
        check_size("inputs", inputs)
        if orch.start_type == "record_triggered" and orch.start_model and not record:
            raise exceptions.ValidationError(
                {"record": [f"{orch.api_name} runs on {orch.start_model} records: give record {{model, pk}}"]}
            )
        if record is not None:
            try:
                resolve_record_ref(dict(record))
            except RecordError as exc:
                raise exceptions.ValidationError({"record": exc.messages})
        try:
            run = launch(orch.api_name, inputs=inputs, record=dict(record) if record else None, user=request.user)
        except LaunchError as exc:
            raise exceptions.ValidationError(exc.message_dict)
        run = run_detail_queryset().get(pk=run.pk)
        return Response(RunDetailSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)



@csrf_exempt  # nothing to protect; a POST must get the JSON 404, not Django's HTML CSRF page
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/: a JSON 404 in the API's error shape (not Django's HTML page)."""
    return JsonResponse({"detail": "Not found.", "code": "not_found", "errors": {}}, status=404)
