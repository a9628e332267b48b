"""Wait steps, events and timers; pausing a run; withdrawing one step (DESIGN §10).

The rules, in the engine's words (``docs/design.md`` "Timers and events"):

1. A wait step (``type: wait``) starts like any step, when its entry holds.
   It does no work: it becomes ``in_progress`` and waits.

   - ``for: 2h`` / ``until: <datetime expr>``: a ``Timer`` row is written
     with its due time (an ``until`` already past completes the step at
     once). The sweeper fires it; the step completes with outputs ``{}``.
   - ``event: NAME``: if the run holds a kept event of that name, the step
     takes the oldest and completes at once with its data. Otherwise it
     waits; with ``timeout``, a ``Timer`` is written for the timeout. When
     the timeout fires, ``on_timeout: complete`` (the default) completes the
     step with outputs ``{timed_out: true}`` and ``on_timeout: error`` puts
     it in error as a failed background step would be.

2. An event (``send_event``, the REST endpoint, a step's signed webhook) is
   delivered under the run's lock to every wait step of the run that is
   ``in_progress`` on that name: each is recorded as an ``event_received``
   run event with the data, and completes with the data as its outputs.
   When nothing waits: with ``keep`` the event is stored (``KeptEvent``) and
   recorded as ``event_kept``; without, it is refused (``NothingWaits``,
   404 in the API): never lost silently. A run that is over takes no event.

3. Timers fire exactly once. The sweeper lists pending timers due now of
   running runs, and fires each in its own transition: the run's row is
   locked first (the engine's lock order), then the timer is marked fired
   by a conditional update (``state = pending``): of two sweepers (or a
   sweeper and a resume) racing for the same timer, the second finds it
   fired and does nothing. A step that ends in any other way (an event, a
   withdrawal, the stage ending) cancels its pending timers in the same
   transition. A worker killed mid-sweep leaves the timer pending (its
   transaction rolled back) and the next sweep fires it.

4. A paused run (``status: paused``) starts no step and opens no work item:
   the engine's progress stops at ``status != running``. What was queued or
   running finishes and is recorded; an event completes its step; timers of
   a paused run wait. A step that fails while paused puts the run in error
   as usual. Resume sets ``running`` again, fires the timers that came due
   meanwhile, and makes progress where the run stood. Both are recorded
   (``run_paused``, ``run_resumed``) with who and why. ``pause_run`` and
   ``resume_run`` act on one run: the sub-orchestration work calls them for
   each child run.

5. Withdrawing one step (``cancel_step``) makes an open step ``canceled``
   (its work item canceled, its timers canceled); the stage goes on; an
   ``after`` step that names it never starts and is discontinued when the
   stage ends (engine rule 4).

Every public function here is one transition of the engine (``transition.lock_run``),
so the rules above run under the run's lock like the engine's own.
"""
import datetime
import logging

from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows.durations import parse_duration
from flows.expressions import ExpressionError, UnstorableValue, evaluate, to_json

from . import children, engine, instances
from .engine import EngineError
from .transition import lock_run
from .models import (
    EventKind, KeptEvent, OrchestrationRun, RunStatus, StageStatus, StepStatus, Timer, TimerPurpose, TimerState,
)
from .models.runs import ENDED_RUN_STATUSES, OPEN_STEP_STATUSES

log = logging.getLogger(__name__)

WEBHOOK_SALT = "baton.waits.webhook"
SWEEP_BATCH = 500


class NothingWaits(LookupError):
    """An event for which no step waits (and not kept): refused, 404 in the API."""


class BadEventData(ValueError):
    """Event data that is not a map of JSON values (400 in the API)."""


# ---------------------------------------------------------------------------
# Hooks called by the engine inside its transitions
# ---------------------------------------------------------------------------

def start_wait(ctx, stage_run, step_run, step):
    """Rule 1: a wait step starts (engine ``_start_step``); a bad duration or ``until`` puts it in error."""
    try:
        _start_wait(ctx, stage_run, step_run, step)
    except engine.StepFailure as exc:
        engine._step_error(ctx, step_run, str(exc))


