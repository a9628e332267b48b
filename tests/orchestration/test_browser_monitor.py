"""The monitor in Chromium (Playwright against live_server): the run page's steps table on a phone and at
1280 px, the path diagram's text size and routing, wait steps' icons and webhook box, values shown as JSON,
labels in the waiting lists, and the icon every page links. Screenshots go to
test-output/screenshots/monitor-*.png: look at them."""
import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

import orchestration
from demo.models import Opportunity
from orchestration import engine, waits
from orchestration.models import Orchestration, StepRun
from tests.browser import log_in
from tests.demo_definitions import import_demo_definitions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def root(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def errors(page):
    """Console errors (a 404 for /favicon.ico included) and uncaught exceptions of the pages visited."""
    found = []
    page.on("console", lambda m: m.type == "error" and found.append(f"{m.text} ({m.location.get('url')})"))
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def shot(page, screenshot_dir, name, locator=None):
    path = str(screenshot_dir / f"monitor-{name}.png")
    (locator or page).screenshot(path=path, **({} if locator else {"full_page": True}))


def start(api_name, **kwargs):
    return engine.start_run(Orchestration.objects.get(api_name=api_name, status="active"), **kwargs)


def deal_run():
    """A deal approval waiting for the sales managers' review: the run the walk found crushed at 390 px."""
    deal = Opportunity.objects.create(name="Globex expansion", account="Globex", amount=96000, discount_percent=25)
    return start("deal_approval", record=deal)


# What the run page's geometry looks like, measured in the page.
MEASURE = """() => {
    const box = el => el.getBoundingClientRect();
    const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
    const row = document.querySelector('table.steps tbody tr');
    const cells = [...row.querySelectorAll(':scope > td')];
    const wrap = document.querySelector('table.steps').closest('.table-wrap');
    const withdraw = row.querySelector('.withdraw-action summary');
    const badge = row.querySelector('.cell-status .badge') || row.querySelectorAll('td')[2].querySelector('.badge');
    const json = [...row.querySelectorAll('pre.json')];
    // Every piece of text in the row, one rectangle per line box.
    const words = [];
    const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        if (!walker.currentNode.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(walker.currentNode);
        for (const r of range.getClientRects()) words.push({text: walker.currentNode.textContent.trim(), left: r.left, right: r.right});
    }
    const lines = el => {
        const range = document.createRange();
        range.selectNodeContents(el);
        return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
    };
    return {
        page: document.documentElement.scrollWidth, viewport: innerWidth,
        wrapRight: box(wrap).right, wrapScroll: wrap.scrollWidth, wrapWidth: wrap.clientWidth,
        cellsOverlap: cells.some((a, i) => cells.some((b, j) => i < j && overlap(box(a), box(b)))),
        badgeOverJson: json.some(pre => overlap(box(badge), box(pre))),
        withdrawLines: lines(withdraw),
        cutOff: words.filter(w => w.right > box(wrap).right + 0.5 || w.left < box(wrap).left - 0.5).map(w => w.text),
    };
}"""


def test_steps_table_is_cards_on_a_phone_and_fits_at_1280_with_names_broken_at_colons(page, live_server, root,
                                                                                        screenshot_dir, errors):
    import_demo_definitions()
    run = deal_run()
    log_in(page, live_server, "root")
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    steps = page.locator("section[aria-labelledby=steps-heading]")
    shot(page, screenshot_dir, "run-390")
    shot(page, screenshot_dir, "run-steps-390", steps)
    phone = page.evaluate(MEASURE)
    assert phone["page"] <= phone["viewport"], phone
    # Nothing of the step is outside the table's box, nothing lies on anything else, nothing stands one
    # letter a line: the walk found "Withdraw…" one letter per line and the badge over the inputs.
    assert phone["cutOff"] == [] and phone["wrapScroll"] <= phone["wrapWidth"], phone
    assert not phone["cellsOverlap"] and not phone["badgeOverJson"], phone
    assert phone["withdrawLines"] == 1, phone
    # Each value says which column it is.
    row = page.locator("table.steps tbody tr").first
    for name in ("Stage", "Step", "Status", "Inputs", "Outputs", "Work item / child run"):
        expect(row.locator(f'td[data-label="{name}"]')).to_be_visible()

    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    page.wait_for_load_state("networkidle")
    shot(page, screenshot_dir, "run-steps-1280", steps)
    wide = page.evaluate(MEASURE)
    assert wide["page"] <= wide["viewport"] and wide["wrapScroll"] <= wide["wrapWidth"], wide
    assert not wide["badgeOverJson"] and wide["withdrawLines"] == 1, wide
    # "group:sales_managers" may wrap after its colon, never inside "sales_managers".
    pieces = page.evaluate("""() => {
        const cell = document.querySelector('table.steps tbody tr td[data-label^="Work item"]');
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const at = walker.currentNode.textContent.indexOf('sales_managers');
            if (at < 0) continue;
            const range = document.createRange();
            range.setStart(walker.currentNode, at);
            range.setEnd(walker.currentNode, at + 'sales_managers'.length);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
        }
        return 0;
    }""")
    assert pieces == 1
    assert errors == []


def test_run_diagram_keeps_its_text_readable_and_its_arcs_apart(page, live_server, root, screenshot_dir, errors):
    import_demo_definitions()
    run = deal_run()
    log_in(page, live_server, "root")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    diagram = page.locator("svg.baton-diagram")
    shot(page, screenshot_dir, "run-diagram-1280", page.locator(".diagram-scroll"))
    drawn = page.evaluate("""() => {
        const svg = document.querySelector('svg.baton-diagram');
        const scroller = svg.closest('.diagram-scroll');
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const smallest = Math.min(...[...svg.querySelectorAll('text.s, text.t')].map(t => parseFloat(getComputedStyle(t).fontSize)));
        return {scale, smallest, onScreen: smallest * scale, scrolls: scroller.scrollWidth > scroller.clientWidth,
                page: document.documentElement.scrollWidth, viewport: innerWidth};
    }""")
    # The walk measured second lines at about 7 px on screen (the path scaled to 0.74).
    assert drawn["scale"] >= 0.89 and drawn["onScreen"] >= 8.9, drawn
    assert drawn["scrolls"] and drawn["page"] <= drawn["viewport"], drawn  # the path scrolls, not the page
    # A label too long for one line takes two, whole: "Review the de…" was cut.
    title = diagram.locator('[data-step="manager_review"] text.t')
    assert title.locator("tspan").all_text_contents() == ["Review the", "deal"]
    assert "…" not in diagram.locator('[data-outcome="outcome:approved"] text.s').text_content()
    # Decline's way to End goes under the columns, clear of approved's arc to Finalize above them.
    page.locator(".diagram-scroll").evaluate("el => el.scrollLeft = el.scrollWidth")
    shot(page, screenshot_dir, "run-diagram-1280-end", page.locator(".diagram-scroll"))
    under = [float(n) for n in re.findall(r"[\d.]+", diagram.locator('[data-from="decline"][data-to="end"] path')
                                                         .get_attribute("d"))]
    bbox = "e => { const b = e.getBBox(); return {y: b.y, height: b.height}; }"
    panel = diagram.locator('[data-element="decline"] rect.panel').evaluate(bbox)
    end = diagram.locator('[data-element="end"] circle').evaluate("c => [c.cx.baseVal.value, c.cy.baseVal.value]")
    over = diagram.locator('[data-from="outcome"][data-to="finalize"] path').evaluate(bbox)
    x1, y1, lane, x2, y2 = under  # down from Rejected's panel, along under it, up into End
    assert y1 >= panel["y"] + panel["height"] - 0.5 and lane > y1 and x2 == end[0] and y2 > end[1]
    assert over["y"] + over["height"] <= panel["y"] + 8  # approved's arc stays above the columns
    assert errors == []


def test_wait_step_icons_are_drawn_and_the_webhook_box_is_whole_and_copies(page, live_server, root, screenshot_dir,
                                                                           errors):
    import_demo_definitions()
    run = start("contract_signature")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, live_server, "root")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    wait = page.locator('[data-wait="signed"]')
    shot(page, screenshot_dir, "run-wait-1280", page.locator("section[aria-labelledby=steps-heading]"))
    # No emoji that shows as an empty box without an emoji font: the hourglass and the clock are drawn.
    text = wait.inner_text()
    assert "⏳" not in text and "⏲" not in text and "event signed" in text and "timeout" in text
    expect(wait.locator("svg.wait-icon")).to_have_count(2)
    url = wait.locator("input.webhook-url")
    cell = page.locator('tr[data-step="signed"] td[data-label="Step"]')
    measure = """([input, cell]) => {
        const style = getComputedStyle(cell);
        return {input: input.getBoundingClientRect().width,
                cell: cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
                button: input.nextElementSibling.getBoundingClientRect().width,
                page: document.documentElement.scrollWidth, viewport: innerWidth};
    }"""
    sizes = page.evaluate(measure, [url.element_handle(), cell.element_handle()])
    assert sizes["input"] + sizes["button"] >= sizes["cell"] - 12, sizes  # the box takes the cell's width
    # On a phone the step, and so the field, goes across the whole card.
    page.set_viewport_size({"width": 390, "height": 900})
    shot(page, screenshot_dir, "run-wait-390", page.locator("section[aria-labelledby=steps-heading]"))
    phone = page.evaluate(measure, [url.element_handle(), cell.element_handle()])
    card = page.locator('tr[data-step="signed"]').evaluate("tr => tr.clientWidth")
    assert phone["cell"] >= card - 30 and phone["input"] + phone["button"] >= phone["cell"] - 12, (phone, card)
    assert phone["page"] <= phone["viewport"], phone
    page.set_viewport_size({"width": 1280, "height": 900})
    url.focus()
    value = url.input_value()
    assert value.endswith(waits.webhook_path(StepRun.objects.get(run=run, step_name="signed").pk, "signed")), value
    assert url.evaluate("el => [el.selectionStart, el.selectionEnd]") == [0, len(value)]  # selected on focus
    page.get_by_role("button", name="Copy the webhook URL of signed").click()
    expect(page.get_by_role("button", name="Copy the webhook URL of signed")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == value
    assert errors == []


def test_values_are_json_and_waiting_lists_name_the_orchestration(page, live_server, root, screenshot_dir, errors):
    import_demo_definitions()
    run = start("purchase_approval", inputs={"amount": 2400.0, "purpose": "Two monitors", "urgent": True,
                                            "note": None, "tags": ["it", "desk"]})
    signing = start("contract_signature")
    orchestration.send_event(signing, "later", data={"approved": False, "by": "Maya"}, keep=True)
    waits.pause_run(signing.pk, reason="legal hold")
    log_in(page, live_server, "root")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    facts = page.locator(".run-facts")
    shot(page, screenshot_dir, "run-inputs-1280", facts)
    inputs = facts.locator('dl.values[data-values="inputs"]')
    shown = dict(zip(inputs.locator("dt").all_inner_texts(), inputs.locator("dd").all_inner_texts()))
    assert shown == {"amount": "2400.0", "note": "null", "purpose": "Two monitors", "tags": '["it", "desk"]',
                     "urgent": "true"}
    assert "{'" not in facts.inner_text() and "True" not in facts.inner_text()

    page.goto(f"{live_server.url}/monitor/")
    page.wait_for_load_state("networkidle")
    waiting = page.locator("section.waiting")
    shot(page, screenshot_dir, "waiting-1280", waiting)
    expect(page.locator(f'[data-paused-run="{signing.pk}"]')).to_contain_text("Contract signature")
    expect(page.locator(f'[data-paused-run="{signing.pk}"]')).not_to_contain_text("contract_signature")
    kept = page.locator("table.kept-events tbody tr").first
    expect(kept).to_contain_text('{"approved": false, "by": "Maya"}')
    assert errors == []


def test_pages_link_an_icon_and_nothing_asks_for_favicon_ico(page, live_server, root, screenshot_dir, errors):
    missing = []
    page.on("response", lambda r: r.status >= 400 and missing.append(f"{r.status} {r.url}"))
    log_in(page, live_server, "root")
    for path in ("/monitor/", "/workguide/", "/admin/", "/admin/orchestration/orchestration/", "/no-such-page/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_count(1)
        href = icon.get_attribute("href")
        assert page.request.get(f"{live_server.url}{href}").ok, href
    assert [m for m in missing if "no-such-page" not in m] == []
    assert [e for e in errors if "no-such-page" not in e and "404" in e] == []
