"""Baton settings, read from the environment (django-environ).

Every default works on a laptop with no server at all: SQLite under ``var/``
and an embedded, file-system Celery broker. ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``EMAIL_URL`` move to PostgreSQL, Redis and SMTP
without a code change.
"""
from datetime import timedelta
from pathlib import Path

import environ

from config.database import postgres_options
from csp.constants import NONE, SELF, UNSAFE_INLINE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BATON_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "[::1]", "testserver"]),
)

DEBUG = env("DEBUG")
# The built-in key is public (it is in this file): it signs sessions, password
# reset links and CSRF tokens only while DEBUG is on. With DEBUG off Baton
# refuses to start without SECRET_KEY rather than run on it. `make` targets
# and the test suite set a development key of their own.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off Baton will not run on the built-in development key: set "
            "SECRET_KEY in the environment to a long random value, e.g. the output of "
            "python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())' "
            "(keep it secret and the same on every web and worker process), or set DEBUG=true on a development "
            "machine."
        )
    SECRET_KEY = "dev-only-insecure-key-change-me-in-production-0123456789"
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "nested_admin",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "axes",
    "flows",
    "orchestration",
    "workguide",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in with its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# SQLite by default, in WAL mode with a busy timeout, because the web process
# and a Celery worker write to it at the same time.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'baton.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
    DATABASES["default"].setdefault("TEST", {})
else:
    # Reuse connections in web and worker processes; check them before use so
    # a restarted database costs one failed request, not a broken process.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {}).update(postgres_options(env))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"

