import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from channels_app.models import Attachment, StandardResponse

ADD = "admin:channels_app_standardresponse_add"


@pytest.mark.django_db
def test_add_starts_by_choosing_a_content_type(admin_client):
    page = admin_client.get(reverse(ADD)).content.decode()

    for value in ("text", "notification", "rich_media", "reply_buttons", "list", "abc_carousel"):
        assert f'data-content-type="{value}"' in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "shown", "hidden"),
    [
        ("text", [], ["template_name", "buttons", "footer"]),
        ("notification", ["template_name", "parameters"], ["buttons", "footer", "header_text"]),
        ("rich_media", ["template_name", "header_text", "footer", "buttons"], ["sections", "items"]),
        ("list", ["list_button", "sections", "header_text"], ["buttons", "template_name"]),
        ("abc_quick_replies", ["items"], ["buttons", "template_name"]),
    ],
)
def test_each_content_type_form_shows_only_its_fields(admin_client, content_type, shown, hidden):
    form = admin_client.get(reverse(ADD), {"content_type": content_type}).context["adminform"].form
    visible = {name for fieldset in admin_client.get(reverse(ADD), {"content_type": content_type})
               .context["adminform"] for line in fieldset for field in line for name in [field.field.name]}

    assert form.content_type == content_type
    assert set(shown) <= visible
    assert not set(hidden) & visible


