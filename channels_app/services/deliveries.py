"""Delivery of outgoing messages through the channel's transport, with the
retry schedule in the database (a transactional outbox).

A delivery row is written with its message, and the dispatcher
(channels_app/dispatcher.py) is woken when the transaction commits: it claims
the deliveries due in batches and sends them side by side. Nothing is
published to the broker per message. A worker owns a delivery only while its
lease runs, so a worker that dies mid-send loses nothing: the lease runs out
and the dispatcher (or, when no dispatcher runs, the relay) takes the
delivery over. Once an attempt has succeeded the delivery is `delivered` and
is never attempted again."""

import functools
import logging
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app.bulk import bulk_update_rows, copy_insert
from channels_app.metrics import count_attempts
from channels_app.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EarlyReceipt,
    Interaction,
    InteractionState,
    Message,
    MessageStatus,
)
from channels_app.outbound import failure_in_words
from channels_app.prepared import execute_prepared
from channels_app.publishing import DELIVER, DELIVER_BATCH, publish
from channels_app.retries import retry_decision
from channels_app.selectors import channels_by_id
from channels_app.services.agent_events import receipt_event
from channels_app.services.receipts import early_receipts_apply
from channels_app.traces import message_fields, traffic
from channels_app.transports import TRANSPORTS, OutgoingMessage, SendOutcome, SendResult
from channels_app.transports.webhook import WEBHOOK_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

# Retries due within this are published to Celery to run at their time (far below the
# Redis visibility timeout); later ones, and lost tasks, are found by the relay.
RETRY_PUBLISH_LIMIT = timedelta(minutes=5)
# Webhooks in flight at once per worker process (a campaign batch waits on many third-party answers).
SEND_CONCURRENCY = 16
# How often a sender renews the lease of the deliveries it has not sent yet.
LEASE_RENEW_SECONDS = 5
# After an answer, how long to wait for the others in flight so that their outcomes are written together.
RECORD_GATHER_SECONDS = 0.005


def _lease() -> timedelta:
    """Longer than the webhook's 10-second answer time (settings.DELIVERY_LEASE_SECONDS)."""
    return timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)


def _relay_grace() -> timedelta:
    """The relay leaves a delivery to the task published for it (at commit, or
    to run at a retry's time) for this long before publishing it again."""
    return timedelta(seconds=settings.DELIVERY_RELAY_GRACE_SECONDS)


def deliveries_create(*, messages: list[Message], publish: bool = True, claim: bool = False) -> list[Delivery]:
    """Called in the transaction that stores the messages. With `publish` the
    dispatcher is woken once the transaction commits and sends them. With
    `claim` the caller owns them from the start (their lease is taken) and
    attempts them itself with `deliveries_send` once committed; if it dies,
    the dispatcher takes over when the lease runs out."""
    now = timezone.now()
    deliveries = [
        Delivery(message=m, channel_id=m.channel_id, next_attempt_at=now, published_at=now) for m in messages
    ]
    if claim:
        token, lease_until = uuid.uuid4().hex, now + _send_lease()
        for delivery in deliveries:
            delivery.lease_token, delivery.lease_until, delivery.attempts = token, lease_until, 1
            delivery.channel = delivery.message.channel  # the sender needs it, and the caller has it at hand
    copy_insert(Delivery, deliveries)
    if publish:
        dispatcher_wake()
    return deliveries


# The PostgreSQL channel the dispatcher listens on (LISTEN/NOTIFY).
DISPATCHER_CHANNEL = "deliveries_due"


