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


def test_a_wait_step_set_in_its_panel_then_a_run_from_a_record_through_the_work_guide(
        page, live_server, settings, shoot):
    """Past activation: a wait step added and set in its panel (its kind shows only its own fields),
    YAML typed and not applied kept across the canvas, then a run started on a demo employee, its
    interactive step finished by the assignee in the Work Guide, and the run going on to the wait."""
    from orchestration import engine, send_event
    from tests.browser import log_in
    from tests.factories import make_orchestration, make_user, stage, step
    from tests.workguide_helpers import employee

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.BATON_WORKGUIDE_POLL_SECONDS = 0  # no live refresh racing the test's own writes
    admin_log_in(page, live_server, settings, 1280, ignore_console=lambda text: "status of 40" in text)
    alice = make_user("alice")
    alice.set_password("pw")
    alice.save()
    make_flow("hire_review", type="screen", label="Review the hire", outputs=[var("decision")])
    make_flow("hire_archive", label="Archive the hire")
    make_orchestration("hire_notify", status="active", label="Tell a team", inputs=[{"name": "team", "required": True}],
                       path=[stage("only", step("store", "hire_archive"))])
    orch = make_orchestration("hire_flow", label="Hire", path=[
        stage("review", step("approve", "hire_review", type="interactive", label="Approve the hire",
                             assignee={"user": "alice"}), label="Review"),
        stage("archive", step("store", "hire_archive", label="Store the file"), label="Archive"),
    ])
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{orch.pk}/builder/")
    expect(page.locator("#bb-problem-count")).to_contain_text("no problems")

    # + Wait under Archive: the panel shows the wait's fields only, and of them those of its kind.
    archive = page.locator(".bb-stage", has_text="Archive")
    act(page, archive.get_by_role("button", name="+ Wait"))
    expect(panel(page)).to_contain_text("Wait step")
    expect(page.locator("[name=element-flow]")).to_have_count(0)
    expect(page.locator("[name=element-retries]")).to_have_count(0)
    expect(page.locator("[name=element-wait_for]")).to_be_visible()
    expect(page.locator("[name=element-wait_event]")).to_be_hidden()
    expect(page.locator(".bb-step", has_text="New wait step").locator(".bb-badge")).to_have_text("1")
    page.get_by_label("For an event (event)").check()
    expect(page.locator("[name=element-wait_for]")).to_be_hidden()
    expect(page.locator("[name=element-wait_event]")).to_be_visible()
    expect(page.locator("[name=element-wait_until]")).to_be_hidden()
    page.fill("[name=element-label]", "Wait for the signed contract")
    page.fill("[name=element-name]", "signed")
    page.fill("[name=element-wait_event]", "contract_signed")
    page.fill("[name=element-wait_timeout]", "soon")
    page.locator(".bb-panel .bb-apply").click()
    settle(page)
    expect(page.locator(".bb-message")).to_contain_text("hire_flow › archive › signed › wait_timeout: 'soon' is not")
    page.fill("[name=element-wait_timeout]", "3d")
    page.select_option("[name=element-on_timeout]", "error")
    apply(page)
    settle(page)
    card = page.locator(".bb-step", has_text="Wait for the signed contract")
    expect(card).to_contain_text("event contract_signed · gives up after 3d")
    expect(card.locator(".bb-badge")).to_have_count(0)
    shoot(page, "wait-panel")
    signed = Step.objects.get(stage__orchestration=orch, name="signed")
    assert (signed.type, signed.wait_event, signed.wait_timeout, signed.on_timeout, signed.wait_for) == (
        "wait", "contract_signed", "3d", "error", "")

    # A step's instance rules: the rule chosen shows its own value box (nothing applied here).
    act(page, page.locator(".bb-step", has_text="Store the file").locator(".bb-card-open"))
    page.fill("[name=element-for_each]", '["legal", "finance"]')
    expect(page.locator("[data-what=for_each] .bb-expr-check")).to_contain_text("compiles")
    page.select_option("[name=element-completion_rule]", "at_least")
    expect(page.locator("[name=element-completion_at_least]")).to_be_visible()
    expect(page.locator("[name=element-completion_percent]")).to_be_hidden()
    page.fill("[name=element-completion_at_least]", "2")
    page.locator("#bb-instances h3").scroll_into_view_if_needed()
    shoot(page, "instances-panel")
    page.select_option("[name=element-completion_rule]", "condition")
    expect(page.locator("[name=element-completion_at_least]")).to_be_hidden()
    expect(page.locator("[name=element-completion_condition]")).to_be_visible()

    # A sub-orchestration step: an active orchestration is picked, its declared inputs get a box each.
    act(page, page.locator(".bb-stage", has_text="Review").get_by_role("button", name="+ Sub-orchestration"))
    choose_flow(page, "hire_notify", field="element-child_orchestration")
    expect(page.locator("[name=element-inputs__team]")).to_be_visible()
    expect(page.locator("[data-field=inputs__team] .bb-help")).to_have_text("text · required")
    page.fill("[name=element-inputs__team]", '"legal"')
    expect(page.locator("[data-what='inputs.team'] .bb-expr-check")).to_contain_text("compiles")
    apply(page)
    sub = page.locator(".bb-step", has_text="New sub-orchestration step")
    expect(sub).to_contain_text("hire_notify")
    expect(sub.locator(".bb-badge")).to_have_count(0)
    shoot(page, "sub-orchestration-panel")
    act(page, sub.get_by_role("button", name="Delete step"))
    expect(page.locator(".bb-step", has_text="New sub-orchestration step")).to_have_count(0)

    # YAML typed and not applied survives a trip to the canvas.
    act(page, page.get_by_role("button", name="YAML"))
    box = page.locator("textarea.bb-yaml")
    typed = box.input_value().replace("label: Hire", "label: Hire (typed)")
    with page.expect_response(lambda r: "/builder/yaml/" in r.url and r.status == 204):
        box.fill(typed)
    act(page, card.locator(".bb-card-open"))
    expect(panel(page)).to_contain_text("Wait step")
    act(page, page.get_by_role("button", name="YAML"))
    expect(page.locator("textarea.bb-yaml")).to_have_value(typed)
    expect(page.locator("#bb-yaml-kept")).to_contain_text("Not applied yet")
    shoot(page, "yaml-kept")
    act(page, page.locator("#bb-yaml-kept").get_by_role("button", name="Discard it"))
    expect(page.locator("textarea.bb-yaml")).not_to_have_value(typed)

    act(page, page.locator("#bb-activate"))
    page.click("#bb-confirm-activate")
    expect(page.locator(".bb-readonly")).to_contain_text("read-only")
    assert page.baton_errors == []

    # A run on a demo employee; its assignee finishes the interactive step in the Work Guide.
    record = employee("Ada", "Lovelace")
    run = engine.start_run(Orchestration.objects.get(pk=orch.pk), record=record)
    page.context.clear_cookies()
    log_in(page, live_server, "alice")
    page.get_by_role("link", name="Approve the hire").first.click()
    work = page.locator(".wg-panel")
    work.locator("input[name$=decision]").fill("approve")
    work.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("is done")).to_be_visible()
    expect(page.locator("#item-path li.current")).to_contain_text("Archive")

    # The record's component shows the run gone on to Archive, waiting for the event; the event ends it.
    page.goto(f"{live_server.url}/demo/employees/{record.pk}/")
    component = page.locator(".wg-component")
    expect(component.locator("li.current")).to_contain_text("Archive")
    shoot(page, "run-on-record")
    run.refresh_from_db()
    assert run.status == "running"
    assert {s.step_name: s.status for s in run.step_runs.all()} == {
        "approve": "completed", "store": "completed", "signed": "in_progress"}  # waiting for the event
    send_event(run, "contract_signed", {"by": "ada"})
    run.refresh_from_db()
    assert run.status == "completed"
    page.reload()
    expect(page.get_by_text("No orchestration is running on this record.")).to_be_visible()
    assert page.baton_errors == []


