"""The demo: load_demo, the demo definitions end to end, and the demo record pages."""
import importlib.util

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase
from django.urls import reverse

from demo.models import Employee, EquipmentRequest, Opportunity

pytestmark = pytest.mark.django_db

HAS_IMPORTER = importlib.util.find_spec("orchestration.definition_files") is not None
needs_importer = pytest.mark.skipif(
    not HAS_IMPORTER, reason="orchestration.definition_files (the definition importer) is not written yet"
)
DEMO_USERS = {"admin", "alice", "bob", "carol", "dave", "erin"}


# --- load_demo ----------------------------------------------------------------------

@needs_importer
def test_load_demo_runs_twice_and_creates_users_queues_and_active_definitions(capsys):
    from flows.models import Flow
    from orchestration.models import Orchestration
    from workguide.models import Queue

    call_command("load_demo")
    first = capsys.readouterr().out
    counts = (Employee.objects.count(), Opportunity.objects.count(), Flow.objects.count(),
              Orchestration.objects.count(), Queue.objects.count())
    call_command("load_demo")
    second = capsys.readouterr().out
    assert counts == (Employee.objects.count(), Opportunity.objects.count(), Flow.objects.count(),
                      Orchestration.objects.count(), Queue.objects.count())
    assert "already active" in second

    User = get_user_model()
    assert DEMO_USERS <= set(User.objects.values_list("username", flat=True))
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("admin")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        assert User.objects.get(username=name).check_password(name)
    assert User.objects.get(username="bob").groups.filter(name="sales_managers").exists()

    assert {"it_support", "facilities", "deal_desk"} <= set(Queue.objects.values_list("name", flat=True))
    assert Queue.objects.get(name="it_support").members.filter(username="dave").exists()

    active = set(Orchestration.objects.filter(status="active").values_list("api_name", flat=True))
    assert {"onboarding", "deal_approval", "equipment_refresh", "supplier_onboarding", "supplier_compliance"} <= active
    assert Orchestration.objects.filter(api_name="onboarding").count() == 1  # not imported twice
    assert not Flow.objects.exclude(status="active").exists()

    for out in (first, second):
        assert "http://" in out and "/workguide/" in out
        assert "alice  / alice" in out and "admin  / admin" in out


def test_load_demo_without_records_still_creates_people(capsys):
    call_command("load_demo", "--no-records")
    assert DEMO_USERS <= set(get_user_model().objects.values_list("username", flat=True))
    assert not Employee.objects.exists()


def test_demo_definition_files_parse_and_name_the_agreed_parts():
    import yaml

    from demo.management.commands.load_demo import DEFINITIONS_DIR, DEFINITION_FILES

    docs = {name: yaml.safe_load((DEFINITIONS_DIR / name).read_text()) for name in DEFINITION_FILES}
    onboarding = next(o for o in docs["onboarding.yaml"]["orchestrations"] if o["api_name"] == "onboarding")
    assert onboarding["start"]["type"] == "record_triggered" and onboarding["start"]["when"] == "created"
    first_stage = onboarding["path"][0]
    assert {s["type"] for s in first_stage["steps"]} == {"background", "interactive"}
    assert any(isinstance(s.get("entry"), dict) and "after" in s["entry"] for s in first_stage["steps"])
    assert any(e.get("type") == "decision" for e in onboarding["path"])

    deal = docs["deal_approval.yaml"]["orchestrations"][0]
    assert deal["start"]["only_when_changed_to_meet"] is True and deal["start"]["when"] == "updated"
    assert any(e.get("next") == "review" for e in deal["path"])  # the rework loop

    # Supplier onboarding: a sub-orchestration with outputs, a quorum and an event wait with a timeout together.
    supplier = {o["api_name"]: o for o in docs["supplier_onboarding.yaml"]["orchestrations"]}
    steps = {s["name"]: s for e in supplier["supplier_onboarding"]["path"] for s in e.get("steps", [])}
    assert steps["compliance"]["type"] == "orchestration" and steps["compliance"]["orchestration"] in supplier
    assert supplier[steps["compliance"]["orchestration"]]["outputs"]
    assert steps["approve"]["completion"] == {"at_least": 2} and steps["approve"]["assignees"]
    assert steps["contract_signed"]["type"] == "wait" and steps["contract_signed"]["timeout"] == "14d"


def test_demo_actions_are_registered():
    import flows

    assert {"provision_accounts", "book_courier", "user_contact"} <= set(flows.registered_actions())
    contact = flows.get_action("user_contact")
    assert contact(user_id=None, fallback="group:sales")["assignee"] == "group:sales"
    user = get_user_model().objects.create_user("zoe", email="zoe@example.com")
    assert contact(user_id=user.pk)["assignee"] == "user:zoe"


