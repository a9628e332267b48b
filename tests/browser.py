"""Helpers the Playwright tests share: signing in (the site's form and the admin's), and waiting
for htmx to finish a swap."""
import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

# htmx marks an element while its request is in flight (htmx-request), the old content while it is
# swapped out (htmx-swapping) and the new content until it is processed (htmx-added, htmx-settling).
# New content gets its triggers only when processed, 20 ms after the swap: typing into it before then
# is not seen by htmx (a designer test lost its as-typed expression check that way on CI).
HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-added, .htmx-settling"


def settle(page):
    """Wait until no htmx request is in flight and the last swap has been processed."""
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


def log_in(page, live_server, username, next_path=""):
    """Sign in through the site's own page (every test user's password is "pw")."""
    page.goto(f"{live_server.url}/accounts/login/{'?next=' + next_path if next_path else ''}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Sign in").click()
    # Wait for the page's scripts: typing before htmx has processed the page is lost
    # (seen once under a loaded machine: the search never filtered).
    page.wait_for_load_state("load")


def admin_log_in(page, live_server, settings, width, ignore_console=lambda text: False):
    """Make a superuser "root", sign in to the admin at ``width`` px, and collect the page's errors
    (uncaught exceptions and console errors that ``ignore_console`` does not excuse) in
    ``page.baton_errors`` for the test to assert empty."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("root", "root@example.com", "pw")
    page.set_viewport_size({"width": width, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            and not ignore_console(m.text) and errors.append(m.text))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "pw")
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.baton_errors = errors
    return page