def test_with_debug_on_a_refused_edit_stays_in_the_panel_and_the_next_apply_is_saved(
        page, live_server, settings, screenshot_dir):
    """DEBUG adds django-htmx's debug script, which replaced the whole page with any 400 answer: a
    refused edit left an unstyled fragment and the next Apply went out as a plain GET and was lost."""
    from tests.factories import make_orchestration, stage, step

    settings.DEBUG = True
    admin_log_in(page, live_server, settings, 1280, ignore_console=lambda text: "status of 40" in text)
    make_flow("deal_review", type="screen", label="Review the deal")
    orch = make_orchestration("deal_debug", label="Deal", path=[
        stage("review", step("approve", "deal_review", type="interactive", label="Approve", assignee={"user": "root"}))])
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{orch.pk}/builder/")
    expect(page.locator("script[data-debug=True]")).to_have_count(1)  # the debug script is on the page
    act(page, page.locator(".bb-step", has_text="Approve").locator(".bb-card-open"))
    page.fill("[name=element-due_in]", "soon")
    with page.expect_response(lambda r: "/builder/panel/" in r.url and r.status == 400):
        page.locator(".bb-panel .bb-apply").click()
    settle(page)
    expect(page.locator(".bb-message-error")).to_contain_text("'soon' is not a duration")
    expect(page.locator("#bb-root .bb-panel [name=element-due_in]")).to_have_value("soon")  # the builder, styled
    expect(page.locator(".breadcrumbs")).to_contain_text("Builder")
    page.screenshot(path=str(screenshot_dir / "builder-debug-refused-1280.png"), full_page=True)
    page.fill("[name=element-due_in]", "2d")
    with page.expect_request(lambda r: "/builder/panel/" in r.url) as sent:
        apply(page)
    assert sent.value.method == "POST"
    assert Step.objects.get(stage__orchestration=orch, name="approve").due_in == "2d"
    assert page.baton_errors == []


