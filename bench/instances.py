"""Benchmark (7): a multi-instance background step of 1,000 instances against 1,000 ordinary steps.

Both on the worker path in one process, as ``engine_only`` measures it (the
Celery message replaced by an in-process list; each message is handled as
``tasks.run_step`` does: on PostgreSQL the no-op flow cannot write, so every
step and every instance runs on receipt, without a claim):

* **ordinary**: one run, one stage of N parallel no-op background steps
  (a counted stage: each completion but the last is one statement);
* **multi-instance**: one run, one step with ``for_each`` over N elements
  (a counted rule, ``all``: each completion but the last is one statement,
  the last checks the rule under the run's lock; orchestration/instances.py).

Steps/s is N over the time from ``start_run`` to the run's completion. The
target (issue 16): multi-instance >= 0.8 x ordinary.
"""
import collections
import time

from bench import common


def main():
    n = 200 if common.QUICK else 1000
    common.setup_django()
    from orchestration import engine, worker
    from orchestration.models import OrchestrationRun
    from tests.engine_builders import orchestration

    common.noop_flow()
    ordinary = common.grid_orchestration(api_name="bench_wide", stages=1, steps=n)
    multi = orchestration([{"name": "s0", "steps": [
        {"name": "each", "type": "background", "flow": "bench_noop", "for_each": "inputs.xs"}]}],
        api_name="bench_each", inputs=[{"name": "xs", "type": "list"}])

    queue = collections.deque()
    worker.send_step_message = lambda step_run_id, countdown=None, receipt=None: queue.append((step_run_id, receipt))

    def drive(orch, inputs=None, count=n):
        start = time.perf_counter()
        run = engine.start_run(orch, inputs=inputs)
        while queue:  # what tasks.run_step does with each message
            step_run_id, receipt = queue.popleft()
            if receipt is not None:
                worker.run_on_receipt(step_run_id, receipt)
                continue
            step_run = worker.claim(step_run_id, "")
            if step_run is not None:
                worker.execute_claimed(step_run)
        elapsed = time.perf_counter() - start
        run = OrchestrationRun.objects.get(pk=run.pk)
        assert run.status == "completed", f"{orch.api_name}: run {run.pk} is {run.status}: {run.error}"
        return count / elapsed

    # Warm-up of both paths. The multi-instance one evaluates the first CEL expression of the process
    # (``for_each``), which loads the binding once (flows/expressions.py ``_inline``: about 0.1-0.2 s,
    # a third of the quick figure when it fell inside the measured drive).
    drive(common.grid_orchestration(api_name="bench_warm", stages=1, steps=10), count=10)
    warm_each = orchestration([{"name": "s0", "steps": [
        {"name": "each", "type": "background", "flow": "bench_noop", "for_each": "inputs.xs"}]}],
        api_name="bench_warm_each", inputs=[{"name": "xs", "type": "list"}])
    drive(warm_each, {"xs": list(range(10))}, count=10)
    figures = {"instances": n, "ordinary_steps_per_s": drive(ordinary), "multi_steps_per_s": drive(multi, {"xs": list(range(n))})}
    figures["ratio"] = figures["multi_steps_per_s"] / figures["ordinary_steps_per_s"]
    print(f"{n} ordinary steps: {figures['ordinary_steps_per_s']:.0f} steps/s; "
          f"a {n}-instance step: {figures['multi_steps_per_s']:.0f} steps/s; "
          f"ratio {figures['ratio']:.2f}x (target >= 0.8x)", flush=True)
    common.report(**figures)


if __name__ == "__main__":
    main()
