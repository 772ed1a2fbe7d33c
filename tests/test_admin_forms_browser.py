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


def _row(driver, field: str):
    return driver.find_element(By.CSS_SELECTOR, f".form-row.field-{field}")


def _is_red(row) -> bool:
    return "errors" in row.get_attribute("class").split() or bool(row.find_elements(By.CSS_SELECTOR, "ul.errorlist"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_fixed_field_stops_being_red_and_the_preview_stays_beside_the_errors(admin_in_browser, live_server):
    driver = admin_in_browser
    wait = _login(driver, live_server, 1400)
    # given a reply-buttons response saved with a footer past its limit and no name
    driver.get(f"{live_server.url}/admin/channels_app/standardresponse/add/?content_type=reply_buttons")
    driver.find_element(By.NAME, "body").send_keys("Hello <$Contact.FirstName$>, was this helpful?")
    driver.find_element(By.NAME, "footer").send_keys("f" * 61)
    driver.find_element(By.CSS_SELECTOR, ".sr-editor > .sr-add").click()
    row = driver.find_elements(By.CSS_SELECTOR, ".sr-editor .sr-row")[-1]
    row.find_element(By.CSS_SELECTOR, "input[data-key=title]").send_keys("Yes")
    row.find_element(By.CSS_SELECTOR, "input[data-key=id]").send_keys("yes")
    driver.find_element(By.NAME, "_save").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".form-row.field-footer.errors")))
    assert _is_red(_row(driver, "name"))
    # the preview says what is wrong, above the message as typed
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sr-preview .errors"))
    preview = driver.find_element(By.ID, "sr-preview")
    assert "60 characters" in preview.find_element(By.CSS_SELECTOR, ".errors").text
    assert "Hello John, was this helpful?" in preview.find_element(By.CSS_SELECTOR, ".bubble").text
    assert "Yes" in preview.text

    # when the footer is corrected: it stops being red while the name, not yet given, stays red
    footer = driver.find_element(By.NAME, "footer")
    footer.clear()
    footer.send_keys("One tap is enough")
    wait.until(lambda d: not _is_red(_row(d, "footer")))
    assert _is_red(_row(driver, "name"))
    assert not driver.find_elements(By.CSS_SELECTOR, "#sr-preview .errors")
    # and once the name is typed, no field is red and the note above the form is gone
    driver.find_element(By.NAME, "name").send_keys("Feedback")
    wait.until(lambda d: not _is_red(_row(d, "name")))
    assert not [note for note in driver.find_elements(By.CSS_SELECTOR, "p.errornote") if note.is_displayed()]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_list_form_counts_rows_across_sections_while_typing(admin_in_browser, live_server, tenant):
    from channels_app.models import StandardResponse
    from channels_app.services.standard_responses import standard_response_save

    def rows(prefix, count):
        return [{"id": f"{prefix}{n}", "title": f"{prefix} {n}"} for n in range(count)]

    standard_response_save(response=StandardResponse(
        id="LIST000000000001", tenant=tenant, name="Plans", language="en", content_type="list",
        body="Choose", structured={"button": "Plans", "sections": [
            {"title": "Mobile", "rows": rows("m", 8)}, {"title": "Home", "rows": rows("h", 1)}]},
    ))
    driver = admin_in_browser
    wait = _login(driver, live_server, 1400)
    driver.get(f"{live_server.url}/admin/channels_app/standardresponse/LIST000000000001/change/")
    total = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".sr-total")))
    row_adds = driver.find_elements(By.CSS_SELECTOR, ".sr-depth-1 > .sr-add")
    assert total.text.startswith("9 / 10 rows") and "over" not in total.get_attribute("class")
    assert len(row_adds) == 2 and all(add.is_enabled() for add in row_adds)

    # when a tenth row is added to the second section, no section can take another
    row_adds[1].click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".sr-total").text.startswith("10 / 10 rows"))
    assert not any(add.is_enabled() for add in driver.find_elements(By.CSS_SELECTOR, ".sr-depth-1 > .sr-add"))
    new_row = driver.find_elements(By.CSS_SELECTOR, ".sr-depth-1 .sr-row")[-1]
    new_row.find_element(By.CSS_SELECTOR, "input[data-key=title]").send_keys("Fiber")
    new_row.find_element(By.CSS_SELECTOR, "input[data-key=id]").send_keys("fiber")
    wait.until(lambda d: "Fiber" in d.find_element(By.ID, "sr-preview").text)

    # nor can a new section (it would need an eleventh row)
    assert not driver.find_element(By.CSS_SELECTOR, ".sr-editor > .sr-add").is_enabled()
    # removing a row of the first section frees one, in every section
    driver.find_elements(By.CSS_SELECTOR, ".sr-depth-1 .sr-row .sr-remove")[0].click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".sr-total").text.startswith("9 / 10 rows"))
    assert all(add.is_enabled() for add in driver.find_elements(By.CSS_SELECTOR, ".sr-depth-1 > .sr-add"))
    assert driver.find_element(By.CSS_SELECTOR, ".sr-editor > .sr-add").is_enabled()
