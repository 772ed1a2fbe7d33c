"""The reports' figures, kept current off the hot paths (API.md, "Reports";
issue 27's cost rule: keeping them costs the hot paths at most 5% of their CPU).

Nothing is added to the request that receives or sends a message. A periodic
task (`channels_app.reports_fold`, every REPORTS_FOLD_SECONDS) looks at what
changed since it last looked, with indexed reads only:

* messages written or changed (a customer message, an agent message, a
  webhook's outcome, a receipt: each sets `Message.updated_at`, index
  `message_changed`);
* interactions begun (`created_at`) or ended (`ended_at`, index
  `interaction_ended`: an end with a disposition, an expiry);

and re-reads the figures of those interactions only (their messages, their
deliveries' attempts, their accepted offer). Each interaction's figures as
last folded are kept in `ConversationSummary`; what changed is added to the
rollups as the difference, so folding an interaction twice changes nothing,
and an interaction moved to another queue, agent or disposition moves its
figures with it. The figures are at most a fold period behind the messages
(plus, while a long transaction is open, its age: at most FOLD_OVERLAP; always
that much when the fold's role cannot see the other sessions' transactions).

Each change is read about once (`_window`): a fold reads the rows timed from
where the last one stopped (less STAMP_MARGIN) up to the start of the oldest
transaction still open, since a row not yet committed is invisible but timed
after its transaction began; a transaction open for longer than FOLD_OVERLAP
holds the figures back no further. (Re-reading the last minute at every fold,
as before, read a campaign's conversation three times.)

On PostgreSQL a fold is one statement per FOLD_SQL_CHUNK interactions
(FOLD_SQL): their figures computed by the database (a look-up by index per
interaction and kind of row, skipped where it cannot find anything),
compared with their summaries, the changed summaries upserted and the
differences summed per group and upserted into the rollups; no row passes
through Python, which had cost a millisecond per conversation (a campaign
makes one per recipient). `_fold_chunk_in_python` computes the same figures
one interaction at a time: SQLite's fold, and the reference the tests hold
the statement to, row for row.

`ReportRollup` rows hold, per tenant, group and hour the interaction began,
the sums and fixed-bucket histograms (HISTOGRAM_* below) of first response
time, handle time and webhook latency: any period's percentile is read from
the summed buckets of its hours, a few hundred rows whatever the number of
messages. Histograms rather than per-interaction rows because a percentile
over a week of summaries would read a row per conversation (millions); the
buckets are 2^(1/4) apart, and a percentile is the middle of its bucket: within 9% of the exact one.
"""

import bisect
import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone

from channels_app.models import (
    Channel,
    ConversationSummary,
    Delivery,
    DeliveryAttempt,
    Interaction,
    InteractionState,
    Message,
    MessageDirection,
    MessageStatus,
    Offer,
    OfferState,
    ReportDimension,
    ReportRollup,
    ReportWatermark,
)

logger = logging.getLogger(__name__)

WATERMARK = "reports"
FOLD_OVERLAP = timedelta(minutes=1)  # a transaction that commits this long after its rows' times is still folded
# A row's time is taken in Python, a moment before its transaction's first statement (xact_start) and by another
# machine's clock: each fold reads this much of the last one's window again.
STAMP_MARGIN = timedelta(seconds=5)
FOLD_CHUNK = 1000  # interactions re-read per transaction
FOLD_SQL_CHUNK = 5000  # per statement on PostgreSQL: its planning (~15 ms) shared by more interactions
# pg_try_advisory_lock's key: "DMSFOLD!" as a 64-bit integer: one fold at a time, whatever the number of workers.
FOLD_LOCK_KEY = int.from_bytes(b"DMSFOLD!", "big") - (1 << 63)

