"""Send windows of campaigns (API.md, "Audiences, send windows and variants"): pure rules, no database.

A window is a time of day `from`..`to` on some days of the week, read in a zone: an IANA name, or
"recipient" (each recipient's own zone: services/send_windows.py finds it). A window whose `to` is earlier
than its `from` runs across midnight and belongs to the day it starts: `{"from": "22:00", "to": "06:00",
"days": ["fri"]}` is open from Friday 22:00 to Saturday 06:00. `to` itself is outside the window.

Times are wall-clock times of the zone, so daylight saving moves the window with the clock: a window from
09:00 opens at 09:00 local time on the day of the change as on any other day. A `from` that the clock skips
(02:30 on the night it jumps from 02:00 to 03:00) opens the window at the jump.
"""

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import phonenumbers
from phonenumbers import timezone as phone_time_zones

from channels_app.errors import InvalidFields

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RECIPIENT = "recipient"
UNKNOWN_ZONE = "Etc/Unknown"  # phonenumbers' answer for a number it cannot place


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_names() -> list[str]:
    """Every IANA zone name known here, sorted (what the admin offers beside "recipient")."""
    return sorted(_known_zones())


def is_time_zone(name) -> bool:
    """An IANA zone name of the system's (or tzdata's) database."""
    return isinstance(name, str) and name in _known_zones()


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time
    days: frozenset[int]  # 0 = Monday, as date.weekday()
    zone: str  # an IANA name, or RECIPIENT

    def as_dict(self) -> dict:
        return {"from": self.start.strftime("%H:%M"), "to": self.end.strftime("%H:%M"),
                "days": [DAYS[day] for day in sorted(self.days)], "timezone": self.zone}


def _clock(value, name: str, errors: dict) -> time | None:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":" or not (value[:2] + value[3:]).isdigit():
        errors[name] = ['A time of day as "HH:MM" (00:00 to 23:59).']
        return None
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 23 or minutes > 59:
        errors[name] = ['A time of day as "HH:MM" (00:00 to 23:59).']
        return None
    return time(hours, minutes)


