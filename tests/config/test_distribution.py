"""Baton from outside: the wheel, installed into a fresh virtualenv, runs in a new ``startproject`` host.

The wheel is built once per test run from a copy of this checkout. The host
is wired with the snippets of ``docs/embedding.md`` marked
``<!-- host: create|append PATH -->``, applied verbatim, so the page and this
test cannot drift apart. It then runs the page's story: a record-triggered
orchestration on the host's own model, an interactive step completed through
the API under the ``ops/`` prefix, a background step run by the host's own
Celery worker (on a private Redis) that calls the host's flow action and
updates the record, and the run completing.

The virtualenv is fresh and ``pip install WHEEL`` fills it from the package
index, as a new user's would be (about 35 s with pip's cache warm, 60 s
cold). ``BATON_DIST_TEST_OFFLINE=1`` installs only the wheel (``--no-deps``)
and lets the virtualenv read the dependencies from the suite's own
environment (a ``.pth`` file) instead; ``pip check`` checks the wheel's
requirements either way.
"""
import email
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from tests.servers import LOOPBACK, REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]

APPS = ("flows", "orchestration", "workguide")
DOCS = REPO / "docs" / "embedding.md"
OFFLINE = os.environ.get("BATON_DIST_TEST_OFFLINE") == "1"


def run(argv, cwd, env=None, timeout=180, check=True):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def clean_env(**extra):
    """This process's environment without the suite's own Django, Celery and Baton settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BATON_", "CELERY_", "DJANGO_", "PYTEST_", "DATABASE_URL", "PYTHONPATH"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture(scope="session")
def baton_wheel(tmp_path_factory):
    """``python -m build --wheel`` of a copy of this checkout (the tree may hold stale build/ output)."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", "test-output", ".hypothesis"))
    run([sys.executable, "-m", "build", "--wheel", "--outdir", root / "wheel"], cwd=source, env=clean_env(), timeout=300)
    (wheel,) = (root / "wheel").glob("baton-*.whl")
    return wheel


