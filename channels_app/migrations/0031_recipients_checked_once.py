"""A campaign's recipients written without a per-row check of their campaign (issues 25 and 27: an audience of a
million rows, a segment of a million contacts, each stored within 10 s).

PostgreSQL's foreign key from a recipient to its campaign checked every row inserted: a million look-ups (and row
locks) of the same campaign for an audience of a million, a third of the time its COPY took. Instead:

* the statement-level trigger that counts inserted recipients (migration 0019) checks each campaign of the
  statement once: it takes the campaign's row `FOR KEY SHARE`, as the foreign key's check did, so the campaign
  cannot be deleted before the transaction ends, and raises `foreign_key_violation` when it does not exist;
* a recipient moved to another campaign (no code does it) is checked the same way, row by row;
* a campaign deleted (or its id changed) while recipients still point at it is refused at commit
  (`foreign_key_violation`, deferred as the foreign key was: Django's delete removes the recipients first).

SQLite (the embedded mode) keeps its foreign key.
"""

from django.db import migrations, models

RECIPIENTS = "channels_app_campaignrecipient"
CAMPAIGNS = "channels_app_campaign"

POSTGRESQL = [statement.strip() for statement in f"""
CREATE FUNCTION channels_app_recipient_campaign_check(campaign bigint) RETURNS void AS $$
BEGIN
    PERFORM 1 FROM {CAMPAIGNS} WHERE id = campaign FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "{RECIPIENTS}" violates recipient_campaign_exists'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'recipient_campaign_exists',
                  DETAIL = format('Key (campaign_id)=(%s) is not present in table "{CAMPAIGNS}".', campaign);
    END IF;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION channels_app_counts_recipients_inserted() RETURNS trigger AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT campaign_id, count(*) AS total, count(*) FILTER (WHERE error <> '') AS refused
             FROM new_rows GROUP BY campaign_id LOOP
        PERFORM channels_app_recipient_campaign_check(c.campaign_id);
        PERFORM channels_app_counts_add(c.campaign_id, 0, c.total, c.refused, 0, 0, 0);
    END LOOP;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION channels_app_recipient_campaign_moved() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_recipient_campaign_check(NEW.campaign_id);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER channels_app_recipient_campaign_moved AFTER UPDATE OF campaign_id ON {RECIPIENTS}
    FOR EACH ROW WHEN (NEW.campaign_id IS DISTINCT FROM OLD.campaign_id)
    EXECUTE FUNCTION channels_app_recipient_campaign_moved();

CREATE FUNCTION channels_app_campaign_recipients_left() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {RECIPIENTS} WHERE campaign_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "{CAMPAIGNS}" violates recipient_campaign_exists'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'recipient_campaign_exists',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "{RECIPIENTS}".', OLD.id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER channels_app_campaign_recipients_left AFTER DELETE OR UPDATE OF id ON {CAMPAIGNS}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION channels_app_campaign_recipients_left();
""".split("\n\n") if statement.strip()]

# Migration 0019's function, as it was.
POSTGRESQL_REVERSE = [statement.strip() for statement in f"""
DROP TRIGGER IF EXISTS channels_app_campaign_recipients_left ON {CAMPAIGNS};

DROP FUNCTION IF EXISTS channels_app_campaign_recipients_left();

DROP TRIGGER IF EXISTS channels_app_recipient_campaign_moved ON {RECIPIENTS};

DROP FUNCTION IF EXISTS channels_app_recipient_campaign_moved();

CREATE OR REPLACE FUNCTION channels_app_counts_recipients_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM channels_app_counts_add(campaign_id, 0, count(*), count(*) FILTER (WHERE error <> ''), 0, 0, 0)
    FROM new_rows GROUP BY campaign_id;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DROP FUNCTION IF EXISTS channels_app_recipient_campaign_check(bigint);
""".split("\n\n") if statement.strip()]



def campaign_checked_once(apps, schema_editor):
    """PostgreSQL: the checks, then the foreign key dropped (in this migration's one transaction: no moment
    without either). SQLite keeps its foreign key: the same check, and dropping it would rebuild the table
    without the counting triggers of migration 0019."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in POSTGRESQL:
        schema_editor.execute(statement, params=None)  # no parameters: % is format()'s
    recipient = apps.get_model("channels_app", "CampaignRecipient")
    for name in schema_editor._constraint_names(recipient, ["campaign_id"], foreign_key=True):
        schema_editor.execute(f"ALTER TABLE {RECIPIENTS} DROP CONSTRAINT {schema_editor.quote_name(name)}")


def campaign_foreign_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE {RECIPIENTS} ADD CONSTRAINT recipient_campaign_fk FOREIGN KEY (campaign_id) "
                          f"REFERENCES {CAMPAIGNS} (id) DEFERRABLE INITIALLY DEFERRED")
    for statement in POSTGRESQL_REVERSE:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0030_segments_send_windows")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="campaign",
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name="recipients", to="channels_app.campaign"),
                ),
            ],
            database_operations=[migrations.RunPython(campaign_checked_once, campaign_foreign_key)],
        ),
    ]
