"""DESIGN §10 driven from outside, through its public names only.

Definitions go in as YAML through ``python manage.py import_definitions FILE
--activate``; runs are launched, followed and operated through the REST API
with a token (``/api/...``), events sent with ``orchestration.send_event`` /
``send_event_for``, timers fired with ``python manage.py orchestration_sweep``.
Nothing here calls an engine function, so each test is what an outside
acceptance test would see. Background flows run with the documented setting
``BATON_STEP_EXECUTION=in_process`` (no worker needed); effects that go out on
commit (child cancels, mails) are run as they would be after each request.
"""
import datetime
import io
import json
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import orchestration
from orchestration.definition_files import DefinitionFileError, import_document
from orchestration.models import Orchestration, OrchestrationRun
from tests.api_support import api, clear_throttles, grant, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

FLOWS = """
flows:
  - api_name: c_double
    type: autolaunched
    inputs: [{name: n, type: number, required: true}]
    outputs: [{name: twice, type: number}]
    elements: [{type: assign, set: {twice: 'n * 2.0'}}]
  - api_name: c_take
    type: autolaunched
    inputs: [{name: values, type: list}, {name: text, type: text}]
    outputs: [{name: values, type: list}, {name: text, type: text}]
    elements: [{type: assign, set: {ran: 'true'}}]
  - api_name: c_boom
    type: autolaunched
    elements: [{type: assign, set: {x: '1 / 0'}}]
  - api_name: c_vote
    type: screen
    outputs: [{name: approve, type: boolean}]
    screens:
      - name: main
        fields: [{name: approve, type: boolean, label: Approve}]
"""


