"""The autolaunched / evaluation flow interpreter, FlowSpec loading and variable checking."""
import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

import flows
from demo.models import Employee, EquipmentRequest
from flows.compiled import FlowNotFound, FlowSpec, clear_cache
from flows.runtime import FlowError, check_inputs, check_variables, evaluate_flow, run_flow
from tests.flow_builders import autolaunched, evaluation, make_flow, var

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def employee():
    return Employee.objects.create(first_name="Ada", last_name="Lovelace", email="ada@example.com", department="sales")


# --- FlowSpec -----------------------------------------------------------------

def test_spec_loads_in_few_queries_and_caches_active_versions():
    flow = make_flow(
        "screen",
        inputs=[var("a"), var("b", "number")],
        outputs=[var("c")],
        screens=[{"name": f"s{i}", "fields": [{"name": f"f{i}_{j}"} for j in range(5)]} for i in range(5)],
        status="active",
    )
    with CaptureQueriesContext(connection) as queries:
        spec = FlowSpec.load(flow.pk)
    assert len(queries) <= 5
    assert [s.name for s in spec.screens] == [f"s{i}" for i in range(5)]
    assert [f.name for f in spec.screens[1].fields] == [f"f1_{j}" for j in range(5)]
    assert [v.name for v in spec.inputs] == ["a", "b"]
    with CaptureQueriesContext(connection) as queries:
        assert FlowSpec.load(flow) is spec
    assert len(queries) == 0
    with CaptureQueriesContext(connection) as queries:
        assert FlowSpec.active(flow.api_name) is spec
    assert len(queries) == 1


def test_drafts_are_not_cached_and_specs_are_immutable():
    flow = make_flow(elements=[{"type": "assign", "set": {"x": "1"}}])
    first = FlowSpec.load(flow.pk)
    assert FlowSpec.load(flow.pk) is not first
    with pytest.raises(Exception):
        first.api_name = "other"
    with pytest.raises(TypeError):
        first.elements[0].config["set"]["x"] = "2"


def test_active_raises_a_clear_lookup_error():
    make_flow(api_name="only_draft")
    with pytest.raises(LookupError, match="'only_draft' has no active version"):
        FlowSpec.active("only_draft")
    with pytest.raises(FlowNotFound, match="'nope' does not exist"):
        FlowSpec.active("nope")


# --- check_variables ------------------------------------------------------------

def test_check_variables_cleans_every_type(employee):
    declared = [
        {"name": "t", "type": "text"}, {"name": "n", "type": "number"}, {"name": "b", "type": "boolean"},
        {"name": "d", "type": "date"}, {"name": "dt", "type": "datetime"}, {"name": "r", "type": "record"},
        {"name": "l", "type": "list"}, {"name": "opt", "type": "text"},
        {"name": "withdefault", "type": "number", "default": 7},
    ]
    cleaned, errors = check_variables(declared, {
        "t": "hi", "n": 3, "b": False, "d": datetime.date(2024, 5, 1),
        "dt": "2024-05-01T10:00:00+02:00", "r": employee, "l": [1, datetime.date(2024, 1, 2)],
    })
    assert errors == {}
    assert cleaned == {
        "t": "hi", "n": 3.0, "b": False, "d": "2024-05-01", "dt": "2024-05-01T10:00:00+02:00",
        "r": f"demo.employee:{employee.pk}", "l": [1, "2024-01-02"], "opt": None, "withdefault": 7.0,
    }
    json.dumps(cleaned)
    # The record reference given as text or {model, pk} cleans to the same.
    assert check_variables(declared[5:6], {"r": f"demo.employee:{employee.pk}"})[0]["r"] == cleaned["r"]
    assert check_variables(declared[5:6], {"r": {"model": "demo.employee", "pk": employee.pk}})[0]["r"] == cleaned["r"]


