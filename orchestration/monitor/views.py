"""The run monitor: runs, errors, stalled work and figures; a run's page; operator actions.

Who may do what:

* seeing the monitor needs staff status or ``orchestration.view_runs``;
* Retry, Skip, Cancel and Withdraw (one step) need ``orchestration.operate_runs``;
* Pause and Resume need ``operate_runs``, or ``pause_own_runs`` for a run the
  user started (``permissions.can_pause_run``);
* Reassign goes through ``workguide.services.reassign`` and so needs
  ``workguide.manage_workitem``.

Every page costs a fixed number of queries whatever the number of runs: the
list reads one page of runs and then, for that page as a whole, the stages of
their versions, the step counts of their current stage visits, the steps in
error, the records and the overdue flags (see ``decorate_runs``).

Live refresh: the result part of each page is a partial that htmx polls
(``hx-trigger="every 5s"``); the poll pauses while an operator form is open.
Operator actions are plain POST forms (CSRF) that redirect back with a
message, so they work with or without JavaScript.
"""
import json
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from workguide import services as workguide_services
from workguide.models import WorkItem, WorkItemStatus

from .. import engine, permissions
from ..children import parent_of
from ..instances import annotate_progress
from ..conf import baton_settings
from ..diagram import render_diagram, run_state
from ..models import (
    Orchestration,
    OrchestrationRun,
    RunEvent,
    RunStatus,
    Stage,
    StageKind,
    StageStatus,
    StepRun,
    StepStatus,
)
from ..plan import Plan
from ..records import get_model
from ..starts import clean_skip_outputs, skipped_step_flow
from .stats import orchestration_stats

PAGE_SIZE = 25
STALLED_LIMIT = 50
POLL_SECONDS = 5


# ---------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------

# The rules are orchestration/permissions.py's; these names are the monitor's.
can_view = permissions.can_view_runs
can_operate = permissions.can_operate_runs
can_reassign = permissions.can_manage_work_items


def monitor_required(view):
    @login_required
    def wrapped(request, *args, **kwargs):
        if not can_view(request.user):
            raise PermissionDenied("the monitor needs staff status or the orchestration.view_runs permission (operate_runs includes it)")
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def operator_required(view):
    @monitor_required
    @require_POST
    def wrapped(request, *args, **kwargs):
        if not can_operate(request.user):
            raise PermissionDenied("operating runs needs the orchestration.operate_runs permission")
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    return wrapped


def _next_url(request, default):
    """The ``next`` parameter if it is a URL on this site, else ``default``:
    never another host, never ``javascript:`` or any other scheme."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _back(request, default):
    return HttpResponseRedirect(_next_url(request, default))


def _wants_partial(request):
    return bool(getattr(request, "htmx", False)) or request.GET.get("partial") == "1"


# ---------------------------------------------------------------------------
# The run list
# ---------------------------------------------------------------------------

class RunFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *RunStatus.choices])
    orchestration = forms.ChoiceField(required=False, choices=[("", "Any orchestration")])
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "run id or record (demo.employee:12)"}))

    def __init__(self, *args, api_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["orchestration"].choices = [("", "Any orchestration"), *[(n, n) for n in api_names]]


def filter_runs(runs, data):
    """Apply the list's filters (cleaned form data) to a queryset of runs."""
    if data.get("status"):
        runs = runs.filter(status=data["status"])
    if data.get("orchestration"):
        runs = runs.filter(orchestration__api_name=data["orchestration"])
    q = (data.get("q") or "").strip()
    if q:
        text = q.lstrip("#")
        condition = Q(record_pk=text) | Q(record_model__iexact=text)
        if text.isdigit():
            condition |= Q(pk=int(text))
        if ":" in text:
            model, _, pk = text.partition(":")
            condition |= Q(record_model__iexact=model.strip(), record_pk=pk.strip())
        runs = runs.filter(condition)
    return runs


