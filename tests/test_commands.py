import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from channels_app.models import Channel, Endpoint, OptionValue, Tenant
from channels_app.services.options import option_value

ROOT = Path(__file__).resolve().parent.parent


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


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "x" * 64 + "-production-secret-key-for-the-deploy-check",
        "ALLOWED_HOSTS": "dms.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_needs_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["DEBUG"] = "false"

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
