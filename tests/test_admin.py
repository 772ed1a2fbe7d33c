import io

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from channels_app.models import BusinessAttribute, Channel, OptionValue
from channels_app.services.options import option_value


@pytest.fixture
def admin_client_with_data(admin_client, channel):
    return admin_client


def _admin_urls(request):
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        yield model, reverse(f"{prefix}_changelist")
        if model_admin.has_add_permission(request):  # rows written by services only have no add page
            yield model, reverse(f"{prefix}_add")


@pytest.mark.django_db
def test_every_admin_page_renders_for_a_superuser(admin_client_with_data, admin_user, rf):
    request = rf.get("/admin/")
    request.user = admin_user
    assert admin_client_with_data.get("/admin/").status_code == 200
    for model, url in _admin_urls(request):
        response = admin_client_with_data.get(url)
        assert response.status_code == 200, url
        instance = model._default_manager.first()
        if instance is not None:
            change_url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[instance.pk])
            assert admin_client_with_data.get(change_url).status_code == 200, change_url


@pytest.mark.django_db
def test_changelist_search_and_filters(admin_client_with_data):
    url = reverse("admin:channels_app_optionvalue_changelist")
    response = admin_client_with_data.get(url, {"q": "max-text", "section": "interaction-workspace"})
    assert response.status_code == 200
    assert b"whatsappsession.max-text-message-size" in response.content
    channels = admin_client_with_data.get(reverse("admin:channels_app_channel_changelist"), {"q": "REAL"})
    assert b"channel-whatsapp-REAL" in channels.content


@pytest.mark.django_db
def test_channel_page_masks_the_secret(admin_client_with_data, channel):
    response = admin_client_with_data.get(reverse("admin:channels_app_channel_change", args=[channel.pk]))

    assert channel.secret.encode() not in response.content


