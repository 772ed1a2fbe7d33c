"""Campaign audiences (issue 22): field codes no row can fill are refused once, at upload or start; refused and
repeated rows are listed; a CSV field over the parser's limit is a refused row; a large CSV is taken in the
background; a multipart create has the JSON create's defaults."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from channels_app.models import Campaign
from tests.test_browser import admin_sign_in, browser  # noqa: F401  (browser: the fixture)
from tests.test_campaigns import FIELDS, SPEC_RESPONSE, create, recipient, response, simulator  # noqa: F401

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
    assert as_form.json()["audience_upload"]["accepted"] == 1 and as_json.json()["audience_upload"]["accepted"] == 1
    settings = ("chat_queue_key", "terminate_sessions", "rate_per_second", "start_at", "state")
    assert {k: as_form.json()[k] for k in settings} == {k: as_json.json()[k] for k in settings}
    assert Campaign.objects.get(pk=as_form.json()["id"]).terminate_sessions is True


def text_response(tenant, body: str):
    from channels_app.models import StandardResponse

    return StandardResponse.objects.create(tenant=tenant, name="Text", content_type="text", body=body)


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "code"), [
    ("Hello <$Contact.FirstName$>, I am <$Agent.FirstName$>.", "Agent.FirstName"),
    ("Your coupon: <$CustomProperties.Coupon$>", "CustomProperties.Coupon"),
    ("Ticket <$Interaction.Nope$>", "Interaction.Nope"),
])
def test_field_codes_no_row_can_fill_refuse_the_audience_naming_the_code(staff_api, tenant, response, body, code):  # noqa: F811
    unfillable = text_response(tenant, body)

    created = create(staff_api, [recipient(1), recipient(2)], standard_response=unfillable.pk)

    assert created.status_code == 400, created.json()
    assert code in str(created.json()["recipients"])
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_a_csv_without_the_column_of_a_field_code_is_refused_naming_the_code(staff_api, response):  # noqa: F811
    header = CSV_HEADER.replace(",CustomProperties.CustomProp Time", "")
    draft = create(staff_api, []).json()["id"]

    added = staff_api.post(f"/api/campaigns/{draft}/recipients/", {
        "file": csv_upload(header + "15550000001,John,Smith,$1,May 1,May 2\n"),
    }, format="multipart")

    assert added.status_code == 400, added.json()
    assert "CustomProperties.CustomProp Time" in str(added.json()["file"])
    assert not Campaign.objects.get(pk=draft).recipients.exists()


@pytest.mark.django_db
def test_a_campaign_whose_response_no_row_can_fill_is_refused_at_start(staff_api, tenant, response):  # noqa: F811
    campaign_id = create(staff_api, [recipient(1), recipient(2)]).json()["id"]
    # the standard response changed after the audience was uploaded
    Campaign.objects.filter(pk=campaign_id).update(
        standard_response=text_response(tenant, "Hi <$Contact.FirstName$>, <$CustomProperties.Coupon$> from "
                                                "<$Agent.FirstName$>"))

    started = staff_api.post(f"/api/campaigns/{campaign_id}/start/")

    assert started.status_code == 400, started.json()
    assert "Agent.FirstName" in str(started.json()) and "CustomProperties.Coupon" in str(started.json())
    assert "Contact.FirstName" not in str(started.json())  # every row has it
    assert Campaign.objects.get(pk=campaign_id).state == "draft"


@pytest.mark.django_db
def test_a_csv_field_over_the_parsers_limit_is_a_refused_row(staff_api, response):  # noqa: F811
    import csv

    huge = "x" * (csv.field_size_limit() + 1)
    text = (CSV_HEADER + "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"
            f"15550000002,{huge},Smith,$1,May 1,May 2,3 PM\n" "15550000003,Ann,Lee,$1,May 1,May 2,3 PM\n")

    created = staff_api.post("/api/campaigns/", {
        "name": "CSV", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
        "file": csv_upload(text),
    }, format="multipart")

    assert created.status_code == 201, created.content[:300]
    report = created.json()["audience_report"]
    assert report["accepted"] == 2
    assert [r["row"] for r in report["rejected"]] == [2]
    assert "longer than" in report["rejected"][0]["errors"][0]


def admin_add(admin_client, csv_text: str, name: str = "Admin campaign", response_id: str = SPEC_RESPONSE["id"]):
    from django.urls import reverse

    from channels_app.models import Channel

    channel = Channel.objects.get(channel_id="channel-ghub-simulator")
    return admin_client.post(reverse("admin:channels_app_campaign_add"), {
        "name": name, "channel": channel.pk, "standard_response": response_id,
        "chat_queue_key": "", "terminate_sessions": "on", "rate_per_second": "", "start_at_0": "", "start_at_1": "",
        "audience": csv_upload(csv_text),
    }, follow=True)


@pytest.mark.django_db
def test_the_campaign_page_counts_refused_recipients_by_reason_and_lists_repeated_rows(admin_client, response):  # noqa: F811
    from django.urls import reverse

    good = "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"
    rows = [good, *(f"bad{n},John,Smith,$1,May 1,May 2,3 PM\n" for n in range(3)), good, good,
            "15550000002,John,Smith,,May 1,May 2,3 PM\n"]
    admin_add(admin_client, CSV_HEADER + "".join(rows))
    campaign = Campaign.objects.get(name="Admin campaign")

    page = admin_client.get(reverse("admin:channels_app_campaign_change", args=[campaign.pk])).content.decode()

    # the refused recipients, counted by reason (the two repeats are one reason), the first rows listed
    assert 'id="campaign-refused"' in page and "Refused recipients: 6" in page
    refused = page[page.index('id="campaign-refused"'):page.index('id="upload-report"')]
    assert '<td class="bad">client_id is not a phone number.</td><td class="dms-num">3</td>' in refused
    assert '<td class="bad">Sent once: the client_id is already on an earlier row.</td><td class="dms-num">2</td>' \
        in refused
    assert '<td class="bad">No value for field code Contact.MyFC_BillAmount.</td><td class="dms-num">1</td>' \
        in refused
    assert refused.count('class="refused-recipient"') == 6
    # the upload report lists the repeated rows like the refused ones
    report = page[page.index('id="upload-report"'):]
    assert report.count('class="repeated-row"') == 2 and "already on row 1" in report
    assert report.count('class="refused-row"') == 4


@pytest.mark.django_db
def test_the_progress_of_the_campaign_page_carries_its_state_buttons_and_refusals(admin_client, response):  # noqa: F811
    from django.urls import reverse

    from channels_app.services.campaigns import campaign_run_batch, campaign_transition

    admin_add(admin_client, CSV_HEADER + "15550000001,John,Smith,$1,May 1,May 2,3 PM\nbad,J,S,$1,May 1,May 2,3 PM\n")
    campaign = Campaign.objects.get(name="Admin campaign")
    progress_url = reverse("admin:channels_app_campaign_progress", args=[campaign.pk])
    page = admin_client.get(reverse("admin:channels_app_campaign_change", args=[campaign.pk])).content.decode()
    # every button is on the page, those of other states hidden; Cancel looks dangerous and asks first
    assert '<button type="submit" form="campaign-pause" class="button" name="campaign-action" value="pause" hidden>' \
        in page
    assert 'class="button dms-danger" name="campaign-action" value="cancel">' in page
    assert 'id="campaign-cancel-confirm"' in page
    assert "<strong>0</strong>duplicate rows (sent once)" in page and "<strong>1</strong>rows refused" in page

    campaign_transition(campaign_id=campaign.pk, action="start")
    assert admin_client.get(progress_url).json()["actions"] == ["pause", "cancel"]
    while campaign_run_batch(campaign_id=campaign.pk):
        pass

    done = admin_client.get(progress_url + "?refused=1").json()
    assert done["state"] == "completed" and done["actions"] == [] and done["fields"]["state"] == "Completed"
    assert done["fields"]["finished_at"] != "-"
    assert "Refused recipients: 1" in done["refused_html"]
    assert "client_id is not a phone number." in done["refused_html"]


def test_the_chart_draws_a_pause_as_zero():
    from channels_app.admin.campaigns import chart_svg

    timeline = {"sent": [["2026-01-01T00:00:00+00:00", 5], ["2026-01-01T00:00:01+00:00", 5],
                         ["2026-01-01T00:00:30+00:00", 5]], "delivered": []}

    svg = chart_svg(timeline)

    line = svg[svg.index("<polyline points=\"") + 18:]
    points = [tuple(map(float, p.split(","))) for p in line[:line.index('"')].split()]
    bottom = max(y for _, y in points)
    # sends at 0 s and 1 s, nothing from 2 s to 29 s (the pause), sends again at 30 s
    assert len(points) == 5 and [y == bottom for _, y in points] == [False, False, True, True, False]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_campaign_page_follows_its_campaign_to_the_end_and_cancel_asks_first(browser, live_server,  # noqa: F811
                                                                                 django_user_model, staff_api):
    from django.core.management import call_command
    from django.test import Client
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from channels_app.services.campaigns import campaign_run_batch
    from tests.test_first_run import shot

    # given two campaigns, one uploaded with refused and repeated rows, and an administrator on its page
    call_command("seed_demo", "--bare")
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    admin = django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    client = Client()
    client.force_login(admin)
    line = "{},John,Smith,$1,May 1,May 2,3 PM\n"
    rows = [line.format(f"1555000000{n}") for n in (1, 2, 3, 1, 2)] + [line.format(f"bad-{n}") for n in (4, 5, 6)]
    admin_add(client, CSV_HEADER + "".join(rows) + "15550000007,Ann,,$1,May 1,May 2,3 PM\n", name="March bills")
    first = Campaign.objects.get(name="March bills").pk
    second = create(staff_api, [recipient(1)], name="April bills").json()["id"]
    # (a page left for the next one: its elements go stale while waited on)
    wait = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])
    browser.set_window_size(1400, 1000)
    admin_sign_in(browser, live_server, wait)
    browser.get(f"{live_server.url}/admin/channels_app/campaign/{first}/change/")

    # when it is started and its batches run, the page left as it is
    start_on(browser, wait)
    while campaign_run_batch(campaign_id=first):
        pass

    # then it shows the end without a reload: the state, no button but the export, the refused reasons
    wait.until(lambda d: d.find_element(By.ID, "campaign-counts").get_attribute("data-state") == "completed")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".field-state .readonly").text == "Completed")
    assert browser.find_element(By.CSS_SELECTOR, "#content > h2").text == "March bills (completed)"
    assert "March bills (completed)" in browser.find_element(By.CSS_SELECTOR, ".breadcrumbs").text
    assert not [b for b in browser.find_elements(By.CSS_SELECTOR, "#campaign-actions button") if b.is_displayed()]
    refused = browser.find_element(By.ID, "campaign-refused").text
    assert "Refused recipients: 6" in refused and "client_id is not a phone number." in refused
    shot(browser, "22b-campaign-finished-refused-reasons", 1500)

    # and on a running campaign, Cancel asks first: "No" keeps it running, "Yes" cancels it
    browser.get(f"{live_server.url}/admin/channels_app/campaign/{second}/change/")
    start_on(browser, wait)
    browser.find_element(By.CSS_SELECTOR, "#campaign-actions button[value=cancel]").click()
    dialog = browser.find_element(By.ID, "campaign-cancel-confirm")
    wait.until(lambda d: dialog.is_displayed())
    shot(browser, "22b-campaign-cancel-asks-first", 900)
    browser.find_element(By.ID, "campaign-cancel-keep").click()
    wait.until(lambda d: not dialog.is_displayed())
    assert Campaign.objects.get(pk=second).state == "running"
    browser.find_element(By.CSS_SELECTOR, "#campaign-actions button[value=cancel]").click()
    page = browser.find_element(By.ID, "campaign-counts")
    browser.find_element(By.ID, "campaign-cancel-yes").click()
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda d: d.find_element(By.ID, "campaign-counts").get_attribute("data-state") == "cancelled")
    assert Campaign.objects.get(pk=second).state == "cancelled"


def start_on(driver, wait):
    """Press Start on a campaign's page and wait for the page it leads to, running."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    page = driver.find_element(By.ID, "campaign-counts")
    driver.find_element(By.CSS_SELECTOR, "button[value=start]").click()
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda d: d.find_element(By.ID, "campaign-counts").get_attribute("data-state") == "running")


