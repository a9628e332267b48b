"""Records a run is about: references, loading, and the map expressions see.

A record is referred to as ``"app_label.model"`` plus its primary key as
text. Runs may only be about models listed in ``BATON_FLOW_MODELS`` (the
same list that bounds what flows may read and write).
"""
from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist, ValidationError

from flows.expressions import to_cel

from .conf import baton_settings


class RecordError(ValidationError):
    pass


def model_label(model_or_instance):
    meta = model_or_instance._meta
    return f"{meta.app_label}.{meta.model_name}"


def allowed_models():
    return {label.lower() for label in baton_settings.BATON_FLOW_MODELS}


def get_model(label, *, require_allowed=True):
    """The model class for ``"app_label.model"``, or RecordError saying why not."""
    if not isinstance(label, str) or "." not in label:
        raise RecordError(f"{label!r} is not a model name (write app_label.model)")
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise RecordError(f"unknown model {label!r}")
    if require_allowed and model_label(model) not in allowed_models():
        raise RecordError(f"model {label!r} is not exposed to flows (setting BATON_FLOW_MODELS)")
    return model


def load_record(label, pk):
    if not label or pk in (None, ""):
        return None
    model = get_model(label, require_allowed=False)
    try:
        return model._default_manager.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        return None


def resolve_record_ref(ref):
    """A record from ``{model, pk}``, ``"app_label.model:pk"`` or an instance; RecordError if absent."""
    if ref is None or ref == "":
        return None
    if hasattr(ref, "_meta"):
        return ref
    if isinstance(ref, str):
        label, sep, pk = ref.partition(":")
        if not sep:
            raise RecordError(f"{ref!r} is not a record reference (write app_label.model:pk)")
    elif isinstance(ref, dict):
        label, pk = ref.get("model"), ref.get("pk")
    else:
        raise RecordError(f"{ref!r} is not a record reference")
    model = get_model(label)
    try:
        return model._default_manager.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise RecordError(f"no {label} with pk {pk!r}")


def record_reference(instance):
    """``"app_label.model:pk"`` for ``instance``."""
    return f"{model_label(instance)}:{instance.pk}"


def record_values(instance):
    """The record's concrete fields as a plain dict (foreign keys as ids)."""
    if instance is None:
        return None
    values = {}
    for field in instance._meta.concrete_fields:
        values[field.attname] = getattr(instance, field.attname)
        if field.is_relation and field.attname != field.name:
            values[field.name] = values[field.attname]
    values.setdefault("id", instance.pk)
    values["pk"] = instance.pk
    return values


def record_map(instance):
    """What expressions see as ``record``: the values converted for CEL."""
    values = record_values(instance)
    return None if values is None else to_cel(values)
