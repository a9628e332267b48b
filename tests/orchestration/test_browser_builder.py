"""The Orchestration Builder in Chromium: the example of issue 15 built on the canvas.

Three flows exist (a screen flow and two autolaunched ones); in the builder a
user makes two stages, an interactive and a background step, a decision with
a rework loop; sees a problem pinned to the step that causes it and fixes it;
dry-runs both outcomes; activates; makes a second version, compares the two
side by side and activates that one. No JSON is typed. Screenshots of each
state go to docs/images/builder-*.png (and test-output/screenshots/).
"""
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from orchestration.models import Orchestration, Stage, Step
from tests.browser import admin_log_in, settle
from tests.factories import make_flow, var

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
def builder_page(page, live_server, settings):
    # A refused change answers 400 (shown to the person in the panel): not a page error.
    return admin_log_in(page, live_server, settings, 1440, ignore_console=lambda text: "status of 40" in text)


@pytest.fixture
def shoot(screenshot_dir):
    def take(page, name):
        path = screenshot_dir / f"builder-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / path.name)
    return take


def panel(page):
    return page.locator(".bb-panel")


def act(page, locator):
    """Click ``locator`` and wait for the builder's answer (the workspace is replaced when it comes)."""
    with page.expect_response(lambda r: "/builder/" in r.url):
        locator.click()
    settle(page)  # the response is in; wait for htmx to swap and process it


def choose_flow(page, api_name, field="element-flow"):
    """Pick a flow; the panel comes back with that flow's inputs (a refresh request, nothing saved)."""
    with page.expect_response(lambda r: "/builder/panel/" in r.url and r.request.method == "POST"):
        page.select_option(f"[name={field}]", api_name)
    settle(page)
    expect(page.locator(f"[name={field}]")).to_have_value(api_name)


def apply(page):
    page.locator(".bb-panel .bb-apply").click()
    expect(page.locator(".bb-message")).to_contain_text("Saved")


