"""The Content-Security-Policy breaks none of the pages: Chromium reports no
violation (nor any other console error) on the Work Guide, the monitor with
htmx polling, the admin with django-nested-admin, and Swagger UI at /api/docs/.
Screenshots go to test-output/screenshots/csp-*.png."""
import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from flows.models import Flow
from orchestration import engine
from orchestration.models import Orchestration, StepRun
from tests.engine_builders import bg, noop_flow, orchestration

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_user(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.BATON_MONITOR_POLL_SECONDS = 1
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def console_errors(page):
    errors = []

    def on_console(message):
        # Chromium asks for /favicon.ico on its own; the site has none (a 404, not a policy matter).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_pages_work_under_the_policy(page, live_server, admin_user, console_errors, screenshot_dir):
    noop_flow("csp_calc", outputs={"total": ("number", "1")})
    orch = orchestration([{"name": "one", "steps": [bg("compute", "csp_calc")]}], api_name="csp_billing")
    run = engine.start_run(orch)
    engine.fail_step(StepRun.objects.get(run=run, step_name="compute").pk, "no")
    flow = Flow.objects.get(api_name="csp_calc")

    def visit(path, name):
        response = page.goto(f"{live_server.url}{path}")
        assert "script-src 'self'" in response.headers.get("content-security-policy", "")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshot_dir / f"csp-{name}.png"), full_page=True)

    visit("/accounts/login/", "login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/workguide/$"))
    page.get_by_label("Search").fill("nothing-matches")  # htmx request on input
    page.wait_for_load_state("networkidle")

    with page.expect_request(re.compile(r"/monitor/\?.*partial=1")):  # htmx polling still runs
        visit("/monitor/", "monitor")
    with page.expect_request(re.compile(rf"/monitor/runs/{run.pk}/\?partial=1")):
        visit(f"/monitor/runs/{run.pk}/", "run")
    visit(f"/monitor/runs/{run.pk}/steps/compute/skip/?next=javascript:alert(1)", "skip")
    expect(page.get_by_role("link", name="Back")).to_have_attribute("href", f"/monitor/runs/{run.pk}/")

    visit("/admin/", "admin")
    visit(f"/admin/orchestration/orchestration/{Orchestration.objects.get(api_name='csp_billing').pk}/change/",
          "admin-orchestration")
    expect(page.locator(".baton-diagram-scroll svg")).to_be_visible()
    visit(f"/admin/flows/flow/{flow.pk}/change/", "admin-flow")
    visit("/admin/flows/flow/add/", "admin-flow-add")
    add_screen = page.locator("a.djn-add-handler.djn-model-flows-screen:visible").first
    expect(page.locator("input[name='screens-0-name']")).to_have_count(0)
    add_screen.click()  # django-nested-admin's script adds an inline form
    expect(page.locator("input[name='screens-0-name']")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "csp-admin-flow-added-screen.png"), full_page=True)

    visit("/api/docs/", "api-docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15000)  # Swagger UI rendered the schema
    page.screenshot(path=str(screenshot_dir / "csp-api-docs.png"), full_page=True)

    assert console_errors == []
