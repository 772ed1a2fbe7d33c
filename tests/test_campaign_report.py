"""The campaign report and its drill-down (API.md "Reports"), and campaign variants (API.md "Audiences, send
windows and variants"): every figure against a small hand-counted fixture, per variant; the variants' split
and its reproducibility; bad input."""

import csv
import io
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from channels_app.models import (
    CampaignRecipient,
    CampaignReportDelta,
    ContactOptOut,
    Delivery,
    Message,
)
from channels_app.services.campaign_reports import campaign_reports_fold
from channels_app.services.campaigns import campaign_run_batch, campaign_transition
from channels_app.services.deliveries import delivery_redeliver
from channels_app.services.interactions import customer_message_receive
from channels_app.services.receipts import receipt_apply
from channels_app.services.variants import variant_bucket, variant_for
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, StandardResponseFactory, TenantFactory
from tests.test_campaigns import simulator  # noqa: F401

FIGURES = ("total", "refused", "sent", "delivered", "read", "replied", "opted_out", "failed")


def phone(n: int) -> str:
    return f"1555000{n:04d}"


@pytest.fixture
def responses(simulator):  # noqa: F811
    return [StandardResponseFactory(tenant=simulator.tenant, id=f"VARIANT{letter}", name=f"Variant {letter}",
                                    body=f"Hello from {letter}, <$Contact.FirstName$>") for letter in "AB"]


@pytest.fixture
def lead(tenant):
    """A campaign manager who may read reports (the permission is granted here, not by a default group)."""
    user = member("lead", "Campaign manager", tenants=[tenant])
    user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    return _client_for(user)


def create(api, recipients, **fields):
    body = {"name": "Spring sale", "channel": "channel-ghub-simulator", "recipients": recipients, **fields}
    return api.post("/api/campaigns/", body, format="json")


def audience(numbers) -> list[dict]:
    return [{"client_id": phone(n), "Contact": {"FirstName": f"Ann{n}"}} for n in numbers]


def reply(channel, n: int, text: str, key: str) -> Message:
    message, _ = customer_message_receive(channel=channel, client_id=phone(n), text=text, channel_message_id=key)
    return message


def run(campaign_id: int) -> None:
    campaign_transition(campaign_id=campaign_id, action="start")
    while campaign_run_batch(campaign_id=campaign_id):
        pass


def recipient(campaign_id: int, n: int) -> CampaignRecipient:
    """Row `n` of the campaign's audience (its client id is phone(n), but for the fixture's row 7)."""
    return CampaignRecipient.objects.select_related("message").get(campaign_id=campaign_id, row_number=n)


# The hand-counted fixture: what happens to each recipient (rows 1 to 9), and the figures it counts in.
STORIES = {
    1: {"sent", "delivered", "read", "replied"},  # read, then wrote back an hour later
    2: {"sent", "delivered"},  # delivered; wrote back, but 73 hours after the campaign reached them
    3: {"sent", "delivered", "read", "opted_out"},  # read, then sent STOP (an opt-out, not a reply)
    4: {"failed"},  # a Failed receipt: 350
    5: {"failed"},  # a Failed receipt: 530
    6: {"sent"},  # sent; opted out (by the API) 80 hours after the campaign reached them: not counted
    7: {"refused"},  # refused at upload: not a phone number
    8: {"sent", "delivered", "replied"},  # delivered, wrote back twice: one reply
    9: {"refused"},  # had opted out before: refused when the campaign reached them
}


