"""The tenant's admin page shows and changes its retention and shows the last purge (issue 26, item 5); the
contact's Erase asks first, in headless Chromium."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Contact, Tenant
from channels_app.services.lifecycle import tenant_purge
from tests.conftest import member
from tests.lifecycle_data import conversation
from tests.test_browser import SCREENSHOTS, admin_sign_in, browser  # noqa: F401  (the fixture)


def _admin(tenant) -> Client:
    client = Client()
    client.force_login(member("dpo", "Administrator", tenants=[tenant]))
    return client


@pytest.mark.django_db
def test_the_tenant_page_shows_and_changes_the_retention(tenant):
    # given
    client = _admin(tenant)
    url = f"/admin/channels_app/tenant/{tenant.pk}/change/"
    # when
    saved = client.post(url, {"name": tenant.name, "retention_conversations": "365", "retention_deliveries": "90",
                              "retention_campaigns": "", "retention_audit": "730",
                              "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    # then
    assert saved.status_code == 302, saved.content[:2000]
    tenant.refresh_from_db()
    assert tenant.retention_days == {"conversations": 365, "deliveries": 90, "campaigns": None, "audit": 730}
    page = client.get(url).content.decode()
    assert 'name="retention_conversations" value="365"' in page
    assert "Never: no retention was set" in page
    listed = client.get("/admin/channels_app/tenant/").content.decode()
    assert "conversations 365 d, deliveries 90 d, audit 730 d" in listed


@pytest.mark.django_db
def test_a_bad_retention_is_refused_on_the_page_and_nothing_changes(tenant):
    client = _admin(tenant)
    answer = client.post(f"/admin/channels_app/tenant/{tenant.pk}/change/", {
        "name": "Renamed", "retention_conversations": "-1", "retention_audit": "36501",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    assert answer.status_code == 200
    assert answer.content.decode().count("errorlist") >= 2
    tenant.refresh_from_db()
    assert (tenant.name, tenant.retention_days) == ("Environment", {})


@pytest.mark.django_db
def test_the_tenant_page_shows_the_last_purge_and_what_it_removed(channel):
    tenant = channel.tenant
    Tenant.objects.filter(pk=tenant.pk).update(retention_days={"conversations": 30})
    tenant.refresh_from_db()
    conversation(channel, ended_at=timezone.now() - timedelta(days=31), with_file=False)
    tenant_purge(tenant=tenant)
    page = _admin(tenant).get(f"/admin/channels_app/tenant/{tenant.pk}/change/").content.decode()
    assert 'class="dms-purge-removed"' in page
    assert "<td>interactions</td><td>1</td>" in page and "<td>messages</td><td>2</td>" in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_administrator_sees_the_retention_and_erases_a_contact_after_confirming(browser, live_server,  # noqa: F811
                                                                                   channel):
    # given: a tenant with a retention and a purge behind it, and a customer
    tenant = channel.tenant
    Tenant.objects.filter(pk=tenant.pk).update(retention_days={"conversations": 365, "deliveries": 90,
                                                               "audit": 730})
    tenant.refresh_from_db()
    for number in range(3):
        conversation(channel, client_id=f"1555000000{number}", ended_at=timezone.now() - timedelta(days=400))
    tenant_purge(tenant=tenant)
    customer = conversation(channel, client_id="15556667777", ended_at=timezone.now()).contact
    Contact.objects.filter(pk=customer.pk).update(first_name="Ann", last_name="Lee")
    member("dpo", "Administrator", tenants=[tenant], password="dpo-pass-123")
    wait = WebDriverWait(browser, 20)
    admin_sign_in(browser, live_server, wait, "dpo", "dpo-pass-123")

    # when they open the tenant
    browser.get(f"{live_server.url}/admin/channels_app/tenant/{tenant.pk}/change/")
    # then its retention and the last purge are there
    assert browser.find_element(By.NAME, "retention_conversations").get_attribute("value") == "365"
    assert browser.find_element(By.NAME, "retention_campaigns").get_attribute("value") == ""
    removed = browser.find_element(By.CSS_SELECTOR, ".dms-purge-removed").text
    assert "interactions 3" in removed and "files 6" in removed
    browser.save_screenshot(str(SCREENSHOTS / "26-tenant-retention.png"))

    # when they erase the customer from the contact's page
    browser.get(f"{live_server.url}/admin/channels_app/contact/{customer.pk}/change/")
    assert browser.find_element(By.ID, "contact-export").get_attribute("href").endswith(
        f"/admin/channels_app/contact/{customer.pk}/export/")
    browser.save_screenshot(str(SCREENSHOTS / "26-contact-export-erase.png"))
    browser.find_element(By.ID, "contact-erase").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "erase-confirm")))
    # then they are asked first, with what goes
    assert "This cannot be undone" in browser.page_source
    assert Contact.objects.filter(pk=customer.pk).exists()
    browser.save_screenshot(str(SCREENSHOTS / "26-erase-confirmation.png"))
    browser.find_element(By.ID, "erase-confirm").click()
    wait.until(expected_conditions.url_matches(r"/admin/channels_app/contact/$"))
    assert f"Contact {customer.pk} erased" in browser.page_source
    assert not Contact.objects.filter(pk=customer.pk).exists()
