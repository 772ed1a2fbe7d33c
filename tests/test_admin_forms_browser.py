"""The options list and an option's page, and the standard response form while the user types, in headless
Chromium: what a server-side test cannot see (widths, scripts)."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import OptionValue
from tests.test_browser import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser


def _login(driver, live_server, width: int) -> WebDriverWait:
    driver.set_window_size(width, 1000)
    driver.get(f"{live_server.url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("forms-pass-123")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.url_matches(r"/admin/$"))
    return wait


@pytest.fixture
def admin_in_browser(browser, live_server, django_user_model, tenant):  # noqa: F811
    django_user_model.objects.create_superuser("admin", password="forms-pass-123")
    return browser


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("width", [1400, 1280])
def test_every_column_of_the_options_list_is_on_screen(admin_in_browser, live_server, width):
    driver = admin_in_browser
    _login(driver, live_server, width)

    driver.get(f"{live_server.url}/admin/channels_app/optionvalue/")

    table = driver.find_element(By.ID, "result_list")
    viewport = driver.execute_script("return document.documentElement.clientWidth")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    off_screen = [h.text for h in headers if h.rect["x"] + h.rect["width"] > viewport + 1]
    assert not off_screen, f"columns off screen at {width} px: {off_screen}"
    assert driver.execute_script("return document.documentElement.scrollWidth") <= viewport
    scroller = driver.execute_script(
        "const t = document.getElementById('result_list').parentElement; return t.scrollWidth - t.clientWidth")
    assert scroller <= 1, "the table scrolls sideways inside its box"
    # what each option does is still there, once a row
    assert "Specifies the maximum size of the message" in table.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_options_help_is_shown_once_on_its_page(admin_in_browser, live_server):
    driver = admin_in_browser
    _login(driver, live_server, 1400)
    row = OptionValue.objects.get(name="whatsappsession.transcript-interactions-count", channel=None)

    driver.get(f"{live_server.url}/admin/channels_app/optionvalue/{row.pk}/change/")

    helps = [h.text for h in driver.find_elements(By.CSS_SELECTOR, ".help") if "Valid values" in h.text]
    assert len(helps) == 1, helps
    assert "Any integer from 1 to 1000" in helps[0]
    assert driver.page_source.count("Specifies the number of previous chat sessions") == 1
