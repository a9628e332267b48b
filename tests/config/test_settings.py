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
