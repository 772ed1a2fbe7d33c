"""The campaign report's figures of message outcomes, as changes appended by the database.

A campaign message whose status (or failure reasons) changes appends a
CampaignReportDelta row for its recipient's campaign, variant and hour (the
hour the campaign reached it): +1/-1 on `sent` (accepted by the channel:
sent, delivered or read), `delivered` (delivered or read), `read` and `failed`
(failed or removed), and a row per failure reason. Appended only (no row is
updated by two requests, so none waits for another); `campaign_reports_fold`
(services/campaign_reports.py) sums them into CampaignReportCount off the hot
path and deletes them.

PostgreSQL: a statement-level trigger over transition tables (a batch of 200
status changes is one aggregated insert); SQLite (the embedded mode): a
row-level trigger. Recipients reached before this migration are counted once
here.
"""

from django.db import migrations
from django.db.models import OuterRef, Subquery

SENT = "('sent', 'delivered', 'read')"
DELIVERED = "('delivered', 'read')"
FAILED = "('failed', 'removed')"
DELTA = "channels_app_campaignreportdelta"
COLUMNS = "(campaign_id, variant, hour, reason, total, refused, sent, delivered, read, failed)"

# The key of a failed message's reason: its first reason's code and words (services/campaign_reports.reason_key).
POSTGRESQL = [statement.strip() for statement in f"""
CREATE FUNCTION channels_app_report_reason(status text, reasons jsonb) RETURNS text AS $$
    SELECT CASE WHEN status IN {FAILED} THEN coalesce(nullif(left(trim(coalesce(reasons->0->>'code', '') || ' '
        || coalesce(reasons->0->>'message', '')), 200), ''), 'unknown') END;
$$ LANGUAGE sql IMMUTABLE;

CREATE FUNCTION channels_app_report_messages_updated() RETURNS trigger AS $$
BEGIN
    INSERT INTO {DELTA} {COLUMNS}
    SELECT r.campaign_id, coalesce(r.variant, -1), date_trunc('hour', r.reached_at), '', 0, 0,
        sum((n.status IN {SENT})::int - (o.status IN {SENT})::int),
        sum((n.status IN {DELIVERED})::int - (o.status IN {DELIVERED})::int),
        sum((n.status = 'read')::int - (o.status = 'read')::int),
        sum((n.status IN {FAILED})::int - (o.status IN {FAILED})::int)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id AND o.status IS DISTINCT FROM n.status
    JOIN channels_app_campaignrecipient r ON r.message_id = n.id AND r.reached_at IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING sum((n.status IN {SENT})::int - (o.status IN {SENT})::int) <> 0
        OR sum((n.status IN {DELIVERED})::int - (o.status IN {DELIVERED})::int) <> 0
        OR sum((n.status = 'read')::int - (o.status = 'read')::int) <> 0
        OR sum((n.status IN {FAILED})::int - (o.status IN {FAILED})::int) <> 0;
    INSERT INTO {DELTA} {COLUMNS}
    SELECT r.campaign_id, coalesce(r.variant, -1), date_trunc('hour', r.reached_at), x.reason, 0, 0, 0, 0, 0,
        sum(x.change)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id AND (o.status IS DISTINCT FROM n.status OR o.reasons IS DISTINCT FROM n.reasons)
    JOIN channels_app_campaignrecipient r ON r.message_id = n.id AND r.reached_at IS NOT NULL
    CROSS JOIN LATERAL (VALUES (channels_app_report_reason(o.status, o.reasons), -1),
                               (channels_app_report_reason(n.status, n.reasons), 1)) AS x(reason, change)
    WHERE x.reason IS NOT NULL
    GROUP BY 1, 2, 3, 4
    HAVING sum(x.change) <> 0;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER channels_app_report_messages_updated AFTER UPDATE ON channels_app_message
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION channels_app_report_messages_updated();
""".split("\n\n") if statement.strip()]

POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS channels_app_report_messages_updated ON channels_app_message;",
    "DROP FUNCTION IF EXISTS channels_app_report_messages_updated();",
    "DROP FUNCTION IF EXISTS channels_app_report_reason(text, jsonb);",
]


def _sqlite_reason(row: str) -> str:
    return (f"coalesce(nullif(substr(trim(coalesce(json_extract({row}.reasons, '$[0].code'), '') || ' ' || "
            f"coalesce(json_extract({row}.reasons, '$[0].message'), '')), 1, 200), ''), 'unknown')")


SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00', reached_at)"
SQLITE = [
    f"""CREATE TRIGGER channels_app_report_messages_updated AFTER UPDATE OF status, reasons ON channels_app_message
    WHEN NEW.status IS NOT OLD.status OR NEW.reasons IS NOT OLD.reasons
    BEGIN
    INSERT INTO {DELTA} {COLUMNS}
        SELECT campaign_id, coalesce(variant, -1), {SQLITE_HOUR}, '', 0, 0,
            (NEW.status IN {SENT}) - (OLD.status IN {SENT}), (NEW.status IN {DELIVERED}) - (OLD.status IN {DELIVERED}),
            (NEW.status = 'read') - (OLD.status = 'read'), (NEW.status IN {FAILED}) - (OLD.status IN {FAILED})
        FROM channels_app_campaignrecipient
        WHERE message_id = NEW.id AND reached_at IS NOT NULL AND NEW.status IS NOT OLD.status;
    INSERT INTO {DELTA} {COLUMNS}
        SELECT campaign_id, coalesce(variant, -1), {SQLITE_HOUR}, {_sqlite_reason("OLD")}, 0, 0, 0, 0, 0, -1
        FROM channels_app_campaignrecipient
        WHERE message_id = NEW.id AND reached_at IS NOT NULL AND OLD.status IN {FAILED};
    INSERT INTO {DELTA} {COLUMNS}
        SELECT campaign_id, coalesce(variant, -1), {SQLITE_HOUR}, {_sqlite_reason("NEW")}, 0, 0, 0, 0, 0, 1
        FROM channels_app_campaignrecipient
        WHERE message_id = NEW.id AND reached_at IS NOT NULL AND NEW.status IN {FAILED};
    END;""",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS channels_app_report_messages_updated;"]


def create_triggers(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for statement in statements:
        schema_editor.execute(statement, params=None)  # no parameters: % is a literal


def drop_triggers(apps, schema_editor):
    statements = POSTGRESQL_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    for statement in statements:
        schema_editor.execute(statement, params=None)


FAILED_STATUSES = {"failed", "removed"}


def _reason(status: str, reasons) -> str | None:
    # services/campaign_reports.reason_key, as it is when this migration was written
    if status not in FAILED_STATUSES:
        return None
    first = reasons[0] if isinstance(reasons, list) and reasons and isinstance(reasons[0], dict) else {}
    code, words = first.get("code"), first.get("message")
    key = f"{'' if code is None else code} {'' if words is None else words}".strip(" ")[:200]
    return key or "unknown"


def count_existing(apps, schema_editor):
    """The recipients the campaigns reached before the report existed: reached when their message was made
    (or, refused, when their campaign was created), counted once, without variants."""
    Campaign = apps.get_model("channels_app", "Campaign")
    CampaignRecipient = apps.get_model("channels_app", "CampaignRecipient")
    CampaignReportCount = apps.get_model("channels_app", "CampaignReportCount")
    Message = apps.get_model("channels_app", "Message")
    made_at = Subquery(Message.objects.filter(pk=OuterRef("message_id")).values("created_at")[:1])
    for campaign_id, created_at in Campaign.objects.values_list("pk", "created_at"):
        counts: dict = {}
        rows = (CampaignRecipient.objects.filter(campaign_id=campaign_id)
                .filter(message__isnull=False).values_list("pk", "message__created_at", "message__status",
                                                           "message__reasons"))
        for _pk, made, status, reasons in rows.iterator(chunk_size=5000):
            hour = made.replace(minute=0, second=0, microsecond=0)
            figures = counts.setdefault((hour, ""), {})
            figures["total"] = figures.get("total", 0) + 1
            for name, statuses in (("sent", {"sent", "delivered", "read"}), ("delivered", {"delivered", "read"}),
                                   ("read", {"read"}), ("failed", FAILED_STATUSES)):
                if status in statuses:
                    figures[name] = figures.get(name, 0) + 1
            if (reason := _reason(status, reasons)) is not None:
                by_reason = counts.setdefault((hour, reason), {})
                by_reason["failed"] = by_reason.get("failed", 0) + 1
        CampaignRecipient.objects.filter(campaign_id=campaign_id, message__isnull=False).update(reached_at=made_at)
        refused = CampaignRecipient.objects.filter(campaign_id=campaign_id, message__isnull=True).exclude(error="")
        number = refused.update(reached_at=created_at)
        if number:
            figures = counts.setdefault((created_at.replace(minute=0, second=0, microsecond=0), ""), {})
            figures["total"] = figures.get("total", 0) + number
            figures["refused"] = figures.get("refused", 0) + number
        CampaignReportCount.objects.bulk_create([
            CampaignReportCount(campaign_id=campaign_id, variant=-1, hour=hour, reason=reason, **figures)
            for (hour, reason), figures in counts.items()
        ])


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0027_campaign_report_variants")]

    operations = [
        migrations.RunPython(count_existing, migrations.RunPython.noop),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