def wide_orchestration(status="draft", **extra):
    """Four stages and a decision: wider than the canvas at 1280 px, far wider at 390."""
    from tests.factories import make_orchestration, stage, step

    make_flow("wide_review", type="screen", label="Review", outputs=[var("decision")])
    make_flow("wide_store", label="Store")
    return make_orchestration("wide", status=status, label="Wide", **extra, path=[
        stage("review", step("approve", "wide_review", type="interactive", label="Approve", assignee={"user": "root"}),
              label="Review"),
        {"type": "decision", "name": "route", "outcomes": [
            {"name": "again", "condition": 'steps.approve.outputs.decision == "rework"', "goto": "review"}],
         "default": "prepare"},
        stage("prepare", step("prep", "wide_store", label="Prepare the file"), label="Prepare"),
        stage("archive", step("store", "wide_store", label="Store the file"), label="Archive"),
        stage("close", step("shut", "wide_store", label="Close the case"), label="Close"),
    ])


def box_of(page, selector):
    return page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,"
        " bottom: r.bottom, width: r.width, client: e.clientWidth, scroll: e.scrollWidth}; }")


def test_at_390_px_the_side_panel_goes_below_the_path_which_scrolls_sideways(page, live_server, settings, shoot):
    admin_log_in(page, live_server, settings, 390, ignore_console=lambda text: "status of 40" in text)
    orch = wide_orchestration()
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{orch.pk}/builder/")
    path, side = box_of(page, "#bb-canvas-scroll"), box_of(page, ".bb-side")
    assert path["width"] > 300  # was 8 px beside a 340 px side panel
    assert side["top"] >= path["bottom"]  # stacked, not covering the path
    assert path["scroll"] > path["client"]  # the path is wider: it scrolls inside its frame
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # not the page
    expect(page.locator("#bb-more-right")).to_be_visible()  # ...and says so
    card = page.locator(".bb-step", has_text="Approve").locator(".bb-card-open")
    act(page, card)  # a card can be clicked: its panel opens, below, in view
    expect(panel(page)).to_contain_text("Interactive step")
    expect(panel(page)).to_be_in_viewport()
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "narrow-390")
    # The last stage is reached by scrolling the path (the "more" button does it too).
    page.locator("#bb-more-right").click()
    page.locator("#bb-canvas-scroll").evaluate("e => e.scrollLeft = e.scrollWidth")
    expect(page.locator("#bb-more-right")).to_be_hidden()
    expect(page.locator("#bb-more-left")).to_be_visible()
    act(page, page.locator(".bb-step", has_text="Close the case").locator(".bb-card-open"))
    expect(page.locator("[name=element-name]")).to_have_value("shut")
    assert page.baton_errors == []


