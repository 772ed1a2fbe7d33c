"""One truth per setting (issue 22): each setting is assigned once in project/settings.py and listed once in the
README's configuration table; the README's layout names today's transports and packages; the /nexus request
schema of /api/docs/ takes what the contract takes."""

import ast
import copy
import re
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _reads(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load) for n in ast.walk(node))


def test_every_setting_is_assigned_once():
    # a later assignment that does not start from the earlier value replaces it: two truths, one of them dead
    assigned = defaultdict(list)
    for node in ast.parse((ROOT / "project" / "settings.py").read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id].append(node)

    replaced = [f"{name} (line {node.lineno})" for name, nodes in assigned.items() for node in nodes[1:]
                if not _reads(node.value, name)]

    assert replaced == []


def test_every_variable_of_the_configuration_table_is_listed_once():
    rows = [line for line in _section("Configuration").splitlines() if line.startswith("| `")]
    listed = defaultdict(int)
    for row in rows:
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]):
            listed[name] += 1

    assert "PUBLIC_BASE_URL" in listed
    assert {name: count for name, count in listed.items() if count > 1} == {}


def test_the_layout_names_every_transport_and_package():
    layout = _section("Layout")
    package = ROOT / "channels_app"
    transports = sorted(path.stem for path in (package / "transports").glob("*.py") if path.stem != "__init__")
    packages = sorted(path.name for path in package.iterdir()
                      if path.is_dir() and (path / "__init__.py").exists() and path.name != "migrations")

    assert "whatsapp_cloud" in transports
    assert [name for name in transports if not re.search(rf"\b{name}\b", layout)] == []
    assert [name for name in packages if f"{name}/" not in layout] == []


# --- the /nexus request schema (drf-spectacular, /api/schema/ and /api/docs/) ---------------------------------------

NEXUS = "/nexus/v3/channels/{channel_id}/messages"
SENDER = {"messageId": "m-1", "from": {"id": "15556667777"}}
FILE = {"url": "https://files.example.com/bill.pdf", "contentType": "application/pdf", "fileName": "bill.pdf"}


def _json_schema(schema):
    """OpenAPI 3.0's `nullable` as JSON Schema's type list, to validate with jsonschema."""
    if isinstance(schema, dict):
        schema = {key: _json_schema(value) for key, value in schema.items()}
        if schema.pop("nullable", False) and "type" in schema:
            schema["type"] = [schema["type"], "null"]
        return schema
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    return schema


@pytest.fixture
def nexus_request_schema(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schema = document["paths"][NEXUS]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft7Validator(_json_schema(copy.deepcopy(schema)))


@pytest.mark.django_db
@pytest.mark.parametrize("message", [
    pytest.param({"type": "Text", "channel": SENDER, "text": "", "attachments": [FILE]}, id="empty-text-with-a-file"),
    pytest.param({"type": "Text", "channel": SENDER, "attachments": [FILE]}, id="no-text-with-a-file"),
    pytest.param({"type": "Text", "channel": SENDER, "text": None, "attachments": [FILE]}, id="null-text-with-a-file"),
    pytest.param({"type": "Text", "channel": SENDER, "text": "Hi"}, id="text"),
    pytest.param({"type": "Text", "channel": SENDER, "text": "Hi", "attachments": [FILE]}, id="text-and-a-file"),
])
def test_the_nexus_schema_takes_an_empty_text_with_attachments(nexus_request_schema, message):
    assert list(nexus_request_schema.iter_errors({"messages": [message]})) == []


@pytest.mark.django_db
@pytest.mark.parametrize("message", [
    pytest.param({"type": "Text", "channel": SENDER, "text": ""}, id="empty-text"),
    pytest.param({"type": "Text", "channel": SENDER}, id="no-text"),
    pytest.param({"type": "Text", "channel": SENDER, "text": "", "attachments": []}, id="empty-text-no-file"),
])
def test_the_nexus_schema_refuses_a_text_message_with_nothing_in_it(nexus_request_schema, message):
    assert list(nexus_request_schema.iter_errors({"messages": [message]})) != []
