"""Work item state changes: open, close, complete, claim, reassign, comment.

Each change that touches a run goes through the engine's lock so a work item
and its step always agree. Every one is recorded in the run's events.
"""
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestration import journal
from orchestration.engine import StepFailure
from orchestration import permissions
from orchestration.models import EventKind

from .models import Queue, WorkItem, WorkItemStatus

log = logging.getLogger(__name__)


class WorkItemClosed(Exception):
    """The item is no longer open (someone finished it first, or the stage moved on)."""


class ClaimedByOther(PermissionDenied):
    pass


def parse_assignee(value):
    """``"user:NAME"`` → ("user", User) etc.; StepFailure if it does not exist."""
    kind, _, name = (value or "").partition(":")
    if kind == "user":
        user = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: name}).first()
        if user is None or not user.is_active:
            raise StepFailure(f"assignee {value!r}: no active user {name!r}")
        return kind, user
    if kind == "group":
        group = Group.objects.filter(name=name).first()
        if group is None:
            raise StepFailure(f"assignee {value!r}: no group {name!r}")
        return kind, group
    if kind == "queue":
        queue = Queue.objects.filter(name=name).first()
        if queue is None:
            raise StepFailure(f"assignee {value!r}: no queue {name!r}")
        return kind, queue
    raise StepFailure(f"assignee {value!r}: expected user:NAME, group:NAME or queue:NAME")


def _assign_fields(kind, target):
    return {
        "assignee_type": kind,
        "assignee_user": target if kind == "user" else None,
        "assignee_group": target if kind == "group" else None,
        "assignee_queue": target if kind == "queue" else None,
    }


def give_to(item, kind, target):
    """Set ``item``'s assignee to ``target`` (from ``parse_assignee``) and drop any claim; the caller saves.

    Returns the changed field names (for ``save(update_fields=...)``). Both
    reassignment by a person (``reassign``) and escalation (``due.py``) go through here.
    """
    changed = _assign_fields(kind, target) | {"claimed_by": None}
    for name, value in changed.items():
        setattr(item, name, value)
    return list(changed)


def open_work_item(ctx, step_run, step, prepared):
    """Called by the engine (inside its transaction) when an interactive step starts."""
    kind, target = parse_assignee(prepared.assignee)
    from orchestration.records import load_record

    record_label = ""
    if prepared.record_model and prepared.record_pk:
        try:
            record = load_record(prepared.record_model, prepared.record_pk)
            record_label = str(record)[:200] if record is not None else ""
        except Exception:
            record_label = ""
    item = WorkItem.objects.create(
        step_run=step_run,
        run=ctx.run,
        label=step.label or step.name,
        flow_id=prepared.flow_id,
        record_model=prepared.record_model,
        record_pk=prepared.record_pk,
        record_label=record_label,
        inputs=prepared.inputs,
        created_at=ctx.now,
        due_at=prepared.due_at,
        **_assign_fields(kind, target),
    )
    ctx.event(EventKind.WORK_ITEM_OPENED, step.stage, step.name, work_item=item.pk, assignee=prepared.assignee)
    from .notifications import notify_new_work_item

    transaction.on_commit(lambda: notify_new_work_item(item.pk))
    return item


def close_work_items(ctx, step_runs, status):
    ids = [s.pk for s in step_runs]
    # Instances of a multi-instance step withdrawn when its completion rule was met: their assignees are told.
    withdrawn = [s.pk for s in step_runs if s.instance_index is not None] if status == WorkItemStatus.CANCELED else []
    mail = list(WorkItem.objects.filter(step_run_id__in=withdrawn, status=WorkItemStatus.OPEN)
                .values_list("pk", flat=True)) if withdrawn else []
    WorkItem.objects.filter(step_run_id__in=ids, status=WorkItemStatus.OPEN).update(
        status=status, completed_at=ctx.now,
        completed_by=ctx.actor if (status == WorkItemStatus.COMPLETED and getattr(ctx.actor, "pk", None)) else None,
    )
    if mail:
        from .notifications import notify

        transaction.on_commit(lambda: [notify(pk, "work_item_canceled") for pk in mail])


# ---------------------------------------------------------------------------
# Who may see and work an item
# ---------------------------------------------------------------------------

