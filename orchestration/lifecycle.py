"""The life of a definition version: validate, activate, new version.

``activate(definition)`` works for a ``flows.Flow`` and an
``orchestration.Orchestration`` alike: it runs the validator (and, for a
flow, the impact analysis on active orchestrations) and either raises
``ActivationRefused`` listing every problem, or, in one transaction, makes
the previous active version of the same api_name obsolete and this one
active. Start triggers are told after the commit.
"""
import functools

from django.db import transaction
from django.utils import timezone

from flows import spec as flow_spec
from flows.models import Flow
from flows.versioning import DefinitionStatus

from . import spec as orchestration_spec
from . import triggers
from .models import Orchestration
from .validation import impact_of_flow_activation, validate_flow, validate_orchestration


class ActivationRefused(Exception):
    """Activation was refused; ``problems`` lists why."""

    def __init__(self, problems, definition=None):
        self.problems = list(problems)
        self.definition = definition
        head = f"{definition.api_name} v{definition.version} cannot be activated" if definition is not None \
            else "activation refused"
        lines = [f"{head}:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def validate(definition, flows=None):
    """The validator's problems for a flow or orchestration version (empty: fine)."""
    if isinstance(definition, Flow):
        return validate_flow(definition)
    if isinstance(definition, Orchestration):
        return validate_orchestration(definition, flows=flows)
    raise TypeError(f"not a definition: {definition!r}")


def activation_problems(definition, flows=None, superseded=()):
    problems = list(validate(definition, flows=flows))
    if isinstance(definition, Flow):
        problems += impact_of_flow_activation(definition, superseded=superseded)
    return problems


def _notify_triggers(wait=False):
    changed = getattr(triggers, "definitions_changed", None)
    if changed is not None:
        changed()
        if wait:
            # Return only when every process's next save sees this activation (orchestration/triggers.py).
            triggers.wait_until_seen()


def activate(definition, user=None, *, flows=None, superseded=()):
    """Make ``definition`` the active version of its api_name, or raise ``ActivationRefused``.

    ``flows`` and ``superseded`` are for the importer (flow versions being
    activated alongside, orchestrations being replaced in the same
    transaction). Returns the definition.
    """
    model = type(definition)
    with transaction.atomic():
        # Lock every version of the api_name so two activations cannot race.
        versions = list(model.objects.select_for_update().filter(api_name=definition.api_name))
        definition.refresh_from_db(fields=["status", "activated_at"])
        if definition.status == DefinitionStatus.ACTIVE:
            return definition
        problems = activation_problems(definition, flows=flows, superseded=superseded)
        if problems:
            raise ActivationRefused(problems, definition)
        now = timezone.now()
        for other in versions:
            if other.pk != definition.pk and other.status == DefinitionStatus.ACTIVE:
                other.set_lifecycle_status(DefinitionStatus.OBSOLETE)
        definition.set_lifecycle_status(DefinitionStatus.ACTIVE, now=now)
        transaction.on_commit(functools.partial(_notify_triggers, wait=isinstance(definition, Orchestration)))
    return definition


def new_version(definition):
    """A draft copy of ``definition`` (any status) with the next version number."""
    if isinstance(definition, Flow):
        return flow_spec.copy_as_new_version(definition)
    if isinstance(definition, Orchestration):
        return orchestration_spec.copy_as_new_version(definition)
    raise TypeError(f"not a definition: {definition!r}")
