"""What every benchmark module shares: Django set-up, database statistics, definitions, workers.

A benchmark module runs as its own process (``python -m bench.<name>``),
started by ``bench/run.py`` with these environment variables:

``DATABASE_URL``       a fresh, migrated database on the run's private PostgreSQL
``BENCH_REDIS``        the private Redis (``redis://127.0.0.1:PORT``)
``BENCH_PG``           JSON: host, port, user, dbname of that PostgreSQL
``BENCH_QUICK``        "1" in quick mode
``BENCH_TMP``          a scratch directory (worker logs)

It prints its figures as one ``RESULT {json}`` line on stdout.

Counting statements and commits
-------------------------------
Commits are ``pg_stat_database.xact_commit`` of the benchmark's database
(every transaction, including the implicit one around each autocommit
statement). Statements come from ``pg_stat_statements`` (sum of ``calls``
for the database, ``BEGIN``/``COMMIT``/``ROLLBACK``/savepoints left out:
they are transaction control, and commits are counted on their own; the
foreign-key checks PostgreSQL runs itself, ``SELECT 1 FROM ONLY ... FOR KEY
SHARE OF x``, are left out too). We
chose ``pg_stat_statements`` over statement logging because it costs next
to nothing while measuring and counts every client (the worker's pool
processes included), where ``log_statement=all`` would slow the very thing
being measured.

Both are read through a separate connection to the ``postgres`` database so
that reading them adds nothing to the counts, after every client of the
benchmark's database has disconnected (a backend reports its transaction
counts lazily, at the latest when it disconnects).
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

QUICK = os.environ.get("BENCH_QUICK") == "1"
TMP = Path(os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="baton-bench-"))
REDIS = os.environ.get("BENCH_REDIS", "")


def setup_django(**env):
    """Configure Django for this process (call before importing models)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    var = TMP / f"var-{os.getpid()}"
    (var / "static").mkdir(parents=True, exist_ok=True)  # STATIC_ROOT; whitenoise warns without it
    os.environ.setdefault("BATON_VAR_DIR", str(var))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if REDIS:
        os.environ.setdefault("CELERY_BROKER_URL", REDIS + "/0")
    os.environ.update({k: str(v) for k, v in env.items()})
    import django

    django.setup()


def report(**figures):
    print("RESULT " + json.dumps(figures), flush=True)


def pg_info():
    return json.loads(os.environ["BENCH_PG"])


def pg_connect(dbname="postgres"):
    import psycopg

    info = pg_info()
    return psycopg.connect(host=info["host"], port=info["port"], user=info["user"], dbname=dbname, autocommit=True)


def bench_dbname():
    return pg_info()["dbname"]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def db_stats():
    """(commits, statements) so far for the benchmark's database, read from ``postgres``."""
    name = bench_dbname()
    with pg_connect("postgres") as conn:
        commits = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()[0]
        rows = conn.execute(
            "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = %s", (name,)
        ).fetchall()
    statements = 0
    for query, calls in rows:
        head = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
        if head in CONTROL or head in ("SAVEPOINT", "RELEASE") or "/* bench */" in query:
            continue
        if "FOR KEY SHARE OF x" in query:  # PostgreSQL's own foreign-key checks, not the client's
            continue
        statements += calls
    return commits, statements


def top_statements(limit=25):
    """The most called statements on the benchmark's database (for profiles)."""
    name = bench_dbname()
    with pg_connect("postgres") as conn:
        return conn.execute(
            "SELECT s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s ORDER BY s.calls DESC LIMIT %s",
            (name, limit),
        ).fetchall()


def reset_statements():
    with pg_connect("postgres") as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def settle():
    """Let backends report their counts: an idle backend flushes them within a
    second (PostgreSQL 15's PGSTAT_MIN_INTERVAL), a closing one at once."""
    time.sleep(1.2)


# ---------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------

def noop_flow(api_name="bench_noop"):
    from tests.engine_builders import active_flow

    return active_flow(api_name=api_name, type="autolaunched", elements=[])


def grid_orchestration(api_name="bench_grid", stages=3, steps=4, flow="bench_noop", **extra):
    """``stages`` stages of ``steps`` parallel no-op background steps."""
    from tests.engine_builders import orchestration

    path = [
        {"name": f"s{i}", "steps": [{"name": f"s{i}_b{j}", "type": "background", "flow": flow} for j in range(steps)]}
        for i in range(stages)
    ]
    return orchestration(path, api_name=api_name, **extra)


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------

def start_worker(app="config", *, env=None, concurrency=2, name="worker"):
    """A ``celery -A app worker`` (prefork) child process, ready; stop it with ``.stop()``."""
    import uuid

    from tests.servers import CeleryWorker

    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    child_env.update({"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"})
    child_env.update(env or {})
    log_path = TMP / f"{name}-{uuid.uuid4().hex[:6]}.log"
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--hostname", hostname, "--loglevel", "WARNING",
            "--logfile", str(log_path), "--without-heartbeat", "--without-gossip", "--without-mingle"]
    worker = CeleryWorker(argv, child_env, log_path, hostname)
    # --loglevel WARNING hides the "ready." line (and the per-task INFO lines, which
    # would slow the worker); wait for the pool processes, then callers send a
    # warm-up task and wait for its result, which proves the consumer is up.
    deadline = time.monotonic() + 60
    while len(worker.child_pids()) < concurrency:
        if not worker.alive or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{worker.log()[-3000:]}")
        time.sleep(0.1)
    return worker


