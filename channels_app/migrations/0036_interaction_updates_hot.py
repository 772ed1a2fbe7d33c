"""An interaction's update by a message made HOT (issue 25): every customer message and most agent messages move
`last_activity_at`, which interaction_idle (state, last_activity_at) indexed, so each message wrote a new entry
into every index of the interaction (the update could not stay on its page without one). The idle sweep reads the
open interactions through interaction_open_by_contact instead (services/interactions.py, sessions_expire), and
interaction_idle goes.

A HOT update also needs room on the row's own page: without it the new version goes to another page and takes
its index entries after all. Pages are filled to 85% by inserts (PostgreSQL's default is 100% for tables), the
rest kept for the next versions of the open interactions on them. An interaction's row is about 1.2 kB (its hub
attributes in `user_data`, its `session_options`): at 85% a page takes five and keeps room for one new version,
whose predecessor the next read of the page prunes (once no snapshot can see it); at 90% it would take six and
keep room for none. The setting applies to the pages filled from now on; existing ones keep what they hold. SQLite
has no such setting (the embedded mode).
"""

from django.db import migrations

INTERACTIONS = "channels_app_interaction"
FILLFACTOR = 85


def fillfactor_set(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {INTERACTIONS} SET (fillfactor = {FILLFACTOR})")


def fillfactor_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {INTERACTIONS} RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ("channels_app", "0035_interaction_open_by_contact"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="interaction",
            name="interaction_idle",
        ),
        migrations.RunPython(fillfactor_set, fillfactor_reset),
    ]
