"""REST endpoints of wait steps, events, pause/resume and withdrawing a step (DESIGN §10).

Mounted by ``orchestration/api_urls.py`` next to the run resource:

- ``POST runs/{id}/pause/``  ``{reason}``      ``operate_runs``, or ``pause_own_runs`` for a run the caller started
- ``POST runs/{id}/resume/`` ``{reason}``      the same
- ``POST runs/{id}/events/{name}/`` ``{data, keep}``  ``send_events``; 202 with the run, 404 when nothing waits
- ``POST runs/{id}/steps/{name}/cancel/`` ``{reason}``  ``operate_runs``: withdraw one open step
- ``POST hooks/events/{token}/`` ``{data}``   no authentication: the signed URL of one waiting step

The rules are ``orchestration/waits.py``'s; these views check permissions and bodies and
translate its errors (NothingWaits → 404, EngineError → 409, BadEventData → 400).
"""
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import waits
from .api import BatonAPIView, Conflict, RunDetailSerializer, check_size, error_example, error_responses, id_parameter
from .api import run_detail_queryset
from .engine import EngineError
from .models import OrchestrationRun
from .permissions import can_operate_runs, can_pause_run, can_send_events

NAME = r"[-a-zA-Z0-9_.]{1,100}"


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class EventSerializer(serializers.Serializer):
    data = serializers.JSONField(required=False, allow_null=True, default=None,
                                 help_text="A map of values: the waiting step's outputs.")
    keep = serializers.BooleanField(required=False, default=False,
                                    help_text="Store the event when no step waits yet: the run's next wait for it "
                                              "completes at once.")


class WebhookSerializer(serializers.Serializer):
    data = serializers.JSONField(required=False, allow_null=True, default=None)


def _run_body(view, run_id, code=status.HTTP_200_OK):
    run = run_detail_queryset().get(pk=run_id)
    return Response(RunDetailSerializer(run, context=view.get_serializer_context()).data, status=code)


class _RunAction(BatonAPIView, APIView):
    def get_serializer_context(self):
        return {"request": self.request, "view": self}

    def run_or_404(self, pk):
        return get_object_or_404(OrchestrationRun.objects.only("id", "started_by_id", "status"), pk=pk)

    def reason(self, request):
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data["reason"]


PAUSE_DOC = dict(
    request=ReasonSerializer, parameters=[id_parameter("run")],
    responses={200: RunDetailSerializer, **error_responses(400, 403, 404, 409)},
    examples=[OpenApiExample("With a reason", value={"reason": "waiting for the audit"}, request_only=True)],
    tags=["runs"],
)


class _PauseOrResume(_RunAction):
    """Pause and resume: the same permission, body and errors; only the transition differs."""

    transition = ""  # the name of the function in orchestration/waits.py
    doing = ""       # "Pausing" / "Resuming", for the permission message

    def post(self, request, pk):
        run = self.run_or_404(pk)
        if not can_pause_run(request.user, run):
            raise exceptions.PermissionDenied(f"{self.doing} needs orchestration.operate_runs, or "
                                              "orchestration.pause_own_runs for a run you started.")
        reason = self.reason(request)
        try:
            getattr(waits, self.transition)(run.pk, user=request.user, reason=reason)
        except EngineError as exc:
            raise Conflict(str(exc))
        return _run_body(self, run.pk)


@extend_schema(summary="Pause a run", description=(
    "A paused run (`status: paused`) starts no step and opens no work item until it is resumed; what was "
    "running finishes and is recorded, and its timers wait. Needs `orchestration.operate_runs`, or "
    "`orchestration.pause_own_runs` for a run the caller started. 409 when the run is not running."), **PAUSE_DOC)
class RunPauseView(_PauseOrResume):
    transition, doing = "pause_run", "Pausing"


@extend_schema(summary="Resume a paused run", description=(
    "The run goes on where it stood: timers that came due fire, steps whose entry holds start. Same "
    "permissions as pausing. 409 when the run is not paused."), **PAUSE_DOC)
class RunResumeView(_PauseOrResume):
    transition, doing = "resume_run", "Resuming"


