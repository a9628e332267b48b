"""A record-triggered start is never lost to another process's activation (issue 12, point 16).

Process A (a subprocess) builds its trigger index by saving a record, then
this process activates an orchestration on that model, then A saves a
matching record: its run must exist. Before the index version was checked
before saves, A kept its old index (refreshed only when a request or a
task began) and the save started nothing: no run, no ``PendingStart``.

Both processes use the same ``BATON_TRIGGER_CHECK_INTERVAL``; A checks at
most that often, and ``activate`` returns only after it.
"""
import os
import subprocess
import sys

import pytest

from demo.models import Employee
from orchestration import lifecycle
from orchestration.models import OrchestrationRun, PendingStart
from orchestration.spec import orchestration_from_dict
from tests.engine_builders import bg, noop_flow
from tests.servers import REPO

PROCESS_A = """
import sys

import django

django.setup()
from demo.models import Employee

def hire(name):
    return Employee.objects.create(first_name=name, last_name="L", email=name + "@example.com", status="hired")

hire("before")  # reads the trigger index: nothing watches employees yet
print("ready", flush=True)
sys.stdin.readline()  # the other process activates meanwhile
print("saved", hire("after").pk, flush=True)
"""


@pytest.mark.parametrize("interval", [0.5, 0])
def test_a_save_in_a_process_with_an_older_index_starts_the_run_activated_elsewhere(postgres_db, tmp_path, settings,
                                                                                   interval):
    settings.BATON_TRIGGER_CHECK_INTERVAL = interval
    env = {**os.environ, "DATABASE_URL": postgres_db.url, "DJANGO_SETTINGS_MODULE": "config.settings",
           "BATON_VAR_DIR": str(tmp_path), "BATON_RECORD_STARTS": "on_commit", "LOG_LEVEL": "WARNING",
           "BATON_TRIGGER_CHECK_INTERVAL": str(interval)}
    env.pop("CELERY_BROKER_URL", None)  # the embedded broker under tmp_path
    process_a = subprocess.Popen([sys.executable, "-c", PROCESS_A], cwd=REPO, env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process_a.stdout.readline().strip() == "ready", process_a.stderr.read()
        # This process activates an orchestration on employees, as the admin or the API would.
        noop_flow("n")
        draft = orchestration_from_dict(
            {"api_name": "onboard", "path": [{"name": "one", "steps": [bg("s", "n")]}],
             "start": {"type": "record_triggered", "model": "demo.employee", "when": "created",
                       "condition": 'record.status == "hired"'}},
            status="draft")
        lifecycle.activate(draft)
        out, err = process_a.communicate("go\n", timeout=120)
    finally:
        if process_a.poll() is None:
            process_a.kill()
            process_a.wait()
    assert process_a.returncode == 0, err
    pk = int(out.split()[-1])
    before = Employee.objects.get(first_name="before")
    assert not OrchestrationRun.objects.filter(record_pk=str(before.pk)).exists()
    started = OrchestrationRun.objects.filter(record_model="demo.employee", record_pk=str(pk), orchestration=draft)
    pending = PendingStart.objects.filter(record_model="demo.employee", record_pk=str(pk), orchestration=draft)
    assert started.count() + pending.count() == 1, err
    assert started.exists()  # on_commit: process A started it right after its save committed