# Histograms: bucket 0 holds [0, HISTOGRAM_BASE), bucket b >= 1 holds [BASE * 2^((b-1)/4), BASE * 2^(b/4)).
HISTOGRAM_BASE = 0.1  # seconds for response and handle times, milliseconds for webhook latency
HISTOGRAM_STEPS_PER_DOUBLING = 4
HISTOGRAM_LAST = 200  # 0.1 * 2^50: beyond any time kept

COUNTERS = ("interactions", "messages_in", "messages_out", "ended_without_reply", "delivered", "read", "failed")
HISTOGRAMS = ("first_response", "handle", "latency")
DELIVERED = (MessageStatus.DELIVERED, MessageStatus.READ)
FAILED = (MessageStatus.FAILED, MessageStatus.REMOVED)


# --- histograms (pure) -------------------------------------------------------------------------------------------


# The buckets' lower bounds (bucket b >= 1 begins at HISTOGRAM_BOUNDS[b - 1]): a value's bucket is the number of
# bounds at or below it, the same comparisons in Python (bisect) and in SQL (width_bucket), so both agree exactly.
HISTOGRAM_BOUNDS = tuple(HISTOGRAM_BASE * 2 ** (b / HISTOGRAM_STEPS_PER_DOUBLING) for b in range(HISTOGRAM_LAST))


def bucket_of(value: float) -> int:
    return bisect.bisect_right(HISTOGRAM_BOUNDS, value)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    if bucket == 0:
        return 0.0, HISTOGRAM_BASE
    return (HISTOGRAM_BASE * 2 ** ((bucket - 1) / HISTOGRAM_STEPS_PER_DOUBLING),
            HISTOGRAM_BASE * 2 ** (bucket / HISTOGRAM_STEPS_PER_DOUBLING))


def percentile(histogram: dict, fraction: float) -> float | None:
    """The `fraction` percentile (0.5: the median) of a histogram {bucket: count}: the middle (geometric) of
    the bucket that holds the value of that rank (nearest rank), so within 2^(1/8), 9%, of the exact value;
    None when it is empty."""
    counts = sorted((int(bucket), count) for bucket, count in histogram.items() if count > 0)
    total = sum(count for _, count in counts)
    if total == 0:
        return None
    rank = max(math.ceil(fraction * total), 1)
    seen, found = 0, counts[-1][0]
    for bucket, count in counts:
        seen += count
        if seen >= rank:
            found = bucket
            break
    low, high = bucket_bounds(found)
    return high / 2 if found == 0 else math.sqrt(low * high)


def histogram_add(into: dict, histogram: dict, sign: int = 1) -> None:
    for bucket, count in histogram.items():
        key = str(bucket)
        into[key] = into.get(key, 0) + sign * count
        if into[key] == 0:
            del into[key]


# --- one interaction's figures (what it adds to each of its groups) ----------------------------------------------


def _failure_reason(status: str, reasons: list) -> str:
    if status == MessageStatus.REMOVED:
        return "Removed"
    first = reasons[0] if reasons else {}
    if isinstance(first, dict):
        return str(first.get("message") or first.get("code") or "General error.")[:200]
    return "General error."


