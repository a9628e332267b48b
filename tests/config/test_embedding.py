"""Baton as apps of a host project: settings in one place, system checks, any URL prefix, restyling, beat.

``tests/prefix_urls.py`` mounts ``orchestration.urls`` under ``ops/`` as a
host would; the pages, their links, redirects, htmx targets, the API's
pagination links and the mail links must all carry that prefix.
"""
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core import mail
from django.core.checks import run_checks
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse

from orchestration import celery_hooks, checks, conf
from orchestration.conf import baton_settings
from tests.servers import REPO
from tests.workguide_helpers import employee, guide_orchestration, item_of, people, start

PREFIXED = pytest.mark.urls("tests.prefix_urls")


# --- orchestration/conf.py ---------------------------------------------------
def test_conf_imports_without_settings_or_models():
    code = ("import sys, orchestration.conf as c; "
            "assert 'orchestration' in c.INSTALLED_APPS and 'django_htmx' in c.INSTALLED_APPS; "
            "from django.conf import settings; assert not settings.configured; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('flows', 'orchestration', 'workguide')]; "
            # flows.conf holds the settings flows reads (flows must not import orchestration); the flows
            # package's __init__ brings its action registry, which loads no model either.
            "assert sorted(loaded) == ['flows', 'flows.actions', 'flows.conf', 'orchestration', 'orchestration.conf'], "
            "loaded")
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_baton_setting_the_apps_read_has_a_default_and_a_docstring():
    read = set()
    for app in ("flows", "orchestration", "workguide"):
        for path in (REPO / app).rglob("*.py"):
            if path.name == "conf.py":
                continue
            read |= set(re.findall(r"baton_settings\.(BATON_[A-Z_]+)", path.read_text()))
    assert read and read <= set(conf.SETTINGS), read - set(conf.SETTINGS)
    for name, setting in conf.SETTINGS.items():
        assert setting.doc.strip(), name
    leftovers = []
    for app in ("flows", "orchestration", "workguide"):
        for path in (REPO / app).rglob("*.py"):
            leftovers += re.findall(r"getattr\(settings, \"BATON_\w+\".*", path.read_text())
    assert leftovers == []


def test_settings_are_read_when_used(settings):
    del settings.BATON_MAX_INPUT_BYTES
    assert baton_settings.BATON_MAX_INPUT_BYTES == 256 * 1024  # a host that sets none gets the default
    settings.BATON_MAX_INPUT_BYTES = 10
    assert baton_settings.BATON_MAX_INPUT_BYTES == 10
    with pytest.raises(AttributeError, match="not a Baton setting"):
        baton_settings.BATON_NO_SUCH_THING


# --- system checks ------------------------------------------------------------
def ids(errors):
    return [(e.id, e.msg) for e in errors]


def test_the_checks_pass_on_this_site():
    assert [e for e in run_checks() if e.id.startswith("baton.")] == []


def test_missing_middleware_is_named_with_the_fix(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "htmx" not in m]
    (error,) = checks.check_middleware()
    assert error.id == "baton.E002" and "django_htmx.middleware.HtmxMiddleware" in error.msg
    assert "Add 'django_htmx.middleware.HtmxMiddleware' to MIDDLEWARE" in error.hint


def test_missing_apps_are_named_with_the_fix(monkeypatch):
    from django.apps import apps

    configs = [c for c in apps.get_app_configs() if c.name not in ("django_htmx", "django.contrib.messages")]
    monkeypatch.setattr(checks.apps, "get_app_configs", lambda: configs)
    errors = checks.check_installed_apps()
    assert [e.msg for e in errors] == ["Baton needs 'django.contrib.messages' in INSTALLED_APPS.",
                                       "Baton needs 'django_htmx' in INSTALLED_APPS."]
    assert "orchestration.conf.INSTALLED_APPS" in errors[1].hint


def test_template_options_and_schema_class_are_checked(settings):
    engine = dict(settings.TEMPLATES[0], APP_DIRS=False)
    engine["OPTIONS"] = {"context_processors": ["django.template.context_processors.request"]}
    settings.TEMPLATES = [engine]
    messages = [e.msg for e in checks.check_templates()]
    assert len(messages) == 3 and "APP_DIRS" in messages[0] and "messages" in messages[2]
    settings.REST_FRAMEWORK = {}
    (error,) = checks.check_rest_framework()
    assert error.id == "baton.E006" and "drf_spectacular.openapi.AutoSchema" in error.hint


