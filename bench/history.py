"""A tenant's stored history, loaded before a benchmark's measured run (issue 25: "history ... with 10,000,000
messages already stored: CPU per message within 10% of an empty database").

    parser = argparse.ArgumentParser(); add_history_argument(parser)     # --history N (default 0: none)
    figures = load_history(stack.dsn, channel_id="bench-sms-inbound", messages=args.history)
    print_figures([*figures, ...])       # history_messages=N, history_load_seconds=s, ...

`bench.inbound`, `bench.webhook` and `bench.esp` take `--history N`; their measured figures keep their names,
so a run with `--history 10000000` compares line by line with one without.

What is loaded, on the benchmark's channel and its tenant: N messages in conversations of `per_conversation`
(20) messages, a customer's and an agent's in turn, every conversation ended; ten conversations per contact,
so N / 200 contacts, whose numbers are the ones the benchmarks' customers use (+1650 200 0000 and up: the
benchmark's customers come back with a history of their own, as a tenant's do); one delivery per agent
message (delivered). Times spread over the past year, growing with the conversation's number, as they grow
in production; interaction and message ids as the application makes them (channels_app/ids.py: the time
of the row, then random characters), so the primary keys' indexes are laid out as the application lays them
out; the channels' and third parties' message ids random, as theirs are. Sizes like the application's:
the customer's text in the message and again in its payload, a channel message id on each customer message,
the third party's message id on each agent message.

Fast: the rows are written by COPY in PostgreSQL's text format (blocks of 10,000 lines) with the loaded
tables' secondary indexes and foreign keys dropped and made again afterwards from their own definitions
(pg_get_indexdef: the indexes the migrations define, not a copy of them), the deliveries by one INSERT ...
SELECT, then VACUUM (ANALYZE) of the loaded tables: the planner's statistics, and no autovacuum of 10M
new rows starting inside the measured window. Indicative, helpers running beside: 200,000 messages in ~4 s;
see bench/README.md for 10M.
"""

import base64
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg

from channels_app.ids import TIME_CHARACTERS, time_prefix

MESSAGE_COLUMNS = ["id", "interaction_id", "channel_id", "direction", "text", "payload", "status", "reasons",
                   "external_id", "channel_message_id", "trace_id", "created_at", "updated_at"]
INTERACTION_COLUMNS = ["id", "channel_id", "contact_id", "client_id", "type", "subtype", "state", "queue",
                       "user_data", "terminate_after_send", "last_activity_at", "created_at", "ended_at",
                       "end_reason", "disposition", "session_options"]
CONTACT_COLUMNS = ["tenant_id", "phone_number", "client_id", "first_name", "last_name", "email", "nickname",
                   "attributes", "created_at", "updated_at", "country"]
DELIVERY_COLUMNS = ["message_id", "channel_id", "state", "attempts", "next_attempt_at", "last_error", "lease_token",
                    "has_followers", "created_at", "updated_at"]

LOADED_TABLES = ("channels_app_contact", "channels_app_interaction", "channels_app_message", "channels_app_delivery")

# The benchmarks' customers: client ids 1650 200 0000 and up (bench.inbound, bench.webhook, bench.esp).
FIRST_CLIENT = 16502000000
CONVERSATIONS_PER_CONTACT = 10
BLOCK = 10_000


def add_history_argument(parser) -> None:
    parser.add_argument("--history", type=int, default=0, metavar="N",
                        help="messages already stored before the measured run (bench/history.py; default 0)")


def copy_lines(conn: psycopg.Connection, table: str, columns: list[str], lines) -> None:
    """COPY in PostgreSQL's text format, `lines` already formatted (tab-separated, newline-ended; the values
    hold no tab, newline or backslash), sent in blocks of 10,000: row by row (`write_row`) the generator's
    Python was most of the generation's time."""
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        block = []
        for line in lines:
            block.append(line)
            if len(block) == BLOCK:
                copy.write("".join(block))
                block = []
        copy.write("".join(block))


def without_secondary_indexes_and_foreign_keys(conn: psycopg.Connection, tables=LOADED_TABLES):
    """PostgreSQL's advice for a bulk load ("Populating a Database"): the loaded tables' secondary indexes
    and foreign keys are dropped for the COPY (primary keys and unique constraints stay) and made again
    afterwards, each index by one sorted build and each foreign key by one validating join, instead of an
    index insertion and a trigger's query per row. Returns the function that makes them again."""
    return _without_indexes(conn, tables, keys=False)


