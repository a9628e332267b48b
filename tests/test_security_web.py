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
