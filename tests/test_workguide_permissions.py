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
    # the record component shows the item's form only to those who may work it
    component = client.get(f"/workguide/records/demo.employee/{run.record_pk}/", **HX)
    assert component.status_code == 200
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
    assert response.status_code == (302 if who == "mona" else 404)
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
    assert "already completed by alice" in html and 'name="action"' not in html
