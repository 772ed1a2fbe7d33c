"""Fuzzing: schemathesis over every operation of the server's own OpenAPI document.

Starts everything it needs and cleans up after itself (bench/processes.py):

* a fresh PostgreSQL database `dms_fuzz`, Redis db 4 as the Celery broker
  (nothing consumes it: queued deliveries just wait), `migrate` and `seed_demo`;
* gunicorn (2 workers x 4 threads, project.wsgi: see main) with production settings: DEBUG=false, a
  SECRET_KEY, ALLOWED_HOSTS, requests sent as if through a TLS proxy
  (`X-Forwarded-Proto: https`); the token endpoint's throttle is lifted
  (TOKEN_THROTTLE_RATE) so that its fuzzing is not all 429s, and so are
  gunicorn's limits on the request line and headers (they would answer long
  generated URLs with 414 before Django: tests/test_deployment.py checks them);
* a staff user and its token, obtained with `POST /api/auth/token/`; then,
  through the API, something for operations with ids to hit: a tenant, a
  webhook channel, a category, two standard responses, an attachment, an
  interaction opened by ESP InviteToChat and one by a customer message, a
  draft campaign. Path and query parameters (`id`, `channel_id`, `section`,
  `name`, `channel`) take these ids half of the time, random values otherwise.

Then `st run` (schemathesis' CLI) tests every operation of `/api/schema/` with
the token, in its phases (coverage: the schema's edge cases; fuzzing: up to
`--examples` (200) generated cases per operation; stateful: chains of calls
linked by the ids they return), valid and invalid data alike (`--mode all`),
and the checks
`not_a_server_error`, `status_code_conformance`, `content_type_conformance`,
`response_schema_conformance` and `negative_data_rejection` (invalid data
must not get a 2xx). tests/fuzz_hooks.py signs the bodies sent to
`/nexus/v3/channels/{id}/messages` with the channels' secret, so that its
parsing is fuzzed, not just its signature check.

Figures (`name=value`, the headline last): `operations` (tested),
`examples` (test cases sent), `examples_min_per_operation` (in the fuzzing
phase, valid and invalid cases together; Hypothesis stops before `--examples`
once it has sent every distinct case it can make, which happens where an id
is drawn from the few the server returned: `operations_below_examples`
counts those operations), `responses_2xx`, `nexus_accepted`
(signed inbound bodies answered 200) and `responses_5xx` (counted in
gunicorn's access log), `server_errors`, `schema_violations` (undocumented
status, content type or body), `invalid_accepted` (failed checks, counted
for every case that failed one), and the headline `failures`. Exits 1 when
any failure was found; the schemathesis output and reports are then kept
(their folder is printed).

    .venv/bin/python -m bench.fuzz [--examples 200] [--seed N] [--workers 2] [--operations REGEX]
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from bench.measure import print_figures
from bench.processes import BIN, ROOT, Stack

DATABASE, REDIS_DB = "dms_fuzz", 4
SIMULATOR_CHANNEL = "channel-ghub-simulator"  # created by seed_demo
WEBHOOK_CHANNEL = "fuzz-webhook"
FIXTURES = ROOT / "tests" / "fixtures"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
SCHEMA_CHECKS = {"status_code_conformance", "content_type_conformance", "response_schema_conformance"}
# Option names of several sections, for `/api/options/{section}/{name}/`.
OPTION_SECTIONS = ["dms", "chat-server", "channel", "interaction-workspace"]
OPTION_NAMES = [
    "session-shutdown-timeout", "xml-request-max-size", "inbound-route-by-call",
    "whatsappsession.max-text-message-size", "simulator-auto-reply",
]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)

STAFF_SNIPPET = """
from django.contrib.auth import get_user_model
get_user_model().objects.create_user("fuzz", password="{password}", is_staff=True)
"""


class Api:
    """The seeding client: the server's own API, over HTTP, as the fuzzer sees it."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        self.session.headers["X-Forwarded-Proto"] = "https"

    def call(self, method: str, path: str, expect: int, **kwargs):
        response = self.session.request(method, self.base + path, timeout=30, **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"seeding: {method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None


def seed(api: Api, secret: str) -> dict[str, list]:
    """Objects for operations with ids to hit; returns the fuzzer's dictionaries of known values."""
    api.call("POST", "/api/tenants/", 201, json={"id": 2, "name": "Fuzz"})
    api.call("POST", "/api/channels/", 201, json={
        "channel_id": WEBHOOK_CHANNEL, "name": "Fuzz webhook", "tenant": 2, "media_type": "whatsapp",
        "transport": "webhook", "business_id": "19255550100", "webhook_url": "http://127.0.0.1:9/hook",
        "secret": secret, "endpoints": ["2:session-chat"],
    })
    api.call("PATCH", f"/api/channels/{SIMULATOR_CHANNEL}/", 200, json={"secret": secret})
    category = api.call("POST", "/api/standard-response-categories/", 201, json={"name": "Fuzz"})
    notification = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
    api.call("POST", "/api/standard-responses/", 201, json=notification)
    text = api.call("POST", "/api/standard-responses/", 201, json={
        "id": "FuzzText0001", "name": "Greeting", "content_type": "text", "language": "en",
        "category": category["id"], "body": "Hello <$Contact.FirstName$>",
    })
    attachment = api.call("POST", "/api/attachments/", 201, files={"file": ("dot.png", PNG, "image/png")})
    invite = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
    invite["Parameters"]["_umsChannel"] = SIMULATOR_CHANNEL
    invited = api.call("POST", "/esp", 200, json=invite)["Result"]["_umsChatSessionId"]
    body = json.dumps({"messages": [{
        "channel": {"messageId": "fuzz-seed-1", "from": {"id": "15556660001", "nickname": "Fuzz"},
                    "to": {"id": "19251112222"}, "time": "2026-01-01T00:00:00.000Z"},
        "type": "Text", "text": "Hello",
    }]}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    api.call("POST", f"/nexus/v3/channels/{SIMULATOR_CHANNEL}/messages", 200, data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature})
    campaign = api.call("POST", "/api/campaigns/", 201, json={
        "name": "Fuzz", "channel": SIMULATOR_CHANNEL, "standard_response": text["id"],
        "recipients": [{"client_id": "15556660002", "Contact": {"FirstName": "Ann"}}],
    })
    listed = {name: api.call("GET", f"/api/{name}/", 200)["results"]
              for name in ("interactions", "contacts", "business-attributes")}
    ids = [1, 2, category["id"], attachment["id"], campaign["id"], notification["id"], text["id"], invited]
    ids += [item["id"] for items in listed.values() for item in items]
    return {
        "ids": list(dict.fromkeys(ids)),
        "channel_ids": [SIMULATOR_CHANNEL, WEBHOOK_CHANNEL],
        "option_sections": OPTION_SECTIONS,
        "option_names": OPTION_NAMES,
    }


def toml_config(*, token: str, examples: int, dictionaries: dict[str, list]) -> str:
    """schemathesis.toml; JSON strings are valid TOML basic strings."""
    q = json.dumps
    bindings = {"path.id": "ids", "path.channel_id": "channel_ids", "query.channel": "channel_ids",
                "path.section": "option_sections", "path.name": "option_names"}
    lines = [
        "[headers]",
        f"Authorization = {q('Token ' + token)}",
        'X-Forwarded-Proto = "https"',
        "[generation]",
        'mode = "all"',
        f"max-examples = {examples}",
        'database = "none"',  # no example database left behind
        "[dictionaries]",
        *(f"{name} = {{ values = {q(values)} }}" for name, values in dictionaries.items()),
        "[parameters]",
        *(f"{q(key)} = {{ dictionary = {q(name)}, probability = 0.5 }}" for key, name in bindings.items()),
        # schemathesis sends a field that became an empty list in a form as no field at all: for an upload
        # whose other fields are optional, that is a valid request, which it then reports as accepted.
        "[[operations]]",
        'include-name = "POST /api/attachments/"',
        "checks = { negative_data_rejection = { enabled = false } }",
    ]
    return "\n".join(lines) + "\n"


def failed_checks(ndjson: Path) -> tuple[collections.Counter, collections.Counter]:
    """(failures by check name, fuzzing-phase cases by operation) from the NDJSON event stream."""
    failures, cases = collections.Counter(), collections.Counter()
    with ndjson.open() as events:
        for line in events:
            event = json.loads(line).get("ScenarioFinished")
            if event is None:
                continue
            recorder = event["recorder"]
            if event["phase"] == "fuzzing":
                for case in recorder.get("cases", {}).values():
                    cases[f"{case['value']['method']} {case['value']['path']}"] += 1
            for checks in recorder.get("checks", {}).values():
                for check in checks:
                    if check["status"] == "failure":
                        failures[check["name"]] += 1
    return failures, cases


def schema_operations(port: int) -> list[str]:
    schema = requests.get(f"http://127.0.0.1:{port}/api/schema/?format=json", timeout=30,
                          headers={"X-Forwarded-Proto": "https"}).json()
    methods = {"get", "put", "post", "patch", "delete"}
    return [f"{method.upper()} {path}" for path, item in schema["paths"].items()
            for method in item if method in methods]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per operation and phase (200)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis' random seed (random by default)")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis' concurrent workers (2)")
    parser.add_argument("--operations", metavar="REGEX", help="only the operations whose path matches REGEX")
    args = parser.parse_args()

    secret = secrets.token_hex(16)
    out = Path(tempfile.mkdtemp(prefix="dms-fuzz-"))
    failed = True
    # gunicorn's threads on project.wsgi (bench/processes.py, "gthread"): its limits can be lifted for the fuzzer
    # (GUNICORN_CMD_ARGS below) and the event stream answers 421 there instead of streaming to a fuzzer forever;
    # the application under test, Django's, is the same as behind scripts/serve.sh's server.
    with Stack(DATABASE, redis_db=REDIS_DB, server="gthread") as stack:
        stack.env.update({
            "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
            "HTTPS_ONLY": "true",
            "TOKEN_THROTTLE_RATE": "1000000/min", "LOG_LEVEL": "ERROR",
            # One line per request: the status first, to count the 5xx. Gunicorn's own limits on the request
            # line and headers (414, 431) are the deployment suite's; here the generated URLs reach Django.
            "GUNICORN_CMD_ARGS": "--access-logfile - --access-logformat 'ACCESS %(s)s %(m)s %(U)s' "
                                 "--limit-request-line 0 --limit-request-field_size 0",
        })
        stack.manage("migrate", "--noinput")
        stack.manage("seed_demo")
        password = secrets.token_urlsafe(16)
        stack.shell(STAFF_SNIPPET.format(password=password))
        stack.start_gunicorn(workers=2, threads=4)
        api = Api(stack.port)
        token = api.call("POST", "/api/auth/token/", 200, json={"username": "fuzz", "password": password})["token"]
        api.session.headers["Authorization"] = f"Token {token}"
        dictionaries = seed(api, secret)
        operations = schema_operations(stack.port)

        (out / "schemathesis.toml").write_text(toml_config(token=token, examples=args.examples,
                                                          dictionaries=dictionaries))
        command = [
            str(BIN / "st"), "--config-file", str(out / "schemathesis.toml"), "run",
            f"http://127.0.0.1:{stack.port}/api/schema/", "--checks", ",".join(CHECKS),
            "--workers", str(args.workers), "--report", "json,ndjson", "--report-dir", str(out / "report"),
            "--continue-on-failure",
        ]
        # Revoking the fuzzer's own token would leave every later case a 401 (tests/test_tokens.py tests it).
        command += ["--exclude-name", "DELETE /api/auth/token/"]
        operations = [operation for operation in operations if operation != "DELETE /api/auth/token/"]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        if args.operations:
            command += ["--include-path-regex", args.operations]
            operations = [operation for operation in operations if re.search(args.operations, operation.split()[1])]
        env = {**os.environ, "FUZZ_CHANNEL_SECRET": secret, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
               "PYTHONPATH": str(ROOT)}
        with open(out / "schemathesis.log", "wb") as log:
            subprocess.run(command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        stack.check_alive()

        report = json.loads(next((out / "report").glob("json-*.json")).read_text())
        failures, cases = failed_checks(next((out / "report").glob("ndjson-*.ndjson")))
        access = (stack.logs / "gunicorn.log").read_text(errors="replace").splitlines()
        responses_5xx = sum(1 for line in access if line.startswith("ACCESS 5"))
        responses_2xx = sum(1 for line in access if line.startswith("ACCESS 2"))
        # Signed by fuzz_hooks.py and parsed: the inbound API was fuzzed past its signature check.
        nexus_accepted = sum(1 for line in access if line.startswith("ACCESS 200 POST /nexus/"))
        server_errors = failures["not_a_server_error"]
        schema_violations = sum(failures[name] for name in SCHEMA_CHECKS)
        invalid_accepted = failures["negative_data_rejection"]
        total = server_errors + schema_violations + invalid_accepted + responses_5xx
        total += report["test_cases"]["errored"] + report["operations"]["errored"]
        print_figures([
            ("operations", report["operations"]["tested"]),
            ("operations_selected", len(operations)),
            ("examples", report["test_cases"]["generated"]),
            ("examples_min_per_operation", min(cases[operation] for operation in operations)),
            # Hypothesis stops early once it has sent every distinct case its strategy can make.
            ("operations_below_examples", sum(cases[operation] < args.examples for operation in operations)),
            ("responses_2xx", responses_2xx),
            ("nexus_accepted", nexus_accepted),
            ("responses_5xx", responses_5xx),
            ("errored", report["test_cases"]["errored"] + report["operations"]["errored"]),
            ("server_errors", server_errors),
            ("schema_violations", schema_violations),
            ("invalid_accepted", invalid_accepted),
            ("failures", total),
        ])
        failed = total > 0 or report["operations"]["tested"] < len(operations)
        if failed:
            shutil.copy(stack.logs / "gunicorn.log", out / "gunicorn.log")
    if failed:
        print(f"schemathesis output, reports and the server log kept in {out}", file=sys.stderr)
        return 1
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
