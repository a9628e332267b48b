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
import textwrap
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import orchestration
from orchestration.definition_files import DefinitionFileError, import_document
from tests.api_support import clear_throttles, grant, token_client  # noqa: F401

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


def test_zero_elements_complete_the_step_at_once_with_an_empty_list(outside):
    outside.load("""
    orchestrations:
      - api_name: c_none
        start: {type: autolaunched}
        path:
          - name: one
            steps: [{name: double, flow: c_double, for_each: '[]', inputs: {n: item}}]
    """)
    run = outside.launch("c_none")
    body = outside.run(run["id"])
    assert body["status"] == "completed"
    assert outside.step(run["id"], "double", body)["outputs"] == []
    assert outside.instances(run["id"], "double", body) == []


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
