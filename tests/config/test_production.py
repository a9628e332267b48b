"""The production profile (issue 6): settings from the environment, static files, JSON logs, Procfile."""
import json
import logging
import os
import subprocess
import sys

import pytest

from tests.servers import REPO

PROBE = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None) "
         "for k in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
         "'LOG_FORMAT', 'CELERY_BROKER_TRANSPORT_OPTIONS', 'BATON_STEP_EXECUTION')}, default=str))")


def settings_with(tmp_path, **env):
    child = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CELERY_", "DATABASE_URL"))}
    child.update(DJANGO_SETTINGS_MODULE="config.settings", BATON_VAR_DIR=str(tmp_path), **env)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=child, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_switches_need_debug_off_and_baton_https(tmp_path):
    plain = settings_with(tmp_path, DEBUG="false")  # make run: plain http on 127.0.0.1 keeps working
    assert not plain["SESSION_COOKIE_SECURE"] and not plain["SECURE_SSL_REDIRECT"] and not plain["SECURE_HSTS_SECONDS"]
    https = settings_with(tmp_path, DEBUG="false", BATON_HTTPS="true")
    assert https["SESSION_COOKIE_SECURE"] and https["CSRF_COOKIE_SECURE"] and https["SECURE_SSL_REDIRECT"]
    assert https["SECURE_HSTS_SECONDS"] > 0
    debugging = settings_with(tmp_path, DEBUG="true", BATON_HTTPS="true")
    assert not debugging["SECURE_SSL_REDIRECT"]


def test_redis_broker_publishes_fail_fast(tmp_path):
    redis = settings_with(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6399/0")
    options = redis["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["max_retries"] == 1 and options["interval_start"] == 0


def test_step_execution_is_chosen_by_environment_and_checked(tmp_path):
    assert settings_with(tmp_path)["BATON_STEP_EXECUTION"] == "worker"
    assert settings_with(tmp_path, BATON_STEP_EXECUTION="in_process")["BATON_STEP_EXECUTION"] == "in_process"
    child = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "BATON_VAR_DIR": str(tmp_path),
             "BATON_STEP_EXECUTION": "inline"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=child,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "BATON_STEP_EXECUTION must be 'worker' or 'in_process', not 'inline'" in result.stderr


def test_log_format_json_is_selected_by_environment(tmp_path):
    assert settings_with(tmp_path, LOG_FORMAT="json")["LOG_FORMAT"] == "json"
    child = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "BATON_VAR_DIR": str(tmp_path),
             "LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", "import django, logging; django.setup(); logging.getLogger('baton.probe').warning("
                               "'hello %s', 'world', extra={'run_id': 7})"],
        cwd=REPO, env=child, capture_output=True, text=True, timeout=60)
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello world" and line["level"] == "WARNING" and line["run_id"] == 7
    assert line["logger"] == "baton.probe" and line["time"].endswith("+00:00")


def test_json_formatter_includes_the_exception():
    from config.logging import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed" and "ValueError: boom" in entry["exception"]


def test_collectstatic_and_whitenoise_serve_static_files_with_debug_off(tmp_path, client, settings):
    child = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_URL"))}
    child.update(DJANGO_SETTINGS_MODULE="config.settings", BATON_VAR_DIR=str(tmp_path), DEBUG="false")
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "1"], cwd=REPO,
                            env=child, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "workguide" / "workguide.css").exists()
    assert settings.DEBUG is False
    response = client.get("/static/workguide/workguide.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_procfile_names_web_worker_and_beat():
    procfile = (REPO / "Procfile").read_text()
    processes = dict(line.split(":", 1) for line in procfile.splitlines() if line and not line.startswith("#"))
    assert "gunicorn config.wsgi" in processes["web"] and "WEB_CONCURRENCY" in processes["web"]
    assert "celery -A config worker" in processes["worker"]
    assert "celery -A config beat" in processes["beat"]


def _start(tmp_path, command, **env):
    """Run ``manage.py COMMAND`` with only ``env`` deciding DEBUG and SECRET_KEY."""
    child = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYTEST_", "CELERY_", "DATABASE_URL")) and k not in ("SECRET_KEY", "DEBUG")}
    child.update(DJANGO_SETTINGS_MODULE="config.settings", BATON_VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=child, capture_output=True,
                          text=True, timeout=120)


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path):
    for command in (["check"], ["check", "--deploy"], ["migrate", "--noinput"]):
        result = _start(tmp_path, command)  # DEBUG is off by default
        assert result.returncode != 0, result.stdout
        assert "SECRET_KEY is not set" in result.stderr and "get_random_secret_key" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr.split("ImproperlyConfigured")[-1]
    assert not (tmp_path / "baton.sqlite3").exists()  # migrate stopped before touching the database


def test_a_secret_key_or_debug_lets_it_start(tmp_path):
    key = "k" + "x8Hq2-Lz" * 8
    assert _start(tmp_path, ["check"], SECRET_KEY=key).returncode == 0
    assert _start(tmp_path, ["check"], DEBUG="true").returncode == 0
    deploy = _start(tmp_path, ["check", "--deploy"], SECRET_KEY="short")
    assert "security.W009" in deploy.stdout + deploy.stderr  # a weak key is now warned about
