"""Upgrades without downtime (issue 28, item 5; docs/OPERATIONS.md, "Upgrades"): the models and the migrations
agree (a model change without its migration fails CI), and `migrate --check` tells a database that has every
migration of this release from one that does not (the gate before a release's processes start)."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as exit_:  # makemigrations --check exits with 1 when a migration is missing
        pytest.fail(f"a model changed without its migration: run `python manage.py makemigrations` ({exit_})")


@pytest.mark.django_db
def test_migrate_check_passes_on_a_migrated_database_and_fails_on_one_a_migration_behind():
    call_command("migrate", "--check", verbosity=0)  # the test database has every migration of this release

    latest = max(key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "channels_app")
    # The database as the previous release left it, as far as `migrate --check` can tell: its record of the
    # latest migration gone (in this test's transaction; the schema is not touched).
    MigrationRecorder(connection).record_unapplied(*latest)

    with pytest.raises(SystemExit):
        call_command("migrate", "--check", verbosity=0)