def test_check_variables_reports_each_problem_by_name():
    declared = [
        {"name": "t", "type": "text", "required": True}, {"name": "n", "type": "number"},
        {"name": "b", "type": "boolean"}, {"name": "d", "type": "date"}, {"name": "dt", "type": "datetime"},
        {"name": "r", "type": "record"}, {"name": "r2", "type": "record"}, {"name": "l", "type": "list"},
    ]
    cleaned, errors = check_variables(declared, {
        "n": "many", "b": "yes", "d": "01/05/2024", "dt": "tomorrow", "r": "auth.user:1",
        "r2": "demo.employee:999999", "l": "a,b", "extra": 1,
    })
    assert errors["t"] == "required"
    assert "number" in errors["n"]
    assert "true or false" in errors["b"]
    assert "YYYY-MM-DD" in errors["d"]
    assert "date and time" in errors["dt"]
    assert "BATON_FLOW_MODELS" in errors["r"]
    assert "no demo.employee with pk" in errors["r2"]
    assert "list" in errors["l"]
    assert "unknown" in errors["extra"]
    assert check_variables(declared, ["not", "a", "map"])[1]


def test_check_inputs_uses_the_flows_inputs():
    spec = autolaunched(inputs=[var("amount", "number", required=True)])
    assert check_inputs(spec, {"amount": "2.5"}) == ({"amount": 2.5}, {})
    assert check_inputs(spec, {}) == ({}, {"amount": "required"})


def test_bad_inputs_stop_the_run_with_every_problem_named():
    spec = autolaunched(inputs=[var("a", "number", required=True), var("b", "boolean")])
    with pytest.raises(FlowError) as info:
        run_flow(spec, {"b": "x", "c": 1})
    text = str(info.value)
    assert spec.api_name in text and "v1" in text
    assert "a: required" in text and "b: expected true or false" in text and "c: unknown" in text


# --- elements -------------------------------------------------------------------

def test_assign_and_outputs_by_name_or_value_expression():
    spec = autolaunched(
        {"type": "assign", "set": {"total": "amount * 2.0", "label": '"total " + string(total)'}},
        inputs=[var("amount", "number", default=1.5)],
        outputs=[var("total", "number"), var("label"), var("doubled", "number", value="total * 2.0"),
                 var("missing")],
    )
    assert run_flow(spec, {"amount": 5}) == {"total": 10.0, "label": "total 10", "doubled": 20.0, "missing": None}
    assert run_flow(spec, {})["total"] == 3.0


def test_an_assignment_that_reads_another_of_the_same_set_runs_after_it_in_any_stored_order():
    """PostgreSQL's jsonb gives a ``set`` back in its own key order: ``label`` before ``total`` here."""
    spec = autolaunched(
        {"type": "assign", "set": {"label": '"total " + string(total)', "total": "amount * 2.0"}},
        inputs=[var("amount", "number")], outputs=[var("total", "number"), var("label")],
    )
    assert run_flow(spec, {"amount": 5}) == {"total": 10.0, "label": "total 10"}


def test_assignments_that_read_each_other_in_a_circle_are_an_error_naming_them():
    spec = autolaunched({"type": "assign", "set": {"a": "b + 1", "b": "a + 1"}},
                        inputs=[var("a", "number", default=0), var("b", "number", default=0)])
    with pytest.raises(FlowError, match="a, b read each other"):
        run_flow(spec, {})


def test_required_output_missing_and_wrongly_typed_output_are_errors():
    spec = autolaunched({"type": "assign", "set": {"x": "1"}}, outputs=[var("y", required=True)])
    with pytest.raises(FlowError, match="y: required"):
        run_flow(spec, {})
    spec = autolaunched({"type": "assign", "set": {"x": "1"}}, outputs=[var("x", "boolean")])
    with pytest.raises(FlowError, match="x: expected true or false"):
        run_flow(spec, {})