# --- Sign-in throttling (django-axes) --------------------------------------
# After BATON_LOGIN_FAILURE_LIMIT failed sign-ins for one username, or from one
# address, within BATON_LOGIN_COOLOFF_MINUTES, further attempts for it are
# refused (the right password too) with the page registration/locked_out.html
# (HTTP 429) until the cool-off ends or an administrator runs
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS` / `axes_reset`.
# Both the site's sign-in page and the admin's go through it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("BATON_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("BATON_LOGIN_COOLOFF_MINUTES", default=15))
# Each entry is counted on its own: by username, and by address.
AXES_LOCKOUT_PARAMETERS = env.list("BATON_LOGIN_LOCKOUT_BY", default=["username", "ip_address"])
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = False  # a success from one account must not clear the count against another
AXES_VERBOSE = False
# Behind a TLS proxy every request comes from the proxy: take the client's
# address from the X-Forwarded-For entry that proxy added.
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_ip_address"
LOGIN_REDIRECT_URL = "workguide:my_work"
LOGOUT_REDIRECT_URL = "login"

# --- Security (production switches them on through DEBUG=false) ----------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
X_FRAME_OPTIONS = "DENY"

# --- Production: HTTPS (issue 6) -------------------------------------------
# BATON_HTTPS=true says the site is served over HTTPS (directly or behind a
# TLS proxy). With DEBUG off it turns on secure cookies, the HTTPS redirect
# and HSTS. Left off by default so `make run` keeps working over plain http
# on 127.0.0.1.
BATON_HTTPS = env.bool("BATON_HTTPS", default=False)
if BATON_HTTPS and not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Content-Security-Policy (django-csp) on every response ----------------
# Scripts only from this site's static files: no inline script, no eval (the
# monitor's polling pause is static/monitor/poll.js, not an htmx filter), so a
# javascript: URL or an injected <script> does not run. Inline styles stay
# allowed: the admin, django-nested-admin, htmx's indicator style and Swagger
# UI set them. A site that serves assets from elsewhere adds the origin here.
BATON_CSP_REPORT_URI = env("BATON_CSP_REPORT_URI", default="")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"report-uri": [BATON_CSP_REPORT_URI]} if BATON_CSP_REPORT_URI else {}),
    },
}

# --- Email ----------------------------------------------------------------
_email = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(_email)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="baton@localhost")

# --- Celery -----------------------------------------------------------------
# Default: kombu's file-system transport under var/, a real broker that needs
# no server (messages are files; the web process and the worker share them).
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed"):
        (_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default, which a hand-off through a background
        # step paid about three times (bench/handoff.py: p50 ~3 s); a listing of a near-empty
        # folder every 50 ms costs next to nothing.
        "polling_interval": 0.05,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must never hang a web request when the broker is down: the step
# stays queued in the database and the sweeper sends it later.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Celery's Django fix-up closes every database connection before and after
# each task unless this is set, whatever CONN_MAX_AGE says: a new PostgreSQL
# backend per background step. With it set, the fix-up closes them only every
# that many tasks, and orchestration.tasks closes broken or expired ones
# before each task as Django does per request (CONN_MAX_AGE still applies).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# --- Broker outages fail fast (issue 6) -------------------------------------
# With the broker down, kombu would retry the connection inside apply_async
# for up to CELERY_BROKER_CONNECTION_TIMEOUT (2 s) per message. Baton does not
# need that: the step is already queued in the database, send_step_message
# logs the failure and the sweeper re-sends it. One quick retry, then give up.
# (These options only govern publishing; a worker's consumer keeps its own
# reconnect loop, broker_connection_max_retries.)
BATON_BROKER_FAIL_FAST_OPTIONS = {
    "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
}
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(BATON_BROKER_FAIL_FAST_OPTIONS)

# Baton's apps add the sweeper and the due-date checks to beat themselves
# (orchestration/celery_hooks.py); these set their intervals, 0 turns one off.
BATON_SWEEP_INTERVAL = env.int("BATON_SWEEP_INTERVAL", default=30)
BATON_DUE_CHECK_INTERVAL = env.int("BATON_DUE_CHECK_INTERVAL", default=300)

# --- REST ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("BATON_THROTTLE_ANON", default="60/min"),
        "user": env("BATON_THROTTLE_USER", default="6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": "Launch orchestrations, follow runs, and work the Work Guide.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" field with different choices; name each set.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "orchestration.models.runs.RunStatus",
        "StageStatusEnum": "orchestration.models.runs.StageStatus",
        "StepStatusEnum": "orchestration.models.runs.StepStatus",
        "WorkItemStatusEnum": "workguide.models.WorkItemStatus",
        "DefinitionStatusEnum": "flows.versioning.DefinitionStatus",
    },
}

# --- Baton ----------------------------------------------------------------
# `make run` passes PORT to the server; links in mails and webhook URLs follow it unless set.
BATON_BASE_URL = env("BATON_BASE_URL", default=f"http://127.0.0.1:{env('PORT', default='8000')}").rstrip("/")
BATON_ACTION_MODULES = [m for m in env.list("BATON_ACTION_MODULES", default=[]) if m]
# Models that flows may read and write (get_records, create_record,
# update_records) and that runs may be started on. "app_label.model", lower case.
# Each entry "app_label.model" exposes every field of the model but secret ones;
# "app_label.model:name,name" only those names; "app_label.model:-name,-name" all
# but those (orchestration/records.py; a dict form is accepted in settings too).
BATON_FLOW_MODELS = env.list(
    "BATON_FLOW_MODELS", default=["demo.employee", "demo.opportunity", "demo.equipmentrequest"]
)
# Words that make a field secret: never in a record map, record_prior, or a flow's
# get/create/update, whatever BATON_FLOW_MODELS lists. "password" is secret always.
BATON_SECRET_FIELDS = env.list(
    "BATON_SECRET_FIELDS",
    default=["password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "access_key",
             "session_key", "otp"],
)
# Hosts that http_request elements may call.
BATON_HTTP_ALLOWED_HOSTS = env.list("BATON_HTTP_ALLOWED_HOSTS", default=[])
BATON_HTTP_TIMEOUT = env.float("BATON_HTTP_TIMEOUT", default=10.0)
# Hosts from BATON_HTTP_ALLOWED_HOSTS that may resolve to a loopback, private or
# link-local address (an intranet service); all others must resolve to public ones.
BATON_HTTP_ALLOW_PRIVATE_HOSTS = env.list("BATON_HTTP_ALLOW_PRIVATE_HOSTS", default=[])
# A step left queued or running past its lease is re-sent by the sweeper.
# A step whose message could not be published is re-sent at the next sweep;
# one whose message is in the broker is re-sent only after this lease (a
# message the broker itself lost). Keep it above the longest queue wait.
# Where background steps run: "worker" (Celery, the default) or "in_process":
# the flow runs inside the engine's transition that starts the step, in the
# process that made the transition (no broker, no worker; retries without
# backoff). See docs/design.md, "Step execution".
BATON_STEP_EXECUTION = env.str("BATON_STEP_EXECUTION", default="worker")
if BATON_STEP_EXECUTION not in ("worker", "in_process"):
    raise environ.ImproperlyConfigured(f"BATON_STEP_EXECUTION must be 'worker' or 'in_process', not {BATON_STEP_EXECUTION!r}")
# How a record-triggered run starts after its record's transaction commits:
# "on_commit" (the default: in the saving process, right after commit) or
# "worker" (a Celery message; a worker starts it, so the save costs only a
# row and a publish). Either way a PendingStart row makes the start durable.
BATON_RECORD_STARTS = env.str("BATON_RECORD_STARTS", default="on_commit")
if BATON_RECORD_STARTS not in ("on_commit", "worker"):
    raise environ.ImproperlyConfigured(f"BATON_RECORD_STARTS must be 'on_commit' or 'worker', not {BATON_RECORD_STARTS!r}")
BATON_QUEUED_LEASE = env.int("BATON_QUEUED_LEASE", default=600)
# A record-triggered start not done this many seconds after its record was
# saved (the process died, the start failed) is started by the sweeper.
BATON_START_LEASE = env.int("BATON_START_LEASE", default=60)
BATON_LEASE_MARGIN = env.int("BATON_LEASE_MARGIN", default=30)
BATON_STALLED_AFTER = env.int("BATON_STALLED_AFTER", default=3 * 24 * 3600)
BATON_REMINDER_BEFORE = env.int("BATON_REMINDER_BEFORE", default=24 * 3600)
BATON_MAX_INPUT_BYTES = env.int("BATON_MAX_INPUT_BYTES", default=256 * 1024)
# Each process checks its record-trigger index against the database before a save of a
# watched model at most this often (seconds; 0: before every save, one query each), and an
# activation returns only after this long, so that every save begun afterwards, in any
# process, sees it. Give every process the same value.
BATON_TRIGGER_CHECK_INTERVAL = env.float("BATON_TRIGGER_CHECK_INTERVAL", default=0.25)

# --- Logging (issue 6: LOG_FORMAT=json for structured logs) -----------------
LOG_FORMAT = env("LOG_FORMAT", default="plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}")
if LOG_FORMAT == "json":
    # Celery would otherwise replace the root handlers with its own text format.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
