"""Who may do what in Baton: the one place the rules live.

The API (``orchestration/api.py``, ``workguide/api.py``), the monitor's view
decorators, the Work Guide's views, the admin and the templates (through
``context_processor``) all ask these functions, so a rule cannot drift
between screens. The rules:

- see runs (API, monitor, every Work Guide path): staff, superusers and
  holders of ``orchestration.view_runs`` or ``orchestration.operate_runs``
  (operating runs implies seeing them);
- operate runs (cancel, retry, skip): ``orchestration.operate_runs``;
- launch orchestrations: staff and ``orchestration.launch_orchestration``;
- manage work items (see all, reassign any): ``workguide.manage_workitem``;
- one work item (claim, release, reassign, complete, skip): the functions
  at the end, one per action, read by the Work Guide's pages and its API.
  A claim binds everyone, managers included;
- separation of duties (a step's ``assignee.exclude``): one rule,
  ``is_excluded_from_work_item`` and its query form ``excluded_items``, that
  binds everyone, managers included, on every action and in My Work.

Superusers hold every permission. Inactive users hold none. This module
imports nothing from the Work Guide (which may import orchestration, never
the reverse): the work-item rules read the item's fields and its related
managers only.
"""
import json

from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Func, JSONField, OuterRef, Q, Subquery, Value
from django.utils import timezone


def _active(user):
    return user is not None and user.is_authenticated and user.is_active


def can_view_runs(user):
    return _active(user) and (
        user.is_staff or user.is_superuser or user.has_perm("orchestration.view_runs")
        or user.has_perm("orchestration.operate_runs")
    )


def can_operate_runs(user):
    return _active(user) and (user.is_superuser or user.has_perm("orchestration.operate_runs"))


def can_launch(user):
    return _active(user) and (
        user.is_staff or user.is_superuser or user.has_perm("orchestration.launch_orchestration")
    )


def can_pause_run(user, run):
    """Pause or resume ``run``: ``operate_runs``, or ``pause_own_runs`` for a run ``user`` started (DESIGN §10)."""
    if can_operate_runs(user):
        return True
    return _active(user) and run.started_by_id == user.pk and user.has_perm("orchestration.pause_own_runs")


def can_send_events(user):
    """Send an event to a run with the REST API (DESIGN §10; the signed webhook needs no user)."""
    return _active(user) and (user.is_superuser or user.has_perm("orchestration.send_events"))


def can_manage_work_items(user):
    return _active(user) and (user.is_superuser or user.has_perm("workguide.manage_workitem"))



# ---------------------------------------------------------------------------
# One work item: who may claim, release, reassign, complete and skip it
# ---------------------------------------------------------------------------

def is_work_item_assignee(item, user):
    """Is ``user`` an assignee of ``item``?

    The user it is given to, a member of its group or queue (directly or
    through one of the queue's groups), the user it was delegated from
    (``delegated_from``: they still see their work), and while a delegation
    lasts, the substitute of the user it is given to.
    """
    if not _active(user):
        return False
    if getattr(item, "delegated_from_id", None) == user.pk:
        return True
    remembered = getattr(user, "_baton_memberships", None)  # see remember_memberships
    if item.assignee_type == "user":
        if item.assignee_user_id == user.pk:
            return True
        if remembered is not None:
            return item.assignee_user_id in remembered[2]
        now = timezone.now()
        return user.delegations_received.filter(user_id=item.assignee_user_id, starts__lte=now, ends__gt=now).exists()
    if item.assignee_type == "group":
        if remembered is not None:
            return item.assignee_group_id in remembered[0]
        return user.groups.filter(pk=item.assignee_group_id).exists()
    if remembered is not None:
        return item.assignee_queue_id in remembered[1]
    queue = item.assignee_queue
    return queue.members.filter(pk=user.pk).exists() or queue.member_groups.filter(user=user).exists()


def memberships(user):
    """``(group_ids, queue_ids, delegating_user_ids)`` of ``user``: three frozensets, from one query.

    Their groups, the queues they belong to (by name or through a group),
    and the users whose delegation to them is in force now. The Work Guide
    puts them in its queries as literal lists: an ``IN (subquery)`` among
    the ORed assignee conditions keeps PostgreSQL from using the assignee
    indexes (it filters every open item), where literal lists make it an
    OR of index scans. Read from this user object when
    ``remember_memberships`` kept them.
    """
    remembered = getattr(user, "_baton_memberships", None)
    if remembered is not None:
        return remembered
    if not _active(user):
        return frozenset(), frozenset(), frozenset()
    now = timezone.now()
    groups = user.groups.order_by().values_list("id", Value("group"))
    queue_model = user.work_queues.model  # workguide.Queue, through its related name (no import)
    queues = (queue_model.objects.filter(Q(members=user) | Q(member_groups__user=user)).order_by()
              .values_list("id", Value("queue")))
    delegating = (user.delegations_received.filter(starts__lte=now, ends__gt=now).order_by()
                  .values_list("user_id", Value("delegating")))
    rows = list(groups.union(queues, delegating))
    return tuple(frozenset(pk for pk, kind in rows if kind == wanted) for wanted in ("group", "queue", "delegating"))