def dispatcher_wake() -> None:
    """Tell the dispatcher that deliveries are due. On PostgreSQL a NOTIFY in the current transaction: it
    reaches the dispatcher when (and only if) the transaction commits, and the notifications of one
    transaction arrive as one. Elsewhere (SQLite) the dispatcher polls."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {DISPATCHER_CHANNEL}")


def deliveries_claim_due(*, limit: int) -> list[Delivery]:
    """The dispatcher's claim: up to `limit` deliveries that are due and owned by nobody (new messages,
    retries, the work of a worker that died), oldest due first, with our lease taken, each with its
    channel, message and interaction. The rows are chosen with SKIP LOCKED, so dispatchers side by side
    take different ones, and a `deliver` task of the relay racing us waits for the row and then finds the
    lease taken: one owner each."""
    now = timezone.now()
    token = uuid.uuid4().hex
    if connection.vendor == "postgresql":
        return _claim_due_on_postgresql(now, token, limit)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    due = (
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(free, state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values("pk")[:limit]
    )
    with transaction.atomic():
        claimed = Delivery.objects.filter(free, pk__in=due).update(
            lease_until=now + _send_lease(), lease_token=token, attempts=F("attempts") + 1, published_at=now
        )
    if not claimed:
        return []
    return list(
        Delivery.objects.select_related("channel", "message__interaction")
        .filter(state=DeliveryState.PENDING, lease_token=token)
        .order_by("pk")
    )


_CLAIMED_MODELS = (Delivery, Message, Interaction, Channel)


@functools.cache
def _claim_statement() -> str:
    """One statement that takes the lease and reads the claimed rows with their message, interaction and
    channel: on the dispatcher's path Django's SQL building cost more than the database's work."""
    delivery, message, interaction, channel = (model._meta for model in _CLAIMED_MODELS)

    def columns(meta, alias: str) -> str:
        return ", ".join(f'{alias}."{field.column}"' for field in meta.concrete_fields)

    return f"""
        WITH claimed AS (
            UPDATE {delivery.db_table}
               SET lease_until = %(lease_until)s, lease_token = %(token)s, attempts = attempts + 1,
                   published_at = %(now)s
             WHERE id IN (SELECT id FROM {delivery.db_table}
                           WHERE state = '{DeliveryState.PENDING.value}' AND next_attempt_at <= %(now)s
                             AND (lease_until IS NULL OR lease_until < %(now)s)
                           ORDER BY next_attempt_at LIMIT %(limit)s
                           FOR UPDATE SKIP LOCKED)
         RETURNING *)
        SELECT {columns(delivery, "d")}, {columns(message, "m")}, {columns(interaction, "i")},
               {columns(channel, "c")}
          FROM claimed d
          JOIN {message.db_table} m ON m.id = d.message_id
          JOIN {interaction.db_table} i ON i.id = m.interaction_id
          JOIN {channel.db_table} c ON c.id = d.channel_id
         ORDER BY d.id"""


def _claim_due_on_postgresql(now: datetime, token: str, limit: int) -> list[Delivery]:
    rows = execute_prepared(_claim_statement(), {"lease_until": now + _send_lease(), "token": token, "now": now,
                                                 "limit": limit})
    claimed = []
    for row in rows:
        delivery, message, interaction, channel = _instances(row)
        message.interaction = interaction
        delivery.message, delivery.channel = message, channel
        claimed.append(delivery)
    return claimed


@functools.cache
def _row_layout() -> list[tuple[type, list[str], int, list[tuple[int, object]]]]:
    """Per model of the claim's row: its field names, its first column, and (column index, converter) of the
    fields whose database values need converting (JSON arrives as text)."""
    layout, offset = [], 0
    for model in _CLAIMED_MODELS:
        fields = model._meta.concrete_fields
        converters = [(index, converter) for index, field in enumerate(fields)
                      for converter in field.get_db_converters(connection)]
        layout.append((model, [field.attname for field in fields], offset, converters))
        offset += len(fields)
    return layout


def _instances(row: tuple) -> list:
    instances = []
    for model, names, offset, converters in _row_layout():
        values = list(row[offset:offset + len(names)])
        for index, converter in converters:
            values[index] = converter(values[index], None, connection)
        instances.append(model.from_db(connection.alias, names, values))
    return instances


def delivery_enqueue(delivery_id: int, *, due_at: datetime | None = None) -> None:
    publish(DELIVER, delivery_id, eta=due_at)


def deliveries_enqueue(delivery_ids: list[int]) -> None:
    """Publish one task for these deliveries (the relay's); a single one goes as `deliver`."""
    if len(delivery_ids) == 1:
        delivery_enqueue(delivery_ids[0])
    else:
        publish(DELIVER_BATCH, delivery_ids)


