"""Raw Celery, the baseline of the throughput benchmark: the orchestration's shape as chords.

One workflow is a chain of 3 chords; each chord is a group of 4 no-op tasks
joined by a no-op callback. Results go to Redis (a chord needs a result
backend). Nothing is stored in a database: this is what Celery alone costs
for the same shape, with the worker settings Baton uses (prefork,
concurrency 2, ``acks_late``, prefetch 1, JSON).

The worker: ``celery -A bench.celery_baseline worker`` with ``BENCH_REDIS``
set (``bench/throughput.py`` starts it).
"""
import os

from celery import Celery, chain, chord, group

_redis = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")

app = Celery("bench_baseline")
app.conf.update(
    # Set here, not as Celery() arguments: a CELERY_BROKER_URL in the
    # environment (Baton's) would win over those.
    broker_url=_redis + "/1",
    result_backend=_redis + "/2",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=600,
)


@app.task(name="baseline.noop")
def noop(*args):
    return None


def workflow(stages=3, width=4):
    return chain(*[chord(group(noop.si() for _ in range(width)), noop.si()) for _ in range(stages)])
