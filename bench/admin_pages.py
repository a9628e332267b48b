"""Figures for the definition admin: a new-version draft of the demo ``deal_approval``.

Run it on its own (SQLite in a scratch directory, nothing else needed but
Chromium)::

    python -m bench.admin_pages [--rounds N]

It loads the demo, makes a draft copy of ``deal_approval`` with the
lifecycle's ``new_version`` and reports

* ``controls_in_html``: the form controls (input, select, textarea) on the
  draft's change page, counted in the HTML Django serves (``of_which_in_templates``:
  those of the empty forms django-nested-admin copies for "Add another"),
  and ``visible_controls``, those a user sees in Chromium;
* ``get_ms``: the server time to render the page (test client, mean of 3);
* ``page_height_px``: the page's full height in Chromium at 1280 × 800;
* ``save_ms``: the median server time to save the unchanged page (the POST a
  browser sends for "Save and continue editing") through Django's test
  client, over ``--rounds`` saves after one warm-up;
* ``browser_save_ms``: in Chromium, from the click on "Save and continue
  editing" to the page loaded again (POST, redirect, GET, drawing), median
  of 5.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class FormData(HTMLParser):
    """The fields a browser submits for the page's main form (text and selects as shown)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.data = []
        self.controls = 0
        self.template_controls = 0  # in the empty forms "Add another" copies
        self._textarea = None
        self._select = None
        self._option = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag in ("input", "select", "textarea"):
            self.controls += 1
            if name and ("__prefix__" in name or "-empty-" in name):
                self.template_controls += 1
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data.append((name, attrs.get("value", "on")))
            elif kind not in ("submit", "button", "file", "image", "reset"):
                self.data.append((name, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]
        elif tag == "select" and name:
            self._select = {"name": name, "first": None, "selected": None}
        elif tag == "option" and self._select is not None:
            self._option = attrs.get("value", "")
            if self._select["first"] is None:
                self._select["first"] = self._option
            if "selected" in attrs:
                self._select["selected"] = self._option

    def handle_data(self, text):
        if self._textarea is not None:
            self._textarea[1] += text

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea is not None:
            value = self._textarea[1]
            self.data.append((self._textarea[0], value[1:] if value.startswith("\n") else value))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = self._select["selected"] if self._select["selected"] is not None else self._select["first"]
            self.data.append((self._select["name"], chosen or ""))
            self._select = None


def post_data(html):
    parser = FormData()
    parser.feed(html)
    data = {}
    for name, value in parser.data:
        if "__prefix__" in name or name == "csrfmiddlewaretoken":
            continue
        data.setdefault(name, []).append(value)
    return data, (parser.controls, parser.template_controls)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_figures(env, url):
    """Height and visible controls of ``url`` in Chromium, logged in as the demo admin."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/admin/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin")
            page.click("input[type=submit], button[type=submit]")
            page.goto(base + url)
            page.wait_for_load_state("networkidle")
            figures = page.evaluate("""() => ({
                height: document.documentElement.scrollHeight,
                width: document.documentElement.scrollWidth,
                visible: [...document.querySelectorAll(
                        '#content-main input, #content-main select, #content-main textarea')]
                    .filter(e => e.type !== 'hidden' && e.getClientRects().length > 0).length,
            })""")
            saves = []
            for _ in range(5):  # what a user waits for: the POST, the redirect and the page drawn again
                started = time.perf_counter()
                with page.expect_navigation(wait_until="load"):
                    page.locator("input[name=_continue]").first.click()
                saves.append((time.perf_counter() - started) * 1000)
            figures["browser_save_ms"] = round(statistics.median(saves), 1)
            shot = REPO / "test-output" / "screenshots" / "bench-deal-approval-draft.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            for index, top in enumerate(range(0, min(figures["height"], 6000), 1500)):
                page.screenshot(path=str(shot.with_name(f"bench-deal-approval-draft-{index}.png")), full_page=True,
                                clip={"x": 0, "y": top, "width": min(figures["width"], 1600), "height": 1500})
            browser.close()
        return figures
    finally:
        server.terminate()
        server.wait(10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="baton-admin-bench-"))
    env = {**os.environ, "BATON_VAR_DIR": str(scratch), "DEBUG": "true", "LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(REPO)}
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        call_command("load_demo", "--no-records", verbosity=0, stdout=open(os.devnull, "w"))
        from django.contrib.auth import get_user_model

        from orchestration import lifecycle
        from orchestration.models import Orchestration

        active = Orchestration.objects.get(api_name="deal_approval", status="active")
        draft = lifecycle.new_version(active)
        url = f"/admin/orchestration/orchestration/{draft.pk}/change/"
        client = Client()
        client.force_login(get_user_model().objects.get(username="admin"))
        html = client.get(url).content.decode()
        data, controls = post_data(html)
        data["_continue"] = ["Save and continue editing"]

        started = time.perf_counter()
        for _ in range(3):
            client.get(url)
        get_ms = (time.perf_counter() - started) / 3 * 1000
        times = []
        for round_ in range(args.rounds + 1):
            started = time.perf_counter()
            response = client.post(url, data)
            elapsed = time.perf_counter() - started
            if response.status_code != 302:
                raise SystemExit(f"the save was refused ({response.status_code}): "
                                 f"{response.context and response.context.get('errors')}")
            if round_:
                times.append(elapsed * 1000)
            data, _ = post_data(client.get(url).content.decode())  # new row ids after a save
            data["_continue"] = ["Save and continue editing"]
        result = {"controls_in_html": controls[0], "of_which_in_templates": controls[1],
                  "html_bytes": len(html.encode()), "get_ms": round(get_ms, 1),
                  "save_ms_median": round(statistics.median(times), 1), "save_ms_min": round(min(times), 1)}
        if not args.no_browser:
            figures = browser_figures(env, url)
            result.update(page_height_px=figures["height"], page_width_px=figures["width"],
                          visible_controls=figures["visible"], browser_save_ms=figures["browser_save_ms"])
        print(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