def summaries_compute(interaction_ids: list[str]) -> dict[str, tuple[int, datetime, dict, dict]]:
    """The figures of these interactions, read from their messages, their deliveries' attempts and offers:
    interaction id -> (tenant id, hour begun, group keys, figures). Interactions that no longer exist are left
    out (their figures stay counted: a purged conversation still happened)."""
    rows = list(Interaction.objects.filter(pk__in=interaction_ids).values_list(
        "pk", "channel_id", "channel__tenant_id", "queue", "assigned_to_id", "disposition", "state", "created_at",
        "ended_at"))
    if not rows:
        return {}
    # Counted by the database, a row per interaction (not a row per message: a conversation may hold thousands).
    inbound, outbound = Q(direction=MessageDirection.INBOUND), Q(direction=MessageDirection.OUTBOUND)
    counts = {row["interaction_id"]: row for row in (
        Message.objects.filter(interaction_id__in=interaction_ids).order_by().values("interaction_id").annotate(
            messages_in=Count("pk", filter=inbound), messages_out=Count("pk", filter=outbound),
            delivered=Count("pk", filter=outbound & Q(status__in=DELIVERED)),
            read=Count("pk", filter=outbound & Q(status=MessageStatus.READ)),
            failed=Count("pk", filter=outbound & Q(status__in=FAILED)),
            first_in=Min("created_at", filter=inbound)))}
    first_inbound = Message.objects.filter(interaction_id=OuterRef("interaction_id"),
                                           direction=MessageDirection.INBOUND).order_by("created_at").values(
                                               "created_at")[:1]
    replies = dict(Message.objects.filter(interaction_id__in=interaction_ids, direction=MessageDirection.OUTBOUND,
                                          created_at__gte=Subquery(first_inbound)).order_by()
                   .values("interaction_id").annotate(first=Min("created_at")).values_list("interaction_id", "first"))
    reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for interaction_id, status, message_reasons in (
            Message.objects.filter(interaction_id__in=interaction_ids, direction=MessageDirection.OUTBOUND,
                                   status__in=FAILED).order_by().values_list("interaction_id", "status", "reasons")):
        reasons[interaction_id][_failure_reason(status, message_reasons)] += 1
    latencies: dict[str, dict[str, int]] = defaultdict(dict)
    for interaction_id, latency_ms in (
            DeliveryAttempt.objects.filter(delivery__message__interaction_id__in=interaction_ids)
            .exclude(status_code__isnull=True).order_by()
            .values_list("delivery__message__interaction_id", "latency_ms")):
        histogram_add(latencies[interaction_id], {bucket_of(latency_ms): 1})
    accepted = dict(Offer.objects.filter(interaction_id__in=interaction_ids, state=OfferState.ACCEPTED).order_by()
                    .values("interaction_id").annotate(first=Min("answered_at")).values_list("interaction_id", "first"))

    computed = {}
    for pk, channel_id, tenant_id, queue, agent_id, disposition, state, created_at, ended_at in rows:
        count = counts.get(pk, {})
        first_in, reply = count.get("first_in"), replies.get(pk)
        ended = state == InteractionState.ENDED and ended_at is not None
        figures = {
            "interactions": 1,
            "messages_in": count.get("messages_in", 0),
            "messages_out": count.get("messages_out", 0),
            "ended_without_reply": int(ended and first_in is not None and reply is None),
            "delivered": count.get("delivered", 0),
            "read": count.get("read", 0),
            "failed": count.get("failed", 0),
            "failed_by_reason": dict(reasons.get(pk, {})),
            "first_response": {str(bucket_of((reply - first_in).total_seconds())): 1} if reply else {},
            "handle": {},
            "latency": latencies.get(pk, {}),
        }
        if ended:
            start = accepted.get(pk) or created_at
            figures["handle"] = {str(bucket_of(max((ended_at - start).total_seconds(), 0.0))): 1}
        groups = {
            ReportDimension.QUEUE: queue,
            ReportDimension.CHANNEL: str(channel_id),
            ReportDimension.AGENT: str(agent_id) if agent_id else "",
            ReportDimension.DISPOSITION: disposition,
        }
        computed[pk] = (tenant_id, created_at.replace(minute=0, second=0, microsecond=0), groups, figures)
    return computed


# --- the same figures, set-based (PostgreSQL) ---------------------------------------------------------------------


def _bucket_sql(value: str) -> str:
    """bucket_of in SQL."""
    return f"width_bucket(({value})::float8, %(bounds)s::float8[])"


def _truthy_text_sql(value: str) -> str:
    """A JSON value as text, NULL where Python finds it false (null, "", 0, false, [], {})."""
    return (f"(CASE WHEN ({value}) IS NULL OR ({value}) IN ('null', '\"\"', '0', 'false', '[]', '{{}}') THEN NULL "
            f"ELSE ({value}) #>> '{{}}' END)")


