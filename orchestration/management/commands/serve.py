"""``python manage.py serve``: the web server and a Celery worker, together.

Used by ``make run``. Starts two child processes with this process's
environment:

* ``celery -A APP worker -B`` (beat embedded, so the sweeper runs),
  concurrency 2 by default. APP is ``BATON_CELERY_APP``, by default the
  package of ``DJANGO_SETTINGS_MODULE`` (``mysite`` for ``mysite.settings``,
  where Django's Celery pattern puts ``mysite/celery.py``);
* ``manage.py runserver HOST:PORT --noreload``.

Ctrl-C or SIGTERM is forwarded to both, and the command waits for them to
exit. If either child dies on its own, the other is stopped and the command
exits non-zero. Each child also gets SIGTERM if this process is killed
outright (Linux ``PR_SET_PDEATHSIG``), so no orphan is left behind.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestration.conf import baton_settings

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child, before exec: get SIGTERM when the parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Command(BaseCommand):
    help = "Serve Baton: runserver plus a Celery worker with embedded beat. Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
        parser.add_argument("--loglevel", default="INFO", help="Celery log level")
        parser.add_argument("--stop-timeout", type=float, default=15.0,
                            help="seconds to wait for a child before killing it")

    def handle(self, *args, **options):
        # The project's directory: where manage.py is (this site's settings also name it BASE_DIR).
        base_dir = Path(getattr(settings, "BASE_DIR", None) or Path(sys.argv[0]).resolve().parent)
        var_dir = Path(getattr(settings, "VAR_DIR", None) or base_dir)
        # whitenoise warns on every start when STATIC_ROOT does not exist.
        if getattr(settings, "STATIC_ROOT", None):
            Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        settings_module = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
        celery_app = baton_settings.BATON_CELERY_APP or settings_module.rpartition(".")[0] or settings_module
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONUNBUFFERED": "1"}
        address = f"{options['host']}:{options['port']}"
        commands = {
            "worker": [
                sys.executable, "-m", "celery", "-A", celery_app, "worker", "-B",
                "--schedule", str(var_dir / "celerybeat-schedule"),
                "--concurrency", str(options["concurrency"]), "--loglevel", options["loglevel"],
                "--without-heartbeat", "--without-gossip", "--without-mingle",
            ],
            "web": [sys.executable, str(base_dir / "manage.py"), "runserver", address, "--noreload"],
        }

        stop_requested = []

        def request_stop(signum, frame):
            stop_requested.append(signum)

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        children = {}
        try:
            for name, argv in commands.items():
                # A session of their own: a terminal's Ctrl-C reaches this
                # process only, which then stops each child exactly once.
                children[name] = subprocess.Popen(argv, cwd=base_dir, env=env, start_new_session=True,
                                                  preexec_fn=_die_with_parent)
            self.stdout.write(self.style.SUCCESS(f"Baton is serving on http://{address}/"), ending="\n")
            self.stdout.write(f"  web pid {children['web'].pid}, worker pid {children['worker'].pid} "
                              f"(celery, beat embedded, concurrency {options['concurrency']})")
            self.stdout.write("  broker: " + _redact(getattr(settings, "CELERY_BROKER_URL", "") or "(Celery's default)")
                              + "; Ctrl-C stops both.")
            self.stdout.flush()

            failed = None
            while not stop_requested and failed is None:
                for name, child in children.items():
                    if child.poll() is not None:
                        failed = name
                        break
                else:
                    time.sleep(0.2)
        finally:
            # Ignore further Ctrl-C while the children shut down.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            codes = self._stop_all(children, options["stop_timeout"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        if failed is not None:
            raise CommandError(f"the {failed} process exited with code {codes.get(failed)}; stopped the others")
        self.stdout.write("Stopped.")

    def _stop_all(self, children, timeout):
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, child in children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} (pid {child.pid}) did not stop in {timeout:.0f}s; killing it")
            # Celery's pool processes share the worker's process group.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child.wait()
        return {name: child.returncode for name, child in children.items()}


def _redact(url):
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