@pytest.mark.django_db
def test_a_large_csv_is_read_in_the_background_in_chunks_and_resumes_where_it_stopped(staff_api, response,  # noqa: F811
                                                                                      settings, monkeypatch):
    from django.core.files.storage import default_storage

    from channels_app.services import campaigns as services

    settings.AUDIENCE_INLINE_ROWS = 3  # (a million rows in production: the default is 20,000)
    monkeypatch.setattr(services, "AUDIENCE_CHUNK", 3)
    line = "{},John,Smith,$1,May 1,May 2,3 PM\n"
    rows = [line.format(f"1555000000{n}") for n in range(1, 6)] + [line.format("bad")] \
        + [line.format("15550000001")] + [f"15550000009,{'x' * (__import__('csv').field_size_limit() + 1)},S\n"] \
        + [line.format("15550000008")]
    draft = create(staff_api, []).json()["id"]

    # when a CSV of more lines than AUDIENCE_INLINE_ROWS is uploaded
    added = staff_api.post(f"/api/campaigns/{draft}/recipients/", {"file": csv_upload(CSV_HEADER + "".join(rows))},
                           format="multipart")

    # then the request answers at once: the file is read by a worker, and the campaign waits for it
    assert added.status_code == 202, added.json()
    assert added.json()["state"] == "loading" and added.json()["lines"] == 10
    upload = staff_api.get(f"/api/campaigns/{draft}/").json()["audience_upload"]
    assert (upload["state"], upload["rows_read"], upload["file"]) == ("loading", 0, "audience.csv")
    started = staff_api.post(f"/api/campaigns/{draft}/start/")
    assert started.status_code == 409 and "still being read" in str(started.json())
    assert staff_api.post(f"/api/campaigns/{draft}/recipients/", {"recipients": [recipient(1)]},
                          format="json").status_code == 409
    path = Campaign.objects.get(pk=draft).upload_report["path"]

    # when the worker dies after its first chunk, and the task runs again
    real_store = services._store_chunk
    stored = []

    def dies_after_one_chunk(*args):
        if stored:
            raise RuntimeError("worker lost")
        stored.append(real_store(*args))

    monkeypatch.setattr(services, "_store_chunk", dies_after_one_chunk)
    with pytest.raises(RuntimeError):
        services.campaign_audience_load(campaign_id=draft, path=path)
    assert staff_api.get(f"/api/campaigns/{draft}/").json()["audience_upload"]["rows_read"] == 3
    monkeypatch.setattr(services, "_store_chunk", real_store)
    assert services.campaign_audience_load(campaign_id=draft, path=path) == 6

    # then every row is stored once, in order, the repeat across chunks and the unreadable row refused
    kept = list(Campaign.objects.get(pk=draft).recipients.order_by("row_number").values_list("row_number", "error"))
    assert [number for number, _ in kept] == list(range(1, 10))
    assert [number for number, error in kept if not error] == [1, 2, 3, 4, 5, 9]
    assert "already on row 1" in kept[6][1] and "longer than" in kept[7][1] and "not a phone number" in kept[5][1]
    upload = staff_api.get(f"/api/campaigns/{draft}/").json()["audience_upload"]
    assert {k: upload[k] for k in ("state", "rows_read", "accepted", "rejected", "duplicates")} == {
        "state": "done", "rows_read": 9, "accepted": 6, "rejected": 2, "duplicates": 1}
    assert not default_storage.exists(path)
    assert services.campaign_audience_load(campaign_id=draft, path=path) == 0  # a late second run: nothing
    assert staff_api.post(f"/api/campaigns/{draft}/start/").json()["state"] == "running"


