"""Who may see and work an item: each page and partial as assignee, group member, queue member, outsider, manager."""
import pytest

from tests.workguide_helpers import STEP_ONE, employee, guide_orchestration, item_of, people, start

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}

# (assignee of the item, who looks) -> may they see and work it?
CASES = [
    ({"user": "alice"}, "alice", True),
    ({"user": "alice"}, "gina", False),
    ({"group": "crew"}, "gina", True),
    ({"group": "crew"}, "alice", False),
    ({"queue": "desk"}, "quinn", True),     # a direct member of the queue
    ({"queue": "desk"}, "quentin", True),   # a member of one of the queue's groups
    ({"queue": "desk"}, "gina", False),
    ({"user": "alice"}, "otto", False),
    ({"group": "crew"}, "otto", False),
    ({"queue": "desk"}, "otto", False),
    ({"user": "alice"}, "mona", True),      # workguide.manage_workitem
    ({"queue": "desk"}, "mona", True),
]


def _id(case):
    assignee, who, allowed = case
    return f"{next(iter(assignee))}-{who}-{'ok' if allowed else '404'}"


@pytest.fixture
def users():
    return people()


@pytest.mark.parametrize("assignee,who,allowed", CASES, ids=[_id(c) for c in CASES])
def test_pages_and_partials(client, users, assignee, who, allowed):
    run = start(guide_orchestration(assignee=assignee), record=employee())
    item = item_of(run)
    client.force_login(users[who])
    base = f"/workguide/items/{item.pk}"
    gets = [f"{base}/", f"{base}/flow/", f"{base}/path/"]
    for url in gets:
        for headers in ({}, HX):
            response = client.get(url, **headers)
            assert response.status_code == (200 if allowed else 404), (url, headers)
    # My Work lists the item only for its assignees (a manager's My Work is their own work too)
    listed = item.pk in [i.pk for i in client.get("/workguide/results/", **HX).context["items"]]
    assert listed == (allowed and who != "mona")
    # the record component: only those with an item on the record see it (and the item's form); 404 for others
    component = client.get(f"/workguide/records/demo.employee/{run.record_pk}/", **HX)
    assert component.status_code == (200 if allowed else 404)
    assert ("About the hire" in component.content.decode()) == allowed
    # actions
    posts = [
        (f"{base}/flow/", {"action": "next", **STEP_ONE}),
        (f"{base}/comments/", {"text": "hello"}),
        (f"{base}/claim/", {}),
        (f"{base}/unclaim/", {}),
    ]
    for url, data in posts:
        response = client.post(url, data, **HX)
        assert (response.status_code != 404) == allowed, url
        if not allowed:
            assert response.status_code == 404
    response = client.post(f"{base}/reassign/", {"assignee": "user:alice"})
    # managers, and the holder of an item given to them by name, may reassign (issue 17 #12)
    assert response.status_code == (302 if who == "mona" or assignee == {"user": who} else 404)
    item.refresh_from_db()
    if not allowed:
        assert item.progress == {} and item.claimed_by is None


def test_outsider_gets_404_on_an_unknown_item_too(client, users):
    client.force_login(users["otto"])
    assert client.get("/workguide/items/987654/").status_code == 404
    assert client.post("/workguide/items/987654/flow/", {"action": "next"}, **HX).status_code == 404


def test_completed_items_stay_visible_read_only_to_their_assignee(client, users):
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    item.complete(users["alice"], {**STEP_ONE, "monitors": 1, "needed_by": "2030-01-01"})
    client.force_login(users["alice"])
    html = client.get(f"/workguide/items/{item.pk}/").content.decode()
    assert "You completed “Enter the details”." in html and 'name="action"' not in html


def test_a_completed_item_shows_what_was_submitted_to_those_who_may_see_it(client, users):
    """Issue 17 #10: a completed item showed only "already completed by bob", even to bob."""
    run = start(guide_orchestration(), record=employee())
    item = item_of(run)
    item.complete(users["alice"], {"laptop": "linux", "monitors": "2", "remote": "on", "address": "1 Main St",
                                   "needed_by": "2030-01-15", "extras": ["mouse", "dock"], "notes": "<b>soon</b>"})
    expected = ["<dt>Laptop</dt><dd>Linux laptop</dd>", "<dt>Monitors</dt><dd>2</dd>",
                "<dt>Works remotely</dt><dd>Yes</dd>", "<dt>Home address</dt><dd>1 Main St</dd>",
                "<dt>Needed by</dt><dd>2030-01-15</dd>", "<dt>Extras</dt><dd>mouse, dock</dd>",
                "<dt>Call at</dt><dd>—</dd>", "<dt>Notes</dt><dd>&lt;b&gt;soon&lt;/b&gt;</dd>"]
    for who, heading in (("alice", "You completed “Enter the details”."),
                         ("mona", "“Enter the details” was already completed by alice.")):
        client.force_login(users[who])
        html = client.get(f"/workguide/items/{item.pk}/").content.decode()
        assert heading in html and "What was submitted" in html, who
        for row in expected:
            assert row in html, (who, row)
    for who in ("gina", "otto"):  # neither assignee nor manager: nothing, not even that it exists
        client.force_login(users[who])
        assert client.get(f"/workguide/items/{item.pk}/").status_code == 404