def decorate_runs(runs, now=None):
    """Give each run of a page ``progress``, ``error_steps``, ``record_label`` and ``has_overdue``.

    A fixed number of queries for the whole page: stages of the versions on
    the page, step counts of the current stage visits, steps in error, the
    records (one query per model) and the overdue work items.
    """
    now = now or timezone.now()
    runs = list(runs)
    if not runs:
        return runs
    run_ids = [r.pk for r in runs]

    stage_names = {}
    for orch_id, name in (
        Stage.objects.filter(orchestration_id__in={r.orchestration_id for r in runs}, kind=StageKind.STAGE)
        .order_by("orchestration_id", "position", "id").values_list("orchestration_id", "name")
    ):
        stage_names.setdefault(orch_id, []).append(name)

    counts = {
        row["run_id"]: row
        for row in StepRun.objects.filter(
            run_id__in=run_ids, stage_run__status__in=[StageStatus.IN_PROGRESS, StageStatus.ERROR]
        ).values("run_id").annotate(total=Count("id"), done=Count("id", filter=Q(status=StepStatus.COMPLETED)))
    }

    errors = {}
    error_ids = [r.pk for r in runs if r.status == RunStatus.ERROR]
    if error_ids:
        for step_run in StepRun.objects.filter(run_id__in=error_ids, status=StepStatus.ERROR).only(
            "id", "run_id", "step_name", "error", "type"
        ).order_by("id"):
            errors.setdefault(step_run.run_id, []).append(step_run)

    labels = _record_labels(runs)
    overdue = set(
        WorkItem.objects.filter(run_id__in=run_ids, status=WorkItemStatus.OPEN, due_at__lt=now)
        .values_list("run_id", flat=True).distinct()
    )

    for run in runs:
        names = stage_names.get(run.orchestration_id, [])
        total_stages = len(names)
        row = counts.get(run.pk, {"total": 0, "done": 0})
        if run.status == RunStatus.COMPLETED:
            index, fraction = total_stages, 1.0
        elif run.current_stage in names:
            index = names.index(run.current_stage) + 1
            fraction = (index - 1 + (row["done"] / row["total"] if row["total"] else 0)) / (total_stages or 1)
        else:
            index, fraction = 0, 0.0
        run.progress = {
            "stage_index": index,
            "stage_count": total_stages,
            "steps_done": row["done"],
            "steps_total": row["total"],
            "percent": round(min(max(fraction, 0.0), 1.0) * 100),
        }
        run.error_steps = errors.get(run.pk, [])
        run.record_label = labels.get((run.record_model, run.record_pk), "")
        run.has_overdue = run.pk in overdue
    return runs


def _record_labels(rows):
    """{(model, pk): str(record)} for runs or work items, one query per model."""
    wanted = {}
    for row in rows:
        if row.record_model and row.record_pk:
            wanted.setdefault(row.record_model, set()).add(row.record_pk)
    labels = {}
    for label, pks in wanted.items():
        try:
            model = get_model(label, require_allowed=False)
            found = model._default_manager.in_bulk(list(pks))
        except Exception:  # an unknown model or a pk of the wrong type: show the reference only
            continue
        for pk, obj in found.items():
            labels[(label, str(pk))] = str(obj)[:120]
    return labels


def stalled_items(now=None, limit=STALLED_LIMIT):
    """Open work items older than BATON_STALLED_AFTER or past their due time, oldest first."""
    now = now or timezone.now()
    threshold = now - timedelta(seconds=baton_settings.BATON_STALLED_AFTER)
    items = WorkItem.objects.filter(status=WorkItemStatus.OPEN).filter(
        Q(created_at__lt=threshold) | Q(due_at__lt=now)
    )
    total = items.count()
    page = list(
        items.select_related("assignee_user", "assignee_group", "assignee_queue", "run__orchestration", "step_run")
        .order_by("created_at", "id")[:limit]
    )
    for item in page:
        item.age = now - item.created_at
        item.overdue = item.due_at is not None and item.due_at < now
        item.stalled = item.created_at < threshold
    return page, total