# --- the demo orchestrations, driven through the engine ---------------------------------

def _drain(run):
    """Run every queued background step of ``run`` in this process, until none is left."""
    from orchestration.models import StepRun
    from orchestration.tasks import run_step

    for _ in range(50):
        queued = list(StepRun.objects.filter(run=run, status="queued").values_list("pk", flat=True))
        if not queued:
            return
        for pk in queued:
            with TestCase.captureOnCommitCallbacks(execute=True):
                run_step(pk)
    raise AssertionError("background steps keep coming")


def _open_step(run, name):
    from orchestration.models import StepRun

    return StepRun.objects.filter(run=run, step_name=name, status="in_progress").order_by("-id").first()


def _finish(run, name, outputs):
    from orchestration.engine import complete_step

    step_run = _open_step(run, name)
    assert step_run is not None, f"{name} is not waiting; steps: {_steps(run)}"
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert complete_step(step_run.pk, outputs)
    _drain(run)
    run.refresh_from_db()


def _steps(run):
    return [(s.step_name, s.status, s.error) for s in run.step_runs.order_by("id")]


def _run_for(record, api_name):
    from orchestration.models import OrchestrationRun

    return OrchestrationRun.objects.get(
        orchestration__api_name=api_name, record_model=f"demo.{record._meta.model_name}", record_pk=str(record.pk)
    )


@pytest.fixture
def definitions(capsys, monkeypatch):
    """The demo definitions, active; Celery messages are not sent (``_drain`` runs the steps here)."""
    if not HAS_IMPORTER:
        pytest.skip("orchestration.definition_files (the definition importer) is not written yet")
    monkeypatch.setattr("orchestration.worker.send_step_message", lambda *args, **kwargs: None)
    call_command("load_demo", "--no-records")
    capsys.readouterr()


@pytest.mark.parametrize("remote", [True, False])
def test_onboarding_runs_to_the_end(definitions, remote):
    with TestCase.captureOnCommitCallbacks(execute=True):  # record-triggered runs start on commit
        employee = Employee.objects.create(
            first_name="Ines", last_name="Duarte", email="ines@example.com", status="hired", remote=remote,
        )
    run = _run_for(employee, "onboarding")
    _drain(run)
    employee.refresh_from_db()
    assert employee.accounts_created
    _finish(run, "pick_equipment", {
        "laptop_model": "thinkpad_x1", "monitors": 2, "accessories": ["headset"], "needed_by": "2030-01-01", "notes": "",
    })
    if remote:
        assert EquipmentRequest.objects.filter(employee=employee, item="thinkpad_x1").exists()
    else:
        assert run.current_stage == "desk_setup", _steps(run)
        _finish(run, "prepare_desk", {"desk": "3-14", "badge_ready": True})
    assert run.status == "completed", (run.error, _steps(run))
    employee.refresh_from_db()
    assert employee.status == "active"


def test_deal_approval_with_a_rework_loop(definitions):
    carol = get_user_model().objects.get(username="carol")
    with TestCase.captureOnCommitCallbacks(execute=True):
        deal = Opportunity.objects.create(name="Umbrella", account="Umbrella Corp", amount=1000,
                                          discount_percent=30, stage="negotiation", owner=carol)
    with TestCase.captureOnCommitCallbacks(execute=True):
        deal.stage = "approval"
        deal.save()
    run = _run_for(deal, "deal_approval")
    with TestCase.captureOnCommitCallbacks(execute=True):
        deal.save()  # saved again while it still meets the condition: no second run
    assert run.orchestration.runs.count() == 1

    _finish(run, "manager_review", {"decision": "rework", "comments": "Too much discount", "approved_discount": 30})
    assert run.current_stage == "revise", _steps(run)
    revise = _open_step(run, "revise_deal")
    assert revise.work_item.assignee_user == carol
    _finish(run, "revise_deal", {"revised_amount": 1200, "revised_discount": 15, "note": "Longer term"})
    deal.refresh_from_db()
    assert (float(deal.amount), float(deal.discount_percent)) == (1200.0, 15.0)
    assert run.current_stage == "review", _steps(run)

    _finish(run, "manager_review", {"decision": "approve", "comments": None, "approved_discount": 12})
    assert run.status == "completed", (run.error, _steps(run))
    deal.refresh_from_db()
    assert deal.stage == "approved"
    assert float(deal.discount_percent) == 12.0


