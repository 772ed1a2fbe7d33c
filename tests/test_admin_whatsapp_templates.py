"""The admin of WhatsApp message templates (issue 22, item 5): the category chosen in the form, *Submit for
approval*, the status with the rejection reason, the id Meta gave, *Sync*, a status filter; through the same
services as the API, against the Graph API stand-in."""

import json
from pathlib import Path

import pytest
from django.urls import reverse

from channels_app.models import StandardResponse, WhatsAppTemplate
from channels_app.services.templates import template_send_to_meta, templates_sync
from tests.conftest import member
from tests.test_browser import admin_sign_in, browser  # noqa: F401  (browser: the fixture)
from tests.test_whatsapp_cloud import cloud, stand_in  # noqa: F401  (the fixtures)

SPEC_RESPONSE = json.loads((Path(__file__).parent / "fixtures" / "invite_to_chat_standard_response.json").read_text())
ADD = "admin:channels_app_whatsapptemplate_add"
LIST = "admin:channels_app_whatsapptemplate_changelist"


@pytest.fixture
def operator(client, staff_user, staff_api):
    """The Administrator of tenant 1 (who may submit through the API), signed in to the admin."""
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    client.force_login(staff_user)
    return client


def _change(template) -> str:
    return reverse("admin:channels_app_whatsapptemplate_change", args=[template.pk])


@pytest.mark.django_db
def test_a_template_is_submitted_with_its_category_and_shows_metas_verdict(operator, cloud, stand_in, channel):  # noqa: F811
    response = StandardResponse.objects.get(pk=SPEC_RESPONSE["id"])

    # given: the add page offers the categories, the Cloud API channels only, and Submit for approval
    page = operator.get(reverse(ADD)).content.decode()
    for category in ("MARKETING", "UTILITY", "AUTHENTICATION"):
        assert f'<option value="{category}"' in page
    assert "channel-wa-cloud" in page and channel.channel_id not in page
    assert 'value="Submit for approval"' in page

    # when: submitted as MARKETING
    submitted = operator.post(reverse(ADD), {"standard_response": response.pk, "channel": cloud.pk,
                                             "category": "MARKETING", "_save": "Submit for approval"})

    # then: the service's row, pending, sent to Meta with that category
    template = WhatsAppTemplate.objects.get()
    assert submitted.status_code == 302 and submitted["Location"] == _change(template)
    assert (template.category, template.status, template.name) == ("MARKETING", "PENDING", "bill_reminder")
    assert template_send_to_meta(template_pk=template.pk) == "PENDING"
    assert stand_in.templates["bill_reminder"]["category"] == "MARKETING"

    # when: Meta rejects it, and the administrator syncs
    stand_in.approve("bill_reminder", "REJECTED", "INCORRECT_CATEGORY")
    synced = operator.post(reverse("admin:channels_app_whatsapptemplate_sync") + "?channel=channel-wa-cloud",
                           {"next": _change(template)})
    assert synced.status_code == 302 and synced["Location"] == _change(template)
    assert "Sync with Meta queued for channel-wa-cloud" in operator.get(_change(template)).content.decode()
    assert templates_sync(channel_pk=cloud.pk) == 1  # the task the sync queued

    # then: the page shows the status with the reason and Meta's id, and both buttons
    template.refresh_from_db()
    page = operator.get(_change(template)).content.decode()
    assert "REJECTED</b>: <span class=\"dms-template-reason\">INCORRECT_CATEGORY" in page
    assert template.template_id and template.template_id in page
    assert 'value="Submit for approval"' in page and "Sync with Meta" in page
    rejected = operator.get(reverse(LIST) + "?status__exact=REJECTED").content.decode()
    approved = operator.get(reverse(LIST) + "?status__exact=APPROVED").content.decode()
    assert "bill_reminder" in rejected and "INCORRECT_CATEGORY" in rejected and "bill_reminder" not in approved
    assert "Sync channel-wa-cloud with Meta" in rejected

    # when: submitted again as UTILITY from its page
    again = operator.post(_change(template), {"category": "UTILITY", "_save": "Submit for approval"})

    # then: pending again, with the new category and no reason
    template.refresh_from_db()
    assert again.status_code == 302
    assert (template.category, template.status, template.reason, template.template_id) == ("UTILITY", "PENDING",
                                                                                           "", "")


