"""A recipient's message checked once a statement, as its campaign is since migration 0031 (issues 25 and 27).

PostgreSQL's foreign key from a recipient to its message fired a trigger for every row inserted, at commit,
although a recipient is always inserted without a message: a million calls for an audience of a million, while
the worker that reads the file waits for the commit. Instead:

* the statement-level trigger that counts inserted recipients also counts those inserted with a message (none,
  in this code) and checks them: their messages taken `FOR KEY SHARE`, as the foreign key's check did, and a
  missing one raises `foreign_key_violation`;
* a statement that gives recipients a message (a campaign's batch: 200 at a time) checks them the same way, in
  one query over its transition tables instead of a look-up a row;
* a message deleted (or its id changed) while a recipient still points at it is refused at commit
  (`foreign_key_violation`, deferred as the foreign key was: messages_delete empties the recipients first).

SQLite (the embedded mode) keeps its foreign key (see migration 0031).
"""

from django.db import migrations, models

RECIPIENTS = "channels_app_campaignrecipient"
MESSAGES = "channels_app_message"

POSTGRESQL = [statement.strip() for statement in f"""
CREATE FUNCTION channels_app_recipient_messages_check(wanted varchar[]) RETURNS void AS $$
DECLARE
    locked bigint;
BEGIN
    PERFORM 1 FROM {MESSAGES} WHERE id = ANY(wanted) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(wanted) THEN
        RAISE EXCEPTION 'insert or update on table "{RECIPIENTS}" violates recipient_message_exists'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'recipient_message_exists',
                  DETAIL = format('A key (message_id) of %s is not present in table "{MESSAGES}".', wanted);
    END IF;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION channels_app_counts_recipients_inserted() RETURNS trigger AS $$
DECLARE
    c record;
    with_message bigint := 0;
BEGIN
    FOR c IN SELECT campaign_id, count(*) AS total, count(*) FILTER (WHERE error <> '') AS refused,
                    count(message_id) AS with_message
             FROM new_rows GROUP BY campaign_id LOOP
        PERFORM channels_app_recipient_campaign_check(c.campaign_id);
        PERFORM channels_app_counts_add(c.campaign_id, 0, c.total, c.refused, 0, 0, 0);
        with_message := with_message + c.with_message;
    END LOOP;
    IF with_message > 0 THEN
        PERFORM channels_app_recipient_messages_check(
            ARRAY(SELECT DISTINCT message_id FROM new_rows WHERE message_id IS NOT NULL));
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION channels_app_recipient_messages_given() RETURNS trigger AS $$
DECLARE
    wanted varchar[];
BEGIN
    wanted := ARRAY(SELECT DISTINCT n.message_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.message_id IS NOT NULL AND n.message_id IS DISTINCT FROM o.message_id);
    IF cardinality(wanted) > 0 THEN
        PERFORM channels_app_recipient_messages_check(wanted);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER channels_app_recipient_messages_given AFTER UPDATE ON {RECIPIENTS}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION channels_app_recipient_messages_given();

CREATE FUNCTION channels_app_message_recipients_left() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {RECIPIENTS} WHERE message_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "{MESSAGES}" violates recipient_message_exists'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'recipient_message_exists',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "{RECIPIENTS}".', OLD.id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER channels_app_message_recipients_left AFTER DELETE OR UPDATE OF id ON {MESSAGES}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION channels_app_message_recipients_left();
""".split("\n\n") if statement.strip()]

# Migration 0031's function, as it was.
POSTGRESQL_REVERSE = [statement.strip() for statement in f"""
DROP TRIGGER IF EXISTS channels_app_message_recipients_left ON {MESSAGES};

DROP FUNCTION IF EXISTS channels_app_message_recipients_left();

DROP TRIGGER IF EXISTS channels_app_recipient_messages_given ON {RECIPIENTS};

DROP FUNCTION IF EXISTS channels_app_recipient_messages_given();

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

DROP FUNCTION IF EXISTS channels_app_recipient_messages_check(varchar[]);
""".split("\n\n") if statement.strip()]


def message_checked_once(apps, schema_editor):
    """PostgreSQL: the checks, then the foreign key dropped, in this migration's one transaction."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in POSTGRESQL:
        schema_editor.execute(statement, params=None)  # no parameters: % is format()'s
    recipient = apps.get_model("channels_app", "CampaignRecipient")
    for name in schema_editor._constraint_names(recipient, ["message_id"], foreign_key=True):
        schema_editor.execute(f"ALTER TABLE {RECIPIENTS} DROP CONSTRAINT {schema_editor.quote_name(name)}")


def message_foreign_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE {RECIPIENTS} ADD CONSTRAINT recipient_message_fk FOREIGN KEY (message_id) "
                          f"REFERENCES {MESSAGES} (id) DEFERRABLE INITIALLY DEFERRED")
    for statement in POSTGRESQL_REVERSE:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0032_recipient_message_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="message",
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                            on_delete=models.deletion.SET_NULL, related_name="campaign_recipient",
                                            to="channels_app.message"),
                ),
            ],
            database_operations=[migrations.RunPython(message_checked_once, message_foreign_key)],
        ),
    ]