class Outside:
    """What an outside test holds: a token client per user, the import command, the sweep command."""

    def __init__(self, tmp_path, capture):
        self.tmp_path = tmp_path
        self.capture = capture
        self.admin = User.objects.create_superuser("root", email="root@example.com", password=None)
        self.client = token_client(self.admin)
        self.files = 0

    def load(self, text, flows=True):
        """Import and activate a definition file the public way."""
        self.files += 1
        path = self.tmp_path / f"definitions_{self.files}.yaml"
        path.write_text((FLOWS if flows else "") + textwrap.dedent(text))
        errors = io.StringIO()
        with self.capture(execute=True):
            try:
                call_command("import_definitions", str(path), "--activate", stdout=io.StringIO(), stderr=errors)
            except CommandError as exc:
                raise AssertionError(f"{exc}\n{errors.getvalue()}") from None

    def post(self, url, body=None, client=None):
        with self.capture(execute=True):
            return (client or self.client).post(url, body or {}, format="json")

    def get(self, url, client=None):
        response = (client or self.client).get(url)
        assert response.status_code == 200, response.content
        return response.json()

    def launch(self, api_name, inputs=None, client=None):
        response = self.post(f"/api/orchestrations/{api_name}/launch/", {"inputs": inputs or {}}, client)
        assert response.status_code == 201, response.content
        return response.json()

    def run(self, run_id):
        return self.get(f"/api/runs/{run_id}/")

    def step(self, run_id, name, body=None):
        """The step row of ``name`` (not an instance row) in the run's latest stage visit holding it."""
        body = body or self.run(run_id)
        rows = [s for stage in body["stages"] for s in stage["steps"]
                if s["name"] == name and s.get("instance_index") is None]
        assert rows, f"no step {name} in {body['stages']}"
        return rows[-1]

    def instances(self, run_id, name, body=None):
        body = body or self.run(run_id)
        rows = [s for stage in body["stages"] for s in stage["steps"]
                if s["name"] == name and s.get("instance_index") is not None]
        return sorted(rows, key=lambda s: s["instance_index"])

    def items(self, run_id, status="all", client=None):
        """The run's work items, oldest first (the superuser sees all with ``scope=all``)."""
        found = []
        url = f"/api/work-items/?scope=all&status={status}"
        while url:
            page = self.get(url, client)
            found += [i for i in page["results"] if i["run"] == run_id]
            url = page["next"]
        return sorted(found, key=lambda i: i["id"])

    def complete(self, item, user, values):
        return self.post(f"/api/work-items/{item['id']}/complete/", {"values": values}, token_client(user))

    def sweep(self):
        with self.capture(execute=True):
            call_command("orchestration_sweep", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.fixture
def outside(settings, tmp_path, django_capture_on_commit_callbacks, celery_eager):
    settings.BATON_STEP_EXECUTION = "in_process"
    return Outside(tmp_path, django_capture_on_commit_callbacks)


@pytest.fixture
def voters(db):
    return {name: User.objects.create_user(name, email=f"{name}@example.com", password="pw")
            for name in ("ann", "ben", "cat", "dan", "eve")}


def events_of(body, kind):
    return [e for e in body["events"] if e["kind"] == kind]


# ---------------------------------------------------------------------------
# Multi-instance steps
# ---------------------------------------------------------------------------

def test_for_each_runs_one_instance_per_element_outputs_in_element_order_and_instances_readable(outside):
    outside.load("""
    orchestrations:
      - api_name: c_each
        start: {type: autolaunched}
        inputs: [{name: ns, type: list, required: true}]
        path:
          - name: one
            steps:
              - {name: double, flow: c_double, for_each: inputs.ns, inputs: {n: 'item + double(index)'}}
          - name: two
            steps:
              - name: read
                flow: c_take
                inputs:
                  values: steps.double.instances
                  text: string(steps.double.outputs[2].twice)
    """)
    run = outside.launch("c_each", {"ns": [3.0, 1.0, 2.0]})
    body = outside.run(run["id"])
    assert body["status"] == "completed", body
    double = outside.step(run["id"], "double", body)
    assert double["status"] == "completed"
    assert double["outputs"] == [{"twice": 6}, {"twice": 4}, {"twice": 8}]
    rows = outside.instances(run["id"], "double", body)
    assert [(r["instance_index"], r["item"], r["status"]) for r in rows] == [
        (0, 3, "completed"), (1, 1, "completed"), (2, 2, "completed")]
    read = outside.step(run["id"], "read", body)
    # steps.X.instances: {index, item, status, outputs, completed_by} in element order.
    assert read["outputs"]["values"] == [
        {"index": 0, "item": 3, "status": "completed", "outputs": {"twice": 6}, "completed_by": ""},
        {"index": 1, "item": 1, "status": "completed", "outputs": {"twice": 4}, "completed_by": ""},
        {"index": 2, "item": 2, "status": "completed", "outputs": {"twice": 8}, "completed_by": ""},
    ]
    assert read["outputs"]["text"] == "8"


@pytest.mark.parametrize("step", [
    "{name: double, flow: c_double, for_each: '[]', inputs: {n: item}}",
    "{name: double, type: interactive, flow: c_vote, assignees: '[]', completion: any}",
    "{name: double, type: orchestration, orchestration: c_none_kid, for_each: '[]'}",
])
def test_zero_elements_complete_the_step_at_once_with_an_empty_list(outside, step):
    outside.load(f"""
    orchestrations:
      - api_name: c_none_kid
        start: {{type: autolaunched}}
        path: [{{name: one, steps: [{{name: w, flow: c_take}}]}}]
      - api_name: c_none
        start: {{type: autolaunched}}
        path:
          - name: one
            steps: [{step}]
    """)
    run = outside.launch("c_none")
    body = outside.run(run["id"])
    assert body["status"] == "completed"
    assert outside.step(run["id"], "double", body)["outputs"] == []
    assert outside.instances(run["id"], "double", body) == []
    assert outside.items(run["id"]) == []


QUORUM = """
orchestrations:
  - api_name: c_quorum
    start: {type: autolaunched}
    path:
      - name: vote
        steps:
          - name: approve
            type: interactive
            flow: c_vote
            assignees: '["user:ann", "user:ben", "user:cat", "user:dan", "user:eve"]'
            completion: {at_least: 3}
      - name: after
        steps:
          - name: read
            flow: c_take
            inputs: {values: 'steps.approve.instances.map(i, i.completed_by)', text: 'string(size(steps.approve.outputs))'}
"""


def test_assignees_list_quorum_at_least_3_of_5_cancels_the_other_two_and_mails_them(outside, voters):
    outside.load(QUORUM)
    run = outside.launch("c_quorum")
    items = outside.items(run["id"], "open")
    assert sorted(i["assignee"] for i in items) == ["user:ann", "user:ben", "user:cat", "user:dan", "user:eve"]
    by_user = {i["assignee"].removeprefix("user:"): i for i in items}
    for name in ("eve", "ben"):
        assert outside.complete(by_user[name], voters[name], {"approve": True}).status_code == 200
    assert outside.step(run["id"], "approve")["status"] == "in_progress"
    mail.outbox.clear()
    assert outside.complete(by_user["cat"], voters["cat"], {"approve": True}).status_code == 200
    body = outside.run(run["id"])
    approve = outside.step(run["id"], "approve", body)
    assert approve["status"] == "completed"
    # outputs: a list in element order (null for an instance that did not complete; docs/design.md departures)
    assert approve["outputs"] == [None, {"approve": True}, {"approve": True}, None, {"approve": True}]
    rows = outside.instances(run["id"], "approve", body)
    assert [(r["status"], r["completed_by"]) for r in rows] == [
        ("discontinued", ""), ("completed", "ben"), ("completed", "cat"), ("discontinued", ""),
        ("completed", "eve")]
    statuses = {i["assignee"]: i["status"] for i in outside.items(run["id"])}
    assert statuses == {"user:ann": "canceled", "user:ben": "completed", "user:cat": "completed",
                        "user:dan": "canceled", "user:eve": "completed"}
    assert sorted(m.to[0] for m in mail.outbox) == ["ann@example.com", "dan@example.com"]
    read = outside.step(run["id"], "read", body)
    assert read["outputs"]["values"] == ["", "ben", "cat", "", "eve"]
    assert read["outputs"]["text"] == "5"
    late = outside.complete(by_user["ann"], voters["ann"], {"approve": True})
    assert late.status_code in (404, 409), late.content
    assert outside.instances(run["id"], "approve")[0]["status"] == "discontinued"  # never completes later


@pytest.mark.parametrize("completion, finish, outcome", [
    ("any", ["ben"], ["discontinued", "completed", "discontinued"]),
    ("{percent: 60}", ["ann", "cat"], ["completed", "discontinued", "completed"]),
    ("{condition: 'instances.exists(i, i.status == \"completed\" && !i.outputs.approve)'}", ["ann", "ben"],
     ["completed", "completed", "discontinued"]),
    ("all", ["cat", "ann", "ben"], ["completed", "completed", "completed"]),
])
def test_completion_rules(outside, voters, completion, finish, outcome):
    outside.load(f"""
    orchestrations:
      - api_name: c_rule
        start: {{type: autolaunched}}
        path:
          - name: vote
            steps:
              - name: approve
                type: interactive
                flow: c_vote
                assignees: '["user:ann", "user:ben", "user:cat"]'
                completion: {completion}
    """)
    run = outside.launch("c_rule")
    by_user = {i["assignee"].removeprefix("user:"): i for i in outside.items(run["id"], "open")}
    for n, name in enumerate(finish):
        assert outside.step(run["id"], "approve")["status"] == "in_progress", (completion, n)
        # the condition rule ends at the first rejection: ann approves, ben rejects
        approve = not (completion.startswith("{condition") and name == "ben")
        assert outside.complete(by_user[name], voters[name], {"approve": approve}).status_code == 200
    body = outside.run(run["id"])
    assert outside.step(run["id"], "approve", body)["status"] == "completed"
    assert [r["status"] for r in outside.instances(run["id"], "approve", body)] == outcome
    assert body["status"] == "completed"


def test_sequential_instances_run_one_after_another_in_element_order(outside, voters):
    outside.load("""
    orchestrations:
      - api_name: c_seq
        start: {type: autolaunched}
        path:
          - name: vote
            steps:
              - name: approve
                type: interactive
                flow: c_vote
                assignees: '["user:cat", "user:ann", "user:ben"]'
                sequential: true
    """)
    run = outside.launch("c_seq")
    order = []
    for _ in range(3):
        open_items = outside.items(run["id"], "open")
        assert len(open_items) == 1
        name = open_items[0]["assignee"].removeprefix("user:")
        order.append(name)
        assert outside.complete(open_items[0], voters[name], {"approve": True}).status_code == 200
    assert order == ["cat", "ann", "ben"]
    assert outside.run(run["id"])["status"] == "completed"


def test_remaining_continue_completes_the_step_at_once_and_the_rest_go_on(outside, voters):
    outside.load("""
    orchestrations:
      - api_name: c_cont
        start: {type: autolaunched}
        path:
          - name: vote
            steps:
              - name: approve
                type: interactive
                flow: c_vote
                assignees: '["user:ann", "user:ben", "user:cat"]'
                completion: any
                remaining: continue
              - {name: next, flow: c_take, entry: {after: [approve]}, inputs: {values: steps.approve.outputs}}
              - name: later
                type: interactive
                flow: c_vote
                assignee: {user: dan}
    """)
    run = outside.launch("c_cont")
    by_user = {i["assignee"].removeprefix("user:"): i for i in outside.items(run["id"], "open")}
    assert outside.complete(by_user["ben"], voters["ben"], {"approve": True}).status_code == 200
    body = outside.run(run["id"])
    approve = outside.step(run["id"], "approve", body)
    assert approve["status"] == "completed", (body["error"], approve)
    assert approve["outputs"] == [None, {"approve": True}, None]
    nxt = outside.step(run["id"], "next", body)
    assert nxt["status"] == "completed", nxt["error"]  # its successor started
    assert [r["status"] for r in outside.instances(run["id"], "approve", body)] == [
        "in_progress", "completed", "in_progress"]
    # The remaining instances go on; their outputs are recorded on them only.
    assert outside.complete(by_user["ann"], voters["ann"], {"approve": False}).status_code == 200
    body = outside.run(run["id"])
    rows = outside.instances(run["id"], "approve", body)
    assert rows[0]["status"] == "completed" and rows[0]["outputs"] == {"approve": False}
    assert outside.step(run["id"], "approve", body)["outputs"] == [None, {"approve": True}, None]


# ---------------------------------------------------------------------------
# Sub-orchestrations
# ---------------------------------------------------------------------------

FAMILY = """
orchestrations:
  - api_name: c_kid
    start: {type: autolaunched}
    inputs: [{name: n, type: number, required: true}, {name: ask, type: boolean}]
    outputs: {total: 'has(steps.work.outputs.twice) ? steps.work.outputs.twice : -1.0'}
    path:
      - name: maybe_ask
        steps:
          - {name: ask, type: interactive, flow: c_vote, assignee: {user: ann}, entry: {condition: 'inputs.ask == true'}}
      - name: work
        steps:
          - {name: work, flow: c_double, inputs: {n: inputs.n}}
  - api_name: c_mum
    start: {type: autolaunched}
    inputs: [{name: ask, type: boolean}]
    path:
      - name: one
        steps:
          - {name: call, type: orchestration, orchestration: c_kid, inputs: {n: '4.0', ask: inputs.ask}}
      - name: two
        steps:
          - {name: use, flow: c_double, inputs: {n: steps.call.outputs.total}}
"""


def child_of(outside, run_id, step="call"):
    children = outside.step(run_id, step)["child_runs"]
    assert children, f"step {step} has no child run"
    return outside.run(children[-1])


def test_a_sub_orchestration_completes_with_the_childs_declared_outputs_and_links_both_ways(outside, voters):
    outside.load(FAMILY)
    run = outside.launch("c_mum", {"ask": False})
    body = outside.run(run["id"])
    assert body["status"] == "completed", body["error"]
    call = outside.step(run["id"], "call", body)
    assert call["type"] == "orchestration" and call["outputs"] == {"total": 8}
    child = child_of(outside, run["id"])
    assert child["parent"] == {"run": run["id"], "step": "call"}
    assert child["orchestration"] == "c_kid" and child["outputs"] == {"total": 8} and child["status"] == "completed"
    assert body["parent"] is None
    assert outside.step(run["id"], "use", body)["outputs"] == {"twice": 16}


def test_canceling_the_parent_cancels_the_child(outside, voters):
    outside.load(FAMILY)
    run = outside.launch("c_mum", {"ask": True})
    child = child_of(outside, run["id"])
    assert child["status"] == "running"
    assert outside.post(f"/api/runs/{run['id']}/cancel/", {"reason": "no"}).status_code == 200
    assert outside.run(child["id"])["status"] == "canceled"
    assert [i["status"] for i in outside.items(child["id"])] == ["canceled"]


def test_an_operator_canceling_the_child_puts_the_parents_step_in_error(outside, voters):
    outside.load(FAMILY)
    run = outside.launch("c_mum", {"ask": True})
    child = child_of(outside, run["id"])
    assert outside.post(f"/api/runs/{child['id']}/cancel/", {"reason": "wrong"}).status_code == 200
    body = outside.run(run["id"])
    assert outside.step(run["id"], "call", body)["status"] == "error"
    assert body["status"] == "error"


def test_withdrawing_a_sub_orchestration_step_cancels_its_child(outside, voters):
    outside.load(FAMILY)
    run = outside.launch("c_mum", {"ask": True})
    child = child_of(outside, run["id"])
    response = outside.post(f"/api/runs/{run['id']}/steps/call/cancel/", {"reason": "not needed"})
    assert response.status_code == 200, response.content
    assert outside.step(run["id"], "call", response.json())["status"] == "canceled"
    assert outside.run(child["id"])["status"] == "canceled"


def test_a_child_in_error_errs_the_step_and_retrying_the_step_starts_a_new_child(outside, voters):
    outside.load("""
    orchestrations:
      - api_name: c_bad_kid
        start: {type: autolaunched}
        path:
          - name: work
            steps: [{name: explode, flow: c_boom, retries: 0}]
      - api_name: c_bad_mum
        start: {type: autolaunched}
        path:
          - name: one
            steps: [{name: call, type: orchestration, orchestration: c_bad_kid}]
    """)
    run = outside.launch("c_bad_mum")
    body = outside.run(run["id"])
    call = outside.step(run["id"], "call", body)
    assert call["status"] == "error" and body["status"] == "error"
    assert call["error"]  # the message quotes the child's error
    first = child_of(outside, run["id"])
    assert first["status"] == "error"
    response = outside.post(f"/api/runs/{run['id']}/steps/call/retry/")
    assert response.status_code == 200, response.content
    children = outside.step(run["id"], "call")["child_runs"]
    assert len(children) == 2
    # docs/definitions.md: retrying the step in the parent starts a NEW child and cancels the failed one.
    assert outside.run(first["id"])["status"] == "canceled"


def test_pausing_the_parent_pauses_the_child_and_resuming_resumes_it(outside, voters):
    outside.load(FAMILY)
    run = outside.launch("c_mum", {"ask": True})
    child = child_of(outside, run["id"])
    assert outside.post(f"/api/runs/{run['id']}/pause/", {"reason": "audit"}).status_code == 200
    assert outside.run(child["id"])["status"] == "paused"
    assert outside.post(f"/api/runs/{run['id']}/resume/", {"reason": "done"}).status_code == 200
    assert outside.run(child["id"])["status"] == "running"


def test_recursion_depth_is_bounded_by_the_setting_with_a_clear_error(outside, settings):
    settings.BATON_MAX_CHILD_DEPTH = 2
    outside.load("""
    orchestrations:
      - api_name: c_deep
        start: {type: autolaunched}
        inputs: [{name: n, type: number, required: true}]
        path:
          - name: one
            steps:
              - {name: again, type: orchestration, orchestration: c_deep, inputs: {n: 'inputs.n - 1.0'},
                 entry: {condition: 'inputs.n > 0.0'}}
    """)
    shallow = outside.launch("c_deep", {"n": 2})
    assert outside.run(shallow["id"])["status"] == "completed"
    deep = outside.launch("c_deep", {"n": 5})
    body = outside.run(deep["id"])
    assert body["status"] == "error"
    errors = []
    run_id = deep["id"]
    while True:
        step = outside.step(run_id, "again")
        errors.append(step["error"])
        if not step["child_runs"]:
            break
        run_id = step["child_runs"][-1]
    assert "would nest runs 3 deep (BATON_MAX_CHILD_DEPTH is 2)" in errors[-1]


# ---------------------------------------------------------------------------
# Wait steps, events and timers
# ---------------------------------------------------------------------------

WAITS = """
orchestrations:
  - api_name: c_wait
    start: {type: autolaunched}
    inputs: [{name: kind, type: text, required: true}]
    path:
      - name: waiting
        steps:
          - {name: nap, type: wait, for: 2h, entry: {condition: 'inputs.kind == "for"'}}
          - {name: signed, type: wait, event: signed, entry: {condition: 'inputs.kind == "event"'}}
          - {name: expiring, type: wait, event: signed, timeout: 1d, entry: {condition: 'inputs.kind == "soft"'}}
          - {name: strict, type: wait, event: signed, timeout: 1d, on_timeout: error,
             entry: {condition: 'inputs.kind == "strict"'}}
      - name: next
        steps:
          - {name: go, flow: c_take, inputs: {text: '"went"'}}
"""


def at(hours):
    """The clock moved forward by ``hours`` (the sweeper reads Django's clock)."""
    moved = timezone.now() + datetime.timedelta(hours=hours)
    return mock.patch("django.utils.timezone.now", return_value=moved)


def test_a_for_wait_writes_a_timer_that_the_sweep_command_fires_once_when_due(outside):
    outside.load(WAITS)
    run = outside.launch("c_wait", {"kind": "for"})
    nap = outside.step(run["id"], "nap")
    assert nap["status"] == "in_progress" and nap["type"] == "wait"
    due = datetime.datetime.fromisoformat(nap["wait"]["due_at"].replace("Z", "+00:00"))
    assert datetime.timedelta(hours=1, minutes=59) < due - timezone.now() <= datetime.timedelta(hours=2)
    outside.sweep()
    assert outside.step(run["id"], "nap")["status"] == "in_progress"
    with at(2.01):
        outside.sweep()
        outside.sweep()
    body = outside.run(run["id"])
    assert outside.step(run["id"], "nap", body)["status"] == "completed"
    assert outside.step(run["id"], "nap", body)["outputs"] == {}
    assert len(events_of(body, "timer_fired")) == 1
    assert body["status"] == "completed"


def test_an_until_in_the_past_completes_at_once(outside):
    outside.load("""
    orchestrations:
      - api_name: c_until
        start: {type: autolaunched}
        path:
          - name: waiting
            steps: [{name: until, type: wait, until: 'timestamp("2020-01-01T00:00:00Z")'}]
    """)
    run = outside.launch("c_until")
    assert outside.run(run["id"])["status"] == "completed"


def test_an_until_in_the_future_fires_by_the_sweep_when_due(outside):
    outside.load("""
    orchestrations:
      - api_name: c_until_later
        start: {type: autolaunched}
        inputs: [{name: when, type: datetime, required: true}]
        path:
          - name: waiting
            steps: [{name: until, type: wait, until: inputs.when}]
    """)
    when = (timezone.now() + datetime.timedelta(hours=3)).replace(microsecond=0)
    run = outside.launch("c_until_later", {"when": when.isoformat()})
    due = outside.step(run["id"], "until")["wait"]["due_at"]
    assert datetime.datetime.fromisoformat(due.replace("Z", "+00:00")) == when
    with at(2.9):
        outside.sweep()
    assert outside.run(run["id"])["status"] == "running"
    with at(3.1):
        outside.sweep()
    assert outside.run(run["id"])["status"] == "completed"


def test_an_event_by_python_completes_the_wait_with_its_data_as_outputs(outside):
    outside.load(WAITS)
    run = outside.launch("c_wait", {"kind": "event"})
    stored = OrchestrationRun.objects.get(pk=run["id"])
    with outside.capture(execute=True):
        orchestration.send_event(stored, "signed", data={"signed_by": "Grace"})
    body = outside.run(run["id"])
    assert outside.step(run["id"], "signed", body)["outputs"] == {"signed_by": "Grace"}
    received = events_of(body, "event_received")
    assert [e["data"]["name"] for e in received] == ["signed"]
    assert received[0]["data"]["data"] == {"signed_by": "Grace"}
    assert body["status"] == "completed"
    with pytest.raises(LookupError):  # orchestration.waits.NothingWaits
        orchestration.send_event(stored, "signed")
    # data=None: the step completes with no outputs
    again = outside.launch("c_wait", {"kind": "event"})
    with outside.capture(execute=True):
        orchestration.send_event(OrchestrationRun.objects.get(pk=again["id"]), "signed")
    assert outside.step(again["id"], "signed")["outputs"] == {}


def test_an_event_by_rest_is_202_with_the_run_and_404_when_nothing_waits(outside):
    outside.load(WAITS)
    sender = grant(User.objects.create_user("sender"), "orchestration.send_events")
    client = token_client(sender)
    run = outside.launch("c_wait", {"kind": "event"})
    refused = outside.post(f"/api/runs/{run['id']}/events/other/", {"data": {"x": 1}}, client)
    assert refused.status_code == 404
    assert outside.step(run["id"], "signed")["status"] == "in_progress"
    no_perm = outside.post(f"/api/runs/{run['id']}/events/signed/", {"data": {}},
                           token_client(User.objects.create_user("nobody")))
    assert no_perm.status_code == 403
    response = outside.post(f"/api/runs/{run['id']}/events/signed/", {"data": {"signed_by": "Ada"}}, client)
    assert response.status_code == 202, response.content
    assert response.json()["id"] == run["id"]
    assert outside.step(run["id"], "signed", response.json())["outputs"] == {"signed_by": "Ada"}


def test_a_kept_event_belongs_to_its_run_and_keep_with_a_waiting_step_just_delivers(outside):
    outside.load(WAITS)
    sender = grant(User.objects.create_user("sender"), "orchestration.send_events")
    run = outside.launch("c_wait", {"kind": "for"})  # waits for a timer, not for "signed"
    kept = outside.post(f"/api/runs/{run['id']}/events/signed/", {"data": {"early": True}, "keep": True},
                        token_client(sender))
    assert kept.status_code == 202, kept.content
    assert [e["data"]["name"] for e in events_of(kept.json(), "event_kept")] == ["signed"]
    stored = OrchestrationRun.objects.get(pk=run["id"])
    with outside.capture(execute=True):
        orchestration.send_event(stored, "later", data={"n": 1}, keep=True)  # Python: keep=True
    other = outside.launch("c_wait", {"kind": "event"})
    assert outside.step(other["id"], "signed")["status"] == "in_progress"  # not another run's kept event
    delivered = outside.post(f"/api/runs/{other['id']}/events/signed/", {"data": {"k": 1}, "keep": True},
                             token_client(sender))
    assert delivered.status_code == 202
    assert outside.step(other["id"], "signed", delivered.json())["outputs"] == {"k": 1}


def test_a_kept_event_is_taken_by_a_wait_that_starts_later(outside):
    outside.load("""
    orchestrations:
      - api_name: c_later
        start: {type: autolaunched}
        path:
          - name: first
            steps: [{name: hold, type: wait, event: go}]
          - name: second
            steps: [{name: signed, type: wait, event: signed}]
    """)
    sender = grant(User.objects.create_user("sender"), "orchestration.send_events")
    run = outside.launch("c_later")
    client = token_client(sender)
    assert outside.post(f"/api/runs/{run['id']}/events/signed/", {"data": {"early": True}},
                        client).status_code == 404
    assert outside.post(f"/api/runs/{run['id']}/events/signed/", {"data": {"early": True}, "keep": True},
                        client).status_code == 202
    response = outside.post(f"/api/runs/{run['id']}/events/go/", {}, client)
    assert response.status_code == 202
    body = outside.run(run["id"])
    assert outside.step(run["id"], "signed", body)["outputs"] == {"early": True}
    assert body["status"] == "completed"


def test_send_event_for_a_record_reaches_the_runs_of_that_record(outside):
    from demo.models import Employee

    outside.load(WAITS)
    ada = Employee.objects.create(first_name="Ada", last_name="L", email="ada@example.com")
    bob = Employee.objects.create(first_name="Bob", last_name="M", email="bob@example.com")

    def launch_for(employee):
        response = outside.post("/api/orchestrations/c_wait/launch/",
                                {"inputs": {"kind": "event"}, "record": {"model": "demo.employee", "pk": employee.pk}})
        assert response.status_code == 201, response.content
        return response.json()["id"]

    one, two, other = launch_for(ada), launch_for(ada), launch_for(bob)
    with outside.capture(execute=True):
        runs = orchestration.send_event_for(ada, "signed", data={"by": "record"})
    assert sorted(r.pk for r in runs) == [one, two]
    assert outside.step(one, "signed")["outputs"] == {"by": "record"}
    assert outside.step(other, "signed")["status"] == "in_progress"
    with pytest.raises(LookupError):
        orchestration.send_event_for(ada, "signed")


def test_the_signed_webhook_url_delivers_without_a_token(outside, api):
    outside.load(WAITS)
    run = outside.launch("c_wait", {"kind": "event"})
    url = outside.step(run["id"], "signed")["wait"]["webhook_url"]
    path = url[url.index("/api/"):]
    with outside.capture(execute=True):
        response = api.post(path, {"data": {"signed_by": "hook"}}, format="json")
    assert response.status_code == 202, response.content
    assert outside.step(run["id"], "signed")["outputs"] == {"signed_by": "hook"}
    with outside.capture(execute=True):
        assert api.post(path, {}, format="json").status_code == 404


@pytest.mark.parametrize("kind, status, outputs", [
    ("soft", "completed", {"timed_out": True}),
    ("strict", "error", None),
])
def test_an_event_timeout_completes_with_timed_out_or_errs(outside, kind, status, outputs):
    step = {"soft": "expiring", "strict": "strict"}[kind]
    outside.load(WAITS)
    run = outside.launch("c_wait", {"kind": kind})
    assert outside.step(run["id"], step)["wait"]["event"] == "signed"
    with at(24.1):
        outside.sweep()
    body = outside.run(run["id"])
    row = outside.step(run["id"], step, body)
    assert row["status"] == status
    if outputs is not None:
        assert row["outputs"] == outputs and body["status"] == "completed"
    else:
        assert body["status"] == "error" and row["error"]
    assert len(events_of(body, "wait_timed_out")) == 1


# ---------------------------------------------------------------------------
# Pause and resume
# ---------------------------------------------------------------------------

PAUSABLE = """
orchestrations:
  - api_name: c_pause
    start: {type: autolaunched}
    path:
      - name: first
        steps:
          - {name: vote, type: interactive, flow: c_vote, assignee: {user: ann}}
      - name: second
        steps:
          - {name: again, type: interactive, flow: c_vote, assignee: {user: ben}}
"""


def test_pause_and_resume_by_rest_with_permissions_audit_and_a_paused_run_opening_nothing(outside, voters):
    outside.load(PAUSABLE)
    operator = grant(User.objects.create_user("operator"), "orchestration.operate_runs")
    own = grant(User.objects.create_user("owner"), "orchestration.pause_own_runs", "orchestration.launch_orchestration",
                "orchestration.view_runs")
    viewer = grant(User.objects.create_user("viewer"), "orchestration.view_runs")
    run = outside.launch("c_pause")
    mine = outside.launch("c_pause", client=token_client(own))
    assert outside.post(f"/api/runs/{run['id']}/pause/", {"reason": "x"}, token_client(viewer)).status_code == 403
    assert outside.post(f"/api/runs/{run['id']}/pause/", {"reason": "x"}, token_client(own)).status_code == 403
    assert outside.post(f"/api/runs/{mine['id']}/pause/", {"reason": "mine"}, token_client(own)).status_code == 200
    paused = outside.post(f"/api/runs/{run['id']}/pause/", {"reason": "audit"}, token_client(operator))
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    event = events_of(paused.json(), "run_paused")[-1]
    assert (event["actor"], event["data"]["reason"]) == ("operator", "audit")
    assert outside.get("/api/runs/?status=paused")["count"] == 2
    # The open item can be read but not finished; finishing it is 409 "the run is paused".
    item = outside.items(run["id"], "open")[0]
    assert outside.get(f"/api/work-items/{item['id']}/", token_client(voters["ann"]))["status"] == "open"
    refused = outside.complete(item, voters["ann"], {"approve": True})
    assert refused.status_code == 409 and "the run is paused" in refused.json()["detail"]
    resumed = outside.post(f"/api/runs/{run['id']}/resume/", {"reason": "done"}, token_client(operator))
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    event = events_of(resumed.json(), "run_resumed")[-1]
    assert (event["actor"], event["data"]["reason"]) == ("operator", "done")
    assert outside.complete(item, voters["ann"], {"approve": True}).status_code == 200
    assert [i["assignee"] for i in outside.items(run["id"], "open")] == ["user:ben"]


def test_a_paused_run_opens_no_work_item_until_resumed(outside, voters):
    outside.load("""
    orchestrations:
      - api_name: c_pause_wait
        start: {type: autolaunched}
        path:
          - name: first
            steps: [{name: hold, type: wait, event: go}]
          - name: second
            steps: [{name: again, type: interactive, flow: c_vote, assignee: {user: ben}}]
    """)
    operator = grant(User.objects.create_user("operator"), "orchestration.operate_runs",
                     "orchestration.send_events")
    client = token_client(operator)
    run = outside.launch("c_pause_wait")
    assert outside.post(f"/api/runs/{run['id']}/pause/", {}, client).status_code == 200
    delivered = outside.post(f"/api/runs/{run['id']}/events/go/", {}, client)
    assert delivered.status_code == 202  # an event sent to a paused run is still delivered
    assert outside.step(run["id"], "hold", delivered.json())["status"] == "completed"
    assert outside.items(run["id"]) == []
    assert outside.run(run["id"])["status"] == "paused"
    assert outside.post(f"/api/runs/{run['id']}/resume/", {}, client).status_code == 200
    assert [i["assignee"] for i in outside.items(run["id"], "open")] == ["user:ben"]


# ---------------------------------------------------------------------------
# Withdrawing a step, stage error paths
# ---------------------------------------------------------------------------

def test_withdrawing_a_step_cancels_it_and_its_after_steps_never_start(outside, voters):
    outside.load("""
    orchestrations:
      - api_name: c_withdraw
        start: {type: autolaunched}
        path:
          - name: one
            steps:
              - {name: review, type: interactive, flow: c_vote, assignee: {user: ann}}
              - {name: follow, type: interactive, flow: c_vote, assignee: {user: ben}, entry: {after: [review]}}
              - {name: other, type: interactive, flow: c_vote, assignee: {user: cat}}
          - name: two
            steps: [{name: done, flow: c_take, inputs: {text: '"ok"'}}]
    """)
    operator = grant(User.objects.create_user("operator"), "orchestration.operate_runs")
    viewer = grant(User.objects.create_user("viewer"), "orchestration.view_runs")
    run = outside.launch("c_withdraw")
    url = f"/api/runs/{run['id']}/steps/review/cancel/"
    assert outside.post(url, {}, token_client(viewer)).status_code == 403
    assert outside.post(f"/api/runs/{run['id']}/steps/nope/cancel/", {}, token_client(operator)).status_code == 404
    response = outside.post(url, {"reason": "not needed"}, token_client(operator))
    assert response.status_code == 200, response.content
    assert outside.step(run["id"], "review", response.json())["status"] == "canceled"
    withdrawn = events_of(response.json(), "step_canceled")
    assert withdrawn and withdrawn[0]["data"]["reason"] == "not needed" and withdrawn[0]["step"] == "review"
    assert {i["assignee"]: i["status"] for i in outside.items(run["id"])} == {
        "user:ann": "canceled", "user:cat": "open"}
    assert outside.post(url, {}, token_client(operator)).status_code == 409
    other = outside.items(run["id"], "open")[0]
    assert outside.complete(other, voters["cat"], {"approve": True}).status_code == 200
    body = outside.run(run["id"])
    assert outside.step(run["id"], "follow", body)["status"] == "discontinued"
    assert body["status"] == "completed"


def test_a_stage_error_path_goes_on_with_steps_x_error_message_and_element(outside):
    outside.load("""
    orchestrations:
      - api_name: c_fault
        start: {type: autolaunched}
        path:
          - name: risky
            on_error: {goto: repair}
            steps:
              - {name: explode, flow: c_boom, retries: 0}
              - {name: after, flow: c_take, entry: {after: [explode]}}
          - name: fine
            next: end
            steps: [{name: never, flow: c_take}]
          - name: repair
            steps:
              - name: tell
                flow: c_take
                inputs:
                  text: 'steps.explode.error.element + " | " + steps.explode.error.message + " | " + steps.explode.status'
    """)
    run = outside.launch("c_fault")
    body = outside.run(run["id"])
    assert body["status"] == "completed", body["error"]
    stages = {s["name"]: s["status"] for s in body["stages"]}
    assert stages == {"risky": "discontinued", "repair": "completed"}  # "discontinues the stage"
    assert outside.step(run["id"], "after", body)["status"] == "discontinued"
    element, message, status = outside.step(run["id"], "tell", body)["outputs"]["text"].split(" | ")
    assert element == "c_fault › risky › explode"
    assert "division" in message.lower()
    assert status == "error"


# ---------------------------------------------------------------------------
# The definition additions are readable in the API
# ---------------------------------------------------------------------------

def test_the_orchestration_api_reads_every_section_10_key(outside, voters):
    outside.load(FAMILY)
    outside.load("""
    orchestrations:
      - api_name: c_everything
        start: {type: autolaunched}
        outputs: {first: 'steps.each.outputs[0].twice'}
        path:
          - name: one
            on_error: {goto: two}
            steps:
              - {name: each, flow: c_double, for_each: '[1.0, 2.0]', inputs: {n: item}, completion: {at_least: 1},
                 remaining: continue}
              - {name: votes, type: interactive, flow: c_vote, assignees: '["user:ann", "user:ben"]',
                 completion: {percent: 50}, sequential: true}
              - {name: call, type: orchestration, orchestration: c_kid, inputs: {n: '1.0'}}
              - {name: hold, type: wait, event: signed, timeout: 2d, on_timeout: error}
              - {name: nap, type: wait, for: 1h}
          - name: two
            steps:
              - {name: until, type: wait, until: 'timestamp("2020-01-01T00:00:00Z")'}
    """, flows=False)
    body = outside.get("/api/orchestrations/c_everything/")
    one, two = body["path"]
    steps = {s["name"]: s for s in one["steps"]}
    assert steps["each"]["for_each"] == "[1.0, 2.0]"
    assert steps["each"]["completion"] == {"at_least": 1} and steps["each"]["remaining"] == "continue"
    assert steps["votes"]["assignees"] == '["user:ann", "user:ben"]'
    assert steps["votes"]["completion"] == {"percent": 50} and steps["votes"]["sequential"] is True
    assert (steps["call"]["type"], steps["call"]["orchestration"]) == ("orchestration", "c_kid")
    assert steps["hold"]["type"] == "wait"
    assert steps["hold"]["wait"] == {"event": "signed", "timeout": "2d", "on_timeout": "error"}
    assert steps["nap"]["wait"] == {"for": "1h"}
    assert two["steps"][0]["wait"] == {"until": 'timestamp("2020-01-01T00:00:00Z")'}
    assert one["on_error"] == "two"  # docs/api.md: the error path's target, as a name
    # An orchestration may declare outputs: readable with its definition too.
    assert body["outputs"] == {"first": "steps.each.outputs[0].twice"}
    # export_definitions writes every §10 key back; importing the export gives the same definition.
    exported = io.StringIO()
    call_command("export_definitions", "c_everything", stdout=exported)
    outside.load(exported.getvalue(), flows=False)
    again = outside.get("/api/orchestrations/c_everything/")
    assert again["version"] == 2
    assert (again["path"], again["outputs"]) == (body["path"], body["outputs"])


# ---------------------------------------------------------------------------
# The validator names the place of each problem (import_definitions --activate)
# ---------------------------------------------------------------------------

def refused(outside, step_yaml, extra=""):
    """Import an orchestration with one bad step; the command refuses it all and prints every problem."""
    path = outside.tmp_path / "bad.yaml"
    path.write_text(FLOWS + textwrap.dedent(f"""
    orchestrations:{extra}
      - api_name: c_bad
        start: {{type: autolaunched}}
        path:
          - name: s
            steps:
              - {step_yaml}
    """))
    errors = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_definitions", str(path), "--activate", stdout=io.StringIO(), stderr=errors)
    assert not Orchestration.objects.filter(api_name="c_bad").exists()
    return errors.getvalue()


@pytest.mark.parametrize("step_yaml, fragments", [
    ("{name: a, flow: c_double, for_each: '\"abc\"', inputs: {n: '1.0'}}", ["c_bad › s › a › for_each", "list"]),
    ("{name: a, flow: c_double, for_each: '[1.0, 2.0]', inputs: {n: item}, completion: {at_least: 3}}",
     ["c_bad › s › a › completion.at_least", "3 instances can never complete"]),
    ("{name: a, flow: c_double, for_each: '[1.0]', inputs: {n: item}, completion: any, sequential: true, "
     "remaining: continue}", ["c_bad › s › a › remaining"]),
    ("{name: a, type: wait, for: 1h, event: e}", ["c_bad › s › a", "exactly one of for, until or event"]),
    ("{name: a, type: wait, for: 1h, timeout: 2h}", ["c_bad › s › a › timeout"]),
    ("{name: a, flow: c_double, inputs: {n: '1.0'}, assignees: '[\"user:ann\"]'}", ["c_bad › s › a › assignees"]),
    ("{name: a, type: orchestration, orchestration: c_bad}",
     ["c_bad › s › a › orchestration", "recursion without a guard: c_bad → c_bad"]),
    ("{name: a, type: orchestration, orchestration: c_nobody}", ["c_bad › s › a › orchestration", "c_nobody"]),
])
def test_the_validator_names_the_place_of_each_pattern_problem(outside, voters, step_yaml, fragments):
    printed = refused(outside, step_yaml)
    assert any(all(f in line for f in fragments) for line in printed.splitlines()), printed


def test_an_error_path_to_nowhere_is_refused_with_its_place(outside):
    path = outside.tmp_path / "bad.yaml"
    path.write_text(FLOWS + textwrap.dedent("""
    orchestrations:
      - api_name: c_bad
        start: {type: autolaunched}
        path:
          - name: s
            on_error: {goto: nowhere}
            steps: [{name: a, flow: c_boom}]
    """))
    errors = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_definitions", str(path), "--activate", stdout=io.StringIO(), stderr=errors)
    assert "c_bad › s › on_error" in errors.getvalue() and "nowhere" in errors.getvalue(), errors.getvalue()


# ---------------------------------------------------------------------------
# Assignee rules: exclude, same_as, steps.X.completed_by
# ---------------------------------------------------------------------------

def test_exclude_keeps_the_requester_off_and_same_as_gives_back_to_them(outside, voters):
    approvers = Group.objects.create(name="c_approvers")
    for name in ("ann", "ben"):
        voters[name].groups.add(approvers)
    outside.load("""
    orchestrations:
      - api_name: c_duties
        start: {type: autolaunched}
        path:
          - name: ask
            steps: [{name: request, type: interactive, flow: c_vote, assignee: {group: c_approvers}}]
          - name: decide
            steps:
              - name: approve
                type: interactive
                flow: c_vote
                assignee: {group: c_approvers, exclude: '[steps.request.completed_by]'}
              - {name: tell, type: interactive, flow: c_vote, assignee: {same_as: request}, entry: {after: [approve]}}
          - name: done
            steps: [{name: note, flow: c_take, inputs: {text: 'steps.request.completed_by + "/" + steps.approve.completed_by'}}]
    """)
    run = outside.launch("c_duties")
    request = outside.items(run["id"], "open")[0]
    assert outside.complete(request, voters["ann"], {"approve": True}).status_code == 200
    approve = outside.items(run["id"], "open")[0]
    assert approve["step"] == "approve"
    ann, ben = token_client(voters["ann"]), token_client(voters["ben"])
    assert approve["id"] not in [i["id"] for i in outside.get("/api/work-items/", ann)["results"]]
    assert outside.post(f"/api/work-items/{approve['id']}/claim/", {}, ann).status_code in (403, 404, 409)
    assert outside.complete(approve, voters["ann"], {"approve": True}).status_code in (403, 404, 409)
    assert outside.post(f"/api/work-items/{approve['id']}/claim/", {}, ben).status_code == 200
    released = outside.post(f"/api/work-items/{approve['id']}/release/", {}, ben)
    assert released.status_code == 200 and released.json()["claimed_by"] is None
    assert outside.complete(approve, voters["ben"], {"approve": True}).status_code == 200
    tell = outside.items(run["id"], "open")[0]
    assert (tell["step"], tell["assignee"]) == ("tell", "user:ann")
    assert outside.complete(tell, voters["ann"], {"approve": True}).status_code == 200
    body = outside.run(run["id"])
    assert body["status"] == "completed"
    assert outside.step(run["id"], "note", body)["outputs"]["text"] == "ann/ben"
    assert outside.step(run["id"], "approve", body)["completed_by"] == "ben"


# ---------------------------------------------------------------------------
# Every YAML example in docs/definitions.md and the README validates
# ---------------------------------------------------------------------------

def yaml_blocks(relative):
    text = (ROOT / relative).read_text()
    blocks, rest = [], text
    while "```yaml\n" in rest:
        heading = rest.split("```yaml\n", 1)[0].rsplit("\n#", 1)[-1].split("\n", 1)[0].strip("# ")
        rest = rest.split("```yaml\n", 1)[1]
        body, rest = rest.split("```", 1)
        blocks.append((heading, body))
    return blocks


def stub(api_name, kind, inputs=(), outputs=()):
    """A flow the example names but does not define: the inputs it is given, the outputs read from it."""
    flow = {"api_name": api_name, "type": kind,
            "inputs": [{"name": n, "type": t} for n, t in inputs],
            "outputs": [{"name": n, "type": t} for n, t in outputs]}
    if kind == "screen":
        field_types = {"text": "text", "boolean": "boolean", "number": "number"}
        flow["screens"] = [{"name": "main", "fields": [
            {"name": n, "type": field_types[t], "label": n} for n, t in outputs] or [
            {"name": "ok", "type": "boolean", "label": "OK"}]}]
    else:
        values = {"text": '"x"', "boolean": "true", "number": "1.0", "list": "[]"}
        flow["elements"] = [{"type": "assign", "set": {n: values[t] for n, t in outputs} or {"ran": "true"}}]
    return flow


def as_whole(example, api_name):
    """A fragment (a ``path:`` mapping, a list of steps or of stages) made into one orchestration."""
    if isinstance(example, dict) and "path" in example:
        body = example
    elif isinstance(example, list) and all("steps" in element for element in example):
        body = {"path": example}
    else:
        body = {"path": [{"name": "only", "steps": example}]}
    return {"orchestrations": [{"api_name": api_name, "start": {"type": "autolaunched"}, **body}]}


# Per example (by the heading it is under): what it leaves to the reader to have (flows, users, groups,
# queues), and how to make it whole.
EXAMPLES = {
    ("docs/definitions.md", "Multi-instance steps"): dict(
        flows=[stub("check_department", "autolaunched", [("department", "text"), ("position", "number")],
                    [("result", "text")]),
               stub("approve_contract", "screen", outputs=[("approved", "boolean")]),
               stub("notify_signed", "autolaunched", [("approvals", "list"), ("first_check", "text")])],
        users=["alice", "bob", "dave"], groups=["finance"], queues=["legal"],
        inputs=[{"name": "departments", "type": "list", "required": True}]),
    ("docs/definitions.md", "Assignee rules"): dict(
        flows=[stub("expense_request", "screen"), stub("expense_approval", "screen"),
               stub("expense_follow_up", "screen")],
        groups=["staff", "managers"]),
    ("docs/definitions.md", "Sub-orchestrations"): dict(
        flows=[stub("create_login", "autolaunched", [("system", "text")], [("login", "text")]),
               stub("send_welcome", "autolaunched", [("login", "text")])]),
    ("docs/definitions.md", "Stage error paths"): dict(
        flows=[stub("charge", "autolaunched"), stub("send_receipt", "autolaunched"),
               stub("ship_order", "autolaunched"), stub("send_mail", "autolaunched", [("text", "text")])]),
    ("docs/definitions.md", "Wait steps, events and timers"): dict(
        flows=[stub("send_contract", "autolaunched"),
               stub("archive_contract", "autolaunched", [("signed_by", "text")])]),
    # The example elides the launch inputs ("inputs: [...]  # supplier, country, iban"): the demo file has them.
    ("docs/definitions.md", "Quorum, sub-orchestration and event wait together"): dict(
        demo="supplier_onboarding.yaml", users=["alice", "bob", "dave"],
        replace=("inputs: [...]", "inputs: [{name: supplier, type: text}, {name: country, type: text}, "
                                  "{name: iban, type: text}]")),
    ("docs/definitions.md", "A complete example"): dict(users=["ann"], groups=["helpers"]),
    ("README.md", "A first orchestration"): dict(groups=["sales_managers"]),
}


def test_every_yaml_example_in_the_docs_is_listed_here():
    found = {(doc, heading) for doc in ("docs/definitions.md", "README.md") for heading, _ in yaml_blocks(doc)}
    assert found == set(EXAMPLES)


@pytest.mark.parametrize("doc, heading", sorted(EXAMPLES))
def test_each_documented_example_imports_and_activates(doc, heading):
    from orchestration.definition_files.yaml_lines import load_yaml
    from workguide.models import Queue

    needs = EXAMPLES[(doc, heading)]
    for name in needs.get("users", []):
        User.objects.get_or_create(username=name)
    for name in needs.get("groups", []):
        Group.objects.get_or_create(name=name)
    for name in needs.get("queues", []):
        Queue.objects.get_or_create(name=name)
    if "demo" in needs:
        import_document((ROOT / "demo" / "definitions" / needs["demo"]).read_text(), activate=True)
    (text,) = [body for heading_, body in yaml_blocks(doc) if heading_ == heading]
    if "replace" in needs:
        assert needs["replace"][0] in text
        text = text.replace(*needs["replace"])
    data, problems = load_yaml(text)
    assert not problems, problems
    example = json.loads(json.dumps(data))  # plain dicts and lists
    whole = isinstance(example, dict) and set(example) & {"flows", "orchestrations", "queues"}
    document = dict(example) if whole else as_whole(example, "doc_example")
    if not whole and "inputs" in needs:
        document["orchestrations"][0]["inputs"] = needs["inputs"]
    if needs.get("flows"):
        document["flows"] = needs["flows"] + list(document.get("flows", []))
    try:
        report = import_document(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), activate=True)
    except DefinitionFileError as exc:
        raise AssertionError("\n".join(str(p) for p in exc.problems)) from None
    assert report.orchestrations and {o.status for o in report.orchestrations} == {"active"}


