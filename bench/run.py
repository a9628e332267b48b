"""Baton's benchmarks: ``make bench`` (full) or ``python bench/run.py --quick`` (about a minute).

Starts a private PostgreSQL (with ``pg_stat_statements``) and a private
Redis (``tests/servers.py``), migrates a template database, then runs each
benchmark as its own process on a fresh copy of it:

    bench/throughput.py       (1) distributed throughput, with its pgbench and raw Celery baselines
    bench/engine_only.py      (2) the engine in one process, no broker
    bench/latency.py          (3) record commit -> first background step running
    bench/trigger_cost.py     (4) save() of watched models against a plain save()
    bench/workguide_scale.py  (5) My Work and the record component at 1,000,000 items against 1,000
    bench/parked.py           (6) throughput (1) with 100,000 runs waiting on work items
    bench/waits.py            (7) an event delivered -> the next background step running
    bench/instances.py        (8) a 1,000-instance background step against 1,000 ordinary steps

and prints one line per figure: the figure, its baseline measured in this
same run, the ratio, and the target with pass/miss. ``--only NAME[,NAME]``
runs some of them; ``--json FILE`` also writes every raw figure there.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import PostgresServer, RedisServer, find_binary  # noqa: E402

ORDER = ["throughput", "engine_only", "latency", "trigger_cost", "workguide_scale", "parked", "waits", "instances"]


def start_services(pg, redis):
    pg.start()
    # pg_stat_statements must be preloaded: set it and restart on the same port.
    with pg.connect(autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    pg.restart()
    with pg.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    redis.start()


def migrate(pg, tmp):
    url = pg.create_database("bench_template")
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings",
           "BATON_VAR_DIR": str(tmp / "var-migrate"), "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env,
                   check=True, timeout=600)


def run_module(name, args, pg, redis, tmp, quick, timeout):
    """Run ``bench/<name>.py`` on a fresh copy of the template; its RESULT line as a dict."""
    dbname = f"bench_{name}_{int(time.time() * 1000) % 10**8}"
    url = pg.create_database(dbname, template="bench_template")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_"))}
    env.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings",
        "BENCH_REDIS": f"redis://{redis.host}:{redis.port}", "BENCH_QUICK": "1" if quick else "0",
        "BENCH_TMP": str(tmp), "BENCH_PG": json.dumps({"host": pg.host, "port": pg.port, "user": pg.user,
                                                        "dbname": dbname}),
        "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING",
    })
    redis.client().flushall()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)
    took = time.monotonic() - started
    pg.drop_database(dbname)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"  [{name}] FAILED (exit {proc.returncode}) after {took:.0f}s\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}",
              flush=True)
        return None
    print(f"  [{name}] done in {took:.0f}s", file=sys.stderr, flush=True)
    return json.loads(lines[-1][len("RESULT "):])


# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------

def line(label, value, unit, baseline=None, base_label="", ratio=None, target=None, ok=None):
    parts = [f"{label:<44} {value:>10.2f} {unit:<10}"]
    if baseline is not None:
        parts.append(f"baseline {base_label} {baseline:.2f}")
    if ratio is not None:
        parts.append(f"ratio {ratio:.2f}x")
    if target:
        parts.append(f"target {target}: {'pass' if ok else 'MISS'}")
    print("  ".join(parts), flush=True)
    return {"figure": label, "value": value, "unit": unit, "baseline": baseline, "baseline_label": base_label,
            "ratio": ratio, "target": target, "ok": ok}


def print_figures(results, quick):
    rows = []
    t = results.get("throughput")
    if t:
        b, c, p = t["baton"], t["celery"], t["pgbench"]
        rows.append(line("(1) pgbench -N, 2 clients (commit ceiling)", p["tps"], "tps"))
        rows.append(line("(1) raw Celery chords", c["runs_per_s"], "runs/s", None, "", None))
        rows.append(line("(1) raw Celery chords, tasks", c["tasks_per_s"], "tasks/s"))
        ratio = t.get("ratio", b["runs_per_s"] / c["runs_per_s"])
        if len(t.get("ratios", [])) > 1:
            print("  (1) Baton / raw Celery per round: " + ", ".join(f"{r:.2f}x" for r in t["ratios"]), flush=True)
        rows.append(line(f"(1) Baton throughput, {b['runs']} runs", b["runs_per_s"], "runs/s", c["runs_per_s"],
                         "celery runs/s", ratio, ">= 1.0x celery", ratio >= 1.0))
        rows.append(line("(1) Baton steps", b["steps_per_s"], "steps/s", c["tasks_per_s"], "celery tasks/s",
                         b["steps_per_s"] / c["tasks_per_s"]))
        rows.append(line("(1) Baton commits per step", b["commits_per_step"], "commits", p["tps"] / b["steps_per_s"],
                         "pgbench tps / steps/s", None, "<= 1.5", b["commits_per_step"] <= 1.5))
        rows.append(line("(1) Baton SQL statements per step", b["statements_per_step"], "stmts"))
        if b.get("failed_runs"):
            print(f"  !! {b['failed_runs']} Baton runs did not complete", flush=True)
    e = results.get("engine_only")
    if e:
        base = t["pgbench"]["tps"] if t else None
        rows.append(line(f"(2) engine only, {e['runs']} runs, steps in process", e["steps_per_s"], "steps/s", base,
                         "pgbench tps", (e["steps_per_s"] / base) if base else None, ">= 1,100 steps/s",
                         e["steps_per_s"] >= 1100))
        rows.append(line("(2) engine only, commits per step", e["commits_per_step"], "commits"))
        rows.append(line("(2) engine only, SQL statements per step", e["statements_per_step"], "stmts"))
        w = e.get("worker_path")
        if w:
            rows.append(line(f"(2) worker path in one process, {w['runs']} runs", w["steps_per_s"], "steps/s"))
            rows.append(line("(2) worker path, commits per step", w["commits_per_step"], "commits"))
            rows.append(line("(2) worker path, SQL statements per step", w["statements_per_step"], "stmts"))
    mi = results.get("instances")
    if mi:
        rows.append(line(f"(7) a {mi['instances']}-instance step", mi["multi_steps_per_s"], "steps/s",
                         mi["ordinary_steps_per_s"], "ordinary steps/s", mi["ratio"], ">= 0.8x", mi["ratio"] >= 0.8))
    lat = results.get("latency")
    if lat:
        p50_ratio = lat["p50_ms"] / lat["celery_p50_ms"]
        rows.append(line(f"(3) latency p50, {lat['samples']} runs", lat["p50_ms"], "ms", lat["celery_p50_ms"],
                         "raw celery p50", p50_ratio, "<= 2x raw celery", p50_ratio <= 2))
        rows.append(line("(3) latency p99", lat["p99_ms"], "ms", lat["celery_p99_ms"], "raw celery p99",
                         lat["p99_ms"] / lat["celery_p99_ms"], "<= 50 ms", lat["p99_ms"] <= 50))
        if "worker_starts_p50_ms" in lat:
            worker_ratio = lat["worker_starts_p50_ms"] / lat["celery_p50_ms"]
            rows.append(line("(3) latency p50, worker starts", lat["worker_starts_p50_ms"], "ms", lat["celery_p50_ms"],
                             "raw celery p50", worker_ratio, "<= 2x raw celery", worker_ratio <= 2))
            rows.append(line("(3) latency p99, worker starts", lat["worker_starts_p99_ms"], "ms", None, "", None,
                             "<= 50 ms", lat["worker_starts_p99_ms"] <= 50))
    wt = results.get("waits")
    if wt:
        rows.append(line(f"(7) event -> next step running p50, {wt['samples']} runs", wt["p50_ms"], "ms", None, "",
                         None, "<= 20 ms", wt["p50_ms"] <= 20))
        rows.append(line("(7) event -> next step running p99", wt["p99_ms"], "ms"))
        rows.append(line("(7) send_event call itself p50", wt["send_event_p50_ms"], "ms"))
        if "rest_p50_ms" in wt:
            rows.append(line("(7) REST event -> next step running p50", wt["rest_p50_ms"], "ms"))
            rows.append(line("(7) REST event -> next step running p99", wt["rest_p99_ms"], "ms"))
            rows.append(line("(7) REST request itself p50", wt["rest_call_p50_ms"], "ms"))
    tc = results.get("trigger_cost")
    if tc:
        plain, ratios = tc["plain_us"], tc["ratios"]
        rows.append(line("(4) save(), condition false", tc["false_us"], "us", plain, "plain save us",
                         ratios["false"], "<= 1.05x", ratios["false"] <= 1.05))
        rows.append(line("(4) save(), condition true, run started on commit", tc["true_us"], "us", plain,
                         "plain save us", ratios["true"], "<= 3x", ratios["true"] <= 3))
        rows.append(line("(4) save(), condition true, worker starts", tc["true_worker_us"], "us", plain,
                         "plain save us", ratios["true_worker"], "<= 3x", ratios["true_worker"] <= 3))
        rows.append(line("(4) queries per save, plain", tc["plain_queries"], "queries"))
        rows.append(line("(4) queries per save, condition false", tc["false_queries"], "queries"))
        rows.append(line("(4) queries per save, condition true", tc["true_queries"], "queries"))
        rows.append(line("(4) queries per save, true, worker starts", tc["true_worker_queries"], "queries"))
    w = results.get("workguide_scale")
    if w:
        big = f"{w['big']:,}"
        for page in ("my_work", "component"):
            small_ms, big_ms = w[page]["small_ms"], w[page]["big_ms"]
            queries = w[page]["big_queries"]
            ratio = big_ms / small_ms
            rows.append(line(f"(5) {page} at {big} items", big_ms, "ms", small_ms, f"{w['small']:,} items ms",
                             ratio, "<= 1.2x", ratio <= 1.2))
            rows.append(line(f"(5) {page} queries at {big} / {w['small']:,}", queries, "queries",
                             w[page]["small_queries"], f"{w['small']:,} items", None, "<= 10", queries <= 10))
        if w.get("absent"):
            print(f"  (5) skipped: {w['absent']}", flush=True)
    pk = results.get("parked")
    if pk:
        base = pk["empty"]["runs_per_s"]
        ratio = pk["baton"]["runs_per_s"] / base
        rows.append(line(f"(6) throughput with {pk['parked']:,} parked runs", pk["baton"]["runs_per_s"], "runs/s",
                         base, "same process, empty db", ratio, ">= 0.9x", ratio >= 0.9))
    if quick:
        print("  (quick mode: fewer runs and samples, 100,000 work items for (5) and 10,000 parked runs for (6);"
              " run `make bench` for the figures of record)", flush=True)
    return rows


def machine():
    model = "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "commit": commit,
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer runs, smaller data")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--json", default="", help="write the raw figures to this file")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or ORDER
    quick = args.quick
    info = machine()
    print(f"Baton benchmarks ({'quick' if quick else 'full'}): {info['date']}, commit {info['commit']}, "
          f"{info['nproc']} CPUs ({info['cpu']}), Python {info['python']}", flush=True)
    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    pg = redis = None
    results = {}
    try:
        started = time.monotonic()
        if not find_binary("initdb") or not find_binary("redis-server"):
            sys.exit("bench needs PostgreSQL's server binaries and redis-server")
        pg, redis = PostgresServer(), RedisServer(find_binary("redis-server"))
        start_services(pg, redis)
        migrate(pg, tmp)
        print(f"  services up and migrated in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
        plans = {
            "throughput": [], "engine_only": [], "latency": [], "trigger_cost": [], "workguide_scale": [],
            "parked": [], "waits": [], "instances": [],
        }
        for name in ORDER:
            if name in names:
                results[name] = run_module(name, plans[name], pg, redis, tmp, quick, timeout=1800)
    finally:
        if redis is not None:
            redis.destroy()
        if pg is not None:
            pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} (at the start {load0:.1f}; "
          f"other work on the machine slows every figure)", flush=True)
    print(flush=True)
    rows = print_figures({k: v for k, v in results.items() if v}, quick)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "quick": quick, "results": results, "rows": rows},
                                              indent=2, default=str))
    failed = [name for name, value in results.items() if value is None]
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
