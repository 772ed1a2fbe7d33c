"""The campaign report (API.md "Reports": `GET /api/reports/campaigns/{id}/`)
and its drill-down (`GET /api/campaigns/{id}/recipients/?outcome=&reason=&variant=`).

Figures of the recipients a campaign reached (its message made, or the row
refused), by the hour it reached them and by variant:

* `total`, `refused`: written by the campaign batch and the audience upload
  as a CampaignReportDelta row (one per batch and variant);
* `sent` (accepted by the channel: sent, delivered or read), `delivered`
  (delivered or read), `read`, `failed` (failed or removed) and
  `failed_by_reason`: a CampaignReportDelta row appended by the database
  whenever a campaign message's status changes (migration 0028);
* `replied` (the customer wrote on the campaign's channel within 72 hours of
  the message; a stop or start keyword is no reply) and `opted_out` (the
  customer opted out of the channel within 72 hours): found by the fold in the
  customer messages and opt-outs that arrived since it last looked.

`campaign_reports_fold` (periodic, every REPORT_FOLD_SECONDS) sums the
appended changes into CampaignReportCount rows and deletes them, so the
requests that make messages only ever append a row, and a report reads a few
rows per hour of the campaign (hundreds for a campaign of a million
recipients) instead of its recipients. The figures are at most a fold behind.
On PostgreSQL the appended changes never leave the database: each batch is
deleted, summed and added to the counts by one statement.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Concat, NullIf, Substr, Trim
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from channels_app import options_catalog
from channels_app.csv_exports import SafeCSVWriter
from channels_app.errors import InvalidParameter
from channels_app.models import (
    Campaign,
    CampaignRecipient,
    CampaignReportCount,
    CampaignReportDelta,
    CampaignReportFold,
    Channel,
    ContactOptOut,
    Message,
    MessageDirection,
)
from channels_app.models.campaigns import NO_VARIANT, VARIANTS_MAX, CampaignVariant
from channels_app.services.reports import LONGEST_PERIOD, Period, period_parse  # noqa: F401  (one period rule)

REPLY_WINDOW = timedelta(hours=72)  # API.md: replied / opted out "within 72 hours of their message"
REPORT_FOLD_SECONDS = 15  # the periodic task's interval (services/schedules.py): how far behind figures are
INBOUND_SLACK = timedelta(seconds=30)  # read again each fold: a customer message committed after a later one
OPT_OUT_SLACK = 1000  # opt-out ids read again each fold, for the same reason
INBOUND_PER_FOLD = 50_000  # customer messages a fold reads at most (the next one goes on)
DELTAS_PER_STATEMENT = 10_000
CONTACTS_PER_QUERY = 1000

FIGURES = ("total", "refused", "sent", "delivered", "read", "replied", "opted_out", "failed")
DELTA_FIGURES = ("total", "refused", "sent", "delivered", "read", "failed")
OUTCOMES = (*FIGURES, "pending")
SENT_STATUSES = ("sent", "delivered", "read")
DELIVERED_STATUSES = ("delivered", "read")
FAILED_STATUSES = ("failed", "removed")


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# --- what the hot paths append ----------------------------------------------------------------------------------


def report_recipients_reached(*, campaign_id: int, reached: list[tuple[int | None, bool]], at: datetime) -> None:
    """The campaign reached these recipients at `at`: each (variant position or None, refused?). One delta row
    a variant, in the caller's transaction."""
    if not reached:
        return
    counts: dict = defaultdict(lambda: [0, 0])
    for variant, refused in reached:
        figures = counts[NO_VARIANT if variant is None else variant]
        figures[0] += 1
        figures[1] += int(refused)
    CampaignReportDelta.objects.bulk_create([
        CampaignReportDelta(campaign_id=campaign_id, variant=variant, hour=_hour(at), total=total, refused=refused)
        for variant, (total, refused) in counts.items()
    ])


