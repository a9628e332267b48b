"""Figures per orchestration for the monitor, in a fixed number of queries.

``orchestration_stats()`` gives, per ``api_name`` (all its versions
together): runs started, completed, failed (in error now), running and
canceled, the completion rate (completed / started), and the average and
90th percentile run time of completed runs.

Counts and the average are one aggregate query. The percentile is one more:
a window function ranks each completed run's duration within its
orchestration (``ROW_NUMBER`` over the durations, ``COUNT`` over the
partition), and the row at position ceil(0.9 × count) is the p90
(nearest rank): one row per orchestration comes back. Both run in the database on SQLite and PostgreSQL,
so the cost does not grow in Python with the number of runs.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min, Q, Window
from django.db.models.functions import RowNumber

from ..models import OrchestrationRun, RunStatus


@dataclass
class OrchestrationStats:
    api_name: str
    label: str
    started: int
    completed: int
    failed: int
    running: int
    canceled: int
    average: timedelta | None
    p90: timedelta | None

    @property
    def completion_rate(self):
        return (self.completed / self.started) if self.started else None

    @property
    def completion_percent(self):
        rate = self.completion_rate
        return None if rate is None else round(rate * 100, 1)


def _duration():
    return ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())


def _as_timedelta(value):
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(microseconds=int(value))  # some backends give microseconds


def p90_durations(runs=None):
    """{api_name: p90 run time} over completed runs of ``runs`` (a queryset)."""
    runs = OrchestrationRun.objects.all() if runs is None else runs
    by_api = [F("orchestration__api_name")]
    ranked = (
        runs.filter(status=RunStatus.COMPLETED, ended_at__isnull=False)
        .annotate(
            duration=_duration(),
            api=F("orchestration__api_name"),
            position=Window(RowNumber(), partition_by=by_api, order_by=[_duration().asc(), F("id").asc()]),
            total=Window(Count("id"), partition_by=by_api),
        )
        # Nearest rank: the row at position ceil(0.9 * total), one per orchestration.
        .filter(position__gte=F("total") * 0.9, position__lt=F("total") * 0.9 + 1)
        .values_list("api", "duration")
    )
    result = {}
    for api, duration in ranked:
        duration = _as_timedelta(duration)
        if api not in result or duration < result[api]:
            result[api] = duration
    return result


def orchestration_stats(runs=None):
    """A list of ``OrchestrationStats``, one per api_name with runs, by api_name."""
    runs = OrchestrationRun.objects.all() if runs is None else runs
    rows = (
        runs.values("orchestration__api_name")
        .annotate(
            label=Min("orchestration__label"),
            started=Count("id"),
            completed=Count("id", filter=Q(status=RunStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=RunStatus.ERROR)),
            running=Count("id", filter=Q(status=RunStatus.RUNNING)),
            canceled=Count("id", filter=Q(status=RunStatus.CANCELED)),
            average=Avg(_duration(), filter=Q(status=RunStatus.COMPLETED, ended_at__isnull=False)),
        )
        .order_by("orchestration__api_name")
    )
    p90 = p90_durations(runs)
    return [
        OrchestrationStats(
            api_name=row["orchestration__api_name"],
            label=row["label"] or row["orchestration__api_name"],
            started=row["started"],
            completed=row["completed"],
            failed=row["failed"],
            running=row["running"],
            canceled=row["canceled"],
            average=_as_timedelta(row["average"]),
            p90=p90.get(row["orchestration__api_name"]),
        )
        for row in rows
    ]