@pytest.mark.django_db
def test_a_campaign_created_without_an_audience_has_no_upload_report(staff_api, response):  # noqa: F811
    created = create(staff_api, [])

    assert created.json()["audience_upload"] is None
    assert Campaign.objects.get().upload_report == {}


@pytest.mark.django_db
def test_the_campaign_page_shows_an_audience_being_read_in_the_background(admin_client, response, settings):  # noqa: F811
    from django.urls import reverse

    settings.AUDIENCE_INLINE_ROWS = 1
    added = admin_add(admin_client, CSV_HEADER + "15550000001,John,Smith,$1,May 1,May 2,3 PM\n"
                                                 "15550000002,Ann,Lee,$1,May 1,May 2,3 PM\n")
    campaign = Campaign.objects.get(name="Admin campaign")

    assert "rows are being read in the background" in added.content.decode()
    page = admin_client.get(reverse("admin:channels_app_campaign_change", args=[campaign.pk])).content.decode()
    assert 'id="upload-loading" data-state="loading"' in page
    assert 'row <span id="upload-rows-read">0</span> of about 3' in page
    progress = admin_client.get(reverse("admin:channels_app_campaign_progress", args=[campaign.pk])).json()
    assert progress["upload"] == {"state": "loading", "rows_read": 0, "lines": 3}


