"""Shared test helpers: definitions built from the definition-file format.

``make_flow`` and ``make_orchestration`` take the same mappings as a YAML
definition file and store them (active by default, without validation), so a
test states exactly the definition it needs.
"""
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

_counter = itertools.count(1)


def unique(prefix="x"):
    return f"{prefix}_{next(_counter)}"


def make_user(username=None, **extra):
    User = get_user_model()
    username = username or unique("user")
    user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com", **extra})
    return user


def make_group(name=None):
    return Group.objects.get_or_create(name=name or unique("group"))[0]


def make_queue(name=None, members=(), groups=(), email=""):
    from workguide.models import Queue

    queue, _ = Queue.objects.get_or_create(name=name or unique("queue"), defaults={"email": email})
    if members:
        queue.members.set([make_user(m) if isinstance(m, str) else m for m in members])
    if groups:
        queue.member_groups.set([make_group(g) if isinstance(g, str) else g for g in groups])
    return queue


def var(name, type="text", **extra):
    return {"name": name, "type": type, **extra}


def make_flow(api_name=None, type="autolaunched", inputs=(), outputs=(), status="active", **extra):
    """A flow version from definition-file keys; autolaunched flows get a trivial element if none given."""
    from flows.spec import flow_from_dict

    data = {"api_name": api_name or unique("flow"), "type": type,
            "inputs": [var(v) if isinstance(v, str) else v for v in inputs],
            "outputs": [var(v) if isinstance(v, str) else v for v in outputs], **extra}
    if type == "screen" and "screens" not in data:
        fields = [{"name": o["name"], "type": "text"} for o in data["outputs"]] or [
            {"name": "note", "type": "text"}]
        data["screens"] = [{"name": "main", "fields": fields}]
    if type != "screen" and "elements" not in data and "implementation" not in data:
        data["elements"] = [{"type": "assign", "set": {o["name"]: _literal(o.get("type", "text"))
                                                      for o in data["outputs"]} or {"done": "true"}}]
    return flow_from_dict(data, status=status)


def _literal(kind):
    return {"number": "1", "boolean": "true", "list": "[]"}.get(kind, '"x"')


def make_evaluation_flow(api_name=None, inputs=(), status="active"):
    return make_flow(api_name, type="evaluation", inputs=inputs,
                     outputs=[var("condition_met", "boolean")], status=status,
                     elements=[{"type": "assign", "set": {"condition_met": "true"}}])


def step(name, flow, **extra):
    return {"name": name, "flow": flow, **extra}


def stage(name, *steps, **extra):
    return {"name": name, "steps": list(steps), **extra}


def make_orchestration(api_name=None, path=(), status="draft", start=None, **extra):
    from orchestration.spec import orchestration_from_dict

    data = {"api_name": api_name or unique("orch"), "start": start or {"type": "autolaunched"},
            "path": list(path), **extra}
    return orchestration_from_dict(data, status=status)
