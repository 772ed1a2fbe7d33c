"""The campaign report in the admin, in a browser: a campaign with variants, its figures by variant, and a
figure's link to the recipients behind it (screenshots: docs/screenshots/27-campaign-variants-report*.png)."""

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Channel
from channels_app.services.campaign_reports import campaign_reports_fold
from channels_app.services.campaigns import campaign_create
from channels_app.services.interactions import customer_message_receive
from channels_app.services.receipts import receipt_apply
from tests.factories import StandardResponseFactory
from tests.test_browser import SCREENSHOTS, admin_sign_in, browser  # noqa: F401
from tests.test_campaign_report import phone, recipient, run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_campaign_with_variants_shows_its_report_and_each_figure_lists_its_recipients(
        browser, live_server, django_user_model, tenant):  # noqa: F811
    # given a campaign of twelve recipients split 50/50 between two wordings, run, with receipts and replies
    call_command("seed_demo", "--bare")
    channel = Channel.objects.get(channel_id="channel-ghub-simulator")
    for letter, words in (("A", "Your bill is ready"), ("B", "Good news: your bill is here")):
        StandardResponseFactory(tenant=tenant, id=f"BILL{letter}", name=f"Bill {letter}",
                                body=f"{words}, <$Contact.FirstName$>.")
    campaign, _ = campaign_create(
        name="March bills", channel=channel, standard_response=None,
        rows=[{"client_id": phone(n), "Contact": {"FirstName": f"Ann{n}"}} for n in range(1, 13)],
        variants=[{"standard_response": "BILLA", "share": 50}, {"standard_response": "BILLB", "share": 50}])
    run(campaign.pk)
    for n in range(1, 11):
        receipt_apply(channel=channel, external_id=recipient(campaign.pk, n).message.external_id, status="Delivered")
    for n in range(1, 7):
        receipt_apply(channel=channel, external_id=recipient(campaign.pk, n).message.external_id, status="Read")
    receipt_apply(channel=channel, external_id=recipient(campaign.pk, 12).message.external_id, status="Failed",
                  reasons=[{"code": 530}])
    for n in (1, 2, 5):
        customer_message_receive(channel=channel, client_id=phone(n), text="Thanks!", channel_message_id=f"r{n}")
    customer_message_receive(channel=channel, client_id=phone(3), text="STOP", channel_message_id="s3")
    campaign_reports_fold()
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    wait = WebDriverWait(browser, 20)
    admin_sign_in(browser, live_server, wait)

    # when the administrator opens the campaign
    browser.get(f"{live_server.url}/admin/channels_app/campaign/{campaign.pk}/change/")
    report = wait.until(expected_conditions.visibility_of_element_located((By.ID, "campaign-report")))
    wait.until(lambda driver: "completed" in driver.find_element(By.ID, "campaign-counts").text)

    # then the variants and the report by variant are on the page
    rows = report.find_elements(By.CSS_SELECTOR, "tr.campaign-report-row")
    assert [row.find_element(By.TAG_NAME, "th").text for row in rows] == ["All", "A", "B"]
    cells = [cell.text for cell in rows[0].find_elements(By.CSS_SELECTOR, "td.dms-num")]
    # total, refused, sent, delivered, read, replied, opted out, failed
    assert cells == ["12", "0", "11", "10", "6", "3", "1", "1"]
    variants = browser.find_element(By.ID, "variants-group").text
    assert "BILLA" in variants or "Bill A" in variants
    browser.execute_script("document.getElementById('campaign-report').scrollIntoView()")
    browser.save_screenshot(str(SCREENSHOTS / "27-campaign-variants-report.png"))

    # when they follow the "replied" figure of the campaign
    rows[0].find_elements(By.CSS_SELECTOR, "td.dms-num a")[5].click()

    # then the three who wrote back are listed
    wait.until(expected_conditions.visibility_of_element_located((By.ID, "campaign-recipients")))
    listed = browser.find_elements(By.CSS_SELECTOR, "tr.campaign-recipient")
    assert sorted(row.find_elements(By.TAG_NAME, "td")[1].text for row in listed) == [phone(1), phone(2), phone(5)]
    browser.save_screenshot(str(SCREENSHOTS / "27-campaign-report-recipients.png"))

    # and a draft's variants can still be changed on its page
    draft, _ = campaign_create(
        name="April bills", channel=channel, standard_response=None,
        rows=[{"client_id": phone(n), "Contact": {"FirstName": f"Ann{n}"}} for n in range(1, 4)],
        variants=[{"standard_response": "BILLA", "share": 30}, {"standard_response": "BILLB", "share": 70}])
    browser.get(f"{live_server.url}/admin/channels_app/campaign/{draft.pk}/change/")
    share = wait.until(expected_conditions.visibility_of_element_located((By.NAME, "variants-1-share")))
    assert share.get_attribute("value") == "70"
    browser.execute_script("document.getElementById('variants-group').scrollIntoView()")
    browser.save_screenshot(str(SCREENSHOTS / "27-campaign-draft-variants.png"))
