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