@pytest.mark.django_db
def test_every_figure_of_the_report_and_of_each_variant_against_a_hand_counted_fixture(
        staff_api, lead, simulator, responses):  # noqa: F811
    # given a campaign of nine rows split between two variants, row 7 not a phone number, row 9 opted out
    rows = audience(range(1, 10))
    rows[6]["client_id"] = "not-a-phone"
    created = create(staff_api, rows, variants=[{"standard_response": "VARIANTA", "share": 50},
                                                {"standard_response": "VARIANTB", "share": 50}])
    assert created.status_code == 201, created.json()
    campaign_id = created.json()["id"]
    reply(simulator, 9, "hello", "early")  # row 9 is a contact of the channel ...
    ContactOptOut.objects.create(contact=Message.objects.get(channel_message_id="early").interaction.contact,
                                 channel=simulator, source="api")  # ... who opted out before
    run(campaign_id)
    campaign_reports_fold()  # (the replies scan starts after the customer message of row 9)
    long_ago = timezone.now() - timedelta(hours=73)
    CampaignRecipient.objects.filter(campaign_id=campaign_id, client_id__in=[phone(2)]).update(reached_at=long_ago)
    CampaignRecipient.objects.filter(campaign_id=campaign_id, client_id=phone(6)).update(
        reached_at=timezone.now() - timedelta(hours=80))

    # when the receipts, replies and opt-outs of the stories arrive, and the fold runs
    def receipt(n, status, reasons=None):
        message = recipient(campaign_id, n).message
        receipt_apply(channel=simulator, external_id=message.external_id, status=status, reasons=reasons)

    for n in (1, 2, 3, 8):
        receipt(n, "Delivered")
    for n in (1, 3):
        receipt(n, "Read")
    receipt(4, "Failed", [{"code": 350}])
    receipt(5, "Failed", [{"code": 530}])
    reply(simulator, 1, "Yes please", "r1")
    reply(simulator, 2, "Too late?", "r2")
    reply(simulator, 3, "stop", "r3")
    reply(simulator, 8, "Interested", "r8a")
    reply(simulator, 8, "Call me", "r8b")
    ContactOptOut.objects.create(contact=recipient(campaign_id, 6).message.interaction.contact, channel=simulator,
                                 source="api")
    folded = campaign_reports_fold()
    report = lead.get(f"/api/reports/campaigns/{campaign_id}/")

    # then every figure is the hand count, for the campaign and for each variant
    assert report.status_code == 200, report.json()
    body = report.json()
    expected = {name: sum(name in story for story in STORIES.values()) for name in FIGURES}
    expected["total"] = len(STORIES)
    assert expected == {"total": 9, "refused": 2, "sent": 5, "delivered": 4, "read": 2, "replied": 2,
                        "opted_out": 1, "failed": 2}
    assert {name: body[name] for name in FIGURES} == expected
    assert body["failed_by_reason"] == {"350 Message not allowed.": 1, "530 Invalid destination.": 1}
    assert (folded.replied, folded.opted_out) == (2, 1)
    variant_of = {n: recipient(campaign_id, n).variant for n in STORIES}
    assert variant_of[7] is None and {variant_of[n] for n in STORIES if n != 7} <= {0, 1}
    assert [(v["variant"], v["label"], v["standard_response"], v["share"]) for v in body["variants"]] == [
        (0, "A", "VARIANTA", 50), (1, "B", "VARIANTB", 50)]
    for variant in body["variants"]:
        mine = [n for n in STORIES if variant_of[n] == variant["variant"]]
        assert variant["total"] == len(mine)
        for name in FIGURES[1:]:
            assert variant[name] == sum(name in STORIES[n] for n in mine), (variant["label"], name)
    assert sum(v["failed"] for v in body["variants"]) == 2

    # and each figure's drill-down lists the recipients behind it
    def behind(**query):
        answer = lead.get(f"/api/campaigns/{campaign_id}/recipients/", query)
        assert answer.status_code == 200, answer.json()
        return sorted(int(row["row_number"]) for row in answer.json()["results"])

    for name in FIGURES[1:]:
        assert behind(outcome=name) == [n for n, story in STORIES.items() if name in story], name
    assert behind(outcome="total") == list(range(1, 10))
    assert behind(outcome="failed", reason="530 Invalid destination.") == [5]
    assert behind(reason="350 Message not allowed.") == [4]
    for variant in body["variants"]:
        assert behind(outcome="delivered", variant=variant["label"]) == [
            n for n in STORIES if variant_of[n] == variant["variant"] and "delivered" in STORIES[n]]
        assert len(behind(variant=str(variant["variant"]))) == variant["total"]