def _large_upload(staff_api, settings):
    """A draft whose audience (more lines than AUDIENCE_INLINE_ROWS) waits for a worker: (id, kept path)."""
    settings.AUDIENCE_INLINE_ROWS = 1
    line = "{},John,Smith,$1,May 1,May 2,3 PM\n"
    draft = create(staff_api, []).json()["id"]
    text = CSV_HEADER + "".join(line.format(f"1555000000{n}") for n in range(1, 4))
    added = staff_api.post(f"/api/campaigns/{draft}/recipients/", {"file": csv_upload(text)}, format="multipart")
    assert added.status_code == 202, added.json()
    return draft, Campaign.objects.get(pk=draft).upload_report["path"]


@pytest.mark.django_db
def test_a_campaign_deleted_while_its_audience_waits_takes_its_kept_file_with_it(
        staff_api, response, settings, django_capture_on_commit_callbacks):  # noqa: F811
    from django.core.files.storage import default_storage

    from channels_app.services import campaigns as services

    draft, path = _large_upload(staff_api, settings)
    assert default_storage.exists(path)

    # when the draft is deleted before a worker has read its audience
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.delete(f"/api/campaigns/{draft}/").status_code == 204

    # then the file of customers' numbers is not left behind, and the late task finds nothing to do
    assert not default_storage.exists(path)
    assert services.campaign_audience_load(campaign_id=draft, path=path) == 0


