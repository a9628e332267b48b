"""Mail for new work items: recipients, templates, the absolute link, after commit, failures."""
import logging

import pytest
from django.core import mail

from tests.workguide_helpers import employee, guide_orchestration, item_of, people, start
from workguide import notifications
from workguide.models import Queue, WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def users(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.BATON_BASE_URL = "https://baton.example.com"
    return people()


def launch(django_capture_on_commit_callbacks, assignee):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = start(guide_orchestration(assignee=assignee), record=employee())
    assert callbacks  # the mail waits for the commit
    return run


def test_a_user_item_mails_the_user_with_text_html_and_the_link(users, django_capture_on_commit_callbacks):
    run = launch(django_capture_on_commit_callbacks, {"user": "alice"})
    item = item_of(run)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "New work for you: Enter the details (Ada Lovelace)"
    link = f"https://baton.example.com/workguide/items/{item.pk}/"
    assert link in message.body and "Hire equipment" in message.body
    html, kind = message.alternatives[0]
    assert kind == "text/html" and f'href="{link}"' in html


def test_nothing_is_sent_before_commit(users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        start(guide_orchestration(), record=employee())
    assert mail.outbox == [] and callbacks


def test_a_group_item_mails_every_member(users, django_capture_on_commit_callbacks):
    users["alice"].groups.add(users["gina"].groups.get(name="crew"))
    launch(django_capture_on_commit_callbacks, {"group": "crew"})
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "gina@example.com"]


def test_a_queue_item_mails_the_queue_email_else_its_members(users, django_capture_on_commit_callbacks):
    launch(django_capture_on_commit_callbacks, {"queue": "desk"})
    assert sorted(m.to[0] for m in mail.outbox) == ["quentin@example.com", "quinn@example.com"]
    mail.outbox.clear()
    Queue.objects.filter(name="desk").update(email="desk@example.com")
    launch(django_capture_on_commit_callbacks, {"queue": "desk"})
    assert [m.to for m in mail.outbox] == [["desk@example.com"]]
    assert "Hello desk team" in mail.outbox[0].body


def test_people_without_address_or_inactive_are_skipped(users, django_capture_on_commit_callbacks):
    users["quinn"].email = ""
    users["quinn"].save()
    users["quentin"].is_active = False
    users["quentin"].save()
    launch(django_capture_on_commit_callbacks, {"queue": "desk"})
    assert mail.outbox == []


def test_html_in_labels_is_escaped_in_the_html_mail(users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = start(guide_orchestration(), record=employee("<i>Ada</i>", "L"))
    html = mail.outbox[0].alternatives[0][0]
    assert "<i>Ada</i>" not in html and "&lt;i&gt;Ada&lt;/i&gt;" in html
    assert "<i>Ada</i> L" in mail.outbox[0].body  # plain text stays as typed
    assert item_of(run).status == "open"


def test_reassigning_mails_the_new_assignee(users, django_capture_on_commit_callbacks):
    from workguide import services

    run = launch(django_capture_on_commit_callbacks, {"user": "alice"})
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign(item_of(run), users["mona"], "user:gina")
    assert [m.to for m in mail.outbox] == [["gina@example.com"]]


class BrokenBackend:
    attempts = 0

    def __init__(self, *args, **kwargs):
        pass

    def open(self):
        BrokenBackend.attempts += 1
        raise OSError("mail server down")

    def close(self):
        pass

    def send_messages(self, messages):
        raise OSError("mail server down")


def test_a_failing_mail_server_is_logged_retried_and_never_rolls_back(users, settings, caplog,
                                                                      django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.workguide.test_notifications.BrokenBackend"
    settings.BATON_MAIL_RETRIES = 2
    BrokenBackend.attempts = 0
    with caplog.at_level(logging.WARNING):
        run = launch(django_capture_on_commit_callbacks, {"user": "alice"})
    item = item_of(run)
    assert item.status == "open" and item.step_run.status == "in_progress"
    assert BrokenBackend.attempts == 3  # the first try and two retries
    text = caplog.text
    assert "cannot reach the mail server" in text and "giving up" in text


def test_when_the_broker_is_down_the_mail_is_tried_in_process(users, monkeypatch, django_capture_on_commit_callbacks):
    from workguide import tasks

    def no_broker(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.send_work_item_mail, "delay", no_broker)
    launch(django_capture_on_commit_callbacks, {"user": "alice"})
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_retries_go_only_to_the_addresses_that_failed(users, monkeypatch, django_capture_on_commit_callbacks):
    run = launch(django_capture_on_commit_callbacks, {"group": "crew"})
    users["alice"].groups.add(users["gina"].groups.get(name="crew"))
    mail.outbox.clear()
    item = item_of(run)
    assert notifications.deliver(item.pk, only=["alice@example.com"]) == []
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_no_mail_for_an_item_that_is_no_longer_open(users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = start(guide_orchestration(), record=employee())
    WorkItem.objects.filter(run=run).update(status="canceled")
    for callback in callbacks:
        callback()
    assert mail.outbox == []
