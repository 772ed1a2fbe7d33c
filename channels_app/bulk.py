"""Writing many rows in one statement where Django's bulk methods cost more.

Django's `bulk_update` builds a CASE WHEN expression per row and field, which
costs milliseconds of Python per hundred rows; on PostgreSQL an UPDATE that
joins a VALUES list does the same work in one cheap statement. Other
databases (SQLite, the embedded mode) keep `bulk_update`. `bulk_create` with
`ignore_conflicts` does not say which rows it created, so whoever needs their
ids reads them all again: `bulk_insert_new` says."""

import functools
import json
import operator

from django.db import connection
from django.db.models import Field, JSONField, Model


def bulk_update_rows(model: type[Model], rows: list[dict], fields: list[str], constants: dict | None = None) -> None:
    """`rows`: [{"pk": ..., <field>: value, ...}]; every row gets its own
    `fields` and the same `constants` ({field: value})."""
    if not rows:
        return
    constants = constants or {}
    meta = model._meta
    if connection.vendor != "postgresql":
        attnames = {name: meta.get_field(name).attname for name in [*fields, *constants]}  # message -> message_id
        objects = [
            model(pk=row["pk"], **{attnames[name]: row[name] for name in fields},
                  **{attnames[name]: value for name, value in constants.items()})
            for row in rows
        ]
        model.objects.bulk_update(objects, [*fields, *constants])
        return
    columns = [meta.get_field(name) for name in fields]
    table, pk = meta.db_table, meta.pk
    quote = connection.ops.quote_name
    assignments = [f"{quote(column.column)} = v.{quote(column.column)}::{column.db_type(connection)}"
                   for column in columns]
    params = []
    for name, value in constants.items():
        column = meta.get_field(name)
        assignments.append(f"{quote(column.column)} = %s")
        params.append(column.get_db_prep_save(value, connection))
    row_sql = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    for row in rows:
        params.append(pk.get_db_prep_save(row["pk"], connection))
        params.extend(column.get_db_prep_save(row[name], connection) for name, column in zip(fields, columns,
                                                                                               strict=True))
    names = ", ".join([quote("pk"), *(quote(column.column) for column in columns)])
    sql = (
        f"UPDATE {quote(table)} SET {', '.join(assignments)} "
        f"FROM (VALUES {', '.join([row_sql] * len(rows))}) AS v({names}) "
        f"WHERE {quote(table)}.{quote(pk.column)} = v.{quote('pk')}::{pk.db_type(connection)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def bulk_insert_new(model: type[Model], objects: list[Model], *, returning: list[str]) -> list[tuple]:
    """Insert the objects whose rows do not exist yet (`INSERT … ON CONFLICT DO NOTHING`, any unique index)
    and return, for each row created, its primary key followed by the `returning` fields' values; the rows
    that met a conflict are not returned (someone else created them first). PostgreSQL and SQLite
    (3.35 and later) both take `RETURNING` here."""
    if not objects:
        return []
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in objects for field in fields]
    answer = ", ".join(quote(column) for column in [meta.pk.column, *(meta.get_field(n).column for n in returning)])
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row_sql] * len(objects))} ON CONFLICT DO NOTHING RETURNING {answer}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def bulk_insert_rows(model: type[Model], objects: list[Model]) -> None:
    """Insert many new rows (their ids made by the database and not read back).
    On PostgreSQL they stream through one `COPY ... FROM STDIN`, several times
    cheaper than INSERT statements (a campaign's audience of a million rows);
    elsewhere `bulk_create`."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=2000)
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    # psycopg adapts plain values itself; JSON goes as its text (COPY's text format takes it for jsonb).
    json_fields = {index for index, field in enumerate(fields) if isinstance(field, JSONField)}
    attnames = [field.attname for field in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        for obj in objects:
            values = [getattr(obj, name) for name in attnames]
            for index in json_fields:
                values[index] = json.dumps(values[index], ensure_ascii=False)
            copy.write_row(values)


def copy_rows(model: type[Model], fields: list[str], rows) -> None:
    """PostgreSQL: stream `rows` (tuples of the `fields`' database values in that order, JSON as its text)
    into the model's table with one `COPY ... FROM STDIN`, written as they come (the server stores while the
    caller makes the next ones); the model's other fields take their defaults, the same for every row."""
    meta = model._meta
    given = [meta.get_field(name) for name in fields]
    others = [field for field in meta.concrete_fields if not field.primary_key and field.name not in fields]
    tail = tuple(json.dumps(field.get_default(), ensure_ascii=False) if isinstance(field, JSONField)
                 else field.get_db_prep_save(field.get_default(), connection) for field in others)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in [*given, *others])
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        write = copy.write_row
        if tail:
            for row in rows:
                write(row + tail)
        else:
            for row in rows:
                write(row)


@functools.cache
def _copy_layout(model: type[Model]) -> tuple[list[Field], list[Field], list[tuple[int, JSONField]]]:
    """A model's columns for `copy_insert`: those whose value is the attribute as it is (read together, by one
    attrgetter: the field-by-field `pre_save` of bulk_create cost more than the rest of writing a row), then those
    whose field computes it on save (auto_now times...), and the JSON ones by their index in that order."""
    fields = model._meta.concrete_fields
    plain = [field for field in fields if type(field).pre_save is Field.pre_save]
    computed = [field for field in fields if type(field).pre_save is not Field.pre_save]
    json_fields = [(index, field) for index, field in enumerate([*plain, *computed]) if isinstance(field, JSONField)]
    return plain, computed, json_fields


def _attributes(names: list[str]):
    """A function of an object giving the tuple of these attributes (attrgetter gives a lone one bare)."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    return (lambda obj: (getattr(obj, names[0]),)) if names else (lambda obj: ())


def copy_insert(model: type[Model], objects: list[Model]) -> None:
    """Insert new objects as `bulk_create` does (their auto_now fields filled, an auto primary key given back,
    each then saved as far as Django knows), on PostgreSQL through one `COPY ... FROM STDIN`: Django's
    `bulk_create` sends every column as an array its client-side cursor quotes element by element in Python,
    which cost more than the rest of a campaign batch's invitations (issue 25, lever 6). An auto primary key
    is taken from its sequence first, in one statement for all the objects."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    auto_pk = meta.pk.get_internal_type() in ("AutoField", "BigAutoField", "SmallAutoField")
    with connection.cursor() as cursor:
        if auto_pk:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [meta.db_table, meta.pk.column, len(objects)])
            for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
                obj.pk = pk
        plain, computed, json_fields = _copy_layout(model)
        columns = ", ".join(quote(field.column) for field in [*plain, *computed])
        read_plain = _attributes([field.attname for field in plain])
        with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                values = [*read_plain(obj), *(field.pre_save(obj, True) for field in computed)]
                for index, field in json_fields:
                    values[index] = json.dumps(values[index], ensure_ascii=False, cls=field.encoder)
                copy.write_row(values)
    for obj in objects:
        obj._state.adding, obj._state.db = False, connection.alias
