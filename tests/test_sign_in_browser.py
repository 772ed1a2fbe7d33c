"""Headless Chromium signs in as a user of the identity provider would: the admin's login page, the provider's
form (tests/identity_provider.py, on 127.0.0.1), back with the code, the authenticator enrolled from the QR
code's key, the recovery codes, the admin; then a second sign-in that asks for the code."""

import time
from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Tenant
from channels_app.services.roles import roles_ensure_default_groups
from tests.identity_provider import IdentityProvider
from tests.test_browser import SCREENSHOTS, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def code_for(secret: str, *, steps_ahead: int = 0) -> str:
    key = secret.replace(" ", "")
    totp = TOTP(b32decode(key + "=" * (-len(key) % 8)))
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_administrator_signs_in_with_the_provider_and_a_second_factor(browser, live_server, settings):  # noqa: F811
    roles_ensure_default_groups()
    Tenant.objects.get_or_create(id=1, defaults={"name": "Tenant 1"})
    wait = WebDriverWait(browser, 20)
    with IdentityProvider() as provider:
        provider.set_user("ann", {"email": "ann@example.com", "groups": ["dms-admins"]})
        settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = provider.url, "dms", "secret"
        settings.OIDC_PROVIDER_NAME = "Example ID"
        settings.OIDC_GROUP_MAP = {"dms-admins": {"groups": ["Administrator"], "tenants": [1]}}
        settings.REQUIRE_2FA_GROUPS = ["Administrator"]

        # the login page offers the provider
        browser.set_window_size(1000, 760)
        browser.get(f"{live_server.url}/admin/login/")
        button = browser.find_element(By.ID, "sign-in-sso")
        assert button.text == "Sign in with Example ID"
        browser.save_screenshot(str(SCREENSHOTS / "28-login-sso.png"))

        # to the provider and back
        button.click()
        wait.until(expected_conditions.url_contains(f"{provider.url}/oauth2/authorize"))
        browser.find_element(By.NAME, "sub").send_keys("ann")
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

        # the first sign-in enrols an authenticator: QR code and key
        wait.until(expected_conditions.url_matches(r"/sign-in/enrol/$"))
        browser.set_window_size(1000, 1000)
        assert browser.find_element(By.CSS_SELECTOR, "img.qr").get_attribute("src").startswith("data:image/svg")
        secret = browser.find_element(By.ID, "totp-secret").text
        browser.save_screenshot(str(SCREENSHOTS / "28-enrol-qr.png"))
        browser.find_element(By.NAME, "code").send_keys(code_for(secret))
        browser.find_element(By.CSS_SELECTOR, "#enrol-form input[type=submit]").click()

        # the recovery codes, once, then the admin
        wait.until(expected_conditions.presence_of_element_located((By.ID, "recovery-codes")))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#recovery-codes li")) == 10
        browser.save_screenshot(str(SCREENSHOTS / "28-recovery-codes.png"))
        browser.find_element(By.ID, "continue").click()
        wait.until(expected_conditions.url_matches(r"/admin/$"))
        assert "ann@example.com" in browser.find_element(By.ID, "user-tools").text.lower()

        # a later sign-in asks for the code
        browser.delete_all_cookies()
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.ID, "sign-in-sso").click()
        wait.until(expected_conditions.url_contains(f"{provider.url}/oauth2/authorize"))
        browser.find_element(By.NAME, "sub").send_keys("ann")
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait.until(expected_conditions.url_matches(r"/sign-in/code/$"))
        browser.set_window_size(1000, 700)
        browser.find_element(By.NAME, "code").send_keys("000000" if code_for(secret, steps_ahead=1) != "000000"
                                                        else "111111")
        browser.find_element(By.CSS_SELECTOR, "#code-form input[type=submit]").click()
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".errorlist")))
        browser.save_screenshot(str(SCREENSHOTS / "28-code-prompt.png"))
        # django-otp holds the device back for a second after a wrong code: cleared here rather than waited
        user = get_user_model().objects.get(email="ann@example.com")
        user.totpdevice_set.update(throttling_failure_count=0, throttling_failure_timestamp=None)
        browser.find_element(By.NAME, "code").clear()
        browser.find_element(By.NAME, "code").send_keys(code_for(secret, steps_ahead=1))
        browser.find_element(By.CSS_SELECTOR, "#code-form input[type=submit]").click()
        wait.until(expected_conditions.url_matches(r"/admin/$"))
        assert "ann@example.com" in browser.find_element(By.ID, "user-tools").text.lower()
