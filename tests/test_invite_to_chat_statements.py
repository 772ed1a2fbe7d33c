"""InviteToChat in few statements (issue 25, lever 3): on PostgreSQL one statement writes the contact, the
interaction, the message, its delivery and wakes the dispatcher; two (in a transaction) when the response takes a
value from the stored contact. Each rule of `invitations_create` holds on it: a new or a known contact, the given
properties kept only when they change, an opt-out refused with nothing written, a refused rendering writing
nothing, a contact created by a concurrent request found and used."""

import copy
import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from channels_app.errors import ExecutionFailed
from channels_app.models import Contact, ContactOptOut, Delivery, Interaction, InteractionState, Message
from channels_app.services.deliveries import DISPATCHER_CHANNEL
from channels_app.services.invitations import Invitee, invitation_plan, invitations_create, invite_to_chat
from tests.conftest import require_or_skip

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
PHONE = "15556667777"
WAIT = 10.0
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@pytest.fixture
def spec_response(staff_api):
    response = staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def greeting(staff_api):
    """A response whose Contact code the request does not give: the stored contact's value fills it."""
    body = {"id": "GreetingStoredName", "name": "Greeting", "content_type": "text",
            "body": "Hello <$Contact.FirstName$>, your plan is <$Contact.Plan$>."}
    response = staff_api.post("/api/standard-responses/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def invite(channel, client_id: str = PHONE, contact=None, response_id=SPEC_RESPONSE["id"], **kwargs):
    parameters = SPEC_REQUEST["Parameters"]
    return invite_to_chat(
        channel=channel, client_id=client_id, standard_response_id=response_id,
        contact_fields=copy.deepcopy(parameters["Contact"] if contact is None else contact),
        custom_properties=copy.deepcopy(parameters["CustomProperties"]),
        user_data={"PhoneNumber": client_id, "GCTI_Chat_SubmitAsOutbound": "true"}, **kwargs,
    )


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries
            if query["sql"] not in TRANSACTION_CONTROL and not query["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def rows_written() -> dict:
    return {"interactions": Interaction.objects.count(), "contacts": Contact.objects.count(),
            "messages": Message.objects.count(), "deliveries": Delivery.objects.count()}


def postgresql_only():
    require_or_skip(connection.vendor == "postgresql", "the one statement is PostgreSQL's")


@pytest.mark.django_db
def test_an_invitation_of_a_new_customer_is_one_statement_and_writes_what_the_orm_path_writes(channel,
                                                                                            spec_response):
    postgresql_only()
    # given: the options, the channel and the response read once (kept), by another customer's invitation
    invite(channel, client_id="15550001111")
    # when
    with CaptureQueriesContext(connection) as captured:
        invitation = invite(channel)
    # then
    assert len(statements(captured)) == 1, statements(captured)
    # and: the same rows, but for ids and times, as `invitations_create` (the ORM path, campaigns') writes
    plan = invitation_plan(channel=channel, standard_response_id=SPEC_RESPONSE["id"])
    parameters = SPEC_REQUEST["Parameters"]
    (other,) = invitations_create(plan=plan, invitees=[Invitee(
        client_id="15557778888", contact_fields=parameters["Contact"],
        custom_properties=parameters["CustomProperties"],
        user_data={"PhoneNumber": "15557778888", "GCTI_Chat_SubmitAsOutbound": "true"})])
    ours, theirs = (Interaction.objects.get(pk=i.interaction.pk) for i in (invitation, other))
    varying = {"id", "contact", "client_id", "user_data", "created_at", "last_activity_at"}
    for field in Interaction._meta.concrete_fields:
        if field.name not in varying:
            assert getattr(ours, field.attname) == getattr(theirs, field.attname), field.name
    assert ours.user_data | {"_umsChatSessionId": "", "_umsFromAddr": "", "PhoneNumber": ""} == theirs.user_data | {
        "_umsChatSessionId": "", "_umsFromAddr": "", "PhoneNumber": ""}
    assert ours.user_data["_umsChatSessionId"] == ours.pk
    message, their_message = (Message.objects.get(pk=i.message_id) for i in (invitation, other))
    assert (message.interaction_id, message.text, message.payload, message.status) == (
        ours.pk, their_message.text, their_message.payload, their_message.status)
    delivery, their_delivery = message.delivery, their_message.delivery
    assert delivery.pk == invitation.delivery.pk
    for name in ("channel_id", "state", "attempts", "lease_until", "lease_token", "after_id", "has_followers"):
        assert getattr(delivery, name) == getattr(their_delivery, name), name
    assert delivery.next_attempt_at is not None and delivery.published_at is not None
    contact, their_contact = ours.contact, theirs.contact
    assert (contact.phone_number, contact.first_name, contact.last_name, contact.attributes, contact.country) == (
        "+15556667777", "John", "Smith", their_contact.attributes, their_contact.country)
    assert invitation.interaction.contact.pk == contact.pk


@pytest.mark.django_db
def test_a_known_customer_is_one_statement_and_their_contact_written_only_when_a_property_changes(channel,
                                                                                                spec_response):
    postgresql_only()
    # given
    first = invite(channel)
    contact = Contact.objects.get()
    Contact.objects.filter(pk=contact.pk).update(attributes={**contact.attributes, "Kept": "yes"}, nickname="Jo")
    unchanged_at = Contact.objects.get().updated_at
    # when: the same properties
    with CaptureQueriesContext(connection) as same:
        second = invite(channel)
    after_same = Contact.objects.get()
    # when: a new last name and a new attribute
    changed = {**SPEC_REQUEST["Parameters"]["Contact"], "LastName": "Smythe", "Plan": "Gold"}
    with CaptureQueriesContext(connection) as different:
        third = invite(channel, contact=changed)
    # then
    assert len(statements(same)) == len(statements(different)) == 1
    assert after_same.updated_at == unchanged_at
    contact = Contact.objects.get()
    assert (contact.first_name, contact.last_name, contact.nickname) == ("John", "Smythe", "Jo")
    assert contact.attributes == {"MyFC_BillAmount": "$129.99", "MyFC_Date": "March 5 / 2020", "Kept": "yes",
                                  "Plan": "Gold"}
    assert contact.updated_at > unchanged_at
    assert {i.interaction.contact.pk for i in (first, second, third)} == {contact.pk}
    assert Interaction.objects.filter(contact=contact).count() == 3


@pytest.mark.django_db
def test_a_customer_with_an_open_interaction_is_invited_into_a_new_one(channel, spec_response):
    postgresql_only()
    # given: an open (queued) interaction of the customer, as the ORM path leaves it
    first = invite(channel)
    # when
    with CaptureQueriesContext(connection) as captured:
        second = invite(channel)
    # then: a new session each invitation, as before
    assert len(statements(captured)) == 1
    assert second.interaction.pk != first.interaction.pk
    assert set(Interaction.objects.values_list("state", flat=True)) == {InteractionState.QUEUED}


@pytest.mark.django_db
def test_a_response_that_reads_the_stored_contact_takes_two_statements_and_renders_the_stored_values(
        channel, spec_response, greeting):
    postgresql_only()
    # given: a contact who has a plan, invited without it (the response read once, by another customer's)
    invite(channel, client_id="15550001111", contact={"FirstName": "Ann", "Plan": "Silver"}, response_id=greeting["id"])
    contact = invite(channel).interaction.contact
    Contact.objects.filter(pk=contact.pk).update(attributes={"Plan": "Gold"})
    # when
    with CaptureQueriesContext(connection) as captured:
        invitation = invite(channel, contact={"FirstName": "Jon"}, response_id=greeting["id"])
    # then
    assert len(statements(captured)) == 2, statements(captured)
    assert Message.objects.get(pk=invitation.message_id).text == "Hello Jon, your plan is Gold."
    assert Contact.objects.get(pk=contact.pk).first_name == "Jon"
    assert invitation.interaction.contact.pk == contact.pk


@pytest.mark.django_db
def test_a_refused_rendering_of_a_known_customer_writes_nothing_not_even_their_new_properties(channel,
                                                                                          spec_response, greeting):
    postgresql_only()
    # given: a contact without a plan
    invite(channel)
    before = rows_written()
    # when: the response needs the plan, which neither the request nor the contact has
    with pytest.raises(ExecutionFailed) as refused:
        invite(channel, contact={"FirstName": "Jon"}, response_id=greeting["id"])
    # then
    assert "Contact.Plan" in refused.value.message
    assert rows_written() == before
    assert Contact.objects.get().first_name == "John"


@pytest.mark.django_db
@pytest.mark.parametrize("response_id", [SPEC_RESPONSE["id"], "GreetingStoredName"])
def test_an_opted_out_customer_is_920_and_nothing_is_written(channel, spec_response, greeting, response_id):
    postgresql_only()
    # given: an opted-out contact, invited with new properties
    invite(channel)
    contact = Contact.objects.get()
    Contact.objects.filter(pk=contact.pk).update(nickname="Johnny")
    ContactOptOut.objects.create(contact=contact, channel=channel, source="api")
    before = rows_written()
    # when
    with pytest.raises(ExecutionFailed) as refused:
        invite(channel, contact={**SPEC_REQUEST["Parameters"]["Contact"], "LastName": "Smythe"},
               response_id=response_id)
    # then
    assert refused.value.message == (
        f"InviteToChat failed to execute request: {PHONE} opted out of {channel.channel_id}.")
    assert refused.value.field == "_umsClientId"
    assert rows_written() == before
    assert Contact.objects.get().last_name == "Smith"


@pytest.mark.django_db
def test_a_session_without_a_response_and_terminate_session_is_one_statement_and_ended(channel, spec_response):
    postgresql_only()
    invite(channel, client_id="15550001111")
    # when
    with CaptureQueriesContext(connection) as captured:
        invitation = invite(channel, response_id=None, terminate_session=True)
    # then
    assert len(statements(captured)) == 1
    assert invitation.message_id is None
    interaction = Interaction.objects.get(pk=invitation.interaction.pk)
    assert (interaction.state, interaction.end_reason) == (InteractionState.ENDED, "TerminateSessionFlag")
    assert Message.objects.filter(interaction=interaction).count() == 0


def _dsn() -> str:
    database = settings.DATABASES["default"]
    return (f"host={database['HOST']} port={database['PORT'] or 5432} user={database['USER']} "
            f"dbname={connection.settings_dict['NAME']}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_statement_wakes_the_dispatcher_with_its_commit(channel, spec_response):
    postgresql_only()
    with psycopg.connect(_dsn(), autocommit=True) as listener:
        listener.execute(f"LISTEN {DISPATCHER_CHANNEL}")
        # when
        invite(channel)
        # then
        woken = next(listener.notifies(timeout=WAIT, stop_after=1), None)
    assert woken is not None and woken.channel == DISPATCHER_CHANNEL
    assert Delivery.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_contact_created_by_a_concurrent_request_is_found_and_used(channel, spec_response):
    postgresql_only()
    # given: another transaction creating the customer's contact, not committed yet
    other = psycopg.connect(_dsn())
    other.execute(
        "INSERT INTO channels_app_contact (tenant_id, phone_number, client_id, first_name, last_name, email, "
        "nickname, attributes, country, created_at, updated_at) "
        "VALUES (%s, '+15556667777', %s, 'Other', '', '', '', '{}', 'US', now(), now())", (channel.tenant_id, PHONE))
    outcome = {}

    def invitation():
        try:
            outcome["invitation"] = invite(channel)
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=invitation)
    thread.start()
    # when: the invitation waits for that contact's row, then the other transaction commits
    deadline = time.monotonic() + WAIT
    with psycopg.connect(_dsn(), autocommit=True) as watcher:
        while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND datname = current_database()").fetchone()[0]:
            assert time.monotonic() < deadline, "the invitation never waited for the other contact"
            time.sleep(0.01)
    other.commit()
    other.close()
    thread.join(WAIT)
    # then: one contact, the other request's, with the invitation's properties kept on it
    assert "error" not in outcome, outcome
    contact = Contact.objects.get()
    assert outcome["invitation"].interaction.contact.pk == contact.pk
    assert Interaction.objects.get().contact_id == contact.pk
    assert (contact.first_name, contact.last_name) == ("John", "Smith")
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_the_simulators_task_answers_every_message_of_a_batch_each_on_its_own(spec_response):
    # given: three invitations sent together on the demo simulator channel (its receipt and automatic reply on)
    from django.core.management import call_command

    from channels_app.models import Channel
    from channels_app.services.deliveries import deliveries_attempt
    from channels_app.tasks import simulator_emit

    call_command("seed_demo", verbosity=0)
    simulator = Channel.objects.get(channel_id="channel-ghub-simulator")
    invitations = [invite(simulator, client_id=f"1555000{n:04d}") for n in range(3)]
    deliveries_attempt(delivery_ids=[invitation.delivery.pk for invitation in invitations])
    sent = [Message.objects.get(pk=invitation.message_id) for invitation in invitations]
    assert all(message.external_id for message in sent)
    # when: the task gets them all, one of them gone meanwhile
    Message.objects.filter(pk=sent[1].pk).update(external_id="")
    simulator_emit.run(*(message.pk for message in sent), "no-such-message")
    # then: each answered as a task of its own answered it
    for message, answered in zip(sent, (True, False, True), strict=True):
        message.refresh_from_db()
        assert (message.status == "delivered") is answered
        replies = Message.objects.filter(interaction_id=message.interaction_id, direction="inbound")
        assert replies.count() == (1 if answered else 0)
