"""Campaigns: audience validation, the state machine, batches, throttling, results."""

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channels_app.models import Campaign, CampaignRecipient, DeliveryAttempt, Message
from channels_app.services.campaigns import (
    BATCH_SIZE,
    _claim_batch,
    _invite_batch,
    campaign_run_batch,
    campaign_transition,
)

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
FIELDS = {
    "Contact": {"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$1", "MyFC_Date": "May 1"},
    "CustomProperties": {"CustomProp_Date": "May 2", "CustomProp Time": "3 PM"},
}


def recipient(number: int, **overrides) -> dict:
    return {"client_id": f"1555000{number:04d}", **FIELDS, **overrides}


@pytest.fixture
def simulator(tenant):
    from django.core.management import call_command

    call_command("seed_demo", "--bare")  # the channel only: these tests count campaigns and messages
    from channels_app.models import Channel

    return Channel.objects.get(channel_id="channel-ghub-simulator")


@pytest.fixture
def response(staff_api, simulator):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    return SPEC_RESPONSE["id"]


def create(staff_api, recipients, **fields):
    body = {"name": "Bills", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
            "recipients": recipients, **fields}
    return staff_api.post("/api/campaigns/", body, format="json")


@pytest.mark.django_db
def test_audience_report_rejects_bad_rows_with_their_numbers(staff_api, response):
    rows = [
        recipient(1),
        recipient(2, client_id="not-a-phone"),
        {"client_id": "15550000003", "Contact": {"FirstName": "Ann"}},
        recipient(1),  # the same client id again: sent once
        {"Contact": {}},
    ]

    created = create(staff_api, rows)

    assert created.status_code == 201, created.json()
    report = created.json()["audience_report"]
    assert report["accepted"] == 1
    assert report["duplicates"] == [4]
    assert [r["row"] for r in report["rejected"]] == [2, 3, 5]
    assert "not a phone number" in report["rejected"][0]["errors"][0]
    assert "No value for field code Contact.LastName." in report["rejected"][1]["errors"]
    assert "client_id is missing." in report["rejected"][2]["errors"]
    # every row is kept: the refused ones (and the repeated client id) with their reasons, counted as refused
    assert (created.json()["total"], created.json()["refused"], created.json()["pending"]) == (5, 4, 1)
    kept = Campaign.objects.get().recipients.order_by("row_number")
    assert [(r.row_number, r.status) for r in kept] == [
        (1, "pending"), (2, "refused"), (3, "refused"), (4, "refused"), (5, "refused")]
    assert "already on row 1" in kept[3].error and "not a phone number" in kept[1].error


@pytest.mark.django_db
def test_csv_audience(staff_api, response):
    csv_text = (
        "client_id,Contact.FirstName,Contact.LastName,Contact.MyFC_BillAmount,Contact.MyFC_Date,"
        "CustomProperties.CustomProp_Date,CustomProperties.CustomProp Time\n"
        "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"
        "15550000002,Ann,,$2,May 1,May 2,3 PM\n"
    )
    upload = SimpleUploadedFile("audience.csv", csv_text.encode())

    created = staff_api.post("/api/campaigns/", {
        "name": "CSV", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"], "file": upload,
    }, format="multipart")

    assert created.status_code == 201, created.json()
    assert created.json()["audience_report"]["accepted"] == 1
    assert created.json()["audience_report"]["rejected"][0]["row"] == 2


@pytest.mark.django_db
def test_a_campaign_runs_every_recipient_through_invite_to_chat(staff_api, response):
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 6)], rate_per_second=None).json()["id"]

    started = staff_api.post(f"/api/campaigns/{campaign_id}/start/")
    handled = campaign_run_batch(campaign_id=campaign_id)
    campaign_run_batch(campaign_id=campaign_id)  # finds nothing left and completes the campaign

    assert started.status_code == 200 and started.json()["state"] == "running"
    assert handled == 5
    detail = staff_api.get(f"/api/campaigns/{campaign_id}/").json()
    assert detail["state"] == "completed"
    # the batch hands every message to the channel itself
    assert (detail["total"], detail["pending"], detail["sent"]) == (5, 0, 5)
    message = Message.objects.filter(campaign_recipient__campaign_id=campaign_id).first()
    assert message.interaction.type == "Outbound" and message.interaction.terminate_after_send
    assert message.text.startswith("Dear John Smith")
    assert message.interaction.user_data["CampaignId"] == str(campaign_id)


