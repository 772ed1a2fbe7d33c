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

    assert len(report.set) == 7
    assert len(report.refused) == 1
    assert "whatsappsession.transcript-interactions-count" in report.refused[0]
    assert "Any integer from 1 to 1000" in report.refused[0]
    skipped = "\n".join(report.skipped)
    assert "whatsappsession.unknown-option" in skipped
    assert "[log] verbose" in skipped
    assert "endpoints need a channel" in skipped
    assert option_value(section=IW, name="whatsappsession.max-text-message-size") == 2048
    assert option_value(section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring") is True
    assert option_value(section=IW, name="whatsappsession.transcript-interactions-count") == 1
    assert option_value(section="channel", name="inbound-route-by-call") == "1:session-chat"


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
    with pytest.raises(CommandError, match="1 value"):
        call_command("import_options", str(FIXTURE))

    out = capsys.readouterr().out
    assert "set: 7, skipped: 3, refused: 1" in out


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
