"""The API's views: orchestrations (read, launch) and runs (follow; cancel, retry, skip).

Endpoints (mounted under ``api/`` by ``orchestration/api_urls.py``):

- ``GET  orchestrations/``                       active versions (``?status=`` for others)
- ``GET  orchestrations/{api_name}/``            the active version with its path
- ``POST orchestrations/{api_name}/launch/``     ``{inputs, record: {model, pk}}`` → 201 with the run
- ``GET  runs/``                                 ``?status=``, ``?orchestration=<api_name>``
- ``GET  runs/{id}/``                            stages, steps (inputs, outputs, errors), events
- ``POST runs/{id}/cancel/``                     ``{reason}``
- ``POST runs/{id}/steps/{name}/retry/``         a step in error starts again
- ``POST runs/{id}/steps/{name}/skip/``          ``{outputs}``: complete the step by hand
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from flows.versioning import DefinitionStatus

from ..engine import EngineError, cancel_run, retry_step, skip_step
from ..models import Orchestration, OrchestrationRun, RunEvent, RunStatus, StageRun, StepRun, Timer
from ..permissions import can_launch, can_operate_runs, can_view_runs
from ..records import RecordError, resolve_record_ref
from ..starts import LaunchError, clean_skip_outputs, launch
from .common import (
    ID_LOOKUP, BatonAPIView, Conflict, check_size, error_example, error_responses, id_parameter, query_choice,
)
from .examples import ORCHESTRATION_DETAIL_EXAMPLE, ORCHESTRATION_EXAMPLE, RUN_DETAIL_EXAMPLE, RUN_EXAMPLE
from .serializers import (
    CancelSerializer, LaunchSerializer, OrchestrationDetailSerializer, OrchestrationSerializer, RunDetailSerializer,
    RunSerializer, SkipSerializer,
)


def run_detail_queryset():
    steps = StepRun.objects.select_related("flow", "work_item").order_by("id").prefetch_related(
        Prefetch("timers", queryset=Timer.objects.filter(state="pending"), to_attr="pending_timers"),
        Prefetch("child_runs", queryset=OrchestrationRun.objects.only("id", "parent_step_run_id")))
    return OrchestrationRun.objects.select_related("orchestration", "started_by", "parent_step_run").prefetch_related(
        Prefetch("stage_runs", queryset=StageRun.objects.order_by("started_at", "id").prefetch_related(
            Prefetch("step_runs", queryset=steps))),
        Prefetch("events", queryset=RunEvent.objects.select_related("actor").order_by("id")),
    )


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

    lookup_value_regex = ID_LOOKUP
    serializer_class = RunSerializer

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not can_view_runs(request.user):
            raise exceptions.PermissionDenied("Runs are visible to staff and holders of orchestration.view_runs.")

    def get_queryset(self):
        if self.action == "list":
            qs = OrchestrationRun.objects.select_related("orchestration", "started_by", "parent_step_run").order_by(
                "-started_at", "-id")
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
