"""Starts: record-triggered (signals), launch() and start_for()."""
import pytest
from django.contrib.auth.models import User
from django.db import connection

import orchestration
from demo.models import Employee, Opportunity
from orchestration import triggers
from orchestration.models import OrchestrationRun, StepRun
from orchestration.starts import LaunchError
from tests.engine_builders import bg, noop_flow, orchestration as make_orchestration

pytestmark = pytest.mark.django_db


def employee(**kw):
    data = {"first_name": "Ada", "last_name": "L", "email": "ada@example.com", "status": "hired"}
    data.update(kw)
    return Employee.objects.create(**data)


def watch(model, when, condition="", only_changed=False, api_name=None):
    noop_flow("n")
    orch = make_orchestration(
        [{"name": "one", "steps": [bg("s", "n")]}],
        api_name=api_name,
        start={"type": "record_triggered", "model": model, "when": when, "condition": condition,
               "only_when_changed_to_meet": only_changed},
    )
    triggers.definitions_changed()
    return orch


def runs_for(record):
    return OrchestrationRun.objects.filter(record_pk=str(record.pk), record_model=record._meta.label_lower)


def test_created_trigger_starts_on_commit_when_the_condition_holds(django_capture_on_commit_callbacks):
    watch("demo.employee", "created", 'record.status == "hired"')
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        hired = employee()
        assert not runs_for(hired).exists()  # nothing before commit
        gone = employee(status="left")
    assert len(callbacks) >= 1
    assert runs_for(hired).count() == 1
    assert not runs_for(gone).exists()
    run = runs_for(hired).get()
    assert run.status == "running" and StepRun.objects.get(run=run).status == "queued"


def test_updated_trigger_ignores_creation_and_sees_record_prior(django_capture_on_commit_callbacks):
    watch("demo.opportunity", "updated", 'record.stage == "approval" && record_prior.stage != "approval"')
    with django_capture_on_commit_callbacks(execute=True):
        opp = Opportunity.objects.create(name="Deal", account="A", stage="approval")
    assert not runs_for(opp).exists()
    with django_capture_on_commit_callbacks(execute=True):
        opp.stage = "negotiation"
        opp.save()
        opp.stage = "approval"
        opp.save()
    run = runs_for(opp).get()
    assert run.record_prior["stage"] == "negotiation"


def test_the_stored_row_is_read_before_an_update_only_for_orchestrations_that_read_record_prior(
        django_capture_on_commit_callbacks, django_assert_num_queries):
    from orchestration.plan import Plan

    orch = watch("demo.opportunity", "updated", 'record.stage == "approval"')
    assert not Plan.load(orch).reads_record_prior
    opp = Opportunity.objects.create(name="Deal", account="A", stage="negotiation")
    opp.stage = "approval"
    with django_capture_on_commit_callbacks(execute=False):
        # The index version, the UPDATE and the PendingStart: no SELECT of the stored row.
        with django_assert_num_queries(3) as captured:
            opp.save()
    assert "triggerindexversion" in captured.captured_queries[0]["sql"]
    from orchestration.models import PendingStart

    assert PendingStart.objects.get().record_prior is None

    noop_flow("reader", inputs=[{"name": "was", "type": "text"}])
    reads = make_orchestration(
        [{"name": "one", "steps": [bg("s", "reader", inputs={"was": "record_prior.stage"})]}],
        start={"type": "record_triggered", "model": "demo.opportunity", "when": "updated"})
    assert Plan.load(reads).reads_record_prior
    triggers.definitions_changed()
    opp.stage = "closed_won"
    with django_capture_on_commit_callbacks(execute=True):
        opp.save()
    run = runs_for(opp).get(orchestration=reads)
    assert run.record_prior["stage"] == "approval"
    assert StepRun.objects.get(run=run).inputs == {"was": "approval"}


def test_only_when_changed_to_meet(django_capture_on_commit_callbacks):
    watch("demo.opportunity", "created_or_updated", "record.amount > 1000.0", only_changed=True)
    with django_capture_on_commit_callbacks(execute=True):
        opp = Opportunity.objects.create(name="Deal", account="A", amount=5000)  # created: meets it
        opp.name = "Deal 2"
        opp.save()  # still meets it: no new run
        opp.amount = 10
        opp.save()  # no longer meets it
        opp.amount = 2000
        opp.save()  # changed to meet it again: a run
    assert runs_for(opp).count() == 2