# _failure_reason in SQL.
_REASON_MESSAGE = _truthy_text_sql("m.reasons -> 0 -> 'message'")
_REASON_CODE = _truthy_text_sql("m.reasons -> 0 -> 'code'")
_REASON_SQL = (f"(CASE WHEN m.status = '{MessageStatus.REMOVED}' THEN 'Removed' "
               f"WHEN jsonb_typeof(m.reasons -> 0) = 'object' THEN left(coalesce({_REASON_MESSAGE}, {_REASON_CODE}, "
               f"'General error.'), 200) ELSE 'General error.' END)")


def _histogram_merge_sql(name: str) -> str:
    rollup = ReportRollup._meta.db_table
    return (f"{name} = CASE WHEN EXCLUDED.{name} = '{{}}' THEN {rollup}.{name} ELSE (SELECT coalesce("
            f"jsonb_object_agg(bucket, total), '{{}}') FROM (SELECT bucket, sum(n::bigint) AS total FROM ("
            f"SELECT * FROM jsonb_each_text({rollup}.{name}) UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.{name})"
            f") AS entry(bucket, n) GROUP BY bucket HAVING sum(n::bigint) <> 0) AS summed) END")


_HISTOGRAM_FIGURES = ("failed_by_reason", *HISTOGRAMS)
_INBOUND, _OUTBOUND = f"'{MessageDirection.INBOUND}'", f"'{MessageDirection.OUTBOUND}'"
_DELIVERED = ", ".join(f"'{status}'" for status in DELIVERED)
_FAILED = ", ".join(f"'{status}'" for status in FAILED)

