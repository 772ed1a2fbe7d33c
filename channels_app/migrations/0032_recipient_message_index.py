"""A recipient's message unique among the recipients that have one (issue 25, lever 4: every index on the write
path justified by a query): the unique constraint on `message_id` held an entry for every recipient still
waiting for its message, a NULL no query looks for, so an audience of a million added a million entries to it.
The partial unique index keeps the rule (one recipient a message) and serves every look-up by message
(`message_id = ...`, `IN (...)`, the join of the message triggers), each of which implies a message.

Built CONCURRENTLY (docs/OPERATIONS.md, "Upgrades": no long lock on a large table), hence not atomic; the old
constraint is dropped once the index exists. SQLite (the embedded mode) gets the index and keeps its column's
UNIQUE (which takes any number of NULLs there): removing it would rebuild the table without the counting
triggers of migration 0019.
"""

from django.db import migrations, models

RECIPIENTS = "channels_app_campaignrecipient"
INDEX = "recipient_unique_message"
CREATE = f"ON {RECIPIENTS} (message_id) WHERE message_id IS NOT NULL"


def _old_unique(apps, schema_editor) -> list[str]:
    recipient = apps.get_model("channels_app", "CampaignRecipient")
    return [name for name in schema_editor._constraint_names(recipient, ["message_id"], unique=True,
                                                             primary_key=False) if name != INDEX]


def partial_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {INDEX} {CREATE}")
        return
    # A build interrupted leaves an invalid index of this name: rebuilt, never taken as done.
    if _invalid(schema_editor):
        schema_editor.execute(f"DROP INDEX CONCURRENTLY {INDEX}")
    schema_editor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} {CREATE}")
    for name in _old_unique(apps, schema_editor):
        schema_editor.execute(f"ALTER TABLE {RECIPIENTS} DROP CONSTRAINT {schema_editor.quote_name(name)}")


def _invalid(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.relname = %s AND NOT i.indisvalid", [INDEX])
        return cursor.fetchone() is not None


def unique_column(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql" and not _old_unique(apps, schema_editor):
        schema_editor.execute(f"ALTER TABLE {RECIPIENTS} ADD CONSTRAINT {RECIPIENTS}_message_id_key UNIQUE (message_id)")
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("channels_app", "0031_recipients_checked_once")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="message",
                    field=models.ForeignKey(blank=True, db_index=False, null=True,
                                            on_delete=models.deletion.SET_NULL, related_name="campaign_recipient",
                                            to="channels_app.message"),
                ),
                migrations.AddConstraint(
                    model_name="campaignrecipient",
                    constraint=models.UniqueConstraint(condition=models.Q(("message__isnull", False)),
                                                       fields=("message",), name=INDEX),
                ),
            ],
            database_operations=[migrations.RunPython(partial_index, unique_column)],
        ),
    ]
