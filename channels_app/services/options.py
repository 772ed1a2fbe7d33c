"""Option values: global values with per-channel overrides, validated against
the catalog (`channels_app.options_catalog`), and `.cfg` (INI) import/export
in the format of the Genesys driver's option files."""

import configparser
import io
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from channels_app import options_catalog
from channels_app.errors import InvalidParameter
from channels_app.models import Channel, Endpoint, OptionValue, Tenant
from channels_app.option_values import (  # the reads live below the services (option_values.py)
    all_option_values,
    invalidate_option_cache,
    option_definition_get,
    option_value,
)
from channels_app.option_values import session_option as session_option  # the services' name for it too
from channels_app.options_catalog import OptionDefinition
from channels_app.text_rules import text_rule_broken_line
from channels_app.validators import validate_queue_key

# In a `[channel-*]` section, `endpoints` lists the channel's chat queue keys,
# comma-separated; the WhatsApp guide writes them with a leading comma
# (",1:session-chat"), so empty items are ignored.
ENDPOINTS_KEY = "endpoints"


@dataclass(frozen=True)
class EffectiveOption:
    definition: OptionDefinition
    value: str
    channel: Channel | None
    overridden: bool  # True when the value comes from the channel's override


def options_list(*, section: str | None = None, channel: Channel | None = None) -> list[EffectiveOption]:
    """Every option of a section (or all), with its effective value: the
    channel's override, else the global value, else the default."""
    if section is not None and section not in options_catalog.SECTIONS:
        raise InvalidParameter(
            f"Unknown section {section!r}; sections: {', '.join(options_catalog.SECTIONS)}.", field="section"
        )
    rows = OptionValue.objects.filter(Q(channel__isnull=True) | Q(channel=channel))
    if section is not None:
        rows = rows.filter(section=section)
    global_values, channel_values = {}, {}
    for row in rows:
        (channel_values if row.channel_id else global_values)[(row.section, row.name)] = row.value
    result = []
    for definition in options_catalog.OPTIONS:
        if section is not None and definition.section != section:
            continue
        if definition.key in channel_values:
            result.append(EffectiveOption(definition, channel_values[definition.key], channel, True))
        else:
            value = global_values.get(definition.key, definition.default)
            result.append(EffectiveOption(definition, value, channel, False))
    return result


# --- when a change takes effect ---------------------------------------------------
# The options the server reads for a session whose catalog entry says a change takes effect "at the next
# interaction" or "when the next chat session is created": their values are kept with each session when it
# is created (Interaction.session_options), so a change reaches the sessions created after it and never an
# open one. Options that take effect "immediately" are read at each use (`option_value`).
# (`inbound-route-by-call`, also a next-session option, is kept as the session's queue.)
SESSION_OPTIONS: tuple[tuple[str, str], ...] = (
    (options_catalog.IW, "whatsappsession.max-text-message-size"),
    (options_catalog.IW, "whatsappsession.enable-free-msg-timespan-monitoring"),
    (options_catalog.IW, "whatsappsession.free-msg-timespan"),
    (options_catalog.IW, "whatsappsession.default-notification-text"),
    (options_catalog.IW, "whatsappsession.default-notification-id"),
    (options_catalog.IW, "whatsappsession.default-notification-language"),
    (options_catalog.IW, "whatsappsession.transcript-interactions-count"),
    (options_catalog.IW, "whatsappsession.show-cross-channel-messages"),
    (options_catalog.IW, "whatsappsession.message-delay-timespan"),
    (options_catalog.DMS, "session-shutdown-timeout"),
)
_snapshots: dict = {"values": None, "by_channel": {}}


def session_options_snapshot(*, channel: Channel) -> dict:
    """The session-scoped option values of `channel`, by option name, for a
    new session (no query: built from the cached values, once per channel
    until they are reloaded). The caller must not change the dict."""
    values = all_option_values()
    if _snapshots["values"] is not values:  # reloaded: the snapshots built from the old values are stale
        _snapshots.update(values=values, by_channel={})
    snapshot = _snapshots["by_channel"].get(channel.pk)
    if snapshot is None:
        snapshot = {name: option_value(section=section, name=name, channel=channel)
                    for section, name in SESSION_OPTIONS}
        _snapshots["by_channel"][channel.pk] = snapshot
    return snapshot


