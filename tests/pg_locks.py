"""Helpers for the PostgreSQL lock-order tests: see who waits on a lock, wait for a condition."""
import threading
import time

from django.db import connections


def waiting_on_a_lock(database):
    """How many sessions of the test database wait on a lock now (``database``: the ``postgres_db`` fixture)."""
    with database.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def wait_until(predicate, timeout=10):
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def in_thread(target, results, key, barrier=None):
    """Run ``target`` on a thread of its own (so its own database connection), after ``barrier`` if
    given; ``results[key]`` gets what it returned or raised. Returns the started thread."""
    def body():
        try:
            if barrier is not None:
                barrier.wait(10)
            results[key] = target()
        except BaseException as exc:  # noqa: BLE001 - the test inspects what each side got
            results[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread
