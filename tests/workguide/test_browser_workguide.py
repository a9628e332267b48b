"""The Work Guide in Chromium (Playwright) against live_server. Screenshots go to test-output/screenshots/."""
import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser import log_in
from tests.pg_locks import wait_until
from workguide.models import WorkItem
from tests.workguide_helpers import employee, guide_orchestration, item_of, people_who_sign_in, start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def users(settings):
    return people_who_sign_in(settings)



def shot(page, screenshot_dir, name):
    page.screenshot(path=str(screenshot_dir / f"workguide-{name}.png"), full_page=True)


def run_two_screen_flow(page, panel, screenshot_dir, prefix):
    """Screen one with a validation error, Next, Back (values kept), Next, Finish."""
    expect(panel.get_by_text("Screen 1 of 2")).to_be_visible()
    panel.get_by_label("Laptop").select_option("linux")
    panel.get_by_label("Monitors").fill("7")
    panel.get_by_role("button", name="Next").click()
    expect(panel.get_by_text("Pick between 0 and 3 monitors.")).to_be_visible()
    shot(page, screenshot_dir, f"{prefix}-2-inline-error")
    panel.get_by_label("Monitors").fill("2")
    panel.get_by_role("button", name="Next").click()
    expect(panel.get_by_text("Screen 2 of 2")).to_be_visible()
    panel.get_by_label("Needed by").fill("2030-01-15")
    panel.get_by_label("Notes").fill("Leave it at the desk")
    panel.get_by_role("button", name="Back").click()
    expect(panel.get_by_text("Screen 1 of 2")).to_be_visible()
    expect(panel.get_by_label("Monitors")).to_have_value("2")
    expect(panel.get_by_label("Laptop")).to_have_value("linux")
    panel.get_by_role("button", name="Next").click()
    expect(panel.get_by_label("Notes")).to_have_value("Leave it at the desk")
    expect(panel.get_by_label("Needed by")).to_have_value("2030-01-15")
    panel.get_by_label("Mouse").check() if panel.get_by_label("Mouse").count() else panel.get_by_label("mouse").check()
    shot(page, screenshot_dir, f"{prefix}-3-second-screen")
    panel.get_by_role("button", name="Finish").click()