@pytest.mark.django_db
@pytest.mark.parametrize("rate", [None, 2], ids=["claimed in the invitations' transaction", "claimed with a lease"])
def test_a_batch_logs_the_recipients_it_wrote_once_they_are_committed(staff_api, response, caplog, rate):
    """docs/OPERATIONS.md, "A campaign's progress": the line says which worker wrote which recipients, whatever
    becomes of the sends; a batch that finds nothing writes none."""
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 4)] + [recipient(4, client_id="not-a-phone")],
                         rate_per_second=rate).json()["id"]
    staff_api.post(f"/api/campaigns/{campaign_id}/start/")

    with caplog.at_level("INFO", logger="channels_app.services.campaigns"):
        while campaign_run_batch(campaign_id=campaign_id):
            pass

    written = [record.getMessage() for record in caplog.records if "a batch wrote" in record.getMessage()]
    expected = [3] if rate is None else [2, 1]  # the refused recipient was written with the audience
    assert written == [f"Campaign {campaign_id}: a batch wrote the outcome of {n} recipients" for n in expected]


@pytest.mark.django_db
def test_no_recipient_is_sent_twice_when_a_worker_goes_on_after_its_claim_ran_out(staff_api, response):
    # given worker A claimed the recipients and stalled (a long pause, a lost connection) past its lease
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 4)], rate_per_second=None).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    claimed_by_a = _claim_batch(campaign_id, timezone.now(), BATCH_SIZE)
    lease_ran_out = timezone.now() - timedelta(seconds=1)
    CampaignRecipient.objects.filter(campaign_id=campaign_id).update(claimed_until=lease_ran_out)

    # when worker B claims and invites them, and then A goes on with the recipients it had claimed
    handled_by_b = campaign_run_batch(campaign_id=campaign_id)
    campaign = Campaign.objects.select_related("channel").get(pk=campaign_id)
    _written_by_a, invited_by_a = _invite_batch(campaign, claimed_by_a)

    # then B sent each once and A found nothing left to send
    assert (len(claimed_by_a), handled_by_b, invited_by_a) == (3, 3, [])
    assert Message.objects.filter(campaign_recipient__campaign_id=campaign_id).count() == 3


@pytest.mark.django_db
def test_a_recipient_given_back_behind_the_claims_is_still_sent_once(staff_api, response, monkeypatch):
    # given a campaign sent 2 recipients a batch, whose first batch a worker claimed and then lost (its lease ran
    # out: the rows are free again behind where this process's claims in row order now begin)
    monkeypatch.setattr("channels_app.services.campaigns.BATCH_SIZE", 2)
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 7)], rate_per_second=None).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    lost = _claim_batch(campaign_id, timezone.now(), 2)
    assert len(_claim_batch(campaign_id, timezone.now(), 2)) == 2  # the claims move on past the lost ones
    CampaignRecipient.objects.filter(pk__in=lost).update(claimed_until=timezone.now() - timedelta(seconds=1))
    CampaignRecipient.objects.exclude(pk__in=lost).filter(campaign_id=campaign_id).update(claimed_until=None)

    # when the batches run to the end
    while campaign_run_batch(campaign_id=campaign_id):
        pass

    # then every recipient was sent once, the given-back ones too (after the others: the hint delays, never loses)
    sent = CampaignRecipient.objects.filter(campaign_id=campaign_id, message__isnull=False)
    assert sent.count() == 6 and Message.objects.filter(campaign_recipient__campaign_id=campaign_id).count() == 6
    assert Campaign.objects.get(pk=campaign_id).state == "completed"


@pytest.mark.django_db
def test_a_batch_without_window_or_rate_that_fails_gives_its_recipients_back_at_once(staff_api, response,
                                                                                    monkeypatch):
    # given a campaign without a send window or a rate (claimed and invited in one transaction), whose first
    # batch fails after its invitations were written
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 4)], rate_per_second=None).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")

    def broken(**kwargs):
        raise RuntimeError("the worker's connection was lost")

    with monkeypatch.context() as patched:
        patched.setattr("channels_app.services.campaigns.report_recipients_reached", broken)
        with pytest.raises(RuntimeError):
            campaign_run_batch(campaign_id=campaign_id)

    # when the next batch runs, at once
    handled = campaign_run_batch(campaign_id=campaign_id)

    # then nothing of the failed batch stayed, and no lease held the recipients back: each is sent once
    assert handled == 3
    assert Message.objects.filter(campaign_recipient__campaign_id=campaign_id).count() == 3
    assert not CampaignRecipient.objects.filter(campaign_id=campaign_id, claimed_until__isnull=False).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the rows migrations wrote
