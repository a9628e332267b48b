"""Importing and exporting definition documents: all or nothing in, the same format out.

``import_document(text_or_data, activate=False)`` reads a document
(``yaml_lines``), checks its shape and names (``schema``), then stores
everything in one transaction: queues are created or updated, each flow and
orchestration becomes a new draft version, and with ``activate=True`` flows
then orchestrations are activated. Any problem anywhere raises
``DefinitionFileError`` listing every problem, and nothing is stored.

``export_document(api_names=None)`` writes the same format (the active
version of each api_name, else its latest), so that importing an export
gives the same definitions back.

Queues are the Work Guide's model; they are looked up through Django's app
registry (``apps.get_model``), so that orchestration imports nothing from
``workguide``.
"""
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from flows.models import Flow
from flows.spec import flow_from_dict, flow_to_dict
from flows.validation import Problem
from flows.versioning import DefinitionStatus

from ..lifecycle import ActivationRefused, activate as activate_definition, validate
from ..models import Orchestration
from ..spec import orchestration_from_dict, orchestration_to_dict
from .schema import check_duplicates, check_shape
from .yaml_lines import dump_yaml, line_of, load_yaml, place_at


def queue_model():
    """The Work Guide's ``Queue`` (the definition files' ``queues``), from the app registry."""
    return apps.get_model("workguide", "Queue")