def test_now_and_datetime_inputs_are_timestamps():
    spec = autolaunched(
        {"type": "assign", "set": {"overdue": "due < now", "stamp": "now"}},
        inputs=[var("due", "datetime")], outputs=[var("overdue", "boolean"), var("stamp", "datetime")],
    )
    out = run_flow(spec, {"due": "2000-01-01T00:00:00Z"})
    assert out["overdue"] is True
    assert out["stamp"].startswith(str(datetime.date.today().year)) or out["stamp"][:2] == "20"


def test_decision_jumps_to_labels_and_end():
    spec = autolaunched(
        {"type": "decision", "outcomes": [{"condition": "amount > 10.0", "goto": "big"}], "default": "small"},
        {"type": "assign", "name": "big", "set": {"size": '"big"'}},
        {"type": "decision", "outcomes": [], "default": "end"},
        {"type": "assign", "name": "small", "set": {"size": '"small"'}},
        inputs=[var("amount", "number")], outputs=[var("size")],
    )
    assert run_flow(spec, {"amount": 50})["size"] == "big"
    assert run_flow(spec, {"amount": 5})["size"] == "small"


def test_decision_loop_counts_and_step_budget_stops_endless_loops():
    spec = autolaunched(
        {"type": "assign", "set": {"i": "0"}},
        {"type": "assign", "name": "loop", "set": {"i": "i + 1"}},
        {"type": "decision", "name": "again", "outcomes": [{"condition": "i < 5", "goto": "loop"}]},
        outputs=[var("i", "number")],
    )
    assert run_flow(spec, {}) == {"i": 5.0}
    endless = autolaunched({"type": "decision", "name": "spin", "outcomes": [{"condition": "true", "goto": "spin"}]})
    with pytest.raises(FlowError, match="more than 10000 elements"):
        run_flow(endless, {})


def test_unknown_goto_is_an_error():
    spec = autolaunched({"type": "decision", "outcomes": [{"condition": "true", "goto": "nowhere"}]})
    with pytest.raises(FlowError, match="'nowhere'"):
        run_flow(spec, {})


def test_get_records_first_list_and_limit(employee):
    Employee.objects.create(first_name="Bob", last_name="B", email="b@example.com", department="sales")
    Employee.objects.create(first_name="Cy", last_name="C", email="c@example.com", department="finance")
    spec = autolaunched(
        {"type": "get_records", "model": "demo.employee", "filter": {"department": '"sales"'}, "into": "people"},
        {"type": "get_records", "model": "demo.employee", "filter": {"email": "email"}, "into": "one",
         "first": True},
        {"type": "get_records", "model": "demo.employee", "filter": {"email": '"none@x"'}, "into": "none",
         "first": True},
        {"type": "get_records", "model": "demo.Employee", "filter": {}, "into": "limited", "limit": 2},
        {"type": "assign", "set": {"names": "people.map(p, p.first_name)", "first_name": "one.first_name"}},
        inputs=[var("email")],
        outputs=[var("names", "list"), var("first_name"), var("none"), var("limited", "list")],
    )
    out = run_flow(spec, {"email": "ada@example.com"})
    assert out["names"] == ["Ada", "Bob"]
    assert out["first_name"] == "Ada"
    assert out["none"] is None
    assert len(out["limited"]) == 2
    json.dumps(out)


def test_refused_model_and_lookups_across_relations():
    refused = autolaunched({"type": "get_records", "model": "auth.user", "filter": {}, "into": "users"})
    with pytest.raises(FlowError, match="not exposed to flows") as info:
        run_flow(refused, {})
    assert "element #1 (get_records)" in str(info.value)
    sneaky = autolaunched(
        {"type": "get_records", "model": "demo.employee", "filter": {"manager__password": '"x"'}, "into": "e"}
    )
    with pytest.raises(FlowError, match="only plain field names"):
        run_flow(sneaky, {})
    unknown = autolaunched({"type": "create_record", "model": "demo.employee", "values": {"salary": "1"}})
    with pytest.raises(FlowError, match="no such field"):
        run_flow(unknown, {})


