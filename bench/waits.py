"""Benchmark (7): an event delivered to a waiting run -> the run's next background step running.

One orchestration: a wait step for event ``go``, then a stage with one no-op
background step; one ``celery -A config worker`` (prefork, concurrency 2)
idle between samples. For each sample a run is started and left waiting;
then this process notes the time and calls ``orchestration.send_event(run,
"go")``: under the run's lock the wait step completes, the next stage
starts and its step is published after commit; the worker's claim stamps
the ``step_running`` event. Latency = that stamp minus the time before the
call (same machine, same clock). The next sample waits for the run to end.
Target (issue 16): p50 <= 20 ms.

A second series sends the same event through the REST endpoint instead
(``POST /api/runs/{id}/events/go/`` with a token, through Django's WSGI
handler in this process: middleware, authentication, permission, the
transition, and the run's body as the answer), timed the same way.

Run alone: ``python bench/run.py --only waits`` (or ``python -m bench.waits``
with the environment ``bench/common.py`` describes).
"""
import time

from bench import common


def baton(samples):
    from django.db import connections

    import orchestration
    from orchestration.models import Orchestration
    from tests.engine_builders import orchestration as make_orchestration

    if not Orchestration.objects.filter(api_name="bench_waits").exists():
        common.noop_flow()
        make_orchestration([
            {"name": "wait", "steps": [{"name": "wait", "type": "wait", "event": "go"}]},
            {"name": "work", "steps": [{"name": "work", "type": "background", "flow": "bench_noop"}]},
        ], api_name="bench_waits")
    orch = Orchestration.objects.get(api_name="bench_waits", status="active")
    worker = common.start_worker("config", name="waits-worker", env={"CELERY_BROKER_URL": common.REDIS + "/0"})
    series = {"python": ([], []), "rest": ([], [])}
    client, token = rest_sender()
    send = {
        "python": lambda run, i: orchestration.send_event(run, "go", data={"sample": i}),
        "rest": lambda run, i: client.post(f"/api/runs/{run.pk}/events/go/", {"data": {"sample": i}},
                                           content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"),
    }
    try:
        with common.publishing_to(common.REDIS + "/0"):
            for name, (latencies, calls) in series.items():
                sample(orch, send[name], samples, latencies, calls)
        connections.close_all()
    finally:
        worker.stop()
    return series


def rest_sender():
    """A Django test client (WSGI in this process) and the token of a user who may send events."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user, _ = User.objects.get_or_create(username="bench_sender")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="orchestration",
                                                     codename="send_events"))
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_HOST="127.0.0.1"), token.key


def sample(orch, send, samples, latencies, calls):
    from orchestration import engine
    from orchestration.models import OrchestrationRun, RunEvent

    for i in range(samples + 5):  # the first 5 warm the worker up
        run = engine.start_run(orch)
        sent_at = time.time()
        answer = send(run, i)
        returned_at = time.time()
        if getattr(answer, "status_code", 202) != 202:
            raise RuntimeError(f"the event was refused: {answer.status_code} {answer.content[:300]!r}")
        event = common.wait_until(
            lambda: RunEvent.objects.filter(run=run, kind="step_running").values_list("at", flat=True).first(),
            60, interval=0.002, what="the next step to run")
        common.wait_until(lambda: not OrchestrationRun.objects.filter(pk=run.pk, status="running").exists(),
                          60, interval=0.002, what="the run to end")
        if i >= 5:
            latencies.append((event.timestamp() - sent_at) * 1000)
            calls.append((returned_at - sent_at) * 1000)


def main():
    samples = 100 if common.QUICK else 500
    common.setup_django()
    series = baton(samples)
    lat, calls = series["python"]
    rest_lat, rest_calls = series["rest"]
    p50, p99 = common.percentile(lat, 50), common.percentile(lat, 99)
    print(f"event -> next step running: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(lat)} samples); "
          f"send_event itself p50 {common.percentile(calls, 50):.2f} ms", flush=True)
    print(f"REST event -> next step running: p50 {common.percentile(rest_lat, 50):.2f} ms, "
          f"p99 {common.percentile(rest_lat, 99):.2f} ms; the request itself p50 "
          f"{common.percentile(rest_calls, 50):.2f} ms", flush=True)
    common.report(samples=len(lat), p50_ms=p50, p99_ms=p99, max_ms=max(lat),
                  send_event_p50_ms=common.percentile(calls, 50),
                  rest_p50_ms=common.percentile(rest_lat, 50), rest_p99_ms=common.percentile(rest_lat, 99),
                  rest_call_p50_ms=common.percentile(rest_calls, 50))


if __name__ == "__main__":
    main()
