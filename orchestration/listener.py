"""Start record-triggered runs in workers as soon as their ``PendingStart`` commits (PostgreSQL).

With ``BATON_RECORD_STARTS=worker`` a save that triggers a run writes only
its ``PendingStart`` row; migration 0005's trigger makes PostgreSQL notify
the channel ``baton_pending_start`` with the row's id when that transaction
commits. Every worker runs one ``PendingStartListener`` thread (a worker
bootstep, ``config/celery.py``) that listens on the channel and starts each
run with ``tasks.start_pending_run``: ``start_pending`` locks the row with
``SKIP LOCKED`` and deletes it in the run's start transaction, so with
several workers listening each run starts once.

Nothing is lost when no listener hears a notification (no worker was up, a
connection dropped): a listener starts every row left over each time it
(re)connects, and the sweeper starts rows older than ``BATON_START_LEASE``.
"""
import logging
import threading

log = logging.getLogger(__name__)

CHANNEL = "baton_pending_start"


def enabled():
    from django.db import connection

    from .conf import baton_settings

    return baton_settings.BATON_RECORD_STARTS == "worker" and connection.vendor == "postgresql"


class PendingStartListener:
    def __init__(self, poll_seconds=1.0):
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self.thread = None
        self.started = 0

    def start(self):
        self.thread = threading.Thread(target=self._run, name="baton-pending-starts", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)

    # -- the thread ---------------------------------------------------------
    def _run(self):
        from django.db import connections

        while not self._stop.is_set():
            try:
                with self._listening_connection() as conn:
                    self._catch_up()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self.poll_seconds):
                            self._start(note.payload)
            except Exception:  # the database went away: wait, reconnect, catch up
                log.warning("pending-start listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(1.0)
            finally:
                connections.close_all()  # this thread's Django connections

    def _listening_connection(self):
        """A connection of its own (not Django's): it waits on the socket while Django's runs the starts."""
        import psycopg
        from django.db import connection

        params = {k: v for k, v in connection.get_connection_params().items()
                  if k not in ("cursor_factory", "context", "prepare_threshold")}
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _catch_up(self):
        from .models import PendingStart

        for pending_id in PendingStart.objects.order_by("id").values_list("id", flat=True)[:1000]:
            self._start(pending_id)

    def _start(self, pending_id):
        from django.db import close_old_connections

        from .tasks import start_pending_run

        close_old_connections()
        try:
            if start_pending_run(int(pending_id)) == "started":
                self.started += 1
        except Exception:  # start_pending_run records its own failures; never kill the thread
            log.exception("pending start %s could not be started here", pending_id)
