"""The Work Guide pages through Django's test client: My Work, the item page, the flow panel, actions, tags."""
import datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from orchestration.models import OrchestrationRun, RunEvent
from tests.engine_builders import orchestration, ui
from tests.workguide_helpers import (
    STEP_ONE, STEP_TWO, employee, guide_orchestration, item_of, ok_flow, people, start,
)
from workguide import services
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def users():
    return people()


@pytest.fixture
def run(users):
    return start(guide_orchestration(), record=employee())


@pytest.fixture
def item(run):
    return item_of(run)


@pytest.fixture
def alice(client, users):
    client.force_login(users["alice"])
    return client


def flow_url(item):
    return f"/workguide/items/{item.pk}/flow/"


def post(client, item, action, data=None, **extra):
    return client.post(flow_url(item), {"action": action, **(data or {})}, **HX, **extra)


# ---------------------------------------------------------------------------
# My Work
# ---------------------------------------------------------------------------

def test_login_is_required_everywhere(client, item):
    for url in ("/workguide/", "/workguide/results/", f"/workguide/items/{item.pk}/", flow_url(item),
                f"/workguide/items/{item.pk}/path/", "/workguide/records/demo.employee/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url


def test_my_work_lists_direct_group_and_queue_items_newest_first_with_counts(client, users):
    record = employee()
    start(guide_orchestration(assignee={"user": "gina"}), record=record)
    start(guide_orchestration(assignee={"group": "crew"}), record=record)
    start(guide_orchestration(assignee={"queue": "desk"}), record=employee("Grace", "Hopper"))
    client.force_login(users["gina"])
    page = client.get("/workguide/").content.decode()
    assert page.count('class="wg-row"') == 2
    assert page.index("Enter the details") < page.rindex("Enter the details")
    counts = client.get("/workguide/").context["counts"]
    assert (counts["all"], counts["me"], counts["groups"], counts["queues"]) == (2, 1, 1, 0)
    items = client.get("/workguide/").context["items"]
    assert items[0].created_at >= items[1].created_at and [i.source for i in items] == ["groups", "me"]
    client.force_login(users["quentin"])  # in the desk queue through its group
    response = client.get("/workguide/")
    assert response.context["counts"]["queues"] == 1 and "Grace Hopper" in response.content.decode()


def test_my_work_filters_search_and_results_partial(client, users):
    hopper = employee("Grace", "Hopper")
    start(guide_orchestration(api_name="hiring"), record=employee())
    start(guide_orchestration(assignee={"group": "crew"}, api_name="other"), record=hopper)
    overdue = start(guide_orchestration(api_name="late"), record=employee("Alan", "Turing"))
    WorkItem.objects.filter(run=overdue).update(due_at=timezone.now() - datetime.timedelta(days=1))
    users["gina"].groups.add(*users["alice"].groups.all())
    users["alice"].groups.add(users["gina"].groups.get(name="crew"))
    client.force_login(users["alice"])

    def labels(query):
        response = client.get(f"/workguide/results/?{query}", **HX)
        assert response.status_code == 200 and "<html" not in response.content.decode()
        return sorted(i.record_label for i in response.context["items"])

    assert labels("") == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert labels("q=hopper") == ["Grace Hopper"]
    assert labels("q=enter+the") == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert labels("source=groups") == ["Grace Hopper"]
    assert labels("source=me") == ["Ada Lovelace", "Alan Turing"]
    assert labels("source=queues") == []
    assert labels("orchestration=hiring") == ["Ada Lovelace"]
    assert labels("overdue=on") == ["Alan Turing"]
    assert labels("source=bogus&orchestration=nope") == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    response = client.get("/workguide/results/?q=hopper", **HX)
    assert response["HX-Push-Url"] == "/workguide/?q=hopper"
    assert "Nothing matches" in client.get("/workguide/results/?q=zzz").content.decode()


def test_my_work_paginates(client, users, run):
    item = item_of(run)
    WorkItem.objects.bulk_create([_copy(item, i) for i in range(60)])
    client.force_login(users["alice"])
    first = client.get("/workguide/")
    assert len(first.context["items"]) == 25 and "Page 1 of 3" in first.content.decode()
    third = client.get("/workguide/results/?page=3&q=copy", **HX)
    assert len(third.context["items"]) == 10 and third["HX-Push-Url"] == "/workguide/?q=copy&page=3"


def _copy(item, i, **extra):
    from orchestration.models import StageRun, StepRun

    stage_run = StageRun.objects.get(run=item.run, stage_name="collect")
    step_run = StepRun.objects.create(run=item.run, stage_run=stage_run, step_name=f"copy_{i}_{stage_run.pk}", type="interactive")
    return WorkItem(step_run=step_run, run=item.run, label=f"Copy {i}", flow_id=item.flow_id,
                    assignee_type=item.assignee_type, assignee_user=item.assignee_user, record_label=f"Record {i}",
                    **extra)


def test_my_work_query_count_is_constant(client, users, run, django_assert_max_num_queries):
    from orchestration.models import StageRun, StepRun

    item = item_of(run)
    stage_run = StageRun.objects.get(run=run, stage_name="collect")
    client.force_login(users["alice"])
    with django_assert_max_num_queries(10) as few:
        client.get("/workguide/?source=me&q=e&overdue=")
    step_runs = StepRun.objects.bulk_create(
        [StepRun(run=run, stage_run=stage_run, step_name=f"bulk_{i}", type="interactive") for i in range(3000)]
    )
    if any(s.pk is None for s in step_runs):
        step_runs = list(StepRun.objects.filter(step_name__startswith="bulk_").order_by("id"))
    kinds = [{"assignee_type": "user", "assignee_user": users["alice"]},
             {"assignee_type": "group", "assignee_group": users["gina"].groups.first()},
             {"assignee_type": "queue", "assignee_queue_id": users["quinn"].work_queues.first().pk}]
    users["alice"].groups.add(users["gina"].groups.first())
    users["quinn"].work_queues.first().members.add(users["alice"])
    WorkItem.objects.bulk_create([
        WorkItem(step_run=s, run=run, label=f"Bulk {i}", flow_id=item.flow_id, record_label=f"R{i}",
                 due_at=timezone.now() - datetime.timedelta(hours=i % 3), **kinds[i % 3])
        for i, s in enumerate(step_runs)
    ])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/workguide/?source=me&q=e&overdue=")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/workguide/results/?page=7", **HX)
    assert response.context["counts"]["all"] == 3001


