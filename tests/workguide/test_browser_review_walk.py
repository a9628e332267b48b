"""Defects a review walk in Chromium found in the Work Guide, each checked in the browser.
Screenshots: test-output/screenshots/workguide-walk-*.png."""
import datetime

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from orchestration import waits
from tests.browser import log_in, settle
from tests.workguide_helpers import employee, guide_orchestration, item_of, people_who_sign_in, start
from workguide.models import Queue, WorkItem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def users(settings):
    return people_who_sign_in(settings)


def shot(page, screenshot_dir, name):
    page.screenshot(path=str(screenshot_dir / f"workguide-walk-{name}.png"), full_page=True)


def page_width(page):
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_paused_runs_item_page_shows_the_stages_ahead_as_upcoming(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    waits.pause_run(run.pk)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/workguide/items/{item_of(run).pk}/")
    path = page.locator("#item-path")
    expect(path).to_contain_text("This run is paused.")
    expect(path.locator("li.upcoming")).to_contain_text("Review")
    expect(path.locator("li.skipped")).to_have_count(0)
    shot(page, screenshot_dir, "paused-item")


def test_team_view_fits_a_phone(page, live_server, users, screenshot_dir):
    """The walk measured 513 px at 390: the table's width stretched the grid's 1fr column."""
    sales = Group.objects.create(name="sales_managers_of_the_north")
    Queue.objects.create(name="it_support_and_facilities")
    start(guide_orchestration(assignee={"group": sales.name}), record=employee())
    start(guide_orchestration(assignee={"queue": "it_support_and_facilities"}), record=employee("Grace", "Hopper"))
    page.set_viewport_size({"width": 390, "height": 900})
    log_in(page, live_server, "mona", "/workguide/team/")
    expect(page.locator(".wg-team-table")).to_contain_text("group:sales_managers_of_the_north")
    shot(page, screenshot_dir, "team-390")
    assert page_width(page) <= 390
    card = page.locator(".wg-team-grid > section.card").first.bounding_box()
    assert card["x"] + card["width"] <= 390


def test_after_finish_the_item_reads_as_after_a_reload(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(assignee={"group": "crew"}), record=employee())
    item = item_of(run)
    log_in(page, live_server, "gina")
    page.goto(f"{live_server.url}/workguide/items/{item.pk}/")
    facts = page.locator("section[aria-labelledby=about-title] dl.facts")
    expect(facts).to_contain_text("nobody yet")
    panel = page.locator(".wg-panel")
    panel.get_by_label("Laptop").select_option("linux")
    panel.get_by_label("Monitors").fill("2")
    panel.get_by_role("button", name="Next").click()
    panel.get_by_label("Needed by").fill("2030-01-15")
    panel.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("is done")).to_be_visible()
    expect(page.locator("#item-status")).to_have_text("Completed")
    expect(facts).to_contain_text("Finished")
    settle(page)
    shot(page, screenshot_dir, "finished")
    after_finish = " ".join(facts.inner_text().split())
    assert "Claimed by gina" in after_finish and "nobody yet" not in after_finish
    page.reload()
    shot(page, screenshot_dir, "finished-reload")
    assert " ".join(page.locator("section[aria-labelledby=about-title] dl.facts").inner_text().split()) == after_finish
    note = page.locator(".wg-blocked")
    expect(note).to_contain_text("You completed")
    # a success note (baton.css's --ok-bg), not the yellow warning (.notice, --warn-bg)
    colors = page.evaluate("""() => {
        const css = getComputedStyle(document.documentElement);
        const probe = document.createElement('div');
        document.body.append(probe);
        probe.style.background = css.getPropertyValue('--ok-bg');
        const ok = getComputedStyle(probe).backgroundColor;
        probe.remove();
        return [getComputedStyle(document.querySelector('.wg-blocked')).backgroundColor, ok];
    }""")
    assert colors[0] == colors[1]
    assert WorkItem.objects.get(pk=item.pk).claimed_by == users["gina"]


def test_a_failed_screen_check_marks_its_field(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/workguide/items/{item_of(run).pk}/")
    panel = page.locator(".wg-panel")
    panel.get_by_label("Laptop").select_option("linux")
    panel.get_by_label("Monitors").fill("7")
    panel.get_by_role("button", name="Next").click()
    expect(panel.locator(".errors")).to_contain_text("Pick between 0 and 3 monitors.")
    monitors = panel.get_by_label("Monitors")
    expect(monitors).to_have_attribute("aria-invalid", "true")
    expect(monitors).to_have_accessible_description("0 to 3 Pick between 0 and 3 monitors.")
    expect(panel.get_by_label("Laptop")).not_to_have_attribute("aria-invalid", "true")
    shot(page, screenshot_dir, "screen-check-error")


def test_my_work_rows_bulk_bar_and_saved_filters(page, live_server, users, screenshot_dir):
    page.set_viewport_size({"width": 390, "height": 900})
    log_in(page, live_server, "alice")
    expect(page.locator(".wg-empty")).to_be_visible()
    expect(page.locator("#wg-bulk")).to_be_hidden()  # nothing to tick
    shot(page, screenshot_dir, "my-work-empty-390")
    run = start(guide_orchestration(), record=employee())
    WorkItem.objects.filter(pk=item_of(run).pk).update(due_at=timezone.now() + datetime.timedelta(days=1))
    page.reload()
    expect(page.locator("#wg-bulk")).to_be_visible()
    box = page.locator("input.wg-pick").bounding_box()
    title = page.locator(".wg-row-title").bounding_box()
    assert box["x"] + box["width"] <= title["x"]  # beside the title, not above it
    assert title["y"] <= box["y"] + box["height"] / 2 <= title["y"] + title["height"]
    label = page.get_by_text("Save the filters above as")
    line = page.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)", label.element_handle())
    assert label.bounding_box()["height"] < 1.5 * line  # one line, not a word a line
    shot(page, screenshot_dir, "my-work-390")
    assert page_width(page) <= 390
