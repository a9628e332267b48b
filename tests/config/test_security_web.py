"""Web-side hardening: `next` links, the Content-Security-Policy, the secret
key in production, login throttling and oversized API bodies."""
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from orchestration import engine
from orchestration.models import StepRun
from tests.engine_builders import bg, noop_flow, orchestration

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    user = User.objects.create_user("operator", password="pw")
    for codename in ("view_runs", "operate_runs"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="orchestration", codename=codename))
    return user


@pytest.fixture
def failing_run(db):
    noop_flow("sec_calc", outputs={"total": ("number", "1")})
    orch = orchestration([{"name": "one", "steps": [bg("compute", "sec_calc")]}], api_name="sec_billing")
    run = engine.start_run(orch)
    engine.fail_step(StepRun.objects.get(run=run, step_name="compute").pk, "no")
    return run


# ------------------------------------------------------------------ next

@pytest.mark.parametrize("target", [
    "javascript:alert(1)", "JavaScript:alert(document.cookie)", " javascript:alert(1)", "data:text/html,<b>x</b>",
    "https://evil.example/phish", "//evil.example/", "/\\evil.example",
])
def test_the_skip_page_never_links_back_to_another_site_or_a_script(client, operator, failing_run, target):
    client.force_login(operator)
    url = reverse("monitor:step_skip", args=[failing_run.pk, "compute"])
    response = client.get(url, {"next": target})
    assert response.status_code == 200
    run_url = reverse("monitor:run", args=[failing_run.pk])
    assert response.context["next"] == run_url
    page = response.content.decode()
    assert f'href="{run_url}">Back</a>' in page
    assert "javascript:" not in page.lower() and "evil.example" not in page


def test_the_skip_page_keeps_a_local_next(client, operator, failing_run):
    client.force_login(operator)
    url = reverse("monitor:step_skip", args=[failing_run.pk, "compute"])
    response = client.get(url, {"next": "/monitor/?status=error"})
    assert response.context["next"] == "/monitor/?status=error"
    response = client.post(url, {"outputs": "{}", "next": "javascript:alert(1)"})
    assert response.status_code == 302 and response["Location"] == reverse("monitor:run", args=[failing_run.pk])


# ------------------------------------------------------------------ Content-Security-Policy

def _policy(response):
    header = response.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/docs/", "/api/schema/", "/api/runs/", "/admin/login/"])
def test_every_page_has_a_content_security_policy(client, path):
    policy = _policy(client.get(path))
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]


def test_the_api_docs_page_has_no_inline_script(client):
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page and "?script=" in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_monitor_pauses_polling_without_an_eval_filter(client, operator, failing_run):
    client.force_login(operator)
    for url in (reverse("monitor:runs"), reverse("monitor:run", args=[failing_run.pk])):
        page = client.get(url).content.decode()
        assert "data-poll-pause-while=" in page and "monitor/poll.js" in page
        assert "[!document" not in page  # an htmx filter: run through Function(), refused by the policy


# ------------------------------------------------------------------ sign-in throttling

LOGIN = "/accounts/login/"


@pytest.fixture
def people(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return {name: User.objects.create_user(name, password=f"{name}-right") for name in ("ann", "bob", "cid")}


def sign_in(client, username, password, address="10.0.0.1", path=LOGIN):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in_as(client):
    from django.contrib.auth import get_user

    return get_user(client).get_username() or None


def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, people):
    from axes.models import AccessAttempt

    for attempt in range(30):
        response = sign_in(client, "ann", f"guess-{attempt}")
        assert response.status_code in (200, 429)
    response = sign_in(client, "ann", "ann-right")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in paused" in page and "Too many failed sign-ins for <strong>ann</strong>" in page
    assert "0:15:00" in page  # the cool-off, from BATON_LOGIN_COOLOFF_MINUTES
    assert signed_in_as(client) is None
    assert AccessAttempt.objects.filter(username="ann").exists()


def test_the_lockout_starts_at_the_limit(client, people, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "ann", "wrong").status_code == 200  # the form again, with its error
    assert sign_in(client, "ann", "wrong").status_code == 429
    assert sign_in(client, "ann", "ann-right").status_code == 429


def test_a_locked_user_stays_locked_from_another_address_and_others_are_unaffected(client, people):
    for _ in range(5):
        sign_in(client, "ann", "wrong", address="10.0.0.1")
    assert sign_in(client, "ann", "ann-right", address="10.9.9.9").status_code == 429
    response = sign_in(client, "bob", "bob-right", address="10.9.9.9")
    assert response.status_code == 302 and signed_in_as(client) == "bob"


def test_one_address_trying_many_users_is_locked(client, people):
    for name in ("ann", "bob", "cid", "dan", "eve"):
        sign_in(client, name, "Summer2026!", address="10.0.0.66")  # password spraying
    assert sign_in(client, "cid", "cid-right", address="10.0.0.66").status_code == 429
    assert sign_in(client, "cid", "cid-right", address="10.0.0.7").status_code == 302  # cid was tried only once


def test_the_admin_sign_in_is_throttled_too(client, people):
    people["ann"].is_staff = True
    people["ann"].save()
    for _ in range(5):
        sign_in(client, "ann", "wrong", path="/admin/login/")
    assert sign_in(client, "ann", "ann-right", path="/admin/login/").status_code == 429
    assert signed_in_as(client) is None


def test_an_administrator_unlocks_and_the_cool_off_ends(client, people):
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.core.management import call_command
    from django.utils import timezone

    for _ in range(5):
        sign_in(client, "ann", "wrong", address="10.0.0.1")
    call_command("axes_reset_username", "ann", stdout=__import__("io").StringIO())
    call_command("axes_reset_ip", "10.0.0.1", stdout=__import__("io").StringIO())
    assert sign_in(client, "ann", "ann-right").status_code == 302
    client.logout()
    for _ in range(5):
        sign_in(client, "bob", "wrong", address="10.0.0.2")
    assert sign_in(client, "bob", "bob-right", address="10.0.0.2").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(client, "bob", "bob-right", address="10.0.0.2").status_code == 302


def test_behind_a_proxy_the_address_is_the_one_the_proxy_added(rf, settings):
    from config.middleware import client_ip_address

    request = rf.get("/", REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    settings.SECURE_PROXY_SSL_HEADER = None
    assert client_ip_address(request) == "10.0.0.254"  # not behind a proxy: the header is anyone's
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_ip_address(request) == "203.0.113.9"


# ------------------------------------------------------------------ oversized API bodies

@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("auth", ["token", "session"])
def test_an_oversized_api_body_gets_the_json_error(client, settings, content_type, auth):
    import json

    from rest_framework.authtoken.models import Token

    from orchestration.models import OrchestrationRun

    user = User.objects.create_superuser("api-root", password="pw")
    noop_flow("sec_big")
    orchestration([{"name": "one", "steps": [bg("s", "sec_big")]}], api_name="sec_big_launch")
    headers = {}
    if auth == "token":
        headers["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    else:
        client.force_login(user)
    body = json.dumps({"inputs": {"note": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}})
    response = client.post("/api/orchestrations/sec_big_launch/launch/", body, content_type=content_type, **headers)
    assert response.status_code == 413 and response["Content-Type"] == "application/json"  # before: HTML 400
    assert response.json() == {
        "detail": "The request body is larger than 2,621,440 bytes, the most the API accepts.",
        "code": "request_too_large", "errors": {}}
    assert OrchestrationRun.objects.count() == 0
