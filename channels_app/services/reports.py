"""The conversation and delivery reports (API.md, "Reports"), read from the
rollups that `services.rollups` keeps current: a few hundred rows per
request, whatever the number of messages.

A conversation's figures count in the hour it began (UTC); a period takes the
hours that begin inside it (from the start of `from`'s hour to the end of `to`'s). The
circuit's open time is the part of each outage (`ChannelOutage`) inside the
period, to the second.
"""

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from channels_app.csv_exports import SafeCSVWriter
from channels_app.errors import InvalidParameter
from channels_app.models import Channel, ChannelOutage, ReportDimension, ReportRollup
from channels_app.selectors import channel_list, tenant_ids_for
from channels_app.services.rollups import COUNTERS, histogram_add, percentile, reports_folded_until

DEFAULT_PERIOD = timedelta(days=7)
LONGEST_PERIOD = timedelta(days=400)
CONVERSATION_GROUPS = tuple(ReportDimension.values)
DELIVERY_GROUPS = (ReportDimension.CHANNEL,)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


def _moment(name: str, text: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight, UTC; a time without offset is UTC)."""
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime(day.year, day.month, day.day)
    except ValueError:
        value = None
    if value is None:
        raise InvalidParameter(f"{text!r} is not an ISO 8601 date or time.", field=name)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise InvalidParameter(f"{text!r} is out of range.", field=name) from error


def period_parse(*, start: str | None, end: str | None, now: datetime | None = None) -> Period:
    """`from` and `to` of a report: default the last 7 days; `from` after `to`, or a period longer than 400
    days, is refused naming `from`."""
    now = now or timezone.now()
    to = _moment("to", end) if end else now
    try:
        since = _moment("from", start) if start else to - DEFAULT_PERIOD
    except OverflowError as error:  # 7 days before the first day there is
        raise InvalidParameter(f"{end!r} is out of range.", field="to") from error
    if since > to:
        raise InvalidParameter("from is after to.", field="from")
    if to - since > LONGEST_PERIOD:
        raise InvalidParameter("The period is longer than 400 days.", field="from")
    return Period(since, to)


def _rollups(*, user, dimension: str, period: Period):
    rows = ReportRollup.objects.filter(
        dimension=dimension, hour__gte=period.start.replace(minute=0, second=0, microsecond=0), hour__lt=period.end)
    tenant_ids = tenant_ids_for(user)
    if tenant_ids is not None:
        rows = rows.filter(tenant_id__in=tenant_ids)
    return rows.order_by().values_list("key", *COUNTERS, "failed_by_reason", "first_response", "handle", "latency")


def _summed(rows) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for key, *values in rows:
        counters, (reasons, first_response, handle, latency) = values[: len(COUNTERS)], values[len(COUNTERS):]
        group = groups.setdefault(key, {"counts": dict.fromkeys(COUNTERS, 0), "failed_by_reason": {},
                                        "first_response": {}, "handle": {}, "latency": {}})
        for name, value in zip(COUNTERS, counters, strict=True):
            group["counts"][name] += value
        histogram_add(group["failed_by_reason"], reasons)
        histogram_add(group["first_response"], first_response)
        histogram_add(group["handle"], handle)
        histogram_add(group["latency"], latency)
    return groups


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _labels(dimension: str, keys, user) -> dict[str, str]:
    """What the admin shows for a group's key: a channel's name, an agent's user name."""
    if dimension == ReportDimension.CHANNEL:
        pks = [int(key) for key in keys if key.isdigit()]
        return {str(pk): f"{name} ({channel_id})" for pk, name, channel_id in
                Channel.objects.filter(pk__in=pks).values_list("pk", "name", "channel_id")}
    if dimension == ReportDimension.AGENT:
        pks = [int(key) for key in keys if key.isdigit()]
        labels = {str(pk): username for pk, username in
                  get_user_model().objects.filter(pk__in=pks).values_list("pk", "username")}
        labels[""] = "(not assigned)"
        return labels
    if dimension == ReportDimension.DISPOSITION:
        return {"": "(none)"}
    return {}


def _group_value(dimension: str, key: str):
    if dimension in (ReportDimension.CHANNEL, ReportDimension.AGENT):
        return int(key) if key.isdigit() else None
    return key