can_manage = permissions.can_manage_work_items


def _memberships(user):
    """The ids of ``user``'s groups and of the queues they belong to (by name or through a group): two queries."""
    group_ids = list(user.groups.values_list("id", flat=True))
    queue_ids = list(Queue.objects.filter(Q(members=user) | Q(member_groups__in=group_ids)).values_list("id", flat=True).distinct())
    return group_ids, queue_ids


def assignee_q(user, prefix="", memberships=None):
    """Items assigned to ``user`` directly, through a group, or through a queue.

    ``memberships`` is ``_memberships(user)`` when the caller needs the ids too.
    """
    group_ids, queue_ids = memberships or _memberships(user)
    return (
        Q(**{f"{prefix}assignee_user": user})
        | Q(**{f"{prefix}assignee_group_id__in": group_ids})
        | Q(**{f"{prefix}assignee_queue_id__in": queue_ids})
    )


def visible_items(user):
    """Work items ``user`` may see (assignees; managers see all)."""
    if not user.is_authenticated:
        return WorkItem.objects.none()
    if can_manage(user):
        return WorkItem.objects.all()
    return WorkItem.objects.filter(assignee_q(user))


can_view_runs = permissions.can_view_runs


def record_items(user, record_model, record_pk):
    """The items ``user`` may see (open or closed) that concern a record: the item's own record or its run's."""
    record_pk = str(record_pk)
    return visible_items(user).filter(
        Q(record_model=record_model, record_pk=record_pk)
        | Q(run__record_model=record_model, run__record_pk=record_pk)
    )


def may_see_record_runs(user, record_model, record_pk):
    """May ``user`` see the Work Guide of a record (its runs' stage paths)?

    Those who may see runs, and those who have an item there: one they may
    see now (assigned to them, their group or their queue, or any item for a
    manager), open or already closed, so that finishing one's step does not
    hide the path it just moved. Nobody else learns whether the record has
    runs, or even exists.
    """
    if not user.is_authenticated:
        return False
    return can_view_runs(user) or record_items(user, record_model, record_pk).exists()


def is_assignee(item, user):
    if not user.is_authenticated:
        return False
    if item.assignee_type == WorkItem.USER:
        return item.assignee_user_id == user.pk
    if item.assignee_type == WorkItem.GROUP:
        return user.groups.filter(pk=item.assignee_group_id).exists()
    queue = item.assignee_queue
    return queue.members.filter(pk=user.pk).exists() or queue.member_groups.filter(user=user).exists()


def excluded(item, user):
    """Is ``user`` kept off ``item`` by its step's ``assignee.exclude`` (separation of duties)?"""
    return permissions.is_excluded(user, item.step_run.excluded_users)


def _refuse_excluded(item, user):
    if excluded(item, user):
        raise PermissionDenied(f"{user.get_username()} may not do “{item.label}”: separation of duties "
                               "(this step excludes them, e.g. as the requester)")


def can_work(item, user):
    """May ``user`` fill in and finish ``item`` now?

    Its assignees and managers (``workguide.manage_workitem``), while nobody
    else holds a claim on it. The claim binds managers too: a manager who
    wants to finish an item someone else claimed releases or reassigns it
    first (both recorded), so the claimer is never overtaken unnoticed.
    """
    if not (is_assignee(item, user) or can_manage(user)) or excluded(item, user):
        return False
    return item.claimed_by_id in (None, user.pk)


def holds(item, user):
    """Is ``item`` ``user``'s own work: given to them by name, or claimed by them?"""
    if not user.is_authenticated:
        return False
    if item.claimed_by_id is not None:
        return item.claimed_by_id == user.pk
    return item.assignee_type == WorkItem.USER and item.assignee_user_id == user.pk


def can_release(item, user):
    """May ``user`` give up the claim on ``item``? The claimer, or a manager."""
    return item.claimed_by_id is not None and (item.claimed_by_id == user.pk or can_manage(user))


def can_reassign(item, user):
    """May ``user`` give ``item`` to someone else? Managers; and whoever holds it (``holds``): hand it on."""
    return can_manage(user) or holds(item, user)


# ---------------------------------------------------------------------------
# Actions on an item
# ---------------------------------------------------------------------------