def test_two_batches_of_a_campaign_without_window_or_rate_at_once_take_different_recipients(
        staff_api, response, monkeypatch):
    # given a campaign of 4 recipients sent 2 a batch, and a first batch held inside its transaction
    monkeypatch.setattr("channels_app.services.campaigns.BATCH_SIZE", 2)
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 5)], rate_per_second=None).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    from channels_app.services import campaigns

    inside, go_on = threading.Event(), threading.Event()
    invite = campaigns._invite_recipients

    def held_invite(campaign, recipients):
        if threading.current_thread() is not threading.main_thread():
            inside.set()
            assert go_on.wait(30)
        return invite(campaign, recipients)

    monkeypatch.setattr(campaigns, "_invite_recipients", held_invite)
    handled = {}

    def first_batch():
        try:
            handled["first"] = campaign_run_batch(campaign_id=campaign_id)
        finally:
            connection.close()

    first = threading.Thread(target=first_batch)
    first.start()
    assert inside.wait(30)

    # when a second batch runs while the first still holds its recipients
    handled["second"] = campaign_run_batch(campaign_id=campaign_id)
    go_on.set()
    first.join(30)

    # then each took two others (the first's rows were locked, not leased), and each recipient was sent once
    assert handled == {"first": 2, "second": 2}
    messages = Message.objects.filter(campaign_recipient__campaign_id=campaign_id)
    assert messages.count() == 4
    assert sorted(messages.values_list("campaign_recipient__row_number", flat=True)) == [1, 2, 3, 4]


@pytest.mark.django_db
def test_recipients_sharing_values_share_a_rendering_and_each_message_carries_its_own(staff_api, response):
    # given recipients whose field values alternate between two sets (a batch renders each set once)
    names = ["Ann", "Bob"]
    rows = [recipient(n, Contact={**FIELDS["Contact"], "FirstName": names[n % 2]}) for n in range(1, 7)]
    campaign_id = create(staff_api, rows, rate_per_second=None).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")

    # when the campaign runs
    while campaign_run_batch(campaign_id=campaign_id):
        pass

    # then each recipient's message reads its own values, and no two messages share a payload once stored
    for row in CampaignRecipient.objects.filter(campaign_id=campaign_id).select_related("message"):
        assert row.message.text.startswith(f"Dear {row.contact_fields['FirstName']} Smith"), row.message.text
    payloads = [m.payload for m in Message.objects.filter(campaign_recipient__campaign_id=campaign_id)]
    assert len(payloads) == 6 and len({json.dumps(p, sort_keys=True) for p in payloads}) == 2


@pytest.mark.django_db
def test_throttle_holds_the_rate(staff_api, response):
    # The throttle's promise is the ceiling: never faster than the rate. Below it a loaded machine may fall
    # short (CI read 9.0/s at load 16), so the floor only catches a throttle that stalls; bench/campaign.py
    # --rate 80 measures the 80 per second on a quiet one.
    rate, count = 10, 21
    campaign_id = create(staff_api, [recipient(n) for n in range(1, count + 1)], rate_per_second=rate).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")

    while campaign_run_batch(campaign_id=campaign_id):
        pass

    # When each POST started, which is what the throttle paces (a message's sent_at is stamped when its round
    # of answers is recorded, up to a round later).
    attempts = DeliveryAttempt.objects.filter(delivery__message__campaign_recipient__campaign_id=campaign_id)
    times = sorted(attempts.values_list("started_at", flat=True))
    measured = (len(times) - 1) / (times[-1] - times[0]).total_seconds()
    assert len(times) == count
    assert rate * 0.5 <= measured <= rate * 1.05, measured