def _send_lease() -> timedelta:
    """Long enough for a round of sends, each answered within the webhook timeout; `deliveries_send` renews
    it every LEASE_RENEW_SECONDS while it has deliveries left, so a worker that dies leaves them to the
    relay within this, however long its batch."""
    return _lease() + timedelta(seconds=WEBHOOK_TIMEOUT_SECONDS)


def _claim(delivery_ids: list[int], now: datetime) -> list[Delivery]:
    """Take the lease of those deliveries that are due and owned by nobody. A
    conditional UPDATE: a concurrent claimer waits for the row lock and then
    finds the lease taken, so each delivery has one owner at a time."""
    token = uuid.uuid4().hex
    claimed = (
        Delivery.objects.filter(pk__in=delivery_ids, state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + _send_lease(), lease_token=token, attempts=F("attempts") + 1)
    )
    if not claimed:
        return []
    return list(
        Delivery.objects.select_related("channel", "message__interaction")
        .filter(pk__in=delivery_ids, lease_token=token)
        .order_by("pk")
    )


def _outgoing(delivery: Delivery) -> OutgoingMessage:
    channel, message = delivery.channel, delivery.message
    interaction = message.interaction
    return OutgoingMessage(
        message_id=message.pk,
        interaction_id=interaction.pk,
        channel_id=channel.channel_id,
        media_type=channel.media_type,
        business_id=interaction.user_data.get("_umsToAddr") or channel.business_id,
        client_id=interaction.client_id,
        payload=message.payload,
        webhook_url=channel.webhook_url,
        secret=channel.secret,
        trace_id=message.trace_id,
    )


@dataclass(frozen=True)
class Sent:
    """One attempt made: its delivery, when it started and what the third party answered."""

    delivery: Delivery
    started: datetime
    result: SendResult


def _send(delivery: Delivery, outgoing: OutgoingMessage) -> Sent:
    started = timezone.now()
    return Sent(delivery, started, TRANSPORTS[delivery.channel.transport].send(outgoing))


_send_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads of this process (made after a prefork worker forks) that wait on
    the third parties side by side, over the transport's keep-alive connections."""
    global _send_pool
    if _send_pool is None:
        _send_pool = ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="webhook")
    return _send_pool


def deliveries_attempt(*, delivery_ids: list[int]) -> dict[int, SendResult]:
    """One attempt of each of these deliveries that is due and owned by
    nobody; the others are left alone. Results by delivery id."""
    return deliveries_send(claimed=_claim(delivery_ids, timezone.now()))


def _message_sent(sent, now) -> Message:
    """The accepted delivery's message as recorded: sent, with the receiver's id and when its POST started."""
    message = sent.delivery.message
    message.status, message.external_id, message.updated_at = MessageStatus.SENT, sent.result.external_id, now
    message.sent_at = sent.started
    return message


