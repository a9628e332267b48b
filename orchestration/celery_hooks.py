"""Baton in the host's own Celery app, with nothing for the host to write.

The host's Celery app is the standard Django one (``config_from_object(
"django.conf:settings", namespace="CELERY")`` and ``autodiscover_tasks()``),
whatever it is called: the tasks are ``shared_task``, and the apps' ``ready()``
calls these hooks, which act on ``celery.current_app``, the app the host
created when its settings package was imported, or the one ``celery -A``
loaded in a worker or beat process (both set up Django before they read the
schedule or build the worker).

- ``join_beat`` adds Baton's periodic tasks to the app's beat schedule: the
  sweeper (``BATON_SWEEP_INTERVAL``) and the due-date checks
  (``BATON_DUE_CHECK_INTERVAL``). An interval of 0 or None leaves its entry
  out; an entry of the same name in the host's ``CELERY_BEAT_SCHEDULE`` wins.
- ``add_worker_steps`` gives every worker the pending-start listener
  (``BATON_RECORD_STARTS=worker`` on PostgreSQL, ``orchestration/listener.py``).
"""
from datetime import timedelta

from celery import bootsteps, current_app
from celery.signals import celeryd_init

from . import listener
from .conf import baton_settings


def join_beat(name, task, interval_setting, app=None):
    """Add ``task`` every ``interval_setting`` seconds to the beat schedule under ``name``."""
    seconds = getattr(baton_settings, interval_setting)
    if not seconds:
        return
    app = app or current_app
    schedule = dict(app.conf.beat_schedule or {})
    schedule.setdefault(name, {"task": task, "schedule": timedelta(seconds=seconds)})
    # A new dict: the host's CELERY_BEAT_SCHEDULE setting itself stays as written.
    app.conf.beat_schedule = schedule


class PendingStarts(bootsteps.StartStopStep):
    """With ``BATON_RECORD_STARTS=worker`` on PostgreSQL, listen for pending starts (``orchestration/listener.py``).

    It runs in the worker's main process after the pool has forked, so pool
    processes never inherit its connection.
    """

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        self.listener = None

    def start(self, worker):
        if listener.enabled():
            self.listener = listener.PendingStartListener().start()

    def stop(self, worker):
        if self.listener is not None:
            self.listener.stop()


def _add_pending_starts(sender=None, instance=None, **kwargs):
    # celeryd_init comes after the worker set up Django and before it builds
    # its blueprint from app.steps, so the step is part of this worker.
    instance.app.steps["worker"].add(PendingStarts)


def add_worker_steps():
    celeryd_init.connect(_add_pending_starts, weak=False, dispatch_uid="baton-pending-starts")
