"""FlowSpec: one flow version read into plain, immutable Python objects.

Interpreters (``flows.runtime``, ``flows.screens``) never walk the ORM rows
while they run; they work on a ``FlowSpec``. Loading one costs a fixed
number of queries (the flow row plus one prefetch per kind of part,
whatever the size of the flow).

Active and obsolete versions are frozen (``flows.versioning``), so their
specs are cached in this process by flow id. Drafts change while they are
edited and are read afresh every time. The cache entry of a flow is dropped
whenever its ``Flow`` row is saved or deleted, which also covers a database
that hands out an id again (tests that roll back).

``FlowSpec.load(flow_or_id)`` and ``FlowSpec.active(api_name)`` are the two
ways in. Element settings (``ElementSpec.config``) are frozen too: mappings
become read-only mappings and lists become tuples.
"""
from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field

from django.db.models import Prefetch
from django.db.models.signals import post_delete, post_save

from .models import DefinitionStatus, Flow, FlowVariable, Screen

CACHED_STATUSES = {DefinitionStatus.ACTIVE, DefinitionStatus.OBSOLETE}

_cache: dict[int, "FlowSpec"] = {}
_cache_lock = threading.Lock()


PURE_ELEMENT_TYPES = frozenset({"assign", "decision", "get_records"})


class FlowNotFound(LookupError):
    """No flow (or no active version of it) answers to the given name or id."""


