"""The campaign report's message changes appended once a statement, by the trigger that already keeps the counts
(issue 25, lever 6).

Migration 0028 appended a CampaignReportDelta row for every campaign message whose status or reasons changed, from
a row-level trigger: a look-up of the message's recipient and an insert, per message. A campaign batch records its
accepted answers sixteen at a time in one statement (services/deliveries.py, `_DELIVERED_SQL`), so it paid sixteen
trigger calls, look-ups and inserts a round for what one grouped row says. Meanwhile the statement-level trigger of
migration 0019 already joined the statement's transition tables with the recipients to keep CampaignCounter.

Now that one trigger does both from the same join: the counts as before, and the report's changes summed per
campaign, variant, hour (reached) and reason, one row each (none when a group's changes cancel out). 0028's row
trigger is dropped. 0028 noted that a separate statement-level trigger cost five times its row trigger per receipt
(one message a statement): here no trigger is added (the transition tables are already kept for 0019's), and the
recipient is looked up once per message instead of once for each trigger. The figures are those 0028 computes,
row for row (`tests/test_campaign_report.py`, a batch of many). SQLite (the embedded mode) keeps 0028's triggers.
"""

from django.db import migrations

# The counts' statuses (migration 0019) and the report's (migration 0028) differ: the counts' `sent` is a message
# still only sent, the report's one the channel accepted (sent, delivered or read).
COUNT_SENT = "('sent')"
SENT = "('sent', 'delivered', 'read')"
DELIVERED = "('delivered', 'read')"
FAILED = "('failed', 'removed')"
DELTA = "channels_app_campaignreportdelta"
COLUMNS = "(campaign_id, variant, hour, reason, total, refused, sent, delivered, read, failed)"

POSTGRESQL = [statement.strip() for statement in f"""
CREATE OR REPLACE FUNCTION channels_app_counts_messages_updated() RETURNS trigger AS $$
BEGIN
    WITH changed AS MATERIALIZED (
        SELECT r.campaign_id, coalesce(r.variant, -1) AS variant, date_trunc('hour', r.reached_at) AS hour,
               abs(hashtext(n.id)) % 8 AS shard, o.status AS was, n.status AS now,
               channels_app_report_reason(o.status, o.reasons) AS old_reason,
               channels_app_report_reason(n.status, n.reasons) AS new_reason
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id AND (o.status IS DISTINCT FROM n.status OR o.reasons IS DISTINCT FROM n.reasons)
        JOIN channels_app_campaignrecipient r ON r.message_id = n.id
    ), counted AS (
        INSERT INTO channels_app_campaigncounter AS c (campaign_id, shard, total, refused, sent, delivered, failed)
        SELECT campaign_id, shard::int, 0, 0,
               sum((now IN {COUNT_SENT})::int - (was IN {COUNT_SENT})::int),
               sum((now IN {DELIVERED})::int - (was IN {DELIVERED})::int),
               sum((now IN {FAILED})::int - (was IN {FAILED})::int)
        FROM changed WHERE was IS DISTINCT FROM now
        GROUP BY campaign_id, shard
        ON CONFLICT (campaign_id, shard) DO UPDATE SET
            total = c.total + EXCLUDED.total, refused = c.refused + EXCLUDED.refused, sent = c.sent + EXCLUDED.sent,
            delivered = c.delivered + EXCLUDED.delivered, failed = c.failed + EXCLUDED.failed
    ), statuses AS (
        INSERT INTO {DELTA} {COLUMNS}
        SELECT campaign_id, variant, hour, '', 0, 0, sent, delivered, read, failed
        FROM (SELECT campaign_id, variant, hour,
                     sum((now IN {SENT})::int - (was IN {SENT})::int) AS sent,
                     sum((now IN {DELIVERED})::int - (was IN {DELIVERED})::int) AS delivered,
                     sum((now = 'read')::int - (was = 'read')::int) AS read,
                     sum((now IN {FAILED})::int - (was IN {FAILED})::int) AS failed
              FROM changed WHERE hour IS NOT NULL AND was IS DISTINCT FROM now
              GROUP BY campaign_id, variant, hour) AS summed
        WHERE (sent, delivered, read, failed) <> (0, 0, 0, 0)
    )
    INSERT INTO {DELTA} {COLUMNS}
    SELECT campaign_id, variant, hour, reason, 0, 0, 0, 0, 0, failed
    FROM (SELECT campaign_id, variant, hour, x.reason, sum(x.change) AS failed
          FROM changed, LATERAL (VALUES (old_reason, -1), (new_reason, 1)) AS x(reason, change)
          WHERE hour IS NOT NULL AND old_reason IS DISTINCT FROM new_reason AND x.reason IS NOT NULL
          GROUP BY campaign_id, variant, hour, x.reason) AS summed
    WHERE failed <> 0;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DROP TRIGGER channels_app_report_messages_updated ON channels_app_message;

DROP FUNCTION channels_app_report_messages_updated();
""".split("\n\n") if statement.strip()]

