"""Changes the builder makes to a draft's rows, each one undoable.

Every change runs in one transaction that locks the orchestration row,
refuses a frozen (active or obsolete) version, first pushes the definition as
it was onto the undo stack (``BuilderSnapshot``), then changes the rows. A
change that fails raises ``EditError`` naming the place, and the transaction
leaves everything as it was, the undo stack included.

Positions are renumbered 0..n-1 after every move so they stay dense.
"""
from django.db import transaction

from flows.validation import SEP

from ..models import (
    BuilderSnapshot, DecisionOutcome, Orchestration, Stage, StageKind, Step, StepType,
)
from ..models.builder import UNDO_DEPTH
from ..spec import orchestration_to_dict, replace_draft_content


class EditError(Exception):
    """A change the builder refused; ``place`` says where, in the validator's words."""

    def __init__(self, place, message):
        self.place = place
        self.message = message
        super().__init__(f"{place}: {message}" if place else message)


def _locked(orch):
    locked = Orchestration.objects.select_for_update().get(pk=orch.pk)
    if not locked.is_editable:
        raise EditError(f"{locked.api_name} v{locked.version}",
                        f"is {locked.status} and cannot be changed; make a new version from it")
    return locked


def _push_undo(orch, change):
    snap = BuilderSnapshot.objects.create(orchestration=orch, change=change[:200],
                                          definition=orchestration_to_dict(orch))
    stale = list(BuilderSnapshot.objects.filter(orchestration=orch).values_list("pk", flat=True)[UNDO_DEPTH:])
    if stale:
        BuilderSnapshot.objects.filter(pk__in=stale).delete()
    return snap


def change(orch, description, fn, *args, **kwargs):
    """Run ``fn(locked_orch, *args, **kwargs)`` as one undoable change of draft ``orch``; returns its result.

    ``description`` says what the change did, for the Undo button: text, or a
    function of ``fn``'s result (a name known only once the change is made).
    """
    with transaction.atomic():
        locked = _locked(orch)
        snap = _push_undo(locked, description if isinstance(description, str) else "a change")
        result = fn(locked, *args, **kwargs)
        if callable(description):
            snap.change = description(result)[:200]
            snap.save(update_fields=["change"])
        return result


def last_change(orch):
    """What undo would take back (its description), or None."""
    return BuilderSnapshot.objects.filter(orchestration=orch).values_list("change", flat=True).first()


def undo(orch):
    """Put back the definition from before the last change; returns that change's description."""
    with transaction.atomic():
        locked = _locked(orch)
        snap = BuilderSnapshot.objects.filter(orchestration=locked).first()
        if snap is None:
            raise EditError("", "there is nothing to undo")
        replace_draft_content(locked, snap.definition)
        snap.delete()
        return snap.change


# ------------------------------------------------------------------ helpers

def _pk(value):
    """A row id from a request, or None (no row has it) for anything that is not a whole number."""
    return value if isinstance(value, int) else int(value) if str(value).isdigit() else None


def _element(orch, pk):
    element = Stage.objects.filter(orchestration=orch, pk=_pk(pk)).first()
    if element is None:
        raise EditError(orch.api_name, f"no stage or decision with id {pk!r} in this version (reload the page)")
    return element


def _step(orch, pk):
    step = Step.objects.filter(stage__orchestration=orch, pk=_pk(pk)).select_related("stage").first()
    if step is None:
        raise EditError(orch.api_name, f"no step with id {pk!r} in this version (reload the page)")
    return step


def _outcome(orch, pk):
    outcome = DecisionOutcome.objects.filter(stage__orchestration=orch, pk=_pk(pk)).select_related("stage").first()
    if outcome is None:
        raise EditError(orch.api_name, f"no decision outcome with id {pk!r} in this version (reload the page)")
    return outcome


def _renumber(model, rows):
    for position, row in enumerate(rows):
        row.position = position
    model.objects.bulk_update(rows, ["position"])


def _index(value, size, place):
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise EditError(place, f"position {value!r} is not a number")
    return max(0, min(index, size))


def _free_name(taken, stem):
    n = 1
    while f"{stem}_{n}" in taken:
        n += 1
    return f"{stem}_{n}"


# ------------------------------------------------------------------ path elements

def add_element(orch, kind, after=None):
    """A new stage or decision, after element ``after`` (a pk) or at the end; returns it."""
    if kind not in (StageKind.STAGE, StageKind.DECISION):
        raise EditError(orch.api_name, f"kind {kind!r} is not stage or decision")
    elements = list(orch.stages.order_by("position", "id"))
    names = {e.name for e in elements}
    at = len(elements)
    if after not in (None, ""):
        anchor = _element(orch, after)
        at = [e.pk for e in elements].index(anchor.pk) + 1
    if kind == StageKind.STAGE:
        element = Stage.objects.create(orchestration=orch, kind=kind, name=_free_name(names, "stage"),
                                       label="New stage", position=at)
    else:
        following = elements[at].name if at < len(elements) else "end"
        element = Stage.objects.create(orchestration=orch, kind=kind, name=_free_name(names, "decision"),
                                       label="Decision", position=at, default_goto=following)
    elements.insert(at, element)
    _renumber(Stage, elements)
    return element