def lock_run(run_id):
    """Lock the run's row, as every engine transition does first (call inside a transaction).

    Lock order: the run, then its work items. The engine locks the run and
    then writes the run's items (``cancel_run`` cancels them, a completion
    closes them); an action here that took the item first and the run
    second would hold what a concurrent transition needs next while waiting
    for what it holds, a deadlock PostgreSQL breaks by failing one side.
    Writing a RunEvent counts as taking the run too: its foreign key check
    takes a share lock on the run row, which the engine's lock excludes. So
    every action that locks or writes an item and logs, takes the run first.
    """
    from orchestration.models import OrchestrationRun

    list(OrchestrationRun.objects.select_for_update(of=("self",)).filter(pk=run_id).values_list("pk"))


def _lock_item(item):
    """``item`` afresh, locked after its run (``lock_run``); only the item's own row (``of``)."""
    lock_run(item.run_id)
    return WorkItem.objects.select_for_update(of=("self",)).get(pk=item.pk)


def complete_work_item(item, user, values):
    """Validate ``values`` against the screen flow and complete the item and its step.

    Raises ValidationError (a dict keyed by field) with nothing changed when
    the values do not validate, WorkItemClosed when the item is no longer
    open, ClaimedByOther / PermissionDenied when ``user`` may not work it.
    """
    from flows.compiled import FlowSpec
    from flows.screens import validate_all
    from orchestration import engine

    if item.status != WorkItemStatus.OPEN:
        raise WorkItemClosed(_closed_message(item))
    _refuse_excluded(item, user)
    if not can_work(item, user):
        if item.claimed_by_id and item.claimed_by_id != user.pk:
            raise ClaimedByOther(f"{item.label} is claimed by {item.claimed_by}")
        raise PermissionDenied("not your work item")
    spec = FlowSpec.load(item.flow_id)
    outputs, errors = validate_all(spec, item.inputs, values or {})
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        fresh = _lock_item(item)
        if fresh.status != WorkItemStatus.OPEN:
            raise WorkItemClosed(_closed_message(fresh))
        if not can_work(fresh, user):  # the same rule, on the row as it is now
            raise ClaimedByOther(f"{fresh.label} is claimed by {fresh.claimed_by}")
        done = engine.complete_step(fresh.step_run_id, outputs, actor=user, source="work_item", run_id=fresh.run_id)
        if not done:
            raise WorkItemClosed(_closed_message(fresh))
    item.refresh_from_db()
    return item


def _closed_message(item):
    if item.status == WorkItemStatus.COMPLETED:
        who = item.completed_by.get_username() if item.completed_by_id else "someone else"
        return f"“{item.label}” was already completed by {who}."
    note = cancel_note(item.run_id)
    if item.status == WorkItemStatus.CANCELED and note:
        return f"“{item.label}” is no longer open: {note['text']}"
    return f"“{item.label}” is no longer open ({item.status})."


def cancel_note(run_id):
    """How a canceled run was canceled, for the people who had work in it: ``{by, reason, text}``, or None."""
    from orchestration.models import RunEvent

    event = (RunEvent.objects.filter(run_id=run_id, kind="run_canceled").select_related("actor")
             .order_by("-id").first())
    if event is None:
        return None
    by = event.actor.get_username() if event.actor_id else ""
    reason = str((event.data or {}).get("reason") or "")
    text = "the run was canceled" + (f" by {by}" if by else "") + (f": “{reason}”" if reason else ".")
    return {"by": by, "reason": reason, "text": text[0].upper() + text[1:]}


def submitted_values(item):
    """What was submitted when ``item`` was completed: ``[(label, shown value), ...]`` in screen order.

    Read from the step's outputs (every input field is an output of its own
    name); choices show their labels. Only for the item's page, which only
    its assignees and managers may open.
    """
    from flows.compiled import FlowSpec
    from flows.runtime import FlowError

    if item.status != WorkItemStatus.COMPLETED:
        return []
    outputs = item.step_run.outputs or {}
    try:
        spec = FlowSpec.load(item.flow_id)
    except FlowError:
        return [(name, _shown(value, {})) for name, value in sorted(outputs.items())]
    shown = []
    for screen in spec.screens:
        for f in screen.input_fields():
            if f.name in outputs:
                shown.append((f.label or f.name, _shown(outputs[f.name], dict(f.choice_pairs()))))
    return shown


