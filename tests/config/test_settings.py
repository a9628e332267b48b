from django.conf import settings
from django.db import connection


def test_sqlite_default_runs_in_wal_mode_with_busy_timeout(db):
    if connection.vendor != "sqlite":
        return
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["timeout"] >= 5
    assert "busy_timeout" in options["init_command"]


def test_celery_defaults_need_no_server():
    assert settings.CELERY_BROKER_URL.startswith("filesystem://") or "redis" in settings.CELERY_BROKER_URL
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


def test_links_follow_the_port_make_run_serves_on():
    """`make run PORT=8716`: mails and webhook URLs name port 8716 (they named 8000 whatever PORT was)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PORT": "8716", "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("BATON_BASE_URL", None)
    shown = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; print(s.BATON_BASE_URL)"],
        env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert shown == "http://127.0.0.1:8716"


def test_postgresql_prepares_repeated_statements_unless_told_not_to():
    """Prepared statements by default (they need server-side binding); ``none`` for PgBouncer; a bad value is named."""
    import environ
    import pytest

    from config.database import postgres_options

    def options(**values):
        return _with_env(values, postgres_options)

    assert options() == {"server_side_binding": True, "prepare_threshold": 5}
    assert options(PG_PREPARE_THRESHOLD="none") == {"server_side_binding": True, "prepare_threshold": None}
    assert options(PG_PREPARE_THRESHOLD="0", PG_SERVER_SIDE_BINDING="false") == {
        "server_side_binding": False, "prepare_threshold": 0}
    with pytest.raises(environ.ImproperlyConfigured, match="PG_PREPARE_THRESHOLD must be a whole number.*'five'"):
        options(PG_PREPARE_THRESHOLD="five")


def _with_env(values, function):
    from unittest import mock

    names = ("PG_PREPARE_THRESHOLD", "PG_SERVER_SIDE_BINDING")
    clean = {k: v for k, v in __import__("os").environ.items() if k not in names}
    with mock.patch.dict("os.environ", {**clean, **values}, clear=True):
        return function()


def test_a_postgresql_connection_prepares_what_it_repeats(postgres_db):
    """The tests' private databases get the same options as ``config/settings.py`` gives production."""
    assert connection.vendor == "postgresql"
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5
    for _ in range(6):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orchestration_runevent WHERE run_id = %s", [1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] >= 1