def delete_element(orch, pk):
    element = _element(orch, pk)
    element.delete()
    _renumber(Stage, list(orch.stages.order_by("position", "id")))
    return element


def move_element(orch, pk, index):
    element = _element(orch, pk)
    elements = [e for e in orch.stages.order_by("position", "id") if e.pk != element.pk]
    elements.insert(_index(index, len(elements), SEP.join((orch.api_name, element.name))), element)
    _renumber(Stage, elements)
    return element


# ------------------------------------------------------------------ steps

def add_step(orch, stage_pk, type_):
    stage = _element(orch, stage_pk)
    place = SEP.join((orch.api_name, stage.name))
    if stage.kind != StageKind.STAGE:
        raise EditError(place, "a decision has outcomes, not steps")
    if type_ not in StepType.values:
        raise EditError(place, f"step type {type_!r} is not one of {', '.join(StepType.values)}")
    taken = set(Step.objects.filter(stage__orchestration=orch).values_list("name", flat=True))
    label = f"New {StepType(type_).label.lower()} step"
    # A wait step has no retries (the definition format keeps none for it).
    return Step.objects.create(stage=stage, name=_free_name(taken, "step"), label=label, type=type_,
                               position=stage.steps.count(), retries=0 if type_ == StepType.WAIT else 3)


def delete_step(orch, pk):
    step = _step(orch, pk)
    stage = step.stage
    step.delete()
    _renumber(Step, list(stage.steps.order_by("position", "id")))
    return step


def move_step(orch, pk, stage_pk, index):
    step = _step(orch, pk)
    target = _element(orch, stage_pk)
    place = SEP.join((orch.api_name, step.stage.name, step.name))
    if target.kind != StageKind.STAGE:
        raise EditError(place, f"cannot move a step into decision {target.name}")
    source = step.stage
    if source.pk != target.pk:
        if target.steps.filter(name=step.name).exists():
            raise EditError(place, f"stage {target.name} already has a step named {step.name}")
        step.stage = target
        step.save(update_fields=["stage"])
    siblings = [s for s in target.steps.order_by("position", "id") if s.pk != step.pk]
    siblings.insert(_index(index, len(siblings), place), step)
    _renumber(Step, siblings)
    if source.pk != target.pk:
        _renumber(Step, list(source.steps.order_by("position", "id")))
    return step


def shift_step(orch, pk, direction):
    """Keyboard move: ``up``/``down`` inside the stage, ``left``/``right`` to the neighbouring stage's end."""
    step = _step(orch, pk)
    siblings = list(step.stage.steps.order_by("position", "id"))
    at = [s.pk for s in siblings].index(step.pk)
    if direction in ("up", "down"):
        return move_step(orch, pk, step.stage.pk, at - 1 if direction == "up" else at + 1)
    if direction not in ("left", "right"):
        raise EditError(step.name, f"direction {direction!r} is not up, down, left or right")
    stages = [s for s in orch.stages.order_by("position", "id") if s.kind == StageKind.STAGE]
    here = [s.pk for s in stages].index(step.stage.pk)
    there = here - 1 if direction == "left" else here + 1
    if not 0 <= there < len(stages):
        raise EditError(SEP.join((orch.api_name, step.stage.name, step.name)),
                        f"there is no stage to the {direction}")
    return move_step(orch, pk, stages[there].pk, 10 ** 6)


def shift_element(orch, pk, direction):
    element = _element(orch, pk)
    elements = list(orch.stages.order_by("position", "id"))
    at = [e.pk for e in elements].index(element.pk)
    if direction not in ("left", "right"):
        raise EditError(element.name, f"direction {direction!r} is not left or right")
    return move_element(orch, pk, at - 1 if direction == "left" else at + 1)


# ------------------------------------------------------------------ outcomes

def add_outcome(orch, decision_pk):
    decision = _element(orch, decision_pk)
    if decision.kind != StageKind.DECISION:
        raise EditError(SEP.join((orch.api_name, decision.name)), "only a decision has outcomes")
    taken = set(decision.outcomes.values_list("name", flat=True))
    return DecisionOutcome.objects.create(stage=decision, name=_free_name(taken, "outcome"), condition="true",
                                          goto="end", position=decision.outcomes.count())


def delete_outcome(orch, pk):
    outcome = _outcome(orch, pk)
    decision = outcome.stage
    outcome.delete()
    _renumber(DecisionOutcome, list(decision.outcomes.order_by("position", "id")))
    return outcome