def deliveries_send(*, claimed: list[Delivery], send_times: list[datetime] | None = None) -> dict[int, SendResult]:
    """Attempt deliveries whose lease is ours (one lease token); with
    `send_times` (a campaign's throttle), none is sent before its time.

    The sends happen outside any transaction, up to SEND_CONCURRENCY at
    once; each outcome is written as soon as its answer is in (with the
    others that came in meanwhile), so a worker that dies leaves only the
    webhooks then in flight, or answered in the last milliseconds, to be
    sent again."""
    if not claimed:
        return {}
    if len(claimed) == 1 and not send_times:
        sent = _send(claimed[0], _outgoing(claimed[0]))
        _record_outcomes([sent])
        return {sent.delivery.pk: sent.result}
    times_by_id = {delivery.pk: due for delivery, due in zip(claimed, send_times, strict=True)} if send_times else {}
    in_flight: set[Future] = set()
    results: dict[int, SendResult] = {}

    def record_answered(block: bool) -> None:
        nonlocal in_flight
        done, in_flight = wait(in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        if done and in_flight:  # answers come in bunches: a few milliseconds more make one write of many
            more, in_flight = wait(in_flight, timeout=RECORD_GATHER_SECONDS)
            done |= more
        if done:
            answered = [future.result() for future in done]
            _record_outcomes(answered)
            results.update((sent.delivery.pk, sent.result) for sent in answered)

    lease_renewed = time.monotonic()
    for delivery in claimed:
        due = times_by_id.get(delivery.pk)
        while due is not None and (wait_seconds := (due - timezone.now()).total_seconds()) > 0:
            if in_flight:
                record_answered(block=False)
            time.sleep(min(wait_seconds, 0.01 if in_flight else 0.05))
        while len(in_flight) >= SEND_CONCURRENCY:  # never more posted and unrecorded: all that a kill sends again
            record_answered(block=True)
        if time.monotonic() - lease_renewed > LEASE_RENEW_SECONDS:
            _renew_lease([d.pk for d in claimed if d.pk not in results], claimed[0].lease_token)
            lease_renewed = time.monotonic()
        in_flight.add(_pool().submit(_send, delivery, _outgoing(delivery)))
    while in_flight:
        record_answered(block=True)
    return results


def _renew_lease(delivery_ids: list[int], token: str) -> None:
    Delivery.objects.filter(pk__in=delivery_ids, lease_token=token, state=DeliveryState.PENDING).update(
        lease_until=timezone.now() + _send_lease()
    )


def delivery_attempt(*, delivery_id: int) -> SendResult | None:
    """One attempt of a due delivery; None when it is not due or another worker owns it."""
    return deliveries_attempt(delivery_ids=[delivery_id]).get(delivery_id)


def _record_outcomes(answered: list[Sent]) -> None:
    """Every attempt is recorded; deliveries still under our lease move on:
    delivered, failed, or due again at their next retry (published once
    committed, to run at the retry's time: an absolute time, so the time the
    outcomes took to write is not added to the wait)."""
    with transaction.atomic():
        retries, delivered = _record_in_transaction(answered)
    count_attempts(answered)
    _log_attempts(answered)
    for delivery_id, due_at in retries:
        delivery_enqueue(delivery_id, due_at=due_at)
    by_transport: dict[str, list[str]] = {}
    for sent in delivered:
        by_transport.setdefault(sent.delivery.channel.transport, []).append(sent.delivery.message_id)
    for transport, message_ids in by_transport.items():
        TRANSPORTS[transport].accepted(message_ids)


def _log_attempts(answered: list[Sent]) -> None:
    """A line per attempt with LOG_TRAFFIC (channels_app/traces.py); one that did not get through always."""
    every = traffic.isEnabledFor(logging.INFO)
    for sent in answered:
        accepted = sent.result.outcome == SendOutcome.ACCEPTED
        if accepted and not every:
            continue
        delivery = sent.delivery
        (traffic.info if accepted else traffic.warning)(
            "Attempt %s of message %s: %s%s.", delivery.attempts, delivery.message_id, sent.result.outcome,
            f" ({sent.result.status_code})" if sent.result.status_code else "",
            extra={**message_fields(delivery.message, delivery.channel), "outcome": sent.result.outcome,
                   "status_code": sent.result.status_code, "attempt": delivery.attempts,
                   "latency_ms": round(sent.result.latency_ms, 1), "error": sent.result.error[:200] or None},
        )


def _record_in_transaction(answered: list[Sent]) -> tuple[list[tuple[int, float]], list[Sent]]:
    now = timezone.now()
    accepted = [sent for sent in answered if sent.result.outcome == SendOutcome.ACCEPTED]
    refused = [sent for sent in answered if sent.result.outcome != SendOutcome.ACCEPTED]
    # On PostgreSQL the accepted ones' attempts are written by the statement that delivers them.
    in_one_statement = connection.vendor == "postgresql"
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            delivery=sent.delivery,
            number=sent.delivery.attempts,
            started_at=sent.started,
            outcome=sent.result.outcome,
            status_code=sent.result.status_code,
            latency_ms=sent.result.latency_ms,
            error=sent.result.error[:500],
            response_excerpt=sent.result.response_excerpt,
        )
        for sent in (refused if in_one_statement else answered)
    )
    _circuits_record(answered, now)
    if accepted and in_one_statement:
        delivered = _deliveries_delivered_in_one_statement(accepted, now)
    else:
        delivered = _deliveries_delivered(accepted, now) if accepted else []
    retries = _deliveries_not_accepted(refused, now) if refused else []
    return retries, delivered


