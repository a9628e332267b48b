"""Builders for engine tests: active flows and orchestrations from short dicts."""
import itertools

from flows.spec import flow_from_dict
from orchestration.spec import orchestration_from_dict
from workguide.effects import WorkGuideEffects

_names = itertools.count(1)


def active_flow(**data):
    data.setdefault("api_name", f"flow_{next(_names)}")
    return flow_from_dict(data, status="active")


def noop_flow(api_name=None, outputs=None, elements=None, inputs=None):
    """An autolaunched flow that assigns its outputs from expressions."""
    outputs = outputs or {}
    return active_flow(
        api_name=api_name or f"noop_{next(_names)}",
        type="autolaunched",
        inputs=inputs or [],
        outputs=[{"name": k, "type": t} for k, (t, _) in outputs.items()],
        elements=elements if elements is not None else (
            [{"type": "assign", "set": {k: expr for k, (_, expr) in outputs.items()}}] if outputs else []
        ),
    )


def screen_flow(api_name=None, fields=None, outputs=None, inputs=None):
    fields = fields or [{"name": "ok", "type": "boolean", "label": "OK"}]
    return active_flow(
        api_name=api_name or f"screen_{next(_names)}",
        type="screen",
        inputs=inputs or [],
        outputs=outputs or [{"name": f["name"], "type": _var_type(f["type"])} for f in fields if f["type"] != "display"],
        screens=[{"name": "main", "label": "Main", "fields": fields}],
    )


def _var_type(field_type):
    return {
        "boolean": "boolean", "number": "number", "date": "date", "datetime": "datetime", "multichoice": "list",
    }.get(field_type, "text")


def orchestration(path, api_name=None, **extra):
    data = {"api_name": api_name or f"orch_{next(_names)}", "path": path, **extra}
    return orchestration_from_dict(data, status="active")


def bg(name, flow, **extra):
    return {"name": name, "type": "background", "flow": flow, **extra}


def ui(name, flow, assignee=None, **extra):
    return {"name": name, "type": "interactive", "flow": flow, "assignee": assignee or {"user": "alice"}, **extra}


class Recorder:
    """Effects that remember sends instead of publishing them."""

    def __init__(self):
        self.sent = []
        self._real = WorkGuideEffects()

    def send_step(self, step_run):
        self.sent.append(step_run.pk)

    def open_work_item(self, *args):
        return self._real.open_work_item(*args)

    def close_work_items(self, *args):
        return self._real.close_work_items(*args)


def drain(recorder):
    """Run every background step ``recorder`` was sent, as a worker would, until none is left."""
    from orchestration.worker import claim, execute_claimed

    while recorder.sent:
        step_run_id = recorder.sent.pop(0)
        step_run = claim(step_run_id, f"task-{step_run_id}")
        if step_run is not None:
            execute_claimed(step_run)


def statuses(run):
    """``{step name: status}`` of a run's steps."""
    from orchestration.models import StepRun

    return {s.step_name: s.status for s in StepRun.objects.filter(run=run)}