class DefinitionFileError(Exception):
    """A definition document was refused; ``problems`` lists every reason."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class ImportReport:
    """What an import stored. ``warnings`` are validator problems of drafts (not activated)."""

    queues: list = field(default_factory=list)
    flows: list = field(default_factory=list)
    orchestrations: list = field(default_factory=list)
    activated: bool = False
    warnings: list = field(default_factory=list)

    def lines(self):
        state = "active" if self.activated else "draft"
        out = [f"queue {q.name}: saved" for q in self.queues]
        out += [f"flow {f.api_name} v{f.version}: {state}" for f in self.flows]
        out += [f"orchestration {o.api_name} v{o.version}: {state}" for o in self.orchestrations]
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def __str__(self):
        return "\n".join(self.lines())


def parse_document(text_or_data):
    """The document as data, or ``DefinitionFileError`` for bad YAML, a bad shape or duplicate names."""
    if isinstance(text_or_data, bytes):
        text_or_data = text_or_data.decode("utf-8")
    if isinstance(text_or_data, str):
        data, problems = load_yaml(text_or_data)
    else:
        data, problems = text_or_data, []
    if not problems:
        problems = check_shape(data) + check_duplicates(data)
    if problems:
        raise DefinitionFileError(problems)
    return data or {}


def _store_queues(data, problems):
    Queue = queue_model()
    User = get_user_model()
    saved = []
    for i, item in enumerate(data.get("queues") or []):
        usernames = list(item.get("members") or [])
        users = list(User.objects.filter(**{f"{User.USERNAME_FIELD}__in": usernames}))
        found = {u.get_username() for u in users}
        for j, name in enumerate(usernames):
            if name not in found:
                problems.append(Problem(place_at(data, ["queues", i, "members", j]), f"no user named {name!r}"))
        queue, _ = Queue.objects.get_or_create(name=item["name"])
        queue.email = item.get("email") or ""
        queue.save()
        queue.members.set(users)
        queue.member_groups.set([Group.objects.get_or_create(name=g)[0] for g in item.get("member_groups") or []])
        saved.append(queue)
    return saved


def _line_for(data, section, place):
    """The line of the deepest named part (definition, stage, step) that ``place`` mentions."""
    parts = [p.strip() for p in place.split("›")]
    for i, item in enumerate(data.get(section) or []):
        if item.get("api_name") != parts[0]:
            continue
        path = [section, i]
        if section == "orchestrations" and len(parts) > 1:
            for j, element in enumerate(item.get("path") or []):
                if element.get("name") == parts[1]:
                    path += ["path", j]
                    if len(parts) > 2:
                        for k, step in enumerate(element.get("steps") or []):
                            if step.get("name") == parts[2]:
                                path += ["steps", k]
                                break
                    break
        return line_of(data, path)
    return None


def _with_line(problems, data, section):
    out = []
    for problem in problems:
        line = _line_for(data, section, problem.place)
        out.append(Problem(f"{problem.place} (line {line})", problem.message) if line else problem)
    return out


def import_document(text_or_data, activate=False):
    """Import a definition document all or nothing; return an ``ImportReport``.

    Raises ``DefinitionFileError`` (listing every problem) and stores nothing
    when anything is wrong: YAML, shape, duplicate names, unknown queue
    members, or (with ``activate``) any validator problem.
    """
    data = parse_document(text_or_data)
    report = ImportReport(activated=activate)
    with transaction.atomic():
        problems = []
        report.queues = _store_queues(data, problems)
        report.flows = [flow_from_dict(item) for item in data.get("flows") or []]
        report.orchestrations = [orchestration_from_dict(item) for item in data.get("orchestrations") or []]
        pending = {flow.api_name: flow for flow in report.flows}
        replaced = {orch.api_name for orch in report.orchestrations}
        if activate:
            for flow in report.flows:
                try:
                    activate_definition(flow, superseded=replaced)
                except ActivationRefused as exc:
                    problems += _with_line(exc.problems, data, "flows")
            for orch in report.orchestrations:
                if problems:  # refused anyway: still report this one's problems against the new flows
                    found = validate(orch, flows=pending)
                    problems += _with_line(found, data, "orchestrations")
                    continue
                try:
                    activate_definition(orch)
                except ActivationRefused as exc:
                    problems += _with_line(exc.problems, data, "orchestrations")
        else:
            for flow in report.flows:
                report.warnings += validate(flow)
            for orch in report.orchestrations:
                report.warnings += validate(orch, flows=pending)
        if problems:
            raise DefinitionFileError(problems)
    return report


def import_file(path, activate=False):
    with open(path, encoding="utf-8") as handle:
        return import_document(handle.read(), activate=activate)


def _pick(model, api_name):
    return (model.objects.filter(api_name=api_name, status=DefinitionStatus.ACTIVE).first()
            or model.objects.filter(api_name=api_name).order_by("-version").first())


def _queue_to_dict(queue):
    out = {"name": queue.name}
    if queue.email:
        out["email"] = queue.email
    members = sorted(u.get_username() for u in queue.members.all())
    if members:
        out["members"] = members
    groups = sorted(g.name for g in queue.member_groups.all())
    if groups:
        out["member_groups"] = groups
    return out


def export_data(api_names=None):
    """The document as data: the chosen flows and orchestrations (active, else latest) and their queues."""
    Queue = queue_model()
    if api_names:
        flows, orchestrations, missing = [], [], []
        for name in api_names:
            flow, orch = _pick(Flow, name), _pick(Orchestration, name)
            if flow:
                flows.append(flow)
            if orch:
                orchestrations.append(orch)
            if not flow and not orch:
                missing.append(name)
        if missing:
            raise DefinitionFileError([Problem(name, "no flow or orchestration has this api_name") for name in missing])
    else:
        flows = [_pick(Flow, n) for n in Flow.objects.values_list("api_name", flat=True).distinct().order_by("api_name")]
        orchestrations = [_pick(Orchestration, n) for n in
                          Orchestration.objects.values_list("api_name", flat=True).distinct().order_by("api_name")]
    orch_dicts = [orchestration_to_dict(o) for o in orchestrations]
    if api_names:
        wanted = set()
        for orch in orch_dicts:
            for element in orch["path"]:
                for step in element.get("steps", []):
                    if "queue" in step.get("assignee", {}):
                        wanted.add(step["assignee"]["queue"])
                    if step.get("escalate_to", "").startswith("queue:"):
                        wanted.add(step["escalate_to"].split(":", 1)[1])
        queues = Queue.objects.filter(name__in=wanted)
    else:
        queues = Queue.objects.all()
    data = {}
    queue_dicts = [_queue_to_dict(q) for q in queues.order_by("name").prefetch_related("members", "member_groups")]
    if queue_dicts:
        data["queues"] = queue_dicts
    if flows:
        data["flows"] = [flow_to_dict(f) for f in flows]
    if orch_dicts:
        data["orchestrations"] = orch_dicts
    return data


def export_document(api_names=None):
    """The YAML text of the chosen definitions (all when ``api_names`` is empty)."""
    return dump_yaml(export_data(api_names))