def test_create_record_validates_and_returns_the_map(employee):
    spec = autolaunched(
        {"type": "create_record", "model": "demo.equipmentrequest",
         "values": {"employee": "employee_id", "item": '"laptop"'}, "into": "request"},
        {"type": "assign", "set": {"request_id": "request.id"}},
        inputs=[var("employee_id", "number")], outputs=[var("request_id", "number")],
    )
    out = run_flow(spec, {"employee_id": employee.pk})
    request = EquipmentRequest.objects.get()
    assert out == {"request_id": float(request.pk)}
    assert request.employee == employee and request.item == "laptop"
    bad = autolaunched(
        {"type": "create_record", "model": "demo.employee", "values": {"first_name": '"X"', "email": '"not-mail"'}}
    )
    with pytest.raises(FlowError, match="cannot create demo.employee: .*email"):
        run_flow(bad, {})
    assert not Employee.objects.filter(first_name="X").exists()


def test_update_records_counts_and_validates(employee):
    other = Employee.objects.create(first_name="Bob", last_name="B", email="b@example.com")
    spec = autolaunched(
        {"type": "update_records", "model": "demo.employee", "filter": {"id": "employee_id"},
         "values": {"accounts_created": "true", "title": '"Engineer"'}, "into": "count"},
        inputs=[var("employee_id", "number")], outputs=[var("count", "number")],
    )
    assert run_flow(spec, {"employee_id": employee.pk}) == {"count": 1.0}
    employee.refresh_from_db()
    other.refresh_from_db()
    assert employee.accounts_created and employee.title == "Engineer"
    assert not other.accounts_created
    bad = autolaunched({"type": "update_records", "model": "demo.employee", "filter": {"id": str(employee.pk)},
                        "values": {"status": '"retired"'}})
    with pytest.raises(FlowError, match="status"):
        run_flow(bad, {})
    no_filter = autolaunched({"type": "update_records", "model": "demo.employee", "values": {"title": '"x"'}})
    with pytest.raises(FlowError, match="needs a filter"):
        run_flow(no_filter, {})


def test_send_email_with_merge_fields():
    spec = autolaunched(
        {"type": "send_email", "to": "email", "subject": "Welcome {!name}", "body": "Hi {!name}, total {!1 + 2}"},
        inputs=[var("email"), var("name")],
    )
    run_flow(spec, {"email": "ada@example.com", "name": "Ada"})
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"] and message.subject == "Welcome Ada"
    assert message.body == "Hi Ada, total 3"
    with pytest.raises(FlowError, match="not an email address"):
        run_flow(spec, {"email": "nobody", "name": "X"})


# --- http_request against a local server ---------------------------------------

class _Handler(BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):  # noqa: N802
        self._answer()

    def do_POST(self):  # noqa: N802
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        _Handler.seen.append({"method": self.command, "path": self.path, "body": body,
                              "auth": self.headers.get("X-Token")})
        if self.path.startswith("/slow"):
            import time

            time.sleep(1.5)
        try:
            got = json.loads(body) if body else None
        except ValueError:
            got = body
        payload = json.dumps({"path": self.path, "got": got}).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.BATON_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.BATON_HTTP_ALLOW_PRIVATE_HOSTS = ["127.0.0.1"]  # a test server on loopback, allowed on purpose
    _Handler.seen.clear()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_http_request_to_an_allowed_host(http_server):
    spec = autolaunched(
        {"type": "http_request", "method": "POST", "url": http_server + "/api/{!id}",
         "headers": {"X-Token": "t-{!id}"}, "body": '{"id": id, "tags": ["a"]}', "into": "response", "timeout": 5},
        {"type": "assign", "set": {"status": "response.status", "echo": "response.json.got.id"}},
        inputs=[var("id")], outputs=[var("status", "number"), var("echo")],
    )
    assert run_flow(spec, {"id": "42"}) == {"status": 201.0, "echo": "42"}
    [seen] = _Handler.seen
    assert (seen["method"], seen["path"], seen["auth"]) == ("POST", "/api/42", "t-42")
    assert json.loads(seen["body"]) == {"id": "42", "tags": ["a"]}