def test_bad_baton_settings_are_named(settings):
    settings.BATON_STEP_EXECUTION = "threads"
    settings.BATON_FLOW_MODELS = ["demo.employee", "demo.nope"]
    assert ids(checks.check_baton_settings()) == [
        ("baton.E004", "BATON_STEP_EXECUTION is 'threads'."),
        ("baton.E005", "BATON_FLOW_MODELS names 'demo.nope', which is not an installed model."),
    ]
    settings.BATON_FLOW_MODELS = "demo.employee"
    assert [e.id for e in checks.check_baton_settings()] == ["baton.E004", "baton.E005"]
    settings.BATON_STEP_EXECUTION = "worker"
    settings.BATON_FLOW_MODELS = []
    settings.BATON_BASE_URL = "intranet.example.com"
    assert [e.id for e in checks.check_baton_settings()] == ["baton.E007"]
    settings.BATON_BASE_URL = "https://intranet.example.com/baton/"
    (warning,) = checks.check_baton_settings()
    assert warning.id == "baton.W001" and "FORCE_SCRIPT_NAME" in warning.hint


# --- URLs under a prefix --------------------------------------------------------
LINK = re.compile(r'(?:href|action|hx-get|hx-post)="(/[^"]*)"')


def local_links(html):
    return [url for url in LINK.findall(html) if not url.startswith("/static/")]


@pytest.fixture
def users(db):
    return people(password="pw-12345")


@pytest.fixture
def item(users):
    return item_of(start(guide_orchestration(), record=employee()))


@PREFIXED
def test_names_reverse_under_the_prefix():
    assert reverse("workguide:my_work") == "/ops/workguide/"
    assert reverse("monitor:runs") == "/ops/monitor/"
    assert reverse("baton_api:run-list") == "/ops/api/runs/"
    assert reverse("baton_api:schema") == "/ops/api/schema/"