def option_set(*, section: str, name: str, value, channel: Channel | None = None) -> OptionValue:
    """Set an option globally, or override it for a channel. An invalid value
    is refused (InvalidParameter naming `value`) with the valid values."""
    option_definition_get(section=section, name=name)
    with transaction.atomic():
        rows = OptionValue.objects.select_for_update().filter(section=section, name=name, channel=channel)
        row = rows.order_by("pk").first()  # no ordering join: FOR UPDATE refuses outer joins
        if row is None:
            row = OptionValue(section=section, name=name, channel=channel)
        row.value = "" if value is None else value
        try:
            row.full_clean(validate_unique=False, validate_constraints=False)
            _check_queue_key_tenant_exists(row)
        except ValidationError as error:
            messages = error.message_dict.get("value") or error.messages
            raise InvalidParameter(" ".join(messages), field="value") from error
        row.save()
    transaction.on_commit(invalidate_option_cache)
    return row


def _check_queue_key_tenant_exists(row: OptionValue) -> None:
    """A global queue key value names an existing tenant (a channel's override is of the channel's own,
    which the row checks itself)."""
    definition = row.definition
    if definition is None or definition.type != options_catalog.OptionType.QUEUE_KEY or not row.value:
        return
    tenant_id = int(options_catalog.QUEUE_KEY_PATTERN.match(row.value)["tenant"])
    if row.channel is None and not Tenant.objects.filter(pk=tenant_id).exists():
        raise ValidationError({"value": [f"Tenant {tenant_id} of queue key {row.value!r} does not exist."]})


def option_reset(*, section: str, name: str, channel: Channel | None = None) -> None:
    """Remove a channel's override, or set the global value back to the default."""
    definition = option_definition_get(section=section, name=name)
    if channel is None:
        option_set(section=section, name=name, value=definition.default)
    else:
        OptionValue.objects.filter(section=section, name=name, channel=channel).delete()


def options_ensure_catalog() -> int:
    """Create the global row of every catalog option that has none (with its default)."""
    existing = set(OptionValue.objects.filter(channel__isnull=True).values_list("section", "name"))
    missing = [
        OptionValue(section=option.section, name=option.name, value=option.default)
        for option in options_catalog.OPTIONS
        if option.key not in existing
    ]
    OptionValue.objects.bulk_create(missing, ignore_conflicts=True)
    invalidate_option_cache()
    return len(missing)


# --- .cfg import and export ----------------------------------------------------


@dataclass
class ImportReport:
    set: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    dry_run: bool = False  # validated and reported, nothing written

    def as_text(self) -> str:
        lines = [f"set: {len(self.set)}, skipped: {len(self.skipped)}, refused: {len(self.refused)}"
                 + (" (dry run: nothing written)" if self.dry_run else "")]
        lines += [f"  set      {line}" for line in self.set]
        lines += [f"  skipped  {line}" for line in self.skipped]
        lines += [f"  refused  {line}" for line in self.refused]
        return "\n".join(lines)


