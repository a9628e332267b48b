"""Private services for the test suite: PostgreSQL, Redis and Celery workers.

This module is a pytest plugin, loaded with ``-p tests.servers`` from the
``addopts`` in ``pyproject.toml`` (``pythonpath = ["."]`` makes it importable
with both ``python -m pytest`` and ``.venv/bin/pytest``). Being a ``-p``
plugin matters: it is imported *before* pytest-django loads
``config.settings``, so :func:`pytest_load_initial_conftests` below can point
``BATON_VAR_DIR`` at a temporary directory (the suite writes nothing under the
repository's ``var/``: no SQLite file, no broker folders) and, on request,
start a PostgreSQL for the whole session. A ``conftest.py`` is imported too
late for that.

Every server is private: loopback only, a free port picked at random, its
data in a temporary directory removed afterwards. Nothing on the machine is
reused and nothing is left running.

Fixtures
--------
``postgres_server`` (session)
    :class:`PostgresServer`: ``host``, ``port``, ``user``,
    ``database_url(dbname)``, ``create_database(name, template=None)``,
    ``drop_database(name)``, ``connect(dbname, **kw)`` (a psycopg connection),
    ``stop()``/``start()``/``restart()`` for outage tests. Shared by the whole
    session: a test that stops it must start it again (or use
    ``make_postgres_server`` for an instance of its own).

``redis_server`` (session)
    A ``str``, the URL ``redis://127.0.0.1:PORT/0``, carrying ``.url``,
    ``.host``, ``.port`` and ``.server`` (:class:`RedisServer`, with
    ``client()``, ``stop()``, ``start()``, ``restart()``).

``make_postgres_server`` / ``make_redis_server`` (function)
    Factories for instances owned by one test (stopped at its end), for
    fault tests that take a server down.

``celery_worker_process`` (function)
    Factory starting real ``celery -A config worker`` child processes; see
    :meth:`WorkerFactory.__call__` and :class:`CeleryWorker`.

``postgres_template`` (session) and ``postgres_db`` (function)
    Django on the private PostgreSQL; see "Django on PostgreSQL" below.

Missing binaries
----------------
:func:`require_service` skips the test with the reason when a binary is
missing, and fails it instead when ``BATON_REQUIRE_SERVICES=1`` (``.ci/run``
sets it, after installing everything).

Django on PostgreSQL
--------------------
The default test session runs Django on SQLite (pytest-django's in-memory
test database). Two patterns put Django itself on the private PostgreSQL:

1. **The whole session** (``make test-pg``, or ``BATON_TEST_POSTGRES=1``):
   the hook below starts a private PostgreSQL before Django's settings load
   and exports ``DATABASE_URL``; pytest-django then creates ``test_baton`` on
   it and every ``db``/``transactional_db`` test runs there, unchanged. The
   same server is the ``postgres_server`` fixture of that session.

2. **One test, committed data shared with worker processes** (the fault
   suite): the ``postgres_db`` fixture. It copies a migrated template
   database into a fresh database, points the *test process's* ``default``
   connection at it for the duration of the test (real commits, no wrapping
   transaction, so ``celery worker`` processes started with
   ``DATABASE_URL=postgres_db.url`` see every row), then restores the
   SQLite connection and drops the database. Such a test must not also
   request ``db``/``transactional_db`` or the ``django_db`` mark. Only the
   test's own thread is switched (not ``live_server``'s thread). Example::

       def test_steps_survive_worker_kill(postgres_db, redis_server, celery_worker_process):
           worker = celery_worker_process(database_url=postgres_db.url, broker_url=redis_server)
           run = start_some_run()               # Django ORM -> private PostgreSQL
           worker.kill(signal.SIGKILL, child=True)
           ...

   Overriding ``django_db_setup`` instead was considered and rejected: it is
   session-scoped and shared by every ``db`` test, and the test databases
   it creates are wrapped in transactions that worker processes cannot see.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
LOOPBACK = "127.0.0.1"

# Set by pytest_load_initial_conftests, cleaned by pytest_unconfigure.
_session_var_dir: str | None = None
_session_postgres: "PostgresServer | None" = None


# --------------------------------------------------------------------------
# Early hooks: run before pytest-django imports config.settings.
# --------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _session_var_dir, _session_postgres
    if _session_var_dir is None:
        _session_var_dir = tempfile.mkdtemp(prefix="baton-test-var-")
        os.environ["BATON_VAR_DIR"] = _session_var_dir
        # STATIC_ROOT lives there; whitenoise warns when it is missing.
        os.makedirs(os.path.join(_session_var_dir, "static"), exist_ok=True)
        # Django's live_server with Playwright's sync API (see conftest.py).
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # Settings refuse DEBUG off without SECRET_KEY; the suite, and the
        # workers and commands it starts, share a key of its own.
        os.environ.setdefault("SECRET_KEY", "baton-test-suite-only-" + secrets.token_urlsafe(32))
    if os.environ.get("BATON_TEST_POSTGRES") == "1" and _session_postgres is None:
        if not find_binary("initdb"):
            raise pytest.UsageError("BATON_TEST_POSTGRES=1 but PostgreSQL's initdb is not installed")
        _session_postgres = PostgresServer().start()
        _session_postgres.create_database("baton")
        os.environ["DATABASE_URL"] = _session_postgres.database_url("baton")


def pytest_report_header(config):
    lines = [f"baton: BATON_VAR_DIR={_session_var_dir}"]
    if _session_postgres is not None:
        lines.append(f"baton: Django on private PostgreSQL {_session_postgres.database_url('baton')}")
    return lines


def pytest_unconfigure(config):
    global _session_var_dir, _session_postgres
    if _session_postgres is not None:
        _session_postgres.destroy()
        _session_postgres = None
    if _session_var_dir is not None:
        shutil.rmtree(_session_var_dir, ignore_errors=True)
        _session_var_dir = None


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def find_binary(name: str) -> str | None:
    """Path of an executable: absolute path, on PATH, or in PostgreSQL's bin dirs."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        candidate = bindir / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_service(name: str, reason: str | None = None) -> str:
    """Return the path of binary ``name``; skip (or fail under CI) when missing."""
    path = find_binary(name)
    if path:
        return path
    reason = reason or f"{name} is not installed"
    if os.environ.get("BATON_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (BATON_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
class PostgresServer:
    """A private PostgreSQL cluster (initdb + pg_ctl), trust auth, loopback only.

    As root, initdb and pg_ctl run as the ``postgres`` user through
    ``runuser`` in a temporary directory chowned to it.
    """

    user = "postgres"
    host = LOOPBACK

    def __init__(self):
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        self.base = Path(tempfile.mkdtemp(prefix="baton-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.port: int | None = None
        self._initialised = False

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if IS_ROOT:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}\n{_tail(self.log)}"
            )
        return result

    def start(self) -> "PostgresServer":
        if not self._initialised:
            self.sockets.mkdir(parents=True, exist_ok=True)
            if IS_ROOT:
                shutil.chown(self.base, "postgres", "postgres")
                shutil.chown(self.sockets, "postgres", "postgres")
            self._run(self.initdb, "-D", str(self.data), "-U", self.user, "--auth=trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
            self._initialised = True
        for attempt in range(3):
            self.port = self.port if (self.port and attempt == 0) else free_port()
            options = (f"-c listen_addresses={LOOPBACK} -p {self.port} -k {self.sockets} "
                       "-c fsync=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", options, "start")
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def stop(self, mode: str = "fast") -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            with contextlib.suppress(Exception):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)

    def restart(self) -> None:
        """Stop and start on the same port (clients must reconnect)."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def database_url(self, dbname: str = "postgres") -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs):
        import psycopg

        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname, **kwargs)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally a copy of ``template``); return its URL."""
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        with self.connect(autocommit=True) as conn:
            conn.execute(query)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------
class RedisServer:
    """A private redis-server, a direct child process (no daemonize), no persistence."""

    host = LOOPBACK

    def __init__(self, binary: str):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="baton-redis-"))
        self.log = self.dir / "redis.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs):
        import redis

        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def _ping(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited {self.proc.returncode}\n{_tail(self.log)}")
        try:
            return bool(self.client(socket_timeout=0.5).ping())
        except Exception:
            return False

    def start(self) -> "RedisServer":
        for attempt in range(3):
            if not (self.port and attempt == 0):
                self.port = free_port()
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", self.host, "--dir", str(self.dir),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for(self._ping, 15, f"redis-server on port {self.port}")
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisURL(str):
    """The URL of a private Redis, with the server object attached."""

    def __new__(cls, server: RedisServer):
        obj = super().__new__(cls, server.url)
        obj.server = server
        obj.url = server.url
        obj.host = server.host
        obj.port = server.port
        return obj


# --------------------------------------------------------------------------
# Server fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL for the session (the Django one under ``make test-pg``)."""
    require_service("initdb", "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    require_service("pg_ctl", "PostgreSQL's pg_ctl is not installed")
    if IS_ROOT:
        require_service("runuser", "runuser is needed to run PostgreSQL as the postgres user")
    if _session_postgres is not None:
        yield _session_postgres
        return
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def make_postgres_server():
    """Factory: ``make_postgres_server()`` -> a PostgresServer owned by this test."""
    require_service("initdb", "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = PostgresServer()
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.destroy()


@pytest.fixture(scope="session")
def redis_server():
    """URL of a private Redis for the session (a str with ``.server``, ``.port``)."""
    binary = require_service("redis-server", "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary).start()
    try:
        yield RedisURL(server)
    finally:
        server.destroy()


@pytest.fixture
def make_redis_server():
    """Factory: ``make_redis_server()`` -> a RedisURL whose server belongs to this test."""
    binary = require_service("redis-server", "redis-server is not installed (apt-get install redis-server)")
    servers: list[RedisServer] = []

    def make() -> RedisURL:
        server = RedisServer(binary)
        servers.append(server)
        return RedisURL(server.start())

    yield make
    for server in servers:
        server.destroy()


# --------------------------------------------------------------------------
# Django on the private PostgreSQL
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_template(postgres_server):
    """Name of a database on the private server with every migration applied."""
    name = "baton_template"
    url = postgres_server.create_database(name)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"migrate on the private PostgreSQL failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return name


class PostgresDatabase:
    def __init__(self, server: PostgresServer, name: str):
        self.server = server
        self.name = name
        self.url = server.database_url(name)

    def connect(self, **kwargs):
        return self.server.connect(self.name, **kwargs)


@contextlib.contextmanager
def django_default_database(url: str):
    """Point this thread's Django ``default`` connection at ``url``, then restore it.

    The previous connection object is kept (not closed), so pytest-django's
    in-memory SQLite test database survives the switch.
    """
    import environ
    from django.db import connections
    from django.db.utils import load_backend

    from config.database import postgres_options

    config = environ.Env.db_url_config(url)
    config["CONN_MAX_AGE"] = 0
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {}).update(postgres_options())  # as config/settings.py sets them
    config = connections.configure_settings({"default": config})["default"]
    previous_settings = connections.settings["default"]
    previous = connections["default"]
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, "default")
    connections.settings["default"] = config
    connections["default"] = wrapper
    try:
        yield wrapper
    finally:
        wrapper.close()
        connections["default"] = previous
        connections.settings["default"] = previous_settings


@pytest.fixture
def postgres_db(postgres_server, postgres_template, django_db_blocker):
    """A fresh migrated database; Django's ``default`` points at it during the test."""
    name = f"baton_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name, template=postgres_template)
    database = PostgresDatabase(postgres_server, name)
    try:
        with django_db_blocker.unblock(), django_default_database(database.url):
            yield database
    finally:
        with contextlib.suppress(Exception):
            postgres_server.drop_database(name)


# --------------------------------------------------------------------------
# Celery workers
# --------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    kids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the ")" closing the command name.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return sorted(kids)


class CeleryWorker:
    """One ``celery -A config worker`` child process, in a process group of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, hostname: str):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.hostname = hostname
        self._console = open(log_path.with_suffix(".console"), "wb")
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self._console,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        text = ""
        for path in (self.log_path, self.log_path.with_suffix(".console")):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return text

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        def seen():
            if text in self.log():
                return True
            if not self.alive:
                raise RuntimeError(f"worker exited {self.proc.returncode} before logging {text!r}\n{self.log()[-4000:]}")
            return False

        _wait_for(seen, timeout, f"{text!r} in {self.log_path}", interval=0.1)

    def wait_ready(self, timeout: float = 60) -> "CeleryWorker":
        self.wait_for_log(" ready.", timeout)
        return self

    def child_pids(self) -> list[int]:
        """PIDs of the prefork pool processes (empty for solo/threads pools)."""
        return _children(self.pid) if self.alive else []

    def kill(self, sig: int = signal.SIGKILL, *, child: bool | int = False) -> int:
        """Send ``sig`` to the main process, or with ``child=True`` to the first
        pool process (``child=PID`` for that one). Returns the PID signalled."""
        if child is True:
            kids = self.child_pids()
            if not kids:
                raise RuntimeError("the worker has no pool child process")
            target = kids[0]
        elif child:
            target = int(child)
        else:
            target = self.pid
        os.kill(target, sig)
        return target

    def stop(self, timeout: float = 20) -> int | None:
        """Warm shutdown (SIGTERM), then SIGKILL for the whole process group."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Pool children share the worker's process group; leave none behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._console.close()
        return self.proc.returncode


class WorkerFactory:
    def __init__(self, request, tmp_path: Path):
        self._request = request
        self._tmp = tmp_path
        self.workers: list[CeleryWorker] = []

    def __call__(self, *, env: dict[str, str] | None = None, broker_url: str | None = None,
                 database_url: str | None = None, result_backend: str | None = None,
                 concurrency: int = 2, pool: str = "prefork", beat: bool = False,
                 queues: str | None = None, loglevel: str = "INFO", extra_args=(),
                 wait: bool = True, ready_timeout: float = 60) -> CeleryWorker:
        """Start a worker and (by default) wait until it logs ``ready``.

        ``broker_url`` defaults to ``env["CELERY_BROKER_URL"]`` or else the
        session's private Redis; ``database_url`` to ``env["DATABASE_URL"]``
        or else a SQLite file in the worker's own ``BATON_VAR_DIR``.
        """
        index = len(self.workers)
        var_dir = self._tmp / f"worker{index}-var"
        var_dir.mkdir(parents=True, exist_ok=True)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CELERY_"))}
        child_env.pop("DATABASE_URL", None)
        child_env.update({
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "BATON_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
        })
        child_env.update(env or {})
        if broker_url:
            child_env["CELERY_BROKER_URL"] = str(broker_url)
        elif "CELERY_BROKER_URL" not in child_env:
            child_env["CELERY_BROKER_URL"] = str(self._request.getfixturevalue("redis_server"))
        if database_url:
            child_env["DATABASE_URL"] = str(database_url)
        if result_backend:
            child_env["CELERY_RESULT_BACKEND"] = str(result_backend)
        hostname = f"w{index}-{uuid.uuid4().hex[:8]}@%h"
        log_path = self._tmp / f"worker{index}.log"
        argv = [sys.executable, "-m", "celery", "-A", "config", "worker",
                "--pool", pool, "--concurrency", str(concurrency), "--hostname", hostname,
                "--loglevel", loglevel, "--logfile", str(log_path),
                "--without-heartbeat", "--without-gossip", "--without-mingle"]
        if beat:
            argv += ["--beat", "--schedule", str(var_dir / "celerybeat-schedule")]
        if queues:
            argv += ["--queues", queues]
        argv += list(extra_args)
        worker = CeleryWorker(argv, child_env, log_path, hostname)
        self.workers.append(worker)
        if wait:
            worker.wait_ready(ready_timeout)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def celery_worker_process(request, tmp_path):
    """Factory of real Celery workers, all stopped (and their pools killed) at teardown.

    ``worker = celery_worker_process(broker_url=redis_server, database_url=..., concurrency=2)``;
    then ``worker.pid``, ``worker.child_pids()``, ``worker.kill(signal.SIGKILL, child=True)``,
    ``worker.wait_for_log(text)``, ``worker.log()``, ``worker.stop()``.
    """
    factory = WorkerFactory(request, tmp_path)
    yield factory
    factory.stop_all()
