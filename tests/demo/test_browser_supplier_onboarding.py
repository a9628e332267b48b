"""The demo's supplier onboarding in Chromium: the monitor shows the run waiting for the signed contract, with
its quorum, its child run (linked both ways) and the wait's due time and webhook. Screenshots:
test-output/screenshots/demo-supplier-*.png."""
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

import orchestration
from orchestration.models import OrchestrationRun, StepRun
from workguide import services
from workguide.models import WorkItem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_monitor_shows_the_supplier_run_waiting_for_its_contract(page, live_server, settings, screenshot_dir):
    settings.BATON_STEP_EXECUTION = "in_process"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("load_demo", "--no-records", stdout=open("/dev/null", "w"))
    from django.contrib.auth.models import User

    users = {u.username: u for u in User.objects.all()}
    run = orchestration.launch("supplier_onboarding", user=users["carol"])
    for name in ("bob", "dave"):
        item = WorkItem.objects.get(run=run, step_run__step_name="approve", assignee_user=users[name])
        services.complete_work_item(item, users[name], {"approve": True, "note": "fine"})
    child = OrchestrationRun.objects.get(parent_step_run__run=run)
    assert StepRun.objects.get(run=run, step_name="contract_signed").status == "in_progress"

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/?next={reverse('monitor:run', args=[run.pk])}")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    body = page.locator("body")
    expect(body).to_contain_text("Supplier onboarding")
    expect(body).to_contain_text("contract_signed")
    wait = page.locator("[data-wait=contract_signed]")
    expect(wait).to_contain_text("event contract_signed")
    expect(wait).to_contain_text("timeout")  # its due time
    expect(wait.locator("input.webhook-url")).to_have_value(re.compile(r"/hooks/events/"))
    expect(page.locator(f"a[href$='{reverse('monitor:run', args=[child.pk])}']").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "demo-supplier-1-parent-waiting.png"), full_page=True)

    page.locator(f"a[href$='{reverse('monitor:run', args=[child.pk])}']").first.click()
    page.wait_for_load_state("load")
    expect(page.locator("body")).to_contain_text("Supplier compliance")
    expect(page.locator(f"a[href$='{reverse('monitor:run', args=[run.pk])}']").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "demo-supplier-2-child.png"), full_page=True)