@pytest.mark.django_db
def test_a_load_task_for_a_campaign_that_is_gone_deletes_its_file(staff_api, response, settings):  # noqa: F811
    from django.core.files.storage import default_storage

    from channels_app.services import campaigns as services

    draft, path = _large_upload(staff_api, settings)
    Campaign.objects.filter(pk=draft).delete()  # gone some other way (a tenant deleted, say)

    assert services.campaign_audience_load(campaign_id=draft, path=path) == 0
    assert not default_storage.exists(path)
    # a path that is not the campaign's kept audience is never deleted by the task
    other = default_storage.save("campaign-audiences/other.csv", __import__("io").BytesIO(b"client_id\n"))
    assert services.campaign_audience_load(campaign_id=draft, path=other) == 0
    assert default_storage.exists(other)
    default_storage.delete(other)


@pytest.mark.django_db
def test_a_kept_audience_file_is_readable_by_the_server_only(staff_api, response, settings):  # noqa: F811
    import os
    import stat

    from django.core.files.storage import default_storage

    draft, path = _large_upload(staff_api, settings)

    # then the customers' numbers are the server's alone: the file 0600, its folder 0700
    assert stat.S_IMODE(os.stat(default_storage.path(path)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(default_storage.path(path))).st_mode) == 0o700