# One statement per chunk of interactions: their figures as summaries_compute computes them, compared with their
# ConversationSummary; the changed summaries written, and the differences (new figures minus the old, in the old
# groups and hour) summed per group and added to the rollups. %(ids)s: the interactions; %(dimensions)s:
# ReportDimension.values; %(bounds)s: HISTOGRAM_BOUNDS. Answers the number of interactions whose figures
# changed (a data-modifying WITH runs whether or not the answer reads it).
FOLD_SQL = f"""
WITH computed AS (
    SELECT i.id, ch.tenant_id, date_trunc('hour', i.created_at) AS hour,
           jsonb_build_object(
               'interactions', 1,
               'messages_in', c.messages_in,
               'messages_out', c.messages_out,
               'ended_without_reply', (e.ended_at IS NOT NULL AND c.first_in IS NOT NULL AND r.first_out IS NULL)::int,
               'delivered', c.delivered,
               'read', c.read,
               'failed', c.failed,
               'failed_by_reason', coalesce(x.failed_by_reason, '{{}}'),
               'first_response', CASE WHEN r.first_out IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object(
                   {_bucket_sql("extract(epoch FROM r.first_out - c.first_in)")}::text, 1) END,
               'handle', CASE WHEN e.ended_at IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object({_bucket_sql(
                   "greatest(extract(epoch FROM e.ended_at - coalesce(o.answered_at, i.created_at)), 0)")}::text, 1)
                   END,
               'latency', coalesce(l.latency, '{{}}')) AS figures,
           jsonb_build_object('{ReportDimension.QUEUE}', i.queue, '{ReportDimension.CHANNEL}', i.channel_id::text,
                              '{ReportDimension.AGENT}', coalesce(i.assigned_to_id::text, ''),
                              '{ReportDimension.DISPOSITION}', i.disposition) AS groups
    FROM {Interaction._meta.db_table} i
    JOIN {Channel._meta.db_table} ch ON ch.id = i.channel_id
    CROSS JOIN LATERAL (SELECT CASE WHEN i.state = '{InteractionState.ENDED}' THEN i.ended_at END AS ended_at) e
    -- Each look-up below is by the interaction (an index scan whatever the tables' statistics say), and skipped
    -- (a one-time filter) where it cannot find anything: no customer message, nothing failed, not ended.
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE m.direction = {_INBOUND}) AS messages_in,
               count(*) FILTER (WHERE m.direction = {_OUTBOUND}) AS messages_out,
               count(*) FILTER (WHERE m.direction = {_OUTBOUND} AND m.status IN ({_DELIVERED})) AS delivered,
               count(*) FILTER (WHERE m.direction = {_OUTBOUND} AND m.status = '{MessageStatus.READ}') AS read,
               count(*) FILTER (WHERE m.direction = {_OUTBOUND} AND m.status IN ({_FAILED})) AS failed,
               min(m.created_at) FILTER (WHERE m.direction = {_INBOUND}) AS first_in
        FROM {Message._meta.db_table} m WHERE m.interaction_id = i.id) c
    CROSS JOIN LATERAL (
        SELECT min(m.created_at) AS first_out FROM {Message._meta.db_table} m
        WHERE c.first_in IS NOT NULL AND m.interaction_id = i.id AND m.direction = {_OUTBOUND}
          AND m.created_at >= c.first_in) r
    CROSS JOIN LATERAL (
        SELECT jsonb_object_agg(reason, n) AS failed_by_reason FROM (
            SELECT {_REASON_SQL} AS reason, count(*) AS n FROM {Message._meta.db_table} m
            WHERE c.failed > 0 AND m.interaction_id = i.id AND m.direction = {_OUTBOUND} AND m.status IN ({_FAILED})
            GROUP BY 1) AS by_reason) x
    -- The delivery and its attempts are read per message (OFFSET 0 keeps each sub-select a look-up by index: as
    -- plain joins, with statistics behind a campaign's inserts, the planner hashed the whole attempts table once
    -- per interaction, and a fold of 5,000 ran for minutes at 500,000 attempts).
    CROSS JOIN LATERAL (
        SELECT jsonb_object_agg(bucket, n) AS latency FROM (
            SELECT {_bucket_sql("a.latency_ms")} AS bucket, count(*) AS n
            FROM {Message._meta.db_table} m
            CROSS JOIN LATERAL (SELECT d.id FROM {Delivery._meta.db_table} d WHERE d.message_id = m.id OFFSET 0) d
            CROSS JOIN LATERAL (SELECT a.latency_ms FROM {DeliveryAttempt._meta.db_table} a
                                WHERE a.delivery_id = d.id AND a.status_code IS NOT NULL OFFSET 0) a
            WHERE c.messages_out > 0 AND m.interaction_id = i.id
            GROUP BY 1) AS by_bucket) l
    CROSS JOIN LATERAL (
        SELECT min(answered_at) AS answered_at FROM {Offer._meta.db_table}
        WHERE e.ended_at IS NOT NULL AND interaction_id = i.id AND state = '{OfferState.ACCEPTED}') o
    WHERE i.id = ANY(%(ids)s::varchar[])
),
changed AS (
    SELECT n.*, s.interaction_id IS NOT NULL AS existed, s.tenant_id AS old_tenant_id, s.hour AS old_hour,
           s.figures AS old_figures, s.groups AS old_groups
    FROM computed n LEFT JOIN {ConversationSummary._meta.db_table} s ON s.interaction_id = n.id
    WHERE s.interaction_id IS NULL
       OR (s.tenant_id, s.hour, s.figures, s.groups) IS DISTINCT FROM (n.tenant_id, n.hour, n.figures, n.groups)
),
saved AS (
    INSERT INTO {ConversationSummary._meta.db_table} (interaction_id, tenant_id, hour, figures, groups)
    SELECT id, tenant_id, hour, figures, groups FROM changed
    ON CONFLICT (interaction_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, hour = EXCLUDED.hour,
        figures = EXCLUDED.figures, groups = EXCLUDED.groups
    RETURNING 1
),
-- Summed per set of group keys first (a campaign's conversations share theirs), then per dimension.
signed AS (
    SELECT tenant_id, groups, hour, 1 AS sign, figures FROM changed
    UNION ALL
    SELECT old_tenant_id, old_groups, old_hour, -1, old_figures FROM changed WHERE existed
),
counted AS (
    SELECT tenant_id, groups, hour,
           {", ".join(f"sum(sign * (figures ->> '{name}')::bigint) AS {name}" for name in COUNTERS)}
    FROM signed GROUP BY 1, 2, 3
),
entries AS (
    SELECT tenant_id, groups, hour, name, entry.bucket, sum(sign * entry.n::bigint) AS n
    FROM signed, unnest(ARRAY[{", ".join(f"'{name}'" for name in _HISTOGRAM_FIGURES)}]) AS name,
         jsonb_each_text(figures -> name) AS entry(bucket, n)
    GROUP BY 1, 2, 3, 4, 5
),
counter AS (
    SELECT tenant_id, dimension, coalesce(groups ->> dimension, '') AS key, hour,
           {", ".join(f"sum({name}) AS {name}" for name in COUNTERS)}
    FROM counted, unnest(%(dimensions)s::text[]) AS dimension GROUP BY 1, 2, 3, 4
),
histogram AS (
    SELECT tenant_id, dimension, key, hour,
           {", ".join(f"coalesce(jsonb_object_agg(bucket, n) FILTER (WHERE name = '{name}'), '{{}}') AS {name}"
                      for name in _HISTOGRAM_FIGURES)}
    FROM (
        SELECT tenant_id, dimension, coalesce(groups ->> dimension, '') AS key, hour, name, bucket, sum(n) AS n
        FROM entries, unnest(%(dimensions)s::text[]) AS dimension
        GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0) AS by_dimension
    GROUP BY 1, 2, 3, 4
),
added AS (
    INSERT INTO {ReportRollup._meta.db_table} (tenant_id, dimension, key, hour, {", ".join(COUNTERS)},
                                               {", ".join(_HISTOGRAM_FIGURES)})
    SELECT c.tenant_id, c.dimension, c.key, c.hour, {", ".join(f"c.{name}" for name in COUNTERS)},
           {", ".join(f"coalesce(h.{name}, '{{}}')" for name in _HISTOGRAM_FIGURES)}
    FROM counter c LEFT JOIN histogram h USING (tenant_id, dimension, key, hour)
    WHERE h.tenant_id IS NOT NULL OR {" OR ".join(f"c.{name} <> 0" for name in COUNTERS)}
    ON CONFLICT (tenant_id, dimension, key, hour) DO UPDATE SET
        {", ".join(f"{name} = {ReportRollup._meta.db_table}.{name} + EXCLUDED.{name}" for name in COUNTERS)},
        {", ".join(_histogram_merge_sql(name) for name in _HISTOGRAM_FIGURES)}
)
SELECT count(*) FROM saved
"""