def _circuits_record(answered: list[Sent], now: datetime) -> None:
    """The per-channel circuit (models.configuration.CIRCUIT_RULE): an attempt that did not get through
    (a RETRY outcome) adds to the channel's consecutive failures, and at CIRCUIT_FAILURE_THRESHOLD the
    channel is down; any other answer (an HTTP status with another outcome) closes it; a refusal before
    sending (no status) changes nothing. One UPDATE per channel, and only
    when something changes: a success on a channel known (as loaded with the delivery) to be fine writes
    nothing."""
    by_channel: dict[int, list[Sent]] = {}
    for sent in answered:
        by_channel.setdefault(sent.delivery.channel_id, []).append(sent)
    threshold = max(1, settings.CIRCUIT_FAILURE_THRESHOLD)
    for channel_id, sends in by_channel.items():
        reached, trailing = False, 0
        for sent in sends:
            if sent.result.outcome == SendOutcome.RETRY:
                trailing += 1
            elif sent.result.status_code is not None:  # an answer (not a refusal before sending)
                reached, trailing = True, 0
        channels = [sent.delivery.channel for sent in sends]
        known = channels[0]
        if reached:
            if trailing == 0 and not known.consecutive_failures and known.down_since is None:
                continue  # the usual case: nothing to write
            down_since = now if trailing >= threshold else None
            Channel.objects.filter(pk=channel_id).update(consecutive_failures=trailing, down_since=down_since)
            failures = trailing
        elif trailing:
            Channel.objects.filter(pk=channel_id).update(
                consecutive_failures=F("consecutive_failures") + trailing,
                down_since=Case(
                    When(Q(down_since__isnull=True) & Q(consecutive_failures__gte=threshold - trailing),
                         then=Value(now)),
                    default=F("down_since"),
                ),
            )
            failures = known.consecutive_failures + trailing
            down_since = known.down_since or (now if failures >= threshold else None)
        else:
            continue
        for channel in channels:  # later outcomes of this process start from what was written
            channel.consecutive_failures, channel.down_since = failures, down_since
        channels_by_id.clear()  # this process's readers see the circuit at once (others within their cache's life)


def _deliveries_not_accepted(refused: list[Sent], now: datetime) -> list[tuple[int, datetime]]:
    """Failed for good, or due again at their next retry; returns the retries to publish, with their time."""
    ours = {
        row["pk"]: row
        for row in Delivery.objects.select_for_update()
        .filter(pk__in=[sent.delivery.pk for sent in refused], state=DeliveryState.PENDING)
        .filter(lease_token=refused[0].delivery.lease_token)
        .values("pk", "first_attempt_at")
    }
    retries = []
    for sent in refused:
        delivery, result = sent.delivery, sent.result
        if delivery.pk not in ours:
            continue  # the lease ran out and another worker took over: its outcome counts
        first_attempt_at = ours[delivery.pk]["first_attempt_at"] or sent.started
        decision = retry_decision(
            outcome=result.outcome,
            attempts_made=delivery.attempts,
            first_attempt_at=first_attempt_at,
            now=now,
            retry_attempts=delivery.channel.retry_attempts,
            retry_timeout_seconds=delivery.channel.retry_timeout_seconds,
        )
        changes = {"first_attempt_at": first_attempt_at, "lease_until": None, "lease_token": "",
                   "last_error": result.error[:500]}
        if decision.final_state == DeliveryState.FAILED:
            changes["state"] = DeliveryState.FAILED
            if result.outcome != SendOutcome.FAILED:  # out of attempts: the attempt that ended it says failed
                DeliveryAttempt.objects.filter(delivery=delivery, number=delivery.attempts).update(
                    outcome=SendOutcome.FAILED)
            _message_failed(delivery.message, result, delivery.attempts)
            if delivery.has_followers:
                _followers_fail(delivery.pk, now)
        else:
            changes["next_attempt_at"] = decision.next_attempt_at
            wait_for = decision.next_attempt_at - now
            if wait_for <= RETRY_PUBLISH_LIMIT:
                retries.append((delivery.pk, decision.next_attempt_at))
                changes["published_at"] = decision.next_attempt_at
        Delivery.objects.filter(pk=delivery.pk).update(**changes, updated_at=now)
    return retries


