"""Issue 17, point 7: work item signals and the per-orchestration switch for the default mails."""
import pytest
from django.core import mail

from orchestration.engine import cancel_run
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import launch_approval
from workguide import notifications, services, signals
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    calls = []

    def listen(signal_name):
        def receiver(sender, item, actor, signal, **extra):
            calls.append((signal_name, item.step_run.step_name, getattr(actor, "username", None), extra))
        return receiver

    receivers = {name: listen(name) for name in ("opened", "claimed", "reassigned", "completed", "canceled")}
    for name, receiver in receivers.items():
        getattr(signals, f"work_item_{name}").connect(receiver, dispatch_uid=f"test-{name}")
    yield calls
    for name in receivers:
        getattr(signals, f"work_item_{name}").disconnect(dispatch_uid=f"test-{name}")


def test_signals_for_opened_claimed_reassigned_completed_canceled(approval, users, heard,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = launch_approval(users.launcher)
    assert heard == [("opened", "review", None, {})]
    review = WorkItem.objects.get(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        services.claim(review, users.alice)
        services.complete_work_item(review, users.alice, {"decision": "approve"})
    assert heard[1] == ("claimed", "review", "alice", {})
    assert heard[2] == ("completed", "review", "alice", {})
    assert heard[3] == ("opened", "confirm", None, {})
    confirm = WorkItem.objects.get(run=run, step_run__step_name="confirm")
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign(confirm, users.manager, "user:bob")
    assert heard[4] == ("reassigned", "confirm", "manager", {"before": "group:reviewers", "after": "user:bob"})
    with django_capture_on_commit_callbacks(execute=True):
        cancel_run(run.pk, user=users.operator, reason="no longer needed")
    assert heard[5] == ("canceled", "confirm", "operator", {})


def test_a_failing_receiver_is_logged_and_changes_nothing(approval, users, django_capture_on_commit_callbacks,
                                                          caplog):
    def broken(sender, item, actor, **extra):
        raise RuntimeError("slack is down")

    signals.work_item_opened.connect(broken, dispatch_uid="broken")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = launch_approval(users.launcher)
    finally:
        signals.work_item_opened.disconnect(dispatch_uid="broken")
    assert WorkItem.objects.get(run=run).is_open
    assert "receiver" in caplog.text and "failed" in caplog.text


def test_mails_off_for_one_orchestration(approval, users, settings):
    users.alice.email = "alice@example.com"
    users.alice.save()
    item = WorkItem.objects.get(run=launch_approval(users.launcher))
    mail.outbox.clear()
    settings.BATON_WORK_ITEM_MAILS_OFF = ["approval"]
    assert notifications.deliver(item.pk) == [] and mail.outbox == []
    settings.BATON_WORK_ITEM_MAILS_OFF = ["other"]
    notifications.deliver(item.pk)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