@pytest.mark.django_db
def test_each_recipient_is_sent_its_variants_response_and_keeps_its_variant(staff_api, simulator, responses):  # noqa: F811
    # given a campaign of 40 recipients with variants 30/70
    created = create(staff_api, audience(range(1, 41)), variants=[{"standard_response": "VARIANTA", "share": 30},
                                                                  {"standard_response": "VARIANTB", "share": 70}])
    campaign_id = created.json()["id"]
    assert created.json()["variants"] == [{"standard_response": "VARIANTA", "share": 30},
                                          {"standard_response": "VARIANTB", "share": 70}]
    assert created.json()["standard_response"] == "VARIANTA"  # the first variant's, when none is given

    # when it runs
    run(campaign_id)

    # then each recipient got the variant its ids give, and that variant's response rendered for it
    rows = CampaignRecipient.objects.filter(campaign_id=campaign_id).select_related("message")
    assert rows.count() == 40
    for row in rows:
        assert row.variant == variant_for(campaign_id=campaign_id, recipient_id=row.pk, shares=[30, 70])
        n = int(row.client_id[-4:])
        assert row.message.text == f"Hello from {'AB'[row.variant]}, Ann{n}"
    assert set(rows.values_list("variant", flat=True)) == {0, 1}


def test_shares_of_33_33_34_split_10000_recipients_within_2_percent():
    counts = Counter(variant_for(campaign_id=7, recipient_id=pk, shares=[33, 33, 34]) for pk in range(1, 10_001))
    for position, share in enumerate([33, 33, 34]):
        assert abs(counts[position] / 10_000 - share / 100) < 0.02, counts


def test_a_recipients_variant_is_the_same_in_another_process():
    # (Python's own hash of a text changes from process to process: the variant must not)
    pairs = [(campaign, recipient) for campaign in (1, 42, 90210) for recipient in range(1, 200, 7)]
    here = [variant_bucket(campaign_id=c, recipient_id=r) for c, r in pairs]
    code = ("import django; django.setup(); from channels_app.services.variants import variant_bucket; "
            f"print([variant_bucket(campaign_id=c, recipient_id=r) for c, r in {pairs!r}])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345", "DJANGO_SETTINGS_MODULE": "project.settings"})
    assert there.stdout.strip() == repr(here)


