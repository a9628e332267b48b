"""Which fields of a record expressions, flows, run rows and the API see (issue 12, point 17).

``record`` used to be every concrete field and ``record_prior`` was stored
whole: a site exposing ``auth.user`` handed its password hashes to every
expression and copied them into run rows. Now each ``BATON_FLOW_MODELS``
entry may choose its fields, secret fields are never exposed, and
``record_prior`` keeps only the fields the version reads.
"""
import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from demo.models import Employee, Opportunity
from flows.runtime import FlowError, run_flow
from orchestration import triggers
from orchestration.models import OrchestrationRun, PendingStart, StepRun
from orchestration.records import exposed_fields, is_secret, record_map
from tests.engine_builders import bg, noop_flow, orchestration
from tests.flow_builders import autolaunched

pytestmark = pytest.mark.django_db

DEMO = ["demo.employee", "demo.opportunity", "demo.equipmentrequest"]


@pytest.fixture
def users_exposed(settings):
    settings.BATON_FLOW_MODELS = DEMO + ["auth.user"]
    return User.objects.create_user("ada", "ada@example.com", "correct horse battery staple")


# -- the setting ---------------------------------------------------------------

def test_the_plain_list_still_exposes_every_field_and_the_primary_key(settings):
    settings.BATON_FLOW_MODELS = DEMO
    assert exposed_fields(Employee) == (
        "id", "first_name", "last_name", "email", "department", "title", "start_date", "status", "needs_laptop",
        "remote", "manager_id", "manager", "accounts_created", "pk")
    assert exposed_fields(User) == ("id", "pk")  # not listed: its primary key only


def test_an_entry_names_its_fields_or_leaves_some_out_in_the_environment_string(settings):
    settings.BATON_FLOW_MODELS = "demo.employee:first_name,email,manager, auth.user:-last_login,-date_joined,demo.opportunity"
    assert exposed_fields(Employee) == ("id", "first_name", "email", "manager_id", "manager", "pk")
    assert exposed_fields(User) == ("id", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
                                    "is_active", "pk")
    assert "approval_notes" in exposed_fields(Opportunity)
    # The list that environ makes of that string reads the same.
    settings.BATON_FLOW_MODELS = ["demo.employee:first_name", "email", "auth.user"]
    assert exposed_fields(Employee) == ("id", "first_name", "email", "pk")


def test_the_dict_form(settings):
    settings.BATON_FLOW_MODELS = {"demo.employee": {"fields": ["email"]}, "auth.user": {"exclude": ["email"]},
                                  "demo.opportunity": None, "demo.equipmentrequest": ["item"]}
    assert exposed_fields(Employee) == ("id", "email", "pk")
    assert "email" not in exposed_fields(User) and "username" in exposed_fields(User)
    assert "approval_notes" in exposed_fields(Opportunity)
    from demo.models import EquipmentRequest

    assert exposed_fields(EquipmentRequest) == ("id", "item", "pk")


@pytest.mark.parametrize("value, message", [
    ("auth.user:username,passwd_hint", "has no field 'passwd_hint'"),
    ("auth.user:username,password", "'password' is secret"),
    ("auth.user:username,-email", "not both"),
    ("username,auth.user", "'username' is not a model"),
    ({"auth.user": {"fields": "username"}}, "must be a list of field names"),
    ({"auth.user": {"only": ["username"]}}, "must be None, a list of fields"),
])
def test_a_wrong_entry_is_a_configuration_error_naming_it(settings, value, message):
    settings.BATON_FLOW_MODELS = value
    with pytest.raises(ImproperlyConfigured, match=message):
        exposed_fields(User)


def test_secret_words_match_whole_parts_of_a_name_and_password_is_always_secret(settings):
    assert is_secret("password") and is_secret("password_hash") and is_secret("user_api_key")
    assert is_secret("reset_token") and is_secret("client_secret")
    assert not is_secret("secretary") and not is_secret("tokenizer") and not is_secret("email")
    settings.BATON_SECRET_FIELDS = []  # nothing listed: a password stays hidden all the same
    assert not is_secret("reset_token") and is_secret("password")
    settings.BATON_FLOW_MODELS = ["auth.user"]
    assert "password" not in exposed_fields(User)


def test_fields_named_by_a_secret_word_are_hidden_from_a_model_listed_whole(settings):
    settings.BATON_FLOW_MODELS = ["demo.opportunity"]
    settings.BATON_SECRET_FIELDS = ["approval_notes"]
    assert "approval_notes" not in exposed_fields(Opportunity)
    opp = Opportunity.objects.create(name="Deal", account="A", approval_notes="confidential")
    assert "approval_notes" not in record_map(opp) and record_map(opp)["name"] == "Deal"


# -- auth.user exposed: the hash goes nowhere ---------------------------------

def test_the_record_map_of_a_user_has_no_password(users_exposed):
    seen = record_map(users_exposed)
    assert "password" not in seen
    assert seen["username"] == "ada" and seen["email"] == "ada@example.com"
    assert users_exposed.password not in repr(seen)


def test_a_start_condition_cannot_read_the_password(users_exposed, django_capture_on_commit_callbacks):
    noop_flow("n")
    orchestration([{"name": "one", "steps": [bg("s", "n")]}], api_name="sniff",
                  start={"type": "record_triggered", "model": "auth.user", "when": "created",
                         "condition": "has(record.password)"})
    triggers.definitions_changed()
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.create_user("bob", "bob@example.com", "hunter2")
    assert not OrchestrationRun.objects.exists()


