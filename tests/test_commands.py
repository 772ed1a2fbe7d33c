import pytest
from django.core.management import call_command

from channels_app.models import Channel, Endpoint, OptionValue, Tenant
from channels_app.services.options import option_value


@pytest.mark.django_db
def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    call_command("seed_demo")

    assert Tenant.objects.filter(id=1).count() == 1
    channel = Channel.objects.get(channel_id="channel-ghub-simulator")
    assert (channel.media_type, channel.transport, channel.business_id) == ("whatsapp", "simulator", "19251112222")
    assert Endpoint.objects.filter(channel=channel).count() == 2
    assert option_value(section="channel", name="inbound-route-by-call", channel=channel) == "1:session-chat"
    assert OptionValue.objects.filter(channel=None, name="whatsappsession.max-text-message-size").exists()
    assert "already present" in capsys.readouterr().out


@pytest.mark.django_db
def test_ensure_admin_creates_the_admin_with_the_given_password(monkeypatch, django_user_model):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "given-password-1")

    call_command("ensure_admin")
    call_command("ensure_admin")

    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("given-password-1")


@pytest.mark.django_db
def test_seed_demo_teaches_with_a_response_of_each_kind_a_finished_campaign_and_conversations():
    from channels_app.models import Campaign, Interaction, StandardResponse

    call_command("seed_demo")

    kinds = set(StandardResponse.objects.values_list("content_type", flat=True))
    assert {"text", "notification", "rich_media", "reply_buttons", "list", "abc_quick_replies"} <= kinds
    campaign = Campaign.objects.get(name="Demo: bill reminder")
    assert campaign.state == "completed" and campaign.upload_report["rejected_total"] == 1
    assert Interaction.objects.filter(type="Inbound").count() == 2