def _start_wait(ctx, stage_run, step_run, step):
    place = ctx.place(step.stage, step.name)
    step_run.started_at = ctx.now
    step_run.status = StepStatus.IN_PROGRESS
    step_run.save(update_fields=["started_at", "status"])
    if step.wait_event:
        due = _after(ctx, step.wait_timeout, f"{place} › timeout") if step.wait_timeout else None
        ctx.event(EventKind.WAIT_STARTED, stage_run.stage_name, step.name, event=step.wait_event, timeout_at=due)
        kept = (KeptEvent.objects.filter(run=ctx.run, name=step.wait_event, taken_at__isnull=True)
                .order_by("kept_at", "id").first())
        if kept is not None:
            kept.taken_at, kept.taken_by = ctx.now, step_run
            kept.save(update_fields=["taken_at", "taken_by"])
            _deliver(ctx, step_run, step.wait_event, kept.data, source="kept")
        elif due is not None:
            Timer.objects.create(run=ctx.run, step_run=step_run, purpose=TimerPurpose.TIMEOUT, due_at=due,
                                 created_at=ctx.now)
        return
    if step.wait_for:
        due = _after(ctx, step.wait_for, f"{place} › for")
    else:
        due = _until(ctx, step, place)
    ctx.event(EventKind.WAIT_STARTED, stage_run.stage_name, step.name, due_at=due)
    if due <= ctx.now:
        ctx.event(EventKind.TIMER_FIRED, stage_run.stage_name, step.name, due_at=due, at_start=True)
        engine._finish_step(ctx, step_run, StepStatus.COMPLETED, outputs={})
        return
    Timer.objects.create(run=ctx.run, step_run=step_run, purpose=TimerPurpose.WAIT, due_at=due, created_at=ctx.now)


def _after(ctx, text, place):
    """``now + duration``; StepFailure naming the place for a bad one (a version never validated)."""
    try:
        return ctx.now + parse_duration(text)
    except ValueError as exc:
        raise engine.StepFailure(f"{place}: {exc}")


def _until(ctx, step, place):
    where = f"{place} › until"
    try:
        value = evaluate(step.wait_until, ctx.scope(), where)
    except ExpressionError as exc:
        raise engine.StepFailure(str(exc))
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            try:
                parsed = datetime.datetime.combine(datetime.date.fromisoformat(value), datetime.time())
            except ValueError:
                raise engine.StepFailure(f"{where}: {value!r} is not a date and time")
        value = parsed
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    if not isinstance(value, datetime.datetime):
        raise engine.StepFailure(f"{where}: gave {type(value).__name__}, not a date and time")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.timezone.utc)
    return value


def step_closed(ctx, step_run):
    """A wait step ended (any way): its pending timers will never fire (engine ``_finish_step``)."""
    step = ctx.plan.steps_by_name.get(step_run.step_name)
    if step is not None and step.wait_event and not step.wait_timeout:
        return  # an event wait without a timeout never writes a timer: no UPDATE to send (one query per event)
    Timer.objects.filter(step_run=step_run, state=TimerState.PENDING).update(state=TimerState.CANCELED)


# ---------------------------------------------------------------------------
# Events (rule 2)
# ---------------------------------------------------------------------------

def check_event(name, data):
    """The data of an event as stored: a map (or nothing). Raises BadEventData naming the place."""
    if not isinstance(name, str) or not name or len(name) > 100:
        raise BadEventData("name: give the event's name (at most 100 characters)")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadEventData(f"data: give a map of values (the step's outputs), not {type(data).__name__}")
    try:
        return to_json(data)
    except UnstorableValue as exc:
        raise BadEventData(f"data: {exc}")


def send_event(run, name, data=None, keep=False, *, user=None, source="python", effects=None):
    """Deliver event ``name`` to the wait steps of ``run`` waiting for it. Returns the run.

    Raises NothingWaits when no step waits and ``keep`` is false (or the run
    is over), BadEventData for data that is not a map.
    """
    run_id = getattr(run, "pk", run)
    data = check_event(name, data)
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        if ctx.run.status in ENDED_RUN_STATUSES:
            raise NothingWaits(f"run {run_id} is {ctx.run.status}: nothing waits for event {name!r}")
        waiting = _waiting_for(ctx, name)
        if waiting:
            for step_run in waiting:
                _deliver(ctx, step_run, name, data, source=source)
            engine._progress(ctx)
        elif keep:
            KeptEvent.objects.create(run=ctx.run, name=name, data=data, kept_at=ctx.now,
                                     sent_by=user if getattr(user, "pk", None) else None)
            ctx.event(EventKind.EVENT_KEPT, name=name, data=data, source=source)
        else:
            raise NothingWaits(f"run {run_id}: no step waits for event {name!r} "
                               f"(send it with keep to store it for the run's next wait on it)")
        engine._save_run(ctx)
    return ctx.run