def send_window_parse(value, *, field: str = "send_window") -> SendWindow | None:
    """A campaign's `send_window` as sent ({"from", "to", "days", "timezone"}), checked whole: every fault is
    named (`send_window.from`, `send_window.timezone`...) in one InvalidFields. None (or {}) means no window."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise InvalidFields({field: ['An object {"from": "09:00", "to": "20:00", "days": [...], "timezone": ...}.']})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(value) - {"from", "to", "days", "timezone"})
    if unknown:
        errors[f"{field}.{unknown[0]}"] = [f"Unknown key(s): {', '.join(map(str, unknown))}."]
    start = _clock(value.get("from"), f"{field}.from", errors)
    end = _clock(value.get("to"), f"{field}.to", errors)
    if start is not None and end is not None and start == end:
        errors[f"{field}.to"] = ["The window must not end when it starts: from and to are equal."]
    days = value.get("days", list(DAYS))
    if not isinstance(days, list) or not days or not all(isinstance(day, str) for day in days):
        errors[f"{field}.days"] = [f"A non-empty list of days among {', '.join(DAYS)}."]
        days = []
    elif wrong := [day for day in days if day.lower() not in DAYS]:
        errors[f"{field}.days"] = [f"Unknown day {wrong[0]!r}: one of {', '.join(DAYS)}."]
    zone = value.get("timezone", RECIPIENT)
    if zone != RECIPIENT and not is_time_zone(zone):
        errors[f"{field}.timezone"] = [f"Unknown time zone {str(zone)[:64]!r}: \"recipient\" or an IANA name such "
                                       "as Europe/Amsterdam."]
    if errors:
        raise InvalidFields(errors)
    return SendWindow(start=start, end=end, days=frozenset(DAYS.index(day.lower()) for day in days), zone=zone)


def send_window_from_stored(value: dict | None) -> SendWindow | None:
    """The window kept on a campaign (checked when it was stored)."""
    return send_window_parse(value) if value else None


def zone_of_phone(phone_number: str) -> str | None:
    """The zone of an E.164 number's place, from phonenumbers' geography (by country, and within a country of
    several zones by the number's prefix where the data tells it, such as the area code in the US). When
    several zones remain (a mobile number in Russia), the first of phonenumbers' list, which is sorted by
    name: the same every time. None when the number tells no zone."""
    if not phone_number:
        return None
    try:
        number = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [zone for zone in phone_time_zones.time_zones_for_number(number) if zone != UNKNOWN_ZONE]
    for zone in zones:
        if is_time_zone(zone):
            return zone
    return None


PHONE_PREFIX_DIGITS = 3  # digits after "+" that zones_of_phone_prefix groups numbers by


@functools.cache
def _zones_by_phone_prefix() -> dict[str, frozenset[str]]:
    from phonenumbers.tzdata import TIMEZONE_DATA

    grouped: dict[str, set[str]] = {f"{n:0{PHONE_PREFIX_DIGITS}d}": set() for n in range(10 ** PHONE_PREFIX_DIGITS)}
    for key, zones in TIMEZONE_DATA.items():
        known = {zone for zone in zones if zone != UNKNOWN_ZONE and is_time_zone(zone)}
        for prefix in ([key[:PHONE_PREFIX_DIGITS]] if len(key) >= PHONE_PREFIX_DIGITS
                       else [prefix for prefix in grouped if prefix.startswith(key)]):
            grouped[prefix] |= known
    return {prefix: frozenset(zones) for prefix, zones in grouped.items()}


def zones_of_phone_prefix(prefix: str) -> frozenset[str]:
    """Every zone zone_of_phone may give a number whose first PHONE_PREFIX_DIGITS digits (after "+") are
    `prefix`: the zones phonenumbers keeps for any longer prefix of it, and for its country code (a number of
    no geographical type). It gives None for the others (a number phonenumbers cannot place)."""
    return _zones_by_phone_prefix().get(prefix, frozenset())


def country_of_phone(phone_number: str) -> str:
    """The ISO 3166 region of an E.164 number ("US", "NL"), or "" when none: a valid number's own region, else
    the main region of its country calling code (+1: US, +7: RU, +44: GB)."""
    if not phone_number:
        return ""
    try:
        number = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(number)
    if not region or region == "001":
        region = phonenumbers.region_code_for_country_code(number.country_code)
    return "" if not region or region in ("ZZ", "001") else region


def _is_open_at_wall(window: SendWindow, wall: datetime) -> bool:
    moment, weekday = wall.time(), wall.weekday()
    if window.start < window.end:
        return weekday in window.days and window.start <= moment < window.end
    # Across midnight: the evening of a window day, or the morning after one.
    return (weekday in window.days and moment >= window.start) or (
        (weekday - 1) % 7 in window.days and moment < window.end)


def is_open(window: SendWindow, zone: str, at: datetime) -> bool:
    """Whether `at` (aware) is inside the window in `zone`."""
    return _is_open_at_wall(window, at.astimezone(zoneinfo.ZoneInfo(zone)))


def _wall(instant: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _opening(day: date, start: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of `day` whose wall-clock time in `zone` is `start` or later (UTC)."""
    naive = datetime.combine(day, start)
    candidates = [naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    existing = [instant for instant in candidates if _wall(instant, zone) == naive]
    if existing:
        return min(existing)  # twice on the night the clock goes back: the first time
    # Skipped by the clock: the window opens at the jump, found between the two readings of the gap.
    low, high = min(candidates), max(candidates)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _wall(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def next_opening(window: SendWindow, zone: str, at: datetime) -> datetime:
    """`at` when it is inside the window in `zone`, else the next instant the window opens (aware, UTC)."""
    tz = zoneinfo.ZoneInfo(zone)
    if _is_open_at_wall(window, at.astimezone(tz)):
        return at
    today = at.astimezone(tz).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() in window.days and (opening := _opening(day, window.start, tz)) > at:
            return opening
    raise AssertionError("a window with at least one day opens within eight days")  # pragma: no cover