def test_a_paused_runs_item_page_opens_and_drafts_but_does_not_finish(outside, voters, client):
    outside.load("""
    flows:
      - api_name: c_note
        type: screen
        outputs: [{name: note, type: text}]
        screens:
          - name: main
            fields: [{name: note, type: text, label: Note, required: true}]
    orchestrations:
      - api_name: c_pause_page
        start: {type: autolaunched}
        path:
          - name: first
            steps: [{name: write, type: interactive, flow: c_note, assignee: {user: ann}}]
    """, flows=False)
    run = outside.launch("c_pause_page")
    assert outside.post(f"/api/runs/{run['id']}/pause/", {"reason": "audit"}).status_code == 200
    item = outside.items(run["id"], "open")[0]
    client.force_login(voters["ann"])
    page = client.get(f"/workguide/items/{item['id']}/")
    assert page.status_code == 200 and "The run is paused" in page.content.decode()
    drafted = client.post(f"/workguide/items/{item['id']}/flow/draft/", {"screen": "0", "note": "half done"})
    assert drafted.status_code == 204
    assert "half done" in client.get(f"/workguide/items/{item['id']}/").content.decode()
    with outside.capture(execute=True):
        finish = client.post(f"/workguide/items/{item['id']}/flow/", {"action": "finish", "note": "done"})
    assert finish.status_code in (200, 409)
    assert "the run is paused" in finish.content.decode().lower()
    assert outside.get(f"/api/work-items/{item['id']}/")["status"] == "open"
    assert outside.post(f"/api/runs/{run['id']}/resume/").status_code == 200
    with outside.capture(execute=True):
        client.post(f"/workguide/items/{item['id']}/flow/", {"action": "finish", "note": "done"})
    assert outside.get(f"/api/work-items/{item['id']}/")["status"] == "completed"
    assert outside.step(run["id"], "write")["outputs"] == {"note": "done"}