def publishing_to(url):
    """Point this process's Celery app at ``url`` (as the integration tests do)."""
    from tests.orchestration.test_integration import publishing_to as _publishing_to

    return _publishing_to(url)


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ---------------------------------------------------------------------------
# Bulk data by SQL (INSERT ... SELECT generate_series): millions of rows in seconds
# ---------------------------------------------------------------------------

def screen_flow(api_name="bench_screen"):
    from tests.engine_builders import screen_flow as make

    return make(api_name=api_name)


def waiting_orchestration(api_name="bench_wait", flow="bench_screen"):
    """One stage with one interactive step: a run of it waits on its work item."""
    from tests.engine_builders import orchestration, ui

    return orchestration([{"name": "wait", "steps": [ui("review", flow, assignee={"user": "parked"})]}],
                         api_name=api_name)


def insert_waiting_work(orchestration_id, flow_id, items, *, items_per_run=1, assignee_sql="%(user)s",
                        status_sql="'open'", record_sql="'', ''", run_status="'running'", params=None):
    """Runs of ``orchestration_id`` with open (or other) work items, by SQL. Returns the run count.

    ``items`` work items in ``items / items_per_run`` runs; each run has one
    stage visit in progress and one step run per item. ``assignee_sql`` and
    ``status_sql`` are SQL over ``g`` (the item's number, from 1);
    ``record_sql`` gives two columns, the item's record model and pk.
    """
    from django.db import connection, transaction

    from orchestration.models import OrchestrationRun, StageRun, StepRun
    from workguide.models import WorkItem

    runs = max(1, items // items_per_run)
    run_t, stage_t, step_t, item_t = (m._meta.db_table for m in (OrchestrationRun, StageRun, StepRun, WorkItem))
    params = dict(params or {}, orch=orchestration_id, flow=flow_id, runs=runs, per=items_per_run, items=items)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SELECT coalesce(max(id), 0) FROM {run_t}")
        base = cur.fetchone()[0]
        params["base"] = base
        cur.execute(
            f"""INSERT INTO {run_t} (orchestration_id, status, record_model, record_pk, inputs, started_at,
                    current_stage, stage_visits, error, depth, outputs)
                SELECT %(orch)s, {run_status}, '', '', '{{}}', now() - g * interval '1 second', 'wait', 1, '', 0, '{{}}'
                FROM generate_series(1, %(runs)s) g""", params)
        cur.execute(
            f"""INSERT INTO {stage_t} (run_id, stage_name, position, visit, status, started_at)
                SELECT id, 'wait', 0, 1, CASE WHEN status = 'running' THEN 'in_progress' ELSE 'completed' END,
                       started_at FROM {run_t} WHERE id > %(base)s""", params)
        cur.execute(
            f"""INSERT INTO {step_t} (run_id, stage_run_id, step_name, type, flow_id, status, task_id, inputs,
                    outputs, attempts, error, traceback, created_at, started_at, timeout_seconds, completed_by,
                    excluded_users)
                SELECT s.run_id, s.id, CASE WHEN %(per)s = 1 THEN 'review' ELSE 'review_' || k END, 'interactive',
                       %(flow)s, CASE WHEN s.status = 'in_progress' THEN 'in_progress' ELSE 'completed' END,
                       '', '{{}}', '{{}}', 0, '', '', s.started_at, s.started_at, 600, '', '[]'
                FROM {stage_t} s CROSS JOIN generate_series(1, %(per)s) k WHERE s.run_id > %(base)s""", params)
        cur.execute(
            f"""INSERT INTO {item_t} (step_run_id, run_id, label, flow_id, status, assignee_type, assignee_user_id,
                    record_model, record_pk, record_label, inputs, progress, created_at, priority)
                SELECT id, run_id, 'Review ' || g, %(flow)s, {status_sql}, 'user', {assignee_sql},
                       {record_sql}, '', '{{}}', '{{}}', now() - g * interval '1 second', 50
                FROM (SELECT id, run_id, row_number() OVER (ORDER BY id) AS g FROM {step_t}
                      WHERE run_id > %(base)s) t""", params)
    vacuum(run_t, stage_t, step_t, item_t)
    return runs


def vacuum(*tables):
    """``VACUUM ANALYZE`` after a bulk insert: statistics for the planner, and no
    autovacuum of a million fresh rows competing for the CPU while we measure."""
    from django.db import connection

    # The database Django is using now (bench/workguide_scale.py switches between two).
    with pg_connect(connection.settings_dict["NAME"] or bench_dbname()) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")