# --- folding ----------------------------------------------------------------------------------------------------


def _add(delta: dict, figures: dict, sign: int) -> None:
    for name in COUNTERS:
        delta[name] = delta.get(name, 0) + sign * figures.get(name, 0)
    for name in ("failed_by_reason", *HISTOGRAMS):
        histogram_add(delta.setdefault(name, {}), figures.get(name, {}), sign)


def _is_zero(delta: dict) -> bool:
    return not any(delta.get(name) for name in COUNTERS) and not any(
        delta.get(name) for name in ("failed_by_reason", *HISTOGRAMS))


def _fold_chunk(interaction_ids: list[str]) -> int:
    """Re-read these interactions and add what changed to the rollups, in one transaction. The interactions
    whose figures changed."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            # The planner's cost of a statement this long passes jit_above_cost: compiling it would take seconds
            # to save microseconds (the look-ups are by index, a few rows each).
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(FOLD_SQL, {"ids": interaction_ids, "dimensions": list(ReportDimension.values),
                                      "bounds": list(HISTOGRAM_BOUNDS)})
            return cursor.fetchone()[0]
    return _fold_chunk_in_python(interaction_ids)


@transaction.atomic
def _fold_chunk_in_python(interaction_ids: list[str]) -> int:
    """_fold_chunk, one interaction at a time in Python (SQLite; and the reference the tests hold FOLD_SQL to)."""
    new = summaries_compute(interaction_ids)
    old = {s.pk: s for s in ConversationSummary.objects.select_for_update().filter(pk__in=list(new))}
    deltas: dict[tuple, dict] = defaultdict(dict)
    changed_summaries, new_summaries = [], []
    for pk, (tenant_id, hour, groups, figures) in new.items():
        before = old.get(pk)
        if before is not None and before.figures == figures and before.groups == groups and before.hour == hour:
            continue
        for dimension in ReportDimension.values:
            if before is not None:
                _add(deltas[(before.tenant_id, dimension, before.groups.get(dimension, ""), before.hour)],
                     before.figures, -1)
            _add(deltas[(tenant_id, dimension, groups[dimension], hour)], figures, +1)
        if before is None:
            new_summaries.append(ConversationSummary(interaction_id=pk, tenant_id=tenant_id, hour=hour,
                                                     figures=figures, groups=groups))
        else:
            before.tenant_id, before.hour, before.figures, before.groups = tenant_id, hour, figures, groups
            changed_summaries.append(before)
    deltas = {key: delta for key, delta in deltas.items() if not _is_zero(delta)}
    _rollups_add(deltas)
    ConversationSummary.objects.bulk_create(new_summaries)
    ConversationSummary.objects.bulk_update(changed_summaries, ["tenant_id", "hour", "figures", "groups"])
    return len(new_summaries) + len(changed_summaries)


def _rollups_add(deltas: dict[tuple, dict]) -> None:
    if not deltas:
        return
    hours = {key[3] for key in deltas}
    tenants = {key[0] for key in deltas}
    existing = {
        (row.tenant_id, row.dimension, row.key, row.hour): row
        for row in ReportRollup.objects.select_for_update().filter(tenant_id__in=tenants, hour__in=hours)
    }
    created, updated = [], []
    for key, delta in deltas.items():
        row = existing.get(key)
        if row is None:
            row = ReportRollup(tenant_id=key[0], dimension=key[1], key=key[2], hour=key[3])
            created.append(row)
        else:
            updated.append(row)
        for name in COUNTERS:
            setattr(row, name, getattr(row, name) + delta.get(name, 0))
        for name in ("failed_by_reason", *HISTOGRAMS):
            value = dict(getattr(row, name))
            histogram_add(value, delta.get(name, {}))
            setattr(row, name, value)
    ReportRollup.objects.bulk_create(created)
    ReportRollup.objects.bulk_update(updated, [*COUNTERS, "failed_by_reason", *HISTOGRAMS])


def _touched(since: datetime, until: datetime) -> set[str]:
    """The interactions that changed in [since, until): a message written or changed, begun, ended."""
    touched = set(Message.objects.filter(updated_at__gte=since, updated_at__lt=until).order_by()
                  .values_list("interaction_id", flat=True).distinct())
    touched.update(Interaction.objects.filter(created_at__gte=since, created_at__lt=until).order_by()
                   .values_list("pk", flat=True))
    touched.update(Interaction.objects.filter(state=InteractionState.ENDED, ended_at__gte=since, ended_at__lt=until)
                   .order_by().values_list("pk", flat=True))
    return touched


def _fold_all(ids: Iterable[str]) -> int:
    size = FOLD_SQL_CHUNK if connection.vendor == "postgresql" else FOLD_CHUNK
    changed = 0
    chunk: list[str] = []
    for pk in ids:
        chunk.append(pk)
        if len(chunk) >= size:
            changed += _fold_chunk(chunk)
            chunk = []
    if chunk:
        changed += _fold_chunk(chunk)
    return changed


def _every_interaction() -> Iterable[str]:
    """Every interaction's id, a page at a time (by primary key: no cursor held across the folds' commits)."""
    last = ""
    while True:
        page = list(Interaction.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:FOLD_CHUNK])
        yield from page
        if len(page) < FOLD_CHUNK:
            return
        last = page[-1]


class _FoldLock:
    """One fold at a time (a session-level advisory lock on PostgreSQL; SQLite's writes are serial already)."""

    def __enter__(self) -> bool:
        if connection.vendor != "postgresql":
            self.held = True
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [FOLD_LOCK_KEY])
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc_info) -> None:
        if self.held and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [FOLD_LOCK_KEY])


