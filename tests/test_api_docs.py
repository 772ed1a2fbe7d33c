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
