"""The Orchestration Builder's canvas and panels, and the flow designer's, pass axe-core with no serious or
critical violation (issue 17 point 9: "the builder's panels"). axe-core is vendored at tests/static/axe-core/.
Checked inside the builders' own root: the admin's header around them is Django's."""
import pytest
from playwright.sync_api import expect

from tests.browser import admin_log_in, serious_violations, settle
from tests.factories import make_flow, make_orchestration, stage, step, var

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args(browser_context_args):
    """The admin's Content-Security-Policy would refuse the injected axe script: bypass it."""
    return {**browser_context_args, "bypass_csp": True}


def check(page, screenshot_dir, name, root):
    settle(page)
    page.screenshot(path=str(screenshot_dir / f"a11y-{name}.png"), full_page=True)
    assert serious_violations(page, f"document.querySelector({root!r})") == [], name


def test_the_builders_canvas_and_every_kind_of_panel_pass_axe(page, live_server, settings, screenshot_dir):
    admin_log_in(page, live_server, settings, 1280, ignore_console=lambda text: "status of 40" in text)
    make_flow("a11y_review", type="screen", label="Review", outputs=[var("decision")])
    make_flow("a11y_store", label="Store", inputs=[var("who", required=True)])
    orch = make_orchestration("a11y", label="Accessible", path=[
        stage("review", step("approve", "a11y_review", type="interactive", label="Approve", assignee={"user": "root"}),
              step("store", "a11y_store", label="Store it", inputs={"who": '"x"'}), label="Review"),
        {"type": "decision", "name": "route", "outcomes": [
            {"name": "again", "condition": 'steps.approve.outputs.decision == "rework"', "goto": "review"}],
         "default": "close"},
        stage("close", step("shut", "a11y_store", label="Close", inputs={"who": "1"}), label="Close"),
    ])
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{orch.pk}/builder/")
    expect(page.locator("#bb-root")).to_be_visible()
    check(page, screenshot_dir, "builder-canvas", "#bb-root")
    for name, card in [("interactive-step", page.locator(".bb-step", has_text="Approve")),
                       ("background-step", page.locator(".bb-step", has_text="Store it")),
                       ("stage", page.locator(".bb-stage", has_text="Review").locator(".bb-card-open").first),
                       ("decision", page.locator(".bb-decision").locator(".bb-card-open").first),
                       ("start", page.locator("#el-start"))]:
        target = card.locator(".bb-card-open").first if name.endswith("step") else card
        target.click()
        settle(page)
        expect(page.locator(".bb-panel")).to_be_visible()
        check(page, screenshot_dir, f"builder-panel-{name}", "#bb-root")
    page.get_by_role("button", name="YAML").click()
    settle(page)
    check(page, screenshot_dir, "builder-yaml", "#bb-root")


def test_the_flow_designer_and_its_field_panel_pass_axe(page, live_server, settings, screenshot_dir):
    from flows.spec import flow_from_dict

    admin_log_in(page, live_server, settings, 1280, ignore_console=lambda text: "status of 40" in text)
    flow = flow_from_dict({"api_name": "a11y_form", "type": "screen", "label": "Form", "screens": [
        {"name": "first", "fields": [
            {"name": "kind", "type": "choice", "label": "Kind", "required": True,
             "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]},
            {"name": "note", "type": "text", "label": "Note", "visible_if": "kind == 'b'"}]}]})
    page.goto(f"{live_server.url}/admin/flows/flow/{flow.pk}/builder/")
    expect(page.locator("#flow-designer")).to_be_visible()
    check(page, screenshot_dir, "designer", "#flow-designer")
    page.locator(".fd-card", has_text="Note").locator(".fd-card-title").click()
    settle(page)
    expect(page.locator(".fd-panel").get_by_label("Visible if (expression)")).to_have_value("kind == 'b'")
    check(page, screenshot_dir, "designer-field-panel", "#flow-designer")
