"""Issue 17, points 1 and 3 on the pages: delegation from My Work, bulk claim/release/reassign with a result per
item, release on the item page, the managers' team view; My Work's query count with a delegation in force."""
import datetime

import pytest
from django.utils import timezone

from tests.workguide_helpers import employee, guide_orchestration, item_of, people, start
from workguide.models import Delegation, WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    return people()


def group_items(n=3):
    orch = guide_orchestration(assignee={"group": "crew"})
    return [item_of(start(orch, record=employee(first=f"E{i}"))) for i in range(n)]


def local(dt):
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def test_delegation_set_from_my_work_sends_new_work_to_the_substitute(client, users):
    client.force_login(users["alice"])
    now = timezone.now()
    answer = client.post("/workguide/delegation/", {"substitute": "gina", "starts": local(now - datetime.timedelta(minutes=5)),
                                                     "ends": local(now + datetime.timedelta(days=3))})
    assert answer.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.user, delegation.substitute, delegation.created_by) == (users["alice"], users["gina"], users["alice"])
    item = item_of(start(guide_orchestration(), record=employee()))
    assert item.assignee_user == users["gina"] and item.delegated_from == users["alice"]
    page = client.get("/workguide/").content.decode()
    assert "your new work goes to <strong>gina</strong>" in page and "delegated from alice" in page
    assert "Delegated from" in client.get(f"/workguide/items/{item.pk}/").content.decode()
    # bad input: the form says where, nothing stored
    bad = client.post("/workguide/delegation/", {"substitute": "nobody", "starts": local(now), "ends": local(now)})
    assert bad.status_code == 400 and "No user" in bad.content.decode() and Delegation.objects.count() == 1
    ended = client.post(f"/workguide/delegation/{delegation.pk}/end/")
    assert ended.status_code == 302 and not Delegation.objects.exists()
    assert client.post(f"/workguide/delegation/{delegation.pk}/end/").status_code == 404


def test_bulk_claim_gives_a_result_per_item(client, users):
    first, second, third = group_items()
    WorkItem.objects.filter(pk=second.pk).update(claimed_by=users["mona"])  # someone else holds this one
    client.force_login(users["gina"])
    answer = client.post("/workguide/bulk/", {"action": "claim", "items": [first.pk, second.pk, third.pk, 999999]})
    assert answer.status_code == 200
    results = {r["pk"]: r for r in answer.context["bulk_results"]}
    assert results[first.pk]["ok"] and results[third.pk]["ok"]
    assert not results[second.pk]["ok"] and "claimed by mona" in results[second.pk]["text"]
    assert results[999999] == {"pk": 999999, "label": "Item 999999", "ok": False, "text": "not found"}
    assert set(WorkItem.objects.filter(claimed_by=users["gina"]).values_list("pk", flat=True)) == {first.pk, third.pk}
    page = answer.content.decode()
    assert "✓ claimed" in page and "✗" in page
    released = client.post("/workguide/bulk/", {"action": "release", "items": [first.pk, second.pk]})
    results = {r["pk"]: r for r in released.context["bulk_results"]}
    assert results[first.pk]["ok"] and not results[second.pk]["ok"]
    assert WorkItem.objects.get(pk=first.pk).claimed_by is None
    handed = client.post("/workguide/bulk/", {"action": "reassign", "assignee": "user:quinn", "items": [third.pk]})
    assert handed.context["bulk_results"][0]["ok"] and WorkItem.objects.get(pk=third.pk).assignee_user == users["quinn"]
    # a reassign without an assignee is refused as a whole, nothing changed
    refused = client.post("/workguide/bulk/", {"action": "reassign", "items": [first.pk]}, follow=True)
    assert "Say who gets them" in refused.content.decode()


def test_release_on_the_item_page_for_a_user_item_too(client, users):
    item = item_of(start(guide_orchestration(), record=employee()))
    client.force_login(users["alice"])
    client.post(f"/workguide/items/{item.pk}/claim/")
    assert WorkItem.objects.get(pk=item.pk).claimed_by == users["alice"]
    assert 'action="/workguide/items/%d/unclaim/"' % item.pk in client.get(f"/workguide/items/{item.pk}/").content.decode()
    client.post(f"/workguide/items/{item.pk}/unclaim/")
    assert WorkItem.objects.get(pk=item.pk).claimed_by is None


def test_team_view_for_managers_shows_holders_and_overdue(client, users):
    first, second, _ = group_items()
    WorkItem.objects.filter(pk=first.pk).update(claimed_by=users["gina"], due_at=timezone.now() - datetime.timedelta(days=1))
    client.force_login(users["gina"])
    assert client.get("/workguide/team/").status_code == 403
    client.force_login(users["mona"])
    page = client.get("/workguide/team/")
    assert page.status_code == 200
    assert page.context["teams"] == [{"key": "group:crew", "open": 3, "overdue": 1, "unclaimed": 2}]
    assert page.context["holders"] == [{"claimed_by__username": "gina", "held": 1, "overdue": 1}]
    assert page.context["items"][0].pk == first.pk  # soonest due first
    assert client.get("/workguide/team/?team=queue:desk").context["page"].paginator.count == 0
    assert "Team view" in client.get("/workguide/").content.decode()
    # bulk from the team view answers with the team view and a result per item
    answer = client.post("/workguide/bulk/", {"from": "team", "action": "release", "items": [first.pk, second.pk]})
    assert answer.templates[0].name == "workguide/team.html"
    assert [r["ok"] for r in answer.context["bulk_results"]] == [True, False]
    assert answer.context["holders"] == []


def test_my_work_query_count_with_a_delegation_in_force(client, users, django_assert_max_num_queries):
    orch = guide_orchestration()
    now = timezone.now()
    start(orch, record=employee())
    client.force_login(users["gina"])
    Delegation.objects.create(user=users["alice"], substitute=users["gina"], starts=now - datetime.timedelta(days=1),
                              ends=now + datetime.timedelta(days=1))
    with django_assert_max_num_queries(12) as few:
        response = client.get("/workguide/")
    assert response.context["counts"]["me"] == 1
    for i in range(30):
        start(orch, record=employee(first=f"E{i}"))  # delegated: go to gina
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/workguide/")
    assert response.context["counts"]["all"] == 31
    assert WorkItem.objects.filter(delegated_from=users["alice"]).count() == 30
