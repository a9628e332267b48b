"""The record component's query budget: a fixed number of queries whatever the number of runs and items."""
import pytest

from orchestration import engine
from tests.workguide_helpers import STEP_ONE, STEP_TWO, employee, guide_orchestration, item_of, people, start
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def users():
    return people()


def _finish(item, user):
    item.complete(user, {**STEP_ONE, **STEP_TWO, "needed_by": "2030-01-15"})


def _busy_record(users, runs):
    """A record with ``runs`` running runs (items for gina by name and for her group), and past runs ended
    every way: completed, canceled with a reason."""
    record = employee()
    by_name = guide_orchestration(assignee={"user": "gina"}, second_assignee={"group": "crew"})
    by_group = guide_orchestration(assignee={"group": "crew"}, second_assignee={"user": "alice"})
    for i in range(runs):
        start(by_name if i % 2 else by_group, record=record, user=users["alice"])
    done = start(by_group, record=record, user=users["alice"])
    _finish(item_of(done), users["gina"])
    item_of(done, "review").complete(users["alice"], {"ok": "on"})
    canceled = start(by_name, record=record, user=users["alice"])
    engine.cancel_run(canceled.pk, user=users["mona"], reason="Started by mistake")
    return record


@pytest.mark.parametrize("viewer", ["gina", "alice", "mona"])
def test_the_record_component_reads_at_most_ten_queries_whatever_the_number_of_runs(
        client, users, viewer, django_assert_max_num_queries):
    """gina holds items by name and through her group, alice requested every run and holds none, mona manages."""
    few = _busy_record(users, 2)
    many = _busy_record(users, 7)
    client.force_login(users[viewer])
    counts = []
    for record in (few, many):
        url = f"/workguide/records/demo.employee/{record.pk}/"
        client.get(url, **HX)  # plans and flow specs cached, as on any page after the first
        with django_assert_max_num_queries(10) as captured:
            response = client.get(url, **HX)
        assert response.status_code == 200
        counts.append(len(captured))
        html = response.content.decode()
        assert "Hire equipment" in html and "Started by mistake" in html
        if viewer == "gina":
            assert html.count('name="ctx" value="component"') == WorkItem.objects.filter(
                record_pk=str(record.pk), status="open").exclude(assignee_user__username="alice").count()
    assert counts[0] == counts[1]  # seven runs cost what two do


def test_a_paused_run_is_drawn_with_the_live_runs_not_listed_as_stopped_with_an_error(client, users):
    """The component listed a paused run among the earlier runs as "Stopped with an error"; it stands where it
    stopped, and its item's panel says the run is paused (read from the item's run, no query of its own)."""
    from orchestration import waits

    record = employee()
    run = start(guide_orchestration(assignee={"user": "gina"}), record=record, user=users["alice"])
    waits.pause_run(run.pk)
    client.force_login(users["gina"])
    html = client.get(f"/workguide/records/demo.employee/{record.pk}/", **HX).content.decode()
    assert "Stopped with an error" not in html and "Earlier runs" not in html
    assert 'class="current" aria-current="step"' in html and "Collect details" in html
    assert "The run is paused" in html