@pytest.mark.django_db
def test_a_load_whose_file_is_gone_stops_and_says_so_instead_of_waiting_for_ever(staff_api, response,  # noqa: F811
                                                                                 settings):
    from django.core.files.storage import default_storage

    from channels_app.services import campaigns as services

    # given a load whose kept file was lost (a volume not shared with the worker, a cleaned folder)
    draft, path = _large_upload(staff_api, settings)
    default_storage.delete(path)

    # when the worker runs it
    assert services.campaign_audience_load(campaign_id=draft, path=path) == 0

    # then the upload stops, saying why, and the campaign takes another upload (it waited for ever before)
    upload = staff_api.get(f"/api/campaigns/{draft}/").json()["audience_upload"]
    assert upload["state"] == "stopped"
    assert "no longer there" in Campaign.objects.get(pk=draft).upload_report["error"]
    assert staff_api.post(f"/api/campaigns/{draft}/recipients/", {"recipients": [recipient(1)]},
                          format="json").status_code == 200


# --- the fast path of an audience CSV's rows (issue 25: a million rows stored in seconds) ---------------------------

from hypothesis import given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

COLUMNS = ["client_id", "Contact.FirstName", "Contact.LastName", "CustomProperties.Code", "Other",
           "contact.FirstName", "Contact.", "Contact.Fi\x00rst", " Contact.LastName "]
CLIENT_IDS = ["15551234567", " +15551234567 ", "+919876543210", "5551234", "+1555", "abc", "", "a\x00b", "1" * 201]
VALUES = ["", " ", "Ann", " Zoë ", "a\x00b", 'say "hi"', "back\\slash", "tab\tand\nline", "=1+2", "\u2028",
          "15551234567"]
REQUIRED = [[], [("Contact", "FirstName")], [("Contact", "FirstName"), ("CustomProperties", "Code")],
            [("CustomProperties", "Missing")]]


@st.composite
def csv_audience(draw):
    """A header (mostly client_id, Contact.FirstName and CustomProperties.Code, in any order, with other
    columns, some given twice) and rows of mostly its width."""
    header = [*draw(st.lists(st.sampled_from(COLUMNS), max_size=3)), "client_id", "Contact.FirstName",
              "CustomProperties.Code"]
    header = [name.strip() for name in draw(st.permutations(header))]
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        width = len(header) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        values = [draw(st.sampled_from(CLIENT_IDS if name == "client_id" else VALUES)) for name in header]
        rows.append((values + ["extra"])[:max(width, 0)])
    return header, rows


@hypothesis_settings(max_examples=600, deadline=None)
@given(audience=csv_audience(), required=st.sampled_from(REQUIRED), business=st.sampled_from([None, "19251112222"]),
       always_check_text=st.booleans())
def test_a_csv_row_the_fast_path_takes_is_the_general_paths_row(audience, required, business, always_check_text):
    import json

    from channels_app.services.audience_rows import csv_fast_row
    from channels_app.services.campaigns import _audience_row, _check_row

    header, rows = audience
    # (the file's scan: without a NUL in it, no value can break the text rules)
    holds_nul = any("\x00" in text for text in [*header, *(value for row in rows for value in row)])
    fast_row = csv_fast_row(header, required, business_number=business, check_text=holds_nul or always_check_text)
    for values in rows:
        taken = fast_row(values) if fast_row is not None else None
        client_id, errors, contact, custom = _check_row(_audience_row(header, values), required, business)
        if taken is not None:
            assert errors == []
            assert (taken[0], json.loads(taken[1]), json.loads(taken[2])) == (client_id, contact, custom)


def test_the_fast_path_takes_a_plain_row_whole():
    from channels_app.services.audience_rows import csv_fast_row

    fast_row = csv_fast_row(["client_id", "Contact.FirstName", "CustomProperties.Code", "Other"],
                            [("Contact", "FirstName")], business_number="19251112222", check_text=False)

    assert fast_row([" 15551234567", "Zoë ", 'say "hi"\\', "ignored"]) == (
        "15551234567", '{"FirstName": "Zoë"}', '{"Code": "say \\"hi\\"\\\\"}')
    assert fast_row(["15551234567", "", "C1", "x"]) is None  # no value for a required code: the general path
    assert fast_row(["not a phone", "Ann", "C1", "x"]) is None