def _shown(value, labels):
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(labels.get(str(v), str(v)) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return labels.get(str(value), str(value))


def save_progress(item, progress):
    WorkItem.objects.filter(pk=item.pk, status=WorkItemStatus.OPEN).update(progress=progress)
    item.progress = progress


def _log(item, kind, user, **data):
    journal.record(kind, run_id=item.run_id, actor=user, stage=journal.stage_name_of(item.step_run),
                   step=item.step_run.step_name, work_item=item.pk, **data)


def claim(item, user):
    """Take ``item`` for ``user`` (an assignee): nobody else works it until it is released.

    An item given to one user may be claimed by that user too (it marks the
    item as taken up, and the same call works for whatever an item is
    assigned to); for others it is not theirs (PermissionDenied).
    """
    if not is_assignee(item, user):
        raise PermissionDenied("not your work item")
    _refuse_excluded(item, user)
    with transaction.atomic():
        lock_run(item.run_id)  # the event below takes the run: take it first (see lock_run)
        updated = WorkItem.objects.filter(pk=item.pk, status=WorkItemStatus.OPEN, claimed_by__isnull=True).update(
            claimed_by=user
        )
        if not updated:
            item.refresh_from_db()
            if item.claimed_by_id == user.pk:
                return item
            if item.status != WorkItemStatus.OPEN:
                raise WorkItemClosed(_closed_message(item))
            raise ClaimedByOther(f"{item.label} is already claimed by {item.claimed_by}")
        _log(item, EventKind.WORK_ITEM_CLAIMED, user)
    item.refresh_from_db()
    return item


def unclaim(item, user):
    """Release ``item``: back to its group or queue (a user item stays with its user). See ``can_release``."""
    with transaction.atomic():
        fresh = _lock_item(item)
        if fresh.claimed_by_id is None:
            return fresh
        if not can_release(fresh, user):
            raise ClaimedByOther(f"{fresh.label} is claimed by {fresh.claimed_by}")
        fresh.claimed_by = None
        fresh.save(update_fields=["claimed_by"])
        _log(fresh, EventKind.WORK_ITEM_UNCLAIMED, user)
    item.refresh_from_db()
    return item


def reassign(item, user, assignee):
    """Give the item to ``assignee`` ("user:NAME", "group:NAME", "queue:NAME").

    Managers may reassign any item; whoever holds an item (``holds``: given
    to them by name, or claimed by them) may hand it on. See ``can_reassign``.
    """
    if not can_reassign(item, user):
        raise PermissionDenied("only its holder (the user it is given to, or who claimed it) or a holder of "
                               "workguide.manage_workitem may reassign this item")
    try:
        kind, target = parse_assignee(assignee)
    except StepFailure as exc:
        raise ValidationError({"assignee": [str(exc)]})
    if kind == "user" and permissions.is_excluded(target, item.step_run.excluded_users):
        raise ValidationError({"assignee": [f"{assignee} may not do “{item.label}”: separation of duties "
                                            "(this step excludes them)"]})
    with transaction.atomic():
        fresh = _lock_item(item)
        if fresh.status != WorkItemStatus.OPEN:
            raise WorkItemClosed(_closed_message(fresh))
        if not can_reassign(fresh, user):  # the claim changed meanwhile
            raise PermissionDenied("this item is no longer yours to hand on")
        before = fresh.assignee_display
        fresh.save(update_fields=give_to(fresh, kind, target))
        _log(fresh, EventKind.WORK_ITEM_REASSIGNED, user, before=before, after=assignee)
        from .notifications import notify_new_work_item

        transaction.on_commit(lambda: notify_new_work_item(fresh.pk))
    item.refresh_from_db()
    return item


def add_comment(item, user, text):
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": ["a comment cannot be empty"]})
    if len(text) > 5000:
        raise ValidationError({"text": ["a comment is at most 5000 characters"]})
    _log(item, EventKind.COMMENT, user, text=text)


def comments(item):
    from orchestration.models import RunEvent

    return RunEvent.objects.filter(run_id=item.run_id, kind="comment", data__work_item=item.pk).select_related("actor")


# ---------------------------------------------------------------------------
# Read helpers for the Work Guide pages (no writes)
# ---------------------------------------------------------------------------

SOURCES = ("me", "groups", "queues")


def my_open_items(user):
    """The open items assigned to ``user`` (directly, via groups, via queues), newest first.

    The sources are annotated as ``source`` ("me", "groups" or "queues"). Costs
    two small queries (the user's groups and queues) before the queryset runs.
    """
    from django.db.models import Case, CharField, Value, When

    group_ids, queue_ids = memberships = _memberships(user)
    mine = assignee_q(user, memberships=memberships)
    return (
        WorkItem.objects.filter(mine, status=WorkItemStatus.OPEN)
        .annotate(source=Case(
            When(assignee_user=user, then=Value("me")),
            When(assignee_group_id__in=group_ids, then=Value("groups")),
            default=Value("queues"),
            output_field=CharField(),
        ))
        .order_by("-created_at", "-id")
    )


def source_counts(queryset):
    """``{"me": n, "groups": n, "queues": n, "all": n, "overdue": n}`` in one query."""
    from django.db.models import Count

    counts = queryset.order_by().aggregate(
        all=Count("id"),
        me=Count("id", filter=Q(source="me")),
        groups=Count("id", filter=Q(source="groups")),
        queues=Count("id", filter=Q(source="queues")),
        overdue=Count("id", filter=Q(due_at__lt=timezone.now())),
    )
    return counts


def stage_path(run, stage_runs=None):
    """The stages of ``run``'s version with where the run stands: a list of dicts.

    Each has ``name``, ``label`` and ``state``: ``done``, ``current``,
    ``error``, ``upcoming`` or ``skipped``: never entered and no longer
    reachable from where the run stands (the other branch of a decision is
    skipped as soon as the decision is taken, not only when the run ends).
    """
    from orchestration.models import RunStatus, StageStatus
    from orchestration.plan import Plan

    plan = Plan.load(run.orchestration_id)
    if stage_runs is None:
        stage_runs = list(run.stage_runs.order_by("id"))
    latest = {}
    for stage_run in stage_runs:
        latest[stage_run.stage_name] = stage_run
    ahead = None  # every element still reachable; None: unknown, so all not entered are upcoming
    if run.status == RunStatus.RUNNING:
        here = [sr.stage_name for sr in latest.values() if sr.status in (StageStatus.IN_PROGRESS, StageStatus.ERROR)]
        if here:
            ahead = _reachable(plan, here)
    path = []
    for element in plan.stages:
        visit = latest.get(element.name)
        if visit is None:
            still = run.status == RunStatus.RUNNING and (ahead is None or element.name in ahead)
            state = "upcoming" if still else "skipped"
        elif visit.status == StageStatus.IN_PROGRESS:
            state = "current"
        elif visit.status == StageStatus.COMPLETED:
            state = "done"
        elif visit.status == StageStatus.ERROR:
            state = "error"
        else:
            state = "skipped"
        path.append({"name": element.name, "label": element.label, "state": state})
    return path


def _reachable(plan, names):
    """The elements ``names`` and all the plan's paths can lead to from them (loops included)."""
    from orchestration.models import END

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name == END or name in seen or name not in plan.by_name:
            continue
        seen.add(name)
        todo.extend(plan.successors(plan.by_name[name]))
    return seen


def record_summary(model_label, pk, limit=8):
    """``(record, [(label, value), ...])`` for a record reference; (None, []) if it is gone."""
    from orchestration.records import load_record

    try:
        record = load_record(model_label, pk)
    except Exception:
        return None, []
    if record is None:
        return None, []
    from orchestration.records import exposed_fields

    exposed = exposed_fields(record)  # never a password hash or a field the settings keep out
    facts = []
    for model_field in record._meta.concrete_fields:
        if model_field.primary_key or len(facts) >= limit or model_field.attname not in exposed:
            continue
        if getattr(model_field, "choices", None):
            value = getattr(record, f"get_{model_field.name}_display")()
        elif model_field.is_relation:
            value = getattr(record, model_field.name, None)
        else:
            value = getattr(record, model_field.name)
        if value in (None, ""):
            value = "—"
        elif isinstance(value, bool):
            value = "Yes" if value else "No"
        facts.append((str(model_field.verbose_name).capitalize(), value))
    return record, facts
