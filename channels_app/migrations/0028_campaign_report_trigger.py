"""The campaign report's figures of message outcomes, as changes appended by the database.

A campaign message whose status (or failure reasons) changes appends a
CampaignReportDelta row for its recipient's campaign, variant and hour (the
hour the campaign reached it): +1/-1 on `sent` (accepted by the channel:
sent, delivered or read), `delivered` (delivered or read), `read` and `failed`
(failed or removed), and a row per failure reason. Appended only (no row is
updated by two requests, so none waits for another); `campaign_reports_fold`
(services/campaign_reports.py) sums them into CampaignReportCount off the hot
path and deletes them.

A row-level trigger, fired only when the status or the reasons change: a
message of no campaign costs one look-up in the recipients' unique index on
`message_id`, a campaign's message one insert of a narrow row (a
statement-level trigger over transition tables cost five times as much per
receipt, its queries planned again each time). Recipients reached before this
migration are counted once here.
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
DECLARE
    r record;
    old_reason text;
    new_reason text;
BEGIN
    SELECT campaign_id, coalesce(variant, -1) AS variant, date_trunc('hour', reached_at) AS hour INTO r
    FROM channels_app_campaignrecipient WHERE message_id = NEW.id AND reached_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NULL;  -- not a campaign's message
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


def forget_counts(apps, schema_editor):
    apps.get_model("channels_app", "CampaignReportCount").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0027_campaign_report_variants")]

    operations = [
        migrations.RunPython(count_existing, forget_counts),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