# ---------------------------------------------------------------------------
# Run progress on a record: /workguide/records/<model>/<pk>/ and {% work_guide record %}
# ---------------------------------------------------------------------------

def _tag(user, record):
    from django.contrib.auth.models import User
    from django.template import Context, Template
    from django.test import RequestFactory

    request = RequestFactory().get("/demo/")
    request.user = User.objects.get(pk=user.pk)  # fresh: no cached permissions
    return Template("{% load workguide %}{% work_guide record %}").render(Context({"request": request,
                                                                                  "record": record}))


def _grant(user, codename):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_an_outsider_learns_nothing_about_a_records_runs_or_whether_it_exists(client, users):
    """No item on the record, no view_runs: the same 404 for a record with runs, one without, one that
    does not exist and a model that is not a record model; the tag renders nothing at all."""
    busy = employee()
    start(guide_orchestration(), record=busy)
    idle = employee("Idle", "Person")
    client.force_login(users["otto"])
    answers = [client.get(url, **HX) for url in (
        f"/workguide/records/demo.employee/{busy.pk}/", f"/workguide/records/demo.employee/{idle.pk}/",
        "/workguide/records/demo.employee/987654/", "/workguide/records/auth.user/1/",
        "/workguide/records/nonsense/1/",
    )]
    assert [a.status_code for a in answers] == [404] * 5
    # The 404 page is the site's styled page now (issue 17 #8): it carries the signed-in user's CSRF token,
    # masked afresh for every response. Apart from that token the five answers are the same bytes.
    import re

    def unmasked(content):
        return re.sub(rb'(X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[A-Za-z0-9]+', rb"\1TOKEN", content)

    assert len({unmasked(a.content) for a in answers}) == 1
    assert b"TOKEN" in unmasked(answers[0].content)
    assert _tag(users["otto"], busy) == "" and _tag(users["otto"], idle) == ""


def test_view_runs_sees_every_running_orchestration_on_a_record(client, users):
    record = employee()
    start(guide_orchestration(), record=record)
    start(guide_orchestration(assignee={"group": "crew"}, api_name="other_hire"), record=record)
    viewer = _grant(users["otto"], "view_runs")
    client.force_login(viewer)
    response = client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX)
    assert response.status_code == 200
    assert response.content.decode().count('class="stage-path wg-path"') == 2
    assert "About the hire" not in response.content.decode()  # seeing runs is not working their items
    assert client.get("/workguide/records/demo.employee/987654/", **HX).status_code == 404
    assert _tag(viewer, record).count('class="stage-path wg-path"') == 2


def test_an_assignee_sees_only_the_runs_they_have_an_item_in(client, users):
    record = employee()
    start(guide_orchestration(), record=record)  # alice's
    start(guide_orchestration(assignee={"group": "crew"}), record=record)  # gina's group: not alice's business
    client.force_login(users["alice"])
    response = client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="stage-path wg-path"') == 1 and html.count("About the hire") == 1
    assert _tag(users["alice"], record).count('class="stage-path wg-path"') == 1
    # an item of another run on another record gives nothing here
    assert client.get(f"/workguide/records/demo.employee/{employee('Else', 'Where').pk}/", **HX).status_code == 404


def test_a_closed_item_still_shows_its_runs_path(client, users):
    """'Has an item' means any item the user may see, open or closed: finishing one's step keeps the path."""
    record = employee()
    run = start(guide_orchestration(second_assignee={"group": "crew"}), record=record)
    item = item_of(run)
    item.complete(users["alice"], {**STEP_ONE, "monitors": 1, "needed_by": "2030-01-01"})
    client.force_login(users["alice"])
    response = client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'class="current" aria-current="step"' in html and "Review" in html
    assert "Nothing here is waiting for you." in html


def test_an_item_given_to_someone_else_no_longer_shows_the_run(client, users):
    from workguide import services

    record = employee()
    run = start(guide_orchestration(), record=record)
    client.force_login(users["alice"])
    url = f"/workguide/records/demo.employee/{record.pk}/"
    assert client.get(url, **HX).status_code == 200
    services.reassign(item_of(run), users["mona"], "user:quinn")
    assert client.get(url, **HX).status_code == 404
    client.force_login(users["quinn"])
    assert client.get(url, **HX).status_code == 200
