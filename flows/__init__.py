"""Flows: definitions and their interpreters.

``@flows.action("name")`` registers a Python callable that autolaunched flows
can call with an ``action`` element.
"""
from .actions import action, get_action, registered_actions  # noqa: F401
