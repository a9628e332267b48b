"""The private services the suite relies on, and the patterns to use them.

See tests/servers.py for the fixtures and the two ways of running Django on
the private PostgreSQL.
"""
import os
import signal
import threading
import time

import pytest

pytestmark = [pytest.mark.services]


def test_tests_do_not_write_into_the_repository_var_dir():
    from django.conf import settings

    from tests.servers import REPO

    assert os.environ["BATON_VAR_DIR"] == str(settings.VAR_DIR)
    assert not str(settings.VAR_DIR).startswith(str(REPO))
    assert not settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "").startswith(str(REPO))


def test_private_redis_answers(redis_server):
    client = redis_server.server.client()
    assert client.ping() is True
    client.set("baton:probe", "1")
    assert client.get("baton:probe") == b"1"
    assert redis_server.startswith("redis://127.0.0.1:")


def test_private_postgres_select_and_row_lock(postgres_server):
    import psycopg

    postgres_server.create_database("locks")
    with postgres_server.connect("locks", autocommit=True) as setup:
        assert setup.execute("SELECT 1").fetchone() == (1,)
        setup.execute("CREATE TABLE item (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO item VALUES (1, 0)")

    first = postgres_server.connect("locks")
    second = postgres_server.connect("locks")
    try:
        first.execute("SELECT n FROM item WHERE id = 1 FOR UPDATE")
        second.execute("SET lock_timeout = '300ms'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            second.execute("SELECT n FROM item WHERE id = 1 FOR UPDATE")
        assert time.monotonic() - started >= 0.25
        second.rollback()

        # Once the first transaction ends, the second gets the row.
        first.rollback()
        assert second.execute("SELECT n FROM item WHERE id = 1 FOR UPDATE").fetchone() == (0,)
        second.rollback()
    finally:
        first.close()
        second.close()
        postgres_server.drop_database("locks")


def test_second_locker_waits_until_the_first_commits(postgres_server):
    """The blocked SELECT ... FOR UPDATE resumes, and sees the committed value."""
    postgres_server.create_database("locks2")
    with postgres_server.connect("locks2", autocommit=True) as setup:
        setup.execute("CREATE TABLE item (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO item VALUES (1, 0)")
    seen = {}

    def second_locker():
        with postgres_server.connect("locks2") as conn:
            started = time.monotonic()
            seen["n"] = conn.execute("SELECT n FROM item WHERE id = 1 FOR UPDATE").fetchone()[0]
            seen["waited"] = time.monotonic() - started

    with postgres_server.connect("locks2") as first:
        first.execute("SELECT n FROM item WHERE id = 1 FOR UPDATE")
        thread = threading.Thread(target=second_locker)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second SELECT ... FOR UPDATE did not block"
        first.execute("UPDATE item SET n = 1 WHERE id = 1")
        first.commit()
    thread.join(10)
    assert seen["n"] == 1 and seen["waited"] >= 0.4
    postgres_server.drop_database("locks2")


@pytest.mark.slow
def test_real_celery_worker_runs_ping_on_private_redis(redis_server, celery_worker_process):
    from celery import Celery

    worker = celery_worker_process(broker_url=redis_server, result_backend=redis_server, concurrency=2)
    assert worker.alive and len(worker.child_pids()) == 2

    # A client app of its own, so the test process's settings stay untouched.
    client = Celery("probe", broker=str(redis_server), backend=str(redis_server))
    try:
        # Settings say CELERY_TASK_IGNORE_RESULT; ask for this result explicitly.
        result = client.send_task("orchestration.tasks.ping", ignore_result=False)
        assert result.get(timeout=20) == "pong"

        # Fault tests kill pool children; the worker replaces them and carries on.
        killed = worker.kill(signal.SIGKILL, child=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (killed in worker.child_pids() or len(worker.child_pids()) < 2):
            time.sleep(0.1)
        assert killed not in worker.child_pids() and worker.alive
        assert client.send_task("orchestration.tasks.ping", ignore_result=False).get(timeout=20) == "pong"
    finally:
        client.close()
    worker.stop()
    assert not worker.alive


@pytest.mark.slow
def test_django_on_private_postgres_shared_with_a_worker(postgres_db, redis_server, celery_worker_process):
    """The ``postgres_db`` pattern: the ORM here and the workers use one real database."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    assert connection.vendor == "postgresql"
    get_user_model().objects.create_user("pg-probe", password="x")

    # Committed for real: another connection (any worker process) sees it.
    with postgres_db.connect() as conn:
        assert conn.execute("SELECT username FROM auth_user").fetchall() == [("pg-probe",)]

    worker = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server, concurrency=1)
    assert worker.env["DATABASE_URL"] == postgres_db.url
