"""Chromium through Playwright against Django's live_server."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_renders(page, live_server, screenshot_dir):
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.locator("input[name=username]").is_visible()
    assert page.locator("input[name=password]").is_visible()
    assert page.get_by_role("button", name="Sign in").is_visible()
    page.screenshot(path=str(screenshot_dir / "login.png"), full_page=True)