def freeze(value):
    """A read-only deep copy of a JSON value: dicts become mapping proxies, lists tuples."""
    if isinstance(value, dict):
        return types.MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """The mutable twin of ``freeze`` (plain dicts and lists), for export or JSON."""
    if isinstance(value, types.MappingProxyType | dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type: str = "text"
    required: bool = False
    default: object = None
    value: str = ""  # outputs only: an expression giving the output
    direction: str = FlowVariable.INPUT

    def as_dict(self):
        return {"name": self.name, "type": self.type, "required": self.required, "default": thaw(self.default)}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str = "text"
    label: str = ""
    help_text: str = ""
    required: bool = False
    default: str = ""  # expression
    visible_if: str = ""  # expression
    choices: tuple = ()
    text: str = ""  # display fields: text with {!expr} merge fields
    position: int = 0

    @property
    def is_input(self):
        return self.type != "display"

    def choice_pairs(self):
        """``[(value, label), ...]`` from plain values or ``{value, label}`` maps."""
        pairs = []
        for choice in self.choices:
            if isinstance(choice, types.MappingProxyType | dict):
                value = choice.get("value")
                pairs.append((str(value), str(choice.get("label", value))))
            else:
                pairs.append((str(choice), str(choice)))
        return pairs


@dataclass(frozen=True)
class ScreenSpec:
    name: str
    label: str = ""
    validate: str = ""
    validate_message: str = ""
    fields: tuple = ()
    position: int = 0

    def input_fields(self):
        return [f for f in self.fields if f.is_input]


@dataclass(frozen=True)
class ElementSpec:
    index: int  # 0-based place in the run order
    position: int
    type: str
    name: str = ""
    config: types.MappingProxyType = field(default_factory=lambda: types.MappingProxyType({}))

    def describe(self):
        label = f" {self.name!r}" if self.name else ""
        return f"element #{self.index + 1}{label} ({self.type})"


@dataclass(frozen=True)
class FlowSpec:
    id: int
    api_name: str
    version: int
    status: str  # as read when loaded; a cached active spec may since have become obsolete
    type: str
    label: str = ""
    implementation: str = ""
    inputs: tuple = ()
    outputs: tuple = ()
    screens: tuple = ()
    elements: tuple = ()

    def __str__(self):
        return f"{self.api_name} v{self.version}"

    # -- lookups -------------------------------------------------------------
    def input(self, name):
        return next((v for v in self.inputs if v.name == name), None)

    def output(self, name):
        return next((v for v in self.outputs if v.name == name), None)

    def screen_fields(self):
        """Every field of every screen, in screen then field order."""
        return [f for screen in self.screens for f in screen.fields]

    @property
    def may_write(self):
        """Whether running this flow can change anything outside its own variables.

        ``assign``, ``decision`` and ``get_records`` only compute; records
        written, mail, HTTP, actions and Python implementations are effects.
        A step whose flow runs inside the engine's transaction
        (``BATON_STEP_EXECUTION=in_process``) gets a savepoint only when this
        is true, so that a failed attempt leaves nothing behind.
        """
        return bool(self.implementation) or any(e.type not in PURE_ELEMENT_TYPES for e in self.elements)

    def labels(self):
        """Element name -> index, for decisions."""
        return {e.name: e.index for e in self.elements if e.name}

    # -- loading -------------------------------------------------------------
    @classmethod
    def load(cls, flow_or_id) -> "FlowSpec":
        """The spec of a flow version, given a ``Flow`` or its id (cached unless draft)."""
        if isinstance(flow_or_id, FlowSpec):
            return flow_or_id
        flow_id = flow_or_id.pk if isinstance(flow_or_id, Flow) else flow_or_id
        if flow_id is None:
            raise FlowNotFound("the flow has not been saved")
        cached = _cache.get(flow_id)
        if cached is not None:
            return cached
        flow = (
            Flow.objects.filter(pk=flow_id)
            .prefetch_related(
                "variables",
                "elements",
                Prefetch("screens", queryset=Screen.objects.prefetch_related("fields")),
            )
            .first()
        )
        if flow is None:
            raise FlowNotFound(f"no flow with id {flow_id!r}")
        spec = cls.from_flow(flow)
        if spec.status in CACHED_STATUSES:
            with _cache_lock:
                _cache[spec.id] = spec
        return spec

    @classmethod
    def active(cls, api_name) -> "FlowSpec":
        """The spec of the active version of ``api_name``; FlowNotFound (a LookupError) if none."""
        flow_id = (
            Flow.objects.filter(api_name=api_name, status=DefinitionStatus.ACTIVE).values_list("pk", flat=True).first()
        )
        if flow_id is None:
            known = Flow.objects.filter(api_name=api_name).exists()
            why = "has no active version" if known else "does not exist"
            raise FlowNotFound(f"flow {api_name!r} {why}")
        return cls.load(flow_id)

    @classmethod
    def from_flow(cls, flow: Flow) -> "FlowSpec":
        """Build a spec from a ``Flow`` whose parts are (ideally) prefetched. Never cached."""
        inputs, outputs = [], []
        for var in sorted(flow.variables.all(), key=lambda v: (v.position, v.pk)):
            spec = VariableSpec(
                name=var.name, type=var.type, required=var.required, default=freeze(var.default),
                value=var.value or "", direction=var.direction,
            )
            (inputs if var.direction == FlowVariable.INPUT else outputs).append(spec)
        screens = []
        for screen in sorted(flow.screens.all(), key=lambda s: (s.position, s.pk)):
            fields = tuple(
                FieldSpec(
                    name=f.name, type=f.type, label=f.label or f.name.replace("_", " ").capitalize(),
                    help_text=f.help_text, required=f.required, default=f.default or "",
                    visible_if=f.visible_if or "", choices=freeze(f.choices or []), text=f.text or "",
                    position=f.position,
                )
                for f in sorted(screen.fields.all(), key=lambda f: (f.position, f.pk))
            )
            screens.append(ScreenSpec(
                name=screen.name, label=screen.label or screen.name, validate=screen.validate or "",
                validate_message=screen.validate_message or "", fields=fields, position=screen.position,
            ))
        elements = tuple(
            ElementSpec(index=i, position=e.position, type=e.type, name=e.name or "", config=freeze(e.config or {}))
            for i, e in enumerate(sorted(flow.elements.all(), key=lambda e: (e.position, e.pk)))
        )
        return cls(
            id=flow.pk, api_name=flow.api_name, version=flow.version, status=flow.status, type=flow.type,
            label=flow.label, implementation=flow.implementation or "", inputs=tuple(inputs),
            outputs=tuple(outputs), screens=tuple(screens), elements=elements,
        )


def clear_cache(flow_id=None):
    """Forget one cached spec (or all of them)."""
    with _cache_lock:
        if flow_id is None:
            _cache.clear()
        else:
            _cache.pop(flow_id, None)


def _forget(sender, instance, **kwargs):
    clear_cache(instance.pk)


post_save.connect(_forget, sender=Flow, dispatch_uid="flows.compiled.forget_on_save")
post_delete.connect(_forget, sender=Flow, dispatch_uid="flows.compiled.forget_on_delete")
