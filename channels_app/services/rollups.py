"""The reports' figures, kept current off the hot paths (API.md, "Reports";
issue 27's cost rule).

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
rollups as the difference, so folding an interaction twice changes nothing
(each window overlaps the last by FOLD_OVERLAP, for transactions that
committed late). The figures are at most a fold period behind the messages.

`ReportRollup` rows hold, per tenant, group and hour the interaction began,
the sums and fixed-bucket histograms (HISTOGRAM_* below) of first response
time, handle time and webhook latency: any period's percentile is read from
the summed buckets of its hours, a few hundred rows whatever the number of
messages. Histograms rather than per-interaction rows because a percentile
over a week of summaries would read a row per conversation (millions); the
buckets are 2^(1/4) apart, and a percentile is the middle of its bucket: within 9% of the exact one.
"""

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone

from channels_app.models import (
    ConversationSummary,
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
FOLD_CHUNK = 1000  # interactions re-read per transaction
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


def bucket_of(value: float) -> int:
    if value < HISTOGRAM_BASE:
        return 0
    bucket = math.floor(HISTOGRAM_STEPS_PER_DOUBLING * math.log2(value / HISTOGRAM_BASE)) + 1
    return min(bucket, HISTOGRAM_LAST)


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


# --- folding ----------------------------------------------------------------------------------------------------


def _add(delta: dict, figures: dict, sign: int) -> None:
    for name in COUNTERS:
        delta[name] = delta.get(name, 0) + sign * figures.get(name, 0)
    for name in ("failed_by_reason", *HISTOGRAMS):
        histogram_add(delta.setdefault(name, {}), figures.get(name, {}), sign)


def _is_zero(delta: dict) -> bool:
    return not any(delta.get(name) for name in COUNTERS) and not any(
        delta.get(name) for name in ("failed_by_reason", *HISTOGRAMS))


@transaction.atomic
def _fold_chunk(interaction_ids: list[str]) -> int:
    """Re-read these interactions and add what changed to the rollups, in one transaction. The interactions
    whose figures changed."""
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
    changed = 0
    chunk: list[str] = []
    for pk in ids:
        chunk.append(pk)
        if len(chunk) >= FOLD_CHUNK:
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


def reports_fold(*, now: datetime | None = None) -> int | None:
    """Fold what changed since the last fold into the reports' rollups (the first fold reads everything).
    The interactions whose figures changed; None when another fold is running."""
    until = now or timezone.now()
    with _FoldLock() as held:
        if not held:
            return None
        mark = ReportWatermark.objects.filter(pk=WATERMARK).first()
        if mark is None:
            changed = _fold_all(_every_interaction())
        else:
            changed = _fold_all(sorted(_touched(mark.folded_until - FOLD_OVERLAP, until)))
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
