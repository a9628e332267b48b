"""Error and sign-in pages in the site's layout; the navigation offers only what the user may open (issue 17 #8)."""
import pytest
from django.contrib.auth.models import Permission, User
from django.test import RequestFactory

LAYOUT = '<header class="site-header">'
STYLES = "/static/workguide/baton.css"


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="pw")


@pytest.mark.django_db
def test_403_is_a_styled_page_and_the_nav_hides_the_monitor_from_who_may_not_open_it(client, alice):
    client.force_login(alice)
    my_work = client.get("/workguide/").content.decode()
    assert 'href="/monitor/"' not in my_work  # alice may not open it: no link to a 403
    response = client.get("/monitor/")
    html = response.content.decode()
    assert response.status_code == 403
    assert LAYOUT in html and STYLES in html and "You may not open this page" in html
    assert "the monitor needs staff status or the orchestration.view_runs permission" in html
    assert 'href="/monitor/"' not in html
    alice.user_permissions.add(Permission.objects.get(codename="view_runs"))
    client.force_login(User.objects.get(pk=alice.pk))
    assert 'href="/monitor/"' in client.get("/workguide/").content.decode()
    assert client.get("/monitor/").status_code == 200


@pytest.mark.django_db
def test_404_is_a_styled_page(client, alice):
    client.force_login(alice)
    for url in ("/no/such/page/", "/workguide/items/987654/"):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 404 and LAYOUT in html and STYLES in html, url
        assert "This page does not exist" in html and "alice" in html  # the signed-in header


def test_500_renders_without_the_database_or_context_processors():
    """Django renders 500.html with an empty context; it must not need the request, the user or the database
    (no django_db mark here: any query fails the test)."""
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert LAYOUT in html and STYLES in html and "Something went wrong on our side" in html


@pytest.mark.django_db
def test_a_view_that_raises_gets_the_styled_500(client, alice, monkeypatch):
    from workguide import views

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.services, "my_open_items", broken)
    client.raise_request_exception = False
    client.force_login(alice)
    response = client.get("/workguide/")
    assert response.status_code == 500 and "Something went wrong on our side" in response.content.decode()


@pytest.mark.django_db
def test_login_page_is_styled_and_says_a_failed_sign_in_once(client, alice, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    page = client.get("/accounts/login/").content.decode()
    assert LAYOUT in page and STYLES in page and 'class="card narrow"' in page
    failed = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()
    assert failed.count("Please enter a correct username and password") == 1
    assert failed.count('role="alert"') == 1
    assert "didn't match" not in failed
