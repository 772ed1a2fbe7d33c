"""bench/history.py: a tenant's past loaded by COPY, the tables' keys, indexes and foreign keys as before."""

import pytest
from django.db import connection

from bench.history import LOADED_TABLES, load_history, random_ids, time_ordered_ids
from channels_app.ids import ALPHABET as ID_ALPHABET
from channels_app.ids import TIME_CHARACTERS, time_prefix
from channels_app.models import Contact, Delivery, Interaction, Message

SCHEMA_SQL = """
SELECT 'index', pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid::regclass::text = ANY(%(tables)s)
UNION ALL
SELECT 'constraint ' || conname || ' ' || convalidated, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid::regclass::text = ANY(%(tables)s) OR confrelid::regclass::text = ANY(%(tables)s)
"""


def _schema() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(SCHEMA_SQL, {"tables": list(LOADED_TABLES)})
        return sorted(cursor.fetchall())


def _dsn() -> str:
    settings = connection.settings_dict
    return (f"host={settings['HOST']} port={settings['PORT'] or 5432} user={settings['USER']} "
            f"dbname={settings['NAME']}")


@pytest.mark.parametrize("length", [9, 13, 20])
def test_random_ids_are_the_applications_alphabet_and_length(length):
    ids = random_ids(1000, length)
    assert len(ids) == len(set(ids)) == 1000
    assert all(len(value) == length and set(value) <= set(ID_ALPHABET) for value in ids)


def test_the_historys_ids_are_the_applications_of_their_time():
    times = [1_700_000_000_000 + 30_000 * n for n in range(100)]
    ids = time_ordered_ids(times, 20)
    assert [value[:TIME_CHARACTERS] for value in ids] == [time_prefix(at) for at in times]
    assert ids == sorted(ids) and all(len(value) == 20 and set(value) <= set(ID_ALPHABET) for value in ids)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_history_is_stored_with_every_key_index_and_foreign_key_as_the_migrations_made_them(channel):
    before = _schema()
    figures = dict(load_history(_dsn(), channel_id=channel.channel_id, messages=400))
    assert _schema() == before
    assert figures["history_messages"] == Message.objects.filter(channel=channel).count() == 400
    assert figures["history_conversations"] == Interaction.objects.filter(channel=channel, state="ended").count() == 20
    assert figures["history_contacts"] == Contact.objects.filter(tenant=channel.tenant).count() == 2
    assert Delivery.objects.filter(message__direction="outbound", state="delivered").count() == 200
    # The benchmarks' customers come back with a history of their own.
    assert Contact.objects.get(phone_number="+16502000000").interactions.count() == 10
    # Every conversation 20 messages, a customer's and an agent's in turn.
    assert set(Interaction.objects.filter(channel=channel).values_list("messages__direction", flat=True)) == {
        "inbound", "outbound"}
    assert all(len(pk) == 20 for pk in Message.objects.values_list("pk", flat=True))
    # Ids that grow with time, as the application's: the primary keys in the order of the rows' times.
    for model in (Interaction, Message):
        rows = list(model.objects.order_by("created_at").values_list("pk", "created_at"))
        assert [pk for pk, _ in rows] == sorted(pk for pk, _ in rows)
        assert all(pk[:TIME_CHARACTERS] == time_prefix(int(at.timestamp() * 1000)) for pk, at in rows)
