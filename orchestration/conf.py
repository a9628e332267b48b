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

The settings the ``flows`` app reads (the models and code flows may use,
the expression limits) are written in ``flows/conf.py``, so that flows
needs nothing from this app; ``SETTINGS`` below holds them first, with the
rest, and ``baton_settings`` reads them all.
"""
from flows.conf import FLOW_SETTINGS, BatonSettings, Setting

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


SETTINGS = {
    # The settings flows reads (models and code flows may use, expression limits): flows/conf.py.
    **FLOW_SETTINGS,
    # --- Where and how work runs ---------------------------------------------
    "BATON_STEP_EXECUTION": Setting(
        "worker",
        "Where background steps run: \"worker\" (a Celery worker) or \"in_process\" (inside the engine's "
        "transition that starts the step; no broker, no worker).",
        choices=("worker", "in_process"),
    ),
    "BATON_EFFECTS": Setting(
        "workguide.effects.WorkGuideEffects",
        "Dotted path of the class the engine asks for effects (send a background step, open and close work "
        "items); see orchestration/effects.py for its three methods. The default is the Work Guide's.",
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
    "BATON_WORK_ITEM_MAILS_OFF": Setting(
        (), "Orchestration api_names (or \"*\") whose work items send no default mail (new work, reminder, "
            "escalation): route them through the work-item signals instead."
    ),

    "BATON_WORKGUIDE_POLL_SECONDS": Setting(
        1.5, "Seconds between My Work's and the record component's cheap checks for new or gone items (0: off)."),
    "BATON_REMINDER_BEFORE": Setting(24 * 3600, "Seconds before a work item's due time that its reminder goes out."),
    "BATON_STALLED_AFTER": Setting(
        3 * 24 * 3600, "Seconds after which the monitor lists an open work item as stalled."
    ),
}


baton_settings = BatonSettings(SETTINGS)
