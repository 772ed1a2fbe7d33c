"""The WhatsApp 24-hour rule (WhatsApp guide, "Sending outbound messages" and
"Interactive messages"): a business may send regular messages only within
24 hours (`whatsappsession.free-msg-timespan` minutes when monitoring is on)
of the customer's last message; outside that window only notification
templates. Reply buttons and list messages "cannot be used as
notifications": they are refused outside the window on every path (agent
messages and new sessions: 409; InviteToChat: 920; campaigns: the recipient
is refused)."""

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Max

from channels_app.choices import ContentType, MediaType
from channels_app.models import Channel, Interaction
from channels_app.options_catalog import IW
from channels_app.services.options import option_value, session_option

WHATSAPP_WINDOW_MINUTES = 24 * 60
# Content that is itself an approved template may be sent at any time.
NOTIFICATION_TYPES = {ContentType.NOTIFICATION, ContentType.RICH_MEDIA}
# "Reply Buttons or List Messages cannot be used as notifications."
INTERACTIVE_TYPES = {ContentType.REPLY_BUTTONS, ContentType.LIST}
INTERACTIVE_OUTSIDE_WINDOW = (
    "Reply buttons and list messages can only be sent within 24 hours of the customer's last message "
    "(the customer's window is closed)."
)


def _minutes(monitoring: bool, timespan: int) -> int:
    return timespan if monitoring else WHATSAPP_WINDOW_MINUTES


def window_minutes_for_channel(*, channel: Channel) -> int:
    """The window's length for a session created now on `channel`."""
    return _minutes(
        option_value(section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring", channel=channel),
        option_value(section=IW, name="whatsappsession.free-msg-timespan", channel=channel),
    )


def window_minutes_for_session(*, interaction: Interaction) -> int:
    """The window's length for an existing session (its kept option values)."""
    return _minutes(
        session_option(interaction=interaction, section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring"),
        session_option(interaction=interaction, section=IW, name="whatsappsession.free-msg-timespan"),
    )


def customer_windows_close_at(*, channel: Channel, contact_ids: list[int], minutes: int) -> dict[int, datetime]:
    """When each customer's window on `channel` closes, from their last message in any of their sessions
    there (one query for all; a contact who never wrote has no entry: its window is closed)."""
    rows = (
        Interaction.objects.filter(channel=channel, contact_id__in=contact_ids, last_customer_message_at__isnull=False)
        .values("contact_id").annotate(last=Max("last_customer_message_at")).order_by()
    )
    return {row["contact_id"]: row["last"] + timedelta(minutes=minutes) for row in rows}


CUSTOMER_LAST_MESSAGE_SQL = (f"SELECT max(last_customer_message_at) FROM {Interaction._meta.db_table} "
                             "WHERE channel_id = %s AND contact_id = %s")


def customer_window_closes_at(*, interaction: Interaction) -> datetime | None:
    """End of the free-message window of the session's customer on its channel (None: never opened). On
    PostgreSQL `customer_windows_close_at`'s query for one contact, written out (CUSTOMER_LAST_MESSAGE_SQL):
    on an agent's message the ORM's compile of it cost more than the query."""
    minutes = window_minutes_for_session(interaction=interaction)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(CUSTOMER_LAST_MESSAGE_SQL, [interaction.channel_id, interaction.contact_id])
            (last,) = cursor.fetchone()
        return None if last is None else last + timedelta(minutes=minutes)
    return customer_windows_close_at(
        channel=interaction.channel, contact_ids=[interaction.contact_id], minutes=minutes
    ).get(interaction.contact_id)


def window_applies(channel: Channel) -> bool:
    return channel.media_type == MediaType.WHATSAPP


def is_open(closes_at: datetime | None, now: datetime) -> bool:
    return closes_at is not None and now < closes_at