def _oldest_open_transaction() -> tuple[bool, datetime | None]:
    """(whether every other session of this database can be seen, when the oldest of their open transactions
    began). A session of another role is hidden (its times are NULL) without pg_read_all_stats."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction, a read would be kept for its length
        cursor.execute("SELECT bool_and(state IS NOT NULL), min(xact_start) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "AND backend_type = 'client backend'")
        seen, oldest = cursor.fetchone()
    return seen is not False, oldest


def _window(folded_until: datetime | None, now: datetime) -> tuple[datetime | None, datetime]:
    """[since, until) of the changes this fold reads (since None: everything), so that each change is read
    about once. A change is read when its row's time is in the window; a row whose transaction has not
    committed is invisible, so `until` stops at the start of the oldest transaction still open: what it writes
    is timed after that (give or take STAMP_MARGIN, read again by the next fold) and read once committed. A
    transaction open longer than FOLD_OVERLAP holds the figures back no further, and where the other sessions
    cannot be seen every transaction is taken to be that old. SQLite (one writer at a time, the embedded
    default) reads the last FOLD_OVERLAP again at each fold instead."""
    if connection.vendor != "postgresql":
        return (folded_until - FOLD_OVERLAP if folded_until is not None else None), now
    seen, oldest = _oldest_open_transaction()
    until = max(min(now, oldest or now), now - FOLD_OVERLAP) if seen else now - FOLD_OVERLAP
    if folded_until is None:
        return None, until
    return folded_until - STAMP_MARGIN, max(until, folded_until)


def reports_fold(*, now: datetime | None = None) -> int | None:
    """Fold what changed since the last fold into the reports' rollups (the first fold reads everything).
    The interactions whose figures changed; None when another fold is running."""
    with _FoldLock() as held:
        if not held:
            return None
        mark = ReportWatermark.objects.filter(pk=WATERMARK).first()
        since, until = _window(mark.folded_until if mark else None, now or timezone.now())
        if mark is None:
            changed = _fold_all(_every_interaction())
        else:
            changed = _fold_all(sorted(_touched(since, until)))
        ReportWatermark.objects.update_or_create(pk=WATERMARK, defaults={"folded_until": until,
                                                                          "folded_at": timezone.now()})
    if changed:
        logger.info("Reports: folded %s changed conversation(s).", changed)
    return changed


def reports_rebuild() -> int | None:
    """Throw the rollups away and fold every interaction again (`manage.py reports_fold --rebuild`): after a
    restore, or to count again with a new rule. Counts of purged conversations are lost."""
    with _FoldLock() as held:
        if not held:
            return None
        with transaction.atomic():
            ReportRollup.objects.all().delete()
            ConversationSummary.objects.all().delete()
            ReportWatermark.objects.filter(pk=WATERMARK).delete()
    return reports_fold()


def reports_folded_until() -> datetime | None:
    mark = ReportWatermark.objects.filter(pk=WATERMARK).first()
    return mark.folded_until if mark else None