def _rich_media(**overrides):
    data = {
        "id": "RM1", "name": "Promo", "language": "en", "content_type": "rich_media",
        "body": "Hello {{1}}", "template_name": "promo", "template_id": "", "template_language": "en",
        "parameters": "1 = <$Contact.FirstName$>", "header_type": "text", "header_text": "Big sale",
        "footer": "Reply STOP to opt out", "buttons": '[{"type": "quick_reply", "text": "Yes"}]',
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_create_rich_media_in_the_admin(admin_client, tenant):
    response = admin_client.post(reverse(ADD) + "?content_type=rich_media", _rich_media())

    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = StandardResponse.objects.get(pk="RM1")
    assert saved.structured == {
        "template": {"name": "promo", "language": "en"},
        "parameters": {"1": "<$Contact.FirstName$>"},
        "header": {"type": "text", "text": "Big sale"},
        "footer": "Reply STOP to opt out",
        "buttons": [{"type": "quick_reply", "text": "Yes"}],
    }
    change = admin_client.get(reverse("admin:channels_app_standardresponse_change", args=["RM1"]))
    assert change.context["adminform"].form.initial["header_text"] == "Big sale"


@pytest.mark.django_db
def test_limits_are_shown_next_to_the_field(admin_client):
    data = _rich_media(header_text="h" * 61, footer="f" * 61, buttons='[{"type": "quick_reply", "text": "a\\tb"}]')

    response = admin_client.post(reverse(ADD) + "?content_type=rich_media", data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "60 characters" in errors["header_text"][0]
    assert "60 characters" in errors["footer"][0]
    assert errors["buttons"][0].startswith("Button 1, text: ")  # plain words, not the internal path
    assert "structured" not in " ".join(message for messages in errors.values() for message in messages)
    assert not StandardResponse.objects.exists()


@pytest.mark.django_db
def test_broken_json_is_reported_on_its_field(admin_client):
    response = admin_client.post(reverse(ADD) + "?content_type=rich_media", _rich_media(buttons="[{"))

    assert "Not valid JSON" in response.context["adminform"].form.errors["buttons"][0]


@pytest.mark.django_db
def test_live_preview_renders_with_sample_values(admin_client):
    data = _rich_media(_sample_values='{"Contact": {"FirstName": "Maria"}}')

    page = admin_client.post(reverse("admin:channels_app_standardresponse_preview"), data).content.decode()

    assert "Hello Maria" in page
    assert "Big sale" in page
    assert "Reply STOP to opt out" in page
    assert 'class="button"' in page


@pytest.mark.django_db
def test_live_preview_shows_errors_and_missing_values(admin_client):
    over = admin_client.post(
        reverse("admin:channels_app_standardresponse_preview"), _rich_media(header_text="h" * 61)
    ).content.decode()
    missing = admin_client.post(
        reverse("admin:channels_app_standardresponse_preview"), _rich_media(_sample_values="{}")
    ).content.decode()
    bad_sample = admin_client.post(
        reverse("admin:channels_app_standardresponse_preview"), _rich_media(_sample_values="[1]")
    ).content.decode()

    assert "60 characters" in over
    assert "No value for: Contact.FirstName" in missing
    assert "Sample values" in bad_sample


@pytest.mark.django_db
def test_list_preview_shows_rows(admin_client):
    data = {
        "name": "Menu", "content_type": "list", "body": "Choose a plan", "list_button": "Plans", "header_text": "",
        "footer": "", "sections": '[{"rows": [{"id": "b", "title": "Basic", "description": "5 GB"}]}]',
    }

    page = admin_client.post(reverse("admin:channels_app_standardresponse_preview"), data).content.decode()

    assert "Basic" in page and "5 GB" in page and "Plans" in page


@pytest.mark.django_db
def test_search_by_name_and_text(admin_client, tenant):
    admin_client.post(reverse(ADD) + "?content_type=rich_media", _rich_media())
    changelist = reverse("admin:channels_app_standardresponse_changelist")

    assert b"Promo" in admin_client.get(changelist, {"q": "hello"}).content
    assert b"Promo" not in admin_client.get(changelist, {"q": "goodbye"}).content


@pytest.mark.django_db
def test_attachment_upload_in_the_admin_is_checked_by_content(admin_client, tenant):
    url = reverse("admin:channels_app_attachment_add")
    fake = SimpleUploadedFile("report.pdf", b"just text, not a PDF")
    real = SimpleUploadedFile("report.pdf", b"%PDF-1.7\n" + b"0" * 100)

    refused = admin_client.post(url, {"file": fake, "name": ""})
    accepted = admin_client.post(url, {"file": real, "name": ""})

    assert "not a supported attachment" in str(refused.context["adminform"].form.errors["file"])
    assert accepted.status_code == 302
    assert Attachment.objects.get().mime_type == "application/pdf"


def test_error_paths_are_written_in_plain_words():
    from channels_app.admin.standard_responses import plain_path

    assert plain_path("structured.sections[0].rows[1].title") == "Section 1, row 2, title"
    assert plain_path("structured.buttons[2].id") == "Button 3, reply id"
    assert plain_path("structured.header.text") == "Header, text"


@pytest.mark.django_db
def test_the_reply_buttons_form_offers_row_editors_counters_and_the_preview_beside_it(admin_client, tenant):
    page = admin_client.get(reverse(ADD), {"content_type": "reply_buttons"}).content.decode()

    assert 'class="sr-json"' in page and "data-rows=" in page and "structured_rows.js" in page
    assert 'data-max="1024"' in page and 'data-max="60"' in page
    assert 'class="sr-layout"' in page and 'id="sr-preview-panel"' in page


@pytest.mark.django_db
def test_the_preview_stays_beside_the_errors(admin_client):
    data = _rich_media(header_text="h" * 61, _sample_values='{"Contact": {"FirstName": "Maria"}}')

    page = admin_client.post(reverse("admin:channels_app_standardresponse_preview"), data).content.decode()

    # the error, above
    assert "60 characters" in page
    # and the message as typed, below it: the text with its field values, the footer and the button
    assert page.index("60 characters") < page.index('class="bubble')
    assert "Hello Maria" in page and "Reply STOP to opt out" in page and ">Yes<" in page
    assert "not checked" in page
    # which fields are wrong, for the form's script (it clears the red of a field fixed since)
    assert 'data-invalid="header_text"' in page


@pytest.mark.django_db
def test_a_valid_preview_names_no_field_as_invalid(admin_client):
    page = admin_client.post(reverse("admin:channels_app_standardresponse_preview"), _rich_media()).content.decode()

    assert 'data-invalid=""' in page and "not checked" not in page
    assert "footer" in page.split('data-checked="')[1].split('"')[0].split()


@pytest.mark.django_db
def test_every_demo_response_previews_with_no_missing_field(admin_client):
    from django.core.management import call_command

    from channels_app.management.commands.seed_demo import DEMO_RESPONSES

    call_command("seed_demo")
    for response_id, *_ in DEMO_RESPONSES:
        # given the change page of a demo response, as the browser has it
        change = admin_client.get(reverse("admin:channels_app_standardresponse_change", args=[response_id]))
        form = change.context["adminform"].form
        data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
        data.update(id=response_id, _sample_values=change.context["sample_values"])

        # when the preview renders it
        page = admin_client.post(reverse("admin:channels_app_standardresponse_preview"), data).content.decode()

        # then every field code has a value, and nothing is wrong
        assert "No value for" not in page, (response_id, page)
        assert 'class="errors"' not in page and 'class="bubble' in page, (response_id, page)
