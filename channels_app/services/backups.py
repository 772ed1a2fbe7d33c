"""Backups that restore (issue 26, item 4): the database and the stored files
together, in one archive, on SQLite and PostgreSQL (`manage.py backup`,
`manage.py restore`; README, "Your customers' data").

The archive is a `.tar.gz` holding
* `manifest.json`: when, which database engine, the latest migration, how
  many rows each table and how many files it holds (restore checks them);
* `database.pgdump` (PostgreSQL: `pg_dump --format=custom`, a consistent
  snapshot taken while the server runs) or `database.sqlite3` (SQLite's
  online backup API: a consistent copy, WAL included);
* `media/<name>` for every file of the storage (filesystem or S3, read
  through Django's storage API).

The SECRET_KEY is not in it (it signs sessions and media links): keep it
apart, as the README says.
"""

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

from django.apps import apps
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from channels_app.errors import ExecutionFailed, InvalidParameter

FORMAT = 1
DUMP_NAMES = {"postgresql": "database.pgdump", "sqlite": "database.sqlite3"}


def _storage_names(directory: str = "") -> list[str]:
    """Every file of the default storage, walked through its own listing (filesystem or S3)."""
    try:
        directories, files = default_storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [f"{directory}/{name}" if directory else name for name in files]
    for sub in directories:
        names += _storage_names(f"{directory}/{sub}" if directory else sub)
    return sorted(names)


def _pg_environment() -> tuple[list[str], dict]:
    settings = connection.settings_dict
    arguments = ["--dbname", settings["NAME"]]
    if settings.get("HOST"):
        arguments += ["--host", settings["HOST"]]
    if settings.get("PORT"):
        arguments += ["--port", str(settings["PORT"])]
    if settings.get("USER"):
        arguments += ["--username", settings["USER"]]
    environment = {**os.environ}
    if settings.get("PASSWORD"):
        environment["PGPASSWORD"] = settings["PASSWORD"]
    return arguments, environment


def _run(command: list[str], environment: dict) -> None:
    try:
        subprocess.run(command, env=environment, check=True, capture_output=True, timeout=None)
    except FileNotFoundError as error:
        raise ExecutionFailed(f"{command[0]} is not installed: install the PostgreSQL client tools.") from error
    except subprocess.CalledProcessError as error:
        raise ExecutionFailed(f"{command[0]} failed: {error.stderr.decode(errors='replace')[-2000:]}") from error


def _tables() -> list[str]:
    """The tables of every model (the project's and Django's own)."""
    return sorted({model._meta.db_table for model in apps.get_models(include_auto_created=True)
                   if model._meta.managed and not model._meta.proxy})


def row_counts(cursor=None) -> dict[str, int]:
    """Rows of every table, by table name (through `cursor`: a DB-API cursor on the copy to count)."""
    counts = {}
    for table in _tables():
        if cursor is None:
            with connection.cursor() as own:
                own.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
                counts[table] = own.fetchone()[0]
        else:
            counts[table] = cursor.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return counts


def _dump_database(target: Path) -> dict[str, int]:
    """Dump the database to `target`, consistent as of one moment while the server runs; the rows of that
    moment, counted in the same snapshot."""
    vendor = connection.vendor
    if vendor == "postgresql":
        arguments, environment = _pg_environment()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
            counts = row_counts()
            _run(["pg_dump", "--format=custom", "--no-owner", f"--snapshot={snapshot}", "--file", str(target),
                  *arguments], environment)
        return counts
    connection.ensure_connection()
    with sqlite3.connect(target) as copy:
        connection.connection.backup(copy)
        counts = row_counts(copy.cursor())
    copy.close()
    return counts


def backup_write(*, path: Path) -> dict:
    """Write the archive of the database and the files to `path`; returns its manifest."""
    vendor = connection.vendor
    if vendor not in DUMP_NAMES:
        raise ExecutionFailed(f"Backups of a {vendor} database are not supported (SQLite and PostgreSQL are).")
    latest = MigrationRecorder.Migration.objects.filter(app="channels_app").order_by("-id").first()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        dump = Path(work) / DUMP_NAMES[vendor]
        counts = _dump_database(dump)
        # Files after the rows: a file stored meanwhile is in the archive without its row, never the reverse.
        names = _storage_names()
        manifest = {
            "format": FORMAT, "created_at": timezone.now().isoformat(), "database": vendor,
            "latest_migration": latest.name if latest else None, "rows": counts, "files": len(names),
        }
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            raw = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(raw), int(timezone.now().timestamp())
            archive.addfile(info, io.BytesIO(raw))
            archive.add(dump, arcname=DUMP_NAMES[vendor])
            for name in names:
                with default_storage.open(name, "rb") as stored:
                    info = tarfile.TarInfo(f"media/{name}")
                    info.size = default_storage.size(name)
                    info.mtime = int(timezone.now().timestamp())
                    archive.addfile(info, stored)
        partial.replace(path)  # a backup cut short never passes for a whole one
    return manifest


def _restore_database(dump: Path, vendor: str) -> None:
    if vendor == "postgresql":
        arguments, environment = _pg_environment()
        connection.close()  # our own session would hold locks on what pg_restore replaces
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
              *arguments, str(dump)], environment)
    else:
        connection.ensure_connection()
        with sqlite3.connect(dump) as source:
            source.backup(connection.connection)
        source.close()


def _safe_member(member: tarfile.TarInfo) -> str | None:
    """The storage name of an archive member under media/ (never a path that climbs out)."""
    if not member.isfile() or not member.name.startswith("media/"):
        return None
    name = member.name.removeprefix("media/")
    if name.startswith("/") or ".." in Path(name).parts:
        raise InvalidParameter(f"The archive holds an unsafe file name: {member.name!r}.", field="path")
    return name


def backup_restore(*, path: Path) -> dict:
    """Restore the database and the files of an archive written by `backup_write` (over what is there:
    run it on a stopped server). Checks the rows and files against the manifest; returns it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameter(f"No backup at {path}.", field="path")
    vendor = connection.vendor
    with tarfile.open(path, "r:gz") as archive, tempfile.TemporaryDirectory() as work:
        manifest = json.load(archive.extractfile("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise InvalidParameter("This archive was not written by manage.py backup.", field="path")
        if manifest["database"] != vendor:
            raise InvalidParameter(
                f"This backup is of a {manifest['database']} database; this server runs on {vendor}.", field="path")
        dump = Path(work) / DUMP_NAMES[vendor]
        with archive.extractfile(DUMP_NAMES[vendor]) as source, dump.open("wb") as target:
            shutil.copyfileobj(source, target)
        _restore_database(dump, vendor)
        restored = 0
        for member in archive:
            name = _safe_member(member)
            if name is None:
                continue
            if default_storage.exists(name):
                default_storage.delete(name)
            with archive.extractfile(member) as content:
                saved = default_storage.save(name, File(content, name=name))
            if saved != name:
                raise ExecutionFailed(f"The storage saved {name} as {saved}.")
            restored += 1
    found = row_counts()
    differing = {table: (rows, found.get(table)) for table, rows in manifest["rows"].items()
                 if found.get(table) != rows}
    if differing or restored != manifest["files"]:
        raise ExecutionFailed(f"The restore does not match the backup: tables {differing}, "
                              f"files {restored} of {manifest['files']}.")
    return manifest
