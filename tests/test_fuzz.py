"""Fuzzing, CI size: schemathesis over every operation of the server's own OpenAPI
document, in process (WSGI) against the test database, with a staff token.

Each operation gets a few valid and invalid cases (FUZZ_EXAMPLES, 10 by
default) from schemathesis' example, coverage and fuzzing phases; every
response must pass not_a_server_error, status_code_conformance,
content_type_conformance, response_schema_conformance and
negative_data_rejection (invalid data gets no 2xx). Path and query parameters
take the ids of the objects the fixture creates half of the time. The
full-size run, over HTTP against gunicorn with DEBUG=false, is
`python -m bench.fuzz` (200 cases per operation and phase).
"""

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

import tests.fuzz_hooks  # noqa: F401  (signs the bodies sent to /nexus/...)
from project.wsgi import application
from tests.factories import CampaignFactory, StandardResponseFactory
from tests.test_sessions import make_interaction

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
SECRET = "fuzz-channel-secret"
CHANNEL_ID = "channel-whatsapp-REAL"  # the `channel` fixture
RESPONSE_ID = "FuzzText0001"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]

os.environ.setdefault("FUZZ_CHANNEL_SECRET", SECRET)

schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none"},
    "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}},
    "dictionaries": {
        "ids": {"values": [1, RESPONSE_ID]},
        "channel_ids": {"values": [CHANNEL_ID]},
        "option_sections": {"values": ["dms", "chat-server", "channel"]},
        "option_names": {"values": ["session-shutdown-timeout", "inbound-route-by-call"]},
    },
    "parameters": {
        key: {"dictionary": name, "probability": 0.5}
        for key, name in {"path.id": "ids", "path.channel_id": "channel_ids", "query.channel": "channel_ids",
                          "path.section": "option_sections", "path.name": "option_names"}.items()
    },
}))


@pytest.fixture
def in_process_requests():
    """Keep the test's database connection across requests, as Django's test client does: the WSGI
    handler would close it (it is inside the test's transaction) when a request finishes."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(staff_user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff_user).key


@pytest.fixture
def fuzz_data(channel, staff_user):
    """Something for the operations with ids to hit: a channel with its secret, a standard response, an
    interaction, a draft campaign."""
    channel.secret = SECRET
    channel.save()
    response = StandardResponseFactory(
        id=RESPONSE_ID, tenant=channel.tenant, name="Greeting", content_type="text", body="Hello"
    )
    make_interaction(channel, "15556667777")
    CampaignFactory(name="Fuzz", channel=channel, standard_response=response, created_by=staff_user)


@pytest.mark.django_db
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_holds_to_its_document(case, in_process_requests, token, fuzz_data):
    checks = CHECKS
    if case.operation.label == "POST /api/attachments/":  # bench/fuzz.py says why
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=checks)


# --- the text rules over every operation ---------------------------------------------------------------------------

POISONS = ["\ud800", "x\udfff", "\x00"]
PATH_VALUES = {"id": "1", "channel_id": CHANNEL_ID, "section": "dms", "name": "session-shutdown-timeout"}


def _resolved(schema: dict, document: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema if isinstance(schema, dict) else {}


def _poisoned_bodies(schema: dict, document: dict):
    """Bodies with a lone surrogate or NUL in each top-level property, in a nested key, and in a list."""
    properties = _resolved(schema, document).get("properties", {})
    for poison in POISONS:
        for name in properties:
            yield {name: f"value{poison}"}
            yield {name: {f"key{poison}": "value"}}
            yield {name: [f"item{poison}"]}
        yield {f"unknown{poison}": 1}


@pytest.mark.django_db
def test_lone_surrogates_and_nul_in_any_body_are_refused_never_a_server_error(client, token, fuzz_data):
    """Every operation of the OpenAPI document that takes a JSON body, given a lone surrogate or a NUL
    character in each of its fields: never a 5xx, and a 4xx (they were 500s with the debug page)."""
    from tests.fuzz_hooks import hub_signature_sha256

    document = client.get("/api/schema/", {"format": "json"}).json()
    tried, answers = 0, []
    for path, operations in document["paths"].items():
        url = path
        for name, value in PATH_VALUES.items():
            url = url.replace("{" + name + "}", value)
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" not in content:
                continue
            for body in _poisoned_bodies(content["application/json"]["schema"], document):
                raw = json.dumps(body).encode()  # the poisons as escapes, as clients write them
                headers = {"Authorization": f"Token {token}"}
                if url.startswith("/nexus/"):
                    headers = {"X-Hub-Signature-256": hub_signature_sha256(SECRET, raw)}
                response = client.generic(method.upper(), url, raw, content_type="application/json", headers=headers)
                tried += 1
                answers.append((method.upper(), url, response.status_code))
    server_errors = [answer for answer in answers if answer[2] >= 500]
    accepted = [answer for answer in answers if answer[2] < 400]
    assert server_errors == []
    assert accepted == []
    print(f"poisoned_inputs={tried} server_errors={len(server_errors)} accepted={len(accepted)}")
    assert tried >= 300, tried
