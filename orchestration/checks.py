"""System checks: what a host project must have for Baton, each with its fix.

They run with every management command (``manage.py check``, ``migrate``,
``runserver``) and name the missing app, middleware or setting.
"""
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string
from drf_spectacular.openapi import AutoSchema

from . import conf

#: Django apps Baton's pages and models need besides Baton's own list.
DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

#: Middleware Baton's pages need (``startproject`` has all but the last).
REQUIRED_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    *conf.MIDDLEWARE,
]

CONTEXT_PROCESSORS = [
    "django.template.context_processors.request",
    "django.contrib.auth.context_processors.auth",
    "django.contrib.messages.context_processors.messages",
]


@register()
def check_installed_apps(app_configs=None, **kwargs):
    installed = {config.name for config in apps.get_app_configs()}
    return [
        Error(
            f"Baton needs {name!r} in INSTALLED_APPS.",
            hint="Add *orchestration.conf.INSTALLED_APPS to INSTALLED_APPS (Django's auth, contenttypes, sessions, "
                 "messages and staticfiles apps too)." if name not in DJANGO_APPS else f"Add {name!r} to INSTALLED_APPS.",
            id="baton.E001",
        )
        for name in [*DJANGO_APPS, *conf.INSTALLED_APPS] if name not in installed
    ]


@register()
def check_middleware(app_configs=None, **kwargs):
    present = list(getattr(settings, "MIDDLEWARE", None) or [])
    return [
        Error(f"Baton needs {name!r} in MIDDLEWARE.", hint=f"Add {name!r} to MIDDLEWARE.", id="baton.E002")
        for name in REQUIRED_MIDDLEWARE if name not in present
    ]


@register()
def check_templates(app_configs=None, **kwargs):
    engines = [t for t in settings.TEMPLATES if t.get("BACKEND") == "django.template.backends.django.DjangoTemplates"]
    if not engines:
        return [Error("Baton's pages need a DjangoTemplates engine in TEMPLATES.",
                      hint="Keep startproject's TEMPLATES entry (BACKEND django.template.backends.django.DjangoTemplates).",
                      id="baton.E003")]
    engine = engines[0]
    options = engine.get("OPTIONS", {})
    errors = []
    loaders = options.get("loaders")
    finds_app_templates = engine.get("APP_DIRS") or (
        loaders is not None and "django.template.loaders.app_directories.Loader" in repr(loaders)
    )
    if not finds_app_templates:
        errors.append(Error("Baton's templates are found only with APP_DIRS (or the app_directories loader).",
                            hint="Set 'APP_DIRS': True in TEMPLATES.", id="baton.E003"))
    for name in CONTEXT_PROCESSORS:
        if name not in options.get("context_processors", []):
            errors.append(Error(f"Baton's pages need the context processor {name!r}.",
                                hint=f"Add {name!r} to TEMPLATES[0]['OPTIONS']['context_processors'].",
                                id="baton.E003"))
    return errors


@register()
def check_rest_framework(app_configs=None, **kwargs):
    # drf-spectacular's decorators on Baton's views build on DEFAULT_SCHEMA_CLASS
    # when they are imported; another class there breaks the API's schema.
    name = (getattr(settings, "REST_FRAMEWORK", None) or {}).get("DEFAULT_SCHEMA_CLASS")
    try:
        schema_class = import_string(name) if isinstance(name, str) else name
        ok = isinstance(schema_class, type) and issubclass(schema_class, AutoSchema)
    except ImportError:
        ok = False
    if ok:
        return []
    return [Error(f"Baton's API schema needs drf-spectacular's AutoSchema; REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] is {name!r}.",
                  hint='Set REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema", ...}.',
                  id="baton.E006")]


@register()
def check_baton_settings(app_configs=None, **kwargs):
    errors = []
    for name, setting in conf.SETTINGS.items():
        value = getattr(conf.baton_settings, name)
        if setting.choices and value not in setting.choices:
            errors.append(Error(f"{name} is {value!r}.", hint=f"Set {name} to one of {', '.join(map(repr, setting.choices))}.",
                                id="baton.E004"))
    base = urlsplit(str(conf.baton_settings.BATON_BASE_URL or ""))
    if base.scheme not in ("http", "https") or not base.netloc:
        errors.append(Error(f"BATON_BASE_URL is {conf.baton_settings.BATON_BASE_URL!r}; mail links need a scheme and host.",
                            hint='Set BATON_BASE_URL to the site\'s address, for example "https://intranet.example.com".',
                            id="baton.E007"))
    elif base.path.strip("/"):
        errors.append(Warning(f"BATON_BASE_URL's path {base.path!r} is not used: mail links take only scheme and host "
                              "from it, and their path from your URLconf.",
                              hint="Drop the path; if your server mounts the site under a sub-path, set FORCE_SCRIPT_NAME.",
                              id="baton.W001"))
    errors += _check_effects()
    models = conf.baton_settings.BATON_FLOW_MODELS
    if isinstance(models, str) or not isinstance(models, (list, tuple)):
        return [*errors, Error(f"BATON_FLOW_MODELS must be a list of \"app_label.model\" names, not {models!r}.",
                               hint='For example BATON_FLOW_MODELS = ["shop.order"].', id="baton.E005")]
    for label in models:
        try:
            apps.get_model(str(label))
        except (LookupError, ValueError):
            errors.append(Error(f"BATON_FLOW_MODELS names {label!r}, which is not an installed model.",
                                hint='Write "app_label.model" (for example "shop.order") of a model in INSTALLED_APPS.',
                                id="baton.E005"))
    return errors


def _check_effects():
    """``BATON_EFFECTS`` must name an importable class with the engine's three methods."""
    path = conf.baton_settings.BATON_EFFECTS
    hint = ('Set BATON_EFFECTS to the dotted path of an effects class, for example '
            '"workguide.effects.WorkGuideEffects" (the default); see orchestration/effects.py.')
    try:
        found = import_string(str(path))
    except ImportError as exc:
        return [Error(f"BATON_EFFECTS is {path!r}, which cannot be imported ({exc}).", hint=hint, id="baton.E008")]
    if not isinstance(found, type):
        return [Error(f"BATON_EFFECTS is {path!r}, which is not a class.", hint=hint, id="baton.E008")]
    missing = [name for name in ("send_step", "open_work_item", "close_work_items") if not hasattr(found, name)]
    if missing:
        return [Error(f"BATON_EFFECTS is {path!r}, whose class lacks {', '.join(missing)}.", hint=hint,
                      id="baton.E008")]
    return []
