"""Path diagrams (orchestration.diagram): structure for each demo orchestration, run state, admin, browser."""
import re
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from orchestration import engine
from orchestration.diagram import diagram_layout, render_diagram, run_state
from orchestration.models import Orchestration, StepRun
from orchestration.plan import Plan
from tests.demo_definitions import import_demo_definitions
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow, ui


def attrs(svg, name):
    return re.findall(rf'{name}="([^"]*)"', svg)


def edges(svg):
    """(from, to, kind) of every edge in the SVG."""
    return set(re.findall(r'data-from="([^"]+)" data-to="([^"]+)" data-edge-kind="([^"]+)"', svg))


def check_structure(plan, svg):
    """Every stage, step, decision and outcome of ``plan`` appears, and every transition is an edge."""
    assert svg.lstrip().startswith("<svg") and svg.rstrip().endswith("</svg>")
    elements = attrs(svg, "data-element")
    steps = attrs(svg, "data-step")
    outcomes = attrs(svg, "data-outcome")
    drawn = {(a, b) for a, b, _ in edges(svg)}
    for element in plan.elements:
        assert element.name in elements
        assert element.label in svg or element.label[:10] in svg
        if element.is_decision:
            for outcome in element.outcomes:
                assert f"{element.name}:{outcome.name}" in outcomes
            assert f"{element.name}:default" in outcomes
        else:
            for step in element.steps:
                assert step.name in steps
                kind = step.type  # interactive, background, orchestration or wait: each drawn as itself
                assert f'data-step="{step.name}" data-step-type="{kind}"' in svg
                for dependency in step.after:
                    assert f'data-after="{dependency}:{step.name}"' in svg
        for target in plan.successors(element):
            assert (element.name, target) in drawn, (element.name, target)
    return elements, steps, outcomes


@pytest.mark.django_db
def test_each_demo_orchestration_is_drawn_whole():
    names = import_demo_definitions()
    assert names, "no demo definition files"
    drawn = 0
    for api_names in names.values():
        for api_name in api_names:
            plan = Plan.load(Orchestration.objects.get(api_name=api_name, status="active"))
            check_structure(plan, str(render_diagram(plan)))
            drawn += 1
    assert drawn >= 3


@pytest.mark.django_db
def test_deal_approval_loop_and_labelled_outcomes():
    import_demo_definitions()
    plan = Plan.load(Orchestration.objects.get(api_name="deal_approval", status="active"))
    svg = str(render_diagram(plan))
    found = edges(svg)
    assert ("revise", "review", "loop") in found  # rework loops back
    assert ("outcome", "revise", "next") in found
    assert ("outcome", "finalize", "skip") in found and ("outcome", "decline", "skip") in found
    assert ("decline", "end", "skip") in found  # decline's next: end
    assert 'data-loop="true"' in svg
    for label in ("approved", "rework", "default"):
        assert f">{label}<" in svg or f">{label} " in svg
    # Arrows: loop edges have their own marker.
    assert "arrow-loop" in svg


@pytest.mark.django_db
def test_onboarding_after_arrows_and_decision():
    import_demo_definitions()
    plan = Plan.load(Orchestration.objects.get(api_name="onboarding", status="active"))
    layout = diagram_layout(plan)
    prepare = next(c for c in layout.columns if c.name == "prepare")
    assert [a["target"] for a in prepare.after_arrows] == ["welcome_email"]
    assert {s.kind for s in prepare.steps} == {"interactive", "background"}
    decision = next(c for c in layout.columns if c.name == "where_to")
    assert [(o.name, o.goto) for o in decision.outcomes] == [("remote", "ship_equipment"), ("default", "desk_setup")]
    assert layout.columns[-1].kind == "end"
    assert not [e for e in layout.edges if e.is_loop]


@pytest.mark.django_db
def test_text_is_escaped_and_long_labels_are_cut():
    noop_flow("esc_flow")
    orch = orchestration([
        {"name": "s1", "label": "<b>Bold & brave</b> with a label much longer than any column is wide",
         "steps": [bg("x", "esc_flow", label="<script>x</script>")]},
    ], api_name="escapes")
    svg = str(render_diagram(Plan.load(orch)))
    assert "<script>" not in svg and "<b>" not in svg and "&lt;b&gt;Bold &amp; brave" in svg
    assert "…" in svg


