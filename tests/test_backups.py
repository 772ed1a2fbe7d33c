"""Backups that restore (issue 26, item 4): `manage.py backup`, the installation emptied, `manage.py restore`,
and every row and every file back, the server answering with the same channels, secrets and tokens."""

import hashlib
import hmac
import json
import shutil
import tarfile
from io import StringIO

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from channels_app.models import Channel, Contact, Interaction, Message, MessageAttachment
from channels_app.services.backups import row_counts
from tests.conftest import _client_for, member
from tests.lifecycle_data import conversation, stored_names

SECRET = "channel-secret-kept-in-the-backup"


def _empty_the_installation() -> None:
    """Every table gone and every file: what a lost server leaves."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            tables = [row[0] for row in cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()]
            for table in tables:
                cursor.execute(f'DROP TABLE "{table}"')
            cursor.execute("PRAGMA foreign_keys = ON")
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


def _signed_post(client, channel_id: str, body: dict, secret: str):
    raw = json.dumps(body).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    return client.post(f"/nexus/v3/channels/{channel_id}/messages", raw, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE=f"sha1={digest}")


# serialized_rollback: the database as migrations leave it (permissions, default groups), whatever the
# transactional tests before this one flushed.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_backup_restores_every_row_and_file_and_the_same_channels_secrets_and_tokens(channel, tmp_path):
    # given: an installation with a channel (its secret), a token, conversations with files
    from channels_app.selectors import channels_by_id

    Channel.objects.filter(pk=channel.pk).update(secret=SECRET)
    token = Token.objects.get_or_create(user=member("operator", "Administrator", tenants=[channel.tenant]))[0].key
    interactions = [conversation(channel, client_id=f"1555000000{n}", ended_at=timezone.now()) for n in range(3)]
    files = {name: default_storage.open(name).read() for name in stored_names(interactions)}
    assert len(files) == 6
    rows = row_counts()
    messages = sorted(Message.objects.values_list("pk", "text"))
    archive = tmp_path / "backup.tar.gz"
    # when
    out = StringIO()
    call_command("backup", "--output", str(archive), stdout=out)
    _empty_the_installation()
    assert not default_storage.exists(next(iter(files)))
    call_command("restore", str(archive), "--no-input", stdout=out)
    channels_by_id.clear()
    # then: every row and every file
    assert row_counts() == rows
    assert sorted(Message.objects.values_list("pk", "text")) == messages
    assert {name: default_storage.open(name).read() for name in stored_names(interactions)} == files
    assert MessageAttachment.objects.count() == 3 and Interaction.objects.count() == 3
    assert "Restored" in out.getvalue() and "every table and file checked" in out.getvalue()
    # and the server answers with the same channels, secrets and tokens
    api = _client_for(Token.objects.get(key=token).user)
    listed = api.get("/api/channels/")
    assert listed.status_code == 200
    assert [c["channel_id"] for c in listed.json()["results"]] == [channel.channel_id]
    answer = _signed_post(Client(), channel.channel_id, {"messages": [{
        "type": "Text", "text": "Back again", "channel": {"messageId": "after-restore", "from": {"id": "15550000001"},
                                                          "to": {"id": channel.business_id}}}]}, SECRET)
    assert answer.status_code == 200, answer.content
    assert Contact.objects.filter(client_id="15550000001").count() == 1


@pytest.mark.django_db
def test_restore_refuses_what_is_not_a_backup_of_this_kind(tmp_path):
    assert_refused = pytest.raises(CommandError)
    with assert_refused:
        call_command("restore", str(tmp_path / "missing.tar.gz"), "--no-input")
    archive = tmp_path / "other.tar.gz"
    manifest = tmp_path / "manifest.json"
    other = "sqlite" if connection.vendor == "postgresql" else "postgresql"
    manifest.write_text(json.dumps({"format": 1, "database": other, "rows": {}, "files": 0}))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(manifest, arcname="manifest.json")
    with pytest.raises(CommandError, match=f"backup is of a {other} database"):
        call_command("restore", str(archive), "--no-input")
