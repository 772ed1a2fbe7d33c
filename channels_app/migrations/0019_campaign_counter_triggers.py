"""Campaign counts kept by the database, in the statement that changes them.

A recipient inserted adds to `total` (and to `refused` when it carries an
error); a recipient refused later adds to `refused`; a campaign message whose
status changes moves one between `sent`, `delivered` (read included) and
`failed` (removed included). A recipient with a message still queued is
pending: total - refused - sent - delivered - failed.

PostgreSQL: statement-level triggers over transition tables, so a batch of
200 status changes, or a COPY of a million recipients, is one aggregated
upsert per campaign and shard. SQLite (the embedded mode): row-level
triggers, all in shard 0. Existing campaigns are counted once here.
"""

from django.db import migrations

SENT = "('sent')"
DELIVERED = "('delivered', 'read')"
FAILED = "('failed', 'removed')"

POSTGRESQL = [statement.strip() for statement in f"""
CREATE FUNCTION channels_app_counts_add(campaign bigint, part int, d_total bigint, d_refused bigint,
                                        d_sent bigint, d_delivered bigint, d_failed bigint) RETURNS void AS $$
    INSERT INTO channels_app_campaigncounter AS c (campaign_id, shard, total, refused, sent, delivered, failed)
    VALUES (campaign, part, d_total, d_refused, d_sent, d_delivered, d_failed)
    ON CONFLICT (campaign_id, shard) DO UPDATE SET
        total = c.total + EXCLUDED.total, refused = c.refused + EXCLUDED.refused, sent = c.sent + EXCLUDED.sent,
        delivered = c.delivered + EXCLUDED.delivered, failed = c.failed + EXCLUDED.failed;
$$ LANGUAGE sql;

CREATE FUNCTION channels_app_counts_recipients_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_counts_add(campaign_id, 0, count(*), count(*) FILTER (WHERE error <> ''), 0, 0, 0)
    FROM new_rows GROUP BY campaign_id;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION channels_app_counts_recipients_updated() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_counts_add(n.campaign_id, (n.id % 8)::int, 0,
        sum((n.error <> '')::int - (o.error <> '')::int), 0, 0, 0)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.error <> '') IS DISTINCT FROM (o.error <> '')
    GROUP BY n.campaign_id, n.id % 8;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION channels_app_counts_messages_updated() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_counts_add(r.campaign_id, (abs(hashtext(n.id)) % 8)::int, 0, 0,
        sum((n.status IN {SENT})::int - (o.status IN {SENT})::int),
        sum((n.status IN {DELIVERED})::int - (o.status IN {DELIVERED})::int),
        sum((n.status IN {FAILED})::int - (o.status IN {FAILED})::int))
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id AND o.status IS DISTINCT FROM n.status
    JOIN channels_app_campaignrecipient r ON r.message_id = n.id
    GROUP BY r.campaign_id, abs(hashtext(n.id)) % 8;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER channels_app_counts_recipients_inserted AFTER INSERT ON channels_app_campaignrecipient
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION channels_app_counts_recipients_inserted();

CREATE TRIGGER channels_app_counts_recipients_updated AFTER UPDATE ON channels_app_campaignrecipient
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION channels_app_counts_recipients_updated();

CREATE TRIGGER channels_app_counts_messages_updated AFTER UPDATE ON channels_app_message
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION channels_app_counts_messages_updated();
""".split("\n\n") if statement.strip()]

POSTGRESQL_REVERSE = [line for line in """
DROP TRIGGER IF EXISTS channels_app_counts_messages_updated ON channels_app_message;
DROP TRIGGER IF EXISTS channels_app_counts_recipients_updated ON channels_app_campaignrecipient;
DROP TRIGGER IF EXISTS channels_app_counts_recipients_inserted ON channels_app_campaignrecipient;
DROP FUNCTION IF EXISTS channels_app_counts_messages_updated();
DROP FUNCTION IF EXISTS channels_app_counts_recipients_updated();
DROP FUNCTION IF EXISTS channels_app_counts_recipients_inserted();
DROP FUNCTION IF EXISTS channels_app_counts_add(bigint, int, bigint, bigint, bigint, bigint, bigint);
""".splitlines() if line]


UPSERT_SQLITE = """
    ON CONFLICT (campaign_id, shard) DO UPDATE SET
        total = total + excluded.total, refused = refused + excluded.refused, sent = sent + excluded.sent,
        delivered = delivered + excluded.delivered, failed = failed + excluded.failed;"""
INSERT_SQLITE = "INSERT INTO channels_app_campaigncounter (campaign_id, shard, total, refused, sent, delivered, failed)"

SQLITE = [
    f"""CREATE TRIGGER channels_app_counts_recipients_inserted AFTER INSERT ON channels_app_campaignrecipient
    BEGIN {INSERT_SQLITE} VALUES (NEW.campaign_id, 0, 1, NEW.error <> '', 0, 0, 0) {UPSERT_SQLITE} END;""",
    f"""CREATE TRIGGER channels_app_counts_recipients_updated AFTER UPDATE OF error ON channels_app_campaignrecipient
    WHEN (NEW.error <> '') <> (OLD.error <> '')
    BEGIN {INSERT_SQLITE} VALUES (NEW.campaign_id, 0, 0, (NEW.error <> '') - (OLD.error <> ''), 0, 0, 0)
    {UPSERT_SQLITE} END;""",
    f"""CREATE TRIGGER channels_app_counts_messages_updated AFTER UPDATE OF status ON channels_app_message
    WHEN NEW.status IS NOT OLD.status
    BEGIN {INSERT_SQLITE}
        SELECT campaign_id, 0, 0, 0, (NEW.status IN {SENT}) - (OLD.status IN {SENT}),
            (NEW.status IN {DELIVERED}) - (OLD.status IN {DELIVERED}), (NEW.status IN {FAILED}) - (OLD.status IN {FAILED})
        FROM channels_app_campaignrecipient WHERE message_id = NEW.id {UPSERT_SQLITE} END;""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS channels_app_counts_recipients_inserted;",
    "DROP TRIGGER IF EXISTS channels_app_counts_recipients_updated;",
    "DROP TRIGGER IF EXISTS channels_app_counts_messages_updated;",
]


def create_triggers(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for statement in statements:
        schema_editor.execute(statement, params=None)  # no parameters: % is the modulo operator


def drop_triggers(apps, schema_editor):
    statements = POSTGRESQL_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    for statement in statements:
        schema_editor.execute(statement, params=None)  # no parameters: % is the modulo operator


def count_existing(apps, schema_editor):
    """The campaigns that exist before the triggers: counted once, in shard 0."""
    Campaign = apps.get_model("channels_app", "Campaign")
    CampaignRecipient = apps.get_model("channels_app", "CampaignRecipient")
    CampaignCounter = apps.get_model("channels_app", "CampaignCounter")
    buckets = {"sent": "sent", "delivered": "delivered", "read": "delivered", "failed": "failed", "removed": "failed"}
    for campaign_id in Campaign.objects.values_list("pk", flat=True):
        counts = {"total": 0, "refused": 0, "sent": 0, "delivered": 0, "failed": 0}
        rows = (CampaignRecipient.objects.filter(campaign_id=campaign_id).values_list("error", "message__status")
                .iterator(chunk_size=5000))
        for error, status in rows:
            counts["total"] += 1
            if error:
                counts["refused"] += 1
            elif status in buckets:
                counts[buckets[status]] += 1
        CampaignCounter.objects.create(campaign_id=campaign_id, shard=0, **counts)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0018_campaign_counters")]

    operations = [
        migrations.RunPython(count_existing, migrations.RunPython.noop),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
