"""``orchestration/listener.py``: workers start record-triggered runs on PostgreSQL's notification."""
import time

import pytest
from django.db import transaction

from demo.models import Employee
from orchestration import listener, triggers
from orchestration.models import OrchestrationRun, PendingStart
from tests.engine_builders import bg, noop_flow, orchestration


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def watched(postgres_db, settings):
    settings.BATON_RECORD_STARTS = "worker"
    noop_flow("n")
    orchestration([{"name": "one", "steps": [bg("s", "n")]}], api_name="hire",
                  start={"type": "record_triggered", "model": "demo.employee", "when": "created",
                         "condition": 'record.status == "hired"'})
    triggers.definitions_changed()
    assert listener.enabled()


def hire(name):
    return Employee.objects.create(first_name=name, last_name="L", email=f"{name}@example.com", status="hired")


def test_a_listening_worker_starts_the_run_of_a_committed_save(watched):
    from unittest import mock

    heard = listener.PendingStartListener(poll_seconds=0.2).start()
    try:
        time.sleep(0.5)  # listening
        with mock.patch("orchestration.starts.send_start_message") as publish:
            ada = hire("ada")
        publish.assert_not_called()  # PostgreSQL's notification is the message
        run = wait_for(lambda: OrchestrationRun.objects.filter(record_pk=str(ada.pk)).first())
        assert run.status == "running"
        wait_for(lambda: not PendingStart.objects.exists())
        # The listener counts a start after its transaction commits: the row is gone a moment before.
        wait_for(lambda: heard.started == 1)
        with pytest.raises(RuntimeError), transaction.atomic():  # a save that rolls back notifies nobody
            hire("bob")
            raise RuntimeError
        time.sleep(0.5)
        assert OrchestrationRun.objects.count() == 1 and heard.started == 1
    finally:
        heard.stop()


def test_rows_left_while_nobody_listened_are_started_on_connect_once_across_listeners(watched):
    people = [hire(f"p{i}") for i in range(6)]  # nobody listening yet
    assert PendingStart.objects.count() == 6 and not OrchestrationRun.objects.exists()
    first, second = listener.PendingStartListener(0.2).start(), listener.PendingStartListener(0.2).start()
    try:
        wait_for(lambda: OrchestrationRun.objects.count() == 6)
        more = [hire(f"q{i}") for i in range(4)]
        wait_for(lambda: OrchestrationRun.objects.count() == 10 and not PendingStart.objects.exists())
        time.sleep(0.3)
    finally:
        first.stop()
        second.stop()
    assert first.started + second.started == 10
    for person in people + more:
        assert OrchestrationRun.objects.filter(record_pk=str(person.pk)).count() == 1
