"""Shared fixtures.

The service fixtures (postgres_server, redis_server, celery_worker_process,
postgres_db, require_service, ...) live in ``tests/servers.py``, loaded as
a plugin with ``-p tests.servers`` (see pyproject.toml) so that it runs before
Django's settings are read. This file adds the browser fixtures.
"""
import os
from pathlib import Path

import pytest

from tests.servers import REPO, require_service

# Django's live_server with Playwright's sync API (runs an event loop in this
# thread): without this, ORM calls raise SynchronousOnlyOperation.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium: Playwright must not download a browser here."""
    require_service(CHROMIUM, "Chromium is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``test-output/screenshots/`` in the repository (git-ignored); look at them."""
    path = REPO / "test-output" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _fresh_definition_caches(settings):
    """Plans and flow specs are cached by row id; a rolled-back test database reuses ids.

    The trigger index is checked before every save (interval 0), so query
    counts do not depend on timing and activations do not wait.
    """
    settings.BATON_TRIGGER_CHECK_INTERVAL = 0
    from flows.compiled import clear_cache
    from orchestration import plan, triggers

    plan.forget()
    clear_cache()
    triggers.reset()
    yield
    plan.forget()
    clear_cache()
    triggers.reset()


@pytest.fixture
def celery_eager():
    """Run Celery tasks in-process for one test, then put the app back exactly as it was.

    Celery's ``app.conf`` keeps explicit assignments in a ``changes`` layer
    above the Django settings; restoring by assignment would pin a value for
    the rest of the session, so the layer entry is removed instead.
    """
    from config.celery import app

    had = "task_always_eager" in app.conf.changes
    old = app.conf.changes.get("task_always_eager")
    app.conf.task_always_eager = True
    yield app
    if had:
        app.conf.changes["task_always_eager"] = old
    else:
        app.conf.changes.pop("task_always_eager", None)