def _deliveries_delivered(accepted: list[Sent], now: datetime) -> list[Sent]:
    """The third party accepted them: deliveries delivered, messages sent with
    the third party's ids, early receipts applied, terminating sessions ended.
    Only deliveries still under our lease count (if one ran out, another
    worker took over and its outcome counts); returns those."""
    token = accepted[0].delivery.lease_token
    ids = [sent.delivery.pk for sent in accepted]
    updated = Delivery.objects.filter(pk__in=ids, lease_token=token, state=DeliveryState.PENDING).update(
        state=DeliveryState.DELIVERED, delivered_at=now, lease_until=None, last_error="", updated_at=now,
        first_attempt_at=Coalesce("first_attempt_at", Value(min(sent.started for sent in accepted))),
    )  # the lease token stays: it tells ours apart when another worker took some over
    if updated < len(ids):
        ours = set(
            Delivery.objects.filter(pk__in=ids, lease_token=token, state=DeliveryState.DELIVERED).values_list(
                "pk", flat=True
            )
        )
        accepted = [sent for sent in accepted if sent.delivery.pk in ours]
    messages = [_message_sent(sent, now) for sent in accepted]
    bulk_update_rows(
        Message,
        [{"pk": m.pk, "external_id": m.external_id, "sent_at": m.sent_at} for m in messages],
        ["external_id", "sent_at"],
        constants={"status": MessageStatus.SENT, "updated_at": now},
    )
    for message in messages:  # the agent's page turns "Sending..." into "Sent"
        receipt_event(message=message, interaction=message.interaction)
    _early_receipts_apply([m for m in messages if m.external_id])
    if leading := [sent.delivery.pk for sent in accepted if sent.delivery.has_followers]:
        _followers_release(leading, now)
    _end_terminating_sessions([m.interaction_id for m in messages if m.interaction.terminate_after_send], now)
    return accepted


# The accepted answers of a round, written by one statement (the usual case of every send, and all of a campaign's):
# their attempts inserted, the deliveries still under our lease delivered, their messages sent with the third
# party's ids, the sessions that end once their message is handed over ended; it answers which deliveries were
# ours and whether a receipt came before the message's id was known. Five statements' round trips and Django's
# compile of each cost more than PostgreSQL's work for a dozen rows (issue 25, lever 6). The rows come as one array
# per column, so that the text is the same for any number of them (one prepared statement: channels_app/prepared.py).
_DELIVERED_SQL = """
WITH v (delivery_id, number, started_at, status_code, latency_ms, excerpt, external_id) AS (
    SELECT * FROM unnest(%(deliveries)s::bigint[], %(numbers)s::integer[], %(started)s::timestamptz[],
        %(status_codes)s::integer[], %(latencies)s::double precision[], %(excerpts)s::text[],
        %(external_ids)s::varchar[])
),
attempts AS (
    INSERT INTO channels_app_deliveryattempt
        (delivery_id, number, started_at, outcome, status_code, latency_ms, error, response_excerpt)
    SELECT delivery_id, number, started_at, %(accepted)s, status_code, latency_ms, '', excerpt FROM v
),
d AS (
    UPDATE channels_app_delivery SET state = %(delivered)s, delivered_at = %(now)s, lease_until = NULL,
        last_error = '', updated_at = %(now)s, first_attempt_at = coalesce(first_attempt_at, %(first)s)
    FROM v
    WHERE channels_app_delivery.id = v.delivery_id AND lease_token = %(token)s AND state = %(pending)s
    RETURNING channels_app_delivery.id, channels_app_delivery.message_id, v.external_id, v.started_at
),
m AS (
    UPDATE channels_app_message SET status = %(sent)s, external_id = d.external_id, sent_at = d.started_at,
        updated_at = %(now)s
    FROM d WHERE channels_app_message.id = d.message_id
    RETURNING channels_app_message.id, channels_app_message.interaction_id, channels_app_message.channel_id,
        channels_app_message.external_id
),
ended AS (
    UPDATE channels_app_interaction SET state = %(ended)s, ended_at = %(now)s, end_reason = 'TerminateSessionFlag'
    FROM m WHERE channels_app_interaction.id = m.interaction_id AND terminate_after_send
        AND channels_app_interaction.state <> %(ended)s
)
SELECT d.id, m.external_id <> '' AND EXISTS (
    SELECT 1 FROM channels_app_earlyreceipt e WHERE e.channel_id = m.channel_id AND e.external_id = m.external_id)
FROM d JOIN m ON m.id = d.message_id
"""