def reason_key(*, status: str, reasons) -> str | None:
    """The reason a failed message counts under in `failed_by_reason`: its first reason's code and words
    ("350 Message not allowed."), as the trigger of migration 0028 computes it; None when not failed."""
    if status not in FAILED_STATUSES:
        return None
    first = reasons[0] if isinstance(reasons, list) and reasons and isinstance(reasons[0], dict) else {}
    code, words = first.get("code"), first.get("message")
    key = f"{'' if code is None else code} {'' if words is None else words}".strip(" ")[:200]
    return key or "unknown"


def _reason_expression():
    """reason_key in SQL, for the drill-down's `reason`."""
    first = KeyTransform("0", "message__reasons")
    text = TextField()
    joined = Concat(Coalesce(KeyTextTransform("code", first), Value(""), output_field=text), Value(" "),
                    Coalesce(KeyTextTransform("message", first), Value(""), output_field=text), output_field=text)
    return Coalesce(NullIf(Substr(Trim(joined), 1, 200), Value("")), Value("unknown"), output_field=text)


# --- the fold ---------------------------------------------------------------------------------------------------


@dataclass
class FoldResult:
    changes: int = 0  # delta rows folded
    replied: int = 0
    opted_out: int = 0


def campaign_reports_fold(*, now: datetime | None = None) -> FoldResult:
    """Bring the campaign reports up to date (periodic): the changes appended since the last fold, then the
    customer messages and opt-outs that arrived since, matched with the campaign messages they answer. One
    fold at a time (the fold row is locked); each step is idempotent, so a fold that dies is simply done again
    by the next."""
    now = now or timezone.now()
    result = FoldResult()
    with transaction.atomic():
        CampaignReportFold.objects.get_or_create(pk=1)
        state = CampaignReportFold.objects.select_for_update().get(pk=1)
        result.changes = _fold_changes()
        result.replied, result.opted_out = _fold_answers(state, now)
        state.folded_at = now
        state.save()
    return result


def _fold_changes() -> int:
    """Delete the appended changes and add them to the counts, a batch a statement (DELETE ... RETURNING: a
    change committed meanwhile stays for the next fold, never lost nor counted twice). On PostgreSQL the batch
    is summed and added by the same statement, the rows never leaving the database."""
    table = connection.ops.quote_name(CampaignReportDelta._meta.db_table)
    columns = ["campaign_id", "variant", "hour", "reason", *DELTA_FIGURES]
    batch = f"SELECT id FROM {table} ORDER BY id LIMIT %s"
    if connection.vendor == "postgresql":
        return _fold_changes_in_sql(table, batch)
    sql = (f"DELETE FROM {table} WHERE id IN ({batch}) "
           f"RETURNING {', '.join(connection.ops.quote_name(name) for name in columns)}")
    folded = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [DELTAS_PER_STATEMENT])
            rows = cursor.fetchall()
        if not rows:
            return folded
        folded += len(rows)
        sums: dict = defaultdict(lambda: dict.fromkeys(DELTA_FIGURES, 0))
        for campaign_id, variant, hour, reason, *values in rows:
            figures = sums[(campaign_id, variant, _as_hour(hour), reason)]
            for name, value in zip(DELTA_FIGURES, values, strict=True):
                figures[name] += value
        _counts_add(sums)
        if len(rows) < DELTAS_PER_STATEMENT:
            return folded


def _fold_changes_in_sql(table: str, batch: str) -> int:
    """_fold_changes's batches, each summed per (campaign, variant, hour, reason) and upserted into the counts
    (their unique constraint) by the statement that deletes them; changes of a deleted campaign dropped."""
    counts = connection.ops.quote_name(CampaignReportCount._meta.db_table)
    campaigns = connection.ops.quote_name(Campaign._meta.db_table)
    sums = ", ".join(f"sum({name}) AS {name}" for name in DELTA_FIGURES)
    sql = f"""
        WITH gone AS (DELETE FROM {table} WHERE id IN ({batch}) RETURNING campaign_id, variant, hour, reason,
                      {", ".join(DELTA_FIGURES)}),
        added AS (
            INSERT INTO {counts} (campaign_id, variant, hour, reason, {", ".join(FIGURES)})
            SELECT campaign_id, variant, hour, reason,
                   {", ".join(name if name in DELTA_FIGURES else "0" for name in FIGURES)}
            FROM (SELECT campaign_id, variant, date_trunc('hour', hour) AS hour, reason, {sums} FROM gone
                  WHERE campaign_id IN (SELECT id FROM {campaigns}) GROUP BY 1, 2, 3, 4) AS summed
            ON CONFLICT (campaign_id, hour, variant, reason) DO UPDATE SET
                {", ".join(f"{name} = {counts}.{name} + EXCLUDED.{name}" for name in DELTA_FIGURES)}
        )
        SELECT count(*) FROM gone"""
    folded = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [DELTAS_PER_STATEMENT])
            batch_size = cursor.fetchone()[0]
        folded += batch_size
        if batch_size < DELTAS_PER_STATEMENT:
            return folded


