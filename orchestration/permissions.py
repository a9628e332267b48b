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
- manage work items (see all, reassign any): ``workguide.manage_workitem``.

Superusers hold every permission. Inactive users hold none. The rules for
one Work Guide item (its assignees, its claim) live in
``workguide/services.py`` and build on ``can_manage_work_items``; this module
imports nothing from the Work Guide, which may import orchestration but never
the reverse.
"""



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


def is_excluded(user, excluded_users):
    """Separation of duties: is ``user`` among the usernames a step's ``assignee.exclude`` gave?

    Applies to everyone, managers included: it is checked on claim,
    reassign (to a user) and complete, whatever way the item reached them.
    """
    return bool(excluded_users) and user is not None and user.is_authenticated and (
        user.get_username() in excluded_users)
