import io

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from channels_app.models import BusinessAttribute, Channel, OptionValue, Tenant
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
def test_after_a_dry_run_apply_writes_the_checked_file_without_asking_for_it_again(admin_client, channel):
    import re

    url = reverse("admin:channels_app_optionvalue_import")
    upload = SimpleUploadedFile(
        "GenesysHubDriver.cfg",
        b"[interaction-workspace]\nwhatsappsession.transcript-interactions-count = 7\n"
        b"[channel-ghub]\ninbound-route-by-call = 1:session-chat\n",
    )
    # given a dry run of a file, for a channel
    dry = admin_client.post(url, {"file": upload, "channel": channel.channel_id, "dry_run": "on"}).content.decode()
    assert "Dry run (nothing written)" in dry and 'id="option-apply-form"' in dry
    assert "GenesysHubDriver.cfg" in dry
    kept = re.search(r'name="kept" value="([^"]+)"', dry)[1]
    assert option_value(section="interaction-workspace", name="whatsappsession.transcript-interactions-count") != 7

    # when the administrator applies it: no file is sent again
    applied = admin_client.post(url, {"kept": kept}).content.decode()

    # then what the dry run showed is written, where it said
    assert "Import report: 2 set" in applied and 'id="option-apply-form"' not in applied
    assert option_value(section="interaction-workspace", name="whatsappsession.transcript-interactions-count") == 7
    assert option_value(section="channel", name="inbound-route-by-call", channel=channel) == "1:session-chat"
    # and a kept file that was altered on the way is refused, nothing written
    tampered = admin_client.post(url, {"kept": kept.replace(kept[5], "A" if kept[5] != "A" else "B", 1)})
    assert "choose the file again" in tampered.content.decode()
    assert "Import report" not in tampered.content.decode()


@pytest.mark.django_db
def test_a_kept_file_is_applied_only_by_its_user_within_the_hour_and_to_a_channel_it_sees(
        admin_client, staff_user, channel, monkeypatch):
    import re

    from django.test import Client

    from channels_app.admin.configuration import OptionValueAdmin

    url = reverse("admin:channels_app_optionvalue_import")
    upload = SimpleUploadedFile("a.cfg", b"[channel-ghub]\ninbound-route-by-call = 1:session-chat\n")
    dry = admin_client.post(url, {"file": upload, "channel": channel.channel_id, "dry_run": "on"}).content.decode()
    kept = re.search(r'name="kept" value="([^"]+)"', dry)[1]
    operator = Client()
    operator.force_login(staff_user)

    # another user (of the same tenant) cannot apply it
    assert "choose the file again" in operator.post(url, {"kept": kept}).content.decode()
    # nor its user once an hour has passed
    monkeypatch.setattr(OptionValueAdmin, "IMPORT_KEPT_SECONDS", -1)
    assert "choose the file again" in admin_client.post(url, {"kept": kept}).content.decode()
    monkeypatch.undo()
    # nor its user once the channel is no longer one it sees (moved to another tenant)
    other = Tenant.objects.create(id=2, name="Other")
    admin_client.force_login(staff_user)
    upload = SimpleUploadedFile("a.cfg", b"[channel-ghub]\ninbound-route-by-call = 1:session-chat\n")
    dry = admin_client.post(url, {"file": upload, "channel": channel.channel_id, "dry_run": "on"}).content.decode()
    kept = re.search(r'name="kept" value="([^"]+)"', dry)[1]
    Channel.objects.filter(pk=channel.pk).update(tenant=other)
    assert "choose the file again" in admin_client.post(url, {"kept": kept}).content.decode()
    assert "Import report" not in admin_client.post(url, {"kept": kept}).content.decode()