@pytest.mark.xfail(strict=True, reason=(
    "DESIGN §10 says ANY step may have for_each; the validator refuses it on a wait step "
    "('a wait step runs once (it has no instances)', orchestration/validation.py), and instances of a wait "
    "would be engine work in orchestration/instances.py and waits.py. Listed in docs/design.md, "
    "'Departures from the contract'."))
def test_a_wait_step_may_have_for_each(outside):
    outside.load("""
    orchestrations:
      - api_name: c_wait_each
        start: {type: autolaunched}
        path:
          - name: waiting
            steps: [{name: naps, type: wait, for: 1h, for_each: '[1, 2]'}]
    """)
    run = outside.launch("c_wait_each")
    assert len(outside.instances(run["id"], "naps")) == 2


def test_remaining_discontinue_is_the_default_said_out_loud(outside, voters):
    """§10: when completion is met the rest are discontinued unless ``remaining: continue``; a definition may
    say the default, ``remaining: discontinue``, and it behaves (and exports) as if left out."""
    outside.load("""
    orchestrations:
      - api_name: c_disc
        start: {type: autolaunched}
        path:
          - name: vote
            steps:
              - name: approve
                type: interactive
                flow: c_vote
                assignees: '["user:ann", "user:ben"]'
                completion: any
                remaining: discontinue
    """)
    run = outside.launch("c_disc")
    item = outside.items(run["id"], "open")[0]
    name = item["assignee"].removeprefix("user:")
    assert outside.complete(item, voters[name], {"approve": True}).status_code == 200
    assert sorted(r["status"] for r in outside.instances(run["id"], "approve")) == ["completed", "discontinued"]
    assert outside.get("/api/orchestrations/c_disc/")["path"][0]["steps"][0]["remaining"] == ""
    exported = io.StringIO()
    call_command("export_definitions", "c_disc", stdout=exported)
    assert "remaining" not in exported.getvalue()