def test_build_check_dry_run_diff_and_activate_the_issue_example(builder_page, live_server, shoot):
    page = builder_page
    make_flow("deal_review", type="screen", label="Review the deal", outputs=[var("decision")])
    make_flow("deal_notify", label="Tell the team", inputs=[var("team", required=True)], outputs=[var("sent", "boolean")])
    make_flow("deal_archive", label="Archive the deal")

    # A new orchestration from the admin, then "Open in Builder".
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/add/")
    page.fill("input[name=api_name]", "deal_flow")
    page.fill("input[name=label]", "Deal approval")
    page.click("input[name=_continue]")
    page.click("a.baton-open-builder")
    expect(page.locator("#bb-problem-count")).to_contain_text("1 problem")
    expect(page.locator("#bb-errors")).to_contain_text("the path is empty")

    # Stage 1 with an interactive and a background step.
    act(page, page.locator("text=+ Stage"))
    expect(panel(page)).to_contain_text("Stage")
    page.fill("[name=element-label]", "Review")
    page.fill("[name=element-name]", "review")
    apply(page)
    review = page.locator(".bb-stage", has_text="Review")
    act(page, review.locator("text=+ Interactive"))
    page.fill("[name=element-label]", "Approve the deal")
    page.fill("[name=element-name]", "approve")
    choose_flow(page, "deal_review")
    page.select_option("[name=element-assignee_type]", "user")
    page.fill("[name=element-assignee]", "ro")
    expect(page.locator("datalist#" + page.get_attribute("[name=element-assignee]", "list") + " option")).to_have_count(1)
    page.fill("[name=element-assignee]", "root")
    expect(page.locator("[data-field=element-retries], [data-field=retries]")).to_be_hidden()
    apply(page)
    act(page, review.locator("text=+ Background"))
    page.fill("[name=element-label]", "Tell the team")
    page.fill("[name=element-name]", "notify")
    choose_flow(page, "deal_notify")
    expect(page.locator("[name=element-inputs__team]")).to_be_visible()  # the flow's declared input
    expect(page.locator("[data-field=assignee]")).to_be_hidden()  # background: no assignee
    apply(page)

    # The required input left unmapped: pinned to the step, listed in Checks, Activate disabled.
    notify_card = page.locator(".bb-step", has_text="Tell the team")
    expect(notify_card.locator(".bb-badge")).to_have_text("1")
    expect(page.locator("#bb-errors")).to_contain_text("deal_flow › review › notify")
    expect(page.locator("#bb-errors")).to_contain_text("required input 'team'")
    expect(page.locator("#bb-activate")).to_be_disabled()
    shoot(page, "error-pinned")
    act(page, page.locator("#bb-errors a", has_text="required input 'team'"))
    box = page.locator("[name=element-inputs__team]")
    box.fill("inputs.nobody")
    expect(page.locator("[data-what='inputs.team'] .bb-expr-check")).to_contain_text("declares no input")
    box.fill('"sales"')
    expect(page.locator("[data-what='inputs.team'] .bb-expr-check")).to_contain_text("compiles")
    apply(page)
    expect(notify_card.locator(".bb-badge")).to_have_count(0)

    # Stage 2, then a decision dragged... moved between them with the keyboard buttons.
    act(page, page.locator("text=+ Stage"))
    page.fill("[name=element-label]", "Archive")
    page.fill("[name=element-name]", "archive")
    apply(page)
    archive = page.locator(".bb-stage", has_text="Archive")
    act(page, archive.locator("text=+ Background"))
    page.fill("[name=element-name]", "store")
    page.fill("[name=element-label]", "Store the deal")
    choose_flow(page, "deal_archive")
    apply(page)
    act(page, page.locator("text=+ Decision"))
    act(page, page.locator(".bb-decision").last.get_by_role("button", name=re.compile("left")))
    expect(page.locator(".bb-canvas > li")).to_have_count(5)
    order = page.locator(".bb-canvas > li.bb-element").evaluate_all("els => els.map(e => e.dataset.key.split('-')[0])")
    assert order == ["stage", "decision", "stage"]
    decision = page.locator(".bb-decision")
    act(page, decision.locator("text=+ Outcome"))
    page.fill("[name=element-label]", "Rework?")
    page.fill("[name=outcomes-0-name]", "rework")
    page.fill("[name=outcomes-0-condition]", "")
    page.locator(".bb-scope summary").click()  # the names in scope at the decision
    page.locator(".bb-insert", has_text="steps.approve.outputs.decision").click()
    page.locator("[name=outcomes-0-condition]").press("End")
    page.locator("[name=outcomes-0-condition]").type(' == "rework"')
    expect(page.locator("[data-what='outcomes.outcome_1.condition'] .bb-expr-check")).to_contain_text("compiles")
    page.select_option("[name=outcomes-0-goto]", "review")
    page.select_option("[name=element-default_goto]", "archive")
    apply(page)
    expect(decision.locator(".bb-outcome.bb-loop")).to_contain_text("↺ review")  # the rework loop
    expect(page.locator("#bb-problem-count")).to_contain_text("no problems")
    shoot(page, "canvas")

    # Dry run both outcomes.
    act(page, page.locator("text=▶ Dry run"))
    page.fill("[name=out__approve__decision]", "approve")
    page.click("#bb-run-dry")
    expect(page.locator("#bb-dry-result")).to_contain_text("review → Rework? → archive → end".replace("Rework?", "decision_1"))
    expect(page.locator(".bb-end.bb-sim-done")).to_have_count(1)
    shoot(page, "dry-run-approve")
    page.fill("[name=out__approve__decision]", "rework")
    page.click("#bb-run-dry")
    expect(page.locator("#bb-dry-result")).to_contain_text("review → decision_1 → review")
    expect(page.locator(".bb-outcome.bb-taken")).to_contain_text("rework")
    shoot(page, "dry-run-rework")
    page.fill("[name=out__approve__decision]", "rework | approve")  # one value per visit
    act(page, page.locator("#bb-run-dry"))
    expect(page.locator("#bb-dry-result")).to_contain_text(
        "review → decision_1 → review → decision_1 → archive → end")

    # Activate v1: impact first.
    act(page, page.locator("#bb-activate"))
    expect(panel(page)).to_contain_text("No version of deal_flow is active yet")
    page.click("#bb-confirm-activate")
    expect(page.locator(".bb-readonly")).to_contain_text("read-only")
    assert Orchestration.objects.get(api_name="deal_flow", version=1).status == "active"

    # A second version: drag the background step to the other stage, then compare and activate.
    page.click("#bb-new-version")
    expect(page.locator(".bb-version")).to_contain_text("v2")
    source = page.locator(".bb-step", has_text="Tell the team")
    target = page.locator(".bb-stage", has_text="Archive").locator(".bb-steps")
    with page.expect_response(lambda r: "/builder/change/" in r.url):
        source.drag_to(target)  # SortableJS sends op=move_step
    expect(page.locator(".bb-stage", has_text="Archive").locator(".bb-step", has_text="Tell the team")).to_have_count(1)
    v2 = Orchestration.objects.get(api_name="deal_flow", version=2)
    assert Step.objects.get(stage__orchestration=v2, name="notify").stage.name == "archive"
    act(page, page.locator("#bb-undo"))
    expect(page.locator(".bb-stage", has_text="Review").locator(".bb-step", has_text="Tell the team")).to_have_count(1)
    # The keyboard does the same as dragging: focus "Move down" on a card and press Enter.
    with page.expect_response(lambda r: "/builder/change/" in r.url):
        page.locator(".bb-step", has_text="Approve the deal").get_by_role("button", name="Move down").press("Enter")
    expect(page.locator(".bb-stage", has_text="Review").locator(".bb-step").first).to_contain_text("Tell the team")
    act(page, page.locator("#bb-undo"))
    expect(page.locator(".bb-stage", has_text="Review").locator(".bb-step").first).to_contain_text("Approve the deal")
    act(page, page.locator(".bb-step", has_text="Approve the deal").locator(".bb-card-open"))
    page.fill("[name=element-due_in]", "2d")
    apply(page)
    page.click("text=Side-by-side diff")
    expect(page.locator("#bb-diff")).to_contain_text("step approve")
    expect(page.locator("tr.bb-diff-changed", has_text="step approve")).to_contain_text("2d")
    shoot(page, "diff")
    page.go_back()
    act(page, page.locator("#bb-activate"))
    expect(panel(page)).to_contain_text("v1, now active, becomes obsolete")
    shoot(page, "activate")
    page.click("#bb-confirm-activate")
    expect(page.locator(".bb-readonly")).to_be_visible()
    assert Orchestration.objects.get(api_name="deal_flow", version=2).status == "active"
    assert Orchestration.objects.get(api_name="deal_flow", version=1).status == "obsolete"
    assert [s.name for s in Stage.objects.filter(orchestration=v2).order_by("position")] == [
        "review", "decision_1", "archive"]
    assert page.baton_errors == []