@PREFIXED
def test_pages_link_only_under_the_prefix(client, users, item, settings):
    users["alice"].is_staff = users["alice"].is_superuser = True
    users["alice"].save()
    client.force_login(users["alice"])
    for url in ["/ops/workguide/", f"/ops/workguide/items/{item.pk}/", "/ops/monitor/", f"/ops/monitor/runs/{item.run_id}/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        links = local_links(response.content.decode())
        assert links, url
        assert [link for link in links if not link.startswith(("/ops/", "/admin/"))] == [], url
    # The post-and-redirect paths stay under the prefix too.
    response = client.post(f"/ops/workguide/items/{item.pk}/comments/", {"text": "hello"})
    assert response.status_code == 302 and response["Location"].startswith("/ops/workguide/")


@PREFIXED
def test_login_goes_through_the_hosts_login_url(client, settings):
    settings.LOGIN_URL = "/sso/login/"
    response = client.get("/ops/monitor/")
    assert response.status_code == 302 and response["Location"] == "/sso/login/?next=/ops/monitor/"


@PREFIXED
def test_the_api_and_its_pagination_links_carry_the_prefix(client, users, item):
    for _ in range(2):
        start(guide_orchestration(), record=employee())
    users["alice"].is_superuser = True
    users["alice"].save()
    client.force_login(users["alice"])
    body = client.get("/ops/api/runs/?page_size=1").json()
    assert body["count"] == 3 and body["next"].startswith("http://testserver/ops/api/runs/?")
    assert client.get("/ops/api/schema/").status_code == 200
    assert client.get("/ops/api/nothing-here/").json()["code"] == "not_found"


@PREFIXED
def test_mail_links_take_scheme_and_host_from_base_url_and_the_path_from_reverse(users, settings,
                                                                                 django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.BATON_BASE_URL = "https://intranet.example.com/some/path/"
    with django_capture_on_commit_callbacks(execute=True):
        item = item_of(start(guide_orchestration(), record=employee()))
    assert f"https://intranet.example.com/ops/workguide/items/{item.pk}/\n" in mail.outbox[0].body


@PREFIXED
def test_the_component_and_launch_button_work_in_a_host_layout(users):
    record = employee()
    item = item_of(start(guide_orchestration(), record=record))
    users["alice"].is_staff = True
    users["alice"].save()
    request = RequestFactory().get("/orders/1/")
    request.user = users["alice"]
    orch = item.run.orchestration
    page = Template(
        "<html><body><h1>Host page</h1>{% load workguide %}{% work_guide record %}"
        "{% launch_button api_name record label='Again' %}</body></html>"
    ).render(Context({"record": record, "api_name": orch.api_name, "request": request}))
    assert "Host page" in page and 'class="wg-component"' in page and "X-CSRFToken" in page
    assert f'hx-post="/ops/workguide/items/{item.pk}/flow/"' in page
    assert 'action="/ops/workguide/launch/"' in page
    assert [link for link in local_links(page) if not link.startswith("/ops/")] == []


# --- templates ---------------------------------------------------------------------
@PREFIXED
def test_a_host_template_named_baton_base_restyles_every_page(client, users, item, settings, tmp_path):
    (tmp_path / "baton").mkdir()
    (tmp_path / "baton" / "base.html").write_text(
        '{% extends "baton/base.html" %}{% block site_name %}Intranet{% endblock %}'
        '{% block nav_items %}<li><a href="/orders/">Orders</a></li>{% endblock %}')
    settings.TEMPLATES = [dict(settings.TEMPLATES[0], DIRS=[tmp_path])]
    client.force_login(users["alice"])
    html = client.get("/ops/workguide/").content.decode()
    assert "· Intranet</title>" in html and '<a href="/orders/">Orders</a>' in html
    assert 'href="/ops/workguide/" aria-current="page">My Work' in html  # Baton's own navigation stays


def test_this_sites_layout_extends_batons_and_adds_the_demo(client, users):
    from django.contrib.auth.models import Permission

    client.force_login(users["alice"])
    html = client.get("/workguide/").content.decode()
    assert "Demo records" in html and "Log out" in html
    assert 'href="/monitor/"' not in html  # the nav offers the monitor only to who may open it
    users["alice"].user_permissions.add(Permission.objects.get(codename="view_runs"))
    client.force_login(users["alice"])
    assert 'href="/monitor/"' in client.get("/workguide/").content.decode()


# --- Celery beat ---------------------------------------------------------------------
def test_the_apps_put_the_sweeper_and_due_checks_on_beat():
    from config.celery import app

    schedule = app.conf.beat_schedule
    assert schedule["orchestration-sweep"]["task"] == "orchestration.tasks.sweep"
    assert schedule["workguide-due-dates"]["task"] == "workguide.tasks.check_due_dates"


def test_beat_intervals_come_from_settings_and_zero_turns_one_off(settings):
    from celery import Celery

    app = Celery("host", set_as_current=False)
    app.conf.beat_schedule = {"workguide-due-dates": {"task": "mine", "schedule": 1}}
    settings.BATON_SWEEP_INTERVAL = 7
    settings.BATON_DUE_CHECK_INTERVAL = 0
    celery_hooks.join_beat("orchestration-sweep", "orchestration.tasks.sweep", "BATON_SWEEP_INTERVAL", app=app)
    celery_hooks.join_beat("workguide-due-dates", "workguide.tasks.check_due_dates", "BATON_DUE_CHECK_INTERVAL", app=app)
    assert app.conf.beat_schedule == {
        "workguide-due-dates": {"task": "mine", "schedule": 1},  # the host's own entry is kept
        "orchestration-sweep": {"task": "orchestration.tasks.sweep", "schedule": timedelta(seconds=7)},
    }


def test_serve_starts_the_settings_packages_celery_app(monkeypatch, settings):
    from django.core.management import call_command

    from orchestration.management.commands import serve

    started = []

    class Stop(Exception):
        pass

    def popen(argv, **kwargs):
        started.append(argv)
        raise Stop

    monkeypatch.setattr(serve.subprocess, "Popen", popen)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "mysite.settings")
    with pytest.raises(Stop):
        call_command("serve", "--port", "8123")
    assert started[0][3:6] == ["-A", "mysite", "worker"]
    settings.BATON_CELERY_APP = "proj.tasks_app"
    with pytest.raises(Stop):
        call_command("serve", "--port", "8123")
    assert started[1][3:6] == ["-A", "proj.tasks_app", "worker"]
