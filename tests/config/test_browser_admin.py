"""The definition admin in Chromium: definitions with their parts added in one save,
only the fields of an element's kind shown, flows picked by type, a variable row
that fits the page, lifecycle buttons styled as admin tools.

Screenshots go to test-output/screenshots/admin-*.png."""
import re

import pytest
from playwright.sync_api import expect

from tests.browser import admin_log_in
from flows.models import Flow, FlowVariable, Screen, ScreenField
from orchestration.models import DecisionOutcome, Orchestration, Step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_page(page, live_server, settings):
    return admin_log_in(page, live_server, settings, 1280)


def active_flow(api_name, type_, label=""):
    flow = Flow.objects.create(api_name=api_name, type=type_, label=label, version=1)
    if type_ == "screen":
        screen = Screen.objects.create(flow=flow, name="one")
        ScreenField.objects.create(screen=screen, name="decision", type="text")
    Flow.objects.filter(pk=flow.pk).update(status="active")
    return flow


def add(page, model):
    """Click django-nested-admin's visible "Add another" for ``model`` (the last one on the page)."""
    page.locator(f"a.djn-add-handler.djn-model-{model}:visible").last.click()


def visible(page, *names):
    for name in names:
        expect(page.locator(f"[name='{name}']")).to_be_visible()


def hidden(page, *names):
    for name in names:
        expect(page.locator(f"[name='{name}']")).not_to_be_visible()


def test_a_screen_flow_with_screens_and_fields_added_in_one_go(admin_page, live_server, screenshot_dir):
    page = admin_page
    page.goto(f"{live_server.url}/admin/flows/flow/add/")
    page.fill("input[name=api_name]", "pw_collect")
    page.fill("input[name=label]", "Collect")
    page.select_option("select[name=type]", "autolaunched")
    expect(page.locator("a.djn-add-handler.djn-model-flows-flowelement:visible")).to_have_count(1)
    expect(page.locator("a.djn-add-handler.djn-model-flows-screen:visible")).to_have_count(0)
    page.select_option("select[name=type]", "screen")  # screens, not elements, for a screen flow
    expect(page.locator("a.djn-add-handler.djn-model-flows-flowelement:visible")).to_have_count(0)

    add(page, "flows-flowvariable")
    expect(page.locator("input[name='variables-0-default']")).to_have_value("")  # not "null"
    page.fill("input[name='variables-0-name']", "colour")
    page.select_option("select[name='variables-0-direction']", "output")
    expect(page.locator("input[name='variables-0-default']")).not_to_be_visible()  # inputs only
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    add(page, "flows-screen")
    page.fill("input[name='screens-0-name']", "first")
    add(page, "flows-screenfield")
    page.fill("input[name='screens-0-fields-0-name']", "colour")
    page.select_option("select[name='screens-0-fields-0-type']", "choice")
    expect(page.locator("[name='screens-0-fields-0-choices']")).to_be_visible()
    expect(page.locator("[name='screens-0-fields-0-text']")).not_to_be_visible()
    page.fill("[name='screens-0-fields-0-choices']", '["red", "blue"]')
    add(page, "flows-screenfield")
    page.fill("input[name='screens-0-fields-1-name']", "intro")
    page.select_option("select[name='screens-0-fields-1-type']", "display")
    expect(page.locator("[name='screens-0-fields-1-text']")).to_be_visible()
    expect(page.locator("[name='screens-0-fields-1-required']")).not_to_be_visible()
    expect(page.locator("[name='screens-0-fields-1-choices']")).not_to_be_visible()
    page.fill("[name='screens-0-fields-1-text']", "Pick a colour")
    page.screenshot(path=str(screenshot_dir / "admin-flow-add-nested.png"), full_page=True)

    page.locator("input[name=_save]").first.click()
    expect(page).to_have_url(re.compile(r"/admin/flows/flow/$"))
    assert not page.baton_errors
    flow = Flow.objects.get(api_name="pw_collect")
    assert [(f.name, f.type, f.choices, f.text) for f in ScreenField.objects.filter(screen__flow=flow)] == [
        ("colour", "choice", ["red", "blue"], ""), ("intro", "display", [], "Pick a colour")]
    assert [(v.direction, v.name, v.default) for v in flow.variables.all()] == [("output", "colour", None)]


