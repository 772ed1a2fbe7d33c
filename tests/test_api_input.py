"""What the REST API refuses rather than quietly taking (found by bench/fuzz.py, schemathesis' negative cases):
form-encoded bodies, JSON values of the wrong type, filters and pages it cannot read, a changed id, deleting
what is still in use; and URLs that match no route answer JSON."""

import pytest
from rest_framework.test import APIClient

from channels_app.models import BusinessAttribute, Channel, Tenant
from tests.test_sessions import make_interaction


@pytest.mark.django_db
def test_urls_that_match_no_route_answer_json_for_programs_and_html_for_people(admin_client):
    api = APIClient()

    assert api.get("/api/interactions/%C2%84/").json() == {"detail": "Not found."}
    assert api.get("/api/nothing-here/").status_code == 404
    nexus = api.post("/nexus/v3/channels/a/b/messages", b"{}", content_type="application/json")
    assert (nexus.status_code, nexus.json()) == (404, {"status": {"code": 404, "message": "Not found."}})
    assert admin_client.get("/admin/nothing-here/").headers["Content-Type"].startswith("text/html")
