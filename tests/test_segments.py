"""Segments (issue 27): contacts filtered by attributes, channel, country and the time of their last message;
the preview; a campaign built from a segment takes its contacts when it starts (opted-out ones refused); bad
input named; other tenants' segments and channels do not exist; the contact's last message time is kept to
the hour by the inbound path."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.models import Campaign, Contact, ContactOptOut, Segment
from channels_app.services.campaigns import campaign_run_batch, campaigns_tick
from channels_app.services.interactions import customer_message_receive
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, InteractionFactory, StandardResponseFactory, TenantFactory


@pytest.fixture
def phones(tenant):
    return ChannelFactory(channel_id="channel-phones", tenant=tenant, media_type=MediaType.WHATSAPP,
                          transport=Transport.SIMULATOR, business_id="19251112222",
                          endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat")


@pytest.fixture
def people(tenant, phones):
    """Five contacts of tenant 1 (hand-made, so every figure below is counted by hand):

    | contact | number        | country | tier   | last message | wrote on channel-phones |
    | ann     | +12125550001  | US      | gold   | 2026-05-10   | yes                     |
    | bob     | +12125550002  | US      | silver | 2026-03-01   | no                      |
    | cleo    | +33612345678  | FR      | gold   | none         | no                      |
    | dan     | +447700900123 | GB      | -      | 2026-05-20   | yes                     |
    | eve     | (no number)   | -       | gold   | none         | no                      |
    """
    def contact(name, phone, last=None, **attributes):
        made = Contact.objects.create(tenant=tenant, phone_number=phone, client_id=phone or f"{name}@example.com",
                                      first_name=name, attributes=attributes)
        if last:
            Contact.objects.filter(pk=made.pk).update(last_message_at=last)
        return made

    made = {
        "ann": contact("ann", "+12125550001", datetime(2026, 5, 10, tzinfo=UTC), tier="gold"),
        "bob": contact("bob", "+12125550002", datetime(2026, 3, 1, tzinfo=UTC), tier="silver"),
        "cleo": contact("cleo", "+33612345678", tier="gold"),
        "dan": contact("dan", "+447700900123", datetime(2026, 5, 20, tzinfo=UTC)),
        "eve": contact("eve", "", tier="gold"),
    }
    for name in ("ann", "dan"):
        InteractionFactory(channel=phones, client_id=made[name].phone_number, contact=made[name], outbound=False)
    return made


def segment(api, filter_, name="S"):
    return api.post("/api/segments/", {"name": name, "tenant": 1, "filter": filter_}, format="json")


def names(api, segment_id) -> list[str]:
    preview = api.get(f"/api/segments/{segment_id}/preview/").json()
    return sorted(row["first_name"] for row in preview["sample"])


@pytest.mark.django_db
@pytest.mark.parametrize(("filter_", "expected"), [
    ({}, ["ann", "bob", "cleo", "dan", "eve"]),
    ({"attributes": {"tier": "gold"}}, ["ann", "cleo", "eve"]),
    ({"attributes": {"tier": {"eq": "gold"}}}, ["ann", "cleo", "eve"]),
    ({"attributes": {"tier": {"ne": "gold"}}}, ["bob", "dan"]),
    ({"attributes": {"tier": {"in": ["gold", "silver"]}}}, ["ann", "bob", "cleo", "eve"]),
    ({"attributes": {"tier": {"exists": False}}}, ["dan"]),
    ({"channels": ["channel-phones"]}, ["ann", "dan"]),
    ({"countries": ["us", "GB"]}, ["ann", "bob", "dan"]),
    ({"last_message_after": "2026-05-01T00:00:00Z"}, ["ann", "dan"]),
    ({"last_message_before": "2026-05-15"}, ["ann", "bob"]),
    ({"last_message_after": "2026-04-01", "last_message_before": "2026-05-15T00:00:00+00:00"}, ["ann"]),
    ({"attributes": {"tier": "gold"}, "countries": ["US", "FR"], "channels": ["channel-phones"]}, ["ann"]),
])
def test_a_segment_holds_the_contacts_its_filter_chooses(staff_api, people, filter_, expected):
    created = segment(staff_api, filter_)

    assert created.status_code == 201, created.json()
    preview = staff_api.get(f"/api/segments/{created.json()['id']}/preview/").json()
    assert preview["count"] == len(expected)
    assert names(staff_api, created.json()["id"]) == expected


@pytest.mark.django_db
def test_the_preview_counts_all_and_shows_ten(staff_api, tenant):
    Contact.objects.bulk_create([Contact(tenant=tenant, phone_number=f"+1212555{n:04d}", client_id=f"c{n}",
                                         country="US", attributes={"tier": "gold"}) for n in range(25)])
    created = segment(staff_api, {"countries": ["US"]})

    preview = staff_api.get(f"/api/segments/{created.json()['id']}/preview/").json()

    assert preview["count"] == 25 and len(preview["sample"]) == 10
    assert set(preview["sample"][0]) == {"id", "client_id", "phone_number", "first_name", "last_name", "country",
                                         "last_message_at"}


@pytest.mark.django_db
@pytest.mark.parametrize(("filter_", "field", "words"), [
    ({"attributes": {"tier": {"like": "go%"}}}, "filter.attributes.tier", "like"),
    ({"attributes": {"tier": {"in": "gold"}}}, "filter.attributes.tier", "in takes a list"),
    ({"attributes": {"tier": ["gold"]}}, "filter.attributes.tier", "eq takes"),
    ({"channels": ["channel-away"]}, "filter.channels", "channel-away"),
    ({"channels": ["channel-nowhere"]}, "filter.channels", "channel-nowhere"),
    ({"countries": ["XX"]}, "filter.countries", "XX"),
    ({"last_message_after": "yesterday"}, "filter.last_message_after", "ISO 8601"),
    ({"last_message_after": "2026-05-02", "last_message_before": "2026-05-01"}, "filter.last_message_before",
     "later"),
    ({"tier": "gold"}, "filter.tier", "Unknown filter"),
])
def test_a_bad_filter_is_refused_naming_the_field(staff_api, people, filter_, field, words):
    away = TenantFactory(id=2, name="Away")
    ChannelFactory(channel_id="channel-away", tenant=away, media_type=MediaType.SMS, transport=Transport.SIMULATOR,
                   business_id="12345", endpoints=["2:session-chat"], inbound_route_by_call="2:session-chat")

    refused = segment(staff_api, filter_)

    assert refused.status_code == 400, refused.json()
    assert field in refused.json() and words in str(refused.json()[field]), refused.json()
    assert not Segment.objects.exists()


@pytest.mark.django_db
def test_text_that_breaks_the_text_rules_and_repeated_names_are_refused(staff_api, people):
    assert segment(staff_api, {"attributes": {"tier": "go\u0000ld"}}).status_code == 400
    assert segment(staff_api, {}, name="Twice").status_code == 201
    again = segment(staff_api, {}, name="Twice")
    assert again.status_code == 400 and "name" in again.json()
    assert staff_api.post("/api/segments/", {"name": "x" * 201, "filter": {}}, format="json").status_code == 400


@pytest.mark.django_db
def test_another_tenants_segment_does_not_exist_and_rights_are_checked(staff_api, people, tenant):
    away = TenantFactory(id=2, name="Away")
    theirs = Segment.objects.create(tenant=away, name="Theirs", filter={})
    ours = segment(staff_api, {"attributes": {"tier": "gold"}}).json()["id"]
    agent = _client_for(member("agent-only", "WhatsApp agent", tenants=[tenant]))
    marketer = _client_for(member("marketer", "Campaign manager", tenants=[tenant]))

    for path in (f"/api/segments/{theirs.pk}/", f"/api/segments/{theirs.pk}/preview/"):
        assert staff_api.get(path).status_code == 404
    assert staff_api.delete(f"/api/segments/{theirs.pk}/").status_code == 404
    assert staff_api.post("/api/segments/", {"name": "In away", "tenant": 2, "filter": {}},
                          format="json").status_code == 400
    assert [row["id"] for row in staff_api.get("/api/segments/").json()["results"]] == [ours]
    # an agent holds no segment permission; a campaign manager holds them all
    assert agent.get(f"/api/segments/{ours}/preview/").status_code == 403
    assert agent.post("/api/segments/", {"name": "A", "filter": {}}, format="json").status_code == 403
    assert marketer.get(f"/api/segments/{ours}/preview/").json()["count"] == 3
    changed = marketer.patch(f"/api/segments/{ours}/", {"filter": {"countries": ["FR"]}}, format="json")
    assert changed.status_code == 200 and changed.json()["filter"] == {"countries": ["FR"]}
    assert marketer.delete(f"/api/segments/{ours}/").status_code == 204
    assert Segment.objects.filter(pk=theirs.pk).exists()


# --- a campaign built from a segment ------------------------------------------------------------------------


@pytest.fixture
def hello(tenant):
    return StandardResponseFactory(id="SEGMENT000000001", tenant=tenant, name="Hello", content_type="text",
                                   body="Hello <$Contact.FirstName$>")


@pytest.mark.django_db
def test_a_campaign_takes_the_segments_contacts_when_it_starts(staff_api, people, phones, hello):
    gold = segment(staff_api, {"attributes": {"tier": "gold"}}).json()["id"]
    created = staff_api.post("/api/campaigns/", {"name": "Gold", "channel": "channel-phones",
                                                 "standard_response": hello.pk, "segment": gold}, format="json")
    assert created.status_code == 201, created.json()
    campaign_id = created.json()["id"]
    assert created.json()["segment"] == gold and created.json()["total"] == 0
    # given a contact that joins the segment after the campaign was made, and one that opted out
    late = Contact.objects.create(tenant=people["ann"].tenant, phone_number="+12125550009", client_id="x",
                                  first_name="fay", attributes={"tier": "gold"})
    ContactOptOut.objects.create(contact=people["cleo"], channel=phones, source="keyword")

    started = staff_api.post(f"/api/campaigns/{campaign_id}/start/")
    campaign_run_batch(campaign_id=campaign_id)

    # then its audience is the segment's contacts at the start: ann, cleo, eve (no number: refused), fay
    assert started.status_code == 200, started.json()
    recipients = {r.client_id: r for r in Campaign.objects.get(pk=campaign_id).recipients.select_related("message")}
    assert set(recipients) == {"+12125550001", "+33612345678", "eve@example.com", late.phone_number}
    assert "not a phone number" in recipients["eve@example.com"].error
    assert "opted out" in recipients["+33612345678"].error  # refused when invited, as always
    assert recipients["+12125550001"].message.text == "Hello ann"
    assert recipients[late.phone_number].message.text == "Hello fay"
    detail = staff_api.get(f"/api/campaigns/{campaign_id}/").json()
    assert (detail["total"], detail["refused"], detail["sent"]) == (4, 2, 2)
    assert detail["audience_upload"]["accepted"] == 3 and detail["audience_upload"]["rejected"] == 1
    # a segment a campaign is built from stays
    assert staff_api.delete(f"/api/segments/{gold}/").status_code == 400


@pytest.mark.django_db
def test_two_contacts_of_one_client_id_make_one_recipient(staff_api, tenant, hello):
    # given, on a channel whose client ids need not be phone numbers, a contact whose client id is another's
    # phone number (each unique among the contacts), between two others
    ChannelFactory(channel_id="channel-abc", tenant=tenant, media_type=MediaType.ABC, transport=Transport.SIMULATOR,
                   business_id="abc-business", endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat")
    for name, phone, client_id in [("hal", "+12125550077", "hal-1"), ("ida", "", "+12125550077"),
                                   ("jon", "", "jon-1"), ("kim", "+12125550078", "kim-1")]:
        Contact.objects.create(tenant=tenant, phone_number=phone, client_id=client_id, first_name=name,
                               attributes={"club": "yes"})
    club = segment(staff_api, {"attributes": {"club": "yes"}}).json()["id"]
    campaign_id = staff_api.post("/api/campaigns/", {"name": "Club", "channel": "channel-abc",
                                                     "standard_response": hello.pk, "segment": club},
                                 format="json").json()["id"]

    started = staff_api.post(f"/api/campaigns/{campaign_id}/start/")

    # then the first of the two is its recipient, the other is left out, and the counts say so
    assert started.status_code == 200, started.json()
    rows = list(Campaign.objects.get(pk=campaign_id).recipients.order_by("row_number")
                .values_list("row_number", "client_id", "error"))
    assert rows == [(1, "+12125550077", ""), (3, "jon-1", ""), (4, "+12125550078", "")]
    detail = staff_api.get(f"/api/campaigns/{campaign_id}/").json()
    assert (detail["total"], detail["refused"], detail["audience_upload"]["accepted"]) == (3, 0, 3)


@pytest.mark.django_db
def test_a_scheduled_campaign_takes_the_contacts_when_its_time_comes(staff_api, people, phones, hello):
    us = segment(staff_api, {"countries": ["US"]}).json()["id"]
    start_at = timezone.now() + timedelta(hours=1)
    campaign_id = staff_api.post("/api/campaigns/", {
        "name": "Later", "channel": "channel-phones", "standard_response": hello.pk, "segment": us,
        "start_at": start_at.isoformat()}, format="json").json()["id"]

    assert staff_api.post(f"/api/campaigns/{campaign_id}/start/").json()["state"] == "scheduled"
    assert Campaign.objects.get(pk=campaign_id).recipients.count() == 0
    campaigns_tick(now=start_at + timedelta(seconds=1))

    campaign = Campaign.objects.get(pk=campaign_id)
    assert campaign.state == "running"
    assert sorted(campaign.recipients.values_list("client_id", flat=True)) == ["+12125550001", "+12125550002"]


@pytest.mark.django_db
def test_a_segment_campaign_refuses_what_does_not_fit(staff_api, people, phones, hello, tenant):
    gold = segment(staff_api, {"attributes": {"tier": "gold"}}).json()["id"]
    nobody = segment(staff_api, {"countries": ["JP"]}, name="Nobody").json()["id"]
    away = TenantFactory(id=2, name="Away")
    theirs = Segment.objects.create(tenant=away, name="Theirs", filter={})
    body = {"name": "C", "channel": "channel-phones", "standard_response": hello.pk}

    both = staff_api.post("/api/campaigns/", {**body, "segment": gold, "recipients": [{"client_id": "+12125550001"}]},
                          format="json")
    other = staff_api.post("/api/campaigns/", {**body, "segment": theirs.pk}, format="json")
    empty = staff_api.post("/api/campaigns/", {**body, "segment": nobody}, format="json").json()["id"]
    coupon = StandardResponseFactory(id="SEGMENT000000002", tenant=tenant, name="Coupon", content_type="text",
                                     body="Your code <$CustomProperties.Code$>")
    unfillable = staff_api.post("/api/campaigns/", {**body, "standard_response": coupon.pk, "segment": gold},
                                format="json").json()["id"]

    assert both.status_code == 400 and "segment" in both.json()
    assert other.status_code == 400 and "segment" in other.json()
    assert staff_api.post(f"/api/campaigns/{empty}/start/").status_code == 409
    refused = staff_api.post(f"/api/campaigns/{unfillable}/start/")
    assert refused.status_code == 400 and "CustomProperties.Code" in str(refused.json())
    assert staff_api.post(f"/api/campaigns/{empty}/recipients/", {"recipients": [{"client_id": "+12125550001"}]},
                          format="json").status_code == 400
    assert Campaign.objects.get(pk=unfillable).state == "draft"


# --- what the contacts keep for segments --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_inbound_path_keeps_the_country_and_the_last_message_to_the_hour(phones):
    base = timezone.now() - timedelta(hours=5)

    customer_message_receive(channel=phones, client_id="+33612345678", text="one", origin_time=base)
    contact = Contact.objects.get(phone_number="+33612345678")
    assert contact.country == "FR" and contact.last_message_at == base

    # a message within the hour writes nothing to the contact; one more than an hour later moves it
    customer_message_receive(channel=phones, client_id="+33612345678", text="two",
                             origin_time=base + timedelta(minutes=50))
    assert Contact.objects.get(pk=contact.pk).last_message_at == base
    customer_message_receive(channel=phones, client_id="+33612345678", text="three",
                             origin_time=base + timedelta(hours=2))
    assert Contact.objects.get(pk=contact.pk).last_message_at == base + timedelta(hours=2)
    # an older message (a late origin time) never moves it back
    customer_message_receive(channel=phones, client_id="+33612345678", text="late", origin_time=base)
    assert Contact.objects.get(pk=contact.pk).last_message_at == base + timedelta(hours=2)


@pytest.mark.django_db
def test_segment_changes_are_audited(staff_api, people):
    from channels_app.models import AuditEntry

    created = segment(staff_api, {"countries": ["US"]}).json()["id"]
    staff_api.patch(f"/api/segments/{created}/", {"filter": {"countries": ["FR"]}}, format="json")

    entries = AuditEntry.objects.filter(object_type="segment", object_id=str(created)).order_by("at")
    assert [entry.action for entry in entries] == ["create", "update"]
    assert entries[1].changes["filter"] == [{"countries": ["US"]}, {"countries": ["FR"]}]
    assert entries[1].username == "operator" and entries[1].tenant_id == 1