def without_indexes_keys_and_foreign_keys(conn: psycopg.Connection, tables=LOADED_TABLES):
    """The same, the primary keys and unique constraints dropped too (and with them the foreign keys of
    other tables that point at the loaded ones): a random 20-character key inserted into a primary key's
    B-tree row by row was most of the COPY's time, where one sorted build afterwards takes seconds. For a
    load that writes no duplicate (the history's ids, random after their time): a duplicate would fail the
    build at the end instead of the row."""
    return _without_indexes(conn, tables, keys=True)


def _without_indexes(conn: psycopg.Connection, tables, *, keys: bool):
    tables = list(tables)
    keys_sql = ("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype IN ('p', 'u') AND conrelid::regclass::text = ANY(%s)")
    constraints = conn.execute(keys_sql, [tables]).fetchall() if keys else []
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
        "WHERE indrelid::regclass::text = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [tables]).fetchall()
    pointing_in = " OR confrelid::regclass::text = ANY(%(tables)s)" if keys else ""
    foreign_keys = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE contype = 'f' AND (conrelid::regclass::text = ANY(%(tables)s){pointing_in})",
        {"tables": tables}).fetchall()
    for table, name, _ in foreign_keys:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for table, name, _ in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")

    def make_again() -> None:
        conn.execute("SET maintenance_work_mem = '512MB'")
        for table, name, definition in constraints:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            conn.execute(definition)
        for table, name, definition in foreign_keys:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')

    return make_again


# The application's id alphabet (models.conversations.ID_ALPHABET) from base64's: '+' and '/' mapped to two of
# its letters (a slight bias that changes nothing an index sees).
_TO_ID_ALPHABET = bytes.maketrans(b"+/", b"Xy")