def _list_context(request):
    api_names = list(Orchestration.objects.order_by("api_name").values_list("api_name", flat=True).distinct())
    form = RunFilterForm(request.GET or None, api_names=api_names)
    data = form.cleaned_data if form.is_valid() else {}
    runs = filter_runs(OrchestrationRun.objects.select_related("orchestration", "started_by"), data)
    paginator = Paginator(runs.order_by("-started_at", "-id"), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    now = timezone.now()
    page.object_list = decorate_runs(page.object_list, now)
    stalled, stalled_total = stalled_items(now)
    from ..waits import waiting_overview
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("partial", None)
    return {
        "form": form,
        "page": page,
        "runs": page.object_list,
        "stalled": stalled,
        "stalled_total": stalled_total,
        "stalled_after": timedelta(seconds=baton_settings.BATON_STALLED_AFTER),
        "waiting": waiting_overview(),
        "stats": orchestration_stats(),
        "query": query.urlencode(),
        "now": now,
        "can_operate": can_operate(request.user),
        "can_reassign": can_reassign(request.user),
        "poll_seconds": POLL_SECONDS,
        "here": request.get_full_path(),
    }


@monitor_required
def run_list(request):
    context = _list_context(request)
    if _wants_partial(request):
        return render(request, "monitor/_results.html", context)
    return render(request, "monitor/runs.html", context)


# ---------------------------------------------------------------------------
# A run's page
# ---------------------------------------------------------------------------

def _run_context(request, run):
    now = timezone.now()
    plan = Plan.load(run.orchestration_id)
    events = list(RunEvent.objects.filter(run=run).select_related("actor").order_by("id"))
    step_runs = list(StepRun.objects.filter(run=run).select_related("stage_run", "flow").order_by("id"))
    items = {
        item.step_run_id: item
        for item in WorkItem.objects.filter(run=run).select_related("assignee_user", "assignee_group", "assignee_queue")
    }
    child_runs = {}
    if any(step_run.type == "orchestration" for step_run in step_runs):
        for child in OrchestrationRun.objects.filter(parent_step_run__run=run).order_by("id").only(
                "pk", "status", "parent_step_run_id"):
            child_runs.setdefault(child.parent_step_run_id, []).append(child)
    for step_run in step_runs:
        step_run.item = items.get(step_run.pk)
        step_run.children = child_runs.get(step_run.pk, [])
        step_run.inputs_text = json.dumps(step_run.inputs or {}, indent=2, ensure_ascii=False, sort_keys=True)
        step_run.outputs_text = json.dumps(step_run.outputs or {}, indent=2, ensure_ascii=False, sort_keys=True)
        step_run.is_open_in_run = (step_run.status in (StepStatus.WAITING, StepStatus.QUEUED, StepStatus.RUNNING,
                                                       StepStatus.IN_PROGRESS)
                                    and step_run.stage_run.status in (StageStatus.IN_PROGRESS, StageStatus.ERROR))
        step_run.is_overdue = bool(
            step_run.item and step_run.item.is_open and step_run.item.due_at and step_run.item.due_at < now
        )
    from ..waits import wait_states

    wait_states(step_runs, plan)
    annotate_progress(plan, step_runs)  # "3 of 5 approved" on multi-instance steps
    for event in events:
        event.data_text = json.dumps(event.data, ensure_ascii=False, sort_keys=True) if event.data else ""
    decorate_runs([run], now)
    return {
        "run": run,
        "parent": parent_of(run),
        "plan": plan,
        "events": events,
        "step_runs": step_runs,
        "diagram": render_diagram(plan, run_state(run), dom_id=f"run-{run.pk}-diagram"),
        "can_operate": can_operate(request.user),
        "can_pause": permissions.can_pause_run(request.user, run),
        "poll_seconds": POLL_SECONDS,
        "is_open": run.status in (RunStatus.RUNNING, RunStatus.ERROR, RunStatus.PAUSED),
        "here": request.get_full_path().replace("partial=1", "").rstrip("?&"),
    }


@monitor_required
def run_detail(request, run_id):
    run = get_object_or_404(OrchestrationRun.objects.select_related("orchestration", "started_by"), pk=run_id)
    context = _run_context(request, run)
    if _wants_partial(request):
        return render(request, "monitor/_run_body.html", context)
    return render(request, "monitor/run.html", context)


# ---------------------------------------------------------------------------
# Operator actions
# ---------------------------------------------------------------------------

def _run_url(run_id):
    return reverse("monitor:run", args=[run_id])


CANCEL_REASON_MAX = 500


def _operate(request, run, act, done, errors=(engine.EngineError,)):
    """An operator action on a run: do it, say how it went as a message, go back to the run's page.

    ``act`` is a call of one engine (or waits) transition; ``done`` the message when it went
    through; an error among ``errors`` (the transition refused: the run moved on meanwhile,
    the step is not open...) becomes the message instead.
    """
    try:
        act()
    except errors as exc:
        messages.error(request, exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
    else:
        messages.success(request, done)
    return _back(request, _run_url(run.pk))


def _reason(request, run, what, why="the timeline shows it"):
    """The operator's reason (required, at most CANCEL_REASON_MAX characters), or None with the message why not."""
    reason = " ".join((request.POST.get("reason") or "").split())
    if not reason:
        messages.error(request, f"Run {run.pk} was not {what}: say why ({why}).")
    elif len(reason) > CANCEL_REASON_MAX:
        messages.error(request, f"Run {run.pk} was not {what}: the reason is over {CANCEL_REASON_MAX} characters.")
    else:
        return reason
    return None


@operator_required
def run_cancel(request, run_id):
    """Cancel a run, with the reason the operator gives (required: its assignees and the timeline show it)."""
    run = get_object_or_404(OrchestrationRun, pk=run_id)
    reason = _reason(request, run, "canceled", why="the people with work in it read it")
    if reason is None:
        return _back(request, _run_url(run.pk))
    return _operate(request, run, lambda: engine.cancel_run(run.pk, user=request.user, reason=reason),
                    f"Run {run.pk} was canceled.")


@operator_required
def step_retry(request, run_id, step_name):
    run = get_object_or_404(OrchestrationRun, pk=run_id)
    return _operate(request, run, lambda: engine.retry_step(run.pk, step_name, user=request.user),
                    f"Run {run.pk}: step {step_name} was started again.")


class SkipForm(forms.Form):
    outputs = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        label="Outputs (JSON object)", help_text='The step completes with these outputs, e.g. {"approved": true}.',
    )

    def __init__(self, *args, run=None, step_name=None, step_spec=None, **kwargs):
        self.run, self.step_name, self.flow_spec = run, step_name, step_spec
        super().__init__(*args, **kwargs)

    def clean_outputs(self):
        text = (self.cleaned_data.get("outputs") or "").strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"This is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).")
        try:
            return clean_skip_outputs(self.run, self.step_name, value, self.flow_spec)
        except ValidationError as exc:
            raise ValidationError([f"{key.removeprefix('outputs.')}: {message}" if key != "outputs" else message
                                   for key, messages_ in exc.message_dict.items() for message in messages_])