@pytest.fixture(scope="session")
def baton_venv(baton_wheel, tmp_path_factory):
    """A new virtualenv with the wheel installed into it. Returns its python."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", venv], cwd=venv.parent, env=clean_env())
    python = venv / "bin" / "python"
    if not OFFLINE:
        run([python, "-m", "pip", "install", "--quiet", baton_wheel], cwd=venv.parent, env=clean_env(), timeout=600)
    else:
        site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=venv.parent).stdout.strip())
        # A plain path line: the suite's site-packages come after the venv's own,
        # and their .pth files (an editable install of this checkout) are not run.
        (site / "zz_baton_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", baton_wheel],
            cwd=venv.parent, env=clean_env())
    run([python, "-m", "pip", "check"], cwd=venv.parent, env=clean_env())
    return python


def test_the_wheel_holds_the_three_apps_and_nothing_else(baton_wheel):
    with zipfile.ZipFile(baton_wheel) as wheel:
        names = wheel.namelist()
        metadata = email.message_from_bytes(wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    tops = {name.split("/")[0] for name in names}
    assert tops - {n for n in tops if n.endswith(".dist-info")} == set(APPS)
    for required in [
        "workguide/__init__.py", "workguide/templates/baton/base.html", "workguide/templates/workguide/component.html",
        "workguide/templates/workguide/email/new_work_item.txt", "workguide/static/workguide/baton.css",
        "workguide/static/workguide/workguide.css", "workguide/migrations/0001_initial.py",
        "orchestration/static/monitor/monitor.css", "orchestration/templates/monitor/run.html",
        "orchestration/urls.py", "orchestration/api_urls.py", "orchestration/conf.py",
        "orchestration/migrations/0001_initial.py", "orchestration/management/commands/import_definitions.py",
        "orchestration/management/commands/serve.py", "flows/migrations/0001_initial.py",
        "flows/templates/admin/baton/import.html",
    ]:
        assert required in names, required
    for app in APPS:  # every file under each app's templates/ and static/ in the checkout
        for sub in ("templates", "static"):
            for path in (REPO / app / sub).rglob("*"):
                if path.is_file():
                    assert path.relative_to(REPO).as_posix() in names, path
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert metadata["Name"] == "baton" and metadata["Version"] and metadata["Summary"]
    assert "Framework :: Django :: 5.2" in metadata.get_all("Classifier")
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("Project-URL")
    run([sys.executable, "-m", "twine", "check", "--strict", baton_wheel], cwd=baton_wheel.parent)


def docs_snippets():
    """``[(action, path, text)]`` of the blocks marked ``<!-- host: ACTION PATH -->`` in docs/embedding.md."""
    pattern = re.compile(r"<!-- host: (create|append) (\S+) -->\n```[a-z]*\n(.*?)```", re.S)
    return pattern.findall(DOCS.read_text())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Child:
    """A long-running child process of the host, its output in a file, stopped by its pid."""

    def __init__(self, argv, cwd, env, log):
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        self._out.close()


@pytest.mark.timeout(900)  # a dozen manage.py commands and two servers: over 300 s on a loaded machine (seen)
def test_a_host_project_runs_an_orchestration_on_its_own_model(baton_venv, redis_server, tmp_path):
    import requests

    snippets = docs_snippets()
    assert {path for _, path, _ in snippets} >= {
        "mysite/settings.py", "mysite/urls.py", "mysite/celery.py", "mysite/__init__.py", "shop/models.py",
        "shop/flow_actions.py", "shop/definitions/orders.yaml"}
    docs = DOCS.read_text()
    for command in ["python manage.py migrate", "python manage.py import_definitions shop/definitions/orders.yaml --activate",
                    "celery -A mysite worker", 'path("ops/", include("orchestration.urls"))']:
        assert command in docs, command

    python = baton_venv
    host = tmp_path / "mysite"
    broker = f"redis://{redis_server.host}:{redis_server.port}/7"
    mails = tmp_path / "mails"
    env = clean_env(CELERY_BROKER_URL=broker,
                    DJANGO_SUPERUSER_PASSWORD="pw-ann-12345")

    # The host, as a Django developer makes it.
    run([python, "-m", "django", "startproject", "mysite"], cwd=tmp_path, env=env)
    run([python, "manage.py", "startapp", "shop"], cwd=host, env=env)
    for action, path, text in snippets:
        target = host / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if action == "create":
            target.write_text(text)
        else:
            target.write_text(target.read_text() + "\n" + text)
    # This test's own environment, not part of the page: mails into files it can read.
    with open(host / "mysite" / "settings.py", "a") as settings_file:
        settings_file.write(f'\nEMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"\n'
                            f'EMAIL_FILE_PATH = {str(mails)!r}\n')

    check = run([python, "manage.py", "check"], cwd=host, env=env)
    assert "no issues" in check.stdout, check.stdout + check.stderr
    where = run([python, "-c", "import flows, orchestration, workguide, sys; "
                 "print(*[m.__file__ for m in (flows, orchestration, workguide)], sep='\\n')"], cwd=host, env=env)
    assert all(line.startswith(str(python.parent.parent)) for line in where.stdout.split()), where.stdout
    run([python, "manage.py", "makemigrations", "shop"], cwd=host, env=env)
    run([python, "manage.py", "migrate", "--noinput"], cwd=host, env=env)
    run([python, "manage.py", "createsuperuser", "--noinput", "--username", "ann", "--email", "ann@example.com"],
        cwd=host, env=env)
    token = run([python, "manage.py", "drf_create_token", "ann"], cwd=host, env=env).stdout.split()[2]
    imported = run([python, "manage.py", "import_definitions", "shop/definitions/orders.yaml", "--activate"],
                   cwd=host, env=env)
    assert "order_fulfilment" in imported.stdout + imported.stderr

    # Beat's schedule has Baton's entries without the host writing one.
    beat = run([python, "manage.py", "shell", "-v", "0", "-c",
                "from mysite.celery import app; print(sorted(app.conf.beat_schedule))"], cwd=host, env=env)
    assert "orchestration-sweep" in beat.stdout and "workguide-due-dates" in beat.stdout

    port = free_port()
    worker = Child([python, "-m", "celery", "-A", "mysite", "worker", "--pool", "solo", "--loglevel", "INFO",
                    "--without-heartbeat", "--without-gossip", "--without-mingle"],
                   host, env, tmp_path / "worker.log")
    web = Child([python, "manage.py", "runserver", f"{LOOPBACK}:{port}", "--noreload"], host, env, tmp_path / "web.log")
    base = f"http://{LOOPBACK}:{port}/ops/"
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    try:
        def up():
            assert worker.proc.poll() is None, worker.text()
            assert web.proc.poll() is None, web.text()
            if " ready." not in worker.text():
                return False
            try:
                return requests.get(base + "api/schema/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(up, 60, "the host's worker and web server")
        assert "orchestration.tasks.run_step" in worker.text()  # the host's autodiscover_tasks() found Baton's

        # Pages log in through the host's LOGIN_URL, under the prefix.
        page = requests.get(base + "workguide/", allow_redirects=False, timeout=10)
        assert page.status_code == 302 and page.headers["Location"] == "/admin/login/?next=/ops/workguide/"

        # Saving the host's record starts the run; ann's work item waits.
        saved = run([python, "manage.py", "shell", "-v", "0", "-c",
                     "from shop.models import Order; print(Order.objects.create(customer='Acme').pk)"], cwd=host, env=env)
        order_id = int(saved.stdout.split()[-1])
        items = api.get(base + "api/work-items/", timeout=10).json()["results"]
        assert [(i["label"], i["record"]["model"], i["record"]["pk"]) for i in items] == [
            ("Review the order", "shop.order", str(order_id))], items
        item = api.get(base + f"api/work-items/{items[0]['id']}/", timeout=10).json()
        assert '"note"' in json.dumps(item["screens"]) and item["can_complete"], item
        done = api.post(base + f"api/work-items/{item['id']}/complete/", json={"values": {"note": "Fragile"}}, timeout=10)
        assert done.status_code == 200, done.text

        # The host's worker runs the background step: the action, then the record's update.
        def finished():
            runs = api.get(base + "api/runs/", params={"orchestration": "order_fulfilment"}, timeout=10).json()
            return runs["results"][0] if runs["results"][0]["status"] in ("completed", "error") else None

        finished_run = wait_for(finished, 60, "the run to complete\n" + worker.text()[-3000:])
        assert finished_run["status"] == "completed", json.dumps(finished_run)
        record = run([python, "manage.py", "shell", "-v", "0", "-c",
                      "from shop.models import Order; o = Order.objects.get(); print(o.status, o.tracking, o.note)"],
                     cwd=host, env=env)
        assert record.stdout.split() == ["shipped", f"SHIP-{order_id:06d}", "Fragile"]

        # The mail about the new work item links to it under the prefix, on BATON_BASE_URL's host.
        sent = "".join(p.read_text() for p in wait_for(lambda: list(mails.glob("*.log")), 30, "the work-item mail"))
        assert f"https://intranet.example.com/ops/workguide/items/{item['id']}/" in sent
    finally:
        web.stop()
        worker.stop()
