"""The definition admin: pages render, lifecycle actions, frozen versions, import and export."""
import importlib.util

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows.models import Flow, FlowElement, FlowVariable, Screen, ScreenField
from orchestration.models import DecisionOutcome, Orchestration, Stage, Step

pytestmark = pytest.mark.django_db

HAS_DEFINITION_FILES = importlib.util.find_spec("orchestration.definition_files") is not None
needs_definition_files = pytest.mark.skipif(
    not HAS_DEFINITION_FILES, reason="orchestration.definition_files (import/export) is not written yet"
)


def make_auto_flow(api_name="adm_total", status="draft"):
    flow = Flow.objects.create(api_name=api_name, type="autolaunched", label="Total",
                               version=Flow.next_version_number(api_name))
    FlowVariable.objects.create(flow=flow, direction="input", name="amount", type="number", required=True)
    FlowVariable.objects.create(flow=flow, direction="output", name="total", type="number")
    FlowElement.objects.create(flow=flow, position=0, type="assign", name="double", config={"set": {"total": "amount * 2.0"}})
    if status != "draft":
        Flow.objects.filter(pk=flow.pk).update(status=status)
        flow.refresh_from_db()
    return flow


def make_screen_flow(api_name="adm_screen"):
    flow = Flow.objects.create(api_name=api_name, type="screen", version=Flow.next_version_number(api_name))
    screen = Screen.objects.create(flow=flow, name="first", label="First")
    ScreenField.objects.create(screen=screen, name="approved", type="boolean", label="Approved")
    FlowVariable.objects.create(flow=flow, direction="output", name="approved", type="boolean")
    return flow


def make_broken_orchestration(api_name="adm_broken"):
    orch = Orchestration.objects.create(api_name=api_name, label="Broken",
                                        version=Orchestration.next_version_number(api_name))
    stage = Stage.objects.create(orchestration=orch, name="one", position=0)
    Step.objects.create(stage=stage, name="calc", type="background", flow="no_such_flow", inputs={"x": "1 +"})
    decision = Stage.objects.create(orchestration=orch, name="which", kind="decision", position=1, default_goto="end")
    DecisionOutcome.objects.create(stage=decision, name="again", condition="true", goto="one")
    return orch


def messages_of(response):
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def run_action(client, model, action, objects):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return client.post(url, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True)


# --- pages ----------------------------------------------------------------------