@monitor_required
def step_skip(request, run_id, step_name):
    """GET: the form on its own page; POST: validate the outputs and skip the step."""
    run = get_object_or_404(OrchestrationRun.objects.select_related("orchestration"), pk=run_id)
    spec = skipped_step_flow(run, step_name)
    if request.method == "POST":
        if not can_operate(request.user):
            raise PermissionDenied("operating runs needs the orchestration.operate_runs permission")
        form = SkipForm(request.POST, run=run, step_name=step_name, step_spec=spec)
        if form.is_valid():
            return _operate(request, run, lambda: engine.skip_step(run.pk, step_name, form.cleaned_data["outputs"],
                                                                   user=request.user),
                            f"Run {run.pk}: step {step_name} was skipped.")
        status = 400
    else:
        form = SkipForm(run=run, step_name=step_name, step_spec=spec)
        status = 200
    return render(request, "monitor/skip.html", {
        "run": run, "step_name": step_name, "form": form, "flow_spec": spec,
        "next": _next_url(request, _run_url(run.pk)),
        "can_operate": can_operate(request.user),
    }, status=status)


@monitor_required
@require_POST
def work_item_reassign(request, item_id):
    item = get_object_or_404(WorkItem, pk=item_id)
    assignee = (request.POST.get("assignee") or "").strip()
    try:
        workguide_services.reassign(item, request.user, assignee)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, f"Reassign {item.label}: {message}")
    except workguide_services.WorkItemClosed as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"“{item.label}” is now assigned to {assignee}.")
    return _back(request, reverse("monitor:runs"))


# -- Pause, resume, withdraw one step (orchestration/waits.py) ------------------

@monitor_required
@require_POST
def run_pause(request, run_id):
    return _pause_or_resume(request, run_id, "pause_run", "paused")


@monitor_required
@require_POST
def run_resume(request, run_id):
    return _pause_or_resume(request, run_id, "resume_run", "resumed")


def _pause_or_resume(request, run_id, transition, done):
    from .. import waits

    run = get_object_or_404(OrchestrationRun, pk=run_id)
    if not permissions.can_pause_run(request.user, run):
        raise PermissionDenied("pausing needs orchestration.operate_runs, or pause_own_runs for a run you started")
    reason = _reason(request, run, done)
    if reason is None:
        return _back(request, _run_url(run.pk))
    return _operate(request, run, lambda: getattr(waits, transition)(run.pk, user=request.user, reason=reason),
                    f"Run {run.pk} was {done}.")


@operator_required
def step_cancel(request, run_id, step_name):
    """Withdraw one open step; its stage goes on."""
    from .. import waits

    run = get_object_or_404(OrchestrationRun, pk=run_id)
    reason = " ".join((request.POST.get("reason") or "").split())[:CANCEL_REASON_MAX]
    return _operate(request, run, lambda: waits.cancel_step(run.pk, step_name, user=request.user, reason=reason),
                    f"Run {run.pk}: step {step_name} was withdrawn.", errors=(LookupError, engine.EngineError))