@pytest.mark.django_db
@pytest.mark.parametrize("variants, words", [
    ([{"standard_response": "VARIANTA", "share": 50}], "2 to 5 variants"),
    ([{"standard_response": "VARIANTA", "share": 20}] * 6, "2 to 5 variants"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "VARIANTB", "share": 49}],
     "add up to 99"),
    ([{"standard_response": "VARIANTA", "share": 100}, {"standard_response": "VARIANTB", "share": 0}],
     "from 1 to 99"),
    ([{"standard_response": "VARIANTA", "share": "50"}, {"standard_response": "VARIANTB", "share": 50}],
     "whole number"),
    ([{"standard_response": "VARIANTA", "share": 50.5}, {"standard_response": "VARIANTB", "share": 49.5}],
     "whole number"),
    ([{"standard_response": "VARIANTA", "share": True}, {"standard_response": "VARIANTB", "share": 99}],
     "whole number"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "OTHERTENANT", "share": 50}],
     "no standard response 'OTHERTENANT'"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "BUTTONS", "share": 50}],
     "cannot send"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "FIELDS", "share": 50}],
     "no row can fill"),
    ("A and B", "must be a list"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "VARIANTB", "share": 50, "x": 1}],
     "standard_response and share only"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": ["VARIANTB"], "share": 50}],
     "must be a standard response's id"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "VARIANTB", "share": 10**30}],
     "from 1 to 99"),
    ([{"standard_response": "VARIANTA", "share": 50}] * 100_000, "2 to 5 variants"),
    ([{"standard_response": "VARIANTA", "share": 50}, {"standard_response": "VARIANT\x00B", "share": 50}],
     "which is not accepted"),
])
def test_bad_variants_are_refused_naming_the_field_and_nothing_is_stored(staff_api, simulator, responses,  # noqa: F811
                                                                         variants, words):
    other = TenantFactory(id=2, name="Other")
    StandardResponseFactory(tenant=other, id="OTHERTENANT")
    StandardResponseFactory(tenant=simulator.tenant, id="FIELDS", body="<$Contact.LastName$>")
    sms = ChannelFactory(tenant=simulator.tenant, channel_id="sms-1", media_type="sms")
    StandardResponseFactory(tenant=simulator.tenant, id="BUTTONS", content_type="reply_buttons", body="Pick",
                            structured={"buttons": [{"id": "1", "title": "Yes"}]})
    channel = sms.channel_id if words == "cannot send" else "channel-ghub-simulator"

    answer = create(staff_api, audience([1, 2]), variants=variants, channel=channel)

    assert answer.status_code == 400, answer.json()
    assert list(answer.json()) == ["variants"] and words in answer.json()["variants"][0], answer.json()
    assert not CampaignRecipient.objects.exists()
    from channels_app.models import Campaign

    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_the_report_is_closed_to_others(staff_api, lead, simulator, responses, tenant):  # noqa: F811
    campaign_id = create(staff_api, audience([1]), standard_response="VARIANTA").json()["id"]
    other = TenantFactory(id=2, name="Other")
    outsider = member("outsider", "Campaign manager", tenants=[other])
    outsider.user_permissions.add(Permission.objects.get(codename="view_reports"))
    without = member("nobody", tenants=[tenant])  # (no group: h6 grants view_reports to some)

    assert _client_for(without).get(f"/api/reports/campaigns/{campaign_id}/").status_code == 403
    assert _client_for(outsider).get(f"/api/reports/campaigns/{campaign_id}/").status_code == 404
    assert _client_for(outsider).get(f"/api/campaigns/{campaign_id}/recipients/?outcome=sent").status_code == 404
    assert lead.get(f"/api/reports/campaigns/{campaign_id + 1000}/").status_code == 404
    assert lead.get("/api/reports/campaigns/99999999999999999999999/").status_code == 404
    assert lead.get(f"/api/reports/campaigns/{campaign_id}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query, field", [
    ({"from": "2026-03-01", "to": "2026-02-01"}, "from"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-40"}, "to"),
    ({"to": "2026-01-01T25:00:00"}, "to"),
])
def test_a_bad_period_is_refused_naming_the_field(lead, staff_api, simulator, responses, query, field):  # noqa: F811
    campaign_id = create(staff_api, audience([1]), standard_response="VARIANTA").json()["id"]

    answer = lead.get(f"/api/reports/campaigns/{campaign_id}/", query)

    assert answer.status_code == 400 and list(answer.json()) == [field], answer.content


@pytest.mark.django_db
@pytest.mark.parametrize("query, field", [({"outcome": "clicked"}, "outcome"), ({"variant": "7"}, "variant"),
                                          ({"variant": "Z"}, "variant"), ({"variant": "²"}, "variant"),
                                          ({"variant": "01"}, "variant"), ({"variant": "-1"}, "variant"),
                                          ({"outcome": "sent", "reason": "500"}, "reason"),
                                          ({"from": "2026-03-01", "to": "2026-02-01"}, "from")])
def test_a_bad_drill_down_is_refused_naming_the_parameter(lead, staff_api, simulator, responses, query, field):  # noqa: F811
    campaign_id = create(staff_api, audience([1]), standard_response="VARIANTA").json()["id"]

    answer = lead.get(f"/api/campaigns/{campaign_id}/recipients/", query)

    assert answer.status_code == 400 and list(answer.json()) == [field], answer.content


@pytest.mark.django_db
def test_the_period_takes_the_hours_the_campaign_reached_its_recipients(lead, staff_api, simulator, responses):  # noqa: F811
    campaign_id = create(staff_api, audience([1, 2]), standard_response="VARIANTA").json()["id"]
    run(campaign_id)
    campaign_reports_fold()
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)

    def total(**query):
        return lead.get(f"/api/reports/campaigns/{campaign_id}/", query).json()["total"]

    assert total() == 2  # the last 7 days
    assert total(**{"from": now.isoformat()}) == 2  # from the start of its hour
    assert total(**{"to": hour.isoformat()}) == 0  # hours that begin inside the period only
    assert total(**{"from": (now - timedelta(days=30)).isoformat(), "to": (now - timedelta(days=20)).isoformat()}) == 0
    drill = lead.get(f"/api/campaigns/{campaign_id}/recipients/",
                     {"outcome": "sent", "from": now.isoformat()}).json()
    assert drill["count"] == 2


