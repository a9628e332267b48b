"""Flow variables: checking and cleaning values against their declared types.

``clean_value(type_name, value)`` is one value; ``check_variables(declared,
given)`` a map of them against declared variables (a flow's inputs or
outputs, an orchestration's inputs, a skipped step's outputs);
``scope_value`` is a cleaned value as expressions see it. The rules
(what each type accepts and how it is stored) are in ``flows/runtime.py``'s
docstring, "Values and types"; ``flows.runtime`` re-exports these names.
"""
import datetime
import decimal
import json
import math

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .compiled import thaw
from .expressions import shown_name, to_cel, to_json
from .records import RecordError, record_reference, resolve_record_ref


def _attr(var, key, default=None):
    if isinstance(var, dict):
        return var.get(key, default)
    return getattr(var, key, default)


def clean_value(type_name, value):
    """``value`` cleaned for ``type_name`` (JSON-storable), or ValueError with the reason."""
    if type_name == "text":
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {kind_of(value)}")
        return to_json(value)  # refuses a lone surrogate
    if type_name == "number":
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(value, (int, float, decimal.Decimal)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"expected a number, got text {value!r}") from None
        else:
            raise ValueError(f"expected a number, got {kind_of(value)}")
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if type_name == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {kind_of(value)}")
        return value
    if type_name == "date":
        if isinstance(value, datetime.datetime):
            raise ValueError("expected a date, got a date and time")
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                parsed = parse_date(value.strip())
            except ValueError:
                parsed = None
            if parsed is None:
                raise ValueError(f"expected a date (YYYY-MM-DD), got {value!r}")
            return parsed.isoformat()
        raise ValueError(f"expected a date, got {kind_of(value)}")
    if type_name == "datetime":
        if isinstance(value, datetime.datetime):
            parsed = value
        elif isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is None:
                raise ValueError(f"expected a date and time (ISO 8601), got {value!r}")
        else:
            raise ValueError(f"expected a date and time, got {kind_of(value)}")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed.isoformat()
    if type_name == "record":
        try:
            instance = resolve_record_ref(value)
        except RecordError as exc:
            raise ValueError("; ".join(exc.messages)) from None
        return record_reference(instance)
    if type_name == "list":
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {kind_of(value)}")
        cleaned = to_json(list(value))
        try:
            json.dumps(cleaned)
        except (TypeError, ValueError):
            raise ValueError("the list holds values that cannot be stored (not JSON)") from None
        return cleaned
    raise ValueError(f"unknown type {type_name!r}")


def kind_of(value):
    """``value`` named for a message: \"text 'x'\", \"the number 3\", \"a list\"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, decimal.Decimal)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def check_variables(declared, given, *, allow_unknown=False):
    """Check ``given`` against ``declared`` variables.

    ``declared``: dicts ``{name, type, required, default}`` or VariableSpec
    objects. Returns ``(cleaned, errors)``: ``cleaned`` has every declared
    name (``None`` when not given and no default), ``errors`` maps a name to
    one message. Unknown names are errors unless ``allow_unknown``.
    """
    given = {} if given is None else given
    cleaned, errors = {}, {}
    if not isinstance(given, dict):
        return {}, {"__all__": f"expected a map of names to values, got {kind_of(given)}"}
    names = set()
    for var in declared:
        name = _attr(var, "name")
        names.add(name)
        type_name = _attr(var, "type", "text") or "text"
        value = given.get(name)
        if value is None:
            default = _attr(var, "default")
            if default is not None:
                value = default
            elif _attr(var, "required", False):
                errors[name] = "required"
                continue
            else:
                cleaned[name] = None
                continue
        try:
            cleaned[name] = clean_value(type_name, thaw(value))
        except ValueError as exc:
            errors[name] = str(exc)
    if not allow_unknown:
        for name in given:
            if name not in names:
                errors[shown_name(name)] = "unknown name (not declared)"
    return cleaned, errors


def check_inputs(spec, inputs):
    """``check_variables`` over the flow's declared inputs."""
    return check_variables(spec.inputs, inputs)


def format_errors(errors):
    return "; ".join(f"{name}: {message}" for name, message in errors.items())


def scope_value(type_name, value):
    """A cleaned (JSON) value as expressions see it: datetimes become timestamps."""
    if type_name == "datetime" and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return to_cel(parsed)
    return to_cel(value)