@pytest.mark.django_db
def test_pause_resume_cancel(staff_api, response):
    campaign_id = create(staff_api, [recipient(n) for n in range(1, 4)]).json()["id"]
    url = f"/api/campaigns/{campaign_id}"

    assert staff_api.post(f"{url}/pause/").status_code == 409  # a draft cannot pause
    staff_api.post(f"{url}/start/")
    assert staff_api.post(f"{url}/pause/").json()["state"] == "paused"
    assert campaign_run_batch(campaign_id=campaign_id) == 0  # a paused campaign sends nothing
    assert staff_api.post(f"{url}/resume/").json()["state"] == "running"
    assert staff_api.post(f"{url}/cancel/").json()["state"] == "cancelled"
    assert campaign_run_batch(campaign_id=campaign_id) == 0
    assert staff_api.post(f"{url}/resume/").status_code == 409
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_start_without_recipients_and_scheduled_start(staff_api, response):
    empty = create(staff_api, []).json()["id"]
    later = create(staff_api, [recipient(1)], start_at="2099-01-01T00:00:00Z").json()["id"]

    assert staff_api.post(f"/api/campaigns/{empty}/start/").status_code == 409
    assert staff_api.post(f"/api/campaigns/{later}/start/").json()["state"] == "scheduled"


@pytest.mark.django_db
def test_a_scheduled_campaign_paused_and_resumed_waits_for_its_start_time(staff_api, response):
    later = create(staff_api, [recipient(1)], start_at="2099-01-01T00:00:00Z").json()["id"]
    staff_api.post(f"/api/campaigns/{later}/start/")

    assert staff_api.post(f"/api/campaigns/{later}/pause/").json()["state"] == "paused"
    assert staff_api.post(f"/api/campaigns/{later}/resume/").json()["state"] == "scheduled"  # was running at once
    assert campaign_run_batch(campaign_id=later) == 0


@pytest.mark.django_db
def test_the_tick_does_not_start_a_campaign_paused_since_it_was_found_due(staff_api, response, monkeypatch):
    from django.utils import timezone

    from channels_app.services import campaigns as services

    due = create(staff_api, [recipient(1)], start_at="2020-01-01T00:00:00Z").json()["id"]
    Campaign.objects.filter(pk=due).update(state="scheduled")
    kicked = []
    monkeypatch.setattr(services, "campaign_kick", kicked.append)
    # given: the tick has read the due campaigns, and a manager pauses this one before the tick writes
    real_list = list

    def read_then_pause(rows):
        found = real_list(rows)
        if found and isinstance(found[0], tuple):
            campaign_transition(campaign_id=due, action="pause")
        return found

    monkeypatch.setattr(services, "list", read_then_pause, raising=False)

    services.campaigns_tick(now=timezone.now())

    assert Campaign.objects.get(pk=due).state == "paused"  # the pause is not lost (it was overwritten)
    assert kicked == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [({"channel": "nope"}, "channel"), ({"standard_response": "NOPE"}, "standard_response"),
     ({"rate_per_second": 0}, "rate_per_second"), ({"chat_queue_key": "bad"}, "chat_queue_key"),
     ({"name": ""}, "name")],
)
def test_invalid_campaign_is_400_naming_the_field(staff_api, response, change, field):
    body = {"name": "Bills", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
            "recipients": [recipient(1)], **change}

    created = staff_api.post("/api/campaigns/", body, format="json")

    assert created.status_code == 400
    assert field in created.json()
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_results_export_and_recipient_list(staff_api, response):
    campaign_id = create(staff_api, [recipient(1), recipient(2)]).json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    campaign_run_batch(campaign_id=campaign_id)

    csv_text = staff_api.get(f"/api/campaigns/{campaign_id}/results/").content.decode()
    listed = staff_api.get(f"/api/campaigns/{campaign_id}/recipients/").json()["results"]

    lines = csv_text.strip().splitlines()
    assert lines[0] == "row,client_id,status,message_id,interaction_id,reasons,error"
    assert len(lines) == 3
    assert [r["status"] for r in listed] == ["sent", "sent"]