@pytest.mark.django_db
def test_the_csv_report_has_a_row_a_variant_and_runs_no_formula(lead, staff_api, simulator, responses):  # noqa: F811
    # given a failure whose reason, from the third party, begins like a formula
    campaign_id = create(staff_api, audience([1, 2, 3, 4]), variants=[
        {"standard_response": "VARIANTA", "share": 50}, {"standard_response": "VARIANTB", "share": 50}]).json()["id"]
    run(campaign_id)
    message = recipient(campaign_id, 1).message
    receipt_apply(channel=simulator, external_id=message.external_id, status="Failed",
                  reasons=[{"code": 500, "message": "=HYPERLINK(\"http://evil.example\")"}])
    campaign_reports_fold()

    answer = lead.get(f"/api/reports/campaigns/{campaign_id}/", {"format": "csv"})

    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(answer.content.decode())))
    header, rows = table[0], table[1:]
    assert header[:11] == ["variant", "standard_response", "share", *FIGURES]
    assert header[11] == "failed: 500 =HYPERLINK(\"http://evil.example\")"  # (starts with "f": no formula)
    assert [row[0] for row in rows] == ["all", "A", "B"]
    assert rows[0][3:11] == ["4", "0", "3", "0", "0", "0", "0", "1"] and rows[0][11] == "1"
    assert sum(int(row[10]) for row in rows[1:]) == 1


@pytest.mark.django_db
def test_a_redelivered_failure_leaves_the_failed_figures(lead, staff_api, simulator, responses):  # noqa: F811
    campaign_id = create(staff_api, audience([1]), standard_response="VARIANTA").json()["id"]
    run(campaign_id)
    message = recipient(campaign_id, 1).message
    receipt_apply(channel=simulator, external_id=message.external_id, status="Failed", reasons=[{"code": 310}])
    campaign_reports_fold()
    failed = lead.get(f"/api/reports/campaigns/{campaign_id}/").json()

    # when its delivery is redelivered (as after a webhook that failed for good): the message is queued again
    Delivery.objects.filter(message=message).update(state="failed")
    assert delivery_redeliver(delivery=Delivery.objects.get(message=message))
    campaign_reports_fold()
    again = lead.get(f"/api/reports/campaigns/{campaign_id}/").json()

    assert (failed["failed"], failed["sent"], failed["failed_by_reason"]) == (1, 0, {"310 Rate limit reached.": 1})
    assert (again["failed"], again["sent"], again["failed_by_reason"]) == (0, 0, {})
    assert not CampaignReportDelta.objects.exists()  # every change folded, none left behind


# --- the admin ---------------------------------------------------------------------------------------------------


@pytest.fixture
def lead_in_admin(client, tenant):
    user = member("lead", "Campaign manager", tenants=[tenant])
    user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    client.force_login(user)
    return client


