"""Accessibility of the Work Guide in Chromium: axe-core on every page and the record component, and a two-screen
flow completed with the keyboard alone (issue 17 point 9). axe-core 4.14.1 is vendored at tests/static/axe-core/."""
import re

import pytest
from playwright.sync_api import expect

from tests.browser import log_in
from orchestration import engine
from tests.servers import REPO
from tests.workguide_helpers import employee, guide_orchestration, item_of, people_who_sign_in, start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AXE = REPO / "tests" / "static" / "axe-core" / "axe.min.js"


@pytest.fixture
def browser_context_args(browser_context_args):
    """The site's Content-Security-Policy (script-src 'self') would refuse the injected axe script: bypass it."""
    return {**browser_context_args, "bypass_csp": True}


@pytest.fixture
def users(settings):
    return people_who_sign_in(settings)



def serious_violations(page):
    """axe-core's serious and critical violations on the page as it stands: ["rule: target, …", …]."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [f"{v['id']} ({v['impact']}): " + ", ".join(str(n["target"]) for n in v["nodes"][:5])
            for v in violations if v["impact"] in ("serious", "critical")]


def check(page, screenshot_dir, name):
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshot_dir / f"a11y-{name}.png"), full_page=True)
    assert serious_violations(page) == [], name


def test_every_work_guide_page_and_the_component_pass_axe(page, live_server, users, screenshot_dir):
    record = employee()
    run = start(guide_orchestration(), record=record)
    start(guide_orchestration(assignee={"group": "crew"}), record=employee("Grace", "Hopper"))
    item = item_of(run)
    page.goto(f"{live_server.url}/accounts/login/")
    check(page, screenshot_dir, "login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong")
    page.get_by_role("button", name="Sign in").click()
    check(page, screenshot_dir, "login-error")
    log_in(page, live_server, "alice")
    check(page, screenshot_dir, "my-work")
    page.goto(f"{live_server.url}/workguide/?data_field=a__b&sort=priority")
    check(page, screenshot_dir, "my-work-filter-error")
    page.goto(f"{live_server.url}/workguide/items/{item.pk}/")
    check(page, screenshot_dir, "item-screen-1")
    page.get_by_role("button", name="Next").click()  # errors inline
    expect(page.locator(".errors")).to_be_visible()
    check(page, screenshot_dir, "item-errors")
    page.get_by_label("Laptop").select_option("mac")
    page.get_by_label("Works remotely").check()
    expect(page.get_by_label("Home address")).to_be_visible()
    page.get_by_label("Home address").fill("1 Loop")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    check(page, screenshot_dir, "item-screen-2")
    page.get_by_label("Needed by").fill("2030-01-15")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("is done")).to_be_visible()
    check(page, screenshot_dir, "item-done")
    page.goto(f"{live_server.url}/workguide/items/{item.pk}/")
    check(page, screenshot_dir, "item-completed")
    page.goto(f"{live_server.url}/workguide/?tab=completed")
    check(page, screenshot_dir, "my-work-completed")
    page.goto(f"{live_server.url}/demo/employees/{record.pk}/")
    expect(page.locator(".wg-component")).to_be_visible()
    check(page, screenshot_dir, "component")
    # (the component's own URL answers an htmx fragment, no page: it is checked inside its host page above)
    engine.cancel_run(run.pk, reason="Checked elsewhere")
    page.goto(f"{live_server.url}/workguide/items/{item_of(run, 'review').pk}/")
    check(page, screenshot_dir, "item-canceled")
    page.goto(f"{live_server.url}/workguide/items/999999/")
    check(page, screenshot_dir, "not-found")


def test_a_two_screen_flow_is_completed_with_the_keyboard_alone(page, live_server, users, screenshot_dir):
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    log_in(page, live_server, "alice", f"/workguide/items/{item.pk}/")
    expect(page.get_by_text("Screen 1 of 2")).to_be_visible()

    def tab_to(label, limit=60):
        """Press Tab until the focused element is the field labelled ``label`` (or the button of that name)."""
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate("""() => { const e = document.activeElement;
                return (e.labels && e.labels[0] ? e.labels[0].innerText : '') + '|' + (e.innerText || e.value || ''); }""")
            if re.match(rf"^\s*{re.escape(label)}\b", focused.split("|")[0]) or focused.split("|")[1].strip() == label:
                return
        raise AssertionError(f"Tab never reached {label!r}")

    page.locator("body").focus()
    tab_to("Laptop")
    page.keyboard.press("ArrowDown")  # the blank option, then MacBook
    page.keyboard.press("ArrowDown")
    tab_to("Monitors")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    tab_to("Next")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Screen 2 of 2")).to_be_visible()
    tab_to("Needed by")
    page.keyboard.type("01152030")
    tab_to("Notes")
    page.keyboard.type("typed with keys")
    page.screenshot(path=str(screenshot_dir / "a11y-keyboard-screen-2.png"), full_page=True)
    tab_to("Finish")
    page.keyboard.press("Enter")
    expect(page.get_by_text("is done")).to_be_visible()
    done = item_of(run)
    assert done.status == "completed"