def test_http_request_refuses_hosts_not_allowed(http_server, settings):
    spec = autolaunched({"type": "http_request", "url": "http://localhost:1/x", "into": "r"})
    with pytest.raises(FlowError, match="host 'localhost' is not in BATON_HTTP_ALLOWED_HOSTS") as info:
        run_flow(spec, {})
    assert "element #1 (http_request)" in str(info.value)
    scheme = autolaunched({"type": "http_request", "url": "file:///etc/passwd", "into": "r"})
    with pytest.raises(FlowError, match="only http and https"):
        run_flow(scheme, {})
    settings.BATON_HTTP_ALLOWED_HOSTS = []
    local = autolaunched({"type": "http_request", "url": http_server + "/x", "into": "r"})
    with pytest.raises(FlowError, match="refused"):
        run_flow(local, {})
    assert _Handler.seen == []


def test_http_request_timeout(http_server):
    spec = autolaunched({"type": "http_request", "url": http_server + "/slow", "timeout": 0.3, "into": "r"})
    with pytest.raises(FlowError, match="timed out"):
        run_flow(spec, {})


# --- actions and implementations ------------------------------------------------

@flows.action("test_runtime_double")
def _double(n, extra=0.0):
    return {"doubled": n * 2 + extra, "note": "done"}


@flows.action("test_runtime_nothing")
def _nothing(**kwargs):
    return None


@flows.action("test_runtime_bad_result")
def _bad_result():
    return ["not", "a", "dict"]


@flows.action("test_runtime_boom")
def _boom():
    raise RuntimeError("directory is down")


def whole_flow(amount, label=None):
    """Used as a whole-flow implementation by dotted path."""
    return {"total": amount * 3, "label": f"{label}!"}


def test_action_results_become_variables():
    spec = autolaunched(
        {"type": "action", "action": "test_runtime_double", "inputs": {"n": "amount", "extra": "0.5"}},
        {"type": "action", "action": "test_runtime_nothing"},
        inputs=[var("amount", "number")], outputs=[var("doubled", "number"), var("note")],
    )
    assert run_flow(spec, {"amount": 2}) == {"doubled": 4.5, "note": "done"}


def test_action_errors_name_the_action_and_element():
    for name, message in [
        ("test_runtime_bad_result", "returned list, not a dict"),
        ("test_runtime_boom", "raised RuntimeError: directory is down"),
        ("no_such_action", "no flow action named 'no_such_action'"),
    ]:
        spec = autolaunched({"type": "action", "name": "call", "action": name})
        with pytest.raises(FlowError, match=message) as info:
            run_flow(spec, {})
        assert "element #1 'call' (action)" in str(info.value)
    spec = autolaunched({"type": "action", "action": "test_runtime_boom"})
    with pytest.raises(FlowError) as info:
        run_flow(spec, {})
    assert isinstance(info.value.__cause__, RuntimeError)


def test_whole_python_implementation():
    spec = FlowSpec.load(make_flow(
        implementation="tests.flows.test_flow_runtime.whole_flow",
        inputs=[var("amount", "number"), var("label")], outputs=[var("total", "number"), var("label")],
    ))
    assert run_flow(spec, {"amount": 2, "label": "x"}) == {"total": 6.0, "label": "x!"}
    registered = FlowSpec.load(make_flow(
        implementation="test_runtime_double", inputs=[var("n", "number")], outputs=[var("doubled", "number")]
    ))
    assert run_flow(registered, {"n": 4}) == {"doubled": 8.0}
    missing = FlowSpec.load(make_flow(implementation="tests.nowhere.fn"))
    with pytest.raises(FlowError, match="cannot be imported"):
        run_flow(missing, {})