def test_item_and_index_are_in_scope_for_an_instances_assignee_and_inputs(outside, voters):
    outside.load("""
    flows:
      - api_name: c_vote_at
        type: screen
        inputs: [{name: at, type: number}]
        outputs: [{name: approve, type: boolean}]
        screens:
          - name: main
            fields: [{name: approve, type: boolean, label: Approve}]
    orchestrations:
      - api_name: c_each_person
        start: {type: autolaunched}
        inputs: [{name: people, type: list, required: true}]
        path:
          - name: vote
            steps:
              - name: approve
                type: interactive
                flow: c_vote_at
                for_each: inputs.people
                assignee: {expr: '"user:" + item'}
                inputs: {at: double(index)}
    """, flows=False)
    run = outside.launch("c_each_person", {"people": ["eve", "ann"]})
    items = outside.items(run["id"], "open")
    assert [(i["assignee"], i["inputs"]) for i in items] == [("user:eve", {"at": 0}), ("user:ann", {"at": 1})]
    for item in items:
        name = item["assignee"].removeprefix("user:")
        assert outside.complete(item, voters[name], {"approve": True}).status_code == 200
    rows = outside.instances(run["id"], "approve")
    assert [(r["item"], r["completed_by"]) for r in rows] == [("eve", "eve"), ("ann", "ann")]