def conversations_report(*, user, group_by: str, period: Period) -> dict:
    """Per group: interactions begun in the period, their messages in and out, first response and handle
    times (p50, p90, seconds), those that ended without a reply."""
    if group_by not in CONVERSATION_GROUPS:
        raise InvalidParameter(f"group_by is one of {', '.join(CONVERSATION_GROUPS)}.", field="group_by")
    groups = _summed(_rollups(user=user, dimension=group_by, period=period))
    labels = _labels(group_by, groups, user)
    rows = []
    for key, group in sorted(groups.items(), key=lambda item: (-item[1]["counts"]["interactions"], item[0])):
        counts = group["counts"]
        if not counts["interactions"]:
            continue
        rows.append({
            "key": _group_value(group_by, key),
            "label": labels.get(key, key),
            "interactions": counts["interactions"],
            "messages_in": counts["messages_in"],
            "messages_out": counts["messages_out"],
            "first_response_seconds": {"p50": _rounded(percentile(group["first_response"], 0.5)),
                                       "p90": _rounded(percentile(group["first_response"], 0.9))},
            "handle_seconds": {"p50": _rounded(percentile(group["handle"], 0.5)),
                               "p90": _rounded(percentile(group["handle"], 0.9))},
            "ended_without_reply": counts["ended_without_reply"],
        })
    return _answer(group_by, period, rows)


def _open_seconds(*, channel_pks: list[int], period: Period, now: datetime) -> dict[int, float]:
    seconds: dict[int, float] = dict.fromkeys(channel_pks, 0.0)
    outages = ChannelOutage.objects.filter(channel_id__in=channel_pks, started_at__lt=period.end).exclude(
        ended_at__lt=period.start).values_list("channel_id", "started_at", "ended_at")
    for channel_pk, started_at, ended_at in outages:
        inside = min(ended_at or now, period.end) - max(started_at, period.start)
        seconds[channel_pk] += max(inside.total_seconds(), 0.0)
    return seconds


def deliveries_report(*, user, group_by: str, period: Period) -> dict:
    """Per channel: messages sent to customers in the period's conversations, delivered, read, failures by
    reason, webhook latency (p50, p99, ms) and how long the channel's circuit was open."""
    if group_by not in DELIVERY_GROUPS:
        raise InvalidParameter("group_by is channel.", field="group_by")
    groups = _summed(_rollups(user=user, dimension=ReportDimension.CHANNEL, period=period))
    channels = {str(pk): (pk, f"{name} ({channel_id})")
                for pk, name, channel_id in channel_list(user=user).values_list("pk", "name", "channel_id")}
    now = timezone.now()
    open_seconds = _open_seconds(channel_pks=[pk for pk, _ in channels.values()], period=period, now=now)
    rows = []
    for key, (pk, label) in sorted(channels.items(), key=lambda item: item[1][1]):
        group = groups.get(key)
        counts = group["counts"] if group else dict.fromkeys(COUNTERS, 0)
        if not counts["messages_out"] and not open_seconds.get(pk) and not (group and group["latency"]):
            continue
        latency = group["latency"] if group else {}
        rows.append({
            "key": pk,
            "label": label,
            "messages": counts["messages_out"],
            "delivered": counts["delivered"],
            "read": counts["read"],
            "failed_by_reason": dict(sorted((group or {}).get("failed_by_reason", {}).items())),
            "latency_ms": {"p50": _rounded(percentile(latency, 0.5)), "p99": _rounded(percentile(latency, 0.99))},
            "circuit_open_seconds": round(open_seconds.get(pk, 0.0)),
        })
    return _answer(group_by, period, rows)


def _answer(group_by: str, period: Period, rows: list[dict]) -> dict:
    folded = reports_folded_until()
    return {"from": period.start.isoformat(), "to": period.end.isoformat(), "group_by": group_by,
            "as_of": folded.isoformat() if folded else None, "groups": rows}


def report_csv(report: dict) -> str:
    """A report as CSV, one group a row; nested figures flattened (`first_response_seconds_p50`,
    `failed_by_reason` as `reason: n; ...`). Every text cell through the formula guard."""
    rows = report["groups"]
    columns: list[str] = ["group_by", "key", "label"]
    for row in rows:
        for name, value in row.items():
            if name in ("key", "label"):
                continue
            names = [f"{name}_{part}" for part in value] if isinstance(value, dict) and name != "failed_by_reason" \
                else [name]
            columns += [column for column in names if column not in columns]
    out = io.StringIO()
    writer = SafeCSVWriter(out)
    writer.writerow(columns)
    for row in rows:
        flat = {"group_by": report["group_by"]}
        for name, value in row.items():
            if name == "failed_by_reason":
                flat[name] = "; ".join(f"{reason}: {count}" for reason, count in value.items())
            elif isinstance(value, dict):
                flat.update({f"{name}_{part}": figure for part, figure in value.items()})
            else:
                flat[name] = value
        writer.writerow([flat.get(column, "") for column in columns])
    return out.getvalue()