# Migrations 0019's counting function and 0028's row trigger, as they were.
POSTGRESQL_REVERSE = [statement.strip() for statement in f"""
CREATE OR REPLACE FUNCTION channels_app_counts_messages_updated() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_counts_add(r.campaign_id, (abs(hashtext(n.id)) % 8)::int, 0, 0,
        sum((n.status IN {COUNT_SENT})::int - (o.status IN {COUNT_SENT})::int),
        sum((n.status IN {DELIVERED})::int - (o.status IN {DELIVERED})::int),
        sum((n.status IN {FAILED})::int - (o.status IN {FAILED})::int))
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id AND o.status IS DISTINCT FROM n.status
    JOIN channels_app_campaignrecipient r ON r.message_id = n.id
    GROUP BY r.campaign_id, abs(hashtext(n.id)) % 8;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION channels_app_report_messages_updated() RETURNS trigger AS $$
DECLARE
    r record;
    old_reason text;
    new_reason text;
BEGIN
    SELECT campaign_id, coalesce(variant, -1) AS variant, date_trunc('hour', reached_at) AS hour INTO r
    FROM channels_app_campaignrecipient WHERE message_id = NEW.id AND reached_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    old_reason := channels_app_report_reason(OLD.status, OLD.reasons);
    new_reason := channels_app_report_reason(NEW.status, NEW.reasons);
    IF OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO {DELTA} {COLUMNS} VALUES (r.campaign_id, r.variant, r.hour, '', 0, 0,
            (NEW.status IN {SENT})::int - (OLD.status IN {SENT})::int,
            (NEW.status IN {DELIVERED})::int - (OLD.status IN {DELIVERED})::int,
            (NEW.status = 'read')::int - (OLD.status = 'read')::int,
            (NEW.status IN {FAILED})::int - (OLD.status IN {FAILED})::int);
    END IF;
    IF old_reason IS DISTINCT FROM new_reason THEN
        INSERT INTO {DELTA} {COLUMNS}
        SELECT r.campaign_id, r.variant, r.hour, x.reason, 0, 0, 0, 0, 0, x.change
        FROM (VALUES (old_reason, -1), (new_reason, 1)) AS x(reason, change) WHERE x.reason IS NOT NULL;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER channels_app_report_messages_updated AFTER UPDATE OF status, reasons ON channels_app_message
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.reasons IS DISTINCT FROM NEW.reasons)
    EXECUTE FUNCTION channels_app_report_messages_updated();
""".split("\n\n") if statement.strip()]


def report_changes_by_statement(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in POSTGRESQL:
        schema_editor.execute(statement, params=None)  # no parameters: % is the modulo operator


def report_changes_by_row(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in POSTGRESQL_REVERSE:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0035_interaction_open_by_contact")]

    operations = [migrations.RunPython(report_changes_by_statement, report_changes_by_row)]
