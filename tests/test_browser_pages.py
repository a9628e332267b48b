"""Issue 17's page defects in Chromium (Playwright) against live_server: live visible_if, the launch form, the
record page after a step, error pages and the nav, the monitor's run page at 1280 px. Screenshots go to
test-output/screenshots/issue17-*.png."""
import re

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import expect

from orchestration import engine
from orchestration.models import OrchestrationRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration, ui
from tests.workguide_helpers import employee, guide_orchestration, item_of, ok_flow, people, start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    users = people()
    for user in users.values():
        user.set_password("pw")
        user.save()
    return users


@pytest.fixture
def console_errors(page):
    errors = []

    def on_console(message):
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(page, live_server, username, next_path=""):
    page.goto(f"{live_server.url}/accounts/login/{'?next=' + next_path if next_path else ''}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def shot(page, screenshot_dir, name):
    page.screenshot(path=str(screenshot_dir / f"issue17-{name}.png"), full_page=True)


# -- 9: the monitor's run page at 1280 px ---------------------------------------------------

def test_monitor_run_page_fits_1280_and_diagram_labels_clear_their_badges(page, live_server, users, screenshot_dir,
                                                                         console_errors):
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    noop_flow("wide_calc", outputs={"total": ("number", "1")})
    long = "A rather long stage label that fills its box"
    orch = orchestration([
        {"name": "gather_everything", "label": long, "steps": [
            bg("compute_the_totals_for_everyone", "wide_calc", label="Compute the totals for every department"),
        ]},
        {"name": "second_stage", "label": "Second stage with a long label too", "steps": [
            ui("another_step_name", ok_flow().api_name, label="Another long step label for the badge"),
        ]},
    ], api_name="wide_billing")
    run = engine.start_run(orch, inputs={})
    step = StepRun.objects.get(run=run, step_name="compute_the_totals_for_everyone")
    StepRun.objects.filter(pk=step.pk).update(
        inputs={"customer_reference_number": "CUST-2024-000123456789", "notes": "x" * 300,
                "lines": [{"sku": f"SKU-{i:05d}", "quantity": i, "price": 12.5} for i in range(6)]},
        outputs={"total": 123456789.25, "summary": "y" * 200})
    engine.fail_step(step.pk, "The ledger service said no: " + "timeout " * 20)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, "root")
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    shot(page, screenshot_dir, "9-monitor-run-1280")
    sizes = page.evaluate("""() => {
        const main = document.querySelector('main.container');
        const style = getComputedStyle(main);
        const inner = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        const table = document.querySelector('table.steps');
        return {container: inner, table: table.getBoundingClientRect().width,
                page: document.documentElement.scrollWidth, viewport: window.innerWidth};
    }""")
    assert sizes["table"] <= sizes["container"] + 0.5, sizes
    assert sizes["page"] <= sizes["viewport"], sizes
    # Every state badge in the diagram stands clear of its box's title.
    clashes = page.evaluate("""() => {
        const out = [];
        for (const badge of document.querySelectorAll('svg.baton-diagram text.badge-state')) {
            const title = badge.parentNode.querySelector('text.t');
            const a = title.getBBox(), b = badge.getBBox();
            const apart = a.x + a.width <= b.x - 2 || a.y + a.height <= b.y || b.y + b.height <= a.y;
            if (!apart) out.push([title.textContent, badge.textContent, a.x + a.width, b.x]);
        }
        return {clashes: out, badges: document.querySelectorAll('svg.baton-diagram text.badge-state').length};
    }""")
    assert clashes["badges"] >= 4 and clashes["clashes"] == [], clashes
    expect(page.locator("svg.baton-diagram text.badge-state", has_text="current")).to_have_count(2)
    # Cancel asks first (issue 17 #7): the button opens the reason form; the browser refuses it blank.
    page.get_by_text("Cancel run…").click()
    reason = page.get_by_label(re.compile("Why cancel run"))
    expect(reason).to_be_visible()
    page.get_by_role("button", name="Cancel this run").click()
    assert OrchestrationRun.objects.get(pk=run.pk).status == "running"
    reason.fill("Billing moved to the new system")
    shot(page, screenshot_dir, "7-cancel-form")
    page.get_by_role("button", name="Cancel this run").click()
    expect(page.get_by_text("Reason: Billing moved to the new system")).to_be_visible()
    assert OrchestrationRun.objects.get(pk=run.pk).status == "canceled"
    assert console_errors == []