def test_definition_pages_render(admin_client):
    flow = make_screen_flow()
    auto = make_auto_flow()
    orch = make_broken_orchestration()
    urls = [
        "/admin/", "/admin/flows/flow/", "/admin/flows/flow/add/",
        f"/admin/flows/flow/{flow.pk}/change/", f"/admin/flows/flow/{auto.pk}/change/",
        "/admin/flows/flow/?status__exact=draft", "/admin/flows/flow/?q=adm",
        "/admin/orchestration/orchestration/", "/admin/orchestration/orchestration/add/",
        f"/admin/orchestration/orchestration/{orch.pk}/change/",
        "/admin/orchestration/orchestration/?api_name=adm_broken",
        "/admin/orchestration/orchestrationrun/", "/admin/workguide/workitem/", "/admin/workguide/queue/",
        "/admin/workguide/queue/add/", "/admin/demo/employee/", "/admin/demo/opportunity/",
        "/admin/flows/flow/import/", "/admin/orchestration/orchestration/import/",
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url


def test_change_page_shows_nested_parts_and_lifecycle_buttons(admin_client):
    orch = make_broken_orchestration()
    response = admin_client.get(f"/admin/orchestration/orchestration/{orch.pk}/change/")
    body = response.content.decode()
    assert 'name="stages-0-name"' in body and 'value="one"' in body
    assert "stages-0-steps-0-flow" in body  # steps nested in their stage
    assert "stages-1-outcomes-0-goto" in body  # outcomes nested in their decision
    for label in ("Validate", "Activate", "New version"):
        assert f">{label}</button>" in body


def test_add_flow_through_the_admin_creates_a_draft(admin_client):
    data = {
        "api_name": "adm_new", "label": "New", "description": "", "type": "autolaunched", "implementation": "",
        "_save": "Save",
    }
    for prefix in ("variables", "screens", "elements"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    response = admin_client.post("/admin/flows/flow/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    flow = Flow.objects.get(api_name="adm_new")
    assert (flow.status, flow.version) == ("draft", 1)


# --- actions ----------------------------------------------------------------------

def test_validate_action_reports_each_problem(admin_client):
    orch = make_broken_orchestration()
    response = run_action(admin_client, Orchestration, "validate_selected", [orch])
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) >= 2, errors  # one message per problem
    assert any("no_such_flow" in e for e in errors)
    assert any("inputs.x" in e for e in errors)
    assert all(e.startswith(str(orch)) for e in errors)


def test_validate_action_on_a_sound_flow_says_so(admin_client):
    flow = make_auto_flow()
    response = run_action(admin_client, Flow, "validate_selected", [flow])
    assert any(level == "success" and "no problems" in text for level, text in messages_of(response))


def test_activate_action_activates(admin_client):
    flow = make_auto_flow()
    response = run_action(admin_client, Flow, "activate_selected", [flow])
    flow.refresh_from_db()
    assert flow.status == "active", messages_of(response)
    assert flow.activated_at is not None


def test_activate_action_refuses_with_every_problem(admin_client):
    orch = make_broken_orchestration()
    response = run_action(admin_client, Orchestration, "activate_selected", [orch])
    orch.refresh_from_db()
    assert orch.status == "draft"
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) >= 2
    assert any("not activated" in text for _level, text in messages_of(response))


def test_activating_a_second_version_makes_the_first_obsolete(admin_client):
    first = make_auto_flow()
    run_action(admin_client, Flow, "activate_selected", [first])
    second = make_auto_flow()
    run_action(admin_client, Flow, "activate_selected", [second])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("obsolete", "active")


def test_new_version_action_creates_a_draft_copy(admin_client):
    flow = make_auto_flow()
    run_action(admin_client, Flow, "activate_selected", [flow])
    response = run_action(admin_client, Flow, "new_version_of_selected", [flow])
    draft = Flow.objects.get(api_name=flow.api_name, version=flow.version + 1)
    assert draft.status == "draft"
    assert [e.config for e in draft.elements.all()] == [e.config for e in flow.elements.all()]
    assert any(level == "success" for level, _ in messages_of(response))


def test_lifecycle_buttons_on_the_change_page(admin_client):
    flow = make_auto_flow()
    url = reverse("admin:flows_flow_lifecycle", args=[flow.pk, "activate"])
    assert admin_client.get(url).status_code == 403  # POST only
    response = admin_client.post(url)
    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.status == "active"
    response = admin_client.post(reverse("admin:flows_flow_lifecycle", args=[flow.pk, "new_version"]))
    draft = Flow.objects.get(api_name=flow.api_name, status="draft")
    assert response["Location"] == reverse("admin:flows_flow_change", args=[draft.pk])


def test_lifecycle_actions_need_staff(client, django_user_model):
    flow = make_auto_flow()
    user = django_user_model.objects.create_user("plain", password="pw-plain-123")
    client.force_login(user)
    response = client.post(reverse("admin:flows_flow_lifecycle", args=[flow.pk, "activate"]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    flow.refresh_from_db()
    assert flow.status == "draft"


# --- frozen versions ----------------------------------------------------------------

def test_frozen_version_is_read_only(admin_client):
    flow = make_screen_flow()
    Flow.objects.filter(pk=flow.pk).update(status="active")
    url = f"/admin/flows/flow/{flow.pk}/change/"
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="_save"' not in body
    assert 'name="label"' not in body  # fields shown as text, not inputs
    assert 'name="screens-0-name"' not in body
    assert 'name="screens-0-fields-0-label"' not in body  # nested parts too
    assert "cannot be changed" in body
    assert response.context["has_change_permission"] is False

    response = admin_client.post(url, {"label": "Changed", "api_name": flow.api_name, "type": "screen"})
    assert response.status_code == 403
    flow.refresh_from_db()
    assert flow.label == ""


def test_frozen_parts_have_no_change_permission(rf, admin_user):
    from django.contrib.admin.sites import site

    flow = make_screen_flow()
    Flow.objects.filter(pk=flow.pk).update(status="obsolete")
    flow.refresh_from_db()
    request = rf.get("/")
    request.user = admin_user
    model_admin = site._registry[Flow]
    assert model_admin.has_change_permission(request, flow) is False
    for inline in model_admin.get_inline_instances(request, flow):
        assert not inline.has_change_permission(request, flow)
        assert not inline.has_add_permission(request, flow)
        assert not inline.has_delete_permission(request, flow)
    screen_inline = next(i for i in model_admin.get_inline_instances(request, flow) if i.model is Screen)
    field_inline = screen_inline.get_inline_instances(request, flow)[0]
    assert not field_inline.has_change_permission(request, flow.screens.first())


def test_active_version_cannot_be_deleted_from_the_admin(admin_client):
    flow = make_auto_flow(status="active")
    response = admin_client.post(f"/admin/flows/flow/{flow.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Flow.objects.filter(pk=flow.pk).exists()
    # and the bulk delete action, which would bypass the model's rule, is not offered
    response = admin_client.get("/admin/flows/flow/")
    assert "delete_selected" not in response.content.decode()


# --- import and export ------------------------------------------------------------

BROKEN_DOCUMENT = """
flows:
  - api_name: adm_imp_collect
    type: screen
    outputs: [{name: colour, type: text}]
    screens:
      - name: one
        fields: [{name: colour, type: text, label: Colour}]
orchestrations:
  - api_name: adm_imp_broken
    start: {type: autolaunched}
    path:
      - name: one
        steps:
          - {name: collect, type: interactive, flow: adm_imp_collect, assignee: {user: nobody_here}}
      - name: two
        steps:
          - {name: use, type: background, flow: adm_imp_missing, inputs: {x: 'steps.collect.outputs.flavour'}}
"""


def _import(client, text, activate=False, model="orchestration/orchestration"):
    upload = SimpleUploadedFile("defs.yaml", text.encode(), content_type="application/yaml")
    data = {"file": upload}
    if activate:
        data["activate"] = "on"
    return client.post(f"/admin/{model}/import/", data)


def test_import_view_rejects_a_non_yaml_upload_without_storing(admin_client):
    if not HAS_DEFINITION_FILES:
        pytest.skip("orchestration.definition_files (import/export) is not written yet")
    before = (Flow.objects.count(), Orchestration.objects.count())
    response = _import(admin_client, "flows: [\n  - {api_name: x\n")
    assert response.status_code == 400
    assert response.context["problems"]
    assert (Flow.objects.count(), Orchestration.objects.count()) == before


@needs_definition_files
def test_import_view_refuses_a_bad_file_listing_every_problem_and_storing_nothing(admin_client):
    before = (Flow.objects.count(), Orchestration.objects.count(), Stage.objects.count())
    response = _import(admin_client, BROKEN_DOCUMENT, activate=True)
    assert response.status_code == 400
    problems = response.context["problems"]
    text = "\n".join(problems)
    assert len(problems) >= 2, problems
    assert "flavour" in text or "adm_imp_missing" in text
    assert "refused" in response.content.decode()
    assert (Flow.objects.count(), Orchestration.objects.count(), Stage.objects.count()) == before


@needs_definition_files
def test_import_then_export_round_trip(admin_client):
    document = """
flows:
  - api_name: adm_imp_total
    type: autolaunched
    inputs: [{name: amount, type: number, required: true}]
    outputs: [{name: total, type: number}]
    elements:
      - {type: assign, name: double, set: {total: 'amount * 2.0'}}
orchestrations:
  - api_name: adm_imp_good
    start: {type: autolaunched}
    path:
      - name: one
        steps:
          - {name: calc, type: background, flow: adm_imp_total, inputs: {amount: '2.0'}}
"""
    response = _import(admin_client, document, activate=True)
    assert response.status_code == 302, response.context and response.context.get("problems")
    orch = Orchestration.objects.get(api_name="adm_imp_good")
    assert orch.status == "active"
    response = run_action(admin_client, Orchestration, "export_selected", [orch])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert "adm_imp_good" in response.content.decode()


def test_import_view_rejects_a_file_that_is_not_utf8(admin_client):
    before = Flow.objects.count()
    upload = SimpleUploadedFile("defs.yaml", b"\xff\xfe\x00bad", content_type="application/yaml")
    response = admin_client.post("/admin/flows/flow/import/", {"file": upload})
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    assert Flow.objects.count() == before


def test_import_page_needs_add_permission(client, django_user_model):
    user = django_user_model.objects.create_user("staffer", password="pw-staff-123", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/flows/flow/import/").status_code == 403