def test_unwatched_model_starts_nothing_and_activation_reconnects(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = employee()
    assert not OrchestrationRun.objects.exists()
    watch("demo.employee", "created")
    with django_capture_on_commit_callbacks(execute=True):
        second = employee()
    assert runs_for(second).count() == 1 and not runs_for(first).exists()


def test_a_failing_start_condition_starts_nothing_and_saves_the_record(django_capture_on_commit_callbacks):
    watch("demo.employee", "created", "record.status / 0 == 1")
    with django_capture_on_commit_callbacks(execute=True):
        saved = employee()
    assert Employee.objects.filter(pk=saved.pk).exists()
    assert not OrchestrationRun.objects.exists()


def test_start_for_covers_bulk_writes():
    watch("demo.employee", "created_or_updated", 'record.department == "sales"')
    Employee.objects.bulk_create([
        Employee(first_name="A", last_name="A", email="a@x.com", department="sales"),
        Employee(first_name="B", last_name="B", email="b@x.com", department="finance"),
    ])
    assert not OrchestrationRun.objects.exists()  # bulk_create sends no signals
    started = orchestration.start_for(Employee.objects.all())
    assert [run.record_pk for run in started] == [str(Employee.objects.get(first_name="A").pk)]


def test_saving_the_record_rechecks_pending_conditions(django_capture_on_commit_callbacks):
    noop_flow("n")
    orch = make_orchestration([{"name": "one", "steps": [
        bg("gate", "n", entry={"condition": "record.remote"}),
    ], "exit": {"condition": "record.accounts_created"}}])
    person = employee()
    run = orchestration.launch(orch.api_name, record={"model": "demo.employee", "pk": person.pk})
    assert StepRun.objects.get(run=run).status == "waiting"
    triggers.definitions_changed()
    with django_capture_on_commit_callbacks(execute=True):
        person.remote = True
        person.save()
    assert StepRun.objects.get(run=run).status == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        person.accounts_created = True
        person.save()
    run.refresh_from_db()
    assert run.status == "completed"
    assert StepRun.objects.get(run=run).status == "discontinued"


def test_launch_validates_inputs_and_record_creating_nothing_on_error():
    noop_flow("n")
    orch = make_orchestration(
        [{"name": "one", "steps": [bg("s", "n")]}],
        inputs=[{"name": "amount", "type": "number", "required": True}, {"name": "note", "type": "text"}],
        start={"type": "autolaunched"},
    )
    with pytest.raises(LaunchError) as err:
        orchestration.launch(orch.api_name, inputs={"amount": "lots", "colour": "red"})
    assert set(err.value.message_dict) == {"inputs.amount", "inputs.colour"}
    with pytest.raises(LaunchError) as err:
        orchestration.launch(orch.api_name, inputs={})
    assert "inputs.amount" in err.value.message_dict
    with pytest.raises(LaunchError) as err:
        orchestration.launch(orch.api_name, inputs={"amount": 1}, record={"model": "auth.user", "pk": 1})
    assert "not exposed" in str(err.value.message_dict["record"])
    with pytest.raises(LaunchError) as err:
        orchestration.launch(orch.api_name, inputs={"amount": 1}, record={"model": "demo.employee", "pk": 999})
    assert "no demo.employee" in str(err.value.message_dict["record"])
    with pytest.raises(LaunchError):
        orchestration.launch("nothing_here")
    assert not OrchestrationRun.objects.exists()
    user = User.objects.create_user("u")
    run = orchestration.launch(orch.api_name, inputs={"amount": 3}, user=user)
    assert run.inputs == {"amount": 3.0, "note": None} and run.started_by == user


def test_launch_refuses_a_record_of_another_model():
    orch = watch("demo.employee", "created")
    opp = Opportunity.objects.create(name="Deal", account="A")
    with pytest.raises(LaunchError) as err:
        orchestration.launch(orch.api_name, record=opp)
    assert "runs on demo.employee" in str(err.value.message_dict["record"])


def test_an_activation_elsewhere_is_seen_by_the_next_save_here(django_capture_on_commit_callbacks):
    """Another process activated (no definitions_changed() here): the very next save starts the run."""
    from orchestration.spec import orchestration_from_dict

    with django_capture_on_commit_callbacks(execute=True):
        before = employee()  # builds this process's index: nothing watches employees yet
    assert not runs_for(before).exists()
    noop_flow("n")
    orchestration_from_dict({"api_name": "elsewhere", "start": {"type": "record_triggered", "model": "demo.employee",
                             "when": "created"}, "path": [{"name": "one", "steps": [bg("s", "n")]}]},
                            status="active")
    with django_capture_on_commit_callbacks(execute=True):
        after = employee()
    assert runs_for(after).count() == 1


def test_an_activation_by_update_elsewhere_is_seen_once_the_version_moves(django_capture_on_commit_callbacks):
    """A definition changed without signals (``QuerySet.update``) counts once the version is bumped, as
    ``definitions_changed`` does in the process that made the change."""
    from orchestration.models import Orchestration

    orch = watch("demo.employee", "created")
    Orchestration.objects.filter(pk=orch.pk).update(status="obsolete")
    triggers.bump_version()
    with django_capture_on_commit_callbacks(execute=True):
        nobody = employee()
    assert not runs_for(nobody).exists()
    Orchestration.objects.filter(pk=orch.pk).update(status="active")
    triggers.bump_version()
    with django_capture_on_commit_callbacks(execute=True):
        somebody = employee()
    assert runs_for(somebody).count() == 1


def test_the_index_is_checked_at_most_once_per_interval_and_activation_waits_that_long(
        settings, django_capture_on_commit_callbacks, django_assert_num_queries):
    from unittest import mock

    from orchestration import lifecycle
    from orchestration.spec import orchestration_from_dict

    settings.BATON_TRIGGER_CHECK_INTERVAL = 3600
    with django_capture_on_commit_callbacks(execute=True):
        employee()  # reads the version: the index was never built
    opp = Opportunity.objects.create(name="Deal", account="A")
    with django_assert_num_queries(1):  # the UPDATE only: checked less than an interval ago
        opp.save()
    noop_flow("n")
    draft = orchestration_from_dict({"api_name": "later", "start": {"type": "record_triggered",
                                     "model": "demo.employee", "when": "created"},
                                     "path": [{"name": "one", "steps": [bg("s", "n")]}]}, status="draft")
    with mock.patch("orchestration.triggers.time.sleep") as sleep:
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.activate(draft)
    assert sleep.call_args.args[0] >= 3600  # returns only once every process has checked again


def test_a_start_interrupted_after_commit_is_made_by_the_sweeper(django_capture_on_commit_callbacks):
    """The pending start is saved with the record; if the process dies before starting the run, nothing is lost."""
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from orchestration.models import PendingStart
    from orchestration.starts import start_leftover_pending

    watch("demo.employee", "created")
    with django_capture_on_commit_callbacks(execute=False):  # the process "dies" before on_commit runs
        person = employee()
    pending = PendingStart.objects.get()
    assert (pending.record_model, pending.record_pk) == ("demo.employee", str(person.pk))
    assert not runs_for(person).exists()
    assert start_leftover_pending() == 0  # too young: its own process may still be starting it
    assert start_leftover_pending(now=timezone.now() + timedelta(minutes=5)) == 1
    assert runs_for(person).count() == 1 and not PendingStart.objects.exists()
    assert start_leftover_pending(older_than_seconds=0) == 0  # started once only
    call_command("orchestration_sweep", stdout=__import__("io").StringIO())
    assert runs_for(person).count() == 1


def test_a_failing_start_keeps_its_pending_row_and_never_fails_the_save(django_capture_on_commit_callbacks):
    from unittest import mock

    from orchestration.models import PendingStart
    from orchestration.starts import start_leftover_pending

    watch("demo.employee", "created")
    with mock.patch("orchestration.engine.start_run", side_effect=RuntimeError("database hiccup")):
        with django_capture_on_commit_callbacks(execute=True):
            person = employee()
    assert Employee.objects.filter(pk=person.pk).exists()
    pending = PendingStart.objects.get()
    assert pending.attempts == 1 and "hiccup" in pending.error
    assert start_leftover_pending(older_than_seconds=0) == 1
    assert runs_for(person).count() == 1 and not PendingStart.objects.exists()


def test_the_pending_start_of_a_deleted_record_is_dropped(django_capture_on_commit_callbacks):
    from orchestration.models import PendingStart
    from orchestration.starts import start_leftover_pending

    watch("demo.employee", "created")
    with django_capture_on_commit_callbacks(execute=False):
        person = employee()
    person.delete()
    assert start_leftover_pending(older_than_seconds=0) == 0
    assert not PendingStart.objects.exists() and not OrchestrationRun.objects.exists()


def test_worker_starts_publish_a_message_and_the_task_starts_the_run_once(settings, django_capture_on_commit_callbacks):
    """BATON_RECORD_STARTS=worker: the save writes the pending row and publishes; the worker's task starts it."""
    from unittest import mock

    from orchestration.models import PendingStart
    from orchestration.tasks import start_pending_run

    settings.BATON_RECORD_STARTS = "worker"
    watch("demo.employee", "created", 'record.status == "hired"')
    with mock.patch("orchestration.tasks.start_pending_run.apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            person = employee()
    pending = PendingStart.objects.get()
    if connection.vendor == "postgresql":
        publish.assert_not_called()  # the row's insert notifies the workers' listeners instead (listener.py)
    else:
        publish.assert_called_once_with((pending.pk, None))
    assert not runs_for(person).exists()  # nothing started in the saving process
    assert start_pending_run(pending.pk) == "started"
    run = runs_for(person).get()
    assert run.status == "running" and StepRun.objects.get(run=run).status == "queued"
    assert not PendingStart.objects.exists()
    assert start_pending_run(pending.pk) == "nothing to start"  # a duplicate message
    assert runs_for(person).count() == 1


def test_worker_starts_fall_back_to_starting_here_when_the_broker_is_away(settings, django_capture_on_commit_callbacks):
    from unittest import mock

    from kombu.exceptions import OperationalError

    from orchestration.models import PendingStart

    settings.BATON_RECORD_STARTS = "worker"
    watch("demo.employee", "created")
    with mock.patch("orchestration.tasks.start_pending_run.apply_async", side_effect=OperationalError("refused")):
        with django_capture_on_commit_callbacks(execute=True):
            person = employee()
    if connection.vendor == "postgresql":
        # PostgreSQL never publishes a start (the insert notifies the listeners), so a broker
        # that is away changes nothing: the row waits for a listener or the sweeper.
        from orchestration.starts import start_leftover_pending

        assert not runs_for(person).exists() and PendingStart.objects.count() == 1
        assert start_leftover_pending(older_than_seconds=0) == 1
    assert runs_for(person).count() == 1 and not PendingStart.objects.exists()


def test_a_failing_worker_start_keeps_the_pending_row_for_the_sweeper(settings, django_capture_on_commit_callbacks):
    from unittest import mock

    from orchestration.models import PendingStart
    from orchestration.starts import start_leftover_pending
    from orchestration.tasks import start_pending_run

    settings.BATON_RECORD_STARTS = "worker"
    watch("demo.employee", "created")
    with mock.patch("orchestration.tasks.start_pending_run.apply_async"):
        with django_capture_on_commit_callbacks(execute=True):
            person = employee()
    pending = PendingStart.objects.get()
    with mock.patch("orchestration.engine.start_run", side_effect=RuntimeError("database hiccup")):
        assert start_pending_run(pending.pk) == "error"
    pending.refresh_from_db()
    assert pending.attempts == 1 and "hiccup" in pending.error
    assert start_leftover_pending(older_than_seconds=0) == 1
    assert runs_for(person).count() == 1


def test_launch_refuses_to_start_without_the_record_its_expressions_read():
    """Issue 12, point 7: a run that reads record and has none would stop in error at once."""
    noop_flow("n", inputs=[{"name": "who", "type": "text"}])
    reader = make_orchestration([{"name": "one", "steps": [bg("s", "n", inputs={"who": "record.first_name"})]}],
                                start={"type": "autolaunched"})
    with pytest.raises(LaunchError) as err:
        orchestration.launch(reader.api_name)
    assert list(err.value.message_dict) == ["record"]
    assert f"{reader.api_name} reads record in its expressions" in err.value.message_dict["record"][0]
    assert not OrchestrationRun.objects.exists()
    run = orchestration.launch(reader.api_name, record=employee())
    assert run.status != "error"
    plain = make_orchestration([{"name": "one", "steps": [bg("s", "n", inputs={"who": '"x"'})]}],
                               start={"type": "autolaunched"})
    assert orchestration.launch(plain.api_name).status != "error"


def test_launch_refuses_a_record_whose_model_lacks_or_hides_a_field_read(settings):
    """Issue 12 review, hole 7: an autolaunched orchestration written for employees, given a user."""
    settings.BATON_FLOW_MODELS = ["demo.employee:first_name", "auth.user"]
    noop_flow("n", inputs=[{"name": "who", "type": "text"}])
    reader = make_orchestration([{"name": "one", "steps": [
        bg("s", "n", inputs={"who": 'record["first_name"] + (has(record.nick) ? record.nick : "")'})]}],
        start={"type": "autolaunched"})
    group = make_orchestration([{"name": "one", "steps": [bg("s", "n", inputs={"who": "record.last_name"})]}],
                               start={"type": "autolaunched"})
    user = User.objects.create_user("someone")
    with pytest.raises(LaunchError) as err:
        orchestration.launch(group.api_name, record=employee())  # last_name is not exposed
    assert list(err.value.message_dict) == ["record"]
    assert "record.last_name" in err.value.message_dict["record"][0]
    assert not OrchestrationRun.objects.exists()
    # auth.user has first_name too: the has()-guarded nick does not count.
    assert orchestration.launch(reader.api_name, record=user).status != "error"
    assert orchestration.launch(reader.api_name, record=employee()).status != "error"


def test_a_start_conditions_verdict_is_remembered_by_the_values_it_reads(django_capture_on_commit_callbacks):
    """A condition on ``record`` alone is evaluated once per distinct value of the fields it reads
    (benchmark 4's false-condition save); a new value is evaluated, and starts the run when it holds."""
    from unittest import mock

    from flows import expressions

    watch("demo.employee", "created_or_updated", 'record.status == "hired"')
    triggers._verdicts_by_values.clear()
    with mock.patch("orchestration.triggers.evaluate_condition", wraps=expressions.evaluate_condition) as evaluated, \
            django_capture_on_commit_callbacks(execute=True):
        left = [employee(status="left", email=f"l{i}@example.com") for i in range(3)]
        assert evaluated.call_count == 1
        left[0].first_name = "Grace"
        left[0].save()
        assert evaluated.call_count == 1  # same status: the verdict is reused
        hired = employee(status="hired", email="h@example.com")
        assert evaluated.call_count == 2
        left[1].status = "hired"
        left[1].save()
        assert evaluated.call_count == 2
    assert runs_for(hired).count() == 1 and runs_for(left[1]).count() == 1
    assert not runs_for(left[0]).exists() and not runs_for(left[2]).exists()


def test_a_pending_start_being_started_is_passed_by_and_comes_back_if_its_start_fails(postgres_db):
    """PostgreSQL: taking a pending start deletes it in the starter's transaction (one statement). Another
    starter (the sweeper) passes it by without waiting; a rollback puts it back for the sweeper."""
    import threading

    from django.db import transaction

    from orchestration.models import PendingStart
    from orchestration.starts import _take_pending, start_leftover_pending
    from tests.pg_locks import in_thread

    assert connection.vendor == "postgresql"
    watch("demo.employee", "created")
    pending = PendingStart.objects.create(orchestration_id=OrchestrationRun._meta.get_field("orchestration")
                                          .related_model.objects.get().pk, record_model="demo.employee",
                                          record_pk="1", record_prior={"status": "hired", "n": [1, 2]})
    taken, release, results = threading.Event(), threading.Event(), {}

    def first():
        with transaction.atomic():
            got = _take_pending(pending.pk)
            taken.set()
            release.wait(10)
            transaction.set_rollback(True)  # as a start that failed
        return got

    thread = in_thread(first, results, "first")
    assert taken.wait(10)
    results["second"] = start_leftover_pending(older_than_seconds=0)  # would block here if it waited for the lock
    release.set()
    thread.join(10)
    got = results["first"]
    assert results["second"] == 0
    assert (got.pk, got.record_model, got.record_pk, got.record_prior) == (pending.pk, "demo.employee", "1",
                                                                           {"status": "hired", "n": [1, 2]})
    assert got.created_at == pending.created_at and not got._state.adding
    assert PendingStart.objects.filter(pk=pending.pk).exists()  # back after the rollback