def _as_hour(value) -> datetime:
    """A delta's hour as the database returns it (SQLite: text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return _hour(value.astimezone(UTC))


def _counts_add(sums: dict) -> None:
    """Add {(campaign_id, variant, hour, reason): {figure: n}} to the counts (only the fold writes them: it
    holds the fold row's lock). Changes of a campaign deleted meanwhile are dropped with it."""
    campaigns = set(Campaign.objects.filter(pk__in={key[0] for key in sums}).values_list("pk", flat=True))
    keys = [key for key in sums if key[0] in campaigns]
    if not keys:
        return
    wanted = Q()
    for campaign_id, variant, hour, reason in keys:
        wanted |= Q(campaign_id=campaign_id, variant=variant, hour=hour, reason=reason)
    existing = {(row.campaign_id, row.variant, row.hour, row.reason): row
                for row in CampaignReportCount.objects.filter(wanted)}
    changed, new = [], []
    for key in keys:
        row = existing.get(key)
        if row is None:
            campaign_id, variant, hour, reason = key
            row = CampaignReportCount(campaign_id=campaign_id, variant=variant, hour=hour, reason=reason)
            new.append(row)
        else:
            changed.append(row)
        for name, value in sums[key].items():
            setattr(row, name, getattr(row, name) + value)
    CampaignReportCount.objects.bulk_create(new)
    if changed:
        CampaignReportCount.objects.bulk_update(changed, list(FIGURES))


def _keywords(channel: Channel, name: str) -> set[str]:
    from channels_app.services.options import option_value

    value = option_value(section=options_catalog.DMS, name=name, channel=channel) or ""
    return {word.strip().casefold() for word in value.split(",") if word.strip()}


def _fold_answers(state: CampaignReportFold, now: datetime) -> tuple[int, int]:
    """Replies and opt-outs since the last fold: the customer messages that arrived (a stop keyword is an
    opt-out, a start keyword neither), and the opt-outs made any way (keyword, API, admin). A recipient
    replied (opted out) when the first of them came within REPLY_WINDOW after the campaign reached it."""
    since = (state.inbound_until or now - REPLY_WINDOW) - INBOUND_SLACK
    opt_outs = list(ContactOptOut.objects.filter(pk__gt=state.opt_out_after_id - OPT_OUT_SLACK, created_at__gt=since)
                    .values_list("pk", "contact_id", "channel_id", "created_at"))
    if opt_outs:
        state.opt_out_after_id = max(state.opt_out_after_id, max(row[0] for row in opt_outs))
    found = (0, 0)
    while True:  # a chunk of customer messages at a time, until the fold has caught up with them
        inbound = list(
            Message.objects.filter(direction=MessageDirection.INBOUND, created_at__gt=since, created_at__lte=now)
            .order_by("created_at").values_list("interaction__contact_id", "channel_id", "created_at", "text")
            [:INBOUND_PER_FOLD]
        )
        chunk = _answers_match(inbound, opt_outs)
        found, opt_outs = (found[0] + chunk[0], found[1] + chunk[1]), []
        if len(inbound) < INBOUND_PER_FOLD:
            state.inbound_until = now
            return found
        since = inbound[-1][2]  # (a message of the same microsecond beyond the chunk: read the next time)


def _answers_match(inbound: list, opt_outs: list) -> tuple[int, int]:
    """Mark the recipients these customer messages and opt-outs answer; (replies, opt-outs) found."""
    keywords: dict[int, tuple[set, set]] = {}
    channels = {channel.pk: channel for channel in
                Channel.objects.filter(pk__in={row[1] for row in inbound})}
    replies: dict = defaultdict(list)  # (contact, channel) -> times
    stops: dict = defaultdict(list)
    for contact_id, channel_id, at, text in inbound:
        if channel_id not in keywords:
            keywords[channel_id] = (_keywords(channels[channel_id], "opt-out-keywords"),
                                    _keywords(channels[channel_id], "opt-in-keywords"))
        stop, start = keywords[channel_id]
        word = (text or "").strip().casefold()
        if word in stop:
            stops[(contact_id, channel_id)].append(at)
        elif word not in start:
            replies[(contact_id, channel_id)].append(at)
    for _pk, contact_id, channel_id, at in opt_outs:
        stops[(contact_id, channel_id)].append(at)
    pairs = set(replies) | set(stops)
    if not pairs:
        return 0, 0
    every = [at for times in (*replies.values(), *stops.values()) for at in times]
    earliest, latest = min(every), max(every)
    contacts = sorted({contact for contact, _ in pairs})
    found_replies, found_stops = 0, 0
    updates, sums = [], defaultdict(lambda: {"replied": 0, "opted_out": 0})
    for start in range(0, len(contacts), CONTACTS_PER_QUERY):
        candidates = (
            CampaignRecipient.objects.filter(
                message__interaction__contact_id__in=contacts[start:start + CONTACTS_PER_QUERY],
                message__channel_id__in={channel for _, channel in pairs},
                reached_at__gte=earliest - REPLY_WINDOW, reached_at__lt=latest)
            .filter(Q(replied_at__isnull=True) | Q(opted_out_at__isnull=True))
            .values_list("pk", "campaign_id", "message__channel_id", "message__interaction__contact_id", "variant",
                         "reached_at", "replied_at", "opted_out_at")
        )
        for pk, campaign_id, channel_id, contact_id, variant, reached_at, replied_at, opted_out_at in candidates:
            key = (contact_id, channel_id)
            new_reply = replied_at or _first_within(replies.get(key, ()), reached_at)
            new_stop = opted_out_at or _first_within(stops.get(key, ()), reached_at)
            if (new_reply, new_stop) == (replied_at, opted_out_at):
                continue
            updates.append({"pk": pk, "replied_at": new_reply, "opted_out_at": new_stop})
            figures = sums[(campaign_id, NO_VARIANT if variant is None else variant, _hour(reached_at), "")]
            if new_reply != replied_at:
                figures["replied"] += 1
                found_replies += 1
            if new_stop != opted_out_at:
                figures["opted_out"] += 1
                found_stops += 1
    if updates:
        from channels_app.bulk import bulk_update_rows

        bulk_update_rows(CampaignRecipient, updates, ["replied_at", "opted_out_at"])
        _counts_add(sums)
    return found_replies, found_stops


def _first_within(times, reached_at: datetime) -> datetime | None:
    inside = [at for at in times if reached_at < at <= reached_at + REPLY_WINDOW]
    return min(inside) if inside else None


# --- reading ----------------------------------------------------------------------------------------------------


def _empty() -> dict:
    return {**dict.fromkeys(FIGURES, 0), "failed_by_reason": {}}


def campaign_report(*, campaign: Campaign, period: Period) -> dict:
    """The figures of the recipients the campaign reached in the period, and the same for each variant."""
    rows = (CampaignReportCount.objects.filter(campaign=campaign, hour__gte=_hour(period.start),
                                               hour__lt=period.end)
            .values_list("variant", "reason", *FIGURES))
    overall, by_variant = _empty(), defaultdict(_empty)
    for variant, reason, *values in rows:
        for figures in (overall, by_variant[variant]) if variant != NO_VARIANT else (overall,):
            if reason:
                figures["failed_by_reason"][reason] = figures["failed_by_reason"].get(reason, 0) + values[-1]
            else:
                for name, value in zip(FIGURES, values, strict=True):
                    figures[name] += value
    for figures in (overall, *by_variant.values()):
        figures["failed_by_reason"] = {reason: n for reason, n in sorted(figures["failed_by_reason"].items(),
                                                                         key=lambda item: (-item[1], item[0]))
                                       if n}
    variants = [
        {"variant": variant.position, "label": variant.label, "standard_response": variant.standard_response_id,
         "share": variant.share, **by_variant[variant.position]}
        for variant in CampaignVariant.objects.filter(campaign=campaign).order_by("position")
    ]
    folded_at = CampaignReportFold.objects.filter(pk=1).values_list("folded_at", flat=True).first()
    return {"campaign": campaign.pk, "from": period.start.isoformat(), "to": period.end.isoformat(),
            "as_of": folded_at.isoformat() if folded_at else None, **overall, "variants": variants}


CSV_COLUMNS = ["variant", "standard_response", "share", *FIGURES]


def campaign_report_csv(report: dict) -> str:
    """The report one row for the campaign ("all") and one a variant; a column a failure reason."""
    import io

    reasons = list(report["failed_by_reason"])
    out = io.StringIO()
    writer = SafeCSVWriter(out)  # a reason comes from the third party: never a formula
    writer.writerow([*CSV_COLUMNS, *(f"failed: {reason}" for reason in reasons)])
    for label, response, share, figures in [("all", "", "", report),
                                            *((v["label"], v["standard_response"], v["share"], v)
                                              for v in report["variants"])]:
        writer.writerow([label, response, share, *(figures[name] for name in FIGURES),
                         *(figures["failed_by_reason"].get(reason, 0) for reason in reasons)])
    return out.getvalue()


# --- the drill-down ---------------------------------------------------------------------------------------------


def campaign_recipients_behind(*, campaign: Campaign, outcome: str | None = None, reason: str | None = None,
                               variant: str | None = None, period: Period | None = None):
    """The recipients behind a figure of the report: `outcome` a figure's name (or `pending`: not reached, or
    its message not yet accepted), `reason` a key of `failed_by_reason` (failed recipients only), `variant` a
    variant's position (0 to 4) or letter (A to E), `period` as the report's (by the hour reached).
    Refused: InvalidParameter naming the parameter."""
    recipients = campaign.recipients.all()
    if outcome:
        if outcome not in OUTCOMES:
            raise InvalidParameter(f"outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}.", field="outcome")
        recipients = recipients.filter({
            "total": Q(reached_at__isnull=False),
            "refused": ~Q(error=""),
            "sent": Q(message__status__in=SENT_STATUSES),
            "delivered": Q(message__status__in=DELIVERED_STATUSES),
            "read": Q(message__status="read"),
            "replied": Q(replied_at__isnull=False),
            "opted_out": Q(opted_out_at__isnull=False),
            "failed": Q(message__status__in=FAILED_STATUSES),
            "pending": Q(error="") & (Q(message__isnull=True) | Q(message__status="queued")),
        }[outcome])
    if reason:
        if outcome not in (None, "", "failed"):
            raise InvalidParameter("reason goes with outcome=failed only.", field="reason")
        recipients = (recipients.filter(message__status__in=FAILED_STATUSES)
                      .alias(reason_key=_reason_expression()).filter(reason_key=reason[:200]))
    if variant not in (None, ""):
        position = _variant_position(variant)
        recipients = recipients.filter(variant=position)
    if period is not None:
        # the hours the report takes: those that begin inside the period, each whole
        end = _hour(period.end) if period.end == _hour(period.end) else _hour(period.end) + timedelta(hours=1)
        recipients = recipients.filter(reached_at__gte=_hour(period.start), reached_at__lt=end)
    return recipients


def _variant_position(text: str) -> int:
    text = text.strip()
    letters = "ABCDE"[:VARIANTS_MAX]
    if len(text) == 1 and text in "0123456789"[:VARIANTS_MAX]:  # (not str.isdigit: "²" is a digit to it)
        return int(text)
    if len(text) == 1 and text.upper() in letters:
        return letters.index(text.upper())
    raise InvalidParameter(f"variant is a variant's position (0 to {VARIANTS_MAX - 1}) or letter "
                           f"({letters[0]} to {letters[-1]}), not {text!r}.", field="variant")