@pytest.mark.django_db
def test_the_form_shows_the_services_refusals_on_their_fields(operator, cloud, settings):  # noqa: F811
    text = StandardResponse.objects.create(id="TXT1", tenant_id=cloud.tenant_id, name="t", content_type="text",
                                           body="Hi")
    response = StandardResponse.objects.get(pk=SPEC_RESPONSE["id"])

    # a text response is not offered (and refused if posted anyway)
    refused = operator.post(reverse(ADD), {"standard_response": text.pk, "channel": cloud.pk, "category": "UTILITY"})
    assert refused.status_code == 200 and "standard_response" in refused.context["adminform"].form.errors

    # Meta's creation limit per hour, as the API's 429: on the channel, nothing written
    settings.WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR = 0
    limited = operator.post(reverse(ADD), {"standard_response": response.pk, "channel": cloud.pk,
                                           "category": "UTILITY"})
    assert limited.status_code == 200
    assert "Meta allows 0" in str(limited.context["adminform"].form.errors["channel"])
    assert not WhatsAppTemplate.objects.exists()


@pytest.mark.django_db
def test_who_may_submit_is_the_apis_rule(client, cloud, tenant):  # noqa: F811
    agent = member("viewer", "WhatsApp agent", tenants=[tenant])  # reads responses and channels, changes none
    client.force_login(agent)

    assert client.get(reverse(ADD)).status_code == 403
    assert client.post(reverse("admin:channels_app_whatsapptemplate_sync") + "?channel=channel-wa-cloud"
                       ).status_code == 403


@pytest.mark.django_db
def test_a_sync_of_a_channel_that_is_not_a_cloud_channel_says_why(operator, channel):
    answer = operator.post(reverse("admin:channels_app_whatsapptemplate_sync") + f"?channel={channel.channel_id}",
                           follow=True)

    assert "Not synced: channel-whatsapp-REAL is not a WhatsApp Cloud API channel." in answer.content.decode()


def _shot(driver, name: str, height: int) -> Path:
    """A 1400 px wide screenshot (var/screenshots/), palette-compressed: the README's are copied from there."""
    from PIL import Image

    from tests.test_browser import SCREENSHOTS

    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(full, height) + 120)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    driver.set_window_size(1400, 1000)
    return path


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_administrator_submits_a_template_and_reads_metas_verdict_in_a_browser(  # noqa: F811
        browser, live_server, django_user_model, cloud, stand_in, staff_api):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    wait = WebDriverWait(browser, 20)
    browser.set_window_size(1400, 1000)
    admin_sign_in(browser, live_server, wait)

    # when: the administrator submits the response as MARKETING
    browser.get(f"{live_server.url}{reverse(ADD)}")
    Select(browser.find_element(By.NAME, "standard_response")).select_by_value(SPEC_RESPONSE["id"])
    Select(browser.find_element(By.NAME, "channel")).select_by_value(str(cloud.pk))
    Select(browser.find_element(By.NAME, "category")).select_by_value("MARKETING")
    _shot(browser, "22d-template-add", 700)
    browser.find_element(By.CSS_SELECTOR, "input[value='Submit for approval']").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert "submitted to Meta for approval" in browser.page_source

    # and Meta rejects it; Sync with Meta
    template = WhatsAppTemplate.objects.get()
    template_send_to_meta(template_pk=template.pk)
    stand_in.approve("bill_reminder", "REJECTED", "INCORRECT_CATEGORY")
    browser.find_element(By.CSS_SELECTOR, "#template-sync button").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), "queued"))
    templates_sync(channel_pk=cloud.pk)  # the task the button queued

    # then: the page and the list filtered by status show the verdict, its reason and Meta's id
    browser.get(f"{live_server.url}{_change(template)}")
    page = browser.page_source
    assert "INCORRECT_CATEGORY" in page and "594425479261596" in page
    _shot(browser, "22d-template-rejected", 800)
    browser.get(f"{live_server.url}{reverse(LIST)}?status__exact=REJECTED")
    assert "INCORRECT_CATEGORY" in browser.page_source
    _shot(browser, "22d-template-list", 500)
