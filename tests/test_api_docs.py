"""The API docs: every operation under a resource's tag, with a summary; no internal notes in descriptions."""

import pytest


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


@pytest.mark.django_db
def test_every_operation_has_a_resource_tag_and_a_summary(schema):
    operations = list(_operations(schema))

    assert len(operations) > 40
    for path, method, operation in operations:
        assert operation.get("tags") and operation["tags"] != ["api"], (method, path)
        assert operation.get("summary"), (method, path)
    tags = {tag for _, _, operation in operations for tag in operation["tags"]}
    assert {"Channels", "Campaigns", "Standard responses", "Interactions", "Options", "ESP"} <= tags


@pytest.mark.django_db
def test_schema_descriptions_carry_no_internal_notes(schema):
    text = str(schema)

    assert "DRF would take" not in text


CLOUD_OPERATIONS = [
    ("/whatsapp/{channel_id}/webhook", "get"),
    ("/whatsapp/{channel_id}/webhook", "post"),
    ("/api/standard-responses/{id}/submit/", "post"),
    ("/api/channels/{channel_id}/sync-templates/", "post"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), CLOUD_OPERATIONS)
def test_the_cloud_api_operations_have_their_tag_and_a_real_summary(schema, path, method):
    operation = schema["paths"][path][method]

    assert "WhatsApp Cloud API" in operation["tags"]
    assert len(operation["summary"].split()) >= 4, operation["summary"]
    assert not operation["summary"].startswith(("Get ", "Post ")), operation["summary"]


@pytest.mark.django_db
def test_no_operation_is_summed_up_by_its_method_alone(schema):
    def fallback(path, method):  # what ApiAutoSchema says of an operation it knows nothing about
        resource = path.removeprefix("/api/").split("/")[0].replace("-", " ")
        return {method.capitalize(), f"{method.capitalize()} {resource}"}

    generic = [
        (method, path, operation["summary"]) for path, method, operation in _operations(schema)
        if operation["summary"].strip() in fallback(path, method) or not all(operation["tags"])
    ]

    assert generic == []