def test_simulate_orchestration_walks_every_construct(outside, voters):
    outside.load(FAMILY)
    outside.load("""
    orchestrations:
      - api_name: c_walk
        start: {type: autolaunched}
        path:
          - name: one
            on_error: {goto: repair}
            steps:
              - {name: votes, type: interactive, flow: c_vote, assignees: '["user:ann", "user:ben", "user:cat"]',
                 completion: {at_least: 2}}
              - {name: call, type: orchestration, orchestration: c_kid, inputs: {n: '1.0'}}
              - {name: hold, type: wait, event: signed, timeout: 2d}
              - {name: risky, flow: c_boom}
          - name: two
            next: end
            steps: [{name: fine, flow: c_take}]
          - name: repair
            steps: [{name: fix, flow: c_take, inputs: {text: steps.risky.error.message}}]
    """, flows=False)
    printed = io.StringIO()
    call_command("simulate_orchestration", "c_walk", "--instances", "votes=2", "--timeout", "hold",
                 "--error", "risky=card declined", "--outputs", 'call={"total": 3}', stdout=printed)
    text = printed.getvalue()
    assert "×3 instances (at_least 2): 2 complete, 1 withdrawn" in text, text
    assert 'outputs {"total": 3}' in text and "runs orchestration c_kid" in text
    assert '{"timed_out": true}' in text
    assert "step risky failed: the stage's error path goes to repair" in text
    assert "Stage two" not in text and "the run would complete" in text
    assert not OrchestrationRun.objects.exists()  # a dry run stores nothing


