"""No error page shows settings, code or local variables (API.md, "Operating the server"): with DEBUG off (the
default) an unknown URL, a request for an unknown host and a failing view get Django's plain pages or the
machine paths' JSON, through the project's handlers."""

import pytest
from django.test import Client
from django.urls import path

import project.urls

SECRET_MARKERS = ("Traceback", "SECRET_KEY", "DATABASES", "CELERY_BROKER_URL", "URLconf", "settings.py",
                  "Local vars", "hidden-value")


def _failing_view(request):
    hidden_value = "hidden-value"  # noqa: F841  (a local variable a debug page would show)
    raise RuntimeError("the view failed: hidden-value")


# The project's routes and handlers, plus views that fail.
urlpatterns = [
    path("admin/failing/", _failing_view),
    path("api/failing/", _failing_view),
    path("nexus/failing/", _failing_view),
    *project.urls.urlpatterns,
]
handler400, handler404, handler500 = project.urls.handler400, project.urls.handler404, project.urls.handler500


def _shows_nothing(body: bytes) -> None:
    text = body.decode(errors="replace")
    assert not [marker for marker in SECRET_MARKERS if marker in text], text[:2000]


@pytest.mark.django_db
@pytest.mark.parametrize("url, expected", [("/admin/failing/", "text/html"), ("/api/failing/", "application/json"),
                                           ("/nexus/failing/", "application/json")])
def test_a_failing_view_is_a_plain_500(settings, url, expected):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    response = client.get(url)

    assert response.status_code == 500
    assert response["Content-Type"].startswith(expected)
    _shows_nothing(response.content)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/no-such-page/", "/api/no-such-endpoint/", "/nexus/v3/nothing", "/admin/x/y/z/"])
def test_an_unknown_url_shows_no_debug_page(client, url):
    response = client.get(url)

    assert response.status_code in (302, 404)
    _shows_nothing(response.content)


@pytest.mark.django_db
def test_an_unknown_host_shows_no_debug_page(client):
    response = client.get("/admin/login/", HTTP_HOST="attacker.example")

    assert response.status_code == 400
    _shows_nothing(response.content)

