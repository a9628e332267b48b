"""Work item state changes: open, close, complete, claim, reassign, comment.

Each change that touches a run goes through the engine's lock so a work item
and its step always agree. Every one is recorded in the run's events.
"""
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import BooleanField, F, Func, Q
from django.utils import timezone

from orchestration import journal
from orchestration.engine import StepFailure
from orchestration import permissions
from orchestration.models import EventKind

from . import signals
from .models import Delegation, Queue, WorkItem, WorkItemStatus

log = logging.getLogger(__name__)


class WorkItemClosed(Exception):
    """The item is no longer open (someone finished it first, or the stage moved on)."""


class RunPaused(WorkItemClosed):
    """The item's run is paused: it can be opened and drafted, not finished (409)."""


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

    Returns ``(changed field names, skipped)``: the names for
    ``save(update_fields=...)``, and the substitute a delegation would have
    given it to but whom the item's step excludes (else None), for the
    caller's event. Both reassignment by a person (``reassign``) and
    escalation (``due.py``) go through here; a user away on a delegation is
    replaced by their substitute (``route``), and ``delegated_from`` says so.
    """
    kind, target, delegated_from, skipped = route(kind, target, excluded=item.step_run.excluded_users)
    changed = _assign_fields(kind, target) | {"claimed_by": None, "delegated_from": delegated_from}
    for name, value in changed.items():
        setattr(item, name, value)
    return list(changed), skipped


def skipped_note(skipped):
    """The event data that says a delegation was not followed (separation of duties), or nothing."""
    if skipped is None:
        return {}
    return {"delegation_skipped": skipped.get_username(),
            "delegation_skipped_reason": "the substitute is excluded from this step (separation of duties)"}


# ---------------------------------------------------------------------------
# Delegation: out-of-office substitutes
# ---------------------------------------------------------------------------

def active_delegation(user, now=None):
    """``user``'s delegation in force at ``now`` (the latest started), or None."""
    now = now or timezone.now()
    return (Delegation.objects.filter(user=user, starts__lte=now, ends__gt=now, substitute__is_active=True)
            .select_related("substitute").order_by("-starts", "-id").first())


def route(kind, target, now=None, excluded=()):
    """``(kind, target, delegated_from, skipped)``: a user away on a delegation is replaced by their substitute.

    Every way work reaches a person goes through here (a step opening, a
    reassignment, an escalation), so new work follows a delegation however
    it arrives. One hop: the substitute's own delegation is not followed.

    Separation of duties holds whoever the work reaches: a substitute whom
    the step excludes (``excluded``, its usernames) is not given the item;
    it stays with ``target`` (who is not excluded: the callers check that
    first) and ``skipped`` names the substitute, for the run's timeline.
    """
    if kind != "user":
        return kind, target, None, None
    delegation = active_delegation(target, now)
    if delegation is None:
        return kind, target, None, None
    if permissions.is_excluded(delegation.substitute, excluded):
        return kind, target, None, delegation.substitute
    return kind, delegation.substitute, target, None


def set_delegation(by, substitute, starts, ends, user=None):
    """Create a delegation for ``user`` (default: ``by``); another user's needs ``workguide.manage_workitem``.

    ValidationError (keyed by field) for a period that ends before it
    starts, a substitute who is the user, an inactive one, or a period that
    overlaps another delegation of the same user; PermissionDenied for
    someone else's without the permission.
    """
    user = user or by
    if user.pk != by.pk and not can_manage(by):
        raise PermissionDenied("setting another user's delegation needs workguide.manage_workitem")
    errors = {}
    if substitute.pk == user.pk:
        errors["substitute"] = ["a user cannot be their own substitute"]
    elif not substitute.is_active:
        errors["substitute"] = [f"{substitute.get_username()} is not an active user"]
    if ends <= starts:
        errors["ends"] = ["the delegation must end after it starts"]
    elif Delegation.objects.filter(user=user, starts__lt=ends, ends__gt=starts).exists():
        errors["starts"] = [f"{user.get_username()} already has a delegation in this period"]
    if errors:
        raise ValidationError(errors)
    return Delegation.objects.create(user=user, substitute=substitute, starts=starts, ends=ends, created_by=by)


def delegations_for(user):
    """The delegations ``user`` may see: their own and those naming them as substitute (managers: all)."""
    qs = Delegation.objects.select_related("user", "substitute")
    if can_manage(user):
        return qs
    return qs.filter(Q(user=user) | Q(substitute=user))


