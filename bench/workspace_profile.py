"""In-process profile of opening a conversation (issue 24, "Speed"): the CPU of each request the page makes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python -m bench.workspace_profile \
        [--requests 200] [--messages 200] [--cprofile contact|interactions|transcript]

The database of `DATABASE_URL` (an empty one, or one a run before prepared) is filled as bench/workspace.py fills
its own: migrated, the demo data, bench/routing.py's SMS channel, queue and agent, then one conversation of
`--messages` messages and 5 earlier interactions of its contact. Then, with Django's test Client in this process
(DEBUG off, the agent's token), each of the three requests of an opening (bench/workspace.py's
`open_conversation`) is made `--requests` times after a warm-up: `GET /api/interactions/{id}/` (the
transcript), `GET /api/contacts/{id}/` and `GET /api/interactions/?contact={id}` (the contact panel's list).
Output: `name=value` lines of the CPU milliseconds per request (time.process_time: this process only;
PostgreSQL's own time is not in it), the median of 5 rounds. `--cprofile NAME` prints that request's cProfile
instead (CPU time, cumulative, top 40), `--queries` each request's SQL statements.
"""

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import time

ROUNDS = 5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests of each kind per round (default 200)")
    parser.add_argument("--messages", type=int, default=200, help="messages of the conversation (default 200)")
    parser.add_argument("--cprofile", choices=["transcript", "contact", "interactions"],
                        help="print this request's profile instead of the figures")
    parser.add_argument("--queries", action="store_true", help="print each request's SQL instead of the figures")
    return parser.parse_args()


def prepare(messages: int) -> tuple[str, str, int]:
    """bench/workspace.py's data for one agent: (its token, the interaction's id, the contact's id); made once,
    found again by later runs."""
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from bench.routing import CHANNEL_ID, QUEUE, SECRET, SETUP
    from bench.workspace import CONVERSATIONS
    from channels_app.models import Channel, Interaction

    call_command("migrate", "--noinput", verbosity=0)
    if Channel.objects.filter(channel_id=CHANNEL_ID).exists():
        current = Interaction.objects.get(channel__channel_id=CHANNEL_ID, state="active")
        if current.messages.count() != messages:
            raise RuntimeError(f"the database holds a conversation of {current.messages.count()} messages")
        return Token.objects.get(user=current.assigned_to).key, current.pk, current.contact_id
    call_command("seed_demo", verbosity=0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(SETUP % {"channel": CHANNEL_ID, "secret": SECRET, "queue": QUEUE, "agents": 1, "capacity": 5,
                      "timeout": 10}, {})
        exec(CONVERSATIONS % {"channel": CHANNEL_ID, "queue": QUEUE, "conversations": 1, "earlier": 5,
                              "earlier_messages": 20, "messages": messages}, {})
    lines = dict(line.split("=", 1) for line in printed.getvalue().splitlines() if "=" in line)
    [[_, token, interaction, contact]] = json.loads(lines["OPENED"])
    return token, interaction, contact


def main() -> None:
    args = parse_args()
    os.environ.update(DEBUG="false", SECRET_KEY="bench-workspace-" + "x" * 50, ALLOWED_HOSTS="testserver",
                      SECURE_SSL_REDIRECT="false", LOG_LEVEL="WARNING",
                      WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", CACHE_URL="locmemcache://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.test import Client

    token, interaction, contact = prepare(args.messages)
    client = Client(headers={"Authorization": f"Token {token}", "Accept": "application/json"})
    paths = {"transcript": f"/api/interactions/{interaction}/", "contact": f"/api/contacts/{contact}/",
             "interactions": f"/api/interactions/?contact={contact}"}

    def get(path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.content[:200]!r}")

    for path in paths.values():  # warm-up: imports, the serializers' fields, caches of options
        for _ in range(20):
            get(path)
    if len(json.loads(client.get(paths["transcript"]).content)["messages"]) != args.messages:
        raise RuntimeError("the transcript does not hold the conversation's messages")

    if args.queries:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        for name, path in paths.items():
            with CaptureQueriesContext(connection) as queries:
                get(path)
            print(f"--- {name}: {len(queries)} statements")
            for query in queries:
                print(query["sql"][:600])
        return
    if args.cprofile:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(args.requests):
            get(paths[args.cprofile])
        profile.disable()
        pstats.Stats(profile).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(40)
        return
    rounds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, path in paths.items():
            began = time.process_time()
            for _ in range(args.requests):
                get(path)
            rounds[name].append((time.process_time() - began) * 1000 / args.requests)
    print(f"messages={args.messages}")
    print(f"requests_per_round={args.requests}")
    for name, figures in rounds.items():
        print(f"{name}_cpu_ms={statistics.median(figures):.2f}")
    print(f"opening_cpu_ms={sum(statistics.median(figures) for figures in rounds.values()):.2f}")


if __name__ == "__main__":
    main()