@pytest.mark.parametrize("address", ["http://169.254.169.254/latest", "http://user:pw@example.com/hook"])
def test_a_refused_webhook_address_is_one_error(admin_client, tenant, address):
    response = admin_client.post(reverse("admin:channels_app_channel_add"),
                                 _channel_form(transport="webhook", webhook_url=address))

    errors = response.context["adminform"].form.errors["webhook_url"]
    assert len(errors) == 1, errors  # not "refused" and "needs a webhook URL" together
    assert "needs a webhook URL" not in errors[0]


# --- connecting the third party: what each transport needs ---------------------------------------------------------


def _cloud_form(**overrides):
    return _channel_form(**{
        "channel_id": "channel-wa-cloud", "name": "Cloud", "media_type": "whatsapp", "transport": "whatsapp_cloud",
        "business_id": "15550783881", "phone_number_id": "106540352242922", "waba_id": "102290129340398",
        "access_token": "EAAG-token", "app_secret": "meta-app-secret", "verify_token": "", **overrides})


@pytest.fixture
def cloud_channel(tenant):
    from tests.factories import ChannelFactory

    return ChannelFactory(
        channel_id="channel-wa-cloud", tenant=tenant, media_type="whatsapp", transport="whatsapp_cloud",
        business_id="15550783881", phone_number_id="106540352242922", waba_id="102290129340398",
        access_token="EAAG-token", app_secret="meta-app-secret", verify_token="typed-verify-token",
    )


@pytest.mark.django_db
def test_a_cloud_channel_page_offers_meta_s_webhook_not_nexus(admin_client, cloud_channel):
    page = admin_client.get(reverse("admin:channels_app_channel_change", args=[cloud_channel.pk])).content.decode()

    panel = page.split('id="channel-connect"')[1].split("</fieldset>")[0]
    assert "/whatsapp/channel-wa-cloud/webhook" in panel
    assert "/nexus/" not in panel and "give it to the third party" not in panel
    assert "messages" in panel and "message_template_status_update" in panel  # the webhook fields to subscribe
    assert "Verify token" in panel and reverse("admin:channels_app_channel_rotate_verify_token",
                                               args=[cloud_channel.pk]) in panel
    assert "typed-verify-token" not in page and "EAAG-token" not in page and "meta-app-secret" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(("base", "warned"), [("https://dms.example.com", False), ("http://127.0.0.1:8000", True)])
def test_a_cloud_channel_page_warns_when_meta_cannot_reach_the_url(admin_client, cloud_channel, settings, base,
                                                                    warned):
    settings.PUBLIC_BASE_URL = base

    page = admin_client.get(reverse("admin:channels_app_channel_change", args=[cloud_channel.pk])).content.decode()

    assert f"{base}/whatsapp/channel-wa-cloud/webhook" in page
    assert ('id="cloud-webhook-not-https"' in page) is warned


@pytest.mark.django_db
def test_a_hub_channel_page_offers_the_nexus_url_and_the_secret(admin_client, channel):
    page = admin_client.get(reverse("admin:channels_app_channel_change", args=[channel.pk])).content.decode()

    panel = page.split('id="channel-connect"')[1].split("</fieldset>")[0]
    assert f"/nexus/v3/channels/{channel.channel_id}/messages" in panel
    assert reverse("admin:channels_app_channel_rotate_secret", args=[channel.pk]) in panel
    assert "/whatsapp/" not in panel


@pytest.mark.django_db
def test_the_add_page_has_no_circuit_fields(admin_client, tenant):
    page = admin_client.get(reverse("admin:channels_app_channel_add")).content.decode()

    assert "consecutive" not in page.lower() and "down since" not in page.lower() and "Circuit" not in page


@pytest.mark.django_db
def test_creating_a_cloud_channel_generates_its_verify_token_and_shows_it_once(admin_client, tenant):
    response = admin_client.post(reverse("admin:channels_app_channel_add"), _cloud_form(), follow=True)

    created = Channel.objects.get(channel_id="channel-wa-cloud")
    assert len(created.verify_token) >= 32
    shown = [str(message) for message in response.context["messages"]]
    assert any(created.verify_token in message and "Verify token" in message for message in shown), shown
    assert not any(created.secret in message for message in shown)  # Meta never sees the channel secret
    again = admin_client.get(reverse("admin:channels_app_channel_change", args=[created.pk])).content.decode()
    assert created.verify_token not in again