def may_delete_delegation(delegation, user):
    return delegation.user_id == user.pk or can_manage(user)


def open_work_item(ctx, step_run, step, prepared):
    """Called by the engine (inside its transaction) when an interactive step starts."""
    kind, target, delegated_from, skipped = route(*parse_assignee(prepared.assignee), now=ctx.now,
                                                  excluded=prepared.excluded_users)
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
        delegated_from=delegated_from,
        priority=step.priority,
        **_assign_fields(kind, target),
    )
    extra = {"delegated_from": delegated_from.get_username()} if delegated_from else skipped_note(skipped)
    ctx.event(EventKind.WORK_ITEM_OPENED, step.stage, step.name, work_item=item.pk, assignee=prepared.assignee,
              **extra)
    from .notifications import notify_new_work_item

    transaction.on_commit(lambda: notify_new_work_item(item.pk))
    signals.send_on_commit(signals.work_item_opened, [item.pk])
    return item


def close_work_items(ctx, step_runs, status):
    ids = [s.pk for s in step_runs]
    # Instances of a multi-instance step withdrawn when its completion rule was met: their assignees are told.
    withdrawn = [s.pk for s in step_runs if s.instance_index is not None] if status == WorkItemStatus.CANCELED else []
    mail = list(WorkItem.objects.filter(step_run_id__in=withdrawn, status=WorkItemStatus.OPEN)
                .values_list("pk", flat=True)) if withdrawn else []
    closing = WorkItem.objects.filter(step_run_id__in=ids, status=WorkItemStatus.OPEN)
    signal = signals.work_item_completed if status == WorkItemStatus.COMPLETED else signals.work_item_canceled
    if signal.has_listeners():
        signals.send_on_commit(signal, closing.values_list("pk", flat=True),
                               actor=ctx.actor if getattr(ctx.actor, "pk", None) else None)
    closing.update(
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


_memberships = permissions.memberships
remember_memberships = permissions.remember_memberships


def assignee_q(user, prefix="", memberships=None):
    """Items assigned to ``user`` directly, through a group, or through a queue, or delegated to or from them.

    ``memberships`` is ``_memberships(user)`` when the caller needs the ids too (else one query for them).
    """
    group_ids, queue_ids, delegating = memberships or _memberships(user)
    return (
        Q(**{f"{prefix}assignee_user": user})
        | Q(**{f"{prefix}assignee_group_id__in": group_ids})
        | Q(**{f"{prefix}assignee_queue_id__in": queue_ids})
        | Q(**{f"{prefix}delegated_from": user})  # delegated away: still theirs to see
        | Q(**{f"{prefix}assignee_user_id__in": delegating})  # a substitute sees the absent user's items
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


def record_runs(user, record_model, record_pk):
    """The runs on a record that ``user`` may follow in its Work Guide component (any status).

    Every run for who may see runs; else the runs they requested (started)
    and the runs in which they have an item (``record_items``).
    """
    from orchestration.models import OrchestrationRun

    runs = OrchestrationRun.objects.filter(record_model=record_model, record_pk=str(record_pk))
    if not user.is_authenticated:
        return runs.none()
    if can_view_runs(user):
        return runs
    return runs.filter(Q(started_by=user) | Q(pk__in=record_items(user, record_model, record_pk).values("run_id")))


def may_see_record_runs(user, record_model, record_pk):
    """May ``user`` see the Work Guide of a record (its runs' stage paths)?

    Those who may see runs, those who requested a run there, and those who
    have an item there: one they may see now (assigned to them, their group
    or their queue, or any item for a manager), open or already closed, so
    that finishing one's step does not hide the path it just moved. Nobody
    else learns whether the record has runs, or even exists.
    """
    if not user.is_authenticated:
        return False
    if can_view_runs(user) or record_items(user, record_model, record_pk).exists():
        return True
    from orchestration.models import OrchestrationRun

    return OrchestrationRun.objects.filter(record_model=record_model, record_pk=str(record_pk), started_by=user).exists()


# The rules for one item live in the permission module, with everyone else's.
is_assignee = permissions.is_work_item_assignee
can_claim = permissions.can_claim_work_item
can_work = permissions.can_complete_work_item
holds = permissions.holds_work_item
can_release = permissions.can_release_work_item
can_reassign = permissions.can_reassign_work_item
can_skip = permissions.can_skip_work_item


excluded = permissions.is_excluded_from_work_item  # separation of duties: one rule, in the permission module
refuse_excluded = permissions.refuse_if_excluded


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
    refuse_excluded(item, user)
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
        if run_is_paused(fresh.run_id):  # read under the run's lock, taken by _lock_item
            raise RunPaused(f"“{fresh.label}” cannot be finished now: the run is paused.")
        done = engine.complete_step(fresh.step_run_id, outputs, actor=user, source="work_item", run_id=fresh.run_id)
        if not done:
            raise WorkItemClosed(_closed_message(fresh))
    item.refresh_from_db()
    return item


def run_is_paused(run_id):
    from orchestration.models import OrchestrationRun, RunStatus

    return OrchestrationRun.objects.filter(pk=run_id, status=RunStatus.PAUSED).exists()


def item_run_is_paused(item):
    """For showing ``item``: its run as read with it (``select_related``), else asked. Finishing reads it
    afresh under the run's lock (``complete_work_item``)."""
    if WorkItem.run.is_cached(item):
        return item.run.status == "paused"
    return run_is_paused(item.run_id)


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
    refuse_excluded(item, user)  # first: the one refusal that says why
    if not can_claim(item, user):
        raise PermissionDenied("not your work item")
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
        signals.send_on_commit(signals.work_item_claimed, [item.pk], actor=user)
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
        changed, skipped = give_to(fresh, kind, target)
        fresh.save(update_fields=changed)
        _log(fresh, EventKind.WORK_ITEM_REASSIGNED, user, before=before, after=assignee, **skipped_note(skipped))
        signals.send_on_commit(signals.work_item_reassigned, [fresh.pk], actor=user, before=before, after=assignee)
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


def _my_open(user, memberships):
    """The open items in ``user``'s My Work: assigned to them (``assignee_q``), less those whose step excludes
    them (separation of duties: they may not work them, so they are not offered them)."""
    return (WorkItem.objects.filter(assignee_q(user, memberships=memberships), status=WorkItemStatus.OPEN)
            .exclude(permissions.excluded_items(user)))


def my_open_items(user):
    """The open items assigned to ``user`` (directly, via groups, via queues), newest first.

    The sources are annotated as ``source`` ("me", "groups" or "queues"). Costs
    one small query (the user's memberships, ``_memberships``) before the queryset runs. Items whose
    step excludes ``user`` are left out (``_my_open``).
    """
    from django.db.models import Case, CharField, Value, When

    group_ids, queue_ids, delegating = memberships = _memberships(user)
    return (
        _my_open(user, memberships)
        .annotate(source=Case(
            When(assignee_user=user, then=Value("me")),
            When(delegated_from=user, then=Value("me")),
            When(assignee_user_id__in=delegating, then=Value("me")),
            When(assignee_group_id__in=group_ids, then=Value("groups")),
            default=Value("queues"),
            output_field=CharField(),
        ))
        .order_by("-created_at", "-id")
    )


def _version_aggregates():
    """What says that a set of items changed: one more or one less, another item, a claim taken or given back."""
    from django.db.models import Count, Max, Sum

    return {"v_count": Count("id"), "v_max": Max("id"), "v_sum": Sum("id"), "v_claims": Sum("claimed_by_id"),
            "v_claimed": Count("claimed_by_id")}


def _version_text(values):
    return "-".join(str(values.get(key) or 0) for key in ("v_count", "v_max", "v_sum", "v_claims", "v_claimed"))


def source_counts(queryset):
    """``{"me": n, "groups": n, "queues": n, "all": n, "overdue": n, "version": text}`` in one query.

    ``version`` is the set's ``open_items_version``: My Work's live refresh
    compares it with the cheap check's, so both must cover the same items.
    """
    from django.db.models import Count

    counts = queryset.order_by().aggregate(
        all=Count("id"),
        me=Count("id", filter=Q(source="me")),
        groups=Count("id", filter=Q(source="groups")),
        queues=Count("id", filter=Q(source="queues")),
        overdue=Count("id", filter=Q(due_at__lt=timezone.now())),
        **_version_aggregates(),
    )
    counts["version"] = _version_text(counts)
    return counts


def open_items_version(user):
    """A short text that changes when an open item arrives in ``user``'s My Work, leaves it, or is claimed or
    released, for the live refresh's cheap check: one query, by the assignee indexes.

    It covers the items ``my_open_items`` gives (``_my_open``: delegated ones, and not those whose step
    excludes the user); ``source_counts`` gives the same text for them. The user's groups, queues and
    delegators are subqueries here (``_AmongIds``), where the page reads them first (``_memberships``).
    """
    from django.db.models import Subquery

    now = timezone.now()
    groups = Group.objects.filter(user=user).order_by().values("id")
    queues = Queue.objects.filter(Q(members=user) | Q(member_groups__user=user)).order_by().values("id")
    delegating = Delegation.objects.filter(substitute=user, starts__lte=now, ends__gt=now).order_by().values("user_id")
    mine = (Q(assignee_user=user) | Q(_AmongIds("assignee_group_id", Subquery(groups)))
            | Q(_AmongIds("assignee_queue_id", Subquery(queues))) | Q(delegated_from=user)
            | Q(_AmongIds("assignee_user_id", Subquery(delegating))))
    items = WorkItem.objects.filter(mine, status=WorkItemStatus.OPEN).exclude(permissions.excluded_items(user))
    return _version_text(items.aggregate(**_version_aggregates()))


class _AmongIds(Func):
    """``column IN (subquery)`` that PostgreSQL can answer from an index inside an OR.

    There ``IN (subquery)`` among ORed conditions becomes a filter over every
    open item; ``= ANY(ARRAY(subquery))`` runs the subquery once and lets each
    condition be an index scan (a BitmapOr). Other databases get ``IN``.
    """

    output_field = BooleanField()

    def __init__(self, column, subquery):
        super().__init__(F(column), subquery)

    def _parts(self, compiler):
        column, column_params = compiler.compile(self.source_expressions[0])
        ids, ids_params = compiler.compile(self.source_expressions[1])
        return column, ids, (*column_params, *ids_params)

    def as_sql(self, compiler, connection, **extra):
        column, ids, params = self._parts(compiler)
        return f"{column} IN {ids}", params

    def as_postgresql(self, compiler, connection, **extra):
        column, ids, params = self._parts(compiler)
        return f"{column} = ANY(ARRAY{ids})", params


def record_items_version(record_model, record_pk):
    """Changes when a work item on a record opens, closes or is claimed: one query."""
    from django.db.models import Count, Max, Sum

    record_pk = str(record_pk)
    is_open = Q(status=WorkItemStatus.OPEN)
    # The items' own record only (the component lists those), so the record index serves it.
    values = (WorkItem.objects.filter(record_model=record_model, record_pk=record_pk)
              .aggregate(v_count=Count("id", filter=is_open), v_max=Max("id"), v_sum=Sum("id", filter=is_open),
                         v_claims=Sum("claimed_by_id", filter=is_open), v_claimed=Count("id", filter=~is_open)))
    return _version_text(values)


def stage_path(run, stage_runs=None):
    """The stages of ``run``'s version with where the run stands: a list of dicts.

    Each has ``name``, ``label`` and ``state``: ``done``, ``current``,
    ``error``, ``upcoming`` or ``skipped``: never entered and no longer
    reachable from where the run stands (the other branch of a decision is
    skipped as soon as the decision is taken, not only when the run ends).
    """
    from orchestration.models import StageStatus
    from orchestration.plan import Plan

    # The orchestration row when it was read with the run: a plan not yet cached then costs no query for it.
    plan = Plan.load(run.orchestration if type(run).orchestration.is_cached(run) else run.orchestration_id)
    live = run.status in LIVE_RUN_STATUSES  # a paused run stands where it stopped, its way ahead still open
    if stage_runs is None:
        stage_runs = list(run.stage_runs.order_by("id"))
    latest = {}
    for stage_run in stage_runs:
        latest[stage_run.stage_name] = stage_run
    ahead = None  # every element still reachable; None: unknown, so all not entered are upcoming
    if live:
        here = [sr.stage_name for sr in latest.values() if sr.status in (StageStatus.IN_PROGRESS, StageStatus.ERROR)]
        if here:
            ahead = _reachable(plan, here)
    path = []
    for element in plan.stages:
        visit = latest.get(element.name)
        if visit is None:
            still = live and (ahead is None or element.name in ahead)
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


LIVE_RUN_STATUSES = ("running", "paused")  # runs the component draws a path for; the others are past runs


def component_runs(runs, past_limit=5):
    """``(live, past)`` for a record's Work Guide component, from ``runs`` (``record_runs``), in one query
    (and one for the live runs' stage runs), whatever the number of runs.

    ``live``: the running and paused runs, oldest first, with their stage
    runs prefetched (``stage_runs``). ``past``: the ``past_limit`` latest
    ended runs, newest first, each ``{run, outcome}`` (the outcome in
    words, from the last completed stage and the cancel event, read by
    subqueries of the same query).
    """
    from django.contrib.auth import get_user_model
    from django.db.models import JSONField, OuterRef, Prefetch, Subquery

    from orchestration.models import RunEvent, StageRun, StageStatus

    ended = (runs.exclude(status__in=LIVE_RUN_STATUSES).order_by("-ended_at", "-started_at", "-id")
             .values("pk")[:past_limit])
    cancel = RunEvent.objects.filter(run_id=OuterRef("pk"), kind="run_canceled").order_by("-id")
    last_stage = StageRun.objects.filter(run_id=OuterRef("pk"), status=StageStatus.COMPLETED).order_by("-id")
    fetched = list(
        runs.filter(Q(status__in=LIVE_RUN_STATUSES) | Q(pk__in=ended))
        .select_related("orchestration")
        .annotate(last_stage=Subquery(last_stage.values("stage_name")[:1]),
                  canceled_by=Subquery(cancel.values(f"actor__{get_user_model().USERNAME_FIELD}")[:1]),
                  cancel_data=Subquery(cancel.values("data")[:1], output_field=JSONField()))
        .prefetch_related(Prefetch("stage_runs", queryset=StageRun.objects.filter(
            run__status__in=LIVE_RUN_STATUSES).order_by("id")))
    )
    live = sorted((run for run in fetched if run.status in LIVE_RUN_STATUSES), key=lambda r: (r.started_at, r.pk))
    ended_runs = sorted((run for run in fetched if run.status not in LIVE_RUN_STATUSES),
                        key=lambda r: (r.ended_at or r.started_at, r.started_at, r.pk), reverse=True)
    return live, [{"run": run, "outcome": _outcome(run)} for run in ended_runs]


def _outcome(run):
    """How an ended run (from ``component_runs``, with its annotations) ended, in words."""
    from orchestration.models import RunStatus
    from orchestration.plan import Plan

    if run.status == RunStatus.COMPLETED:
        outcome = "Completed"
        if run.last_stage:
            element = Plan.load(run.orchestration).by_name.get(run.last_stage)  # the model: no query on a miss
            outcome += f", last stage “{element.label if element else run.last_stage}”"
        return outcome
    if run.status == RunStatus.CANCELED:
        outcome = "Canceled" + (f" by {run.canceled_by}" if run.canceled_by else "")
        data = run.cancel_data if isinstance(run.cancel_data, dict) else {}
        reason = str(data.get("reason") or "")
        return outcome + (f": “{reason}”" if reason else "")
    first_line = (run.error or "").strip().splitlines()[:1]
    return "Stopped with an error" + (f": {first_line[0][:160]}" if first_line else "")


def component_items(user, record_model, record_pk, live_run_ids, related=()):
    """The open items a record's component shows, in one query, each annotated ``mine``.

    Those its live runs wait on (``live_run_ids``), for "waiting on", and
    those on the record the caller may work (``mine``: assigned to them, or
    for a manager any; never one whose step excludes them, as in My Work).
    """
    from django.db.models import BooleanField, ExpressionWrapper

    on_record = Q(record_model=record_model, record_pk=str(record_pk))
    mine = on_record if can_manage(user) else on_record & assignee_q(user)
    mine &= ~Q(permissions.excluded_items(user))
    return list(
        WorkItem.objects.filter(Q(run_id__in=list(live_run_ids)) | mine, status=WorkItemStatus.OPEN)
        .annotate(mine=ExpressionWrapper(mine, output_field=BooleanField()))
        .select_related(*related)
    )


def waiting_on(runs, items):
    """Run id → the open ``items`` of each of ``runs`` (who holds them, when due), soonest due first."""
    waiting = {run.pk: [] for run in runs}
    far = timezone.now().replace(year=9999)
    for item in sorted(items, key=lambda i: (i.due_at is None, i.due_at or far, i.created_at, i.pk)):
        if item.run_id in waiting:
            waiting[item.run_id].append(item)
    return waiting


def holder_text(item):
    """Who an open item waits on, in words: "alice", "group crew, claimed by gina", "queue desk"."""
    if item.assignee_type == WorkItem.USER:
        return item.assignee_user.get_username()
    name = item.assignee_group.name if item.assignee_type == WorkItem.GROUP else item.assignee_queue.name
    text = f"{item.assignee_type} {name}"
    return f"{text}, claimed by {item.claimed_by.get_username()}" if item.claimed_by_id else text


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
