"""Due dates: reminders before, escalation after, each once; with a frozen clock (``now`` passed in)."""
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from orchestration import engine
from orchestration.models import RunEvent
from tests.engine_builders import orchestration, screen_flow, ui
from workguide import due
from workguide.models import Queue, WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    alice = User.objects.create_user("alice", email="alice@example.com")
    bob = User.objects.create_user("bob", email="bob@example.com")
    carol = User.objects.create_user("carol", email="carol@example.com")
    managers = Group.objects.create(name="managers")
    carol.groups.add(managers)
    desk = Queue.objects.create(name="desk", email="desk@example.com")
    return {"alice": alice, "bob": bob, "carol": carol, "managers": managers, "desk": desk}


@pytest.fixture
def settings_due(settings):
    settings.BATON_REMINDER_BEFORE = 3600  # remind one hour before
    settings.BASE_URL = settings.BATON_BASE_URL = "https://baton.example.com"
    return settings


def start_item(assignee=None, **step_extra):
    from flows.models import Flow

    if not Flow.objects.filter(api_name="approve_due").exists():
        screen_flow("approve_due")
    step = ui("approve", "approve_due", assignee or {"user": "alice"}, **{"due_in": "1d", **step_extra})
    orch = orchestration([{"name": "ask", "steps": [step]}])
    run = engine.start_run(orch)
    item = WorkItem.objects.get(run=run)
    assert item.due_at is not None
    return item


def check(now, capture):
    with capture(execute=True):
        return due.check_due_dates(now=now)


def test_due_in_sets_the_due_time(people):
    before = timezone.now()
    item = start_item()
    assert before + timedelta(days=1) <= item.due_at <= timezone.now() + timedelta(days=1)


