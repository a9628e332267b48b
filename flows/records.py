"""Records flows and runs are about: references, loading, and the map expressions see.

It lives in ``flows`` because flows read and write records (``get_records``,
``record`` in scope) and must not import ``orchestration``; orchestration
uses it through ``orchestration.records``, which re-exports every name.

A record is referred to as ``"app_label.model"`` plus its primary key as
text. Runs may only be about models listed in ``BATON_FLOW_MODELS`` (the
same list that bounds what flows may read and write).

Which fields of a record anything can see
-----------------------------------------
``record`` (and ``record_prior``, and what ``get_records`` returns) holds
only the fields ``exposed_fields(model)`` names. Each ``BATON_FLOW_MODELS``
entry may choose them; whatever it chooses, a field named ``password`` and
any field whose name contains a word of ``BATON_SECRET_FIELDS`` is never
exposed (a user model's password hash reaches no expression, display text,
mail, HTTP body or run row). The forms the setting accepts:

* a list, or one comma-separated string (the environment variable):
  ``"demo.employee,auth.user:username,email,first_name"``. An entry
  ``app_label.model`` exposes every field; ``app_label.model:name,...``
  only the names listed (the names after the colon run until the next
  entry, which always has a dot); ``app_label.model:-name,...`` every field
  but those;
* a dict, ``{"auth.user": {"fields": ["username", "email"]},
  "demo.employee": {"exclude": ["salary"]}, "demo.opportunity": None}``
  (a plain list as the value means ``fields``).

The primary key is always exposed (as ``id`` and ``pk``); a foreign key
under its attname and its name (``manager_id`` and ``manager``, both the
id). A model not listed exposes its primary key only. A name that is not a
field of the model, or names a secret field, is a configuration error
(``ImproperlyConfigured`` naming the entry), raised at start-up.
"""
import functools

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, ValidationError
from django.core.signals import setting_changed

from .conf import baton_settings
from .expressions import to_cel

# Never exposed, whatever the settings say.
ALWAYS_SECRET = ("password",)


class RecordError(ValidationError):
    pass


def model_label(model_or_instance):
    return model_or_instance._meta.label_lower  # "app_label.model_name", cached by Django


def allowed_models():
    """The labels (``app_label.model``, lower case) listed in ``BATON_FLOW_MODELS``."""
    return set(_selections())


class _Selection:
    """One ``BATON_FLOW_MODELS`` entry's field choice: ``fields`` (None: all) and ``exclude``."""

    __slots__ = ("fields", "exclude")

    def __init__(self, fields=None, exclude=()):
        self.fields = None if fields is None else tuple(fields)
        self.exclude = tuple(exclude)


_key = None  # setting_key()'s answer until the settings change


def setting_key():
    """What the exposure depends on, hashable: the two settings as written.

    Asked on every watched save, so it is kept until ``forget_settings``:
    Django's ``setting_changed`` (``override_settings``, pytest's
    ``settings``) and ``triggers.definitions_changed()`` call it. Reading
    the settings object on every save cost more than the rest of the answer.
    """
    global _key
    key = _key
    if key is None:
        key = _key = (repr(baton_settings.BATON_FLOW_MODELS), repr(baton_settings.BATON_SECRET_FIELDS))
    return key


def forget_settings(setting=None, **_):
    """Read ``BATON_FLOW_MODELS`` and ``BATON_SECRET_FIELDS`` again when next needed."""
    global _key
    if setting in (None, "BATON_FLOW_MODELS", "BATON_SECRET_FIELDS"):
        _key = None


setting_changed.connect(forget_settings, dispatch_uid="baton-records-settings")


def _selections():
    return _parse_flow_models(setting_key()[0])


@functools.lru_cache(maxsize=16)
def _parse_flow_models(_key):
    """``{label: _Selection}`` from ``settings.BATON_FLOW_MODELS`` (``_key`` is its repr, for the cache)."""
    raw = baton_settings.BATON_FLOW_MODELS or ()
    if isinstance(raw, dict):
        return {str(label).strip().lower(): _dict_selection(label, value) for label, value in raw.items()}
    if isinstance(raw, str):
        tokens = raw.split(",")
    elif isinstance(raw, (list, tuple, set, frozenset)):
        tokens = [token for entry in raw for token in str(entry).split(",")]
    else:
        raise ImproperlyConfigured("BATON_FLOW_MODELS must be a list, a comma-separated string or a dict")
    entries = {}  # label -> [names] or None
    current = None
    for token in (t.strip() for t in tokens):
        if not token:
            continue
        if "." in token:  # a model label starts an entry; field names have no dot
            label, colon, first = token.partition(":")
            current = label.strip().lower()
            entries[current] = [first.strip()] if colon and first.strip() else ([] if colon else None)
        elif current is None or entries[current] is None:
            raise ImproperlyConfigured(
                f"BATON_FLOW_MODELS: {token!r} is not a model (write app_label.model, or app_label.model:field,...)")
        else:
            entries[current].append(token)
    return {label: _names_selection(f"BATON_FLOW_MODELS entry {label!r}", names) for label, names in entries.items()}


