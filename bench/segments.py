"""Benchmark: a segment of a million contacts, previewed and turned into a campaign's audience (issue 27).

    .venv/bin/python -m bench.segments [N] [--redis-db 7] [--repeat 5]

N contacts (default 1,000,000) of tenant 1 in a fresh PostgreSQL database (bench/processes.py; migrated,
the demo data loaded), written with `COPY`: numbers of the US, France and the Netherlands in turn (their
`country` as the server keeps it), an attribute `tier` gold for half of them (silver, bronze for the others),
the time of the last message spread over the last 180 days, and an interaction on the demo channel for one
contact in four. Then `ANALYZE`, and inside one `manage.py shell` (timed there, no HTTP):

1. `segment_preview` (count and the first ten) of four segments, each `--repeat` times, the median:
   every contact; gold; gold in the US who wrote in the last 90 days; those who wrote on the demo channel.
2. A campaign on the demo channel from the "gold" segment (N/2 contacts): `POST .../start` as the service
   does it (`campaign_transition`), which writes the audience with one INSERT ... SELECT; the seconds, and
   the recipients written (must be N/2).

Output: `name=value` lines; the headline `campaign_start_seconds` last. Targets of the issue: a segment of
1,000,000 contacts previews within 1 s and starts a campaign within 10 s.
"""

import argparse
import json
from datetime import UTC, datetime, timedelta

import psycopg

from bench.measure import print_figures
from bench.processes import Stack

DATABASE = "dms_bench_segments"
CONTACT_COLUMNS = ["tenant_id", "phone_number", "client_id", "first_name", "last_name", "email", "nickname",
                   "attributes", "country", "last_message_at", "created_at", "updated_at"]
INTERACTION_COLUMNS = ["id", "channel_id", "contact_id", "client_id", "type", "subtype", "state", "queue",
                       "user_data", "terminate_after_send", "last_activity_at", "created_at", "ended_at",
                       "end_reason", "disposition", "session_options"]
# (prefix of the E.164 number, its country)
PLACES = [("+1212", "US"), ("+3361", "FR"), ("+3161", "NL")]
TIERS = ["gold", "silver", "gold", "bronze"]

CHANNEL = """
from channels_app.models import Channel
print("CHANNEL_PK=" + str(Channel.objects.get(channel_id="channel-ghub-simulator").pk))
"""

MEASURE = """
import json, statistics, time
from django.utils import timezone
from channels_app.models import Campaign, Segment, StandardResponse, Channel
from channels_app.services.segments import segment_preview, segment_save
from channels_app.services.campaigns import campaign_create, campaign_kick, campaign_transition
from channels_app.models import Tenant
tenant = Tenant.objects.get(pk=1)
filters = {
    "all": {},
    "gold": {"attributes": {"tier": "gold"}},
    "gold_us_90_days": {"attributes": {"tier": "gold"}, "countries": ["US"],
                        "last_message_after": (timezone.now() - timezone.timedelta(days=90)).isoformat()},
    "channel": {"channels": ["channel-ghub-simulator"]},
}
segments = {name: segment_save(segment=Segment(tenant=tenant, name=name), filter_value=value)
            for name, value in filters.items()}
for name, segment in segments.items():
    times, count = [], 0
    for _ in range(REPEAT):
        started = time.perf_counter()
        count = segment_preview(segment=segment)["count"]
        times.append(time.perf_counter() - started)
    print(f"PREVIEW_{name.upper()}_SECONDS={statistics.median(times):.3f}")
    print(f"PREVIEW_{name.upper()}_COUNT={count}")
channel = Channel.objects.get(channel_id="channel-ghub-simulator")
response = StandardResponse.objects.create(id="BenchSegment0001", tenant=tenant, name="Bench segment",
                                           content_type="text", body="Hello <$Contact.FirstName$>")
campaign, _ = campaign_create(name="Bench segment", channel=channel, standard_response=response,
                              segment=segments["gold"], send_window=SEND_WINDOW)
campaign_kick(0, chains=1)  # the broker's connection made once, as a running server has it (no such campaign)
started = time.perf_counter()
campaign_transition(campaign_id=campaign.pk, action="start")
print(f"CAMPAIGN_START_SECONDS={time.perf_counter() - started:.3f}")
Campaign.objects.filter(pk=campaign.pk).update(state="paused")  # no worker runs: nothing is sent
print("RECIPIENTS=" + str(campaign.recipients.count()))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contacts", type=int, nargs="?", default=1_000_000, help="contacts (default 1,000,000)")
    parser.add_argument("--redis-db", type=int, default=7, help="the Redis db of the stack (flushed)")
    parser.add_argument("--repeat", type=int, default=5, help="previews of each segment (the median is shown)")
    return parser.parse_args()


def _copy(conn: psycopg.Connection, table: str, columns: list[str], rows) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def generate(stack: Stack, channel_pk: int, contacts: int) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(stack.dsn) as conn:
        def rows():
            for n in range(contacts):
                prefix, country = PLACES[n % len(PLACES)]
                number = f"{prefix}{n:07d}"
                attributes = json.dumps({"tier": TIERS[n % len(TIERS)]})
                wrote = now - timedelta(minutes=(n * 7919) % (180 * 24 * 60))
                yield (1, number, number, f"Customer{n}", "Bench", "", "", attributes, country, wrote, now, now)

        _copy(conn, "channels_app_contact", CONTACT_COLUMNS, rows())
        first = conn.execute("SELECT min(id) FROM channels_app_contact WHERE last_name = 'Bench'").fetchone()[0]

        def interactions():
            for n in range(0, contacts, 4):
                prefix, _ = PLACES[n % len(PLACES)]
                yield (f"s{n:015d}", channel_pk, first + n, f"{prefix}{n:07d}", "Inbound", "InboundNew", "ended",
                       "1:session-chat", "{}", False, now, now, now, "", "", "{}")

        _copy(conn, "channels_app_interaction", INTERACTION_COLUMNS, interactions())
        conn.commit()
    stack.sql("ANALYZE")


def main() -> None:
    args = parse_args()
    with Stack(DATABASE, redis_db=args.redis_db) as stack:
        stack.prepare()
        channel_pk = int(stack.shell(CHANNEL)["CHANNEL_PK"])
        generate(stack, channel_pk, args.contacts)
        code = MEASURE.replace("REPEAT", str(args.repeat)).replace("SEND_WINDOW", "None")
        found = stack.shell(code)
        figures = [("contacts", args.contacts)]
        for name in ("all", "gold", "gold_us_90_days", "channel"):
            figures.append((f"preview_{name}_count", int(found[f"PREVIEW_{name.upper()}_COUNT"])))
            figures.append((f"preview_{name}_seconds", float(found[f"PREVIEW_{name.upper()}_SECONDS"])))
        figures.append(("recipients", int(found["RECIPIENTS"])))
        figures.append(("campaign_start_seconds", float(found["CAMPAIGN_START_SECONDS"])))
        print_figures([(name, f"{value:.3f}" if isinstance(value, float) else value) for name, value in figures])
        if int(found["RECIPIENTS"]) != int(found["PREVIEW_GOLD_COUNT"]):  # the audience is the segment
            stack.keep_logs = True
            raise SystemExit("the campaign's recipients are not the segment's contacts")


if __name__ == "__main__":
    main()
