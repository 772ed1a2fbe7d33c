"""Campaign audiences (issue 22): field codes no row can fill are refused once, at upload or start; refused and
repeated rows are listed; a CSV field over the parser's limit is a refused row; a large CSV is taken in the
background; a multipart create has the JSON create's defaults."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from channels_app.models import Campaign
from tests.test_campaigns import SPEC_RESPONSE, create, recipient, response, simulator  # noqa: F401

CSV_HEADER = ("client_id,Contact.FirstName,Contact.LastName,Contact.MyFC_BillAmount,Contact.MyFC_Date,"
              "CustomProperties.CustomProp_Date,CustomProperties.CustomProp Time\n")


def csv_upload(text: str, name: str = "audience.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.mark.django_db
def test_a_multipart_create_has_the_defaults_of_a_json_create(staff_api, response):  # noqa: F811
    # given the same campaign created as JSON and as a form, every optional field omitted
    as_json = create(staff_api, [recipient(1)])
    as_form = staff_api.post("/api/campaigns/", {
        "name": "Bills", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
        "file": csv_upload(CSV_HEADER + "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"),
    }, format="multipart")

    # then both have the same settings
    assert as_json.status_code == 201 and as_form.status_code == 201, as_form.json()
    settings = ("chat_queue_key", "terminate_sessions", "rate_per_second", "start_at", "state")
    assert {k: as_form.json()[k] for k in settings} == {k: as_json.json()[k] for k in settings}
    assert Campaign.objects.get(pk=as_form.json()["id"]).terminate_sessions is True
