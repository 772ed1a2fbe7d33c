"""Send windows (issue 27): the window's rules in a zone (across midnight, the days the clock changes), the
recipient's zone from its three sources, bad input named, and a campaign whose recipients outside their
window wait with next_window_at while the others are sent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.errors import InvalidFields
from channels_app.models import Campaign, CampaignRecipient, Contact
from channels_app.send_windows import is_open, next_opening, send_window_parse
from channels_app.services.campaigns import _complete_if_done, campaign_run_batch, campaign_transition
from channels_app.services.send_windows import recipient_zones
from tests.factories import ChannelFactory, StandardResponseFactory


def window(**overrides):
    return send_window_parse({"from": "09:00", "to": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                              "timezone": "recipient", **overrides})


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- the rules ------------------------------------------------------------------------------------------------


def test_a_window_across_midnight_belongs_to_the_day_it_starts():
    night = window(**{"from": "22:00", "to": "06:00", "days": ["fri"]})
    zone = "Europe/Amsterdam"  # UTC+1 in January

    # Friday 2026-01-09 23:00 and Saturday 05:59 local are inside; Saturday 06:00 is not (`to` is outside)
    assert is_open(night, zone, utc(2026, 1, 9, 22, 0))
    assert is_open(night, zone, utc(2026, 1, 10, 4, 59))
    assert not is_open(night, zone, utc(2026, 1, 10, 5, 0))
    # the morning after a Thursday (Friday 01:00) is not: Thursday is not a day of the window
    assert not is_open(night, zone, utc(2026, 1, 9, 0, 0))
    # Friday 21:00 local waits for 22:00 the same evening; Saturday 06:00 for next Friday 22:00
    assert next_opening(night, zone, utc(2026, 1, 9, 20, 0)) == utc(2026, 1, 9, 21, 0)
    assert next_opening(night, zone, utc(2026, 1, 10, 5, 0)) == utc(2026, 1, 16, 21, 0)
    # inside: now
    assert next_opening(night, zone, utc(2026, 1, 9, 22, 0)) == utc(2026, 1, 9, 22, 0)


def test_on_the_day_the_clock_goes_forward_the_window_opens_at_local_time():
    sunday = window(days=["sun"])
    zone = "America/New_York"  # 2026-03-08: 02:00 EST becomes 03:00 EDT

    # 09:00 that Sunday is 13:00 UTC (EDT), not 14:00 (as it was the week before, in EST)
    assert next_opening(sunday, zone, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 13, 0)
    assert next_opening(sunday, zone, utc(2026, 3, 1, 5, 0)) == utc(2026, 3, 1, 14, 0)
    assert is_open(sunday, zone, utc(2026, 3, 8, 13, 0)) and not is_open(sunday, zone, utc(2026, 3, 8, 12, 59))
    # a `from` the clock skips (02:30) opens the window at the jump: 03:00 EDT = 07:00 UTC
    skipped = window(**{"from": "02:30", "to": "04:00", "days": ["sun"]})
    assert next_opening(skipped, zone, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 7, 0)
    assert is_open(skipped, zone, utc(2026, 3, 8, 7, 10))


def test_on_the_day_the_clock_goes_back_the_window_opens_the_first_time():
    sunday = window(**{"from": "01:30", "to": "03:00", "days": ["sun"]})
    zone = "America/New_York"  # 2026-11-01: 02:00 EDT becomes 01:00 EST, 01:30 comes twice

    assert next_opening(sunday, zone, utc(2026, 11, 1, 4, 0)) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert is_open(sunday, zone, utc(2026, 11, 1, 6, 45))  # 01:45 EST, the second time round


@pytest.mark.parametrize(("given", "field"), [
    ({"from": "09:00", "to": "09:00"}, "send_window.to"),
    ({"from": "9am", "to": "17:00"}, "send_window.from"),
    ({"from": "09:00", "to": "24:00"}, "send_window.to"),
    ({"from": "09:00", "to": "17:00", "timezone": "Mars/Olympus_Mons"}, "send_window.timezone"),
    ({"from": "09:00", "to": "17:00", "timezone": "../../etc/passwd"}, "send_window.timezone"),
    ({"from": "09:00", "to": "17:00", "days": ["mon", "someday"]}, "send_window.days"),
    ({"from": "09:00", "to": "17:00", "days": []}, "send_window.days"),
    ({"from": "09:00", "to": "17:00", "hours": 3}, "send_window.hours"),
])
def test_a_bad_window_is_refused_naming_the_field(given, field):
    with pytest.raises(InvalidFields) as refused:
        send_window_parse(given)
    assert field in refused.value.errors


# --- a recipient's zone ---------------------------------------------------------------------------------------


@pytest.fixture
def whatsapp(tenant):
    tenant.timezone = "Asia/Kolkata"
    tenant.save()
    return ChannelFactory(channel_id="channel-window", tenant=tenant, media_type=MediaType.WHATSAPP,
                          transport=Transport.SIMULATOR, business_id="19251112222",
                          endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat")


def campaign_on(channel, rows, send_window=None) -> Campaign:
    from channels_app.services.campaigns import campaign_create

    response = StandardResponseFactory(id="WINDOW0000000001", tenant=channel.tenant, name="Hi", content_type="text",
                                       body="Hello")
    campaign, _ = campaign_create(name="Windowed", channel=channel, standard_response=response, rows=rows,
                                  send_window=send_window)
    return campaign


@pytest.mark.django_db
def test_the_zone_of_a_recipient_comes_from_its_contact_its_number_or_its_tenant(whatsapp):
    Contact.objects.create(tenant=whatsapp.tenant, phone_number="+33612345678", attributes={"TimeZone": "Europe/Paris"})
    campaign = campaign_on(whatsapp, [
        {"client_id": "+12125551234", "Contact": {"timezone": "Asia/Tokyo"}},  # the audience row's attribute
        {"client_id": "+33612345678"},  # the stored contact's attribute (any case)
        {"client_id": "+14155551234"},  # the number's zone (a San Francisco area code)
        {"client_id": "+6141234567"},  # a number phonenumbers cannot place: the tenant's zone
        {"client_id": "+12125550000", "Contact": {"timezone": "Nowhere/Else"}},  # not a zone: the number's
    ], send_window={"from": "09:00", "to": "17:00"})

    recipients = list(campaign.recipients.order_by("row_number"))

    assert recipient_zones(campaign=campaign, recipients=recipients) == [
        "Asia/Tokyo", "Europe/Paris", "America/Los_Angeles", "Asia/Kolkata", "America/New_York"]


@pytest.mark.django_db
def test_a_window_in_a_named_zone_is_read_there_for_everyone(whatsapp):
    campaign = campaign_on(whatsapp, [{"client_id": "+12125551234", "Contact": {"timezone": "Asia/Tokyo"}}],
                           send_window={"from": "09:00", "to": "17:00", "timezone": "Europe/Lisbon"})

    assert recipient_zones(campaign=campaign, recipients=list(campaign.recipients.all())) == ["Europe/Lisbon"]


# --- a campaign ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_recipients_outside_their_window_wait_and_do_not_hold_up_the_others(whatsapp, staff_api):
    # given a window of two hours around now in UTC, a recipient in UTC and one twelve hours ahead of it
    now = timezone.now()
    around_now = {"from": (now - timedelta(hours=1)).strftime("%H:%M"),
                  "to": (now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "recipient"}
    campaign = campaign_on(whatsapp, [
        {"client_id": "+12125551234", "Contact": {"timezone": "Etc/GMT-12"}},
        {"client_id": "+12125551235", "Contact": {"timezone": "UTC"}},
    ], send_window=around_now)
    campaign_transition(campaign_id=campaign.pk, action="start")

    # when a batch runs
    campaign_run_batch(campaign_id=campaign.pk)

    # then the one inside is sent, the other waits, pending, until its window opens
    ahead, inside = campaign.recipients.order_by("row_number")
    inside.refresh_from_db()
    ahead.refresh_from_db()
    assert inside.message_id is not None and inside.next_window_at is None
    assert ahead.message_id is None and ahead.status == "pending" and ahead.next_window_at > now
    local_opening = ahead.next_window_at.astimezone(timezone.get_fixed_timezone(12 * 60))
    assert local_opening.strftime("%H:%M") == around_now["from"]
    detail = staff_api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert (detail["pending"], detail["waiting"], detail["state"]) == (1, 1, "running")
    assert detail["send_window"]["from"] == around_now["from"]
    # and a batch before its time reads nothing: the campaign goes on waiting, not completed
    assert campaign_run_batch(campaign_id=campaign.pk) == 0
    assert _complete_if_done(campaign.pk) == "to invite"

    # when its window opens (its time has come, and it is now inside it)
    CampaignRecipient.objects.filter(pk=ahead.pk).update(
        next_window_at=now - timedelta(minutes=1), contact_fields={"timezone": "UTC"})
    assert campaign_run_batch(campaign_id=campaign.pk) == 1

    # then it is sent too
    ahead.refresh_from_db()
    assert ahead.message_id is not None
    assert staff_api.get(f"/api/campaigns/{campaign.pk}/").json()["waiting"] == 0


@pytest.mark.django_db
def test_a_batch_claims_again_for_the_recipients_its_window_held_back(whatsapp, monkeypatch):
    from channels_app.services import campaigns

    # given batches of two, and an audience that alternates: outside its window, inside, outside, inside
    monkeypatch.setattr(campaigns, "BATCH_SIZE", 2)
    now = timezone.now()
    around_now = {"from": (now - timedelta(hours=1)).strftime("%H:%M"),
                  "to": (now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "recipient"}
    campaign = campaign_on(whatsapp, [
        {"client_id": f"+1212555123{n}", "Contact": {"timezone": "Etc/GMT-12" if n % 2 == 0 else "UTC"}}
        for n in range(4)], send_window=around_now)
    campaign_transition(campaign_id=campaign.pk, action="start")

    # when one batch runs
    campaign_run_batch(campaign_id=campaign.pk)

    # then it sent two (both inside), not one: the held-back ones left the batch and it claimed again
    sent = campaign.recipients.filter(message__isnull=False).order_by("row_number")
    assert [r.client_id for r in sent] == ["+12125551231", "+12125551233"]
    assert campaign.recipients.filter(next_window_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_the_api_refuses_a_bad_window_naming_the_field(whatsapp, staff_api):
    StandardResponseFactory(id="WINDOW0000000002", tenant=whatsapp.tenant, name="Hi", content_type="text", body="Hi")
    body = {"name": "W", "channel": "channel-window", "standard_response": "WINDOW0000000002",
            "recipients": [{"client_id": "+12125551234"}]}

    equal = staff_api.post("/api/campaigns/", {**body, "send_window": {"from": "09:00", "to": "09:00"}},
                           format="json")
    unknown = staff_api.post("/api/campaigns/", {**body, "send_window": {"from": "09:00", "to": "17:00",
                                                                         "timezone": "Europe/Atlantis"}},
                             format="json")
    good = staff_api.post("/api/campaigns/", {**body, "send_window": {"from": "09:00", "to": "17:00",
                                                                      "days": ["sat", "sun"],
                                                                      "timezone": "Europe/Paris"}}, format="json")

    assert equal.status_code == 400 and "send_window.to" in equal.json(), equal.json()
    assert unknown.status_code == 400 and "send_window.timezone" in unknown.json(), unknown.json()
    assert good.status_code == 201, good.json()
    assert good.json()["send_window"] == {"from": "09:00", "to": "17:00", "days": ["sat", "sun"],
                                          "timezone": "Europe/Paris"}
    assert Campaign.objects.count() == 1


@pytest.mark.django_db
def test_a_tenant_zone_must_be_a_known_name(staff_api, tenant):
    refused = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"timezone": "Europe/Atlantis"}, format="json")
    kept = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"timezone": "America/Chicago"}, format="json")

    assert refused.status_code == 400 and "timezone" in refused.json()
    assert kept.status_code == 200 and kept.json()["timezone"] == "America/Chicago"


def test_the_admin_form_takes_the_window_from_its_parts_and_names_a_fault():
    from channels_app.admin.forms import SendWindowField

    field = SendWindowField(required=False)
    assert field.clean(["", "", ["mon"], "recipient"]) is None  # no times: any time
    assert field.clean(["09:00", "17:00", ["mon", "fri"], "Europe/Paris"]) == {
        "from": "09:00", "to": "17:00", "days": ["mon", "fri"], "timezone": "Europe/Paris"}
    assert field.clean(["22:00", "06:00", [], ""]) == {"from": "22:00", "to": "06:00", "days": [],
                                                        "timezone": "recipient"}
    with pytest.raises(InvalidFields) as error:  # what the form's clean_send_window hands to the API's rules
        send_window_parse(field.clean(["22:00", "06:00", [], ""]))
    assert "send_window.days" in error.value.errors


# --- decided when the audience is stored (issue 27: the waiting half costs the sending half nothing) -----------


def around_now(zone="recipient") -> dict:
    now = timezone.now()
    return {"from": (now - timedelta(hours=1)).strftime("%H:%M"), "to": (now + timedelta(hours=1)).strftime("%H:%M"),
            "timezone": zone}


def alternating(count: int) -> list[dict]:
    """Rows outside a window around now in UTC (twelve hours ahead), inside, outside, inside..."""
    return [{"client_id": f"+1212555{n:04d}", "Contact": {"timezone": "Etc/GMT-12" if n % 2 == 0 else "UTC"}}
            for n in range(count)]


@pytest.mark.django_db
def test_recipients_outside_their_window_are_stored_waiting_and_never_enter_a_batch(whatsapp, monkeypatch):
    from channels_app.services import campaigns

    # given batches of two that never claim again, and an audience alternating outside and inside its window
    monkeypatch.setattr(campaigns, "BATCH_SIZE", 2)
    monkeypatch.setattr(campaigns, "WINDOW_REFILL_ROUNDS", 0)
    send_window = around_now()
    campaign = campaign_on(whatsapp, alternating(8), send_window=send_window)

    # then those outside are stored with the opening of their window (the window's `from`, twelve hours ahead)
    stored = list(campaign.recipients.order_by("row_number"))
    assert [r.next_window_at is not None for r in stored] == [True, False] * 4
    opening = stored[0].next_window_at
    assert opening > timezone.now()
    assert opening.astimezone(timezone.get_fixed_timezone(12 * 60)).strftime("%H:%M") == send_window["from"]

    # when the campaign starts and batches run until none is left
    campaign_transition(campaign_id=campaign.pk, action="start")
    handled = [campaign_run_batch(campaign_id=campaign.pk) for _ in range(3)]

    # then each batch claimed two and sent both: no recipient outside its window was ever claimed
    assert handled == [2, 2, 0]
    sent = campaign.recipients.filter(message__isnull=False).order_by("row_number")
    assert [r.client_id for r in sent] == ["+12125550001", "+12125550003", "+12125550005", "+12125550007"]
    assert _complete_if_done(campaign.pk) == "to invite"

    # when their window opens (their time has come, and they are inside it now)
    CampaignRecipient.objects.filter(campaign=campaign, message__isnull=True).update(
        next_window_at=timezone.now() - timedelta(minutes=1), contact_fields={"timezone": "UTC"})
    handled = [campaign_run_batch(campaign_id=campaign.pk) for _ in range(3)]

    # then they are sent too
    assert handled == [2, 2, 0]
    assert not campaign.recipients.filter(message__isnull=True).exists()


@pytest.mark.django_db
def test_a_csv_audience_is_stored_waiting_by_the_same_rule(whatsapp):
    import io

    from channels_app.services.campaigns import audience_csv_open, campaign_add_recipients

    # given a draft with a window, the stored contact of one number in a zone twelve hours ahead
    Contact.objects.create(tenant=whatsapp.tenant, phone_number="+12125550002", attributes={"timezone": "Etc/GMT-12"})
    campaign = campaign_on(whatsapp, [], send_window=around_now())
    audience = audience_csv_open(binary=io.BytesIO(
        b"client_id,Contact.timezone\n+12125550000,Etc/GMT-12\n+12125550001,UTC\n+12125550002,\n"
        b"+12125550001,Etc/GMT-12\n"))

    # when the CSV is uploaded
    report = campaign_add_recipients(campaign=campaign, audience=audience)

    # then the row's zone and the stored contact's both put theirs outside; the repeat is refused, not waiting
    assert report.accepted == 3
    waiting = dict(campaign.recipients.order_by("row_number").values_list("row_number", "next_window_at"))
    assert [waiting[row] is not None for row in (1, 2, 3, 4)] == [True, False, True, False]


@pytest.mark.django_db
def test_a_changed_window_decides_again_who_waits(whatsapp):
    from channels_app.services.campaigns import campaign_update

    campaign = campaign_on(whatsapp, alternating(4), send_window=around_now())

    def update(send_window):
        campaign_update(campaign=campaign, name=campaign.name, channel=whatsapp,
                        standard_response=campaign.standard_response, rate_per_second=None, start_at=None,
                        terminate_sessions=True, chat_queue_key="", send_window=send_window)
        return list(campaign.recipients.order_by("row_number").values_list("next_window_at", flat=True))

    # a window in a zone where it is open now: nobody waits; where it is closed: everybody, until it opens
    assert update(around_now("UTC")) == [None] * 4
    closed = update(around_now("Etc/GMT-12"))
    assert len(set(closed)) == 1 and closed[0] > timezone.now()
    # in each recipient's zone again: decided by the batches as they claim them; no window: nobody waits
    assert update(around_now()) == [None] * 4
    update(around_now("Etc/GMT-12"))
    assert update(None) == [None] * 4

    # and, without a window, every recipient is sent
    campaign_transition(campaign_id=campaign.pk, action="start")
    campaign_run_batch(campaign_id=campaign.pk)
    assert not campaign.recipients.filter(message__isnull=True).exists()


@pytest.mark.django_db
def test_a_segment_in_a_closed_window_of_a_named_zone_is_written_waiting(whatsapp):
    from channels_app.models import Segment
    from channels_app.services.campaigns import campaign_create
    from channels_app.services.segments import segment_save

    # given two contacts and a campaign from their segment whose window, in one zone, is closed now
    for n in range(2):
        Contact.objects.create(tenant=whatsapp.tenant, phone_number=f"+1212555000{n}", attributes={"tier": "gold"})
    Contact.objects.create(tenant=whatsapp.tenant, client_id="no-number", attributes={"tier": "gold"})
    gold = segment_save(segment=Segment(tenant=whatsapp.tenant, name="Gold"),
                        filter_value={"attributes": {"tier": "gold"}})
    response = StandardResponseFactory(id="WINDOW0000000003", tenant=whatsapp.tenant, name="Hi", content_type="text",
                                       body="Hello")
    campaign, _ = campaign_create(name="Gold", channel=whatsapp, standard_response=response, segment=gold,
                                  send_window=around_now("Etc/GMT-12"))

    # when it starts
    campaign_transition(campaign_id=campaign.pk, action="start")

    # then its recipients are written waiting (the refused one not), and no batch claims them
    rows = list(campaign.recipients.order_by("row_number").values_list("error", "next_window_at"))
    assert [(bool(error), at is not None) for error, at in rows] == [(False, True), (False, True), (True, False)]
    assert rows[0][1] > timezone.now()
    assert campaign_run_batch(campaign_id=campaign.pk) == 0


@pytest.mark.django_db
def test_a_segment_in_each_recipients_zone_waits_by_its_numbers_first_digits(whatsapp):
    from channels_app.models import Segment
    from channels_app.services.campaigns import campaign_create
    from channels_app.services.segments import segment_save

    # given a window around now in UTC, in each recipient's zone, and a tenant's zone outside it
    whatsapp.tenant.timezone = "Etc/GMT-12"
    whatsapp.tenant.save()
    send_window = around_now()
    for phone, attributes in [
        ("+64211234567", {}),  # New Zealand (+642...: its zones, the tenant's: all outside the window)
        ("+64211234568", {"TimeZone": "UTC"}),  # its own zone: decided by the batch that claims it
        ("+442079460000", {}),  # London (+442...: the window is open there): decided by the batch
    ]:
        Contact.objects.create(tenant=whatsapp.tenant, phone_number=phone, attributes={"tier": "gold", **attributes})
    gold = segment_save(segment=Segment(tenant=whatsapp.tenant, name="Gold"),
                        filter_value={"attributes": {"tier": "gold"}})
    response = StandardResponseFactory(id="WINDOW0000000004", tenant=whatsapp.tenant, name="Hi", content_type="text",
                                       body="Hello")
    campaign, _ = campaign_create(name="Gold", channel=whatsapp, standard_response=response, segment=gold,
                                  send_window=send_window)

    # when it starts and a batch runs
    campaign_transition(campaign_id=campaign.pk, action="start")
    waiting = dict(campaign.recipients.values_list("client_id", "next_window_at"))
    handled = campaign_run_batch(campaign_id=campaign.pk)

    # then the New Zealand number was written waiting, no later than its window opens in Auckland; the batch
    # claimed only the two others and sent them
    now = timezone.now()
    auckland = next_opening(send_window_parse(send_window), "Pacific/Auckland", now)
    assert now < waiting["+64211234567"] <= auckland
    assert waiting["+64211234568"] is None and waiting["+442079460000"] is None
    assert handled == 2
    assert set(campaign.recipients.filter(message__isnull=False).values_list("client_id", flat=True)) == {
        "+64211234568", "+442079460000"}