@pytest.mark.django_db
def test_a_csv_audience_is_stored_as_the_same_json_audience_would_be(staff_api, response, monkeypatch):  # noqa: F811
    from django.db import connection

    from channels_app.services import campaigns as services

    # given the same rows as a JSON audience and as a CSV (quotes, backslashes, tabs, accents, a formula)
    odd = {"FirstName": 'Zoë "the \\ one"', "LastName": "tab\there", "MyFC_BillAmount": "=1+2",
           "MyFC_Date": "line\u2028sep"}
    rows = [recipient(1), recipient(2, Contact={**FIELDS["Contact"], **odd}), recipient(3)]
    as_json = create(staff_api, rows, name="JSON").json()["id"]
    lines = []
    for row in rows:
        contact, custom = row["Contact"], row["CustomProperties"]
        lines.append([row["client_id"], contact["FirstName"], contact["LastName"], contact["MyFC_BillAmount"],
                      contact["MyFC_Date"], custom["CustomProp_Date"], custom["CustomProp Time"]])
    out = __import__("io").StringIO()
    __import__("csv").writer(out).writerows(lines)
    general_path = []
    real_check_row = services._check_row
    monkeypatch.setattr(services, "_check_row", lambda *args: general_path.append(args) or real_check_row(*args))

    as_csv = staff_api.post("/api/campaigns/", {
        "name": "CSV", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
        "file": csv_upload(CSV_HEADER + out.getvalue()),
    }, format="multipart")

    # then every CSV row took the fast path (PostgreSQL's COPY; elsewhere model objects), both stored alike
    assert as_csv.status_code == 201, as_csv.json()
    assert general_path == [] or connection.vendor != "postgresql"
    fields = ("row_number", "client_id", "contact_fields", "custom_properties", "error")
    stored = [list(Campaign.objects.get(pk=pk).recipients.order_by("row_number").values_list(*fields))
              for pk in (as_json, as_csv.json()["id"])]
    assert stored[0] == stored[1] and stored[1][1][2]["FirstName"] == 'Zoë "the \\ one"'


@pytest.mark.django_db
def test_rows_stored_by_an_earlier_upload_are_repeats_found_by_the_unique_index(staff_api, response):  # noqa: F811
    line = "{},John,Smith,$1,May 1,May 2,3 PM\n"
    draft = create(staff_api, []).json()["id"]
    first = staff_api.post(f"/api/campaigns/{draft}/recipients/", {
        "file": csv_upload(CSV_HEADER + "".join(line.format(f"1555000000{n}") for n in (1, 2, 3)))},
        format="multipart")
    assert first.status_code == 200 and first.json()["accepted"] == 3

    # when a second file repeats two of them between new rows, with a refused row and a repeat of its own
    numbers = ["15550000004", "15550000002", "bad", "15550000005", "15550000003", "15550000004", "15550000006"]
    second = staff_api.post(f"/api/campaigns/{draft}/recipients/", {
        "file": csv_upload(CSV_HEADER + "".join(line.format(n) for n in numbers))}, format="multipart")

    # then the COPY that met the stored client ids was undone and written again with them as repeats
    assert second.status_code == 200, second.json()
    report = second.json()
    assert (report["accepted"], [r["row"] for r in report["rejected"]]) == (3, [6])
    assert sorted(report["duplicates"]) == [5, 8, 9]
    reasons = {r["row"]: r["errors"][0] for r in report["duplicate_rows"]}
    assert "row 2." in reasons[5] and "row 3." in reasons[8] and "row 4." in reasons[9]
    kept = list(Campaign.objects.get(pk=draft).recipients.order_by("row_number").values_list("row_number", "error"))
    assert [number for number, _ in kept] == list(range(1, 11))  # each row once: nothing of the undone COPY
    assert [number for number, error in kept if not error] == [1, 2, 3, 4, 7, 10]
    counts = staff_api.get(f"/api/campaigns/{draft}/").json()
    assert (counts["total"], counts["refused"], counts["pending"]) == (10, 4, 6)