@pytest.mark.django_db
def test_run_state_colours_the_diagram():
    User.objects.create_user("alice")
    noop_flow("calc_d", outputs={"n": ("number", "1")})
    screen_flow("ask_d")
    orch = orchestration([
        {"name": "first", "steps": [bg("a", "calc_d")]},
        {"type": "decision", "name": "check", "outcomes": [{"name": "again", "condition": "false", "goto": "first"}],
         "default": "second"},
        {"name": "second", "steps": [ui("b", "ask_d"), bg("c", "calc_d", entry={"after": ["b"]})]},
    ], api_name="coloured")
    with mock.patch("orchestration.worker.send_step_message"):
        run = engine.start_run(orch)
        engine.complete_step(StepRun.objects.get(run=run, step_name="a").pk, {"n": 1})
    state = run_state(run)
    assert state["elements"] == {"first": "done", "check": "done", "second": "current"}
    assert state["steps"] == {"a": "done", "b": "current", "c": "upcoming"}
    assert state["outcomes"] == {"check": "default"}
    svg = str(render_diagram(Plan.load(orch), state))
    assert 'data-step="a" data-step-type="background" data-state="done"' in svg
    assert 'data-step="b" data-step-type="interactive" data-state="current"' in svg
    assert 'data-step="c" data-step-type="background" data-state="upcoming"' in svg
    assert 'class="outcome default taken"' in svg
    assert re.search(r'class="edge next taken" data-from="check" data-to="second"', svg)


# ---------------------------------------------------------------------------
# Admin: the diagram on the change page, and the dry run
# ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_change_page_shows_the_diagram(admin_client):
    import_demo_definitions()
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    page = admin_client.get(reverse("admin:orchestration_orchestration_change", args=[orch.pk])).content.decode()
    assert "Path diagram" in page and "<svg" in page and 'data-element="revise"' in page
    assert reverse("admin:orchestration_orchestration_dry_run", args=[orch.pk]) in page


@pytest.mark.django_db
def test_admin_dry_run_on_a_draft(admin_client):
    from orchestration.lifecycle import new_version

    import_demo_definitions()
    draft = new_version(Orchestration.objects.get(api_name="deal_approval", status="active"))
    assert draft.status == "draft"
    url = reverse("admin:orchestration_orchestration_dry_run", args=[draft.pk])
    assert admin_client.get(url).status_code == 200
    before = StepRun.objects.count(), Orchestration.objects.count()
    response = admin_client.post(url, {
        "record": "", "inputs": "{}",
        "outputs": 'manager_review=[{"decision": "rework"}, {"decision": "approve"}]\nfind_owner={"assignee": "user:dave"}',
    })
    page = response.content.decode()
    assert response.status_code == 200
    assert "takes rework" in page and "takes approved" in page and "would complete" in page
    assert 'class="outcome taken" data-outcome="outcome:approved"' in page
    assert (StepRun.objects.count(), Orchestration.objects.count()) == before
    response = admin_client.post(url, {"outputs": "manager_review={bad"})
    assert response.status_code == 400 and "not JSON" in response.content.decode()


@pytest.mark.django_db
def test_admin_dry_run_needs_admin_access(client):
    import_demo_definitions()
    orch = Orchestration.objects.get(api_name="onboarding", status="active")
    client.force_login(User.objects.create_user("plain"))
    response = client.get(reverse("admin:orchestration_orchestration_dry_run", args=[orch.pk]))
    assert response.status_code == 302  # the admin's login page


# ---------------------------------------------------------------------------
# In the browser: screenshots to look at
# ---------------------------------------------------------------------------

def _login(page, live_server, username, password):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_diagram_pages_in_the_browser(page, live_server, screenshot_dir):
    from demo.models import Opportunity

    import_demo_definitions()
    User.objects.create_superuser("boss", "boss@example.com", "pw")
    deal = Opportunity.objects.create(name="Big deal", account="ACME", amount=12000, discount_percent=25)
    orch = Orchestration.objects.get(api_name="deal_approval", status="active")
    with mock.patch("orchestration.worker.send_step_message"):
        run = engine.start_run(orch, record=deal)
        review = StepRun.objects.get(run=run, step_name="manager_review")
        engine.complete_step(review.pk, {"decision": "rework", "comments": "too generous", "approved_discount": 20})
        engine.complete_step(StepRun.objects.get(run=run, step_name="find_owner").pk,
                             {"assignee": "user:dave", "email": "dave@example.com"})
    _login(page, live_server, "boss", "pw")

    page.set_viewport_size({"width": 1500, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    svg = page.locator("svg.baton-diagram")
    assert svg.is_visible()
    assert page.locator('[data-step="revise_deal"][data-state="current"]').count() == 1
    assert page.locator('[data-edge-kind="loop"]').count() == 1
    box = svg.bounding_box()
    assert box["width"] > 800 and box["height"] > 200
    page.screenshot(path=str(screenshot_dir / "monitor-run-diagram.png"), full_page=True)
    svg.screenshot(path=str(screenshot_dir / "diagram-deal-approval-run.png"))

    # Live refresh: the owner finishes the revision elsewhere; the page follows within a poll or two.
    with mock.patch("orchestration.worker.send_step_message"):
        engine.complete_step(StepRun.objects.get(run=run, step_name="revise_deal").pk,
                             {"revised_amount": 11000, "revised_discount": 15, "note": "smaller discount"})
    page.locator('[data-step="revise_deal"][data-state="done"]').wait_for(timeout=15000)
    assert page.locator('[data-step="apply_revision"][data-state="current"]').count() == 1

    page.goto(f"{live_server.url}/monitor/")
    assert page.locator(f'[data-run="{run.pk}"]').is_visible()
    page.screenshot(path=str(screenshot_dir / "monitor.png"), full_page=True)

    onboarding = Orchestration.objects.get(api_name="onboarding", status="active")
    page.goto(f"{live_server.url}{reverse('admin:orchestration_orchestration_change', args=[onboarding.pk])}")
    assert page.locator("svg.baton-diagram").is_visible()
    page.locator(".baton-diagram-module").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "admin-orchestration-diagram.png"), full_page=False)
    page.locator("svg.baton-diagram").screenshot(path=str(screenshot_dir / "diagram-onboarding.png"))