def test_at_1280_px_a_path_wider_than_the_canvas_says_there_is_more(page, live_server, settings, shoot, screenshot_dir):
    shots = screenshot_dir
    admin_log_in(page, live_server, settings, 1280)
    orch = wide_orchestration(status="active", description="A long line in the YAML: " + "wide words " * 40)
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{orch.pk}/builder/")
    path = box_of(page, "#bb-canvas-scroll")
    assert path["scroll"] > path["client"]
    expect(page.locator("#bb-canvas-frame")).to_have_class(re.compile(r"\bbb-cut-right\b"))
    expect(page.locator("#bb-more-right")).to_be_visible()
    # Its scrollbar always shows (headless Chromium hides scrollbars, so the style is what can be checked).
    assert page.locator("#bb-canvas-scroll").evaluate("e => getComputedStyle(e).overflowX") == "scroll"
    shoot(page, "wide-1280")
    page.locator("#bb-more-right").click()
    expect(page.locator("#bb-more-left")).to_be_visible()

    # The YAML box keeps each line whole: a long line scrolls sideways instead of wrapping.
    act(page, page.get_by_role("button", name="YAML"))
    yaml = page.locator("textarea.bb-yaml")
    expect(yaml).to_have_attribute("wrap", "off")
    assert yaml.evaluate("e => getComputedStyle(e).whiteSpace") == "pre"
    assert yaml.evaluate("e => e.scrollWidth > e.clientWidth")  # the long condition line scrolls, unwrapped
    page.screenshot(path=str(shots / "builder-yaml-nowrap-1280.png"))
    assert page.baton_errors == []


def test_at_390_px_the_diff_scrolls_inside_its_box_not_the_page(page, live_server, settings, screenshot_dir):
    admin_log_in(page, live_server, settings, 390)
    old = wide_orchestration(status="active")
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{old.pk}/builder/")
    page.click("#bb-new-version")
    expect(page.locator(".bb-version")).to_contain_text("v2")
    new = Orchestration.objects.get(api_name="wide", version=2)
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/{new.pk}/builder/diff/?other={old.pk}")
    expect(page.locator("#bb-diff")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    frame = box_of(page, "#bb-diff-scroll")
    assert frame["right"] <= 390 and frame["scroll"] > frame["client"]
    page.screenshot(path=str(screenshot_dir / "builder-diff-390.png"), full_page=True)
    assert page.baton_errors == []


def test_at_1280_px_the_orchestration_list_shows_the_builder_column(page, live_server, settings, screenshot_dir):
    from tests.factories import make_orchestration, stage, step

    admin_log_in(page, live_server, settings, 1280)
    make_flow("list_store", label="Store")
    for name in ("contract_signature", "deal_approval", "equipment_refresh"):
        make_orchestration(name, status="active", label=name.replace("_", " ").capitalize(),
                           start={"type": "record_triggered", "model": "demo.opportunity", "when": "updated"},
                           path=[stage("only", step("store", "list_store"))])
    page.goto(f"{live_server.url}/admin/orchestration/orchestration/")
    links = page.get_by_role("link", name="Open in Builder")
    expect(links).to_have_count(3)
    for box in links.evaluate_all("els => els.map(e => e.getBoundingClientRect().right)"):
        assert box <= 1280
    table, holder = box_of(page, "#result_list"), box_of(page, "#changelist .results")
    assert table["right"] <= holder["right"] + 1  # nothing cut off at the right
    page.screenshot(path=str(screenshot_dir / "admin-orchestration-list-1280.png"), full_page=True)
    assert page.baton_errors == []