@pytest.mark.django_db
def test_admin_upload_report_buttons_and_progress(admin_client, response):
    from channels_app.models import Channel

    channel = Channel.objects.get(channel_id="channel-ghub-simulator")
    csv_text = "client_id,Contact.FirstName,Contact.LastName,Contact.MyFC_BillAmount,Contact.MyFC_Date," \
               "CustomProperties.CustomProp_Date,CustomProperties.CustomProp Time\n" \
               "15550000001,John,Smith,$1,May 1,May 2,3 PM\nbad,John,Smith,$1,May 1,May 2,3 PM\n"
    added = admin_client.post(reverse("admin:channels_app_campaign_add"), {
        "name": "Admin campaign", "channel": channel.pk, "standard_response": SPEC_RESPONSE["id"],
        "chat_queue_key": "", "terminate_sessions": "on", "rate_per_second": "", "start_at_0": "", "start_at_1": "",
        "audience": SimpleUploadedFile("a.csv", csv_text.encode()),
    }, follow=True)
    page = added.content.decode()
    assert "1 recipient(s) stored" in page
    campaign = Campaign.objects.get(name="Admin campaign")

    change = admin_client.get(reverse("admin:channels_app_campaign_change", args=[campaign.pk])).content.decode()
    assert 'id="campaign-start"' in change and "Download results" in change
    # the upload report stays on the campaign's page, with the refused row and why
    assert campaign.upload_report["rejected_total"] == 1
    assert 'id="upload-report"' in change and "<td>bad</td>" in change and "is not a phone number" in change
    assert "Contact.&lt;name&gt;" in change  # the help text keeps its <name>
    admin_client.post(reverse("admin:channels_app_campaign_transition", args=[campaign.pk, "start"]))
    progress = admin_client.get(reverse("admin:channels_app_campaign_progress", args=[campaign.pk])).json()
    assert progress["state"] == "running" and (progress["total"], progress["refused"]) == (2, 1)
    assert admin_client.get(reverse("admin:channels_app_campaign_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:channels_app_campaign_results", args=[campaign.pk])).status_code == 200


@pytest.mark.django_db
def test_admin_upload_to_a_completed_campaign_shows_only_the_error(admin_client, response):
    from channels_app.models import Channel

    campaign = Campaign.objects.create(
        name="Done", channel=Channel.objects.get(channel_id="channel-ghub-simulator"),
        standard_response_id=SPEC_RESPONSE["id"], state="completed",
    )

    page = admin_client.post(reverse("admin:channels_app_campaign_change", args=[campaign.pk]), {
        "audience": SimpleUploadedFile("a.csv", b"client_id\n15550000001\n"),
    }, follow=True).content.decode()

    assert "changed successfully" not in page
    assert not campaign.recipients.exists()


@pytest.mark.django_db
def test_admin_sample_audience_csv(admin_client):
    sample = admin_client.get(reverse("admin:channels_app_campaign_sample"))

    assert sample.status_code == 200 and sample.content.decode().startswith("client_id,Contact.FirstName")


@pytest.mark.django_db
def test_a_campaign_on_an_email_channel_sends_emails(staff_api, tenant):
    from channels_app.choices import MediaType, Transport
    from channels_app.models import Channel
    from channels_app.services.channels import channel_save

    # given
    channel_save(channel=Channel(channel_id="company.com", name="Support", tenant=tenant,
                                 media_type=MediaType.EMAIL, transport=Transport.SIMULATOR,
                                 business_id="support@company.com"),
                 endpoints=["1:email"], inbound_route_by_call="1:email")
    assert staff_api.post("/api/standard-responses/", {
        "id": "EMAIL1", "name": "Spring offer", "content_type": "text", "language": "en",
        "body": "Hello <$Contact.FirstName$>"}, format="json").status_code == 201
    created = staff_api.post("/api/campaigns/", {
        "name": "Offer", "channel": "company.com", "standard_response": "EMAIL1", "rate_per_second": None,
        "recipients": [{"client_id": "ann@mail.example", "Contact": {"FirstName": "Ann"}}]}, format="json")
    assert created.status_code == 201, created.json()

    # when
    staff_api.post(f"/api/campaigns/{created.json()['id']}/start/")
    campaign_run_batch(campaign_id=created.json()["id"])

    # then
    payload = Message.objects.get(campaign_recipient__campaign_id=created.json()["id"]).payload
    assert payload["type"] == "Email" and payload["subject"] == "Spring offer"
    assert payload["content"] == [{"type": "text", "text": "Hello Ann"}, {"type": "html", "text": "<p>Hello Ann</p>"}]
    assert payload["context"] == {"replyTo": {"id": "support@company.com", "name": "Support"}}