def test_bad_bodies_of_the_section_10_endpoints_are_400_naming_the_field_and_change_nothing(outside, voters, api):
    outside.load(WAITS)
    run = outside.launch("c_wait", {"kind": "event"})
    rid = run["id"]
    cases = [
        (f"/api/runs/{rid}/pause/", {"reason": ["not", "text"]}, "reason"),
        (f"/api/runs/{rid}/pause/", {"reason": "x" * 1001}, "reason"),
        (f"/api/runs/{rid}/steps/signed/cancel/", {"reason": {"a": 1}}, "reason"),
        (f"/api/runs/{rid}/events/signed/", {"data": [1, 2]}, "data"),
        (f"/api/runs/{rid}/events/signed/", {"data": "text"}, "data"),
        (f"/api/runs/{rid}/events/signed/", {"keep": "perhaps"}, "keep"),
    ]
    for url, body, field in cases:
        response = outside.post(url, body)
        assert response.status_code == 400, (url, body, response.content)
        assert field in response.json()["errors"], (url, body, response.json())
    hook = outside.step(rid, "signed")["wait"]["webhook_url"]
    with outside.capture(execute=True):
        response = api.post(hook[hook.index("/api/"):], {"data": [1]}, format="json")
    assert response.status_code == 400 and "data" in response.json()["errors"]
    body = outside.run(rid)
    assert body["status"] == "running" and outside.step(rid, "signed", body)["status"] == "in_progress"
    assert not events_of(body, "run_paused") and not events_of(body, "event_received")


