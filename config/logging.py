"""Structured logs: one JSON object per line, chosen with ``LOG_FORMAT=json``.

Log shippers (journald, Loki, CloudWatch, Datadog...) parse these lines
without a grok pattern. Each line carries the time (UTC, ISO 8601), level,
logger, message, process id, and the exception text when there is one; any
``extra={...}`` fields passed to a logging call are added as they are (made
JSON-safe with ``str`` when needed). Celery's task context (task id and
name) is added when the line is logged inside a task.
"""
import json
import logging
from datetime import datetime, timezone

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        task = _current_task()
        if task:
            entry.update(task)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _current_task():
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    task = current_task
    request = getattr(task, "request", None) if task else None
    task_id = getattr(request, "id", None) if request else None
    if not task_id:
        return None
    return {"task_id": task_id, "task_name": getattr(task, "name", "")}