def send_event_for(record, name, data=None, *, user=None):
    """Deliver ``name`` to every run for ``record`` that has a step waiting for it. Returns those runs.

    Each run is its own transition. Raises NothingWaits when no run for the
    record waits for it.
    """
    from .records import model_label

    data = check_event(name, data)
    candidates = (OrchestrationRun.objects
                  .filter(record_model=model_label(record), record_pk=str(record.pk),
                          status__in=[RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.ERROR],
                          step_runs__type="wait", step_runs__status=StepStatus.IN_PROGRESS)
                  .distinct().order_by("id").values_list("id", flat=True))
    delivered = []
    for run_id in candidates:
        try:
            delivered.append(send_event(run_id, name, data, user=user, source="record"))
        except NothingWaits:
            continue
    if not delivered:
        raise NothingWaits(f"no run for {model_label(record)}:{record.pk} waits for event {name!r}")
    return delivered


def _waiting_for(ctx, name, step_run_id=None):
    found = []
    for step_run in ctx.step_runs:
        if step_run.type != "wait" or step_run.status != StepStatus.IN_PROGRESS:
            continue
        if step_run_id is not None and step_run.pk != step_run_id:
            continue
        step = ctx.plan.steps_by_name.get(step_run.step_name)
        if step is not None and step.wait_event == name:
            found.append(step_run)
    return found


def _deliver(ctx, step_run, name, data, *, source):
    stage = engine._stage_name(ctx, step_run)
    ctx.event(EventKind.EVENT_RECEIVED, stage, step_run.step_name, name=name, data=data, source=source)
    engine._finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=data)


# The signed webhook of a waiting step: whoever holds the URL may deliver
# that step's event, and nothing else (no token, no other run, no other
# name). The signature is an HMAC with SECRET_KEY (django.core.signing).

def webhook_token(step_run_id, name):
    # Signer, not dumps: no timestamp, so the URL shown stays the same while the step waits.
    return signing.Signer(salt=WEBHOOK_SALT).sign_object([step_run_id, name])


def webhook_path(step_run_id, name):
    from django.urls import reverse

    return reverse("baton_api:wait-webhook", args=[webhook_token(step_run_id, name)])


def webhook_url(step_run_id, name):
    """The absolute URL (``BATON_BASE_URL``) external systems POST the step's event to."""
    from urllib.parse import urlsplit

    from .conf import baton_settings

    base = urlsplit(str(baton_settings.BATON_BASE_URL or ""))
    return f"{base.scheme}://{base.netloc}{webhook_path(step_run_id, name)}" if base.netloc else webhook_path(
        step_run_id, name)


def wait_state(step_run, plan=None):
    """What a wait step waits for, for the API and the monitor: ``{event, due_at, webhook_url}``, or None.

    Reads ``step_run.pending_timers`` when the caller prefetched them.
    """
    from .plan import Plan

    if step_run.type != "wait":
        return None
    timers = getattr(step_run, "pending_timers", None)
    if timers is None:
        timers = list(step_run.timers.filter(state=TimerState.PENDING))
    if plan is None:
        plan = Plan.load(step_run.stage_run.run.orchestration_id)
    step = plan.steps_by_name.get(step_run.step_name)
    event = step.wait_event if step is not None else ""
    waiting = step_run.status == StepStatus.IN_PROGRESS
    return {
        "event": event or None,
        "due_at": timers[0].due_at if timers else None,
        "webhook_url": webhook_url(step_run.pk, event) if event and waiting else None,
    }


def wait_states(step_runs, plan):
    """Set ``step_run.wait`` (``wait_state``) on each step run of one run, with one query for their timers."""
    ids = [s.pk for s in step_runs if s.type == "wait"]
    pending = {}
    for timer in Timer.objects.filter(step_run_id__in=ids, state=TimerState.PENDING).order_by("due_at"):
        pending.setdefault(timer.step_run_id, []).append(timer)
    for step_run in step_runs:
        step_run.pending_timers = pending.get(step_run.pk, [])
        step_run.wait = wait_state(step_run, plan)
    return step_runs


