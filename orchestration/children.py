"""Sub-orchestration steps: a step that runs another orchestration as a child run (DESIGN §10).

The rules, in the order a child's life takes them:

1. A ``type: orchestration`` step starts a run of the *active* version of its
   orchestration, in the parent's transition, with the step's inputs and the
   parent's record. The child pins that version for its whole life, as every
   run does. Its ``parent_step_run`` is the step; its depth is the parent's
   plus one, and a start deeper than ``BATON_MAX_CHILD_DEPTH`` fails the step.
2. While the child runs, the step is ``in_progress``.
3. When the child ends, it tells its parent in the child's own transition,
   with the child's row locked first and the parent's second: completed → the
   step completes with the child's ``outputs``; error → the step is in error
   (the child's error quoted); canceled by someone → the step is in error.
   Only the step's latest child speaks for it (a retried step has a new one).
   A child that ends inside the transition that starts it (its steps ran in
   process) is read by the parent directly instead.
4. The other direction never locks a child inside a parent's transition, so
   two transitions can never wait for each other's rows: when a parent's step
   stops waiting for its child (the run is canceled, the stage discontinued,
   the step skipped or retried), the child is canceled right after the
   parent's transaction commits, and the sweeper cancels any child whose
   step no longer waits for it if that was lost.
5. Retrying a sub-orchestration step starts a new child; the failed one is
   canceled. An operator may instead retry the failed step *inside* the
   child: when the child resumes, its parent's step goes back to
   ``in_progress`` and the parent resumes too.
"""
import logging

from django.db import transaction
from django.db.models import Q

from .conf import baton_settings
from .models import EventKind, OrchestrationRun, RunEvent, RunStatus, StepStatus
from .models.runs import ENDED_RUN_STATUSES
from .models.definitions import Orchestration
from flows.versioning import DefinitionStatus

log = logging.getLogger(__name__)



class ChildStartFailed(Exception):
    """The child run could not start; the message names the place."""


def start_child(ctx, step, step_run, inputs):
    """Start the child run of ``step`` (in the parent's transition ``ctx``). Returns the run."""
    from .engine import start_run  # the engine calls this module while it runs: imported when used

    place = ctx.place(step.stage, step.name)
    depth = ctx.run.depth + 1
    limit = baton_settings.BATON_MAX_CHILD_DEPTH
    if depth > limit:
        raise ChildStartFailed(f"{place}: starting orchestration {step.child_orchestration} would nest runs "
                               f"{depth} deep (BATON_MAX_CHILD_DEPTH is {limit}): a recursion that does not end?")
    version = (Orchestration.objects.filter(api_name=step.child_orchestration, status=DefinitionStatus.ACTIVE)
               .only("pk", "version").first())
    if version is None:
        raise ChildStartFailed(f"{place}: orchestration {step.child_orchestration} has no active version")
    child = start_run(version, record=ctx.record, inputs=inputs, user=ctx.run.started_by,
                      effects=ctx.effects, parent=(step_run, depth))
    return child


def outcome_for_parent(child):
    """What an ended (or failed) child means for its step: (status, outputs, error)."""
    if child.status == RunStatus.COMPLETED:
        return StepStatus.COMPLETED, child.outputs or {}, ""
    if child.status == RunStatus.ERROR:
        return StepStatus.ERROR, None, f"sub-orchestration run {child.pk} is in error: {child.error}"
    if child.status == RunStatus.CANCELED:
        return StepStatus.ERROR, None, f"sub-orchestration run {child.pk} was canceled"
    return None


def tell_parent(ctx, was):
    """At the end of a child's transition: pass what changed (``was`` → now) to its parent's step.

    Called with the child's row locked; the parent's is locked next (the order rule 3 keeps).
    """
    from . import engine

    run = ctx.run
    if run.parent_step_run_id is None or run.status == was or getattr(ctx, "started_by_parent", False):
        return
    latest = (OrchestrationRun.objects.filter(parent_step_run_id=run.parent_step_run_id)
              .order_by("-id").values_list("pk", flat=True).first())
    if latest != run.pk:
        return  # a replaced child (its step was retried): the new one speaks for the step
    if was == RunStatus.ERROR and run.status in (RunStatus.RUNNING, RunStatus.COMPLETED):
        # Put back to work inside (rule 5): the step waits for its child again, and the parent resumes.
        engine.resume_step_of_child(run.parent_step_run_id, run.pk)
    outcome = outcome_for_parent(run)
    if outcome is None:
        return
    status, outputs, error = outcome
    if status == StepStatus.COMPLETED:
        engine.complete_step(run.parent_step_run_id, outputs, source="child")
    else:
        engine.fail_step(run.parent_step_run_id, error)


