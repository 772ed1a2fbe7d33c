"""Benchmark, in-process: the statements and the CPU of one InviteToChat (issue 25, lever 3).

    .venv/bin/python -m bench.invite_to_chat [--invitations 1000] [--database NAME] [--show]

A fresh PostgreSQL database (default `dms_bench_invite_to_chat`, dropped at the end), migrated, with
`seed_demo`'s simulator channel and the standard response of tests/fixtures/invite_to_chat_standard_response.json.
Each invitation is one call of `invite_to_chat` with the spec's sample request's parameters
(tests/fixtures/invite_to_chat_request.json), as the ESP handler makes it, in four cases:

* `new`: a customer never seen (a new contact each), the service as it is (one statement);
* `known`: a customer invited before, the same properties (their contact found, not written);
* `orm_new` and `orm_known`: the same through `invitations_create` in a transaction, the path every invitation
  took before lever 3 (and campaigns, reply buttons and lists, attachments still take).

Per case: `<case>_statements` (sent for one invitation, counted with CaptureQueriesContext over 100; BEGIN and
COMMIT counted apart, as `<case>_transaction_statements`: round trips all the same), `<case>_cpu_ms_per_invitation`
(this process, time.process_time) and `<case>_postgres_cpu_ms_per_invitation` (its PostgreSQL backend, from
/proc), over `--invitations` calls. The headline, last: `cpu_ms_per_invitation` (the `new` case, as bench.esp's
customers). Same machine, shared: the CPU figures are indicative (compare only figures of one run).
"""

import argparse
import copy
import json
import time
from pathlib import Path

from bench.customer_message import django_migrated
from bench.measure import plans_printed, print_figures, proc_stat

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CHANNEL_ID = "channel-ghub-simulator"  # created by `manage.py seed_demo`
COUNTED = 100
TRANSACTION_CONTROL = ("BEGIN", "COMMIT")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invitations", type=int, default=1000, help="timed invitations per case (default 1000)")
    parser.add_argument("--database", default="dms_bench_invite_to_chat", help="created, then dropped")
    parser.add_argument("--show", action="store_true", help="print the statements of one invitation of each case")
    parser.add_argument("--plans", action="store_true",
                        help="print the plan of each statement of one more invitation of each case (auto_explain)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with django_migrated(args.database):
        from django.core.management import call_command

        call_command("seed_demo", verbosity=0)
        print_figures(measure(args))


def measure(args) -> list[tuple[str, object]]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from channels_app.errors import ApplicationError
    from channels_app.models import Channel, StandardResponse
    from channels_app.services.invitations import (
        Invitee,
        channel_circuit_check,
        invitation_plan,
        invitations_create,
        invite_to_chat,
    )
    from channels_app.services.standard_responses import standard_response_save

    request = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
    response = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
    channel = Channel.objects.get(channel_id=CHANNEL_ID)
    if not StandardResponse.objects.filter(pk=response["id"]).exists():
        standard_response_save(response=StandardResponse(tenant=channel.tenant, **response))
    parameters = request["Parameters"]
    sequence = iter(range(10**9))

    def arguments(client_id: str) -> dict:
        return dict(
            client_id=client_id, standard_response_id=parameters["StandardResponseId"],
            contact_fields=copy.deepcopy(parameters["Contact"]),
            custom_properties=copy.deepcopy(parameters["CustomProperties"]),
            user_data={**request["UserData"], "PhoneNumber": client_id},
        )

    def service(client_id: str) -> None:
        from channels_app.selectors import channel_find

        invite_to_chat(channel=channel_find(channel_id=CHANNEL_ID), **arguments(client_id))

    def orm_path(client_id: str) -> None:
        """`invite_to_chat` as it was before lever 3: the plan, then `invitations_create` in a transaction."""
        from channels_app.selectors import channel_find

        given = arguments(client_id)
        kept = channel_find(channel_id=CHANNEL_ID)
        plan = invitation_plan(channel=kept, standard_response_id=given["standard_response_id"])
        channel_circuit_check(channel=kept)
        invitee = Invitee(client_id=client_id, contact_fields=given["contact_fields"],
                          custom_properties=given["custom_properties"], user_data=given["user_data"])
        with transaction.atomic():
            (outcome,) = invitations_create(plan=plan, invitees=[invitee])
            if isinstance(outcome, ApplicationError):
                raise outcome

    def new_customer(path):
        return lambda: path(f"1650{2000000 + next(sequence)}")

    def known_customer(path, customers: int = 100):
        return lambda: path(f"1651{3000000 + next(sequence) % customers}")

    cases = (("new", new_customer(service)), ("known", known_customer(service)),
             ("orm_new", new_customer(orm_path)), ("orm_known", known_customer(orm_path)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    for _name, case in cases:  # the known customers, the kept rows and a warm process
        for _ in range(COUNTED):
            case()
    figures: list[tuple[str, object]] = []
    headline = None
    for name, case in cases:
        with CaptureQueriesContext(connection) as captured:
            for _ in range(COUNTED):
                case()
        sql = [query["sql"] for query in captured.captured_queries]
        control = sum(1 for text in sql if text in TRANSACTION_CONTROL)
        if args.show:
            one = (len(sql)) // COUNTED
            print(f"# {name}:", *(f"#   {text[:200]!r}" for text in sql[-one:]), sep="\n")
        started, backend_started = time.process_time(), proc_stat(backend)[1]
        for _ in range(args.invitations):
            case()
        cpu, backend_cpu = time.process_time() - started, proc_stat(backend)[1] - backend_started
        figures += [(f"{name}_statements", f"{(len(sql) - control) / COUNTED:g}"),
                    (f"{name}_transaction_statements", f"{control / COUNTED:g}"),
                    (f"{name}_cpu_ms_per_invitation", f"{1000 * cpu / args.invitations:.2f}"),
                    (f"{name}_postgres_cpu_ms_per_invitation", f"{1000 * backend_cpu / args.invitations:.2f}")]
        if args.plans:
            with plans_printed(connection, name):
                case()
        if name == "new":
            headline = f"{1000 * cpu / args.invitations:.2f}"
    return [*figures, ("cpu_ms_per_invitation", headline)]


if __name__ == "__main__":
    main()