# ---------------------------------------------------------------------------
# The item page and the flow panel
# ---------------------------------------------------------------------------

def test_item_page_shows_item_record_path_and_first_screen(alice, item):
    response = alice.get(f"/workguide/items/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter the details" in html and "Hire equipment" in html
    assert 'href="/demo/employees/' in html and "Lovelace" in html  # the record summary
    assert [s["state"] for s in response.context["path"]] == ["current", "upcoming"]
    assert 'aria-current="step"' in html
    assert "About the hire" in html and "Equipment for Ada Lovelace" in html
    assert 'name="csrfmiddlewaretoken"' in html and "X-CSRFToken" in html
    assert '<label for="wi%d-monitors">' % item.pk in html and 'aria-describedby="wi%d-monitors_helptext"' % item.pk in html
    assert 'name="address"' not in html  # visible_if: remote is not ticked
    assert 'value="back"' not in html  # nothing to go back to on the first screen


def test_every_field_type_and_inline_errors(alice, item):
    response = post(alice, item, "next", {"laptop": "windows", "monitors": "lots"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and 'class="wg-panel"' in html
    assert "Select a valid choice" in html and "Enter a number." in html and 'aria-invalid="true"' in html
    # visible_if: ticking remote makes the address appear and required
    response = post(alice, item, "next", {**STEP_ONE, "remote": "on"})
    assert 'name="address"' in response.content.decode() and "This field is required." in response.content.decode()
    # screen-level validate
    response = post(alice, item, "next", {"laptop": "mac", "monitors": "7"})
    assert "Pick between 0 and 3 monitors." in response.content.decode()
    item.refresh_from_db()
    assert item.progress == {}  # nothing kept from invalid screens
    response = post(alice, item, "next", STEP_ONE)
    html = response.content.decode()
    assert "Delivery" in html and 'type="date"' in html and 'type="datetime-local"' in html
    assert 'type="email"' in html and 'type="checkbox" name="extras"' in html and "<textarea" in html
    assert "<legend>Extras" in html
    response = post(alice, item, "next", {"needed_by": "soon", "call_at": "later", "contact": "nope",
                                          "extras": ["cable"]})
    html = response.content.decode()
    assert "Enter a valid date." in html and "Enter a valid date/time." in html
    assert "Enter a valid email address." in html and "cable is not one of the available choices" in html


def test_merge_fields_and_values_are_escaped(client, users):
    run = start(guide_orchestration(), record=employee("<script>alert(1)</script>", "<b>Bold</b>"))
    item = item_of(run)
    client.force_login(users["alice"])
    html = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Bold</b>" not in html
    html = post(client, item, "next", {"laptop": "mac", "monitors": "1"}).content.decode()
    assert "Laptop mac for &lt;script&gt;" in html
    html = post(client, item, "back", {"notes": "<img src=x onerror=alert(1)>"}).content.decode()
    html = post(client, item, "next", {"laptop": "mac", "monitors": "1"}).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_back_keeps_values_and_progress_resumes(alice, item):
    post(alice, item, "next", {**STEP_ONE, "monitors": "2"})
    html = post(alice, item, "back", {"needed_by": "2030-02-01", "notes": "fragile"}).content.decode()
    assert "About the hire" in html and 'value="2"' in html and '<option value="mac" selected>' in html
    item.refresh_from_db()
    assert item.progress["screen"] == 0 and item.progress["values"]["monitors"] == 2.0
    html = post(alice, item, "next", {**STEP_ONE, "monitors": "3"}).content.decode()
    assert 'value="2030-02-01"' in html and "fragile" in html  # the draft typed before Back
    # leave and come back: the item page resumes on screen two
    html = alice.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "Screen 2 of 2" in html and "fragile" in html
    html = alice.get(flow_url(item), **HX).content.decode()
    assert "Screen 2 of 2" in html


def test_finish_completes_the_item_and_the_run_moves_on(alice, item, run):
    post(alice, item, "next", STEP_ONE)
    response = post(alice, item, "finish", STEP_TWO)
    html = response.content.decode()
    assert response.status_code == 200 and "is done" in html
    assert "workguide-changed" in response["HX-Trigger"]
    review = item_of(run, "review")
    assert f"/workguide/items/{review.pk}/" in html  # next for you in this run
    item.refresh_from_db()
    assert item.status == "completed" and item.completed_by.username == "alice"
    assert item.step_run.outputs["extras"] == ["mouse"] and item.step_run.outputs["needed_by"] == "2030-01-15"
    assert OrchestrationRun.objects.get(pk=run.pk).current_stage == "review"
    path = alice.get(f"/workguide/items/{item.pk}/path/", **HX)
    assert [s["state"] for s in path.context["path"]] == ["done", "current"]
    refreshed = path.content.decode()  # the badge and the item's actions catch up out of band
    assert 'id="item-status" class="badge badge-completed" hx-swap-oob="true"' in refreshed
    assert '<div id="item-reassign" hx-swap-oob="true"></div>' in refreshed
    again = post(alice, item, "finish", STEP_TWO)
    assert again.status_code == 200 and "You completed “Enter the details”." in again.content.decode()


@pytest.mark.parametrize("extras,message", [
    (["mouse"] * 900, "Choose at most 2 option(s); 900 were sent."),  # a form post carries at most 1,000 fields
    (["mouse", "dock", "mouse"], "Choose at most 2 option(s); 3 were sent."),
    (["mouse", "mouse"], "Each option can be chosen once; chosen more than once: “mouse”."),
])
def test_finish_refuses_repeated_multichoice_values_and_changes_nothing(alice, item, extras, message):
    post(alice, item, "next", STEP_ONE)
    before = item_of(item.run).progress
    response = post(alice, item, "finish", {**STEP_TWO, "extras": extras})
    html = response.content.decode()
    assert response.status_code == 200 and "Screen 2 of 2" in html
    assert response.context["panel"]["form"].errors == {"extras": [message]}
    assert "Please correct the marked field." in html
    after = item_of(item.run)
    assert after.status == "open" and after.step_run.status == "in_progress" and after.progress == before


def test_finish_revalidates_earlier_screens(alice, item):
    post(alice, item, "next", STEP_ONE)
    progress = dict(item_of(item.run).progress)
    progress["values"] = {**progress["values"], "monitors": 9.0}  # made invalid behind the page's back
    services.save_progress(item, progress)
    html = post(alice, item, "finish", STEP_TWO).content.decode()
    assert "About the hire" in html and "Pick between 0 and 3 monitors." in html
    assert item_of(item.run).status == "open"


def test_without_htmx_the_form_still_works(alice, item):
    response = alice.post(flow_url(item), {"action": "next", "laptop": "mac", "monitors": "8"})
    assert response.status_code == 200 and "<html" in response.content.decode()
    assert "Pick between 0 and 3 monitors." in response.content.decode()
    alice.post(flow_url(item), {"action": "next", **STEP_ONE})
    response = alice.post(flow_url(item), {"action": "finish", **STEP_TWO})
    assert response.status_code == 302 and response["Location"] == "/workguide/"
    assert item_of(item.run).status == "completed"


def test_unknown_action_is_a_clear_message(alice, item):
    response = post(alice, item, "jump")
    assert response.status_code == 400 and "Unknown action" in response.content.decode()


# ---------------------------------------------------------------------------
# Claims, two people, reassign, comments
# ---------------------------------------------------------------------------

def test_claimed_queue_item_blocks_the_others_with_a_clear_message(client, users):
    run = start(guide_orchestration(assignee={"queue": "desk"}), record=employee())
    item = item_of(run)
    client.force_login(users["quinn"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert 'action="/workguide/items/%d/claim/"' % item.pk in page
    response = client.post(f"/workguide/items/{item.pk}/claim/", follow=True)
    assert "You claimed" in response.content.decode()
    client.force_login(users["quentin"])
    response = client.get(f"/workguide/items/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 200 and "is claimed by quinn" in html and 'name="action"' not in html
    response = post(client, item, "next", STEP_ONE)
    assert response.status_code == 200 and "is claimed by quinn" in response.content.decode()
    response = client.post(f"/workguide/items/{item.pk}/claim/", follow=True)
    assert "already claimed by quinn" in response.content.decode()
    client.force_login(users["quinn"])
    client.post(f"/workguide/items/{item.pk}/unclaim/")
    assert item_of(run).claimed_by is None
    kinds = list(RunEvent.objects.filter(run=run, kind__startswith="work_item_").values_list("kind", flat=True))
    assert "work_item_claimed" in kinds and "work_item_unclaimed" in kinds


def test_starting_a_group_item_claims_it(client, users):
    run = start(guide_orchestration(assignee={"group": "crew"}), record=employee())
    item = item_of(run)
    client.force_login(users["gina"])
    post(client, item, "next", STEP_ONE)
    assert item_of(run).claimed_by == users["gina"]


def test_two_people_finishing_the_same_item(client, users):
    run = start(guide_orchestration(assignee={"queue": "desk"}), record=employee())
    item = item_of(run)
    second = client.__class__()
    client.force_login(users["quinn"])
    second.force_login(users["mona"])  # a manager may work any item
    post(client, item, "next", STEP_ONE)
    post(second, item, "next", STEP_ONE)
    assert "is done" in post(client, item, "finish", STEP_TWO).content.decode()
    response = post(second, item, "finish", STEP_TWO)
    assert response.status_code == 200
    assert "already completed by quinn" in response.content.decode()
    assert item_of(run).completed_by == users["quinn"]


def test_reassign_needs_the_permission_and_is_logged(client, users, item):
    # alice holds her own item: she may hand it on (issue 17 #12), without the manager's list of every name
    client.force_login(users["alice"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "Hand on" in page and "assignee-options\">" not in page and 'id="reassign-title">Reassign' not in page
    client.force_login(users["mona"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert '<datalist id="assignee-options">' in page and 'value="queue:desk"' in page
    response = client.post(f"/workguide/items/{item.pk}/reassign/", {"assignee": "team:x"}, follow=True)
    assert "Write user:NAME" in response.content.decode()
    response = client.post(f"/workguide/items/{item.pk}/reassign/", {"assignee": "group:nobody"}, follow=True)
    assert "no group" in response.content.decode()
    response = client.post(f"/workguide/items/{item.pk}/reassign/", {"assignee": "group:crew"}, follow=True)
    assert "now goes to group:crew" in response.content.decode()
    assert item_of(item.run).assignee_group.name == "crew"
    assert RunEvent.objects.filter(run=item.run, kind="work_item_reassigned").exists()
    client.force_login(users["alice"])
    assert client.get(f"/workguide/items/{item.pk}/").status_code == 404


def test_comments_are_escaped_kept_in_events_and_swapped_by_htmx(alice, item):
    response = alice.post(f"/workguide/items/{item.pk}/comments/", {"text": "<b>hi</b>\nthere"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="comments"' in html and "<html" not in html
    assert "&lt;b&gt;hi&lt;/b&gt;<br>there" in html
    assert RunEvent.objects.get(run=item.run, kind="comment").data["text"] == "<b>hi</b>\nthere"
    response = alice.post(f"/workguide/items/{item.pk}/comments/", {"text": "   "}, **HX)
    assert "This field is required." in response.content.decode()
    response = alice.post(f"/workguide/items/{item.pk}/comments/", {"text": "plain"})
    assert response.status_code == 302


def test_csrf_is_enforced_on_htmx_posts(users, item):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["alice"])
    assert client.post(flow_url(item), {"action": "next", **STEP_ONE}, **HX).status_code == 403
    client.get(f"/workguide/items/{item.pk}/")
    token = client.cookies["csrftoken"].value
    response = client.post(flow_url(item), {"action": "next", **STEP_ONE}, HTTP_X_CSRFTOKEN=token, **HX)
    assert response.status_code == 200 and "Delivery" in response.content.decode()


# ---------------------------------------------------------------------------
# The record component and the launch button
# ---------------------------------------------------------------------------

def _render(template, user, **context):
    request = RequestFactory().get("/demo/employees/1/")
    request.user = user
    return Template("{% load workguide %}" + template).render(Context({"request": request, **context}))


def test_work_guide_tag_shows_paths_and_the_callers_items(users, run, item):
    record = run.get_record()
    html = _render("{% work_guide record %}", users["alice"], record=record)
    assert "Hire equipment" in html and 'class="stage-path wg-path"' in html
    assert "Enter the details" in html and 'name="ctx" value="component"' in html and "About the hire" in html
    outsider = _render("{% work_guide record %}", users["otto"], record=record)
    assert outsider == ""  # neither an item here nor orchestration.view_runs: nothing about the runs
    viewer = User.objects.create_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_runs"))
    seen = _render("{% work_guide record %}", User.objects.get(pk=viewer.pk), record=record)
    assert "Hire equipment" in seen and "About the hire" not in seen and "Nothing here is waiting for you." in seen
    other = _render("{% work_guide record %}", User.objects.get(pk=viewer.pk), record=employee("Nobody", "Here"))
    assert "No orchestration is running on this record." in other


def test_finishing_in_the_component_swaps_the_whole_component(alice, run, item):
    post(alice, item, "next", {**STEP_ONE, "ctx": "component"})
    response = post(alice, item, "finish", {**STEP_TWO, "ctx": "component"})
    html = response.content.decode()
    dom_id = f"wg-demo-employee-{run.record_pk}"
    assert response["HX-Retarget"] == f"#{dom_id}" and response["HX-Reswap"] == "outerHTML"
    assert f'id="{dom_id}"' in html and "is done" in html and "Review the details" in html
    assert 'class="done"' in html and 'class="current" aria-current="step"' in html


def test_component_partial(alice, run):
    assert alice.get(f"/workguide/records/demo.employee/{run.record_pk}/", **HX).status_code == 200
    assert alice.get("/workguide/records/demo.employee/999999/").status_code == 404
    assert alice.get("/workguide/records/auth.user/1/").status_code == 404
    assert alice.get("/workguide/records/nonsense/1/").status_code == 404


def test_demo_employee_page_includes_the_component(alice, run, item):
    response = alice.get(f"/demo/employees/{run.record_pk}/")
    html = response.content.decode()
    assert response.status_code == 200 and "About the hire" in html and "wg-component" in html


def test_launch_button_and_view(client, users):
    flow = ok_flow()
    orchestration([{"name": "only", "label": "Only", "steps": [ui("do", flow.api_name, label="Do it")]}],
                  api_name="refresh", label="Refresh things")
    record = employee()
    html = _render('{% launch_button "refresh" record %}', users["alice"], record=record)
    assert html == ""  # no permission, no button
    users["alice"].user_permissions.add(Permission.objects.get(codename="launch_orchestration"))
    alice = User.objects.get(pk=users["alice"].pk)
    html = _render('{% launch_button "refresh" record %}', alice, record=record)
    assert 'action="/workguide/launch/"' in html and "Start Refresh things" in html and "csrfmiddlewaretoken" in html
    assert 'name="record_model" value="demo.employee"' in html
    assert _render('{% launch_button "missing" record %}', alice, record=record) == ""

    client.force_login(users["otto"])
    data = {"api_name": "refresh", "record_model": "demo.employee", "record_pk": record.pk,
            "next": f"/demo/employees/{record.pk}/", "token": "a" * 32}
    response = client.post("/workguide/launch/", data, follow=True)
    assert "You may not start orchestrations" in response.content.decode()
    assert not OrchestrationRun.objects.exists()
    client.force_login(alice)
    response = client.post("/workguide/launch/", data)
    assert response.status_code == 302 and response["Location"] == f"/demo/employees/{record.pk}/"
    run = OrchestrationRun.objects.get()
    assert run.record_pk == str(record.pk) and run.started_by == alice
    response = client.post("/workguide/launch/", {**data, "record_pk": "424242", "token": "b" * 32}, follow=True)
    assert "Could not start refresh" in response.content.decode() and "no demo.employee with pk" in response.content.decode()
    response = client.post("/workguide/launch/", {**data, "api_name": "nope", "next": "https://evil.example/",
                                                  "token": "c" * 32})
    assert response["Location"] == "/workguide/"
    assert client.get("/workguide/launch/").status_code == 405


def test_an_assignee_hands_on_what_they_hold_and_nothing_else(client, users):
    """Issue 17 #12: a group member may hand on an item they claimed, not the group's unclaimed one."""
    run = start(guide_orchestration(assignee={"group": "crew"}), record=employee())
    item = item_of(run)
    client.force_login(users["gina"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "Hand on" not in page and ">Claim<" in page
    assert client.post(f"/workguide/items/{item.pk}/reassign/", {"assignee": "user:alice"}).status_code == 404
    client.post(f"/workguide/items/{item.pk}/claim/")
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "Hand on" in page and ">Release<" in page
    response = client.post(f"/workguide/items/{item.pk}/reassign/", {"assignee": "user:alice"}, follow=True)
    assert "now goes to user:alice" in response.content.decode()
    assert item_of(run).assignee_user == users["alice"] and item_of(run).claimed_by is None


def test_a_manager_cannot_finish_an_item_someone_else_claimed(client, users):
    """Issue 17 #11: the claim binds managers on the page as in the API; after releasing it they may."""
    run = start(guide_orchestration(assignee={"queue": "desk"}), record=employee())
    item = item_of(run)
    client.force_login(users["quinn"])
    post(client, item, "next", STEP_ONE)
    client.force_login(users["mona"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "is claimed by quinn" in page and 'name="action"' not in page
    response = post(client, item, "finish", STEP_TWO)
    assert "is claimed by quinn" in response.content.decode()
    assert item_of(run).status == "open" and item_of(run).progress["screen"] == 1
    client.post(f"/workguide/items/{item.pk}/unclaim/")
    assert item_of(run).claimed_by is None
    assert "Screen 2 of 2" in client.get(f"/workguide/items/{item.pk}/").content.decode()


def test_the_untaken_branch_is_skipped_as_soon_as_the_decision_is_taken(client, users):
    """Issue 17 #6: the other branch showed "upcoming" until the run completed."""
    from orchestration import engine as run_engine
    from tests.engine_builders import orchestration, ui
    from tests.workguide_helpers import ok_flow
    from workguide import services

    check = ok_flow()
    orch = orchestration([
        {"name": "ask", "label": "Ask", "steps": [ui("ask", check.api_name)]},
        {"type": "decision", "name": "which", "default": "no",
         "outcomes": [{"name": "yes", "condition": "steps.ask.outputs.ok == true", "goto": "yes"}]},
        {"name": "yes", "label": "Yes branch", "next": "after", "steps": [ui("yes_step", check.api_name)]},
        {"name": "no", "label": "No branch", "next": "after", "steps": [ui("no_step", check.api_name)]},
        {"name": "after", "label": "After", "steps": [ui("after_step", check.api_name)]},
    ])
    run = start(orch, record=employee())
    states = lambda: {s["name"]: s["state"] for s in services.stage_path(run)}  # noqa: E731
    assert states() == {"ask": "current", "yes": "upcoming", "no": "upcoming", "after": "upcoming"}
    ask = item_of(run, "ask")
    services.complete_work_item(ask, users["alice"], {"ok": "on"})
    run.refresh_from_db()
    assert run.status == "running"
    assert states() == {"ask": "done", "yes": "current", "no": "skipped", "after": "upcoming"}
    client.force_login(users["alice"])
    page = client.get(f"/workguide/items/{item_of(run, 'yes_step').pk}/").content.decode()
    assert '<li class="skipped">' in page and "No branch<span class=\"visually-hidden\"> (skipped)" in page
    run_engine.cancel_run(run.pk)
    run.refresh_from_db()
    assert states()["after"] == "skipped" and states()["no"] == "skipped"


def test_the_assignee_reads_why_the_run_was_canceled(client, users, item):
    """Issue 17 #7: the assignee read only "This run is canceled."; now who canceled it and why."""
    from orchestration import engine as run_engine

    operator = User.objects.create_user("olga")
    run_engine.cancel_run(item.run_id, user=operator, reason="The hire fell through")
    client.force_login(users["alice"])
    page = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "This run was canceled by olga. Reason: The hire fell through" in page
    assert "is no longer open: The run was canceled by olga: “The hire fell through”" in page
    partial = client.get(f"/workguide/items/{item.pk}/path/", **HX).content.decode()
    assert "Reason: The hire fell through" in partial


def test_a_change_redraws_the_screen_with_visible_if_and_keeps_what_was_typed(alice, item):
    """Issue 17 #2: visible_if updated only after a failed Finish, and a reload showed the old value."""
    page = alice.get(f"/workguide/items/{item.pk}/").content.decode()
    # Only a field that an expression on the screen reads redraws it: remote (address's visible_if).
    assert page.count(f'hx-post="/workguide/items/{item.pk}/flow/preview/" hx-trigger="change"') == 1
    assert page.index('hx-target="closest .wg-fields"') < page.index(f'name="remote" id="wi{item.pk}-remote"')
    assert "Home address" not in page
    response = alice.post(f"/workguide/items/{item.pk}/flow/preview/",
                          {"ctx": "page", "laptop": "linux", "monitors": "", "remote": "on"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "Home address" in html
    assert "errorlist" not in html and "This field is required" not in html  # no validation yet
    # Only the fields come back (the buttons stay), with the display text merged from the typed values.
    assert html.lstrip().startswith('<div class="wg-fields"') and "Next</button>" not in html
    assert '<option value="linux" selected>' in html and 'name="remote" id="wi' in html
    # Kept as the screen's draft: a reload shows the typed values and the revealed field.
    reloaded = alice.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "Home address" in reloaded and '<option value="linux" selected>' in reloaded
    assert 'name="remote" id="wi{}-remote" checked'.format(item.pk) in reloaded
    assert item_of(item.run).claimed_by is None and item_of(item.run).status == "open"
    # Unticking hides it again, and the draft follows.
    html = alice.post(f"/workguide/items/{item.pk}/flow/preview/", {"ctx": "page", "laptop": "linux"},
                      **HX).content.decode()
    assert "Home address" not in html


def test_preview_is_for_who_may_work_the_item_only(client, users, item):
    client.force_login(users["otto"])
    assert client.post(f"/workguide/items/{item.pk}/flow/preview/", {"remote": "on"}, **HX).status_code == 404
    client.force_login(users["alice"])
    assert client.get(f"/workguide/items/{item.pk}/flow/preview/").status_code == 405
    assert item_of(item.run).progress == {}


def test_finishing_in_the_component_refreshes_it_and_signals_the_host_page(alice, item, run):
    """Issue 17 #5: the record page went stale. The component comes back redrawn (the path moved on) and the
    response fires baton:step-completed for the host page; the demo record pages reload their details on it."""
    import json

    alice.post(flow_url(item), {"action": "next", "ctx": "component", **STEP_ONE}, **HX)
    response = alice.post(flow_url(item), {"action": "finish", "ctx": "component", **STEP_TWO}, **HX)
    assert response.status_code == 200 and response["HX-Retarget"].startswith("#wg-demo-employee-")
    events = json.loads(response["HX-Trigger"])
    assert events["baton:step-completed"] == {
        "item": item.pk, "run": run.pk, "step": "details", "record": {"model": "demo.employee", "pk": str(run.record_pk)},
    }
    html = response.content.decode()
    assert '<li class="done">' in html and '<li class="current" aria-current="step">' in html
    page = alice.get(f"/demo/employees/{run.record_pk}/").content.decode()
    assert 'hx-trigger="baton:step-completed from:body"' in page and 'hx-select="#record-main"' in page


def _launch_setup(users):
    from tests.engine_builders import orchestration_from_dict  # noqa: F401 (the builder below uses it)

    flow = ok_flow()
    orchestration([{"name": "only", "label": "Only", "steps": [ui("do", flow.api_name, label="Do it")]}],
                  api_name="refresh", label="Refresh things",
                  inputs=[{"name": "reason", "type": "text", "required": True},
                          {"name": "count", "type": "number", "default": 2},
                          {"name": "urgent", "type": "boolean"}])
    users["alice"].user_permissions.add(Permission.objects.get(codename="launch_orchestration"))
    return User.objects.get(pk=users["alice"].pk)


def _token(html):
    import re

    return re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)


def test_the_launch_button_asks_for_the_inputs_and_starts_one_run_per_form(client, users):
    """Issue 17 #4: a double click started two runs, and the button could not supply inputs."""
    alice = _launch_setup(users)
    record = employee()
    html = _render('{% launch_button "refresh" record %}', alice, record=record)
    assert '<summary class="button button-quiet">Start Refresh things…</summary>' in html
    assert 'name="input-reason"' in html and 'name="input-count"' in html and 'value="2"' in html
    assert 'name="input-urgent"' in html and "already running" not in html
    token = _token(html)
    assert token != _token(_render('{% launch_button "refresh" record %}', alice, record=record))  # one per form
    client.force_login(alice)
    data = {"api_name": "refresh", "record_model": "demo.employee", "record_pk": record.pk, "token": token,
            "next": f"/demo/employees/{record.pk}/", "input-reason": "new laptop", "input-count": "3",
            "input-urgent": "on"}
    first = client.post("/workguide/launch/", data, follow=True).content.decode()
    run = OrchestrationRun.objects.get()
    assert f"Started Refresh things (run #{run.pk})" in first
    assert run.inputs == {"reason": "new laptop", "count": 3.0, "urgent": True}
    again = client.post("/workguide/launch/", data, follow=True).content.decode()  # the second click
    assert OrchestrationRun.objects.count() == 1
    assert f"run #{run.pk}). This form was sent more than once; only one run was started." in again
    # Another user cannot use someone's token.
    users["mona"].user_permissions.add(Permission.objects.get(codename="launch_orchestration"))
    client.force_login(User.objects.get(pk=users["mona"].pk))
    assert "out of date" in client.post("/workguide/launch/", data, follow=True).content.decode()
    client.force_login(alice)
    for broken in ({**data, "token": ""}, {**data, "token": "x" * 500}):
        assert "out of date" in client.post("/workguide/launch/", broken, follow=True).content.decode()
    assert OrchestrationRun.objects.count() == 1


def test_bad_launch_inputs_are_named_and_leave_the_form_usable(client, users):
    alice = _launch_setup(users)
    record = employee()
    client.force_login(alice)
    token = _token(_render('{% launch_button "refresh" record %}', alice, record=record))
    data = {"api_name": "refresh", "record_model": "demo.employee", "record_pk": record.pk, "token": token,
            "next": "/workguide/", "input-count": "many"}
    html = client.post("/workguide/launch/", data, follow=True).content.decode()
    assert "Could not start refresh" in html and "Count: Enter a number." in html
    html = client.post("/workguide/launch/", {**data, "input-count": "1"}, follow=True).content.decode()
    assert "Could not start refresh" in html and "Reason: This field is required." in html
    assert not OrchestrationRun.objects.exists()
    client.post("/workguide/launch/", {**data, "input-count": "1", "input-reason": "ok"})  # the same form, fixed
    assert OrchestrationRun.objects.get().inputs["reason"] == "ok"


def test_the_launch_button_warns_of_a_run_already_running_on_the_record(client, users):
    alice = _launch_setup(users)
    record = employee()
    client.force_login(alice)
    base = {"api_name": "refresh", "record_model": "demo.employee", "record_pk": record.pk, "next": "/workguide/",
            "input-reason": "first"}
    client.post("/workguide/launch/", {**base, "token": _token(_render('{% launch_button "refresh" record %}',
                                                                       alice, record=record))})
    first = OrchestrationRun.objects.get()
    html = _render('{% launch_button "refresh" record %}', alice, record=record)
    assert f"Refresh things is already running on this record:\n        run #{first.pk}" in html
    assert 'name="another"' in html
    refused = client.post("/workguide/launch/", {**base, "token": _token(html)}, follow=True).content.decode()
    assert "already running on this record" in refused and OrchestrationRun.objects.count() == 1
    client.post("/workguide/launch/", {**base, "token": _token(html), "another": "1"})
    assert OrchestrationRun.objects.count() == 2
    other = employee("Grace", "Hopper")  # another record: no warning
    assert "already running" not in _render('{% launch_button "refresh" record %}', alice, record=other)


def test_values_typed_on_any_screen_are_kept_as_a_draft_as_they_change(alice, users, item):
    """Issue 17 point 5: what is typed on the current screen survives leaving the page, not only submitted
    screens (a screen without visible_if kept nothing until Next)."""
    post(alice, item, "next", STEP_ONE)
    page = alice.get(f"/workguide/items/{item.pk}/").content.decode()
    # Every screen's fields post a draft as they change, naming the screen they belong to.
    assert f'hx-post="/workguide/items/{item.pk}/flow/draft/"' in page and 'name="screen" value="1"' in page
    response = alice.post(f"/workguide/items/{item.pk}/flow/draft/",
                          {"ctx": "page", "screen": "1", "notes": "call <b>first</b>", "contact": "not-yet"}, **HX)
    assert response.status_code == 204
    reloaded = alice.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "call &lt;b&gt;first&lt;/b&gt;</textarea>" in reloaded and 'value="not-yet"' in reloaded
    assert "errorlist" not in reloaded  # a draft is not validated
    # A late draft of a screen the person has left changes nothing (it would land on the wrong screen).
    before = item_of(item.run).progress
    assert alice.post(f"/workguide/items/{item.pk}/flow/draft/", {"screen": "0", "laptop": "linux"},
                      **HX).status_code == 204
    assert item_of(item.run).progress == before
    # Back and Next again: the draft of screen two is still there; finishing clears it with the item.
    post(alice, item, "back", {"notes": "call <b>first</b>"})  # Back sends the screen as it stands
    post(alice, item, "next", STEP_ONE)
    assert "call &lt;b&gt;first&lt;/b&gt;" in alice.get(f"/workguide/items/{item.pk}/").content.decode()
    # Nobody else's draft: an outsider gets 404, an item no longer open keeps what it had.
    alice.logout()
    alice.force_login(users["otto"])
    assert alice.post(f"/workguide/items/{item.pk}/flow/draft/", {"screen": "1", "notes": "x"}, **HX).status_code == 404
    alice.force_login(users["alice"])
    assert alice.get(f"/workguide/items/{item.pk}/flow/draft/").status_code == 405


def test_the_component_tells_the_requester_who_it_waits_on_and_lists_past_runs(client, users):
    """Issue 17 point 6: a requester (who started the runs, holds no item and may not view runs) reads who the run
    is waiting on and when it is due, and the record's earlier runs with their outcome."""
    from orchestration import engine

    record = employee()
    orch = guide_orchestration(assignee={"group": "crew"})
    running = start(orch, record=record, user=users["alice"])
    waiting = item_of(running)
    due = timezone.now() + datetime.timedelta(days=2)
    WorkItem.objects.filter(pk=waiting.pk).update(due_at=due)
    services.claim(item_of(running), users["gina"])
    canceled = start(orch, record=record, user=users["alice"])
    engine.cancel_run(canceled.pk, user=users["mona"], reason="Asked twice <oops>")
    done = start(orch, record=record, user=users["alice"])
    OrchestrationRun.objects.filter(pk=done.pk).update(status="completed", ended_at=timezone.now())
    start(orch, record=employee("Other", "Person"), user=users["alice"])  # another record: not listed

    client.force_login(users["alice"])
    response = client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX)
    assert response.status_code == 200
    html = response.content.decode()
    # Who the running run waits on, and by when.
    assert "Waiting on" in html and "Enter the details" in html and "group crew" in html
    assert "claimed by gina" in html and f"due <time datetime=\"{timezone.localtime(due).isoformat()}\">{timezone.localtime(due):%Y-%m-%d %H:%M}</time>" in html
    # Earlier runs of the record with their outcome, newest first; the cancel reason escaped.
    assert "Earlier runs" in html
    assert html.index(f"#{done.pk}") < html.index(f"#{canceled.pk}")
    assert "Completed" in html and "Canceled by mona" in html and "Asked twice &lt;oops&gt;" in html
    assert "About the hire" not in html  # not hers to fill in
    # Someone with nothing to do with the record still learns nothing.
    client.force_login(users["otto"])
    assert client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX).status_code == 404


def test_my_work_sorts_by_due_date_created_and_priority(client, users, run):
    """Issue 17 point 4: sort by due date, created, priority (a step's priority, copied to its item)."""
    item = item_of(run)
    assert item.priority == 50  # the default
    now = timezone.now()
    WorkItem.objects.filter(pk=item.pk).update(label="Middle", priority=50, due_at=now + datetime.timedelta(days=2),
                                               created_at=now - datetime.timedelta(hours=2))
    WorkItem.objects.bulk_create([
        _copy(item, 1, priority=90, due_at=None, created_at=now - datetime.timedelta(hours=3)),
        _copy(item, 2, priority=10, due_at=now + datetime.timedelta(days=1), created_at=now - datetime.timedelta(hours=1)),
    ])
    client.force_login(users["alice"])

    def order(query):
        return [i.label for i in client.get(f"/workguide/results/?{query}", **HX).context["items"]]

    assert order("") == ["Copy 2", "Middle", "Copy 1"]  # newest first
    assert order("sort=oldest") == ["Copy 1", "Middle", "Copy 2"]
    assert order("sort=due") == ["Copy 2", "Middle", "Copy 1"]  # no due date last
    assert order("sort=priority") == ["Copy 1", "Middle", "Copy 2"]
    assert order("sort=bogus") == ["Copy 2", "Middle", "Copy 1"]
    assert "priority 90" in client.get("/workguide/?sort=priority").content.decode()


def test_a_step_priority_reaches_its_work_item(users):
    flow = ok_flow()
    orch = orchestration([{"name": "only", "steps": [ui("do", flow.api_name, label="Do", priority=85)]}])
    assert item_of(start(orch), step="do").priority == 85


def test_my_work_filters_by_record_and_process_data_and_shows_a_completed_tab(client, users):
    """Issue 17 point 4: filter by record and by a field of the item's inputs; a tab of what the caller finished."""
    ada = start(guide_orchestration(), record=employee())
    start(guide_orchestration(), record=employee("Grace", "Hopper"))
    client.force_login(users["alice"])

    def labels(query):
        response = client.get(f"/workguide/results/?{query}", **HX)
        assert response.status_code == 200
        return sorted(i.record_label for i in response.context["items"])

    assert labels("record=hopp") == ["Grace Hopper"]
    assert labels("data_field=who&data_value=lovel") == ["Ada Lovelace"]  # the step's input "who"
    assert labels("data_field=who") == ["Ada Lovelace", "Grace Hopper"]
    assert labels("data_field=nothing_here") == []
    # A name that is not a plain field name is refused with a message, never used as a lookup.
    page = client.get("/workguide/?data_field=who__contains&data_value=x")
    assert page.status_code == 200 and "A field name" in page.content.decode()
    assert labels("data_field=who__contains&data_value=x") == ["Ada Lovelace", "Grace Hopper"]
    # The completed tab lists what alice finished, newest first; the open list no longer has it.
    post(client, item_of(ada), "next", STEP_ONE)
    post(client, item_of(ada), "finish", STEP_TWO)
    done = client.get("/workguide/results/?tab=completed", **HX)
    assert [i.pk for i in done.context["items"]] == [item_of(ada).pk] and "finished" in done.content.decode()
    assert item_of(ada).pk not in [i.pk for i in client.get("/workguide/results/", **HX).context["items"]]
    client.force_login(users["gina"])
    assert list(client.get("/workguide/results/?tab=completed", **HX).context["items"]) == []


def test_my_work_live_check_answers_204_until_an_item_arrives_or_leaves(client, users, run,
                                                                         django_assert_max_num_queries):
    """Issue 17 point 4: the page polls with the version it shows; unchanged costs one query and swaps nothing."""
    import re

    client.force_login(users["alice"])
    page = client.get("/workguide/").content.decode()
    poll = re.search(r'id="wg-poll" hidden hx-get="([^"]+)" hx-trigger="every 1.5s"', page)
    assert poll
    url = poll.group(1).replace("&amp;", "&")
    with django_assert_max_num_queries(3) as queries:  # the session, the user, the check
        assert client.get(url, **HX).status_code == 204
    assert len([q for q in queries.captured_queries if "workguide_workitem" in q["sql"]]) == 1
    second = start(guide_orchestration(), record=employee("Grace", "Hopper"))  # arrives
    response = client.get(url, **HX)
    assert response.status_code == 200 and "Grace Hopper" in response.content.decode()
    assert 'id="wg-counts" aria-label="Your open items by source" hx-swap-oob="true"' in response.content.decode()
    assert "HX-Push-Url" not in response
    url = re.search(r'id="wg-poll" hidden hx-get="([^"]+)"', response.content.decode()).group(1).replace("&amp;", "&")
    assert client.get(url, **HX).status_code == 204
    from orchestration import engine

    engine.cancel_run(second.pk, reason="gone")  # leaves
    assert client.get(url, **HX).status_code == 200
    # Someone else's item arriving changes nothing for alice.
    url = re.search(r'id="wg-poll" hidden hx-get="([^"]+)"',
                    client.get(url, **HX).content.decode()).group(1).replace("&amp;", "&")
    start(guide_orchestration(assignee={"user": "otto"}), record=employee("Otto", "Else"))
    assert client.get(url, **HX).status_code == 204


def test_the_component_live_check_answers_204_until_an_item_on_the_record_opens_or_closes(alice, users, run, item):
    import re

    url_of = lambda html: re.search(r'<div hidden hx-get="([^"]+)" hx-trigger="every 1.5s"', html).group(1)  # noqa: E731
    html = alice.get(f"/workguide/records/demo.employee/{run.record_pk}/", **HX).content.decode()
    url = url_of(html)
    assert url.startswith(f"/workguide/records/demo.employee/{run.record_pk}/?known=")
    assert alice.get(url, **HX).status_code == 204
    start(guide_orchestration(assignee={"group": "crew"}), record=run.get_record(), user=users["alice"])  # she asks
    response = alice.get(url, **HX)
    assert response.status_code == 200 and "group crew" in response.content.decode()
    url = url_of(response.content.decode())
    assert alice.get(url, **HX).status_code == 204
    post(alice, item, "next", STEP_ONE)
    post(alice, item, "finish", STEP_TWO)  # one closes, the next opens
    assert alice.get(url, **HX).status_code == 200
    alice.force_login(users["otto"])
    assert alice.get(url, **HX).status_code == 404  # the check never answers before the permission


def test_saved_filters_are_kept_per_user_and_only_my_works_filter_names(client, users):
    """Issue 17 point 4: saved filters."""
    from workguide.models import SavedFilter

    start(guide_orchestration(), record=employee("Grace", "Hopper"))
    client.force_login(users["alice"])
    response = client.post("/workguide/filters/", {"name": "  Hopper   by due ", "record": "hopper", "sort": "due",
                                                   "evil": "x", "page": "3"})
    assert response.status_code == 302 and response["Location"] == "/workguide/?record=hopper&sort=due"
    saved = SavedFilter.objects.get(user=users["alice"])
    assert (saved.name, saved.query) == ("Hopper by due", "record=hopper&sort=due")
    page = client.get("/workguide/").content.decode()
    assert 'hx-get="/workguide/filters/saved/" hx-trigger="load"' in page  # loaded after the page shows
    listed = client.get("/workguide/filters/saved/", **HX).content.decode()
    assert 'href="/workguide/?record=hopper&amp;sort=due">Hopper by due</a>' in listed
    # Without JavaScript the page's query string is sent instead; the same name replaces the filters.
    client.post("/workguide/filters/", {"name": "Hopper by due", "query": "q=grace&tab=completed&x=1"})
    assert SavedFilter.objects.get(user=users["alice"]).query == "tab=completed&q=grace"
    # htmx: a redirect header; nothing to save or no name: a message, nothing stored.
    response = client.post("/workguide/filters/", {"name": "Mine", "source": "me"}, **HX)
    assert response.status_code == 204 and response["HX-Redirect"] == "/workguide/?source=me"
    client.post("/workguide/filters/", {"name": "Empty"})
    client.post("/workguide/filters/", {"name": " ", "q": "x"})
    assert sorted(SavedFilter.objects.values_list("name", flat=True)) == ["Hopper by due", "Mine"]
    # Another user neither sees nor deletes them.
    client.force_login(users["gina"])
    assert "Hopper by due" not in client.get("/workguide/filters/saved/", **HX).content.decode()
    assert client.post(f"/workguide/filters/{saved.pk}/delete/").status_code == 404
    client.force_login(users["alice"])
    assert client.post(f"/workguide/filters/{saved.pk}/delete/").status_code == 302
    assert list(SavedFilter.objects.values_list("name", flat=True)) == ["Mine"]


def test_a_paused_runs_stages_ahead_are_upcoming_not_skipped(client, users):
    """Review walk: the item page of a paused run struck every stage ahead through as skipped."""
    from orchestration import waits

    check = ok_flow()
    orch = orchestration([
        {"name": "ask", "label": "Ask", "steps": [ui("ask", check.api_name)]},
        {"type": "decision", "name": "which", "default": "no",
         "outcomes": [{"name": "yes", "condition": "steps.ask.outputs.ok == true", "goto": "yes"}]},
        {"name": "yes", "label": "Yes branch", "next": "after", "steps": [ui("yes_step", check.api_name)]},
        {"name": "no", "label": "No branch", "next": "after", "steps": [ui("no_step", check.api_name)]},
        {"name": "after", "label": "After", "steps": [ui("after_step", check.api_name)]},
    ])
    run = start(orch, record=employee())
    waits.pause_run(run.pk)
    run = OrchestrationRun.objects.get(pk=run.pk)
    assert run.status == "paused"
    assert {s["name"]: s["state"] for s in services.stage_path(run)} == {
        "ask": "current", "yes": "upcoming", "no": "upcoming", "after": "upcoming"}
    client.force_login(users["alice"])
    page = client.get(f"/workguide/items/{item_of(run, 'ask').pk}/").content.decode()
    assert "skipped" not in page and page.count('<li class="upcoming">') == 3


def test_the_field_a_failed_screen_check_reads_is_marked(alice, item):
    """Review walk: "Pick between 0 and 3 monitors." showed at the top only; the Monitors field was not marked."""
    import re

    html = post(alice, item, "next", {"laptop": "mac", "monitors": "7"}).content.decode()
    top = re.search(r'<div class="errors" role="alert">(.*?)</div>', html, re.S).group(1)
    assert "Pick between 0 and 3 monitors." in top
    monitors = re.search(r'<input[^>]*name="monitors"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in monitors and "_error" in monitors  # described by its error text
    under = re.search(r'<ul class="errorlist" id="wi\d+-monitors_error">(.*?)</ul>', html, re.S)
    assert under and "Pick between 0 and 3 monitors." in under.group(1)
    laptop = re.search(r'<select[^>]*name="laptop"[^>]*>', html).group(0)
    assert "aria-invalid" not in laptop  # the check does not read it
    assert html.count("Pick between 0 and 3 monitors.") == 2