def _deliveries_delivered_in_one_statement(accepted: list[Sent], now: datetime) -> list[Sent]:
    """`_deliveries_delivered` on PostgreSQL, its writes in one statement (attempts included); the same outcome."""
    results = [sent.result for sent in accepted]
    params = {
        "deliveries": [sent.delivery.pk for sent in accepted],
        "numbers": [sent.delivery.attempts for sent in accepted], "started": [sent.started for sent in accepted],
        "status_codes": [result.status_code for result in results],
        # one type per array: psycopg types a list by its elements, and an int among the floats would misread
        "latencies": [float(result.latency_ms) for result in results],
        "excerpts": [result.response_excerpt for result in results],
        "external_ids": [result.external_id for result in results],
        "accepted": SendOutcome.ACCEPTED, "delivered": DeliveryState.DELIVERED, "pending": DeliveryState.PENDING,
        "sent": MessageStatus.SENT, "ended": InteractionState.ENDED, "now": now,
        "first": min(sent.started for sent in accepted), "token": accepted[0].delivery.lease_token,
    }
    ours = dict(execute_prepared(_DELIVERED_SQL, params))
    accepted = [sent for sent in accepted if sent.delivery.pk in ours]
    early = []
    for sent in accepted:
        message = _message_sent(sent, now)
        receipt_event(message=message, interaction=message.interaction)  # the agent's page: "Sent"
        if ours[sent.delivery.pk]:
            early.append(message)
    for message in early:
        early_receipts_apply(channel_id=message.channel_id, external_id=message.external_id)
    if leading := [sent.delivery.pk for sent in accepted if sent.delivery.has_followers]:
        _followers_release(leading, now)
    return accepted


def _early_receipts_apply(messages: list[Message]) -> None:
    if not messages:
        return
    waiting = set(
        EarlyReceipt.objects.filter(external_id__in=[m.external_id for m in messages]).values_list(
            "channel_id", "external_id"
        )
    )
    for message in messages:
        if (message.channel_id, message.external_id) in waiting:
            early_receipts_apply(channel_id=message.channel_id, external_id=message.external_id)


def _end_terminating_sessions(interaction_ids: list[str], now: datetime) -> None:
    """TerminateSessionFlag: the session ends once its message is handed over, or has failed for good."""
    if not interaction_ids:
        return
    Interaction.objects.filter(pk__in=interaction_ids, terminate_after_send=True).exclude(
        state=InteractionState.ENDED
    ).update(state=InteractionState.ENDED, ended_at=now, end_reason="TerminateSessionFlag")


def _followers_release(delivery_ids: list[int], now: datetime) -> None:
    """The attachments waiting for these deliveries (now delivered) are due: the dispatcher takes them."""
    released = list(
        Delivery.objects.filter(after_id__in=delivery_ids, state=DeliveryState.WAITING).values_list("pk", flat=True)
    )
    Delivery.objects.filter(pk__in=released).update(
        state=DeliveryState.PENDING, next_attempt_at=now, published_at=now, updated_at=now
    )
    if released:
        dispatcher_wake()