def _channel_form(**overrides):
    data = {
        "channel_id": "channel-abc-hub-sim",
        "name": "Apple",
        "tenant": "1",
        "media_type": "abc",
        "transport": "simulator",
        "business_id": "19251112222",
        "webhook_url": "",
        "secret": "",
        "retry_timeout_seconds": "600",
        "retry_attempts": "5",
        "enabled": "on",
        "inbound_route_by_call": "1:session-chat",
        "endpoints-TOTAL_FORMS": "1",
        "endpoints-INITIAL_FORMS": "0",
        "endpoints-0-queue_key": "1:session-chat",
        "option_values-TOTAL_FORMS": "0",
        "option_values-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_create_channel_in_the_admin(admin_client, tenant):
    response = admin_client.post(reverse("admin:channels_app_channel_add"), _channel_form())

    assert response.status_code == 302, response.context["adminform"].form.errors
    created = Channel.objects.get(channel_id="channel-abc-hub-sim")
    assert created.secret
    assert list(created.endpoints.values_list("queue_key", flat=True)) == ["1:session-chat"]
    assert option_value(section="channel", name="inbound-route-by-call", channel=created) == "1:session-chat"


@pytest.mark.django_db
def test_admin_shows_channel_errors_next_to_the_fields(admin_client, tenant):
    data = _channel_form(
        transport="webhook", inbound_route_by_call="9:nowhere", **{"endpoints-0-queue_key": "session-chat"}
    )

    response = admin_client.post(reverse("admin:channels_app_channel_add"), data)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "webhook_url" in form.errors
    assert "inbound_route_by_call" in form.errors
    assert response.context["inline_admin_formsets"][0].formset.errors[0]["queue_key"]
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_editing_an_option_shows_its_definition_and_refuses_invalid_values(admin_client):
    row = OptionValue.objects.get(name="whatsappsession.transcript-interactions-count", channel=None)
    url = reverse("admin:channels_app_optionvalue_change", args=[row.pk])

    page = admin_client.get(url).content.decode()
    assert "Any integer from 1 to 1000" in page
    assert "At the next interaction" in page
    response = admin_client.post(url, {"value": "1001"})

    assert response.status_code == 200
    assert "Any integer from 1 to 1000" in str(response.context["adminform"].form.errors["value"])
    row.refresh_from_db()
    assert row.value == "1"
    assert admin_client.post(url, {"value": "25"}).status_code == 302
    row.refresh_from_db()
    assert row.value == "25"


@pytest.mark.django_db
def test_import_cfg_from_the_admin_shows_the_report(admin_client, tenant):
    upload = SimpleUploadedFile(
        "options.cfg",
        b"[interaction-workspace]\nwhatsappsession.max-text-message-size = 0\n"
        b"whatsappsession.transcript-interactions-count = 3\nbogus = 1\n",
    )

    response = admin_client.post(reverse("admin:channels_app_optionvalue_import"), {"file": upload})

    assert response.status_code == 200
    page = response.content.decode()
    assert "1 set, 1 skipped, 1 refused" in page
    assert "Any integer from 1 to 2147483647" in page
    assert option_value(section="interaction-workspace", name="whatsappsession.transcript-interactions-count") == 3


@pytest.mark.django_db
def test_export_cfg_from_the_admin(admin_client, channel):
    response = admin_client.get(reverse("admin:channels_app_optionvalue_export"), {"channel": channel.channel_id})

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = io.BytesIO(response.content).read().decode()
    assert "[channel-whatsapp-REAL]" in text
    assert admin_client.get(reverse("admin:channels_app_optionvalue_export"), {"channel": "ghost"}).status_code == 404


@pytest.mark.django_db
def test_global_option_rows_cannot_be_deleted_only_reset(admin_client):
    row = OptionValue.objects.get(name="session-shutdown-timeout", channel=None)
    row.value = "900"
    row.save()

    delete = admin_client.get(reverse("admin:channels_app_optionvalue_delete", args=[row.pk]))
    reset = admin_client.post(
        reverse("admin:channels_app_optionvalue_changelist"),
        {"action": "reset_to_default", "_selected_action": [row.pk]},
    )

    assert delete.status_code == 403
    assert reset.status_code == 302
    row.refresh_from_db()
    assert row.value == "1800"


@pytest.mark.django_db
def test_whatsapp_role_groups_exist(admin_client):
    from django.contrib.auth.models import Group

    senior = Group.objects.get(name="WhatsApp senior agent")
    assert {p.codename for p in senior.permissions.all()} >= {
        "whatsapp_can_send_files",
        "whatsapp_can_change_attachments_in_notification",
        "whatsapp_can_change_attachments_in_reply_button",
        "whatsapp_can_create_new_session_from_other_media",
    }
    assert BusinessAttribute.objects.filter(name="Interaction Subtype").exists()


@pytest.mark.django_db
def test_import_cfg_dry_run_writes_nothing_and_says_where_values_would_go(admin_client, channel):
    upload = SimpleUploadedFile(
        "options.cfg",
        b"[interaction-workspace]\nwhatsappsession.transcript-interactions-count = 7\n"
        b"[channel-ghub]\ninbound-route-by-call = 1:session-chat\nendpoints = ,1:session-chat\n",
    )

    response = admin_client.post(reverse("admin:channels_app_optionvalue_import"),
                                 {"file": upload, "channel": channel.channel_id, "dry_run": "on"})

    page = response.content.decode()
    assert "Dry run (nothing written)" in page
    assert "whatsappsession.transcript-interactions-count -&gt; global = 7" in page
    assert f"inbound-route-by-call -&gt; channel {channel.channel_id}" in page
    assert "--channel" not in page
    assert option_value(section="interaction-workspace", name="whatsappsession.transcript-interactions-count") != 7


@pytest.mark.django_db
def test_adding_an_option_that_has_a_value_is_refused_with_a_link_to_it(admin_client):
    from channels_app.models import OptionValue

    existing = OptionValue.objects.get(channel=None, name="whatsappsession.max-text-message-size")

    response = admin_client.post(reverse("admin:channels_app_optionvalue_add"), {
        "option": f"{existing.section}/{existing.name}", "value": "10",
    })

    assert response.status_code == 200
    assert "already has a global value" in response.content.decode()
    assert reverse("admin:channels_app_optionvalue_change", args=[existing.pk]) in response.content.decode()


@pytest.mark.django_db
def test_the_dashboard_links_channels_down_and_needing_attention_to_their_list(admin_client, channel):
    from django.utils import timezone

    from channels_app.models import Channel

    Channel.objects.filter(pk=channel.pk).update(down_since=timezone.now(), consecutive_failures=5,
                                                 needs_attention="access token refused")

    home = admin_client.get("/admin/").content.decode()
    down = admin_client.get("/admin/channels_app/channel/?down_since__isnull=False")
    flagged = admin_client.get("/admin/channels_app/channel/?needs_attention__gt=")

    assert "Channels down" in home and "Channels needing attention" in home
    assert down.status_code == flagged.status_code == 200
    assert channel.channel_id in down.content.decode() and channel.channel_id in flagged.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["http://169.254.169.254/latest", "http://user:pw@example.com/hook"])
def test_a_refused_webhook_address_is_one_error(admin_client, tenant, address):
    response = admin_client.post(reverse("admin:channels_app_channel_add"),
                                 _channel_form(transport="webhook", webhook_url=address))

    errors = response.context["adminform"].form.errors["webhook_url"]
    assert len(errors) == 1, errors  # not "refused" and "needs a webhook URL" together
    assert "needs a webhook URL" not in errors[0]
