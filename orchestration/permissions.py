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
  A claim binds everyone, managers included.

Superusers hold every permission. Inactive users hold none. This module
imports nothing from the Work Guide (which may import orchestration, never
the reverse): the work-item rules read the item's fields and its related
managers only.
"""
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
    if item.assignee_type == "user":
        if item.assignee_user_id == user.pk:
            return True
        now = timezone.now()
        return user.delegations_received.filter(user_id=item.assignee_user_id, starts__lte=now, ends__gt=now).exists()
    if item.assignee_type == "group":
        return user.groups.filter(pk=item.assignee_group_id).exists()
    queue = item.assignee_queue
    return queue.members.filter(pk=user.pk).exists() or queue.member_groups.filter(user=user).exists()


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
    return is_work_item_assignee(item, user) and not is_excluded(user, item.step_run.excluded_users)


def can_complete_work_item(item, user):
    """Its assignees and managers, while nobody else holds a claim on it (the claim binds managers too)."""
    if not (is_work_item_assignee(item, user) or can_manage_work_items(user)):
        return False
    if is_excluded(user, item.step_run.excluded_users):
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


def is_excluded(user, excluded_users):
    """Separation of duties: is ``user`` among the usernames a step's ``assignee.exclude`` gave?

    Applies to everyone, managers included: it is checked on claim,
    reassign (to a user) and complete, whatever way the item reached them.
    """
    return bool(excluded_users) and user is not None and user.is_authenticated and (
        user.get_username() in excluded_users)
