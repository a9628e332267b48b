"""Versioning rules: frozen active/obsolete versions, new versions, activation, one active."""
import pytest
from django.db import IntegrityError, transaction

from flows.models import Flow
from flows.spec import flow_to_dict
from flows.versioning import FrozenDefinition
from orchestration import lifecycle
from orchestration.lifecycle import ActivationRefused, activate, new_version
from orchestration.models import Orchestration, Step
from orchestration.spec import orchestration_to_dict
from tests.factories import make_flow, make_orchestration, stage, step, var

pytestmark = pytest.mark.django_db


def sound_orchestration(status="draft", api_name="ver_orch"):
    make_flow("ver_work", inputs=[var("x", required=True)], outputs=["result"]) \
        if not Flow.objects.filter(api_name="ver_work").exists() else None
    return make_orchestration(api_name, status=status,
                              path=[stage("one", step("a", "ver_work", inputs={"x": '"1"'}))])


@pytest.mark.parametrize("status", ["active", "obsolete"])
def test_active_and_obsolete_versions_are_frozen(status):
    orch = sound_orchestration(status=status)
    orch.label = "changed"
    with pytest.raises(FrozenDefinition):
        orch.save()
    a = Step.objects.get(stage__orchestration=orch, name="a")
    a.label = "changed"
    with pytest.raises(FrozenDefinition):
        a.save()
    flow = make_flow("ver_frozen", status=status, outputs=["o"])
    variable = flow.variables.get()
    variable.type = "number"
    with pytest.raises(FrozenDefinition):
        variable.save()


def test_drafts_can_be_edited():
    orch = sound_orchestration()
    orch.label = "changed"
    orch.save()
    a = Step.objects.get(stage__orchestration=orch, name="a")
    a.label = "changed too"
    a.save()


def test_new_version_copies_everything_into_a_draft():
    orch = sound_orchestration(status="active")
    copy = new_version(orch)
    assert (copy.version, copy.status) == (2, "draft")
    assert orchestration_to_dict(copy) == orchestration_to_dict(orch)
    flow = Flow.objects.get(api_name="ver_work")
    flow_copy = new_version(flow)
    assert (flow_copy.version, flow_copy.status) == (2, "draft")
    assert flow_to_dict(flow_copy) == flow_to_dict(flow)


def test_activation_obsoletes_the_previous_version(django_capture_on_commit_callbacks, monkeypatch):
    calls = []
    monkeypatch.setattr("orchestration.triggers.definitions_changed", lambda: calls.append(1), raising=False)
    first = sound_orchestration()
    with django_capture_on_commit_callbacks(execute=True):
        activate(first)
    second = new_version(first)
    with django_capture_on_commit_callbacks(execute=True):
        activate(second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "obsolete"
    assert second.status == "active" and second.activated_at is not None
    assert Orchestration.objects.filter(api_name="ver_orch", status="active").count() == 1
    assert len(calls) == 2


def test_an_obsolete_version_can_be_reactivated():
    first = sound_orchestration()
    activate(first)
    second = activate(new_version(first))
    activate(first)
    second.refresh_from_db()
    assert second.status == "obsolete"
    assert Orchestration.objects.get(api_name="ver_orch", status="active").pk == first.pk


def test_refused_activation_changes_nothing_and_lists_every_problem():
    orch = make_orchestration("ver_bad", path=[stage("one", step("a", "missing_flow"), step("b", "other_missing"))])
    with pytest.raises(ActivationRefused) as refused:
        activate(orch)
    text = str(refused.value)
    assert "ver_bad v1 cannot be activated" in text
    assert "no flow named 'missing_flow'" in text and "no flow named 'other_missing'" in text
    assert len(refused.value.problems) == 2
    orch.refresh_from_db()
    assert orch.status == "draft"


def test_at_most_one_active_version_is_a_database_constraint():
    make_flow("ver_one", outputs=["o"])
    with pytest.raises(IntegrityError), transaction.atomic():
        make_flow("ver_one", outputs=["o"])  # created as draft, then set active: the constraint refuses
    sound_orchestration(status="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        sound_orchestration(status="active")


def test_activating_the_active_version_is_a_no_op():
    orch = sound_orchestration()
    activate(orch)
    stamp = Orchestration.objects.get(pk=orch.pk).activated_at
    activate(orch)
    assert Orchestration.objects.get(pk=orch.pk).activated_at == stamp


def test_lifecycle_validate_rejects_other_objects():
    with pytest.raises(TypeError):
        lifecycle.validate(object())