def test_my_work_item_page_flow_and_path(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    start(guide_orchestration(assignee={"group": "crew"}), record=employee("Grace", "Hopper"))
    users["alice"].groups.add(users["gina"].groups.get(name="crew"))
    log_in(page, live_server, "alice")
    expect(page).to_have_url(re.compile(r"/workguide/$"))
    expect(page.get_by_role("heading", name="My Work")).to_be_visible()
    expect(page.locator(".wg-row")).to_have_count(2)
    page.get_by_label("Search").fill("hopper")
    expect(page.locator(".wg-row")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=hopper"))
    page.get_by_label("Search").fill("")
    expect(page.locator(".wg-row")).to_have_count(2)
    shot(page, screenshot_dir, "1-my-work")

    page.get_by_role("link", name="Enter the details").last.click()
    expect(page).to_have_url(re.compile(rf"/workguide/items/{item_of(run).pk}/$"))
    path = page.locator("#item-path")
    expect(path.locator("li.current")).to_contain_text("Collect details")
    shot(page, screenshot_dir, "page-1-item")
    panel = page.locator(".wg-panel")
    run_two_screen_flow(page, panel, screenshot_dir, "page")
    expect(page.get_by_text("is done")).to_be_visible()
    expect(path.locator("li.done")).to_contain_text("Collect details")
    expect(page.locator("#item-path li.current")).to_contain_text("Review")
    shot(page, screenshot_dir, "page-4-done")
    assert item_of(run).status == "completed"

    # the next item of the run, linked from the done panel, is one click away
    page.get_by_role("link", name="Review the details").click()
    expect(page.locator(".wg-panel").get_by_label("OK")).to_be_visible()


def test_leaving_and_coming_back_resumes(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    log_in(page, live_server, "alice", f"/workguide/items/{item.pk}/")
    page.get_by_label("Laptop").select_option("mac")  # a required choice starts blank (issue 17 #1)
    page.get_by_label("Monitors").fill("3")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Notes").fill("half done")
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_text("Screen 1 of 2")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    page.goto(f"{live_server.url}/workguide/")
    page.goto(f"{live_server.url}/workguide/items/{item.pk}/")
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    expect(page.get_by_label("Notes")).to_have_value("half done")


def test_record_page_component(page, live_server, users, screenshot_dir):
    record = employee()
    run = start(guide_orchestration(), record=record)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/demo/employees/{record.pk}/")
    component = page.locator(".wg-component")
    expect(component.locator("li.current")).to_contain_text("Collect details")
    shot(page, screenshot_dir, "component-1-record-page")
    run_two_screen_flow(page, component.locator(".wg-panel"), screenshot_dir, "component")
    expect(component.get_by_text("is done")).to_be_visible()
    expect(component.locator("li.done")).to_contain_text("Collect details")
    expect(component.locator("li.current")).to_contain_text("Review")
    expect(component.get_by_role("heading", name="Review the details")).to_be_visible()
    shot(page, screenshot_dir, "component-4-done")
    assert item_of(run).status == "completed"
    # the next item is completable in place too
    component.locator(".wg-panel").get_by_label("OK").check()
    component.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("No orchestration is running on this record.")).to_be_visible()
    shot(page, screenshot_dir, "component-5-run-finished")


def test_email_link_goes_through_login_to_the_item(page, live_server, users, settings, screenshot_dir,
                                                   django_capture_on_commit_callbacks):
    from django.core import mail

    settings.BATON_BASE_URL = live_server.url
    run = start(guide_orchestration(), record=employee())
    from workguide.notifications import notify_new_work_item

    notify_new_work_item(item_of(run).pk)
    link = re.search(r"https?://\S+/workguide/items/\d+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/workguide/items/\d+/"))
    shot(page, screenshot_dir, "email-1-login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(link)
    expect(page.get_by_role("heading", name=re.compile("Enter the details"))).to_be_visible()
    shot(page, screenshot_dir, "email-2-item")


def test_second_user_is_blocked_from_a_claimed_item(page, browser, live_server, users, screenshot_dir):
    run = start(guide_orchestration(assignee={"queue": "desk"}), record=employee())
    item = item_of(run)
    log_in(page, live_server, "quinn", f"/workguide/items/{item.pk}/")
    page.get_by_role("button", name="Claim").click()
    expect(page.get_by_text("You claimed")).to_be_visible()
    shot(page, screenshot_dir, "claim-1-claimed")

    other = browser.new_context()
    second = other.new_page()
    log_in(second, live_server, "quentin", f"/workguide/items/{item.pk}/")
    expect(second.get_by_text("is claimed by quinn")).to_be_visible()
    expect(second.get_by_role("button", name="Next")).to_have_count(0)
    shot(second, screenshot_dir, "claim-2-blocked")
    other.close()


def test_phone_width(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, live_server, "alice")
    shot(page, screenshot_dir, "phone-1-my-work")
    page.goto(f"{live_server.url}/workguide/items/{item_of(run).pk}/")
    page.keyboard.press("Tab")
    shot(page, screenshot_dir, "phone-2-item")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375


def test_two_people_finishing_the_same_item(page, browser, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    other = browser.new_context()
    manager = other.new_page()
    log_in(page, live_server, "alice", f"/workguide/items/{item.pk}/")
    page.get_by_label("Laptop").select_option("mac")  # a required choice starts blank (issue 17 #1)
    page.get_by_role("button", name="Next").click()
    log_in(manager, live_server, "mona", f"/workguide/items/{item.pk}/")  # progress is kept per item
    expect(manager.get_by_text("Screen 2 of 2")).to_be_visible()
    for tab in (page, manager):
        tab.get_by_label("Needed by").fill("2030-03-01")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("is done")).to_be_visible()
    manager.get_by_role("button", name="Finish").click()
    expect(manager.get_by_text("was already completed by alice")).to_be_visible()
    shot(manager, screenshot_dir, "finish-twice-second")
    other.close()


def test_values_typed_but_not_submitted_survive_leaving_the_page(page, live_server, users, screenshot_dir):
    """Issue 17 point 5: a draft is saved as the fields change, on a screen without visible_if too."""
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    log_in(page, live_server, "alice", f"/workguide/items/{item.pk}/")
    page.get_by_label("Laptop").select_option("mac")
    page.get_by_label("Monitors").fill("3")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    page.get_by_label("Notes").fill("typed, never submitted")
    page.get_by_label("Needed by").fill("2030-02-03")

    def draft_stored():
        # The draft request goes out 400 ms after typing stops; wait for what it stored, not for one response.
        stored = json.dumps(WorkItem.objects.get(pk=item.pk).progress)
        return "typed, never submitted" in stored and "2030-02-03" in stored

    assert wait_until(draft_stored, timeout=15), WorkItem.objects.get(pk=item.pk).progress
    page.get_by_role("link", name="My Work").first.click()
    expect(page.get_by_role("heading", name="My Work")).to_be_visible()
    page.go_back()
    page.reload()
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    expect(page.get_by_label("Notes")).to_have_value("typed, never submitted")
    expect(page.get_by_label("Needed by")).to_have_value("2030-02-03")
    shot(page, screenshot_dir, "draft-kept")
    assert item_of(run).status == "open"


def test_requester_reads_who_the_run_waits_on_and_earlier_runs(page, live_server, users, screenshot_dir):
    """Issue 17 point 6 on the demo's record page, for a requester who has no item in the run."""
    import datetime

    from django.utils import timezone

    from orchestration import engine
    from workguide.models import WorkItem

    record = employee()
    orch = guide_orchestration(assignee={"group": "crew"})
    old = start(orch, record=record, user=users["quinn"])
    engine.cancel_run(old.pk, user=users["mona"], reason="Started by mistake")
    run = start(orch, record=record, user=users["quinn"])
    WorkItem.objects.filter(run=run).update(due_at=timezone.now() + datetime.timedelta(days=1))
    log_in(page, live_server, "quinn", f"/demo/employees/{record.pk}/")
    component = page.locator(".wg-component")
    expect(component.locator(".wg-waiting")).to_contain_text("group crew")
    expect(component.locator(".wg-waiting")).to_contain_text("Enter the details")
    expect(component.locator(".wg-waiting time")).to_be_visible()
    component.get_by_text("Earlier runs").click()
    expect(component.locator(".wg-past-runs")).to_contain_text("Canceled by mona: “Started by mistake”")
    shot(page, screenshot_dir, "component-requester")


def test_my_work_and_the_component_follow_items_arriving_and_leaving_without_a_reload(page, live_server, users,
                                                                                    screenshot_dir, settings):
    """Issue 17 point 4: the live refresh (a cheap check every 1.5 s; the page is never reloaded)."""
    from orchestration import engine

    settings.BATON_WORKGUIDE_POLL_SECONDS = 1.5

    start(guide_orchestration(), record=employee())
    log_in(page, live_server, "alice")
    expect(page.locator(".wg-row")).to_have_count(1)
    page.evaluate("window.stayed = true")
    arriving = start(guide_orchestration(), record=employee("Grace", "Hopper"))
    expect(page.locator(".wg-row")).to_have_count(2, timeout=4000)
    expect(page.locator("#wg-counts .wg-count").first).to_have_text("2")
    shot(page, screenshot_dir, "live-1-arrived")
    engine.cancel_run(arriving.pk, reason="not needed")
    expect(page.locator(".wg-row")).to_have_count(1, timeout=4000)
    expect(page.get_by_text("Grace Hopper")).to_have_count(0)
    assert page.evaluate("window.stayed") is True

    record = employee("Alan", "Turing")
    first = start(guide_orchestration(), record=record)
    page.goto(f"{live_server.url}/demo/employees/{record.pk}/")
    component = page.locator(".wg-component")
    expect(component.locator(".wg-item")).to_have_count(1)
    page.evaluate("window.stayed = true")
    start(guide_orchestration(api_name="second_hire"), record=record)
    expect(component.locator(".wg-item")).to_have_count(2, timeout=4000)
    shot(page, screenshot_dir, "live-2-component")
    engine.cancel_run(first.pk, reason="duplicate")
    expect(component.locator(".wg-item")).to_have_count(1, timeout=4000)
    assert page.evaluate("window.stayed") is True


def test_filters_sort_and_saved_filters_on_my_work(page, live_server, users, screenshot_dir):
    """Issue 17 point 4: filter by record, sort, save the filters under a name, use them again."""
    start(guide_orchestration(), record=employee())
    start(guide_orchestration(), record=employee("Grace", "Hopper"))
    log_in(page, live_server, "alice")
    expect(page.locator(".wg-row")).to_have_count(2)
    page.get_by_label("Record").fill("hopper")
    page.get_by_label("Record").press("Enter")
    expect(page.locator(".wg-row")).to_have_count(1)
    page.get_by_label("Sort by").select_option("due")
    expect(page).to_have_url(re.compile(r"record=hopper.*sort=due"))
    page.get_by_label("Save the filters above as").fill("Grace, soonest due")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved these filters as “Grace, soonest due”.")).to_be_visible()
    page.goto(f"{live_server.url}/workguide/")
    expect(page.locator(".wg-row")).to_have_count(2)
    page.get_by_role("link", name="Grace, soonest due").click()
    expect(page.locator(".wg-row")).to_have_count(1)
    expect(page.get_by_label("Sort by")).to_have_value("due")
    shot(page, screenshot_dir, "saved-filters")
