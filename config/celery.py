"""The Celery app. Start a worker with ``celery -A config worker``."""
import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class PendingStarts(bootsteps.StartStopStep):
    """With ``BATON_RECORD_STARTS=worker`` on PostgreSQL, listen for pending starts (``orchestration/listener.py``).

    It runs in the worker's main process after the pool has forked, so pool
    processes never inherit its connection.
    """

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        self.listener = None

    def start(self, worker):
        from orchestration import listener

        if listener.enabled():
            self.listener = listener.PendingStartListener().start()

    def stop(self, worker):
        if self.listener is not None:
            self.listener.stop()


app.steps["worker"].add(PendingStarts)