def cancel_children_later(step_run, reason, keep=None):
    """After this transaction commits, cancel the children of ``step_run`` that still run (rule 4)."""
    step_run_id = step_run.pk
    transaction.on_commit(lambda: cancel_children(step_run_id, reason, keep=keep))


def cancel_children(step_run_id, reason, keep=None):
    """Cancel every child of ``step_run_id`` that has not ended (except the run ``keep``)."""
    from .engine import EngineError, cancel_run

    children = OrchestrationRun.objects.filter(parent_step_run_id=step_run_id).exclude(status__in=ENDED_RUN_STATUSES)
    if keep is not None:
        children = children.exclude(pk=keep)
    for child_id in children.values_list("pk", flat=True):
        try:
            cancel_run(child_id, reason=reason)
        except EngineError:
            pass  # it ended meanwhile
        except Exception:  # noqa: BLE001 — the sweeper tries again (sweep_orphaned_children)
            log.exception("canceling child run %s failed; the sweeper will try again", child_id)


def pause_children_later(run, *, pause, user=None, reason=""):
    """After this transaction commits, pause (or resume) the child runs of ``run`` (rule 4's order:
    the parent never locks a child; each child is its own transition, and passes it on to its own)."""
    run_id = run.pk
    transaction.on_commit(lambda: _pause_children(run_id, pause, user, reason))


def _pause_children(run_id, pause, user, reason):
    from . import waits  # builds on the engine, which imports this module: imported when used

    wanted = RunStatus.RUNNING if pause else RunStatus.PAUSED
    for child_id in OrchestrationRun.objects.filter(parent_step_run__run_id=run_id, status=wanted).values_list(
            "pk", flat=True):
        why = f"its parent run {run_id} was {'paused' if pause else 'resumed'}" + (f": {reason}" if reason else "")
        try:
            if pause:
                waits.pause_run(child_id, user=user, reason=why, by_parent=run_id)
            elif _paused_by_parent(child_id, run_id):  # a child paused on its own stays paused
                waits.resume_run(child_id, user=user, reason=why)
        except Exception:  # noqa: BLE001 — it ended or changed meanwhile; the parent's action stands
            log.warning("%s child run %s of run %s failed", "pausing" if pause else "resuming", child_id, run_id,
                        exc_info=True)


def _paused_by_parent(child_id, parent_id):
    """Whether the child run's latest pause was its parent's (``pause_run(by_parent=...)``).

    A pause written before ``by_parent_run`` existed is known by its reason, which names the parent.
    """
    data = (RunEvent.objects.filter(run_id=child_id, kind=EventKind.RUN_PAUSED).order_by("-id")
            .values_list("data", flat=True).first())
    if not data:
        return False
    if "by_parent_run" in data:
        return data["by_parent_run"] == parent_id
    return str(data.get("reason", "")).startswith(f"its parent run {parent_id} was paused")


def sweep_orphaned_children():
    """Cancel child runs whose step no longer waits for them (a cancel lost with its process).

    Returns how many were canceled.
    """
    waited_for = Q(parent_step_run__status__in=(StepStatus.IN_PROGRESS, StepStatus.ERROR),
                   parent_step_run__run__status__in=(RunStatus.RUNNING, RunStatus.ERROR))
    orphans = (OrchestrationRun.objects.exclude(status__in=ENDED_RUN_STATUSES)
               .filter(parent_step_run__isnull=False).exclude(waited_for))
    count = 0
    for child_id, step_run_id in orphans.values_list("pk", "parent_step_run_id")[:500]:
        cancel_children(step_run_id, "its parent's step no longer waits for it")
        count += 1
    # A retried step's replaced children: every child but the latest.
    replaced = (OrchestrationRun.objects.exclude(status__in=ENDED_RUN_STATUSES).filter(
        parent_step_run__status=StepStatus.IN_PROGRESS).values_list("parent_step_run_id", flat=True).distinct())
    for step_run_id in replaced[:500]:
        latest = OrchestrationRun.objects.filter(parent_step_run_id=step_run_id).order_by("-id").first()
        going = OrchestrationRun.objects.filter(parent_step_run_id=step_run_id).exclude(status__in=ENDED_RUN_STATUSES)
        if going.exclude(pk=latest.pk).exists():
            cancel_children(step_run_id, "replaced by a retry of its parent's step", keep=latest.pk)
            count += 1
    return count


def parent_of(run):
    """``{"run": id, "step": name}`` of a child run's parent, or None."""
    if run.parent_step_run_id is None:
        return None
    step_run = run.parent_step_run  # lists load it with the run (select_related): no query per run
    return {"run": step_run.run_id, "step": step_run.step_name}