def test_the_openapi_schema_lists_the_section_10_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    for path, method in [
        ("/api/runs/{id}/pause/", "post"), ("/api/runs/{id}/resume/", "post"),
        ("/api/runs/{id}/events/{name}/", "post"), ("/api/runs/{id}/steps/{step_name}/cancel/", "post"),
        ("/api/delegations/", "post"), ("/api/work-items/{id}/release/", "post"),
    ]:
        assert method in paths.get(path, {}), (path, sorted(paths))
    assert "202" in paths["/api/runs/{id}/events/{name}/"]["post"]["responses"]
    assert "404" in paths["/api/runs/{id}/events/{name}/"]["post"]["responses"]
    assert "paused" in schema["components"]["schemas"]["RunStatusEnum"]["enum"]


def test_a_child_run_keeps_the_version_active_when_its_step_started(outside, voters):
    outside.load(FAMILY)
    first = outside.launch("c_mum", {"ask": True})
    child = child_of(outside, first["id"])
    assert (child["orchestration"], child["version"], child["started_by"]) == ("c_kid", 1, "root")
    outside.load(FAMILY.replace("'has(steps.work.outputs.twice) ? steps.work.outputs.twice : -1.0'", "'42.0'")
                 .split("  - api_name: c_mum")[0], flows=False)
    second = outside.launch("c_mum", {"ask": False})
    assert child_of(outside, second["id"])["version"] == 2
    assert outside.step(second["id"], "call")["outputs"] == {"total": 42}
    item = outside.items(child["id"], "open")[0]
    assert outside.complete(item, voters["ann"], {"approve": True}).status_code == 200
    assert outside.run(child["id"])["version"] == 1
    assert outside.step(first["id"], "call")["outputs"] == {"total": 8}