def _names_selection(place, names):
    if names is None:
        return _Selection()
    excluded = [n[1:].strip() for n in names if n.startswith("-")]
    if excluded and len(excluded) != len(names):
        raise ImproperlyConfigured(f"{place}: list the fields to expose or those to leave out (-name), not both")
    if excluded:
        return _Selection(exclude=excluded)
    return _Selection(fields=names)


def _dict_selection(label, value):
    place = f"BATON_FLOW_MODELS[{label!r}]"
    if value is None:
        return _Selection()
    if isinstance(value, (list, tuple)):
        value = {"fields": value}
    if not isinstance(value, dict) or set(value) - {"fields", "exclude"} or ("fields" in value and "exclude" in value):
        raise ImproperlyConfigured(f"{place} must be None, a list of fields, {{'fields': [...]}} or {{'exclude': [...]}}")
    for key in ("fields", "exclude"):
        if key in value and (isinstance(value[key], str) or not isinstance(value[key], (list, tuple))):
            raise ImproperlyConfigured(f"{place}[{key!r}] must be a list of field names")
    if "exclude" in value:
        return _Selection(exclude=[str(n) for n in value["exclude"]])
    return _Selection(fields=[str(n) for n in value.get("fields") or ()])


def _secret_words():
    words = baton_settings.BATON_SECRET_FIELDS
    if isinstance(words, str):
        words = words.split(",")
    return tuple(w.strip().lower().split("_") for w in (*ALWAYS_SECRET, *words) if w and w.strip())


def is_secret(field_name, words=None):
    """Whether a field name is secret: one of its ``_``-separated parts, or a run of them, is a secret word.

    ``password``, ``password_hash`` and ``user_api_key`` are secret (with the
    default words); ``secretary`` is not, since whole parts are compared.
    """
    parts = field_name.lower().split("_")
    for word in (_secret_words() if words is None else words):
        n = len(word)
        if any(parts[i:i + n] == word for i in range(len(parts) - n + 1)):
            return True
    return False


def exposed_fields(model):
    """The names ``record`` has for ``model`` (a class or instance): a tuple, in field order.

    Raises ImproperlyConfigured when its ``BATON_FLOW_MODELS`` entry names a
    field the model lacks or one that is secret.
    """
    return tuple(name for name, _ in _exposed_pairs(model if isinstance(model, type) else type(model),
                                                    setting_key()))


def exposed_attnames(model, key=None):
    """``((name, attname), ...)`` of ``exposed_fields(model)`` (attname None: the primary key).

    ``key`` is ``setting_key()``, when the caller has it already.
    """
    return _exposed_pairs(model if isinstance(model, type) else type(model), key or setting_key())


@functools.lru_cache(maxsize=256)
def _exposed_pairs(model, key):
    meta = model._meta
    label = f"{meta.app_label}.{meta.model_name}"
    selection = _parse_flow_models(key[0]).get(label)
    words = _secret_words()
    fields = list(meta.concrete_fields)
    known = {name for f in fields for name in (f.name, f.attname)}
    if selection is not None:
        place = f"BATON_FLOW_MODELS entry {label!r}"
        for name in (*(selection.fields or ()), *selection.exclude):
            if name not in known and name != "pk":
                raise ImproperlyConfigured(f"{place}: {label} has no field {name!r}")
        for name in selection.fields or ():
            if is_secret(name, words):
                raise ImproperlyConfigured(
                    f"{place}: field {name!r} is secret and never exposed "
                    f"(a password, or a word of BATON_SECRET_FIELDS)")
    pairs = []
    for f in fields:
        if f.primary_key:
            pairs.append((f.attname, None))
            if f.is_relation and f.attname != f.name:  # a parent link (multi-table inheritance)
                pairs.append((f.name, None))
            continue
        if selection is None or is_secret(f.name, words) or is_secret(f.attname, words):
            continue
        if selection.fields is not None and f.name not in selection.fields and f.attname not in selection.fields:
            continue
        if f.name in selection.exclude or f.attname in selection.exclude:
            continue
        pairs.append((f.attname, f.attname))
        if f.is_relation and f.attname != f.name:
            pairs.append((f.name, f.attname))
    names = {name for name, _ in pairs}
    if "id" not in names:
        pairs.append(("id", None))
    pairs.append(("pk", None))
    return tuple(pairs)


def check_flow_models():
    """Parse ``BATON_FLOW_MODELS`` and work out each listed model's fields; ImproperlyConfigured if wrong.

    Called at start-up, so a mistake in the setting stops the process
    instead of failing a save later.
    """
    for label in _selections():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue  # an unknown model is reported where it is used (activation, flows)
        exposed_fields(model)


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


def record_values(instance, names=None):
    """The record's exposed fields as a plain dict (foreign keys as ids): ``exposed_fields``.

    ``names``, when given, keeps only those of them (``record_prior`` stores
    only the fields the version reads).
    """
    if instance is None:
        return None
    pk = instance.pk
    return {name: pk if attname is None else getattr(instance, attname)
            for name, attname in exposed_attnames(instance)
            if names is None or name in names}


def record_map(instance):
    """What expressions see as ``record``: the values converted for CEL."""
    values = record_values(instance)
    return None if values is None else to_cel(values)
