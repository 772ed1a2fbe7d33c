"""A slow file server never stalls the people lane: inbound attachments and WhatsApp media downloads run in
a lane of their own (`media`, project/settings.py), with a worker of its own as scripts/serve.sh starts it.
Real worker processes, a real slow HTTP server on 127.0.0.1 (tests/file_server.py)."""

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from django.test import Client

from channels_app.choices import MediaType, Transport
from channels_app.models import Channel, Message, MessageAttachment
from channels_app.services.channels import channel_save
from tests.file_server import Served
from tests.test_media import PDF, SECRET, files, text_with  # noqa: F401  (files: the fixture)
from tests.workers import WorkerProcess, poll_until, require_shared_database

pytestmark = pytest.mark.slow
worker_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)
WHATSAPP_TEXT = (Path(__file__).parent / "fixtures" / "whatsapp_cloud" / "text.json").read_bytes()
APP_SECRET = "meta-app-secret"


@pytest.fixture
def lanes(django_db_setup, tmp_path):
    """make run's lanes (scripts/serve.sh): a worker on `people` (with the periodic tasks' `celery`) and a
    worker on `media`, one process each, so that one slow task would hold its whole lane."""
    require_shared_database()
    started = [WorkerProcess(tmp_path / "people.log", name="people", queues="people,celery"),
               WorkerProcess(tmp_path / "media.log", name="media", queues="media", dispatcher=False)]
    try:
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


@worker_db
def test_a_file_server_sending_a_byte_every_20_s_does_not_delay_a_customer_text(tenant, lanes, files):  # noqa: F811
    sms = channel_save(
        channel=Channel(channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
                        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET),
        inbound_route_by_call="1:sms",
    )
    cloud = channel_save(
        channel=Channel(
            channel_id="channel-wa-cloud", name="WhatsApp Cloud", tenant=tenant, media_type=MediaType.WHATSAPP,
            transport=Transport.WHATSAPP_CLOUD, business_id="15550783881", phone_number_id="106540352242922",
            waba_id="102290129340398", access_token="token", app_secret=APP_SECRET, verify_token="verify",
        ),
        endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
    )
    files.files["/slow.pdf"] = Served(PDF, trickle=20.0)
    people, media = lanes

    # given a customer's file on a server that sends one byte every 20 s, being fetched
    raw = json.dumps({"messages": [text_with([{"url": files.url("/slow.pdf"), "fileName": "slow.pdf"}])]}).encode()
    answer = Client().post(f"/nexus/v3/channels/{sms.channel_id}/messages", raw, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE="sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest())
    assert answer.status_code == 200, answer.content
    poll_until(lambda: "/slow.pdf" in files.requests, 30,
               f"the fetch to start:\n{people.log()}\n--- media ---\n{media.log()}")

    # when a customer writes on WhatsApp meanwhile
    posted = time.monotonic()
    answer = Client().post(f"/whatsapp/{cloud.channel_id}/webhook", WHATSAPP_TEXT, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE_256="sha256=" + hmac.new(APP_SECRET.encode(), WHATSAPP_TEXT,
                                                                         hashlib.sha256).hexdigest())
    assert answer.status_code == 200, answer.content

    # then the text is processed at once (the people lane is free), while the file is still arriving
    poll_until(lambda: Message.objects.filter(interaction__channel=cloud).exists(), 15,
               f"the WhatsApp text to be processed:\n{people.log()}\n--- media ---\n{media.log()}")
    assert time.monotonic() - posted < 15
    assert MessageAttachment.objects.get().status == "pending"
    fetched = "Task channels_app.fetch_attachment["
    assert fetched in media.log() and fetched not in people.log()
