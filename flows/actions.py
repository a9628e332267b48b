"""The registry of Python actions that flows may call.

``@flows.action("name")`` registers ``fn``; an element
``{type: action, action: name, inputs: {param: <expr>}}`` calls
``fn(**inputs)`` and the returned dict's keys become flow variables. A whole
flow may also be a registered function (``implementation: "dotted.path"``).
"""
import importlib
import logging

from django.apps import apps

from .conf import baton_settings

log = logging.getLogger(__name__)
_ACTIONS = {}


class UnknownAction(LookupError):
    pass


def action(name, returns=None):
    """Register ``fn`` as the flow action ``name``.

    ``returns`` lists the keys of the dict it returns: the activation check
    then knows which flow variables the action sets. Without it, a flow that
    calls the action cannot have its names checked (any name might be set).
    """

    def register(fn):
        if returns is not None:
            fn.baton_returns = tuple(returns)
        previous = _ACTIONS.get(name)
        if previous is not None and previous is not fn and _qualname(previous) != _qualname(fn):
            raise ValueError(f"flow action {name!r} is already registered by {_qualname(previous)}")
        _ACTIONS[name] = fn
        return fn

    return register


def _qualname(fn):
    return f"{fn.__module__}.{fn.__qualname__}"


def get_action(name):
    try:
        return _ACTIONS[name]
    except KeyError:
        raise UnknownAction(f"no flow action named {name!r} (registered: {', '.join(sorted(_ACTIONS)) or 'none'})")


def registered_actions():
    return dict(_ACTIONS)


def import_action_modules():
    """Import ``<app>.flow_actions`` of every app and BATON_ACTION_MODULES."""
    for config in apps.get_app_configs():
        name = f"{config.name}.flow_actions"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    for dotted in baton_settings.BATON_ACTION_MODULES:
        importlib.import_module(dotted)


def resolve_implementation(dotted):
    """A whole-flow implementation: a registered action name or a dotted path to a callable."""
    if dotted in _ACTIONS:
        return _ACTIONS[dotted]
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise UnknownAction(f"flow implementation {dotted!r} is neither a registered action nor a dotted path")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownAction(f"flow implementation {dotted!r} cannot be imported: {exc}")
    if not callable(fn):
        raise UnknownAction(f"flow implementation {dotted!r} is not callable")
    return fn