def test_an_orchestration_with_stages_steps_and_a_decision_added_in_one_go(admin_page, live_server, screenshot_dir):
    page = admin_page
    active_flow("pw_review", "screen", "Review")
    active_flow("pw_book", "autolaunched", "Book")
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/add/")
    page.fill("input[name=api_name]", "pw_approve")
    page.select_option("select[name=start_type]", "autolaunched")
    hidden(page, "start_model", "start_when", "start_condition")
    page.select_option("select[name=start_type]", "record_triggered")
    visible(page, "start_model", "start_when", "start_condition")
    page.select_option("select[name=start_type]", "autolaunched")

    add(page, "orchestration-stage")
    page.fill("input[name='stages-0-name']", "review")
    visible(page, "stages-0-next", "stages-0-exit_type")
    hidden(page, "stages-0-default_goto", "stages-0-exit_condition", "stages-0-exit_flow")
    expect(page.locator("a.djn-add-handler.djn-model-orchestration-decisionoutcome:visible")).to_have_count(0)
    add(page, "orchestration-step")
    page.fill("input[name='stages-0-steps-0-name']", "decide")
    page.select_option("select[name='stages-0-steps-0-type']", "interactive")
    visible(page, "stages-0-steps-0-assignee", "stages-0-steps-0-due_in")
    hidden(page, "stages-0-steps-0-retries", "stages-0-steps-0-timeout")
    flow_select = page.locator("select[name='stages-0-steps-0-flow']")
    offered = flow_select.locator("option:not([disabled])").all_inner_texts()
    assert any(t.startswith("pw_review — Review (v1 active)") for t in offered), offered
    assert not any(t.startswith("pw_book") for t in offered), offered  # a screen flow for an interactive step
    flow_select.select_option("pw_review")
    page.select_option("select[name='stages-0-steps-0-assignee_type']", "user")
    page.fill("input[name='stages-0-steps-0-assignee']", "root")
    add(page, "orchestration-step")
    page.fill("input[name='stages-0-steps-1-name']", "score")
    page.select_option("select[name='stages-0-steps-1-type']", "background")
    visible(page, "stages-0-steps-1-retries")
    hidden(page, "stages-0-steps-1-assignee", "stages-0-steps-1-record")
    page.select_option("select[name='stages-0-steps-1-flow']", "pw_book")
    page.select_option("select[name='stages-0-steps-1-entry_type']", "condition")
    visible(page, "stages-0-steps-1-entry_condition")
    hidden(page, "stages-0-steps-1-entry_flow", "stages-0-steps-1-entry_after")
    page.fill("[name='stages-0-steps-1-entry_condition']", "true")

    add(page, "orchestration-stage")
    page.fill("input[name='stages-1-name']", "approved")
    page.fill("input[name='stages-1-position']", "1")
    page.select_option("select[name='stages-1-kind']", "decision")
    visible(page, "stages-1-default_goto")
    hidden(page, "stages-1-next", "stages-1-exit_type")
    expect(page.locator("#stages-1-steps-group")).not_to_be_visible()
    page.fill("input[name='stages-1-default_goto']", "end")
    add(page, "orchestration-decisionoutcome")
    page.fill("input[name='stages-1-outcomes-0-name']", "yes")
    page.fill("[name='stages-1-outcomes-0-condition']", 'steps.decide.outputs.decision == "yes"')
    page.fill("input[name='stages-1-outcomes-0-goto']", "review")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.screenshot(path=str(screenshot_dir / "admin-orchestration-add-nested.png"), full_page=True)

    page.locator("input[name=_save]").first.click()
    expect(page).to_have_url(re.compile(r"/admin/orchestration/orchestration/$"))
    assert not page.baton_errors
    orch = Orchestration.objects.get(api_name="pw_approve")
    assert [(s.name, s.kind) for s in orch.stages.all()] == [("review", "stage"), ("approved", "decision")]
    steps = {s.name: s for s in Step.objects.filter(stage__orchestration=orch)}
    assert (steps["decide"].flow, steps["decide"].assignee) == ("pw_review", "root")
    assert (steps["score"].flow, steps["score"].entry_condition, steps["score"].assignee) == ("pw_book", "true", "")
    assert list(DecisionOutcome.objects.filter(stage__orchestration=orch).values_list("name", "goto")) == [
        ("yes", "review")]


def test_lifecycle_buttons_look_like_the_admin_object_tools(admin_page, live_server, screenshot_dir):
    page = admin_page
    flow = Flow.objects.create(api_name="pw_shown", type="autolaunched", version=1)  # a draft: all three buttons
    FlowVariable.objects.create(flow=flow, direction="input", name="amount", type="number")
    page.goto(f"{live_server.url}/admin/flows/flow/{flow.pk}/change/")
    history = page.locator(".object-tools a.historylink")

    def look(locator):
        return locator.evaluate("""e => { const s = getComputedStyle(e);
            return [s.backgroundColor, s.color, s.borderRadius, s.textTransform, s.fontSize, s.borderTopWidth]; }""")

    for label in ("Validate", "New version"):
        button = page.get_by_role("button", name=label)
        expect(button).to_be_visible()
        assert look(button) == look(history), label
    activate = look(page.get_by_role("button", name="Activate"))  # the admin's default (save) colour
    assert activate[1:] == look(history)[1:] and activate[0] != look(history)[0]
    page.locator(".object-tools").screenshot(path=str(screenshot_dir / "admin-lifecycle-buttons.png"))
