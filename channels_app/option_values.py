"""Reading option values: the effective value of an option (a channel's override, else the global value,
else the catalog's default) and a session's kept one. A read, below the services: `selectors.py` and every
service read options here; `services/options.py` writes them (and empties the values kept here)."""

import time

from channels_app import options_catalog
from channels_app.errors import NotFound
from channels_app.models import Channel, OptionValue
from channels_app.options_catalog import OptionDefinition


def option_definition_get(*, section: str, name: str) -> OptionDefinition:
    definition = options_catalog.get_option(section, name)
    if definition is None:
        if section not in options_catalog.SECTIONS:
            raise NotFound(f"Unknown option section {section!r}.", field="section")
        raise NotFound(f"Unknown option {name!r} in section {section!r}.", field="name")
    return definition


# Options are read on every request and every send, and change rarely: each
# process keeps all values (a few rows per channel) for OPTION_CACHE_SECONDS,
# and drops them at once when it writes one. A change made by another
# process is seen within that time.
OPTION_CACHE_SECONDS = 2.0
_cache: dict = {"loaded_at": float("-inf"), "values": {}}


def invalidate_option_cache(**signal_kwargs) -> None:
    """Also the receiver of OptionValue's post_save and post_delete (connected in apps.py)."""
    _cache["loaded_at"] = float("-inf")


def all_option_values() -> dict[tuple[str, str, int | None], str]:
    """Every stored value by (section, name, channel id or None), as loaded at most OPTION_CACHE_SECONDS ago."""
    if time.monotonic() - _cache["loaded_at"] > OPTION_CACHE_SECONDS:
        values = {
            (section, name, channel_id): value
            for section, name, channel_id, value in OptionValue.objects.values_list(
                "section", "name", "channel_id", "value"
            ).order_by()
        }
        _cache.update(values=values, loaded_at=time.monotonic())
    return _cache["values"]


def option_value(*, section: str, name: str, channel: Channel | None = None):
    """The typed effective value of one option for a channel (or globally)."""
    definition = option_definition_get(section=section, name=name)
    values = all_option_values()
    if channel is not None and (section, name, channel.pk) in values:
        return definition.parse(values[(section, name, channel.pk)])
    return definition.parse(values.get((section, name, None), definition.default))


def session_option(*, interaction, section: str, name: str):
    """The value of an option for one session: the one kept when the session
    was created for options that take effect at the next interaction or
    session; the current one for options that take effect immediately (and
    for sessions created before values were kept)."""
    definition = option_definition_get(section=section, name=name)
    kept = interaction.session_options or {}
    if definition.takes_effect != options_catalog.TakesEffect.IMMEDIATELY and name in kept:
        return kept[name]
    return option_value(section=section, name=name, channel=interaction.channel)
