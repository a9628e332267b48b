"""Baton's settings in one place: every ``BATON_*`` setting with its default.

A host project's settings module can import this module (it loads no model)::

    from orchestration import conf as baton

    INSTALLED_APPS = [..., *baton.INSTALLED_APPS]

Baton's code reads its settings through ``baton_settings``: each attribute is
looked up in ``django.conf.settings`` at the moment it is read, falling back to
the default below, so a project that sets none of them works and
``override_settings`` applies at once.

This repository's own site (``config/settings.py``) also reads a few
environment variables with ``BATON_`` names that are not app settings:
``BATON_VAR_DIR``, ``BATON_HTTPS``, ``BATON_THROTTLE_ANON``/``_USER`` and
``BATON_BROKER_FAIL_FAST_OPTIONS`` configure that site only.
"""
from dataclasses import dataclass

#: Baton's three apps and the third-party apps they need, in a working order.
#: Django's own contrib apps (admin, auth, contenttypes, sessions, messages,
#: staticfiles) are expected from the host's ``startproject`` settings.
INSTALLED_APPS = [
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "nested_admin",
    "flows",
    "orchestration",
    "workguide",
]

#: Middleware Baton's pages need besides ``startproject``'s defaults.
MIDDLEWARE = ["django_htmx.middleware.HtmxMiddleware"]


@dataclass(frozen=True)
class Setting:
    default: object
    doc: str
    choices: tuple = ()


SETTINGS = {
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
    # --- Where and how work runs ---------------------------------------------
    "BATON_STEP_EXECUTION": Setting(
        "worker",
        "Where background steps run: \"worker\" (a Celery worker) or \"in_process\" (inside the engine's "
        "transition that starts the step; no broker, no worker).",
        choices=("worker", "in_process"),
    ),
    "BATON_RECORD_STARTS": Setting(
        "on_commit",
        "How a record-triggered run starts after its record's transaction commits: \"on_commit\" (in the "
        "saving process) or \"worker\" (a Celery worker starts it).",
        choices=("on_commit", "worker"),
    ),
    "BATON_QUEUED_LEASE": Setting(
        600, "Seconds a queued step may wait for a worker before the sweeper sends its message again."
    ),
    "BATON_START_LEASE": Setting(
        60, "Seconds after its record was saved that a record-triggered start not yet done is started by the sweeper."
    ),
    "BATON_LEASE_MARGIN": Setting(30, "Seconds added to a running step's timeout before the sweeper takes it back."),
    "BATON_RETRY_BACKOFF": Setting(2, "Base of a failed background step's exponential retry delay, in seconds."),
    "BATON_TRIGGER_CHECK_INTERVAL": Setting(
        0.25,
        "Seconds between a process's checks that its record-trigger index is current (one query at most "
        "per interval, before a watched save); activating an orchestration waits this long, so every save "
        "begun after activate() returned sees it, in any process. 0 checks before every save.",
    ),
    "BATON_MAX_CHILD_DEPTH": Setting(
        8, "How deep sub-orchestrations may nest: a step that would start a run deeper than this fails "
           "(a recursion that does not end stops here).",
    ),
    "BATON_MAX_INPUT_BYTES": Setting(256 * 1024, "Largest JSON (bytes) accepted as a run's inputs or a step's outputs."),
    # --- Celery beat ----------------------------------------------------------
    "BATON_SWEEP_INTERVAL": Setting(
        30,
        "Seconds between sweeps (re-send lost step messages, start overdue record starts, time out steps). "
        "Baton adds this entry to the Celery app's beat schedule; 0 or None leaves it out.",
    ),
    "BATON_DUE_CHECK_INTERVAL": Setting(
        300,
        "Seconds between due-date checks (reminders, escalations). Baton adds this entry to the Celery "
        "app's beat schedule; 0 or None leaves it out.",
    ),
    "BATON_CELERY_APP": Setting(
        None,
        "The Celery app `manage.py serve` starts a worker of (celery -A VALUE). Default: the package of "
        "DJANGO_SETTINGS_MODULE, as in Django's Celery pattern (mysite/celery.py).",
    ),
    # --- Work Guide -----------------------------------------------------------
    "BATON_BASE_URL": Setting(
        "http://127.0.0.1:8000",
        "Scheme and host of the links in mails (for example https://intranet.example.com); the path "
        "comes from the URL configuration, so any prefix works.",
    ),
    "BATON_MAIL_RETRIES": Setting(5, "Times a work-item mail that failed to send is retried, with exponential backoff."),
    "BATON_REMINDER_BEFORE": Setting(24 * 3600, "Seconds before a work item's due time that its reminder goes out."),
    "BATON_STALLED_AFTER": Setting(
        3 * 24 * 3600, "Seconds after which the monitor lists an open work item as stalled."
    ),
}


class BatonSettings:
    """``baton_settings.BATON_X``: the project's value of ``BATON_X`` if it set one, else the default."""

    def __getattr__(self, name):
        try:
            setting = SETTINGS[name]
        except KeyError:
            raise AttributeError(f"{name} is not a Baton setting (see orchestration/conf.py)") from None
        from django.conf import settings

        return getattr(settings, name, setting.default)

    def __dir__(self):
        return sorted(SETTINGS)


baton_settings = BatonSettings()
