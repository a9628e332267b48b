"""The ``BATON_*`` settings flows read, with their defaults, and the object that reads them.

The settings are Baton's; this module holds the part of them the ``flows``
app needs, so that flows reads its settings without importing
``orchestration`` (which builds on flows). ``orchestration/conf.py``, the
one place a host looks, puts these first in its ``SETTINGS`` and reads every
setting through the same ``BatonSettings``. Like that module, this one
loads no model and needs no configured settings to import.
"""
from dataclasses import dataclass

from django.conf import settings as django_settings  # lazy: reading it at import configures nothing


@dataclass(frozen=True)
class Setting:
    default: object
    doc: str
    choices: tuple = ()


FLOW_SETTINGS = {
    # --- Models and code flows may use ---------------------------------------
    "BATON_FLOW_MODELS": Setting(
        (),
        "Models flows may read and write (get_records, create_record, update_records) and runs may be "
        "about, as \"app_label.model\" in lower case. Record triggers watch only these models.",
    ),
    "BATON_ACTION_MODULES": Setting(
        (),
        "Extra modules imported at start-up so their @flows.action functions register (every installed "
        "app's flow_actions module is imported anyway).",
    ),
    "BATON_HTTP_ALLOWED_HOSTS": Setting((), "Hosts that http_request elements may call (none by default)."),
    "BATON_HTTP_TIMEOUT": Setting(10.0, "Seconds an http_request element waits for an answer unless it says otherwise."),
    "BATON_HTTP_ALLOW_PRIVATE_HOSTS": Setting(
        (),
        "Hosts of BATON_HTTP_ALLOWED_HOSTS that may resolve to a loopback, private or link-local address "
        "(an intranet service allowed on purpose); every other host must resolve to public addresses only.",
    ),
    "BATON_SECRET_FIELDS": Setting(
        ("password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "access_key",
         "session_key", "otp"),
        "Words that make a field secret wherever they stand as whole _-separated parts of its name "
        "(reset_token, user_api_key); secret fields never reach record maps, run rows or flows, whatever "
        "BATON_FLOW_MODELS says. A field named password is always secret.",
    ),
    # --- Expression limits (docs/operations.md, "Security") --------------------
    "BATON_CEL_MAX_LENGTH": Setting(4000, "Characters in one CEL expression; longer ones are refused at activation."),
    "BATON_CEL_MAX_DEPTH": Setting(32, "Levels of one expression's parse tree; deeper ones are refused at activation."),
    "BATON_CEL_MAX_NODES": Setting(1000, "Names, literals and operators in one expression; more are refused at activation."),
    "BATON_CEL_MAX_STRING": Setting(1_000_000, "Characters of a text one evaluation may return."),
    "BATON_CEL_MAX_ITEMS": Setting(100_000, "Values in all the lists and maps one evaluation may return."),
    "BATON_CEL_MAX_SECONDS": Setting(
        1.0, "Seconds one evaluation may take in the evaluator process before it is stopped (an expression error)."
    ),
    "BATON_CEL_MAX_MEMORY_MB": Setting(512, "Address space (MB) of an evaluator process."),
    "BATON_FLOW_MAX_ELEMENTS": Setting(10_000, "Elements one autolaunched flow run may execute, loops included."),
}


class BatonSettings:
    """``baton_settings.BATON_X``: the project's value of ``BATON_X`` if it set one, else the default.

    ``settings`` is the table of known settings (name → ``Setting``); asking
    for any other name is an AttributeError.
    """

    def __init__(self, settings):
        self._settings = settings

    def __getattr__(self, name):
        try:
            setting = self._settings[name]
        except KeyError:
            raise AttributeError(f"{name} is not a Baton setting (see orchestration/conf.py)") from None
        return getattr(django_settings, name, setting.default)

    def __dir__(self):
        return sorted(self._settings)


#: The flows settings only; everything else reads ``orchestration.conf.baton_settings``.
baton_settings = BatonSettings(FLOW_SETTINGS)