def segments(path):
    """The straight pieces of an edge's path (M, H and V commands only): ((x1, y1), (x2, y2))."""
    out, x, y = [], 0.0, 0.0
    for command, numbers in re.findall(r"([MHV])([-\d.,]+)", path.replace(" ", "")):
        values = [float(n) for n in numbers.split(",")]
        if command == "M":
            x, y = values
            continue
        nx, ny = (values[0], y) if command == "H" else (x, values[0])
        out.append(((x, y), (nx, ny)))
        x, y = nx, ny
    return out


def crossings(layout):
    """Pairs of edges where an upright of one passes through a level run of the other (not at their ends)."""
    found = []
    pieces = [(edge, piece) for edge in layout.edges for piece in segments(edge.path)]
    for edge, ((ax, ay1), (_, ay2)) in pieces:
        if ax != _:
            continue  # a level run: seen from the other side
        for other, ((bx1, by), (bx2, _by)) in pieces:
            if other is edge or by != _by:
                continue
            if min(bx1, bx2) < ax < max(bx1, bx2) and min(ay1, ay2) < by < max(ay1, ay2):
                found.append((f"{edge.source}->{edge.target}", f"{other.source}->{other.target}"))
    return found


@pytest.mark.django_db
def test_deal_approval_arcs_do_not_cross_and_long_labels_wrap_whole():
    import_demo_definitions()
    layout = diagram_layout(Plan.load(Orchestration.objects.get(api_name="deal_approval", status="active")))
    # Before: decline's arc to End went up through approved's arc to Finalize, and default's came
    # down through it at Rejected.
    assert crossings(layout) == []
    decline_to_end = next(e for e in layout.edges if (e.source, e.target) == ("decline", "end"))
    panel_bottom = layout.columns[0].header.y + layout.columns[0].panel_h
    assert segments(decline_to_end.path)[0][0][1] >= panel_bottom - 6  # it goes under the columns
    revise = next(c for c in layout.columns if c.name == "revise")
    steps = {s.name: s for s in revise.steps}
    assert [line for _, line in steps["revise_deal"].subtitle_rows] == ["interactive · assignee by",
                                                                        "expression · due 2d · after f…"]
    # A box grows with its lines and the next box starts below it.
    assert steps["revise_deal"].h > 48 and steps["apply_revision"].y >= steps["revise_deal"].bottom + 12
    assert layout.min_width == round(layout.width * 0.9)


@pytest.mark.django_db
def test_no_demo_diagram_has_arcs_that_cross():
    names = import_demo_definitions()
    for api_name in (name for names_of_file in names.values() for name in names_of_file):
        layout = diagram_layout(Plan.load(Orchestration.objects.get(api_name=api_name, status="active")))
        assert crossings(layout) == [], api_name
    # Onboarding's "ship_equipment -> first_day" started inside "where_to -> desk_setup" and ended past
    # it: it goes under the columns and comes up First day's right edge.
    onboarding = diagram_layout(Plan.load(Orchestration.objects.get(api_name="onboarding", status="active")))
    ship = next(e for e in onboarding.edges if (e.source, e.target) == ("ship_equipment", "first_day"))
    first_day = next(c for c in onboarding.columns if c.name == "first_day")
    (x1, y1), _ = segments(ship.path)[0]
    assert y1 >= first_day.header.y + first_day.panel_h - 6 and segments(ship.path)[-1][1][0] > first_day.steps[0].right
