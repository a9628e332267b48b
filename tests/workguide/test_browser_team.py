"""Issue 17, points 1 and 3 in Chromium: a delegation set from My Work, bulk claim with a result per item,
Release on the item page, the team view. Screenshots: test-output/screenshots/workguide-team-*.png."""
import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser import log_in
from tests.workguide_helpers import employee, guide_orchestration, item_of, people_who_sign_in, start
from workguide.models import Delegation, WorkItem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def users(settings):
    return people_who_sign_in(settings)



def shot(page, screenshot_dir, name):
    page.screenshot(path=str(screenshot_dir / f"workguide-team-{name}.png"), full_page=True)


def test_delegation_from_my_work(page, live_server, users, screenshot_dir):
    log_in(page, live_server, "alice")
    page.get_by_text("Set a substitute").click()
    page.get_by_label("Substitute").fill("gina")
    now = timezone.localtime()
    page.get_by_label("Starts").fill((now - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((now + datetime.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M"))
    shot(page, screenshot_dir, "1-delegation-form")
    page.get_by_role("button", name="Delegate").click()
    expect(page.locator(".wg-delegations")).to_contain_text("your new work goes to gina")
    shot(page, screenshot_dir, "2-delegation-set")
    assert Delegation.objects.get().substitute == users["gina"]
    item = item_of(start(guide_orchestration(), record=employee()))
    assert item.assignee_user == users["gina"]
    page.reload()
    expect(page.locator(".wg-list")).to_contain_text("delegated from alice")
    page.get_by_role("link", name="Enter the details").click()
    expect(page.get_by_text("Delegated from")).to_be_visible()


def test_bulk_claim_release_and_team_view(page, live_server, users, screenshot_dir):
    orch = guide_orchestration(assignee={"group": "crew"})
    items = [item_of(start(orch, record=employee(first=f"E{i}"))) for i in range(3)]
    WorkItem.objects.filter(pk=items[1].pk).update(claimed_by=users["mona"],
                                                   due_at=timezone.now() - datetime.timedelta(days=1))
    log_in(page, live_server, "gina")
    for box in page.locator("input.wg-pick").all():
        box.check()
    page.get_by_label("With the ticked items").select_option("claim")
    page.get_by_role("button", name="Apply").click()
    results = page.locator(".wg-bulk-results")
    expect(results).to_contain_text("Claim: 3 items")
    expect(results.locator(".wg-bulk-ok")).to_have_count(2)
    expect(results.locator(".wg-bulk-failed")).to_contain_text("claimed by mona")
    shot(page, screenshot_dir, "3-bulk-results")
    # Release on the item page
    page.goto(f"{live_server.url}/workguide/items/{items[0].pk}/")
    page.get_by_role("button", name="Release").click()
    expect(page.get_by_role("button", name="Claim")).to_be_visible()
    assert WorkItem.objects.get(pk=items[0].pk).claimed_by is None
    # the manager's team view
    page.context.clear_cookies()
    log_in(page, live_server, "mona")
    page.get_by_role("link", name="Team view").click()
    expect(page.locator(".wg-team-table")).to_contain_text("group:crew")
    expect(page.locator(".wg-holders")).to_contain_text("gina: 1 claimed")
    expect(page.locator(".wg-holders")).to_contain_text("mona: 1 claimed, 1 overdue")
    shot(page, screenshot_dir, "4-team-view")