class RunEventView(_RunAction):
    @extend_schema(
        summary="Send an event to a run",
        description=(
            "Every wait step of the run waiting for event `name` completes with `data` as its outputs (a map); "
            "the delivery is recorded as an `event_received` run event. With `keep: true` and no step waiting, "
            "the event is stored and the run's next wait for it completes at once. Without `keep`, no waiting "
            "step is a 404: an event is never lost silently. Needs `orchestration.send_events`. 202 with the run."),
        request=EventSerializer,
        parameters=[id_parameter("run"), OpenApiParameter("name", str, OpenApiParameter.PATH,
                                                          description="The event's name.")],
        responses={202: RunDetailSerializer, **error_responses(400, 403, 404, examples=[
            error_example("Nothing waits", "run 42: no step waits for event 'signed' (send it with keep to store "
                                           "it for the run's next wait on it)", "not_found", status_codes=["404"])])},
        examples=[OpenApiExample("Signed", value={"data": {"signed_by": "Grace"}}, request_only=True)],
        tags=["runs"],
    )
    def post(self, request, pk, name):
        user = request.user
        if not can_send_events(user):
            raise exceptions.PermissionDenied("Sending events needs the orchestration.send_events permission.")
        body = EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data["data"]
        check_size("data", data)
        # No read of the run before the transition: its lock is the read (an unknown id is a 404 from there).
        try:
            waits.send_event(int(pk), name, data, body.validated_data["keep"], user=user, source="api")
        except OrchestrationRun.DoesNotExist:
            raise Http404
        except waits.BadEventData as exc:
            raise exceptions.ValidationError({"data": [str(exc).removeprefix("data: ")]})
        except waits.NothingWaits as exc:
            raise exceptions.NotFound(str(exc))
        return _run_body(self, int(pk), status.HTTP_202_ACCEPTED)


class StepCancelView(_RunAction):
    @extend_schema(
        summary="Withdraw one step",
        description=(
            "The open step `step_name` of the run's current stage becomes `canceled` (its work item canceled, "
            "its timers too); the stage goes on, and `after` steps that name it never start and are "
            "discontinued when the stage ends. Needs `orchestration.operate_runs`. 404 when the run's version "
            "has no such step, 409 when the step is not open or the run is over."),
        request=ReasonSerializer,
        parameters=[id_parameter("run"), OpenApiParameter("step_name", str, OpenApiParameter.PATH)],
        responses={200: RunDetailSerializer, **error_responses(400, 403, 404, 409, examples=[
            error_example("Not open", "step 'ship' of run 42 is completed; only an open step can be withdrawn",
                          "conflict", status_codes=["409"])])},
        tags=["runs"],
    )
    def post(self, request, pk, step_name):
        if not can_operate_runs(request.user):
            raise exceptions.PermissionDenied("This needs the orchestration.operate_runs permission.")
        run = self.run_or_404(pk)
        reason = self.reason(request)
        try:
            waits.cancel_step(run.pk, step_name, user=request.user, reason=reason)
        except LookupError as exc:
            raise exceptions.NotFound(str(exc))
        except EngineError as exc:
            raise Conflict(str(exc))
        return _run_body(self, run.pk)


class WaitWebhookView(BatonAPIView, APIView):
    """The signed URL of one waiting step, for systems that hold no token."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Deliver a waiting step's event (signed webhook)",
        description=(
            "The URL is shown on the waiting step (API `wait.webhook_url`, the monitor) and signed with the "
            "site's SECRET_KEY: it delivers that step's event and nothing else. No authentication. 202 when "
            "delivered; 404 when the URL is not valid or the step no longer waits."),
        request=WebhookSerializer,
        parameters=[OpenApiParameter("token", str, OpenApiParameter.PATH)],
        responses={202: inline_serializer("WebhookDelivered", {
            "run": serializers.IntegerField(), "step": serializers.CharField(), "event": serializers.CharField()}),
            **error_responses(400, 404)},
        tags=["runs"],
    )
    def post(self, request, token):
        body = WebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data["data"]
        check_size("data", data)
        try:
            run, step_name, name = waits.send_webhook_event(token, data)
        except waits.BadEventData as exc:
            raise exceptions.ValidationError({"data": [str(exc).removeprefix("data: ")]})
        except waits.NothingWaits as exc:
            raise exceptions.NotFound(str(exc))
        return Response({"run": run.pk, "step": step_name, "event": name}, status=status.HTTP_202_ACCEPTED)


def urlpatterns():
    from django.urls import re_path

    return [
        re_path(r"^runs/(?P<pk>[0-9]{1,18})/pause/$", RunPauseView.as_view(), name="run-pause"),
        re_path(r"^runs/(?P<pk>[0-9]{1,18})/resume/$", RunResumeView.as_view(), name="run-resume"),
        re_path(rf"^runs/(?P<pk>[0-9]{{1,18}})/events/(?P<name>{NAME})/$", RunEventView.as_view(), name="run-event"),
        re_path(r"^runs/(?P<pk>[0-9]{1,18})/steps/(?P<step_name>[-a-zA-Z0-9_]{1,100})/cancel/$",
                StepCancelView.as_view(), name="run-step-cancel"),
        re_path(r"^hooks/events/(?P<token>[-a-zA-Z0-9_:.=]{1,300})/$", WaitWebhookView.as_view(), name="wait-webhook"),
    ]