def test_deal_approval_rejected(definitions):
    deal = Opportunity.objects.create(name="Soylent", account="Soylent", amount=500, stage="negotiation")
    with TestCase.captureOnCommitCallbacks(execute=True):
        deal.stage = "approval"
        deal.save()
    run = _run_for(deal, "deal_approval")
    _finish(run, "manager_review", {"decision": "reject", "comments": "No budget", "approved_discount": 0})
    assert run.status == "completed", (run.error, _steps(run))
    deal.refresh_from_db()
    assert deal.stage == "negotiation" and "No budget" in deal.approval_notes


# --- demo pages ---------------------------------------------------------------------------

@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user("pat", password="pw-pat-12345")
    client.force_login(user)
    client.user = user
    return client


def test_demo_pages_need_login(client):
    response = client.get(reverse("demo:employees"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_demo_lists_and_details_render(user_client):
    employee = Employee.objects.create(first_name="<b>Al</b>", last_name="Bo", email="al@example.com", status="active")
    deal = Opportunity.objects.create(name="Deal <i>x</i>", account="Acme", amount=10)
    for url in (reverse("demo:employees"), reverse("demo:employees") + "?q=Al&status=active",
                reverse("demo:opportunities"), reverse("demo:opportunities") + "?stage=prospecting",
                reverse("demo:employee", args=[employee.pk]), reverse("demo:opportunity", args=[deal.pk]),
                reverse("demo:employee_add"), reverse("demo:opportunity_add"),
                reverse("demo:opportunity_edit", args=[deal.pk])):
        response = user_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "<b>Al</b>" not in body and "<i>x</i>" not in body  # escaped
    body = user_client.get(reverse("demo:employee", args=[employee.pk])).content.decode()
    assert "Work Guide" in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "baton.css" in body and "htmx" in body
    assert 'action="/accounts/logout/"' in body
    assert user_client.get(reverse("demo:employee", args=[99999])).status_code == 404


def test_employee_create_form(user_client):
    response = user_client.post(reverse("demo:employee_add"), {
        "first_name": "Kim", "last_name": "Lee", "email": "kim@example.com", "department": "sales",
        "title": "", "start_date": "2030-02-01", "status": "active", "manager": user_client.user.pk,
    })
    employee = Employee.objects.get(email="kim@example.com")
    assert response.status_code == 302 and response["Location"] == employee.get_absolute_url()
    response = user_client.post(reverse("demo:employee_add"), {"first_name": "", "email": "nope"})
    assert response.status_code == 200 and response.context["form"].errors


def test_opportunity_stage_form_saves_the_record(user_client):
    deal = Opportunity.objects.create(name="Hooli", account="Hooli", amount=10)
    response = user_client.post(reverse("demo:opportunity", args=[deal.pk]),
                                {"stage-stage": "negotiation", "stage-discount_percent": "7.5"})
    assert response.status_code == 302
    deal.refresh_from_db()
    assert (deal.stage, float(deal.discount_percent)) == ("negotiation", 7.5)
    response = user_client.post(reverse("demo:opportunity", args=[deal.pk]), {"stage-stage": "bogus"})
    assert response.status_code == 200 and response.context["form"].errors


def test_login_page_renders_and_logs_in(client, django_user_model):
    django_user_model.objects.create_user("lou", password="pw-lou-12345")
    response = client.get(reverse("login"))
    assert response.status_code == 200 and b'name="username"' in response.content
    response = client.post(reverse("login"), {"username": "lou", "password": "wrong"})
    assert response.status_code == 200 and b'role="alert"' in response.content
    response = client.post(reverse("login"), {"username": "lou", "password": "pw-lou-12345",
                                              "next": reverse("demo:employees")})
    assert response.status_code == 302 and response["Location"] == reverse("demo:employees")


def _dangling_describedby(html):
    """The ids that an aria-describedby names and no element of the page has."""
    import re

    ids = set(re.findall(r'\sid="([^"]+)"', html))
    named = {ref for refs in re.findall(r'aria-describedby="([^"]+)"', html) for ref in refs.split()}
    return sorted(named - ids)


def test_every_aria_describedby_names_an_element_of_the_page(user_client):
    # issue 17 #9: the opportunity page's stage field pointed at id_stage-stage_helptext, its help was id_stage-stage_help
    deal = Opportunity.objects.create(name="Hooli", account="Hooli", amount=10)
    for url in (reverse("demo:opportunity", args=[deal.pk]), reverse("demo:opportunity_add"),
                reverse("demo:employee_add"), reverse("demo:opportunity_edit", args=[deal.pk])):
        body = user_client.get(url).content.decode()
        assert "aria-describedby" in body, url
        assert _dangling_describedby(body) == [], url