def test_reminder_once_before_due(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item()
    mail.outbox.clear()
    # Two hours before: too early.
    assert check(item.due_at - timedelta(hours=2), django_capture_on_commit_callbacks) == {"reminded": 0, "escalated": 0}
    assert mail.outbox == []
    # Thirty minutes before: the reminder.
    at = item.due_at - timedelta(minutes=30)
    assert check(at, django_capture_on_commit_callbacks) == {"reminded": 1, "escalated": 0}
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject.startswith("Reminder: approve")
    assert f"https://baton.example.com/workguide/items/{item.pk}/" in message.body
    item.refresh_from_db()
    assert item.reminded_at == at
    assert RunEvent.objects.filter(run=item.run, kind="work_item_reminder_sent").count() == 1
    # Only once.
    assert check(at + timedelta(minutes=10), django_capture_on_commit_callbacks)["reminded"] == 0
    assert len(mail.outbox) == 1


def test_escalate_to_reassigns_once(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item(escalate_to="user:bob")
    mail.outbox.clear()
    at = item.due_at + timedelta(minutes=1)
    assert check(at, django_capture_on_commit_callbacks) == {"reminded": 0, "escalated": 1}
    item.refresh_from_db()
    assert item.assignee_display == "user:bob" and item.escalated_at == at and item.status == "open"
    event = RunEvent.objects.get(run=item.run, kind="work_item_escalated")
    assert event.data["before"] == "user:alice" and event.data["after"] == "user:bob"
    assert event.step_name == "approve" and event.stage_name == "ask" and event.at == at
    (message,) = mail.outbox
    assert message.to == ["bob@example.com"] and message.subject.startswith("Overdue: approve")
    assert "now with user:bob" in message.body
    # Only once, even much later.
    assert check(at + timedelta(days=3), django_capture_on_commit_callbacks)["escalated"] == 0
    assert len(mail.outbox) == 1


def test_escalate_to_a_group_and_a_queue(people, settings_due, django_capture_on_commit_callbacks):
    to_group = start_item(escalate_to="group:managers")
    to_queue = start_item(escalate_to="queue:desk")
    mail.outbox.clear()
    check(max(to_group.due_at, to_queue.due_at) + timedelta(seconds=1), django_capture_on_commit_callbacks)
    to_group.refresh_from_db()
    to_queue.refresh_from_db()
    assert to_group.assignee_display == "group:managers" and to_queue.assignee_display == "queue:desk"
    assert sorted(m.to[0] for m in mail.outbox) == ["carol@example.com", "desk@example.com"]


def test_without_escalate_to_the_assignee_is_told(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item({"queue": "desk"})
    mail.outbox.clear()
    at = item.due_at + timedelta(hours=5)
    assert check(at, django_capture_on_commit_callbacks)["escalated"] == 1
    item.refresh_from_db()
    assert item.assignee_display == "queue:desk" and item.escalated_at == at
    (message,) = mail.outbox
    assert message.to == ["desk@example.com"] and "overdue" in message.body
    event = RunEvent.objects.get(run=item.run, kind="work_item_overdue")
    assert event.data["assignee"] == "queue:desk"


def test_queue_without_email_mails_its_members(people, settings_due, django_capture_on_commit_callbacks):
    members = Queue.objects.create(name="helpers")
    members.members.add(people["alice"])
    members.member_groups.add(people["managers"])
    item = start_item({"queue": "helpers"})
    mail.outbox.clear()
    check(item.due_at + timedelta(minutes=1), django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "carol@example.com"]


def test_unknown_escalation_target_falls_back_and_is_recorded(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item(escalate_to="user:ghost")
    mail.outbox.clear()
    check(item.due_at + timedelta(minutes=1), django_capture_on_commit_callbacks)
    item.refresh_from_db()
    assert item.assignee_display == "user:alice"
    event = RunEvent.objects.get(run=item.run, kind="work_item_overdue")
    assert "ghost" in event.data["escalate_to_problem"]
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_closed_items_are_left_alone(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item(escalate_to="user:bob")
    engine.cancel_run(item.run_id)
    mail.outbox.clear()
    assert check(item.due_at + timedelta(days=1), django_capture_on_commit_callbacks) == {"reminded": 0, "escalated": 0}
    assert mail.outbox == []


def test_reminder_then_escalation(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item(escalate_to="user:bob")
    mail.outbox.clear()
    check(item.due_at - timedelta(minutes=10), django_capture_on_commit_callbacks)
    check(item.due_at + timedelta(minutes=10), django_capture_on_commit_callbacks)
    assert [(m.to[0], m.subject.split(":")[0]) for m in mail.outbox] == [
        ("alice@example.com", "Reminder"), ("bob@example.com", "Overdue"),
    ]


def test_frozen_clock_through_timezone_now(people, settings_due, django_capture_on_commit_callbacks):
    """Without ``now``, the task reads the clock: patched here."""
    item = start_item()
    mail.outbox.clear()
    frozen = item.due_at + timedelta(minutes=2)
    with mock.patch("django.utils.timezone.now", return_value=frozen):
        with django_capture_on_commit_callbacks(execute=True):
            from workguide.tasks import check_due_dates

            assert check_due_dates() == {"reminded": 0, "escalated": 1}
    item.refresh_from_db()
    assert item.escalated_at == frozen
    assert len(mail.outbox) == 1


def test_failed_mail_goes_to_the_retrying_task(people, settings_due, django_capture_on_commit_callbacks):
    item = start_item()
    with mock.patch("workguide.notifications.deliver", return_value=["alice@example.com"]), \
            mock.patch("workguide.tasks.send_work_item_mail.delay") as retry:
        check(item.due_at + timedelta(minutes=1), django_capture_on_commit_callbacks)
    retry.assert_called_once_with(item.pk, "escalation", ["alice@example.com"])


def test_beat_schedule_names_the_task():
    # The app adds its entry to the project's Celery app (no CELERY_BEAT_SCHEDULE in settings).
    from config.celery import app
    from workguide.tasks import check_due_dates

    assert check_due_dates.name == "workguide.tasks.check_due_dates"
    assert any(entry["task"] == check_due_dates.name for entry in app.conf.beat_schedule.values())


def test_no_reminder_for_an_item_created_inside_its_reminder_window(people, settings,
                                                                    django_capture_on_commit_callbacks):
    """Issue 17 #3: with BATON_REMINDER_BEFORE 24 h an item due in one day got "due soon" five minutes after
    its new-work mail. An item that opens inside its window gets no reminder; one that opens before it does."""
    settings.BATON_REMINDER_BEFORE = 24 * 3600
    item = start_item()  # due in 1 day: opened inside the 24 h window
    mail.outbox.clear()
    assert check(item.created_at + timedelta(minutes=5), django_capture_on_commit_callbacks)["reminded"] == 0
    assert check(item.due_at - timedelta(hours=1), django_capture_on_commit_callbacks)["reminded"] == 0
    assert mail.outbox == []
    assert not RunEvent.objects.filter(run=item.run, kind="work_item_reminder_sent").exists()
    # Escalation still applies once it is overdue.
    assert check(item.due_at + timedelta(minutes=1), django_capture_on_commit_callbacks)["escalated"] == 1
    # An item due in three days opens before its window: reminded once the window begins, not earlier.
    later = start_item(due_in="3d")
    mail.outbox.clear()
    assert check(later.created_at + timedelta(minutes=5), django_capture_on_commit_callbacks)["reminded"] == 0
    assert check(later.due_at - timedelta(hours=23), django_capture_on_commit_callbacks)["reminded"] == 1
    assert [m.subject.startswith("Reminder") for m in mail.outbox] == [True]