FOLLOWER_NOT_SENT = "Not sent: the message before it failed."


def _followers_fail(delivery_id: int, now: datetime) -> None:
    """The attachments after a message that failed for good are not sent: failed too, in chain."""
    waiting = [delivery_id]
    while waiting:
        rows = list(Delivery.objects.filter(after_id__in=waiting, state=DeliveryState.WAITING)
                    .values_list("pk", "message_id"))
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            state=DeliveryState.FAILED, last_error=FOLLOWER_NOT_SENT, updated_at=now
        )
        Message.objects.filter(pk__in=[m for _, m in rows]).update(
            status=MessageStatus.FAILED, reasons=[{"code": 500, "message": FOLLOWER_NOT_SENT}], updated_at=now
        )
        waiting = [pk for pk, _ in rows]


def _followers_wait_again(delivery_id: int) -> None:
    """A redelivered message takes the attachments that failed with it back: they wait for it again."""
    failed = [delivery_id]
    while failed:
        rows = list(Delivery.objects.filter(after_id__in=failed, state=DeliveryState.FAILED,
                                            last_error=FOLLOWER_NOT_SENT).values_list("pk", "message_id"))
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(state=DeliveryState.WAITING, last_error="")
        Message.objects.filter(pk__in=[m for _, m in rows]).update(status=MessageStatus.QUEUED, reasons=[])
        failed = [pk for pk, _ in rows]


def _message_failed(message: Message, result: SendResult, attempts: int) -> None:
    # 500 is the contract's "General error" reason code, whatever happened: the words say what (an HTTP status
    # only when one was answered), the delivery keeps the raw error.
    detail = attempt_error_in_words(error=result.error, status_code=result.status_code) if result.error else \
        "the channel refused the message"
    reason = {"code": 500, "message": f"Webhook failed after {attempts} attempt(s): {detail}"}
    now = timezone.now()
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.FAILED, reasons=[reason], updated_at=now)
    message.status, message.reasons = MessageStatus.FAILED, [reason]
    receipt_event(message=message, interaction=message.interaction)  # the agent's page shows it failed, and why
    _end_terminating_sessions([message.interaction_id], now)


def attempt_error_in_words(*, error: str, status_code: int | None) -> str:
    """An attempt's (or a delivery's last) error as the admin shows it: words computed at display time
    (channels_app/outbound.py), the raw error kept behind them. Both transports read under the webhook's
    timeout (the Graph API's requests go over the same connections)."""
    return failure_in_words(error, status_code, timeout_seconds=WEBHOOK_TIMEOUT_SECONDS)


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Ids of deliveries due, owned by nobody and not published lately, locked
    with SKIP LOCKED so that relays running side by side pick different rows;
    they count as published now, so a backlog in the broker is not multiplied."""
    now = timezone.now()
    quiet_since = now - _relay_grace()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .filter(Q(published_at__isnull=True) | Q(published_at__lt=quiet_since))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(published_at=now)
    return ids


@transaction.atomic
def delivery_redeliver(*, delivery: Delivery) -> bool:
    """Start a failed delivery over (admin "redeliver"); False when it is not failed."""
    now = timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.FAILED).update(
        state=DeliveryState.PENDING, next_attempt_at=now, first_attempt_at=None, attempts=0,
        lease_until=None, lease_token="", last_error="", published_at=now,
    )
    if not updated:
        return False
    Message.objects.filter(pk=delivery.message_id).update(status=MessageStatus.QUEUED, reasons=[])
    if delivery.has_followers:
        _followers_wait_again(delivery.pk)
    dispatcher_wake()
    return True


@transaction.atomic
def delivery_retry_now(*, delivery: Delivery) -> bool:
    """The admin's "retry now": a failed delivery starts over (`delivery_redeliver`);
    a pending one no worker holds is made due now. False when it is delivered
    or a worker is sending it."""
    if delivery_redeliver(delivery=delivery):
        return True
    now = timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.PENDING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ).update(next_attempt_at=now, published_at=now)
    if updated:
        dispatcher_wake()
    return bool(updated)
