"""Media end to end: with a real Celery worker (a customer's photo on a loopback URL reaches the
transcript with a thumbnail), and on an S3-compatible store (moto's server mode, started here on
127.0.0.1): uploads, inbound files and presigned links."""

import hashlib
import hmac
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from channels_app.models import Channel, MessageAttachment
from channels_app.services.channels import channel_save
from channels_app.services.media import media_object, message_attachment_fetch
from channels_app.services.standard_responses import attachment_create
from tests.conftest import require_or_skip
from tests.file_server import Served, start_file_server
from tests.test_media import PDF, SECRET, png_bytes, text_with
from tests.workers import WorkerProcess, poll_until, require_shared_database

worker_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def files():
    server = start_file_server()
    yield server
    server.stop()


def _nexus(client, channel_id, messages):
    raw = json.dumps({"messages": messages}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    return client.post(f"/nexus/v3/channels/{channel_id}/messages", raw, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE=signature)


@worker_db
def test_a_customer_photo_reaches_the_transcript_with_a_thumbnail_through_a_worker(
    client, tenant, files, settings, tmp_path, staff_user
):
    require_shared_database()
    channel = channel_save(
        channel=Channel(channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
                        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET),
        inbound_route_by_call="1:sms",
    )
    image = png_bytes(1200, 900)
    files.files["/photo.png"] = Served(image, headers={"Content-Type": "image/png"})
    worker = WorkerProcess(tmp_path / "celery.log", env={"MEDIA_ROOT": str(settings.MEDIA_ROOT)})
    try:
        worker.wait_ready()

        answer = _nexus(client, channel.channel_id, [text_with(
            [{"url": files.url("/photo.png"), "contentType": "image/png", "fileName": "photo.png",
              "size": len(image)}], text="My broken screen")])

        assert answer.status_code == 200
        stored = poll_until(
            lambda: MessageAttachment.objects.filter(status="stored").first()
            or (MessageAttachment.objects.filter(status="failed").first() and pytest.fail(worker.log())),
            30, "the worker to store the attachment")
    finally:
        worker.stop()
    client.force_login(staff_user)
    page = client.get(f"/admin/channels_app/interaction/{stored.message.interaction_id}/change/").content.decode()
    assert 'class="thumbnail"' in page and "photo.png" in page and "My broken screen" in page
    thumbnail_path = page.split('class="thumbnail" src="')[1].split('"')[0]
    assert client.get(urlsplit(thumbnail_path.replace("&amp;", "&")).path).status_code == 200


# --- S3 --------------------------------------------------------------------------------------------------------


@pytest.fixture
def s3(settings):
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - requirements.txt installs them
        require_or_skip(False, "moto[server] and boto3 are not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=endpoint, **credentials)
    client.create_bucket(Bucket="dms-media")
    settings.MEDIA_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "dms-media", "endpoint_url": endpoint, "region_name": "us-east-1",
                    "access_key": "testing", "secret_key": "testing", "signature_version": "s3v4",
                    "default_acl": None, "querystring_auth": True, "querystring_expire": 3600,
                    "file_overwrite": False},
    }}
    yield client
    server.stop()


@pytest.mark.django_db
def test_on_s3_uploads_and_inbound_files_are_stored_in_the_bucket_and_served_by_presigned_links(
    s3, tenant, client, files
):
    attachment = attachment_create(tenant=tenant, uploaded_file=SimpleUploadedFile("bill.pdf", PDF), name="bill.pdf")
    media = media_object(attachment)

    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="dms-media")["Contents"]]
    assert attachment.file.name in keys
    assert "X-Amz-Signature=" in media["url"] and "X-Amz-Expires=604800" in media["url"]  # MEDIA_URL_TTL
    downloaded = requests.get(media["url"], timeout=10)
    assert downloaded.status_code == 200 and downloaded.content == PDF
    assert requests.get(media["url"].split("?")[0], timeout=10).status_code == 403  # private without a signature

    channel = channel_save(
        channel=Channel(channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
                        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET),
        inbound_route_by_call="1:sms",
    )
    image = png_bytes()
    files.files["/photo.png"] = Served(image)
    _nexus(client, channel.channel_id, [text_with([{"url": files.url("/photo.png"), "fileName": "photo.png"}])])
    inbound = MessageAttachment.objects.get()
    message_attachment_fetch(attachment_id=inbound.pk)
    inbound.refresh_from_db()

    assert inbound.status == "stored" and inbound.thumbnail.name
    body = s3.get_object(Bucket="dms-media", Key=inbound.file.name)["Body"].read()
    assert body == image