def random_ids(count: int, length: int) -> list[str]:
    """`count` random ids of `length` characters of the application's alphabet, from one call for the
    randomness: per id, a divmod loop over the characters would be most of a 10M load's time."""
    width = -(-length // 4) * 4  # base64 makes 4 characters of 3 bytes
    text = base64.b64encode(os.urandom(count * width * 3 // 4)).translate(_TO_ID_ALPHABET).decode()
    return [text[i:i + length] for i in range(0, count * width, width)]


def time_ordered_ids(milliseconds: list[int], length: int) -> list[str]:
    """The application's ids (channels_app/ids.py) of rows made at `milliseconds` since 1970: each one's time
    prefix, then random characters (random_ids)."""
    randoms = random_ids(len(milliseconds), length - TIME_CHARACTERS)
    return [time_prefix(at) + random for at, random in zip(milliseconds, randoms, strict=True)]


def _milliseconds(at: datetime) -> int:
    return int(at.timestamp() * 1000)


CUSTOMER_TEXTS = ["Hi, I ordered a pair of shoes last week and the tracking number does not work, can you check",
                  "Thanks! What time does the store on Main Street close today?",
                  "Yes please, the same address as last time", "ok", "My invoice shows a charge I do not recognise"]
AGENT_TEXTS = ["Hello, thanks for reaching out. Let me look at your order, one moment please.",
               "It ships tomorrow morning; you will get an SMS with the new tracking link.",
               "You're welcome! Is there anything else I can help you with today?"]


def load_history(dsn: str, *, channel_id: str, messages: int, per_conversation: int = 20,
                 days: float = 365.0) -> list[tuple[str, object]]:
    """Load `messages` messages of history on the channel `channel_id` (module docstring); the figures to print:
    history_messages, history_conversations, history_contacts, history_load_seconds (everything: COPY, the
    indexes and foreign keys made again, VACUUM (ANALYZE)) and history_database_mb."""
    if messages <= 0:
        return [("history_messages", 0)]
    began = time.perf_counter()
    conversations = max(messages // per_conversation, 1)
    contacts = max(conversations // CONVERSATIONS_PER_CONTACT, 1)
    ended = datetime.now(UTC) - timedelta(days=1)  # the newest conversation ended yesterday
    first = ended - timedelta(days=days)
    step = (ended - first) / conversations
    with psycopg.connect(dsn) as conn:
        channel, tenant = conn.execute("SELECT id, tenant_id FROM channels_app_channel WHERE channel_id = %s",
                                       [channel_id]).fetchone()
        taken = {row[0] for row in conn.execute("SELECT phone_number FROM channels_app_contact WHERE tenant_id = %s",
                                                [tenant])}
        make_again = without_indexes_keys_and_foreign_keys(conn)
        numbers = [n for n in range(FIRST_CLIENT, FIRST_CLIENT + contacts + len(taken))
                   if f"+{n}" not in taken][:contacts]
        made = (first - timedelta(days=30)).isoformat()

        def last_written(k: int) -> str:
            """Contact k's last conversation is the last n < conversations with n % contacts == k."""
            return (first + step * (k + contacts * ((conversations - 1 - k) // contacts))).isoformat()

        copy_lines(conn, "channels_app_contact", [*CONTACT_COLUMNS, "last_message_at"], (
            f"{tenant}\t+{n}\t{n}\tCustomer\t{n % 9973}\tcustomer{n}@example.com\tCustomer {n % 9973}\t"
            f'{{"Segment": "retail", "LoyaltyTier": "{("gold", "silver", "none")[n % 3]}"}}\t{made}\t{made}\tUS\t'
            f"{last_written(k)}\n"
            for k, n in enumerate(numbers)))
        contact_ids = [row[0] for row in conn.execute(
            "SELECT id FROM channels_app_contact WHERE tenant_id = %s AND phone_number = ANY(%s) ORDER BY id",
            [tenant, [f"+{n}" for n in numbers]])]
        clients = dict(zip(contact_ids, numbers, strict=True))

        def moments(n: int) -> tuple[datetime, datetime]:
            started = first + step * n
            return started, started + timedelta(seconds=30 * per_conversation)

        interaction_ids = time_ordered_ids([_milliseconds(moments(n)[0]) for n in range(conversations)], 16)

        def interactions():
            for n, interaction in enumerate(interaction_ids):
                contact = contact_ids[n % contacts]
                started, finished = moments(n)
                at, end = started.isoformat(), finished.isoformat()
                yield (f"{interaction}\t{channel}\t{contact}\t{clients[contact]}\tInbound\tInboundNew\tended\t"
                       f'1:session-chat\t{{"_umsMsgType": "text", "Subject": "Order {n}"}}\tf\t{end}\t{at}\t{end}\t'
                       f"agent\tresolved\t{{}}\n")

        copy_lines(conn, "channels_app_interaction", INTERACTION_COLUMNS, interactions())

        def rows():
            for start in range(0, conversations, BLOCK // per_conversation or 1):
                chunk = interaction_ids[start:start + (BLOCK // per_conversation or 1)]
                times = [_milliseconds(moments(start + offset)[0]) + 30_000 * m
                         for offset in range(len(chunk)) for m in range(per_conversation)]
                message_ids, their_ids = time_ordered_ids(times, 20), random_ids(len(times), 20)
                for offset, interaction in enumerate(chunk):
                    started, _ = moments(start + offset)
                    for m in range(per_conversation):
                        number = offset * per_conversation + m
                        at = (started + timedelta(seconds=30 * m)).isoformat()
                        if m % 2:
                            text = AGENT_TEXTS[m % len(AGENT_TEXTS)]
                            yield (f"{message_ids[number]}\t{interaction}\t{channel}\toutbound\t{text}\t"
                                   f'{{"type": "Text", "text": "{text}"}}\tdelivered\t[]\t{their_ids[number]}\t\t\t'
                                   f"{at}\t{at}\n")
                        else:
                            text = CUSTOMER_TEXTS[(start + offset + m) % len(CUSTOMER_TEXTS)]
                            yield (f"{message_ids[number]}\t{interaction}\t{channel}\tinbound\t{text}\t"
                                   f'{{"type": "Text", "text": "{text}"}}\treceived\t[]\t\t{their_ids[number]}\t\t'
                                   f"{at}\t{at}\n")

        copy_lines(conn, "channels_app_message", MESSAGE_COLUMNS, rows())
        # Statistics first: planned on an "empty" table, the deliveries' anti-join rescanned the deliveries
        # for every message (minutes for 200,000 messages).
        conn.execute("ANALYZE channels_app_message, channels_app_delivery")
        # And no nested loop: with the deliveries (nearly) empty when planned, the planner probes them by a
        # sequential scan per message, and that scan also passes over every row this same INSERT has added (not
        # visible to it, but read): quadratic, a 10,000,000-message past never finished. Hashed, it is one pass.
        conn.execute("SET LOCAL enable_nestloop = off")
        conn.execute(
            f"INSERT INTO channels_app_delivery ({', '.join(DELIVERY_COLUMNS)}, delivered_at) "
            "SELECT m.id, m.channel_id, 'delivered', 1, m.created_at, '', '', false, m.created_at, m.created_at, "
            "m.created_at FROM channels_app_message m WHERE m.channel_id = %s AND m.direction = 'outbound' "
            "AND m.created_at <= %s AND NOT EXISTS (SELECT 1 FROM channels_app_delivery d WHERE d.message_id = m.id)",
            [channel, ended + timedelta(seconds=30 * per_conversation)])
        make_again()
        conn.commit()
        conn.autocommit = True
        conn.execute(f"VACUUM (ANALYZE) {', '.join(LOADED_TABLES)}")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return [("history_messages", conversations * per_conversation), ("history_conversations", conversations),
            ("history_contacts", len(contact_ids)), ("history_load_seconds", time.perf_counter() - began),
            ("history_database_mb", size / 2**20)]
