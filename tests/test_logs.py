"""Logs a machine reads (issue 28, item 3): the JSON line's fields, what never appears in it, the trace id of a
request (made when absent, answered, stored with the messages it creates). The processes themselves, in JSON, are
in tests/test_json_logs.py."""

import json
import logging
import re

import pytest

from channels_app.models import Message
from channels_app.services.interactions import customer_message_receive
from channels_app.traces import bound_contextvars
from project.logs import json_formatter, logging_config, process_role

PHONE = "+4915112345678"


def _line(message: str, *args, exc_info=None, **extra) -> dict:
    record = logging.LogRecord("channels_app.traffic", logging.INFO, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    text = json_formatter().format(record)
    assert "\n" not in text
    return json.loads(text)


def test_a_json_line_has_the_time_level_process_and_the_bound_ids():
    with bound_contextvars(trace_id="463ac35c9f6413ad48485a3953bb6124"):
        line = _line("Attempt %s of message %s: %s.", 1, "m-1", "accepted", message_id="m-1",
                     interaction_id="i-1", channel_id="channel-sms", tenant_id=3)

    assert line["event"] == "Attempt 1 of message m-1: accepted."
    assert line["level"] == "info" and line["logger"] == "channels_app.traffic"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["time"])
    assert {"process", "pid", "host"} <= line.keys()
    assert line["trace_id"] == "463ac35c9f6413ad48485a3953bb6124"
    assert (line["message_id"], line["interaction_id"], line["channel_id"], line["tenant_id"]) == (
        "m-1", "i-1", "channel-sms", 3)


def test_secrets_never_appear_and_personal_data_is_masked(monkeypatch):
    monkeypatch.delenv("LOG_PERSONAL_DATA", raising=False)
    line = _line(f"Customer {PHONE} wrote; Authorization: Bearer abc.def.ghi secret=s3cr3t sha1=" + "ab" * 20,
                 client_id=PHONE, text="My router is broken", channel_secret="s3cr3t", api_token="t0k3n",
                 channel_id="0123456789")
    raw = json.dumps(line)

    for secret in ("abc.def.ghi", "s3cr3t", "t0k3n", "ab" * 20):
        assert secret not in raw
    assert PHONE not in raw and "router" not in raw
    assert line["client_id"] == "+49*********78" and line["text"] == "[19 characters]"
    assert line["channel_id"] == "0123456789"  # our ids stay as they are


def test_fields_inside_fields_are_cleaned_too(monkeypatch):
    monkeypatch.delenv("LOG_PERSONAL_DATA", raising=False)
    line = _line("task", data={"args": f"('{PHONE}',)", "headers": {"Authorization": "Token abc"}},
                 recipients=[{"phone": PHONE}])

    assert PHONE not in json.dumps(line) and "abc" not in json.dumps(line)
    assert line["data"]["headers"]["Authorization"] == "[hidden]"


def test_with_log_personal_data_phone_numbers_and_texts_show_but_secrets_do_not(monkeypatch):
    monkeypatch.setenv("LOG_PERSONAL_DATA", "true")
    line = _line(f"Customer {PHONE} wrote", client_id=PHONE, text="My router is broken", password="hunter2")

    assert line["client_id"] == PHONE and line["text"] == "My router is broken" and PHONE in line["event"]
    assert line["password"] == "[hidden]"


def test_an_exception_is_one_line_and_scrubbed(monkeypatch):
    monkeypatch.delenv("LOG_PERSONAL_DATA", raising=False)
    try:
        raise ValueError(f"no route to {PHONE} with token=abcdef")
    except ValueError:
        import sys

        line = _line("failed", exc_info=sys.exc_info())

    assert "ValueError" in line["exception"] and PHONE not in line["exception"] and "abcdef" not in line["exception"]


def test_the_default_stays_readable_text(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    config = logging_config()
    assert "formatters" not in config and config["handlers"]["console"] == {"class": "logging.StreamHandler"}
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config()


@pytest.mark.parametrize(("argv", "role"), [
    (["/srv/.venv/bin/gunicorn", "project.wsgi:application"], "web"),
    (["/srv/.venv/bin/celery", "-A", "project", "worker", "-Q", "bulk"], "worker"),
    (["/usr/lib/python3/site-packages/celery/__main__.py", "-A", "project", "beat"], "beat"),
    (["manage.py", "dispatch"], "dispatcher"),
    (["/usr/lib/python3/site-packages/django/__main__.py", "dispatch"], "dispatcher"),
    (["manage.py", "migrate"], "migrate"),
])
def test_the_process_is_named_by_its_role(argv, role, monkeypatch):
    monkeypatch.delenv("LOG_PROCESS", raising=False)
    assert process_role(argv) == role


# --- the trace id of a request ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_without_a_trace_id_gets_one_and_a_given_one_is_kept(client):
    made = client.get("/healthz")["X-B3-TraceId"]
    given = client.get("/healthz", HTTP_X_B3_TRACEID="463ac35c9f6413ad")["X-B3-TraceId"]
    forged = client.get("/healthz", HTTP_X_B3_TRACEID="a\nb")["X-B3-TraceId"]

    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert given == "463ac35c9f6413ad"
    assert re.fullmatch(r"[0-9a-f]{32}", forged)


@pytest.mark.django_db
def test_the_made_trace_id_is_stored_with_the_agent_s_message(agent_api, channel):
    interaction = customer_message_receive(channel=channel, client_id="15556667777", text="Hi",
                                           channel_message_id="c1")[0].interaction

    response = agent_api.post(f"/api/interactions/{interaction.pk}/messages/", {"text": "Hello"}, format="json")

    assert response.status_code == 202
    message = Message.objects.get(interaction=interaction, direction="outbound")
    assert message.trace_id == response["X-B3-TraceId"] != ""
