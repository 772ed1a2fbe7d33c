from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from channels_app.models import Endpoint
from channels_app.services.options import option_value, options_export_cfg, options_import_cfg

FIXTURE = Path(__file__).parent / "fixtures" / "GenesysHubDriver.cfg"
IW = "interaction-workspace"


@pytest.mark.django_db
def test_import_reports_set_skipped_and_refused(tenant):
    report = options_import_cfg(text=FIXTURE.read_text())

    assert len(report.set) == 6
    assert len(report.refused) == 2
    assert "whatsappsession.transcript-interactions-count" in report.refused[0]
    assert "Any integer from 1 to 1000" in report.refused[0]
    assert report.refused[1].startswith("[channel-ghub]: no channel has the id channel-ghub")
    skipped = "\n".join(report.skipped)
    assert "whatsappsession.unknown-option" in skipped
    assert "[log] verbose" in skipped
    assert option_value(section=IW, name="whatsappsession.max-text-message-size") == 2048
    assert option_value(section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring") is True
    assert option_value(section=IW, name="whatsappsession.transcript-interactions-count") == 1
    # the section of a channel that does not exist is not written as global values
    assert option_value(section="channel", name="inbound-route-by-call") == ""
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_a_section_of_a_channel_that_does_not_exist_is_refused_whole_and_named(channel):
    text = ("[channel]\nsimulator-send-receipts = false\n"
            "[channel-ghost]\ninbound-route-by-call = 1:vip\nsimulator-auto-reply = hello\n"
            "endpoints = ,1:vip\n")

    for dry_run in (True, False):
        report = options_import_cfg(text=text, dry_run=dry_run)

        assert report.refused == ["[channel-ghost]: no channel has the id channel-ghost; its 3 values were not "
                                  "imported (choose the channel of the [channel-…] sections, or create the "
                                  "channel first)"]
        assert report.set == ["[channel] simulator-send-receipts -> global = false"]
    assert option_value(section="channel", name="inbound-route-by-call") == ""
    assert option_value(section="channel", name="simulator-auto-reply", channel=channel).startswith("Thanks!")
    assert option_value(section="channel", name="simulator-send-receipts") is False
    assert not Endpoint.objects.filter(queue_key="1:vip").exists()


@pytest.mark.django_db
def test_a_channel_section_as_export_writes_it_applies_to_a_channel_whose_id_lacks_the_prefix(tenant):
    from tests.factories import ChannelFactory

    third_party = ChannelFactory(channel_id="0123456789", tenant=tenant)

    report = options_import_cfg(text="[channel-0123456789]\ninbound-route-by-call = 1:vip\n")

    assert report.set == ["[channel-0123456789] inbound-route-by-call -> channel 0123456789 = 1:vip"]
    assert option_value(section="channel", name="inbound-route-by-call", channel=third_party) == "1:vip"


@pytest.mark.django_db
def test_import_for_a_channel_sets_overrides_and_endpoints(channel):
    report = options_import_cfg(text=FIXTURE.read_text(), channel=channel)

    assert len(report.set) == 8
    assert option_value(section=IW, name="whatsappsession.max-text-message-size", channel=channel) == 2048
    assert option_value(section=IW, name="whatsappsession.max-text-message-size") == 4096
    assert set(Endpoint.objects.filter(channel=channel).values_list("queue_key", flat=True)) == {
        "1:session-chat",
        "1:session-WA-sendSR",
    }


@pytest.mark.django_db
def test_a_channel_section_named_after_a_channel_applies_to_it(channel):
    text = f"[{channel.channel_id}]\ninbound-route-by-call = 1:vip\n"

    options_import_cfg(text=text)

    assert option_value(section="channel", name="inbound-route-by-call", channel=channel) == "1:vip"


@pytest.mark.django_db
def test_export_then_import_round_trips(channel):
    options_import_cfg(text="[dms]\nsession-shutdown-timeout = 900\n")
    exported = options_export_cfg(channel=channel)

    report = options_import_cfg(text=exported, channel=channel)

    assert not report.refused and not report.skipped
    assert "session-shutdown-timeout = 900" in exported
    assert "endpoints = ,1:session-chat" in exported


@pytest.mark.django_db
def test_management_command_prints_the_report_and_fails_on_refusals(tenant, capsys):
    with pytest.raises(CommandError, match="2 refused"):
        call_command("import_options", str(FIXTURE))

    out = capsys.readouterr().out
    assert "set: 6, skipped: 2, refused: 2" in out
    assert "refused  [channel-ghub]: no channel has the id channel-ghub" in out


@pytest.mark.django_db
def test_management_command_errors(tenant, tmp_path):
    with pytest.raises(CommandError, match="Unknown channel"):
        call_command("import_options", str(FIXTURE), "--channel", "ghost")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_options", str(tmp_path / "missing.cfg"))
    broken = tmp_path / "broken.cfg"
    broken.write_text("no section header\n")
    with pytest.raises(CommandError, match="not a valid .cfg"):
        call_command("import_options", str(broken))


@pytest.mark.django_db
def test_export_command_writes_every_section(tenant, capsys):
    call_command("export_options")

    out = capsys.readouterr().out
    for section in ("[interaction-workspace]", "[chat-server]", "[dms]", "[channel]"):
        assert section in out