def waiting_overview(limit=50):
    """For the monitor's list: paused runs, pending timers (soonest first) and kept events. A fixed number of queries."""
    paused = OrchestrationRun.objects.filter(status=RunStatus.PAUSED).select_related("orchestration")
    timers = (Timer.objects.filter(state=TimerState.PENDING, run__status__in=[RunStatus.RUNNING, RunStatus.PAUSED])
              .select_related("run__orchestration", "step_run").order_by("due_at", "id"))
    kept = (KeptEvent.objects.filter(taken_at__isnull=True, run__status__in=[RunStatus.RUNNING, RunStatus.PAUSED])
            .select_related("run__orchestration", "sent_by").order_by("kept_at", "id"))
    return {
        "paused": list(paused.order_by("-started_at")[:limit]), "paused_total": paused.count(),
        "timers": list(timers[:limit]), "timers_total": timers.count(),
        "kept": list(kept[:limit]), "kept_total": kept.count(),
    }


def send_webhook_event(token, data=None):
    """Deliver the event a webhook token names to its step. Returns ``(run, step name, event name)``.

    A bad signature and a step no longer waiting are both NothingWaits
    (404: the URL is not a way to learn which runs exist).
    """
    from .models import StepRun

    try:
        step_run_id, name = signing.Signer(salt=WEBHOOK_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        raise NothingWaits("this webhook URL is not valid")
    data = check_event(name, data)
    run_id = StepRun.objects.filter(pk=step_run_id).values_list("run_id", flat=True).first()
    if run_id is None:
        raise NothingWaits("the step of this webhook no longer exists")
    with transaction.atomic():
        ctx = lock_run(run_id, None, None)
        waiting = [] if ctx.run.status in ENDED_RUN_STATUSES else _waiting_for(ctx, name, step_run_id=step_run_id)
        if not waiting:
            raise NothingWaits(f"the step of this webhook no longer waits for event {name!r}")
        _deliver(ctx, waiting[0], name, data, source="webhook")
        engine._progress(ctx)
        engine._save_run(ctx)
    return ctx.run, waiting[0].step_name, name


# ---------------------------------------------------------------------------
# Timers (rule 3)
# ---------------------------------------------------------------------------

def fire_due_timers(now=None, *, effects=None):
    """The sweeper's part: fire every pending timer due by ``now`` of a running run. Returns how many fired."""
    now = now or timezone.now()
    due = list(Timer.objects.filter(state=TimerState.PENDING, due_at__lte=now, run__status=RunStatus.RUNNING)
               .order_by("due_at", "id").values_list("id", "run_id")[:SWEEP_BATCH])
    fired = 0
    for timer_id, run_id in due:
        try:
            fired += fire_timer(timer_id, run_id, now=now, effects=effects)
        except Exception:  # one broken run must not stop the others' timers
            log.exception("timer %s of run %s could not fire; the next sweep tries again", timer_id, run_id)
    if fired:
        log.info("sweeper fired %d timer(s)", fired)
    return fired


def fire_timer(timer_id, run_id, *, now=None, effects=None):
    """Fire one timer in its own transition. Returns 1 if it fired now, 0 if not (already, or the run is not running).

    ``now`` (the sweep's clock; tests pass a later one) is the transition's time.
    """
    with transaction.atomic():
        ctx = lock_run(run_id, effects, None)
        if now is not None:
            ctx.now = now
        if ctx.run.status != RunStatus.RUNNING:
            return 0  # paused (or in error) since it was listed: it waits
        done = _fire_pending(ctx, Timer.objects.filter(pk=timer_id))
        if done:
            engine._progress(ctx)
            engine._save_run(ctx)
        return done


def _fire_pending(ctx, timers):
    """Fire the pending timers among ``timers`` due by now, inside the caller's transition. Returns how many."""
    fired = 0
    rows = list(timers.filter(state=TimerState.PENDING, due_at__lte=ctx.now).values_list(
        "id", "step_run_id", "purpose", "due_at"))
    for timer_id, step_run_id, purpose, due_at in rows:
        # The conditional update is the "exactly once": under the run's lock,
        # only one transition can turn this row from pending to fired.
        if not Timer.objects.filter(pk=timer_id, state=TimerState.PENDING).update(
                state=TimerState.FIRED, fired_at=ctx.now):
            continue
        fired += 1
        step_run = engine._find_step_run(ctx, step_run_id)
        stage = engine._stage_name(ctx, step_run)
        if step_run.status != StepStatus.IN_PROGRESS:
            ctx.event(EventKind.TIMER_FIRED, stage, step_run.step_name, due_at=due_at, ignored=step_run.status)
            continue
        step = ctx.plan.step(step_run.step_name)
        if purpose == TimerPurpose.WAIT:
            ctx.event(EventKind.TIMER_FIRED, stage, step.name, due_at=due_at)
            engine._finish_step(ctx, step_run, StepStatus.COMPLETED, outputs={})
        elif step.on_timeout == "error":
            ctx.event(EventKind.WAIT_TIMED_OUT, stage, step.name, event=step.wait_event, due_at=due_at)
            engine._step_error(ctx, step_run, f"{ctx.place(stage, step.name)}: no event {step.wait_event!r} "
                                              f"came within {step.wait_timeout} (on_timeout: error)")
        else:
            ctx.event(EventKind.WAIT_TIMED_OUT, stage, step.name, event=step.wait_event, due_at=due_at)
            engine._finish_step(ctx, step_run, StepStatus.COMPLETED, outputs={"timed_out": True})
    return fired


# ---------------------------------------------------------------------------
# Pause and resume (rule 4): one run each; the children helper calls them per child
# ---------------------------------------------------------------------------

def pause_run(run_id, *, user=None, reason="", effects=None, by_parent=None):
    """Pause a running run. Raises EngineError (409) when it is not running.

    ``by_parent``: the id of the parent run whose pause this passes on (``children.py``);
    the parent's resume resumes only children it paused.
    """
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        if ctx.run.status != RunStatus.RUNNING:
            raise EngineError(f"run {run_id} is {ctx.run.status}; only a running run can be paused")
        ctx.run.status = RunStatus.PAUSED
        ctx.event(EventKind.RUN_PAUSED, reason=reason, **({"by_parent_run": by_parent} if by_parent else {}))
        engine._save_run(ctx)
        children.pause_children_later(ctx.run, pause=True, user=user, reason=reason)  # sub-orchestrations too
    return ctx.run


def resume_run(run_id, *, user=None, reason="", effects=None):
    """Resume a paused run where it stood. Raises EngineError (409) when it is not paused."""
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        if ctx.run.status != RunStatus.PAUSED:
            raise EngineError(f"run {run_id} is {ctx.run.status}; only a paused run can be resumed")
        ctx.run.status = RunStatus.RUNNING
        ctx.event(EventKind.RUN_RESUMED, reason=reason, was="paused")
        _fire_pending(ctx, Timer.objects.filter(run=ctx.run))
        instances.resume(ctx)  # hook: a sequential step's next instance, held back while paused
        engine._progress(ctx)
        engine._save_run(ctx)
        children.pause_children_later(ctx.run, pause=False, user=user, reason=reason)
    return ctx.run


# ---------------------------------------------------------------------------
# Withdrawing one step (rule 5)
# ---------------------------------------------------------------------------

def cancel_step(run_id, step_name, *, user=None, reason="", effects=None):
    """Withdraw the open step ``step_name`` of the run's current stage; the stage goes on.

    Raises LookupError (404) when the run's version has no such step,
    EngineError (409) when the run is over or the step is not open.
    """
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        if step_name not in ctx.plan.steps_by_name:
            raise LookupError(f"run {run_id} has no step named {step_name!r}")
        if ctx.run.status in ENDED_RUN_STATUSES:
            raise EngineError(f"run {run_id} is {ctx.run.status}; its steps cannot be withdrawn")
        open_stages = {pk for pk, sr in ctx.stage_runs.items()
                       if sr.status in (StageStatus.IN_PROGRESS, StageStatus.ERROR)}
        step_run = next((s for s in reversed(ctx.step_runs)
                         if s.step_name == step_name and s.stage_run_id in open_stages), None)
        if step_run is None or step_run.status not in OPEN_STEP_STATUSES:
            status = step_run.status if step_run is not None else "not in the current stage"
            raise EngineError(f"step {step_name!r} of run {run_id} is {status}; only an open step can be withdrawn")
        engine._finish_step(ctx, step_run, StepStatus.CANCELED, close_items="canceled")
        # The step_canceled event just noted (a multi-instance step's instances' events come after it).
        event = next(e for e in reversed(ctx.events) if e.kind == EventKind.STEP_CANCELED and e.step_name == step_name)
        event.data = to_json({**event.data, "reason": reason})
        engine._progress(ctx)
        engine._save_run(ctx)
    return ctx.run