def _inline(variants: list[tuple[str, int]], *, initial: int = 0) -> dict:
    data = {"variants-TOTAL_FORMS": str(len(variants)), "variants-INITIAL_FORMS": str(initial),
            "variants-MIN_NUM_FORMS": "0", "variants-MAX_NUM_FORMS": "5"}
    for index, (response, share) in enumerate(variants):
        data[f"variants-{index}-standard_response"] = response
        data[f"variants-{index}-share"] = str(share)
    return data


@pytest.mark.django_db
def test_the_admin_sets_variants_through_their_rules_and_shows_the_report_with_links(
        lead_in_admin, staff_api, simulator, responses):  # noqa: F811
    # given a draft campaign of four recipients
    campaign_id = create(staff_api, audience([1, 2, 3, 4]), standard_response="VARIANTA").json()["id"]
    url = f"/admin/channels_app/campaign/{campaign_id}/change/"
    form = {"name": "Spring sale", "channel": str(simulator.pk), "standard_response": "VARIANTA",
            "chat_queue_key": "", "terminate_sessions": "on", "rate_per_second": "", "start_at_0": "",
            "start_at_1": ""}

    # when variants whose shares add up to 90 are saved, then 40/60
    refused = lead_in_admin.post(url, {**form, **_inline([("VARIANTA", 40), ("VARIANTB", 50)])})
    saved = lead_in_admin.post(url, {**form, **_inline([("VARIANTA", 40), ("VARIANTB", 60)])})

    # then the first is refused with the rule's words and the second stored through the service
    assert refused.status_code == 200 and "add up to 90, not 100" in refused.content.decode()
    assert saved.status_code == 302, saved.content.decode()[:2000]
    from channels_app.models import Campaign

    assert [(v.position, v.standard_response_id, v.share) for v in Campaign.objects.get(pk=campaign_id)
            .variants.all()] == [(0, "VARIANTA", 40), (1, "VARIANTB", 60)]

    # when it runs, one message fails, and the fold runs
    run(campaign_id)
    message = recipient(campaign_id, 2).message
    receipt_apply(channel=simulator, external_id=message.external_id, status="Failed", reasons=[{"code": 530}])
    campaign_reports_fold()
    page = lead_in_admin.get(url).content.decode()

    # then the page shows the variants (read-only now) and the report, each figure a link to its recipients
    assert 'id="campaign-report"' in page and "VARIANTB" in page and "60 %" in page
    assert f'/admin/channels_app/campaign/{campaign_id}/recipients/?outcome=sent"' in page
    reason_link = "?outcome=failed&amp;reason=530+Invalid+destination."
    assert f"/admin/channels_app/campaign/{campaign_id}/recipients/{reason_link}" in page
    assert 'name="variants-0-share"' not in page  # no longer editable
    listed = lead_in_admin.get(f"/admin/channels_app/campaign/{campaign_id}/recipients/",
                               {"outcome": "failed", "reason": "530 Invalid destination."})
    assert listed.status_code == 200
    assert listed.content.decode().count('class="campaign-recipient"') == 1 and phone(2) in listed.content.decode()
    everyone = lead_in_admin.get(f"/admin/channels_app/campaign/{campaign_id}/recipients/", {"outcome": "sent"})
    assert everyone.content.decode().count('class="campaign-recipient"') == 3
    assert lead_in_admin.get(f"/admin/channels_app/campaign/{campaign_id}/recipients/",
                             {"outcome": "clicked"}).status_code == 400


@pytest.mark.django_db
def test_the_admin_page_shows_no_report_to_whom_may_not_read_reports(client, tenant, staff_api, simulator,  # noqa: F811
                                                                      responses):
    campaign_id = create(staff_api, audience([1]), standard_response="VARIANTA").json()["id"]
    client.force_login(member("manager", "Campaign manager", tenants=[tenant]))

    page = client.get(f"/admin/channels_app/campaign/{campaign_id}/change/").content.decode()

    assert 'id="campaign-report"' not in page and "Spring sale" in page