@pytest.mark.django_db
def test_saving_a_cloud_channel_with_the_token_blank_keeps_it(admin_client, cloud_channel):
    url = reverse("admin:channels_app_channel_change", args=[cloud_channel.pk])

    response = admin_client.post(url, _cloud_form(access_token="", app_secret=""))

    assert response.status_code == 302, response.context["adminform"].form.errors
    cloud_channel.refresh_from_db()
    assert cloud_channel.verify_token == "typed-verify-token" and cloud_channel.access_token == "EAAG-token"


@pytest.mark.django_db
def test_rotating_the_verify_token_asks_first_then_shows_the_new_one_once(admin_client, cloud_channel):
    url = reverse("admin:channels_app_channel_rotate_verify_token", args=[cloud_channel.pk])

    asked = admin_client.get(url)
    cloud_channel.refresh_from_db()
    assert asked.status_code == 200 and cloud_channel.verify_token == "typed-verify-token"

    done = admin_client.post(url, follow=True)

    cloud_channel.refresh_from_db()
    assert cloud_channel.verify_token != "typed-verify-token"
    assert any(cloud_channel.verify_token in str(message) for message in done.context["messages"])


# --- rotating the secret asks first and may keep the old one for a while ------------------------------------------


@pytest.mark.django_db
def test_rotating_the_secret_asks_first(admin_client, channel):
    old = channel.secret
    url = reverse("admin:channels_app_channel_rotate_secret", args=[channel.pk])

    page = admin_client.get(url)

    assert page.status_code == 200 and 'name="grace_hours"' in page.content.decode()
    channel.refresh_from_db()
    assert channel.secret == old


@pytest.mark.django_db
def test_rotating_the_secret_with_a_grace_keeps_the_old_one_valid(admin_client, channel):
    old = channel.secret
    url = reverse("admin:channels_app_channel_rotate_secret", args=[channel.pk])

    response = admin_client.post(url, {"grace_hours": "3"}, follow=True)

    channel.refresh_from_db()
    assert channel.secret != old and channel.inbound_secrets(channel.updated_at) == [channel.secret, old]
    shown = " ".join(str(message) for message in response.context["messages"])
    assert channel.secret in shown and "old secret" in shown
    assert 'id="secret-grace"' in response.content.decode()  # the channel's page says so while it lasts


@pytest.mark.django_db
@pytest.mark.parametrize("grace", ["25", "-1", "x"])
def test_rotating_the_secret_refuses_a_grace_outside_0_to_24(admin_client, channel, grace):
    old = channel.secret

    response = admin_client.post(reverse("admin:channels_app_channel_rotate_secret", args=[channel.pk]),
                                 {"grace_hours": grace})

    assert response.status_code == 200 and response.context["form"].errors["grace_hours"]
    channel.refresh_from_db()
    assert channel.secret == old


@pytest.mark.django_db
def test_the_list_action_asks_before_rotating(admin_client, channel):
    old = channel.secret
    changelist = reverse("admin:channels_app_channel_changelist")
    chosen = {"action": "rotate_secrets", "_selected_action": [channel.pk]}

    asked = admin_client.post(changelist, {**chosen, "index": "0"})

    channel.refresh_from_db()
    assert asked.status_code == 200 and channel.secret == old
    assert 'name="grace_hours"' in asked.content.decode()

    done = admin_client.post(changelist, {**chosen, "confirm": "yes", "grace_hours": "0"}, follow=True)

    channel.refresh_from_db()
    assert channel.secret != old and channel.inbound_secrets(channel.updated_at) == [channel.secret]
    assert any(channel.secret in str(message) for message in done.context["messages"])