def _parse_cfg(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # option names are case-sensitive
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise InvalidParameter(f"The file is not a valid .cfg (INI) file: {error.message}", field="file") from error
    return parser


def _section_target(
    section_name: str, channel: Channel | None, channels, channel_sections: Channel | None = None
) -> tuple[str | None, Channel | None]:
    """Map a file's section to (catalog section, channel).

    `[channel]` holds the global values of the channel options. `[channel-<anything>]`
    is the DMS channel section: with `channel` it applies to that channel; else to
    `channel_sections` when given; else to the channel whose channel id is the
    section name, or the name without `channel-` (as `section_for_channel` writes
    a third-party id such as `0123456789`). A `[channel-*]` section whose channel
    is found none of these ways has channel None: its values belong to a channel
    this server does not have, and are never made global.
    """
    if section_name == options_catalog.CHANNEL:
        return options_catalog.CHANNEL, channel
    if section_name.startswith("channel-"):
        if channel is None:
            channel = channel_sections or _channel_of_section(section_name, channels)
        return options_catalog.CHANNEL, channel
    if section_name in options_catalog.SECTIONS:
        return section_name, channel
    return None, channel


def _channel_of_section(section_name: str, channels) -> Channel | None:
    bare = section_name.removeprefix("channel-")
    found = {found.channel_id: found for found in channels.filter(channel_id__in=[section_name, bare])}
    return found.get(section_name) or found.get(bare)


def options_import_cfg(
    *,
    text: str,
    channel: Channel | None = None,
    channels=None,
    channel_sections: Channel | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import a `.cfg` option file. Every value is validated first; the valid
    ones are written in one transaction; the report lists what was set (and
    where: globally or on which channel), skipped (unknown section or option)
    and refused (invalid value; a `[channel-<id>]` section whose channel does
    not exist, whole and named: its values are never written as global ones).
    `channel`: every value becomes an override of that channel (`--channel`); `channel_sections`: the channel of the
    `[channel-*]` sections only, the others stay global. `channels`: the
    channels a `[channel-<id>]` section may name (the importing user's; all
    when not given). `dry_run`: validate and report, write nothing.
    A file that breaks the text rules (a NUL character) is refused whole."""
    if found := text_rule_broken_line(text):
        line, broken = found
        raise InvalidParameter(f"Line {line} of the file holds {broken}, which is not accepted.", field="file")
    channels = Channel.objects.all() if channels is None else channels
    parser = _parse_cfg(text)
    report = ImportReport()
    pending: list[OptionValue] = []
    pending_endpoints: list[tuple[Channel, list[str]]] = []
    for section_name in parser.sections():
        section, target_channel = _section_target(section_name, channel, channels, channel_sections)
        if section_name.startswith("channel-") and target_channel is None:
            count = len(parser.items(section_name))
            report.refused.append(
                f"[{section_name}]: no channel has the id {section_name}; its {count} "
                f"{'value was' if count == 1 else 'values were'} not imported (choose the channel of the "
                "[channel-…] sections, or create the channel first)"
            )
            continue
        scope = f" -> channel {target_channel.channel_id}" if target_channel else " -> global"
        for name, raw in parser.items(section_name):
            where = f"[{section_name}] {name}{scope}"
            if section == options_catalog.CHANNEL and name == ENDPOINTS_KEY:
                if target_channel is None:
                    report.skipped.append(f"[{section_name}] {name}: endpoints belong to a channel (write them in "
                                          "its [channel-<id>] section)")
                    continue
                keys = [key.strip() for key in raw.split(",") if key.strip()]
                try:
                    for key in keys:
                        validate_queue_key(key, tenant_id=target_channel.tenant_id)
                except ValidationError as error:
                    report.refused.append(f"{where}: {' '.join(error.messages)}")
                    continue
                pending_endpoints.append((target_channel, keys))
                report.set.append(f"{where} = {', '.join(keys)}")
                continue
            definition = options_catalog.get_option(section, name) if section else None
            if definition is None:
                report.skipped.append(f"[{section_name}] {name}: not an option of this server")
                continue
            row = OptionValue(section=section, name=name, channel=target_channel, value=raw)
            try:
                row.full_clean(validate_unique=False, validate_constraints=False)
                _check_queue_key_tenant_exists(row)
            except ValidationError as error:
                report.refused.append(f"{where}: {' '.join(error.message_dict.get('value', error.messages))}")
                continue
            pending.append(row)
            report.set.append(f"{where} = {row.value}")
    if dry_run:
        report.dry_run = True
        return report
    with transaction.atomic():
        for row in pending:
            OptionValue.objects.update_or_create(
                section=row.section, name=row.name, channel=row.channel, defaults={"value": row.value}
            )
        for target_channel, keys in pending_endpoints:
            for key in keys:
                Endpoint.objects.get_or_create(channel=target_channel, queue_key=key)
    return report


def options_export_cfg(*, channel: Channel | None = None) -> str:
    """The effective options as a `.cfg` file, one INI section per catalog section."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    for option in options_list(channel=channel):
        section = option.definition.section
        if section == options_catalog.CHANNEL and channel is not None:
            section = section_for_channel(channel)
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, option.definition.name, option.value)
    if channel is not None:
        keys = list(channel.endpoints.values_list("queue_key", flat=True))
        if keys:
            parser.set(section_for_channel(channel), ENDPOINTS_KEY, "," + ",".join(keys))
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def section_for_channel(channel: Channel) -> str:
    return channel.channel_id if channel.channel_id.startswith("channel-") else f"channel-{channel.channel_id}"