# --- evaluation flows ------------------------------------------------------------

def test_evaluation_flows_return_condition_met():
    spec = evaluation(
        {"type": "assign", "set": {"condition_met": "amount > 100.0 && approved"}},
        inputs=[var("amount", "number"), var("approved", "boolean", default=True)],
    )
    assert run_flow(spec, {"amount": 500}) == {"condition_met": True}
    assert evaluate_flow(spec, {"amount": 5}) is False
    undeclared = evaluation({"type": "assign", "set": {"condition_met": "true"}}, outputs=())
    assert evaluate_flow(undeclared, {}) is True
    not_bool = evaluation({"type": "assign", "set": {"condition_met": '"yes"'}}, outputs=())
    with pytest.raises(FlowError, match="condition_met to true or false"):
        evaluate_flow(not_bool, {})
    with pytest.raises(FlowError, match="not an evaluation flow"):
        evaluate_flow(autolaunched(), {})


def test_evaluate_flow_by_api_name_uses_the_active_version():
    make_flow("evaluation", api_name="is_big", status="obsolete", version=1,
              elements=[{"type": "assign", "set": {"condition_met": "false"}}])
    make_flow("evaluation", api_name="is_big", status="active", version=2,
              elements=[{"type": "assign", "set": {"condition_met": "true"}}])
    assert evaluate_flow("is_big", {}) is True


def test_record_is_in_scope(employee):
    spec = autolaunched({"type": "assign", "set": {"who": "record.first_name + ' ' + record.department"}},
                        outputs=[var("who")])
    assert run_flow(spec, {}, record=employee) == {"who": "Ada sales"}


# --- error messages ----------------------------------------------------------------

def test_errors_name_flow_element_and_expression():
    spec = autolaunched(
        {"type": "assign", "set": {"a": "1"}},
        {"type": "assign", "name": "compute", "set": {"b": "missing_var + 1"}},
        api_name="naming_test",
    )
    with pytest.raises(FlowError) as info:
        run_flow(spec, {})
    text = str(info.value)
    assert "flow naming_test v1" in text
    assert "element #2 'compute' (assign)" in text
    assert "missing_var + 1" in text
    assert info.value.expression == "missing_var + 1"
    syntax = autolaunched({"type": "decision", "outcomes": [{"condition": "1 +", "goto": "end"}]})
    with pytest.raises(FlowError, match=r"element #1 \(decision\).*'1 \+' does not compile"):
        run_flow(syntax, {})
    not_bool = autolaunched({"type": "decision", "outcomes": [{"condition": "1", "goto": "end"}]})
    with pytest.raises(FlowError, match="not true or false"):
        run_flow(not_bool, {})


def test_screen_flows_do_not_run_in_the_background():
    spec = FlowSpec.load(make_flow("screen"))
    with pytest.raises(FlowError, match="screen flow"):
        run_flow(spec, {})


def test_cache_entry_is_dropped_when_the_flow_row_is_saved_or_deleted():
    flow = make_flow(status="obsolete")
    spec = FlowSpec.load(flow.pk)
    assert FlowSpec.load(flow.pk) is spec
    flow.status = "obsolete"
    flow.save(update_fields=["status"])
    assert FlowSpec.load(flow.pk) is not spec
    FlowSpec.load(flow.pk)
    flow.delete()
    with pytest.raises(FlowNotFound):
        FlowSpec.load(flow.pk if flow.pk else 10**9)


def test_http_text_body_and_plain_text_answer(http_server):
    spec = autolaunched(
        {"type": "http_request", "method": "POST", "url": http_server + "/t", "body": '"plain"', "into": "r"},
        outputs=[var("r", "list")],
    )
    with pytest.raises(FlowError, match="r: expected a list"):
        run_flow(spec, {})
    assert _Handler.seen[0]["body"] == "plain"