def test_a_run_on_a_user_keeps_no_hash_in_its_rows_record_prior_or_the_api(users_exposed,
                                                                            django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    noop_flow("n", inputs=[{"name": "seen", "type": "text"}, {"name": "was", "type": "text"}])
    reads_email = orchestration(
        [{"name": "one", "steps": [bg("s", "n", inputs={
            "seen": 'has(record.password) ? record.password : "hidden"', "was": "record_prior.email"})]}],
        api_name="email_changed",
        start={"type": "record_triggered", "model": "auth.user", "when": "updated",
               "condition": "record.is_active && record_prior.email != record.email"})
    reads_all = orchestration(
        [{"name": "one", "steps": [bg("s", "n", inputs={"seen": "string(size(record_prior))", "was": '"x"'})]}],
        api_name="anything_changed",
        start={"type": "record_triggered", "model": "auth.user", "when": "updated",
               "condition": "record_prior != record"})
    triggers.definitions_changed()
    user = users_exposed
    user.email = "ada@new.example"
    with django_capture_on_commit_callbacks(execute=False):
        user.save()
    # The pending starts, written with the save, keep only what each version reads.
    priors = {p.orchestration_id: p.record_prior for p in PendingStart.objects.all()}
    assert priors[reads_email.pk] == {"email": "ada@example.com"}
    assert priors[reads_all.pk]["username"] == "ada" and "password" not in priors[reads_all.pk]
    from orchestration.starts import start_leftover_pending

    assert start_leftover_pending(older_than_seconds=0) == 2
    run = OrchestrationRun.objects.get(orchestration=reads_email)
    assert run.record_prior == {"email": "ada@example.com"}
    assert StepRun.objects.get(run=run).inputs == {"seen": "hidden", "was": "ada@example.com"}
    whole = OrchestrationRun.objects.get(orchestration=reads_all)
    assert "password" not in whole.record_prior
    admin = User.objects.create_superuser("root", "root@example.com", "pw-of-root")
    client = APIClient()
    client.force_login(admin)
    for shown in (run, whole):
        response = client.get(f"/api/runs/{shown.pk}/")
        assert response.status_code == 200
        assert user.password not in response.content.decode()
        assert user.password.split("$")[-1] not in response.content.decode()


def test_the_workguide_record_summary_shows_no_password(users_exposed):
    from workguide.services import record_summary

    _, facts = record_summary("auth.user", users_exposed.pk, limit=20)
    labels = [label for label, _ in facts]
    assert "Password" not in labels and "Username" in labels
    assert users_exposed.password not in repr(facts)


# -- flows: no reading, filtering or writing hidden fields ---------------------

def test_flows_cannot_read_filter_or_write_hidden_fields(users_exposed):
    listed = run_flow(autolaunched(
        {"type": "get_records", "model": "auth.user", "filter": {"username": '"ada"'}, "into": "found"},
        outputs=[{"name": "found", "type": "list"}]), {})
    assert listed["found"][0]["username"] == "ada" and "password" not in listed["found"][0]
    attempts = [
        {"type": "get_records", "model": "auth.user", "filter": {"password": '"x"'}, "into": "found"},
        {"type": "create_record", "model": "auth.user", "values": {"username": '"eve"', "password": '"x"'}},
        {"type": "update_records", "model": "auth.user", "filter": {"username": '"ada"'},
         "values": {"password": '"pbkdf2_sha256$1$salt$forged"'}},
    ]
    for element in attempts:
        with pytest.raises(FlowError, match="'password': field of auth.user not exposed to flows"):
            run_flow(autolaunched(element), {})
    users_exposed.refresh_from_db()
    assert users_exposed.check_password("correct horse battery staple")
    assert not User.objects.filter(username="eve").exists()


def test_flows_cannot_touch_a_field_the_entry_leaves_out(settings):
    settings.BATON_FLOW_MODELS = ["demo.employee:first_name,email"]
    Employee.objects.create(first_name="Ada", last_name="L", email="ada@example.com")
    element = {"type": "update_records", "model": "demo.employee", "filter": {"email": '"ada@example.com"'},
               "values": {"last_name": '"X"'}}
    with pytest.raises(FlowError, match="'last_name': field of demo.employee not exposed"):
        run_flow(autolaunched(element), {})
    assert Employee.objects.get().last_name == "L"


def test_a_secret_field_named_in_the_environment_stops_start_up(tmp_path):
    import os
    import subprocess
    import sys

    from tests.servers import REPO

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "BATON_VAR_DIR": str(tmp_path),
           "BATON_FLOW_MODELS": "demo.employee,auth.user:username,password"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "BATON_FLOW_MODELS entry 'auth.user': field 'password' is secret" in result.stderr


def test_activation_names_a_hidden_field_in_a_record_element(users_exposed):
    from flows.validation import validate_flow
    from tests.flow_builders import make_flow

    flow = make_flow(elements=[
        {"type": "get_records", "model": "auth.user", "filter": {"username": '"ada"', "password": '"x"'},
         "into": "found"},
        {"type": "update_records", "model": "auth.user", "filter": {"username": '"ada"'},
         "values": {"last_login": "now", "password": '"x"'}},
    ])
    problems = [str(p) for p in validate_flow(flow)]
    hidden = [p for p in problems if "not exposed to flows" in p]
    assert len(hidden) == 2 and all("'password' of auth.user" in p for p in hidden)
    assert any("filter.password" in p for p in hidden) and any("values.password" in p for p in hidden)