def remember_memberships(user):
    """``memberships(user)``, kept on this user object for the rest of the request.

    For a page that asks about many items in one request (the record
    component): ``is_work_item_assignee`` then answers without a query. Only
    the request's own user object carries them, so they last one request.
    """
    remembered = memberships(user)
    if _active(user):
        user._baton_memberships = remembered
    return remembered


def holds_work_item(item, user):
    """Is ``item`` ``user``'s own work: claimed by them, or (unclaimed) given to them by name or delegated to them?"""
    if not _active(user):
        return False
    if item.claimed_by_id is not None:
        return item.claimed_by_id == user.pk
    return item.assignee_type == "user" and is_work_item_assignee(item, user)


def can_claim_work_item(item, user):
    """Its assignees (a user item's user too: it marks it as taken up); managers who are not assignees may not;
    never someone its step excludes (separation of duties)."""
    return is_work_item_assignee(item, user) and not is_excluded_from_work_item(item, user)


def can_complete_work_item(item, user):
    """Its assignees and managers, while nobody else holds a claim on it (the claim binds managers too)."""
    if not (can_manage_work_items(user) or is_work_item_assignee(item, user)):
        return False
    if is_excluded_from_work_item(item, user):
        return False  # separation of duties binds managers too
    return item.claimed_by_id in (None, user.pk)


def can_release_work_item(item, user):
    """Give up a claim: the claimer, or a manager (recorded)."""
    return item.claimed_by_id is not None and _active(user) and (
        item.claimed_by_id == user.pk or can_manage_work_items(user))


def can_reassign_work_item(item, user):
    """Managers any item; whoever holds it (``holds_work_item``) may hand it on."""
    return can_manage_work_items(user) or holds_work_item(item, user)


def can_skip_work_item(item, user):
    """Skipping a step bypasses its flow's checks: operators only, never the assignee as such."""
    return can_operate_runs(user)


# ---------------------------------------------------------------------------
# Separation of duties: a step's ``assignee.exclude``
# ---------------------------------------------------------------------------
#
# The rule, wherever work reaches a person: the usernames a step's exclude
# gave when its item opened (``StepRun.excluded_users``) may never claim,
# complete, be given (reassign, escalation) or be delegated the item, and it
# is not listed in their My Work (``excluded_items``, the same rule as a query
# condition). It binds managers too.

def is_excluded(user, excluded_users):
    """Is ``user`` among ``excluded_users`` (the usernames a step's ``assignee.exclude`` gave)?"""
    return bool(excluded_users) and user is not None and user.is_authenticated and (
        user.get_username() in excluded_users)


def is_excluded_from_work_item(item, user):
    """Does ``item``'s step keep ``user`` off it (separation of duties)?"""
    return is_excluded(user, item.step_run.excluded_users)


def refuse_if_excluded(item, user):
    """PermissionDenied that says why, when ``item``'s step excludes ``user``: the first check of every action."""
    if is_excluded_from_work_item(item, user):
        raise PermissionDenied(f"{user.get_username()} may not do “{item.label}”: separation of duties "
                               "(this step excludes them, e.g. as the requester)")


def excluded_items(user, prefix=""):
    """The query condition of ``is_excluded_from_work_item``: true for the work items whose step excludes ``user``.

    For querysets of work items (``prefix`` for a relation to them); My Work
    and its live check leave these out with ``.exclude(...)``. The step's list
    is read by a correlated subquery, one primary-key lookup per item the
    rest of the query kept: a join would let PostgreSQL hash every step run
    first (134 ms at 100,000 items, against under 1 ms this way).
    """
    from .models import StepRun

    excluded_users = StepRun.objects.filter(pk=OuterRef(f"{prefix}step_run_id")).order_by().values("excluded_users")[:1]
    return _ListHolds(Subquery(excluded_users, output_field=JSONField()), user.get_username())


class _ListHolds(Func):
    """A JSON list column holds a string: ``@>`` on PostgreSQL, ``json_each`` on SQLite (which has no ``@>``)."""

    output_field = BooleanField()

    def __init__(self, column, text):
        super().__init__(column)
        self.text = text

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return (f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = %s)",
                (*params, self.text))

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} @> %s::jsonb)", (*params, json.dumps([self.text]))
