"""The Celery app. Start a worker with ``celery -A config worker``.

The standard Django pattern, as any host project writes it: Baton's apps add
their tasks, beat entries and worker steps themselves (orchestration/celery_hooks.py).
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
