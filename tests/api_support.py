"""Fixtures and helpers shared by the REST API tests (import with ``from tests.api_support import *``)."""
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.engine_builders import orchestration, screen_flow, ui

__all__ = [
    "api", "as_user", "token_client", "users", "approval", "launch_approval", "grant", "clear_throttles",
    "REVIEW_FIELDS",
]

REVIEW_FIELDS = [
    {"name": "decision", "type": "choice", "label": "Decision", "required": True,
     "choices": [{"value": "approve", "label": "Approve"}, {"value": "reject", "label": "Reject"}]},
    {"name": "comment", "type": "text", "label": "Comment", "visible_if": 'decision == "reject"', "required": True},
    {"name": "amount_ok", "type": "number", "label": "Approved amount"},
    {"name": "needed_by", "type": "date", "label": "Needed by"},
]


def grant(user, *perms):
    for dotted in perms:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    # Permission caches live on the instance: hand back a fresh one.
    return User.objects.get(pk=user.pk)


@pytest.fixture(autouse=True)
def clear_throttles():
    """Throttle counters live in the cache; no test may inherit another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


def as_user(user, *, csrf=False):
    """A client logged in with a session (``csrf=True``: CSRF checks enforced, as in a browser)."""
    client = APIClient(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def token_client(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


class Users:
    pass


@pytest.fixture
def users(db):
    """alice: the assignee; bob: an outsider; and one user per permission."""
    u = Users()
    u.alice = User.objects.create_user("alice")
    u.bob = User.objects.create_user("bob")
    u.carol = User.objects.create_user("carol")  # in the reviewers group
    u.reviewers = Group.objects.create(name="reviewers")
    u.carol.groups.add(u.reviewers)
    u.viewer = grant(User.objects.create_user("viewer"), "orchestration.view_runs")
    u.operator = grant(User.objects.create_user("operator"), "orchestration.operate_runs")
    u.launcher = grant(User.objects.create_user("launcher"), "orchestration.launch_orchestration")
    u.manager = grant(User.objects.create_user("manager"), "workguide.manage_workitem")
    u.staff = User.objects.create_user("staff", is_staff=True)
    u.admin = User.objects.create_superuser("admin", password=None)
    return u


@pytest.fixture
def approval(users):
    """An autolaunched orchestration: alice reviews, then the reviewers group confirms."""
    review = screen_flow("api_review", fields=REVIEW_FIELDS)
    confirm = screen_flow("api_confirm", fields=[{"name": "ok", "type": "boolean", "label": "OK", "required": True}])
    return orchestration(
        [
            {"name": "review", "label": "Review", "steps": [ui("review", review.api_name, {"user": "alice"})]},
            {"name": "confirm", "label": "Confirm",
             "steps": [ui("confirm", confirm.api_name, {"group": "reviewers"})]},
        ],
        api_name="approval",
        label="Approval",
        start={"type": "autolaunched"},
        inputs=[{"name": "amount", "type": "number", "required": True}, {"name": "note", "type": "text"}],
    )


def launch_approval(user=None, amount=10):
    from orchestration.starts import launch

    return launch("approval", inputs={"amount": amount}, user=user)
